//! The heartbeat link under a shared secret: a primary and a backup master as state machines,
//! the link opened (or refused) the way the event loop would, and a fake clock. A backup with
//! the secret follows and, after a takeover, fences the old primary through a fresh
//! authenticated link; one without it is refused, retries slowly and never takes over.

use std::time::{Duration, Instant};

use dsm_auth::Secret;
use dsm_master::{Config, Master, Out};
use dsm_wire::{Body, ErrorCode, ServerRole};

const SECRET: &[u8] = b"the cluster's shared secret, 32B";
const OTHER: &[u8] = b"some other cluster's secret, 32B";
const LINK: usize = 10;

struct Pair {
    p: Master,
    b: Master,
    now: Instant,
    link_open: bool,
    /// The primary cannot be reached: opening the link fails.
    primary_down: bool,
    links_opened: usize,
    /// Frames on the link: (from the primary?, body).
    seen: Vec<(bool, Body)>,
}

fn cfg(backup_of: Option<&str>, secret: Option<&[u8]>) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        heartbeat: "127.0.0.1:0".parse().unwrap(),
        backup_of: backup_of.map(|a| a.parse().unwrap()),
        secret: secret.map(|s| Secret::from_bytes(s).unwrap()),
        ..Config::default()
    }
}

impl Pair {
    fn new(primary: Option<&[u8]>, backup: Option<&[u8]>) -> Pair {
        let now = Instant::now();
        let mut pair = Pair {
            p: Master::new(cfg(None, primary), now),
            b: Master::new(cfg(Some("127.0.0.1:9"), backup), now),
            now,
            link_open: false,
            primary_down: false,
            links_opened: 0,
            seen: Vec::new(),
        };
        pair.maybe_open_link();
        pair
    }

    /// What the event loop does each turn: open the link when the backup wants one.
    fn maybe_open_link(&mut self) {
        if self.link_open || self.b.link_target(self.now).is_none() {
            return;
        }
        if self.primary_down {
            self.b.on_link_failed("connection refused", self.now);
            return;
        }
        self.links_opened += 1;
        self.link_open = true;
        self.p.on_connect(LINK, "backup".into(), self.now);
        self.b.on_link_up(LINK, "primary".into(), self.now);
        self.pump();
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for from_primary in [true, false] {
                let mut out = Vec::new();
                let (from, to) = match from_primary {
                    true => (&mut self.p, &mut self.b),
                    false => (&mut self.b, &mut self.p),
                };
                from.drain_out(&mut out);
                for o in out {
                    match o {
                        Out::Send(LINK, frame) if self.link_open => {
                            moved = true;
                            self.seen.push((from_primary, frame.body.clone()));
                            to.on_frame(LINK, frame, self.now);
                        }
                        Out::Close(LINK) if self.link_open => {
                            moved = true;
                            self.link_open = false;
                            to.on_close(LINK, self.now);
                        }
                        _ => {}
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(1);
            self.p.on_tick(self.now);
            self.b.on_tick(self.now);
            self.pump();
            self.maybe_open_link();
        }
    }

    /// Cut the link as a crash of the primary would.
    fn cut(&mut self) {
        self.link_open = false;
        self.b.on_close(LINK, self.now);
        self.p.on_close(LINK, self.now);
    }

    fn saw(&self, from_primary: bool, pred: impl Fn(&Body) -> bool) -> bool {
        self.seen.iter().any(|(f, b)| *f == from_primary && pred(b))
    }
}

#[test]
fn a_backup_with_the_secret_follows_then_fences_the_old_primary_over_an_authenticated_link() {
    let mut pair = Pair::new(Some(SECRET), Some(SECRET));
    pair.advance(Duration::from_millis(50));
    assert!(pair.saw(true, |b| matches!(b, Body::Challenge { .. })));
    assert!(pair.saw(false, |b| matches!(b, Body::Auth { .. })));
    assert!(pair.saw(true, |b| matches!(b, Body::Welcome { proof: Some(_), .. })));
    assert!(
        pair.saw(false, |b| matches!(b, Body::SyncAck)),
        "the backup never received the primary's state"
    );
    assert_eq!(pair.b.role(), ServerRole::Backup);

    // The primary vanishes: the backup cannot reopen the link and takes over.
    pair.primary_down = true;
    pair.cut();
    pair.advance(Duration::from_millis(10));
    assert_eq!(pair.b.role(), ServerRole::Primary);
    assert_eq!(pair.b.status().epoch, 2);
    // It comes back (it was only cut off): the new primary's link authenticates first, then
    // its HELLO with epoch 2 makes the old primary step down.
    pair.seen.clear();
    pair.primary_down = false;
    pair.advance(Duration::from_millis(1100));
    assert!(pair.saw(true, |b| matches!(b, Body::Challenge { .. })));
    assert_eq!(pair.p.role(), ServerRole::Fenced);
    assert!(pair.saw(true, |b| matches!(
        b,
        Body::Error {
            code: ErrorCode::NotPrimary,
            ..
        }
    )));
}

#[test]
fn a_backup_without_the_secret_is_refused_retries_slowly_and_never_takes_over() {
    for backup_secret in [None, Some(OTHER)] {
        let mut pair = Pair::new(Some(SECRET), backup_secret);
        pair.advance(Duration::from_millis(3500));
        assert!(
            pair.saw(true, |b| matches!(
                b,
                Body::Error {
                    code: ErrorCode::Unauthorized,
                    ..
                }
            )),
            "{backup_secret:?}: {:?}",
            pair.seen
        );
        assert!(!pair.saw(true, |b| matches!(b, Body::Sync { .. })));
        assert_eq!(pair.b.role(), ServerRole::Backup, "{backup_secret:?}");
        assert_eq!(pair.p.role(), ServerRole::Primary, "{backup_secret:?}");
        assert_eq!(pair.p.status().epoch, 1);
        // One attempt a second, not one per heartbeat interval (or a tight loop).
        assert!(
            (3..=5).contains(&pair.links_opened),
            "{backup_secret:?}: {} links in 3.5 s",
            pair.links_opened
        );
    }
}

#[test]
fn a_backup_with_a_secret_refuses_a_primary_without_one() {
    let mut pair = Pair::new(None, Some(SECRET));
    pair.advance(Duration::from_millis(1500));
    assert!(pair.saw(true, |b| matches!(
        b,
        Body::Error {
            code: ErrorCode::Unauthorized,
            ..
        }
    )));
    assert!(!pair.saw(true, |b| matches!(b, Body::Sync { .. })));
    assert_eq!(pair.b.role(), ServerRole::Backup);
}

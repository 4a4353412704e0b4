//! Masters electing a primary on the simulated network (`common`): a primary, a standby that
//! follows its stream, and three slaves (five voters), with slaves that redial as dsm-slave
//! does (`Net::redial`). The design is in `master/src/ha/mod.rs`: the primary serves only while
//! a majority of voters has promised it support; a standby takes over only when a majority
//! (itself and the slaves that came to it) votes for a higher epoch.

use std::time::Duration;

use dsm_master::Config;
use dsm_wire::{BackupLink, Body, ErrorCode, Frame, Role, ServerRole, SyncEvent};

mod common;
use common::{read, value, write, Msg, Net, NodeId};

/// How long a slave waits for a silent master before it looks for another (dsm-slave's
/// `--master-timeout-ms` is 500 by default, and at least the lease plus a quarter).
const PATIENCE: Duration = Duration::from_millis(500);

/// A primary with three slaves, a standby following it, and a client on each master.
struct Ha {
    net: Net,
    p: NodeId,
    b: NodeId,
    slaves: [NodeId; 3],
    /// Clients of the primary and of the standby.
    cp: NodeId,
    cb: NodeId,
}

impl Ha {
    fn new() -> Ha {
        Ha::with(common::new_cluster())
    }

    /// With the primary configured so.
    fn with(cfg: Config) -> Ha {
        let mut net = Net::new();
        let p = net.add_master(cfg);
        let slaves = ["s0", "s1", "s2"].map(|id| net.add_slave(p, id));
        let b = net.add_backup(common::new_cluster(), p);
        let cp = net.add_client(p);
        let cb = net.add_client(b);
        let mut ha = Ha {
            net,
            p,
            b,
            slaves,
            cp,
            cb,
        };
        // A few renewals: the primary counts its five voters and holds their promises.
        ha.run(Duration::from_millis(200));
        ha
    }

    /// Let `d` pass, 10 ms at a time, the slaves redialing as dsm-slave does.
    fn run(&mut self, d: Duration) {
        let step = Duration::from_millis(10);
        let mut left = d;
        while !left.is_zero() {
            let s = step.min(left);
            self.net.advance(s);
            left -= s;
            let (slaves, masters) = (self.slaves, [self.p, self.b]);
            self.net.redial(&slaves, &masters, PATIENCE);
        }
    }

    /// From now on the primary's SYNC frames that carry a Key event are lost (it "dies"
    /// before they leave); its intents still go.
    fn drop_key_events(&mut self) {
        let p = self.p;
        self.net.drop_if(move |m: &Msg| {
            m.from == p
                && matches!(&m.frame.body, Body::Sync { events, .. }
                    if events.iter().any(|e| matches!(e, SyncEvent::Key { .. })))
        });
    }

    fn role_epoch(&self, m: NodeId) -> (ServerRole, u64) {
        let s = self.net.master(m).status();
        (s.role, s.epoch)
    }
}

fn is_error(frames: &[Frame], code: ErrorCode) -> bool {
    matches!(frames, [Frame { body: Body::Error { code: c, .. }, .. }] if *c == code)
}

#[test]
fn a_standby_follows_the_primary_and_refuses_clients() {
    let mut ha = Ha::new();
    let (b, cp, cb) = (ha.b, ha.cp, ha.cb);
    assert_eq!(
        ha.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    assert_eq!(ha.role_epoch(b), (ServerRole::Backup, 1));
    assert_eq!(ha.net.master(b).status().keys, 1);
    assert!(is_error(
        &ha.net.request(cb, 2, read("k")),
        ErrorCode::NotPrimary
    ));
    // A second of quiet: the primary keeps its lease, nobody campaigns.
    ha.run(Duration::from_secs(1));
    assert_eq!(ha.role_epoch(ha.p), (ServerRole::Primary, 1));
    assert_eq!(
        ha.net.request(cp, 3, read("k")),
        vec![Frame::new(3, value("v1"))]
    );
}

/// A standby has no connection to the slaves, but its STATUS tells what its primary's does:
/// the slaves the primary has in service are live, and a key is under-replicated as there
/// (it said every slave dead and every key short, and a monitor that asked the first address
/// after a failover alarmed). A slave the primary loses is not live on the standby either.
#[test]
fn a_standby_reports_the_slaves_as_its_primary_has_them() {
    let mut ha = Ha::new();
    let (b, cp) = (ha.b, ha.cp);
    assert_eq!(
        ha.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    ha.run(Duration::from_millis(100));
    let st = ha.net.master(b).status();
    assert_eq!(st.role, ServerRole::Backup);
    assert_eq!(st.slaves.iter().filter(|s| s.live).count(), 3, "{st:?}");
    assert_eq!(st.under_replicated, 0, "{st:?}");
    let holder = ha.net.holders_of("k")[0];
    ha.net.kill(holder);
    ha.run(Duration::from_millis(100));
    let primary = ha.net.master(ha.p).status();
    let st = ha.net.master(b).status();
    assert_eq!(st.slaves.iter().filter(|s| s.live).count(), 2, "{st:?}");
    assert_eq!(st.under_replicated, primary.under_replicated, "{st:?}");
    assert_eq!(st.under_replicated, 1, "k has one copy out of reach");
}

/// kill -9 of the primary: its slaves come to the standby, which withdraws its own promise,
/// waits for the last one to run out, and is elected by them at epoch 2.
#[test]
fn a_killed_primary_is_replaced_by_the_standby_its_slaves_elect() {
    let mut ha = Ha::new();
    let (p, b, cp, cb) = (ha.p, ha.b, ha.cp, ha.cb);
    assert_eq!(
        ha.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    ha.net.kill(p);
    ha.run(Duration::from_millis(600));
    assert_eq!(ha.role_epoch(b), (ServerRole::Primary, 2));
    for s in ha.slaves {
        assert!(
            ha.net.peer(s).votes.contains(&(2, true)),
            "{:?}",
            ha.net.peer(s).votes
        );
    }
    assert_eq!(
        ha.net.request(cb, 2, read("k")),
        vec![Frame::new(2, value("v1"))]
    );
    assert_eq!(
        ha.net.request(cb, 3, write("k", "v2")),
        vec![Frame::new(3, Body::Ok)]
    );
}

/// A standby elected before its snapshot was whole recovers from the slaves; once every slave
/// has reported, its map is whole again: SCAN answers (it said UNAVAILABLE for good), and the
/// old primary, back as its standby, gets a whole snapshot and is in step (it stayed
/// "catching up" for good, so every later failover was a slow one without a whole map).
#[test]
fn a_primary_elected_without_its_whole_snapshot_trusts_its_map_once_recovered() {
    let mut ha = Ha::new();
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    assert_eq!(
        ha.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    // The standby restarts, and never hears that its new snapshot is whole.
    ha.net.kill(b);
    ha.net.drop_if(move |m: &Msg| {
        m.from == p && matches!(&m.frame.body, Body::Sync { complete: true, .. })
    });
    ha.net.restart_master(b, common::new_cluster(), Some(p));
    ha.run(Duration::from_millis(300));
    assert_eq!(ha.net.master(b).status().backup, BackupLink::CatchingUp);
    ha.net.kill(p);
    ha.net.stop_dropping();
    ha.run(Duration::from_millis(1500));
    assert_eq!(ha.role_epoch(b).0, ServerRole::Primary);
    let c = ha.net.add_client(b);
    let scan = Body::Scan {
        prefix: Vec::new(),
        cursor: 0,
        limit: 100,
    };
    assert_eq!(
        ha.net.request(c, 2, scan),
        vec![Frame::new(
            2,
            Body::Keys {
                next: 0,
                keys: vec![b"k".to_vec()]
            }
        )]
    );
    assert_eq!(
        ha.net.request(c, 3, read("k")),
        vec![Frame::new(3, value("v1"))]
    );
    ha.net.restart_master(p, common::new_cluster(), Some(b));
    ha.run(Duration::from_millis(500));
    assert_eq!(ha.role_epoch(p).0, ServerRole::Backup);
    assert_eq!(ha.net.master(p).status().backup, BackupLink::InStep);
    assert_eq!(ha.net.master(b).status().backup, BackupLink::InStep);
}

/// A primary restarted without a data dir is recovering (its discovery window open) when it
/// is cut from its slaves; they elect the standby, whose link fences it, and it steps down.
/// Its own link to the new primary never gets through. Its recovery must end with the step
/// down: left running, its end (the window closing) marked the emptied map of a master that
/// follows nobody as whole, and when the new primary died and the slaves elected it back it
/// skipped recovering and answered NOT_FOUND for an acknowledged write. (Found by a review of
/// the change that clears `incomplete` at a recovery's end.)
#[test]
fn a_primary_fenced_while_recovering_does_not_trust_its_emptied_map() {
    let mut ha = Ha::new();
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    assert_eq!(
        ha.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    ha.net.kill(p);
    let slow = Config {
        discover: Duration::from_millis(3000),
        ..common::new_cluster()
    };
    ha.net.restart_master(p, slow, None);
    let slaves = ha.slaves;
    ha.net.redial(&slaves, &[p], PATIENCE);
    ha.net.advance(Duration::from_millis(50));
    assert_eq!(ha.role_epoch(p).0, ServerRole::Recovering);
    for s in slaves {
        ha.net.cut(p, s);
    }
    ha.net.drop_if(move |m: &Msg| {
        m.from == p && m.to == b && matches!(&m.frame.body, Body::Hello { .. })
    });
    ha.run(Duration::from_millis(1500));
    assert_eq!(ha.role_epoch(b).0, ServerRole::Primary);
    assert_eq!(ha.role_epoch(p).0, ServerRole::Backup);
    ha.run(Duration::from_millis(2000));
    ha.net.heal();
    ha.net.stop_dropping();
    ha.net.kill(b);
    ha.run(Duration::from_millis(4500));
    let c = ha.net.add_client(p);
    assert_eq!(
        ha.net.request(c, 2, read("k")),
        vec![Frame::new(2, value("v1"))]
    );
}

#[test]
fn an_acknowledged_write_whose_commit_never_reached_the_standby_survives_the_election() {
    let mut ha = Ha::new();
    let (p, b, cp, cb) = (ha.p, ha.b, ha.cp, ha.cb);
    assert_eq!(
        ha.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    // The intent reaches the standby, the commit does not: the primary dies right after OK.
    ha.drop_key_events();
    assert_eq!(
        ha.net.request(cp, 2, write("k", "v2")),
        vec![Frame::new(2, Body::Ok)]
    );
    ha.net.kill(p);
    ha.run(Duration::from_millis(600));
    assert_eq!(ha.role_epoch(b).0, ServerRole::Primary);
    // The standby's map still says v1; the intent makes it ask every slave instead.
    assert_eq!(
        ha.net.request(cb, 3, read("k")),
        vec![Frame::new(3, value("v2"))]
    );
    // Writes through the new primary outrank everything the old one wrote.
    assert_eq!(
        ha.net.request(cb, 4, write("k", "v3")),
        vec![Frame::new(4, Body::Ok)]
    );
    assert_eq!(
        ha.net.request(cb, 5, read("k")),
        vec![Frame::new(5, value("v3"))]
    );
}

/// Row 1 of the issue: a standby frozen for good. The primary still has a majority (itself
/// and the slaves): it lets the standby go, tells the slaves it is out of step (STALE), and
/// goes on acknowledging writes once a majority knows.
#[test]
fn a_frozen_standby_never_stops_the_primary() {
    let mut ha = Ha::new();
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    ha.net.freeze(b);
    let mut got = Vec::new();
    for i in 0..30u64 {
        got.extend(ha.net.request(cp, i, write(&format!("k{i}"), "v")));
        ha.run(Duration::from_millis(100));
        got.extend(ha.net.take(cp));
    }
    ha.run(Duration::from_millis(500));
    got.extend(ha.net.take(cp));
    let want: Vec<Frame> = (0..30).map(|i| Frame::new(i, Body::Ok)).collect();
    assert_eq!(got, want);
    assert_eq!(ha.role_epoch(p), (ServerRole::Primary, 1));
    for s in ha.slaves {
        assert_eq!(
            ha.net.peer(s).stale.len(),
            1,
            "told the standby is out of step"
        );
    }
}

/// The stale candidate: the standby is frozen, the primary goes on without it (and says so to
/// the slaves), then dies. The standby resumes and is elected, but a slave tells it it is out
/// of step: it recovers what the slaves hold before serving, and serves the latest writes.
#[test]
fn a_standby_out_of_step_recovers_from_the_slaves_before_serving() {
    let mut ha = Ha::new();
    let (p, b, cp, cb) = (ha.p, ha.b, ha.cp, ha.cb);
    assert_eq!(
        ha.net.request(cp, 1, write("k", "old")),
        vec![Frame::new(1, Body::Ok)]
    );
    ha.net.freeze(b);
    ha.run(Duration::from_millis(500));
    ha.net.request(cp, 2, write("k", "new"));
    // Acknowledged once a majority knows the standby is out of step.
    ha.run(Duration::from_millis(600));
    assert_eq!(ha.net.take(cp), vec![Frame::new(2, Body::Ok)]);
    ha.net.kill(p);
    ha.net.thaw(b);
    ha.run(Duration::from_millis(1000));
    assert_eq!(ha.role_epoch(b).0, ServerRole::Primary);
    assert_eq!(
        ha.net.request(cb, 3, read("k")),
        vec![Frame::new(3, value("new"))],
        "not the value its own map had"
    );
}

/// Row 3: the primary cut from every slave while clients and the standby still reach it. The
/// slaves find it silent and elect the standby; the primary, without a majority, refuses
/// clients, then steps down and follows the new primary by itself.
#[test]
fn a_primary_cut_from_every_slave_loses_its_lease_and_rejoins_as_a_standby() {
    let mut ha = Ha::new();
    let (p, b, cp, cb) = (ha.p, ha.b, ha.cp, ha.cb);
    for i in 0..10 {
        assert_eq!(
            ha.net.request(cp, i, write(&format!("k{i}"), "v")),
            vec![Frame::new(i, Body::Ok)]
        );
    }
    for s in ha.slaves {
        ha.net.cut(p, s);
    }
    ha.run(Duration::from_millis(500));
    assert!(
        is_error(&ha.net.request(cp, 50, read("k1")), ErrorCode::NotPrimary),
        "a primary without a majority answers nothing"
    );
    ha.run(Duration::from_millis(1000));
    assert_eq!(ha.role_epoch(b), (ServerRole::Primary, 2));
    assert_eq!(
        ha.role_epoch(p).0,
        ServerRole::Backup,
        "the old primary follows the new one"
    );
    for i in 0..10 {
        assert_eq!(
            ha.net.request(cb, 100 + i, read(&format!("k{i}"))),
            vec![Frame::new(100 + i, value("v"))]
        );
    }
    // Healed, nothing changes: the old primary stays a standby, in step with the new one.
    ha.net.heal();
    ha.run(Duration::from_millis(1000));
    assert_eq!(ha.role_epoch(p), (ServerRole::Backup, 2));
    assert_eq!(ha.net.master(p).status().keys, 10);
}

/// The lease the masters run with (`--lease-ms`, 400 by default).
const LEASE: Duration = Duration::from_millis(400);

/// The primary cut from every slave, still heard by the standby (and the standby by it): the
/// slaves leave it after their patience and come to the standby, which withdraws its promise
/// to the primary. The primary, its lease long lost with the slaves' promises, releases the
/// standby from its own promise when asked (RELEASE), so the standby is elected about when
/// the slaves come, not a lease later (it used to wait out its last promise: elected at
/// about the patience plus a lease after the cut).
#[test]
fn a_primary_cut_from_every_slave_releases_the_standby_which_is_elected_without_waiting_a_lease() {
    let mut ha = Ha::new();
    let (p, b) = (ha.p, ha.b);
    for s in ha.slaves {
        ha.net.cut(p, s);
    }
    let cut = ha.net.now();
    while ha.role_epoch(b).0 != ServerRole::Primary {
        ha.run(Duration::from_millis(10));
        assert!(ha.net.now() < cut + PATIENCE + LEASE * 2, "never elected");
    }
    let elected = ha.net.now() - cut;
    // The slaves come after PATIENCE; the standby takes a heartbeat (100 ms) to see that it
    // has a majority, a round trip to be released, one more to be elected.
    assert!(
        elected < PATIENCE + LEASE / 2,
        "elected {elected:?} after the cut: the standby waited out its promise"
    );
    assert!(
        ha.net.saw(
            p,
            b,
            |m| matches!(m, Body::Released { below } if *below > 0)
        ),
        "the primary never released the standby"
    );
    assert_eq!(ha.role_epoch(b), (ServerRole::Primary, 2));
}

/// Two slaves leave the primary for the standby (their connections broke) while their
/// promises to it still hold: the standby, a majority with them, withdraws and asks to be
/// released, and the primary, whose lease holds, releases nothing (RELEASED 0) for as long as
/// it holds. (Its frames reach the standby 120 ms late here, so the standby's promises run out
/// 120 ms after the primary's count of them: it still asks once the lease is gone, and that
/// answer releases it.)
#[test]
fn a_primary_that_holds_its_lease_releases_nothing() {
    let mut ha = Ha::new();
    let (p, b) = (ha.p, ha.b);
    let [s0, s1, _] = ha.slaves;
    ha.net.delay(p, b, Duration::from_millis(120));
    ha.run(Duration::from_millis(300));
    for s in [s0, s1] {
        let conn = ha.net.conn_of(s);
        ha.net.close(conn);
        ha.net.connect(s, b);
    }
    ha.net.settle();
    let (mut refused, mut released, mut seen) = (0, 0, ha.net.sent().len());
    for _ in 0..1500 {
        ha.net.advance(Duration::from_millis(1));
        let now = ha.net.now();
        for m in &ha.net.sent()[seen..] {
            let Body::Released { below } = m.frame().body else {
                continue;
            };
            assert_eq!((m.from, m.to), (p, b));
            if below == 0 {
                assert!(ha.net.master(p).serving(now), "refused without its lease");
                refused += 1;
            } else {
                assert!(!ha.net.master(p).serving(now), "released with its lease");
                released += 1;
            }
        }
        seen = ha.net.sent().len();
        if ha.role_epoch(b).0 == ServerRole::Primary {
            break;
        }
    }
    assert!(
        refused > 0,
        "never asked while the lease held: nothing was tested"
    );
    assert!(released > 0, "never asked once the lease was gone");
    assert_eq!(ha.role_epoch(b), (ServerRole::Primary, 2));
}

/// A standby played by the test, attached to `p`: its id names heartbeat and client addresses
/// no master of the sim has.
fn played_standby(net: &mut Net, p: NodeId) -> NodeId {
    let sb = net.join(p, Role::Backup, "127.0.0.1:7999 127.0.0.1:7998", None);
    assert!(
        net.peer(sb).welcome.is_some(),
        "the played standby was not taken"
    );
    sb
}

/// The played standby's turn: confirm every SYNC, keep the ids of the PINGs and STALEs (the
/// primary's requests for its promise) in `asked`, and answer those `answer` picks. Returns
/// what RELEASED said.
fn play(net: &mut Net, sb: NodeId, asked: &mut Vec<u64>, answer: impl Fn(u64) -> bool) -> Vec<u64> {
    let mut released = Vec::new();
    for f in net.take(sb) {
        match f.body {
            Body::Sync { .. } => net.send(sb, Frame::new(f.req_id, Body::SyncAck)),
            Body::Ping | Body::Stale { .. } => {
                asked.push(f.req_id);
                if answer(f.req_id) {
                    net.send(sb, Frame::new(f.req_id, Body::Pong));
                }
            }
            Body::Released { below } => released.push(below),
            _ => {}
        }
    }
    net.settle();
    released
}

/// What a release means to the primary: it gives one only without its lease, and from then on
/// counts none of the standby's answers to the requests it sent before (however late they
/// come), but counts those to its later requests, so a standby that supports it again gives
/// it its lease back. One slave with the primary, two cut off: the played standby's promise
/// decides whether it holds.
#[test]
fn a_released_standbys_old_answers_count_for_nothing_and_its_new_ones_give_the_lease_back() {
    let mut net = Net::new();
    let p = net.add_master(common::new_cluster());
    let [_, s1, s2] = ["s0", "s1", "s2"].map(|id| net.add_slave(p, id));
    let sb = played_standby(&mut net, p);
    let mut asked = Vec::new();
    let step = Duration::from_millis(10);
    let run = |net: &mut Net, d: Duration, asked: &mut Vec<u64>, answer: &dyn Fn(u64) -> bool| {
        let mut released = Vec::new();
        for _ in 0..d.as_millis() / step.as_millis() {
            net.advance(step);
            released.extend(play(net, sb, asked, answer));
        }
        released
    };
    run(&mut net, Duration::from_millis(300), &mut asked, &|_| true);
    net.cut(p, s1);
    net.cut(p, s2);
    run(&mut net, Duration::from_millis(500), &mut asked, &|_| true);
    assert!(
        net.master(p).serving(net.now()),
        "itself, s0 and the standby"
    );
    net.send(sb, Frame::new(0, Body::Release));
    net.settle();
    assert_eq!(
        play(&mut net, sb, &mut asked, |_| true),
        vec![0],
        "it holds: no release"
    );
    // The standby withdraws: it answers nothing more, and the lease runs out.
    let answered = *asked.last().expect("PINGed");
    run(&mut net, LEASE + step, &mut asked, &|_| false);
    assert!(!net.master(p).serving(net.now()));
    net.send(sb, Frame::new(0, Body::Release));
    net.settle();
    let below = play(&mut net, sb, &mut asked, |_| false);
    assert_eq!(below.len(), 1, "{below:?}");
    let below = below[0];
    let unanswered: Vec<u64> = asked.iter().copied().filter(|&r| r > answered).collect();
    assert!(!unanswered.is_empty());
    assert!(
        unanswered.iter().all(|&r| r < below),
        "{unanswered:?} {below}"
    );
    // The answers to those requests come now, late: they were released, they promise nothing.
    for &r in &unanswered {
        net.send(sb, Frame::new(r, Body::Pong));
    }
    net.settle();
    assert!(
        !net.master(p).serving(net.now()),
        "an answer to a request from before the release counted"
    );
    // The standby supports the primary again: its answers to later requests count.
    run(&mut net, step * 12, &mut asked, &|r| r >= below);
    assert!(
        net.master(p).serving(net.now()),
        "the standby's new promise did not give the lease back"
    );
    assert_eq!(net.master(p).role(), ServerRole::Primary);
}

/// Row 2: an isolated standby can never win (no slave comes to it) nor make anyone reset;
/// healed, it follows the primary again.
#[test]
fn an_isolated_standby_never_wins_and_follows_again_once_healed() {
    let mut ha = Ha::new();
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    assert_eq!(
        ha.net.request(cp, 1, write("k", "v")),
        vec![Frame::new(1, Body::Ok)]
    );
    let held: Vec<usize> = ha.slaves.iter().map(|&s| ha.net.store(s).len()).collect();
    ha.net.isolate(b);
    ha.run(Duration::from_secs(2));
    assert_eq!(ha.role_epoch(b), (ServerRole::Backup, 1));
    assert_eq!(ha.role_epoch(p), (ServerRole::Primary, 1));
    ha.net.request(cp, 2, write("k", "w"));
    ha.run(Duration::from_millis(600));
    assert_eq!(ha.net.take(cp), vec![Frame::new(2, Body::Ok)]);
    ha.net.heal();
    ha.run(Duration::from_secs(2));
    assert_eq!(ha.role_epoch(b), (ServerRole::Backup, 1));
    assert_eq!(ha.role_epoch(p), (ServerRole::Primary, 1));
    let now: Vec<usize> = ha.slaves.iter().map(|&s| ha.net.store(s).len()).collect();
    assert_eq!(now, held, "no slave was told to reset");
}

/// Row 7: a standby started while its primary is unreachable (a typo in `--backup-of`) does
/// not become a second primary: no slave comes to it.
#[test]
fn a_standby_that_cannot_reach_its_primary_does_not_become_a_second_one() {
    let mut ha = Ha::new();
    let cfg = Config {
        peers: vec!["127.0.0.1:1".parse().unwrap()],
        ..common::new_cluster()
    };
    let typo = ha.net.add_master(cfg);
    ha.run(Duration::from_secs(2));
    assert_eq!(ha.role_epoch(typo).0, ServerRole::Backup);
    assert_eq!(ha.role_epoch(ha.p), (ServerRole::Primary, 1));
}

/// A lease that runs out while a write waits for its ACKs: the write is not acknowledged (the
/// primary can no longer vouch for it), even though its ACKs come in later.
#[test]
fn a_write_outlived_by_its_primarys_lease_is_not_acknowledged() {
    // Slaves slow to ACK are waited for, not dropped.
    let mut ha = Ha::with(Config {
        ack_timeout: Duration::from_secs(2),
        ..common::new_cluster()
    });
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    // Everything from the slaves now takes 600 ms to arrive, and the standby is cut off: the
    // promises the primary gets are too late to count.
    ha.net.cut(p, b);
    for s in ha.slaves {
        ha.net.delay(s, p, Duration::from_millis(600));
    }
    ha.net.request(cp, 1, write("k", "v"));
    ha.net.advance(Duration::from_millis(2500));
    let got = ha.net.take(cp);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        matches!(
            got[0].body,
            Body::Error {
                code: ErrorCode::Timeout | ErrorCode::NotPrimary,
                ..
            }
        ),
        "{got:?}"
    );
}

/// Row 7 with a slave that loses the primary: the primary drops it (here its connection
/// closes) and it redials the next master, the standby of a typo. That standby never had the
/// primary's roster: it counts only the masters it knows and its supporters (2 + 1 = 3), and
/// one slave's vote would be a majority of that, while the primary serves on with the two
/// others. The slave knows better (its primary's STALE said 5 voters): it refuses, and says
/// 5, and the standby is not elected. `tests/tests/elections.rs` has the same with real
/// processes.
#[test]
fn a_standby_of_a_typo_is_not_elected_by_one_slave_that_lost_the_primary() {
    let mut ha = Ha::new();
    let cfg = Config {
        peers: vec!["127.0.0.1:1".parse().unwrap()],
        ..common::new_cluster()
    };
    let typo = ha.net.add_master(cfg);
    ha.run(Duration::from_secs(1));
    let s0 = ha.slaves[0];
    let conn = ha.net.conn_of(s0);
    ha.net.close(conn);
    let step = Duration::from_millis(10);
    for _ in 0..200 {
        ha.net.advance(step);
        ha.net.redial(&[s0], &[ha.p, typo], PATIENCE);
        let others = [ha.slaves[1], ha.slaves[2]];
        ha.net.redial(&others, &[ha.p], PATIENCE);
    }
    assert_eq!(ha.net.peer(s0).voters, 5, "told by the primary's STALE");
    let votes = &ha.net.peer(s0).votes;
    assert!(
        !votes.is_empty(),
        "the standby never asked: nothing was tested"
    );
    assert!(votes.iter().all(|&(_, granted)| !granted), "{votes:?}");
    assert_eq!(ha.role_epoch(ha.p), (ServerRole::Primary, 1));
    assert_eq!(
        ha.role_epoch(typo).0,
        ServerRole::Backup,
        "votes: {votes:?}"
    );
}

/// A slave back from a partition may dial the standby first and support it for a few
/// seconds. One slave and the standby are no majority of five, so the standby keeps promising
/// the primary: when one more slave goes quiet the primary still has three voters (itself,
/// the standby, the last slave) and serves on. (The standby used to withdraw its promise as
/// soon as any slave came to it: two voters lost, and a failover on the next hiccup.)
#[test]
fn a_slave_that_dials_the_standby_first_does_not_cost_the_primary_its_lease() {
    let mut ha = Ha::new();
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    let [s0, s1, s2] = ha.slaves;
    assert_eq!(
        ha.net.request(cp, 1, write("k", "v")),
        vec![Frame::new(1, Body::Ok)]
    );
    let conn = ha.net.conn_of(s0);
    ha.net.close(conn);
    ha.net.cut(p, s1);
    let step = Duration::from_millis(10);
    for _ in 0..150 {
        ha.net.advance(step);
        ha.net.redial(&[s0], &[b], PATIENCE);
        ha.net.redial(&[s1, s2], &[p], PATIENCE);
    }
    assert!(ha.net.peer(s0).supporting, "s0 supports the standby");
    assert_eq!(ha.role_epoch(p), (ServerRole::Primary, 1));
    assert_eq!(ha.role_epoch(b), (ServerRole::Backup, 1));
    assert_eq!(
        ha.net.request(cp, 2, read("k")),
        vec![Frame::new(2, value("v"))],
        "the primary keeps its lease"
    );
}

/// A write whose STOREs are out when a standby attaches: the snapshot cannot have it (the
/// write has not committed) and its intent went to no standby (there was none). It commits
/// once the standby is in step, and the primary dies before that commit reaches the standby.
/// The standby must still doubt the key and find the write on the slaves, not answer from a
/// map that never heard of it (found by `tests/tests/exactly_once.rs`: an acknowledged WRITE
/// read back NOT_FOUND after the second failover, the backup restarted a moment before).
#[test]
fn a_write_in_flight_when_the_standby_attaches_survives_its_election() {
    let mut net = Net::new();
    let p = net.add_master(common::new_cluster());
    let slaves = ["s0", "s1", "s2"].map(|id| net.add_slave(p, id));
    let cp = net.add_client(p);
    net.advance(Duration::from_millis(200));
    assert_eq!(
        net.request(cp, 1, write("j", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    // The slaves' answers take 30 ms from here: the write of a new key has its STOREs out,
    // unanswered, when the standby attaches.
    for s in slaves {
        net.delay(s, p, Duration::from_millis(30));
    }
    net.send(cp, Frame::new(2, write("k", "v2")));
    net.settle();
    assert!(net.take(cp).is_empty(), "answered before the ACKs came");
    let b = net.add_backup(common::new_cluster(), p);
    let cb = net.add_client(b);
    let mut ha = Ha {
        net,
        p,
        b,
        slaves,
        cp,
        cb,
    };
    // The snapshot is confirmed at once (nothing delays that link): the standby is in step,
    // a voter, before the write commits; the commit's Key event never leaves the primary.
    ha.drop_key_events();
    ha.run(Duration::from_millis(40));
    assert_eq!(ha.net.take(cp), vec![Frame::new(2, Body::Ok)]);
    for s in slaves {
        ha.net.delay(s, p, Duration::ZERO);
    }
    ha.net.kill(p);
    ha.run(Duration::from_millis(600));
    assert_eq!(ha.role_epoch(b).0, ServerRole::Primary);
    assert_eq!(
        ha.net.request(cb, 3, read("k")),
        vec![Frame::new(3, value("v2"))]
    );
}

/// A DELETE whose tombstone was collected (PURGE) just before the primary died, neither its
/// Key event nor the Gone event reaching the standby: the standby's map still has the value,
/// with the DELETE's intent. Its probe finds no slave holding anything and answers NOT_FOUND;
/// it must also forget the key, or the next change is decided from the stale entry (a second
/// DELETE answered as if it found the key: found by `make test`'s torture, seed 90991115).
#[test]
fn a_key_the_probe_finds_nowhere_is_forgotten_not_left_in_the_map() {
    let mut ha = Ha::new();
    let (p, b, cp, cb) = (ha.p, ha.b, ha.cp, ha.cb);
    assert_eq!(
        ha.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    ha.net.drop_if(move |m: &Msg| {
        m.from == p
            && matches!(&m.frame.body, Body::Sync { events, .. }
                if events.iter().any(|e| matches!(e, SyncEvent::Key { .. } | SyncEvent::Gone { .. })))
    });
    let delete = || Body::Delete {
        key: b"k".to_vec(),
        expected: None,
    };
    let deleted = ha.net.request(cp, 2, delete());
    assert!(
        matches!(
            &deleted[..],
            [Frame {
                body: Body::Written { .. },
                ..
            }]
        ),
        "{deleted:?}"
    );
    ha.net.advance(Duration::from_millis(50));
    assert!(
        ha.net.holders_of("k").is_empty(),
        "the tombstone is collected"
    );
    ha.net.kill(p);
    ha.run(Duration::from_millis(600));
    assert_eq!(ha.role_epoch(b).0, ServerRole::Primary);
    assert_eq!(
        ha.net.request(cb, 3, delete()),
        vec![Frame::new(3, Body::NotFound)]
    );
    assert_eq!(
        ha.net.request(cb, 4, delete()),
        vec![Frame::new(4, Body::NotFound)]
    );
    assert_eq!(
        ha.net.request(cb, 5, read("k")),
        vec![Frame::new(5, Body::NotFound)]
    );
}

/// The votes that come after the one that decided the election (three slaves: the standby
/// and two of them are a majority of five, so the third vote is always late) make slaves of
/// the master they voted for, on the connection they voted on. Letting such a slave go sent
/// it round the masters to support whichever standby it found next, for seconds (seen with
/// real processes after a restart of the whole cluster).
#[test]
fn a_vote_that_comes_after_the_election_is_decided_still_makes_a_slave() {
    let mut ha = Ha::new();
    let (p, b) = (ha.p, ha.b);
    ha.net.kill(p);
    // The connections the slaves have just before the step in which the standby is elected:
    // the ones they support it on, and vote on.
    let mut conns = ha.slaves.map(|s| ha.net.conn_of(s));
    for _ in 0..100 {
        conns = ha.slaves.map(|s| ha.net.conn_of(s));
        ha.run(Duration::from_millis(10));
        if ha.role_epoch(b).0 == ServerRole::Primary {
            break;
        }
    }
    assert_eq!(ha.role_epoch(b), (ServerRole::Primary, 2));
    ha.run(Duration::from_millis(300));
    for (s, conn) in ha.slaves.into_iter().zip(conns) {
        assert!(
            ha.net.peer(s).votes.contains(&(2, true)),
            "{:?}",
            ha.net.peer(s).votes
        );
        assert_eq!(
            ha.net.conn_of(s),
            conn,
            "a slave that voted keeps the connection it voted on"
        );
    }
    let live = ha
        .net
        .master(b)
        .status()
        .slaves
        .iter()
        .filter(|s| s.live)
        .count();
    assert_eq!(live, 3, "{:?}", ha.net.master(b).status().slaves);
}

/// A standby names its primary's client address in NOT_PRIMARY while it follows it, and not
/// once it has lost it: a client sent to the dead primary would be sent back by the other
/// masters that name it and go round them, instead of finding the one elected meanwhile.
#[test]
fn a_standby_that_lost_its_primary_does_not_name_it_to_clients() {
    let mut ha = Ha::new();
    let (p, b, cb) = (ha.p, ha.b, ha.cb);
    let refusal = |ha: &mut Ha, req: u64| -> String {
        match &ha.net.request(cb, req, read("k"))[..] {
            [Frame {
                body:
                    Body::Error {
                        code: ErrorCode::NotPrimary,
                        text,
                    },
                ..
            }] => text.clone(),
            other => panic!("not a NOT_PRIMARY: {other:?}"),
        }
    };
    let named = refusal(&mut ha, 1);
    assert!(
        dsm_wire::primary_named(&named).is_some(),
        "a standby following its primary names it: {named}"
    );
    ha.net.kill(p);
    ha.run(Duration::from_millis(50));
    assert_eq!(ha.role_epoch(b), (ServerRole::Backup, 1), "not elected yet");
    let lost = refusal(&mut ha, 2);
    assert_eq!(
        dsm_wire::primary_named(&lost),
        None,
        "a standby that lost its primary names none: {lost}"
    );
}

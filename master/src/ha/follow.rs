//! The backup's side: poll the primary over the link, apply its SYNC stream to this master's
//! own slave table and key map, answer the primary's PINGs (its promise, `lease.rs`), and
//! decide when to withdraw that promise and campaign (`election.rs`). With the primary gone,
//! the link goes to each other master in turn: a new primary takes us as its standby, another
//! standby that lost the primary too takes us as its supporter and may ask our vote.

use std::net::SocketAddr;
use std::time::Instant;

use dsm_wire::{Body, ErrorCode, SyncEvent};
use log::{info, warn};

use crate::config::Config;
use crate::doubts::Doubts;
use crate::keymap::{KeyIndex, SlaveIdx};
use crate::outbox::{ConnId, Outbox};
use crate::slaves::SlaveTable;
use crate::timer::{Timer, Timers};

use super::election::Election;
use super::link::Link;
use super::roles::Roles;

pub(crate) struct Follow {
    pub link: Link,
    /// The masters that may be primary, by heartbeat address: the link goes to each in turn
    /// until one WELCOMEs it.
    targets: Vec<SocketAddr>,
    /// When the primary last said anything on the link.
    last_heard: Option<Instant>,
    /// The primary has answered our HELLO at least once.
    ever_linked: bool,
    /// The supporters, and this standby's promise to the primary.
    pub election: Election,
    /// The master that last WELCOMEd our link as its standby (the primary we followed).
    pub primary: Option<SocketAddr>,
    /// Since when our link is WELCOMEd by another standby, which we support (its PINGs are no
    /// promise; its TAKEOVER asks our vote).
    supporting: Option<Instant>,
}

impl Follow {
    /// A standby that looks for the primary among `targets` (not empty), the first first.
    pub fn new(targets: Vec<SocketAddr>, seed: u64, now: Instant) -> Follow {
        Follow {
            link: Link::new(targets[0], now),
            targets,
            last_heard: None,
            ever_linked: false,
            election: Election::with_seed(seed),
            primary: None,
            supporting: None,
        }
    }

    /// Whether our link is WELCOMEd by another standby (we support it).
    pub fn supporting(&self) -> bool {
        self.supporting.is_some()
    }

    /// The primary named a standby of its own (`id`, SyncEvent::Standby): one of the masters
    /// to look for the next primary among, and a voter.
    fn learn(&mut self, id: &str, cfg: &Config) {
        let Some(hb) = super::heartbeat_of(id) else {
            return;
        };
        if hb != cfg.heartbeat && !self.targets.contains(&hb) {
            info!("the primary has another standby: {hb}");
            self.targets.push(hb);
        }
    }

    /// Whether the link is open and WELCOMEd by a primary.
    fn following_primary(&self) -> bool {
        self.ever_linked && self.link.ready && self.link.conn.is_some() && self.supporting.is_none()
    }

    /// Point the link at the next master in turn (the primary may be another one now).
    pub fn next_target(&mut self) {
        if self.targets.len() > 1 {
            let at = self.targets.iter().position(|t| *t == self.link.target);
            let next = at.map_or(0, |i| (i + 1) % self.targets.len());
            self.link.target = self.targets[next];
        }
    }

    /// Whether the link should go to the next master: it supports a standby that has not
    /// been elected in a few seconds, or the master it links to has been silent for twice
    /// what withdraws our promise (frozen, or cut off without a FIN).
    pub fn stuck(&mut self, cfg: &Config, now: Instant) -> bool {
        if self.link.conn.is_none() || self.targets.len() < 2 {
            return false;
        }
        if let Some(since) = self.supporting {
            let patience = cfg.lease * 8 + cfg.lease.mul_f64(8.0 * self.election.jitter());
            return now.saturating_duration_since(since) > patience;
        }
        let limit = cfg.heartbeat_interval * cfg.heartbeat_misses.max(3) * 2;
        (self.last_heard).is_some_and(|h| now.saturating_duration_since(h) > limit)
    }

    /// Leave the master the link is open to (see [`Follow::stuck`]) for the next one.
    pub fn move_on(&mut self, peers: &mut crate::peers::Peers, out: &mut Outbox, now: Instant) {
        let from = self.link.target;
        self.link.close(peers, out, now);
        self.supporting = None;
        self.next_target();
        self.link.retry_at(now);
        info!(
            "nothing useful on the link to {from} for a while: trying {}",
            self.link.target
        );
    }

    /// The link's connection closed (`ready`: it had been WELCOMEd).
    pub fn link_closed(&mut self, ready: bool, now: Instant) {
        self.supporting = None;
        self.link.closed(true, now);
        if !ready {
            // Refused (a master that is no primary, or one that stepped down): the next one.
            self.next_target();
        }
    }

    /// The masters it looks for the primary among (heartbeat addresses).
    pub fn targets(&self) -> &[SocketAddr] {
        &self.targets
    }

    /// The link is up; the primary's silence is counted from now if it never spoke.
    pub fn link_up(&mut self, now: Instant) {
        self.supporting = None;
        self.last_heard.get_or_insert(now);
    }

    /// The heartbeat timer: poll the primary; withdraw our promise once it has been silent
    /// for `--heartbeat-misses` intervals (at least 3), or once the slaves that came to us
    /// because they lost it are, with us, a majority of the `voters` (fewer cannot elect us,
    /// and our promise may be what keeps a primary that still serves the others in office: a
    /// slave back from a partition that dials us first must not cost it two voters); support
    /// it again when it is heard and nobody needs us.
    pub fn on_heartbeat(
        &mut self,
        cfg: &Config,
        voters: usize,
        timers: &mut Timers,
        out: &mut Outbox,
        now: Instant,
    ) {
        let interval = cfg.heartbeat_interval;
        let silent = self
            .last_heard
            .map(|heard| now.saturating_duration_since(heard));
        match silent {
            Some(s) if self.ever_linked && s > interval * cfg.heartbeat_misses.max(3) => {
                let why = format!("no heartbeat answer for {} ms", s.as_millis());
                self.election.withdraw(&why);
            }
            _ if 1 + self.election.supporters.len() > voters / 2 => {
                self.election.withdraw(&format!(
                    "{} slaves lost the primary and came to this standby: with it, a majority \
                     of the {voters} voters",
                    self.election.supporters.len()
                ));
            }
            // Heard on a link still open to a primary (not only before it closed).
            Some(_) if self.following_primary() => self.election.rejoin(),
            _ => {}
        }
        // Only on a WELCOMEd link: before it, a PING would land between the primary's
        // CHALLENGE and our AUTH, and a primary with a secret refuses the link for it.
        if let Some(conn) = self.link.conn.filter(|_| self.link.ready) {
            // Withdrawn for a majority of supporters, and still promised: a primary that has
            // lost its lease (the slaves left it for us) releases us, so that we need not wait
            // for our promise to run out; one that holds it says no.
            let majority = 1 + self.election.supporters.len() > voters / 2;
            let session = self.link.session;
            if majority && self.following_primary() && self.election.wants_release(now, session) {
                out.send(conn, 0, Body::Release);
            }
            out.send(conn, 0, Body::Ping);
        }
        // Supporters wait for our TAKEOVER: keep them from taking our silence for death.
        for &conn in self.election.supporters.keys() {
            out.send(conn, 0, Body::Ping);
        }
        timers.insert(now + interval, Timer::Heartbeat);
    }

    /// Opening the link failed: withdraw our promise if the primary is gone (it answered
    /// before, or never did in `--heartbeat-misses` tries); try again next interval.
    pub fn link_failed(&mut self, why: &str, cfg: &Config, now: Instant) {
        let failures = self.link.failed();
        // The next master in turn: the primary may be another one now.
        self.next_target();
        if self.ever_linked {
            let why = format!("heartbeat link closed and cannot be reopened ({why})");
            self.election.withdraw(&why);
        } else if failures >= cfg.heartbeat_misses.max(1) {
            self.election
                .withdraw(&format!("primary unreachable since start ({why})"));
        }
        self.link.retry_at(now + cfg.heartbeat_interval);
    }

    /// A frame from the primary on the link: the handshake, then its stream and its PINGs.
    /// Returns whether the primary released us from our promises (we may campaign now).
    pub fn on_frame(&mut self, conn: ConnId, req: u64, body: Body, r: &mut Roles<'_>) -> bool {
        let now = r.now;
        let Some(body) = self.link.handshake(req, body, r.peers, r.out, now) else {
            return false;
        };
        // Only a primary that took us is heard: a refusal (a master that is no primary) is not.
        if self.link.ready {
            self.last_heard = Some(now);
        }
        match body {
            Body::Welcome {
                epoch,
                standby: true,
                ..
            } => {
                r.term.see_epoch(epoch);
                self.supporting = Some(now);
                info!(
                    "master {} is a standby that lost the primary too: supporting it",
                    self.link.target
                );
            }
            Body::Welcome { epoch, .. } => {
                self.ever_linked = true;
                self.primary = Some(self.link.target);
                // Its snapshot says again which slaves it has in service.
                r.slaves.forget_primary_view();
                r.term.see_epoch(epoch);
                for c in self.election.release_all() {
                    r.peers.close(c, r.out);
                }
                info!(
                    "following the primary at {} (epoch {epoch})",
                    self.link.target
                );
            }
            // A standby we support asks our vote.
            Body::Takeover {
                epoch, id, voters, ..
            } if self.supporting.is_some() => {
                let seen = r.term.epoch;
                let (verdict, stale) = self.election.grant(
                    epoch,
                    seen,
                    usize::from(voters),
                    &id,
                    r.cfg.lease * 2,
                    now,
                );
                let granted = match verdict {
                    Ok(()) => {
                        info!("voted for standby {id} to take over at epoch {epoch}");
                        r.term.see_epoch(epoch);
                        // Slaves that voted for a campaign of ours serve us: let them go.
                        for c in self.election.release_voters() {
                            r.peers.close(c, r.out);
                        }
                        true
                    }
                    Err(why) => {
                        info!("vote refused to standby {id} for epoch {epoch}: {why}");
                        false
                    }
                };
                let voters = self.election.told.min(u16::MAX as usize) as u16;
                let vote = Body::Vote {
                    granted,
                    stale,
                    voters,
                };
                r.out.send(conn, req, vote);
            }
            // The standby we support keeps us from taking its silence for death: no promise.
            Body::Ping if self.supporting.is_some() => r.out.send(conn, req, Body::Pong),
            // The primary's word on stale standbys and the voter count; answered, a promise.
            Body::Stale { gen, voters, ids } => {
                self.election.told(gen, voters, &ids);
                if self
                    .election
                    .promise(now, r.cfg.lease, self.link.session, req)
                {
                    r.out.send(conn, req, Body::Pong);
                }
            }
            Body::Sync {
                epoch,
                next_version,
                complete,
                events,
            } => {
                r.term.follow(epoch, next_version);
                for e in &events {
                    if let SyncEvent::Standby { id } = e {
                        self.learn(id, r.cfg);
                    }
                }
                apply(events, r.slaves, r.keys, r.doubts, now);
                if complete && r.doubts.incomplete {
                    r.doubts.incomplete = false;
                    info!("snapshot complete: {} keys", r.keys.len());
                }
                r.out.send(conn, req, Body::SyncAck);
            }
            // The primary's PING: answered, it is our promise (unless we withdrew it).
            Body::Ping => {
                if self
                    .election
                    .promise(now, r.cfg.lease, self.link.session, req)
                {
                    r.out.send(conn, req, Body::Pong);
                }
            }
            // The answer to our RELEASE: void the promises given on this link below `below`.
            Body::Released { below } => return self.election.release(self.link.session, below),
            Body::Pong => {}
            // A primary that stepped down serves nobody: following it would leave no primary.
            Body::Error {
                code: ErrorCode::NotPrimary,
                text,
            } => {
                let why = format!("the primary refuses this backup: {text}");
                self.election.withdraw(&why);
            }
            Body::Error { code, text } => {
                let why = format!("the primary refused this backup: {}: {text}", code.name());
                self.link.note_refusal(&why, now);
            }
            other => warn!("unexpected {:?} from the primary", other.opcode()),
        }
        false
    }
}

/// Apply the primary's changes to this backup's own tables. Every slave the backup knows is
/// absent from its point of view: it may come to this master with its copies after a takeover.
fn apply(
    events: Vec<SyncEvent>,
    slaves: &mut SlaveTable,
    keys: &mut KeyIndex,
    doubts: &mut Doubts,
    now: Instant,
) {
    for e in events {
        match e {
            SyncEvent::SlaveUp { id, boot } => {
                slaves.expect(&id, boot, now);
                slaves.set_up_at_primary(&id, true);
            }
            // Out of the primary's reach: still a holder that may come back, as it is here.
            SyncEvent::SlaveDown { id } => slaves.set_up_at_primary(&id, false),
            SyncEvent::SlaveLost { id } => {
                slaves.set_up_at_primary(&id, false);
                if let Some(idx) = slaves.by_id(&id) {
                    slaves.lose(idx);
                }
            }
            SyncEvent::Key {
                key,
                version,
                holders,
            } => {
                let idx: Vec<SlaveIdx> = holders.iter().map(|h| slaves.expect(h, 0, now)).collect();
                keys.commit(&key, version, &idx);
                doubts.settled(&key);
            }
            SyncEvent::Intent { key } => doubts.intent(&key),
            SyncEvent::Gone { key } => {
                keys.remove(&key);
                doubts.settled(&key);
            }
            SyncEvent::Standby { .. } => {}
        }
    }
}

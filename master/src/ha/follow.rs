//! The backup's side: poll the primary over the link, apply its SYNC stream to this master's
//! own slave table and key map, and decide when the primary is gone and it must take over.

use std::time::Instant;

use dsm_wire::{Body, ErrorCode, SyncEvent};
use log::{info, warn};

use crate::config::Config;
use crate::doubts::Doubts;
use crate::keymap::{KeyIndex, SlaveIdx};
use crate::outbox::{ConnId, Outbox};
use crate::slaves::SlaveTable;
use crate::timer::{Timer, Timers};

use super::link::Link;
use super::roles::Roles;

pub(crate) struct Follow {
    pub link: Link,
    /// When the primary last said anything on the link.
    last_heard: Option<Instant>,
    /// The primary has answered our HELLO at least once.
    ever_linked: bool,
}

impl Follow {
    pub fn new(now: Instant) -> Follow {
        Follow {
            link: Link::new(now),
            last_heard: None,
            ever_linked: false,
        }
    }

    /// The link is up; the primary's silence is counted from now if it never spoke.
    pub fn link_up(&mut self, now: Instant) {
        self.last_heard.get_or_insert(now);
    }

    /// The heartbeat timer: poll the primary, or say why to take over (it has been silent for
    /// `--heartbeat-misses` intervals, at least 3).
    pub fn on_heartbeat(
        &mut self,
        cfg: &Config,
        timers: &mut Timers,
        out: &mut Outbox,
        now: Instant,
    ) -> Option<String> {
        let interval = cfg.heartbeat_interval;
        if let (true, Some(heard)) = (self.ever_linked, self.last_heard) {
            let silent = now.saturating_duration_since(heard);
            if silent > interval * cfg.heartbeat_misses.max(3) {
                return Some(format!("no heartbeat answer for {} ms", silent.as_millis()));
            }
        }
        if let Some(conn) = self.link.conn {
            out.send(conn, 0, Body::Ping);
        }
        timers.insert(now + interval, Timer::Heartbeat);
        None
    }

    /// Opening the link failed: say why to take over if the primary is gone (it answered
    /// before, or never did in `--heartbeat-misses` tries), else try again next interval.
    pub fn link_failed(&mut self, why: &str, cfg: &Config, now: Instant) -> Option<String> {
        let failures = self.link.failed();
        if self.ever_linked {
            return Some(format!(
                "heartbeat link closed and cannot be reopened ({why})"
            ));
        }
        if failures >= cfg.heartbeat_misses.max(1) {
            return Some(format!("primary unreachable since start ({why})"));
        }
        self.link.retry_at(now + cfg.heartbeat_interval);
        None
    }

    /// A frame from the primary on the link: the handshake, then its stream. Returns why to
    /// take over, if it says we must.
    pub fn on_frame(
        &mut self,
        conn: ConnId,
        req: u64,
        body: Body,
        r: &mut Roles<'_>,
    ) -> Option<String> {
        let now = r.now;
        self.last_heard = Some(now);
        let body = self.link.handshake(req, body, r.peers, r.out, now)?;
        match body {
            Body::Welcome { epoch, .. } => {
                self.ever_linked = true;
                r.term.see_epoch(epoch);
                info!("following the primary (epoch {epoch})");
            }
            Body::Sync {
                epoch,
                next_version,
                complete,
                events,
            } => {
                r.term.follow(epoch, next_version);
                apply(events, r.slaves, r.keys, r.doubts, now);
                if complete && r.doubts.incomplete {
                    r.doubts.incomplete = false;
                    info!("snapshot complete: {} keys", r.keys.len());
                }
                r.out.send(conn, req, Body::SyncAck);
            }
            Body::Pong => {}
            // A primary that stepped down (it lost us for too long: we were frozen or cut off)
            // serves nobody; following it would leave no primary at all.
            Body::Error {
                code: ErrorCode::NotPrimary,
                text,
            } => return Some(format!("the primary refuses this backup: {text}")),
            Body::Error { code, text } => {
                let why = format!("the primary refused this backup: {}: {text}", code.name());
                self.link.note_refusal(&why, now);
            }
            other => warn!("unexpected {:?} from the primary", other.opcode()),
        }
        None
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
            }
            // Out of the primary's reach: still a holder that may come back, as it is here.
            SyncEvent::SlaveDown { .. } => {}
            SyncEvent::SlaveLost { id } => {
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
        }
    }
}

//! Slaves joining and leaving: a registration (the same process coming back, or a new one
//! that reports what it holds first), its report, a slave out of reach, the PING sweep, a slave
//! out of reach long enough to copy what it held elsewhere or to give it up, the operator
//! forgetting one, and the recovery of a restarted master that waits for its roster. Each
//! updates the slave table, welcomes or closes the connection and tells the backup; what the
//! operations must do about it is left as an [`Effect`]. A slave is never told to drop its
//! data: out of reach is not gone.

use std::time::Instant;

use dsm_auth::Terms;
use dsm_wire::{Body, ErrorCode, SyncEvent};
use log::{info, warn};

use crate::config::Config;
use crate::effect::Effect;
use crate::ha::stream::Streams;
use crate::handshake::Gate;
use crate::idmap::{ConnId, IdMap};
use crate::inventory::{Reconcile, Tally};
use crate::keymap::{KeyIndex, SlaveIdx};
use crate::peers::Peer;
use crate::recovery::Recovery;
use crate::repair::Repairs;
use crate::slaves::{SlaveTable, State};
use crate::term::Term;
use crate::timer::{Timer, Timers};

/// Past the lease, how long writes wait for slaves when every one was dropped.
const ALL_GONE_MARGIN: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) struct Members<'a> {
    pub now: Instant,
    pub cfg: &'a Config,
    pub term: &'a mut Term,
    pub slaves: &'a mut SlaveTable,
    /// The peer table and outbox, with the handshake's WELCOME.
    pub gate: Gate<'a>,
    pub stream: Option<&'a mut Streams>,
    pub repairs: &'a mut Repairs,
    pub keys: &'a mut KeyIndex,
    pub timers: &'a mut Timers,
    pub effects: &'a mut Vec<Effect>,
    pub recovery: &'a mut Option<Recovery>,
    /// The map may lack keys (`Doubts::incomplete`): a primary that took over without its
    /// whole snapshot, until its recovery ends.
    pub incomplete: &'a mut bool,
    /// Reports under way, by slave.
    pub reports: &'a mut IdMap<SlaveIdx, Tally>,
    /// Set when the roster or the epoch changed (`disk.rs` keeps them).
    pub changed: &'a mut bool,
}

impl Members<'_> {
    /// Register a slave whose HELLO passed and that this master may take (no other process
    /// of its id is connected), and WELCOME it. The same process coming back (same `boot`) is
    /// in service at once; another reports what it holds first.
    pub fn join(&mut self, conn: ConnId, req: u64, id: &str, boot: u64, seen: u64) {
        // While recovering, every slave reports what it holds: the map is not to be trusted.
        let returning = self.recovery.is_none() && self.slaves.returning(id, boot).is_some();
        // WELCOME first: a slave takes nothing from the master before it, and the copies and
        // restarted writes that follow may send this very slave a FETCH or STORE.
        let terms = Terms {
            epoch: self.term.epoch,
            inventory: !returning,
            standby: false,
            lease_ms: self.cfg.lease.as_millis() as u32,
        };
        self.gate.welcome(conn, req, terms);
        self.adopt(conn, id, boot, seen, !returning);
    }

    /// Take a slave as one of ours on `conn`, as [`Members::join`] after its WELCOME (or a
    /// supporter that voted for this master, after its TAKEOVER); `reports`: it was asked to
    /// report what it holds. Returns its index.
    pub fn adopt(
        &mut self,
        conn: ConnId,
        id: &str,
        boot: u64,
        seen: u64,
        reports: bool,
    ) -> SlaveIdx {
        let addr = self.gate.peers.addr(conn).to_string();
        let returning = match reports {
            true => None,
            false => self.slaves.returning(id, boot),
        };
        if let Some(r) = self.recovery.as_mut() {
            match returning {
                Some(_) => r.saw_epoch(seen),
                None => r.joined(id, seen),
            }
        }
        let idx = match returning {
            Some(idx) => {
                self.slaves.resume(idx, conn, addr.clone(), self.now);
                let live = self.slaves.live_count();
                info!("slave '{id}' is back from {addr}, the same process: its copies count again ({live} live)");
                idx
            }
            None => {
                info!("slave '{id}' registered from {addr}; it reports what it holds first");
                self.slaves.join(id, boot, conn, addr, self.now)
            }
        };
        self.slaves.get_mut(idx).epoch_seen = seen;
        self.gate.peers.set_kind(conn, Peer::Slave(idx));
        match returning {
            Some(_) => self.in_service(id, boot),
            None => {
                self.reports.insert(idx, Tally::default());
            }
        }
        idx
    }

    /// One INVENTORY frame from slave `idx`; the last (`done`) puts it in service.
    pub fn report(&mut self, idx: SlaveIdx, done: bool, entries: Vec<(Vec<u8>, u64)>) {
        let s = self.slaves.get(idx);
        if s.state != State::Joining {
            warn!(
                "slave '{}' sent an INVENTORY nobody asked for; ignored",
                s.id
            );
            return;
        }
        let conn = s.conn;
        let ceiling = match self.recovery {
            Some(_) => crate::term::ceiling_after(s.epoch_seen),
            None => self.term.next_version(),
        };
        let mut tally = self.reports.remove(&idx).unwrap_or_default();
        let refused_before = tally.refused;
        let mut r = Reconcile {
            keys: self.keys,
            slaves: self.slaves,
            out: self.gate.out,
            stream: self.stream.as_deref_mut(),
            ceiling,
        };
        r.entries(idx, conn, entries, &mut tally);
        // Said at the first such frame of a report, and counted in its last line.
        if refused_before == 0 && tally.refused > 0 {
            warn!(
                "slave '{}' reports keys at versions no master handed out (up to {}, the \
                 ceiling is {ceiling}): refused, and it is not counted as their holder",
                self.slaves.get(idx).id,
                tally.refused_max
            );
        }
        if !done {
            self.reports.insert(idx, tally);
            return;
        }
        let older = self.slaves.joined(idx);
        let s = self.slaves.get(idx);
        let (id, boot) = (s.id.clone(), s.boot);
        let live = self.slaves.live_count();
        let was = match older {
            Some(_) => "; what an earlier process of it held and this one did not report is gone",
            None => "",
        };
        info!(
            "slave '{id}' reported {} keys held ({} adopted as newer, {} stale dropped, {} refused as never handed out) and is in service{was} ({live} live)",
            tally.held + tally.adopted,
            tally.adopted,
            tally.stale,
            tally.refused
        );
        self.in_service(&id, boot);
        self.recovered(&id);
    }

    fn in_service(&mut self, id: &str, boot: u64) {
        self.tell_backup(SyncEvent::SlaveUp {
            id: id.to_string(),
            boot,
        });
        *self.changed = true;
        self.schedule_repairs();
        self.effects.push(Effect::Membership);
    }

    /// Take a slave out of service: close it and tell the backup. Its copies count as out of
    /// reach, not gone: after `--repair-after-ms` they are copied elsewhere, after
    /// `--slave-lost-after-ms` given up.
    pub fn drop(&mut self, idx: SlaveIdx, why: &str) {
        let Some((conn, id)) = self.slaves.mark_absent(idx, self.now) else {
            return;
        };
        let report = self.reports.remove(&idx);
        // Gone before the end of its first report: nothing was counted on it but what its
        // report showed, so unless that made it the holder of a newer version, it is
        // forgotten at once (not while recovering: the recovery waits for it by id).
        if !self.slaves.get(idx).served
            && report.is_some_and(|t| t.adopted == 0)
            && self.recovery.is_none()
        {
            self.slaves.lose(idx);
            info!(
                "slave '{id}' left before it finished reporting what it holds ({why}): forgotten"
            );
            self.gate.peers.close(conn, self.gate.out);
            self.effects.push(Effect::Dropped(idx));
            return;
        }
        self.tell_backup(SyncEvent::SlaveDown { id: id.clone() });
        let live = self.slaves.live_count();
        warn!("slave '{id}' dropped: {why}; its copies count as out of reach until it is back ({live} live left)");
        // Alive and dropped by a master that is alive too: it may register again at once.
        // (Dropped because its connection closed, the event loop forgets what is queued for
        // it: `Server`'s close, as for every peer.)
        let text = format!("{}{why}; register again", dsm_wire::DROPPED);
        self.gate
            .out
            .send(conn, 0, Body::error(ErrorCode::Unavailable, text));
        self.gate.peers.close(conn, self.gate.out);
        self.wait_for(idx);
        if live == 0 {
            // Every slave gone: a blink (each stopped past the ACK timeout, say), or this
            // master cut off from them. Writes wait for them a lease and a little (as after a
            // takeover) instead of failing NO_SLAVES at once: back, they go on; cut off, this
            // master has lost its lease by then, and an exactly-once write is sent on to the
            // primary the slaves elect (`ops::finish`) rather than left with no outcome.
            let until = self.now + self.cfg.lease + ALL_GONE_MARGIN;
            self.slaves.start_grace(until);
            self.timers.insert(until, Timer::GraceEnd);
        }
        self.effects.push(Effect::Dropped(idx));
    }

    /// Slave `idx` missed a deadline (`why`) while still talking: it stays in service, and
    /// reads prefer other holders for a while (`slaves::SUSPECT_FOR`).
    pub fn suspect(&mut self, idx: SlaveIdx, why: &str) {
        if self.slaves.suspect(idx, self.now) {
            let id = &self.slaves.get(idx).id;
            info!(
                "slave '{id}' is slow ({why}) but still talking: it stays in service; reads \
                 and new writes prefer other slaves for {} ms",
                crate::slaves::SUSPECT_FOR.as_millis()
            );
        }
    }

    /// Slave `idx` is out of reach from now: copy what it held after `--repair-after-ms`,
    /// give it up after `--slave-lost-after-ms`.
    pub fn wait_for(&mut self, idx: SlaveIdx) {
        let now = self.now;
        self.timers
            .insert(now + self.cfg.repair_after, Timer::Absent(idx));
        self.timers
            .insert(now + self.cfg.slave_lost_after, Timer::Absent(idx));
    }

    /// A slave has been out of reach a while: copy what it held elsewhere, or give it up.
    pub fn absent_for_long(&mut self, idx: SlaveIdx) {
        let Some(State::Absent { since }) = self.slaves.state(idx) else {
            return;
        };
        let away = self.now.saturating_duration_since(since);
        if away >= self.cfg.slave_lost_after {
            let why = format!(
                "out of reach for {} s (--slave-lost-after-ms)",
                away.as_secs()
            );
            return self.lose(idx, &why);
        }
        if away >= self.cfg.repair_after {
            let id = &self.slaves.get(idx).id;
            info!(
                "slave '{id}' out of reach for {} ms: copying what it held to other slaves",
                away.as_millis()
            );
            self.schedule_repairs();
            self.effects.push(Effect::Membership);
        }
    }

    /// The operator says slave `id` is gone for good. Refused for a connected slave.
    pub fn forget(&mut self, id: &str) -> Result<(), String> {
        let Some(idx) = self.slaves.by_id(id) else {
            return Err(format!("no slave '{id}' is known (or it is already lost)"));
        };
        if let State::Live | State::Joining = self.slaves.get(idx).state {
            let addr = &self.slaves.get(idx).addr;
            return Err(format!(
                "slave '{id}' is connected from {addr}: stop it first, then forget it"
            ));
        }
        self.lose(idx, "forgotten by the operator");
        Ok(())
    }

    fn lose(&mut self, idx: SlaveIdx, why: &str) {
        self.slaves.lose(idx);
        let id = self.slaves.get(idx).id.clone();
        warn!("slave '{id}' lost: {why}; its copies no longer count, and keys only it held read NOT_FOUND");
        self.tell_backup(SyncEvent::SlaveLost { id: id.clone() });
        *self.changed = true;
        self.schedule_repairs();
        self.effects.push(Effect::Membership);
        self.recovered(&id);
    }

    /// Slave `id` has reported, or is given up: a restarted master may be done waiting.
    fn recovered(&mut self, id: &str) {
        if let Some(r) = self.recovery.as_mut() {
            r.done_with(id);
        }
        self.end_recovery();
    }

    /// Start serving if the recovery is over (every awaited slave reported, the discovery
    /// window passed), at an epoch above any this master or a slave has seen.
    pub fn end_recovery(&mut self) {
        let Some(r) = self.recovery.as_ref() else {
            return;
        };
        if !r.is_over(self.now) {
            return;
        }
        let epoch = r.epoch_seen() + 1;
        *self.recovery = None;
        self.term.restart_at(epoch);
        *self.changed = true;
        self.schedule_repairs();
        // Every slave that may hold a key has reported it, as after a restart: the map is
        // whole (a slave that registers later reports what it holds first), so SCAN, a READ
        // of a key it lacks (NOT_FOUND without asking every slave) and a standby's snapshot
        // may trust it again.
        // (No standby is attached: a recovering master refuses them, see `attach_backup`.)
        let whole = std::mem::take(self.incomplete);
        info!(
            "recovered: {} keys from {} slaves; serving at epoch {epoch}{}",
            self.keys.len(),
            self.slaves.live_count(),
            if whole {
                " (the map this master took over without is whole again)"
            } else {
                ""
            }
        );
    }

    /// Every `--ping-interval-ms`: PING idle slaves; those that left 3 unanswered are to be
    /// dropped.
    pub fn ping_sweep(&mut self) {
        let interval = self.cfg.ping_interval;
        let round = self.slaves.ping_round(self.now, interval);
        for conn in round.ping {
            self.gate.out.send(conn, 0, Body::Ping);
        }
        for slave in round.silent {
            let why = "3 PINGs unanswered".to_string();
            self.effects.push(Effect::DropSlave { slave, why });
        }
        self.timers.insert(self.now + interval, Timer::PingSweep);
    }

    /// After a takeover: writes short of slaves no longer wait for the old primary's.
    pub fn end_grace(&mut self) {
        if !self.slaves.end_grace(self.now) {
            return;
        }
        self.schedule_repairs();
        self.effects.push(Effect::Membership);
    }

    /// Queue copies of the keys short of R copies that count. Not while a restarted master
    /// waits for its roster: a key reported by one holder so far is not short, its other
    /// holders have not reported yet (`recovered` queues what is short once all have).
    pub fn schedule_repairs(&mut self) {
        if self.recovery.is_some() {
            return;
        }
        let (cfg, now) = (self.cfg, self.now);
        self.repairs
            .schedule(self.keys, self.slaves, cfg.replicas, now, cfg.repair_after);
    }

    fn tell_backup(&mut self, e: SyncEvent) {
        if let Some(stream) = self.stream.as_deref_mut() {
            stream.push(e);
        }
    }
}

//! Slaves joining and leaving: a registration (fresh, or a slave the old primary used coming
//! back with its data), a slave declared dead, the PING sweep, the end of a takeover's grace.
//! Each updates the slave table, welcomes or closes the connection and tells the backup; the
//! operations' part (failing what a dead slave had, copies, deferred writes) is `Master`'s to
//! route.

use std::time::Instant;

use dsm_wire::{Body, SyncEvent};
use log::{info, warn};

use crate::config::Config;
use crate::effect::Effect;
use crate::ha::stream::Stream;
use crate::handshake::Gate;
use crate::idmap::ConnId;
use crate::keymap::{KeyIndex, SlaveIdx};
use crate::peers::Peer;
use crate::repair::Repairs;
use crate::slaves::SlaveTable;
use crate::timer::{Timer, Timers};

pub(crate) struct Members<'a> {
    pub now: Instant,
    pub cfg: &'a Config,
    pub slaves: &'a mut SlaveTable,
    /// The peer table and outbox, with the handshake's WELCOME.
    pub gate: Gate<'a>,
    pub stream: Option<&'a mut Stream>,
    pub repairs: &'a mut Repairs,
    pub keys: &'a KeyIndex,
    pub timers: &'a mut Timers,
    pub effects: &'a mut Vec<Effect>,
}

impl Members<'_> {
    /// Register a slave whose HELLO passed and that this master may take (no live slave has
    /// its id), and WELCOME it at `epoch`. Returns whether it is a slave the old primary used,
    /// back with its data.
    pub fn join(&mut self, conn: ConnId, req: u64, id: &str, epoch: u64) -> bool {
        let addr = self.gate.peers.addr(conn).to_string();
        // A slave the old primary used keeps its data; any other starts empty.
        let (idx, reset) = match self.slaves.awaiting_by_id(id) {
            Some(idx) => {
                self.slaves.activate(idx, conn, addr.clone(), self.now);
                (idx, false)
            }
            None => (self.slaves.register(id, addr.clone(), conn, self.now), true),
        };
        if let Some(stream) = self.stream.as_deref_mut() {
            stream.push(SyncEvent::SlaveUp { id: id.to_string() });
        }
        self.gate.peers.set_kind(conn, Peer::Slave(idx));
        let live = self.slaves.live_count();
        info!("slave '{id}' registered from {addr} ({live} live)");
        // WELCOME first: a slave takes nothing from the master before it, and the copies and
        // restarted writes that follow may send this very slave a FETCH or STORE.
        self.gate.welcome(conn, req, epoch, reset);
        // Keys left with fewer than R copies while slaves were missing get them now.
        self.schedule_repairs();
        !reset
    }

    /// Declare a slave dead: close it and tell the backup. Returns false if it was not live.
    pub fn drop(&mut self, idx: SlaveIdx, why: &str) -> bool {
        let Some((conn, id)) = self.slaves.mark_dead(idx) else {
            return false;
        };
        if let Some(stream) = self.stream.as_deref_mut() {
            stream.push(SyncEvent::SlaveDown { id: id.clone() });
        }
        let live = self.slaves.live_count();
        warn!("slave '{id}' dropped: {why} ({live} live left)");
        self.gate.peers.close(conn, self.gate.out);
        true
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

    /// After a takeover: stop waiting for slaves known from the old primary.
    pub fn end_grace(&mut self) {
        let gone = self.slaves.end_grace();
        if gone > 0 {
            warn!(
                "{gone} slaves known from the old primary did not come back; their copies are gone"
            );
        }
        self.schedule_repairs();
    }

    /// Queue copies of the keys short of R live copies.
    pub fn schedule_repairs(&mut self) {
        self.repairs
            .schedule(self.keys, self.slaves, self.cfg.replicas);
    }
}

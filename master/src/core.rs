//! The state the master's components share, and the borrowed view of it each one is given:
//! the request path's [`Ctx`], high availability's [`Roles`], the handshake's [`Gate`] and
//! membership's [`Members`]. (As raft-rs's `Raft` keeps its `RaftCore` apart from the
//! `ProgressTracker`: the operations and the HA state live beside this in `Master`, so that
//! each can act on a view of the rest.)

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::ctx::Ctx;
use crate::doubts::Doubts;
use crate::effect::Effect;
use crate::ha::stream::Stream;
use crate::ha::Roles;
use crate::handshake::{Gate, Handshakes};
use crate::keymap::KeyIndex;
use crate::members::Members;
use crate::outbox::{Outbox, ValuePool};
use crate::peers::Peers;
use crate::repair::Repairs;
use crate::slaves::SlaveTable;
use crate::term::Term;
use crate::timer::{Timer, Timers};

pub(crate) struct Core {
    pub cfg: Config,
    pub term: Term,
    pub peers: Peers,
    pub handshakes: Handshakes,
    pub slaves: SlaveTable,
    pub keys: KeyIndex,
    pub doubts: Doubts,
    pub repairs: Repairs,
    pub timers: Timers,
    pub out: Outbox,
    pub pool: ValuePool,
    /// What components left for `Master` to route (see [`Effect`]).
    pub effects: Vec<Effect>,
}

impl Core {
    pub fn new(cfg: Config, now: Instant) -> Core {
        let mut timers = Timers::new(now, Duration::from_millis(1), 4096);
        timers.insert(now + cfg.ping_interval, Timer::PingSweep);
        Core {
            cfg,
            term: Term::default(),
            peers: Peers::default(),
            handshakes: Handshakes::default(),
            slaves: SlaveTable::default(),
            keys: KeyIndex::default(),
            doubts: Doubts::default(),
            repairs: Repairs::default(),
            timers,
            out: Outbox::default(),
            pool: ValuePool::default(),
            effects: Vec::new(),
        }
    }

    /// The request path's view (`stream`: the backup's, if one is attached).
    pub fn ctx<'a>(&'a mut self, stream: Option<&'a mut Stream>, now: Instant) -> Ctx<'a> {
        Ctx {
            now,
            cfg: &self.cfg,
            term: &mut self.term,
            out: &mut self.out,
            timers: &mut self.timers,
            slaves: &self.slaves,
            keys: &mut self.keys,
            doubts: &mut self.doubts,
            stream,
            repairs: &mut self.repairs,
            effects: &mut self.effects,
        }
    }

    /// High availability's view.
    pub fn roles(&mut self, now: Instant) -> Roles<'_> {
        Roles {
            now,
            cfg: &self.cfg,
            term: &mut self.term,
            slaves: &mut self.slaves,
            keys: &mut self.keys,
            doubts: &mut self.doubts,
            timers: &mut self.timers,
            peers: &mut self.peers,
            out: &mut self.out,
            effects: &mut self.effects,
        }
    }

    /// The handshake's view.
    pub fn gate(&mut self) -> Gate<'_> {
        Gate {
            cfg: &self.cfg,
            peers: &mut self.peers,
            out: &mut self.out,
            handshakes: &mut self.handshakes,
        }
    }

    /// Membership's view (`stream`: the backup's, if one is attached).
    pub fn members<'a>(&'a mut self, stream: Option<&'a mut Stream>, now: Instant) -> Members<'a> {
        Members {
            now,
            cfg: &self.cfg,
            slaves: &mut self.slaves,
            gate: Gate {
                cfg: &self.cfg,
                peers: &mut self.peers,
                out: &mut self.out,
                handshakes: &mut self.handshakes,
            },
            stream,
            repairs: &mut self.repairs,
            keys: &self.keys,
            timers: &mut self.timers,
            effects: &mut self.effects,
        }
    }
}

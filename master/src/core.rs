//! The state the master's components share, and the borrowed view of it each one is given:
//! the request path's [`Ctx`], high availability's [`Roles`], the handshake's [`Gate`] and
//! membership's [`Members`]. (As raft-rs's `Raft` keeps its `RaftCore` apart from the
//! `ProgressTracker`: the operations and the HA state live beside this in `Master`, so that
//! each can act on a view of the rest.)

use std::time::{Duration, Instant};

use log::info;

use crate::config::Config;
use crate::ctx::Ctx;
use crate::disk::MasterState;
use crate::doubts::Doubts;
use crate::effect::Effect;
use crate::ha::stream::Streams;
use crate::ha::Roles;
use crate::handshake::{Gate, Handshakes};
use crate::idmap::IdMap;
use crate::inventory::Tally;
use crate::keymap::{KeyIndex, SlaveIdx};
use crate::members::Members;
use crate::outbox::{Outbox, ValuePool};
use crate::peers::Peers;
use crate::recovery::Recovery;
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
    /// Set while a restarted master waits for its roster to report.
    pub recovery: Option<Recovery>,
    /// Slave reports (INVENTORY) under way.
    pub reports: IdMap<SlaveIdx, Tally>,
    /// The roster or the epoch changed since `saved`.
    pub changed: bool,
    /// What was last kept in `--data-dir`.
    pub saved: Option<MasterState>,
    /// A slave that registered dials more than one master (its HELLO said so): a standby this
    /// master does not know of may exist, and that slave could elect it (see [`Core::voters`]).
    pub unknown_masters: bool,
    /// The buffer of the frame being handled, while `Master::on_decoded_in` handles it.
    pub frame: Option<std::rc::Rc<Vec<u8>>>,
}

impl Core {
    pub fn new(cfg: Config, now: Instant) -> Core {
        let mut timers = Timers::new(now, Duration::from_millis(1), 4096);
        timers.insert(now + cfg.ping_interval, Timer::PingSweep);
        timers.insert(now, Timer::Renew);
        let keys = KeyIndex::with_read_cache(cfg.read_cache, cfg.read_cache_large);
        Core {
            cfg,
            term: Term::default(),
            peers: Peers::default(),
            handshakes: Handshakes::default(),
            slaves: SlaveTable::default(),
            keys,
            doubts: Doubts::default(),
            repairs: Repairs::default(),
            timers,
            out: Outbox::default(),
            pool: ValuePool::default(),
            effects: Vec::new(),
            recovery: None,
            reports: IdMap::default(),
            changed: false,
            saved: None,
            unknown_masters: false,
            frame: None,
        }
    }

    /// Start from what `--data-dir` kept: a roster to wait for, or, with none, a window to
    /// discover the slaves in (see `recovery.rs`). A backup learns both from its primary.
    pub fn restore(&mut self, now: Instant) {
        let persisted = self.cfg.persisted.clone().unwrap_or_default();
        self.term.see_epoch(persisted.epoch);
        self.saved = self.cfg.persisted.clone();
        // A standby learns both from the primary it follows (or recovers once elected).
        if !self.cfg.other_masters().is_empty() {
            return;
        }
        if !persisted.roster.is_empty() {
            info!(
                "restarted with a roster of {} slaves (epoch {}): waiting for each to report \
                 what it holds before serving",
                persisted.roster.len(),
                persisted.epoch
            );
        }
        self.recover(&persisted.roster, persisted.epoch, false, now);
        self.changed = true;
    }

    /// A standby elected without its primary's full state (it never got a whole snapshot, or
    /// a slave told it it is out of step) knows too little to serve: it recovers like a
    /// restarted master, from the slaves it knows of (those of its snapshot, of its
    /// `--data-dir`'s roster, and `supporters`, which voted for it). With no snapshot at all it
    /// also waits `--discover-ms` for slaves it cannot know of.
    pub fn recover_after_takeover(&mut self, now: Instant, supporters: &[String]) {
        let mut roster: Vec<String> = self.slaves.known().map(|(_, s)| s.id.clone()).collect();
        if let Some(kept) = &self.cfg.persisted {
            roster.extend(kept.roster.iter().cloned());
        }
        roster.extend(supporters.iter().cloned());
        roster.sort();
        roster.dedup();
        let window = self.doubts.incomplete;
        info!(
            "elected without the primary's full state: waiting for {} known slaves to report \
             what they hold{} before serving",
            roster.len(),
            if window {
                ", and for others to register"
            } else {
                ""
            }
        );
        self.recover(&roster, self.term.epoch, window, now);
    }

    /// Wait for the slaves of `roster` to report what they hold, and with none (or with
    /// `window`) discover them for `--discover-ms`; then serve at an epoch above `kept` and
    /// any a slave has seen.
    fn recover(&mut self, roster: &[String], kept: u64, window: bool, now: Instant) {
        for id in roster {
            let idx = self.slaves.expect(id, 0, now);
            self.members(None, now).wait_for(idx);
        }
        let mut recovery = Recovery::new(roster, kept);
        if roster.is_empty() || window {
            let until = now + self.cfg.discover;
            recovery.discover_until(until);
            self.timers.insert(until, Timer::Discovered);
            if !self.cfg.discover.is_zero() {
                info!(
                    "taking what registering slaves hold for {} ms before serving \
                     (--discover-ms)",
                    self.cfg.discover.as_millis()
                );
            }
        }
        self.recovery = Some(recovery);
        self.members(None, now).end_recovery();
    }

    /// The cluster's voters: the masters (this one, the others it was told of, and the
    /// standbys that attached to it, `standbys`), and the slaves of the roster, by id.
    ///
    /// A lone master (no other master known) counts itself and its slaves, and tells its
    /// slaves one more (STALE): a standby it does not know of may be out there, one a slave
    /// that dials more than one master could support. Its slaves refuse their votes to a
    /// candidate that counts fewer than that, so a candidate needs `(S + 2) / 2` of the `S`
    /// slaves, the lone primary `(S + 1) / 2` of them for its lease: more than `S` together,
    /// the two cannot both have a majority. While no slave dials another master, nobody can
    /// elect another, and a lone master counts only itself (it needs no lease). Returns the
    /// voters and the count told.
    pub fn voters(&self, standbys: &[std::net::SocketAddr]) -> (usize, usize) {
        let mut masters = self.cfg.other_masters();
        for hb in standbys {
            if !masters.contains(hb) && *hb != self.cfg.heartbeat {
                masters.push(*hb);
            }
        }
        let mut ids: Vec<&str> = self.slaves.known().map(|(_, s)| s.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let slaves = ids.len();
        if masters.is_empty() {
            let voters = if self.unknown_masters { 1 + slaves } else { 1 };
            return (voters, 2 + slaves);
        }
        let voters = 1 + masters.len() + slaves;
        (voters, voters)
    }

    /// What `--data-dir` should hold now, if it changed since it was last written.
    pub fn state_to_keep(&mut self) -> Option<MasterState> {
        if !std::mem::take(&mut self.changed) || self.cfg.data_dir.is_none() {
            return None;
        }
        let mut roster: Vec<String> = self.slaves.known().map(|(_, s)| s.id.clone()).collect();
        roster.sort();
        roster.dedup();
        let state = MasterState {
            epoch: self.term.epoch,
            roster,
        };
        if self.saved.as_ref() == Some(&state) {
            return None;
        }
        self.saved = Some(state.clone());
        Some(state)
    }

    /// The request path's view (`stream`: the backup's, if one is attached).
    pub fn ctx<'a>(
        &'a mut self,
        stream: Option<&'a mut Streams>,
        settled: bool,
        now: Instant,
    ) -> Ctx<'a> {
        Ctx {
            now,
            settled,
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
            frame: self.frame.as_ref(),
            pool: &mut self.pool,
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
    pub fn members<'a>(&'a mut self, stream: Option<&'a mut Streams>, now: Instant) -> Members<'a> {
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
            keys: &mut self.keys,
            timers: &mut self.timers,
            effects: &mut self.effects,
            term: &mut self.term,
            recovery: &mut self.recovery,
            incomplete: &mut self.doubts.incomplete,
            reports: &mut self.reports,
            changed: &mut self.changed,
        }
    }
}

//! The master's table of slaves (replicas): who is live, where to reach them, when each was
//! last heard, the slaves a new primary waits for after a takeover (and until when), and the
//! rendezvous ranking of live slaves for a key.

use std::time::{Duration, Instant};

use crate::idmap::ConnId;
use crate::keymap::SlaveIdx;
use crate::placement;

/// A slave that has not answered this many PINGs in a row is dropped.
const PINGS_UNANSWERED: u32 = 3;

/// Slaves in rendezvous order for one key ([`SlaveTable::ranked_live`]).
pub type Ranked = crate::few::Few<SlaveIdx, 4>;

#[derive(Debug)]
pub struct Replica {
    pub id: String,
    pub addr: String,
    pub conn: ConnId,
    pub live: bool,
    /// `stable_hash(id)`, cached for ranking.
    pub hash: u64,
    pub last_heard: Instant,
    pub unanswered_pings: u32,
    /// Known from the primary's SYNC stream and trusted to hold its data, but not (yet)
    /// connected to this master. Not live: nothing is sent to it until it registers.
    pub awaiting: bool,
}

#[derive(Default)]
pub struct SlaveTable {
    list: Vec<Replica>,
    /// After a takeover: until then, slaves known from the old primary may still re-register
    /// with their data, so their keys are waited for rather than given up.
    grace_until: Option<Instant>,
}

/// What a PING round decided ([`SlaveTable::ping_round`]).
#[derive(Default)]
pub struct PingRound {
    /// Slaves that left too many PINGs unanswered: to be dropped.
    pub silent: Vec<SlaveIdx>,
    /// Connections of idle slaves to PING now.
    pub ping: Vec<ConnId>,
}

impl SlaveTable {
    /// Add a slave that just said HELLO. Every registration gets a new index, even for a known
    /// id: data the slave held under an older index is not counted on again.
    pub fn register(&mut self, id: &str, addr: String, conn: ConnId, now: Instant) -> SlaveIdx {
        self.list.push(Replica {
            id: id.to_string(),
            addr,
            conn,
            live: true,
            hash: placement::stable_hash(id.as_bytes()),
            last_heard: now,
            unanswered_pings: 0,
            awaiting: false,
        });
        (self.list.len() - 1) as SlaveIdx
    }

    /// A backup master learns of a slave the primary uses (see [`Replica::awaiting`]).
    pub fn register_awaiting(&mut self, id: &str, now: Instant) -> SlaveIdx {
        if let Some(idx) = self.awaiting_by_id(id) {
            return idx;
        }
        let idx = self.register(id, String::new(), usize::MAX, now);
        let s = self.get_mut(idx);
        s.live = false;
        s.awaiting = true;
        idx
    }

    pub fn awaiting_by_id(&self, id: &str) -> Option<SlaveIdx> {
        self.list
            .iter()
            .rposition(|s| s.awaiting && s.id == id)
            .map(|i| i as SlaveIdx)
    }

    /// An awaited slave registered: it becomes live with the data it was known to hold.
    pub fn activate(&mut self, idx: SlaveIdx, conn: ConnId, addr: String, now: Instant) {
        let s = self.get_mut(idx);
        s.awaiting = false;
        s.live = true;
        s.conn = conn;
        s.addr = addr;
        s.last_heard = now;
        s.unanswered_pings = 0;
    }

    pub fn is_awaiting(&self, idx: SlaveIdx) -> bool {
        self.list.get(idx as usize).is_some_and(|s| s.awaiting)
    }

    pub fn any_awaiting(&self) -> bool {
        self.list.iter().any(|s| s.awaiting)
    }

    /// A takeover: wait for the slaves known from the old primary until `until`.
    pub fn start_grace(&mut self, until: Instant) {
        self.grace_until = Some(until);
    }

    /// The grace ended: stop waiting for slaves that never came back; their data is given up.
    /// Returns how many were given up.
    pub fn end_grace(&mut self) -> usize {
        self.grace_until = None;
        let mut n = 0;
        for s in self.list.iter_mut().filter(|s| s.awaiting) {
            s.awaiting = false;
            n += 1;
        }
        n
    }

    fn in_grace(&self, now: Instant) -> bool {
        self.grace_until.is_some_and(|t| now < t)
    }

    /// Whether slaves known from the old primary may still come back (a write short of
    /// slaves waits for them, a probe does not decide without them).
    pub fn may_return(&self, now: Instant) -> bool {
        self.in_grace(now) && self.any_awaiting()
    }

    /// Whether one of `holders` may still come back with its copy.
    pub fn holder_may_return(&self, holders: &[SlaveIdx], now: Instant) -> bool {
        self.in_grace(now) && holders.iter().any(|&h| self.is_awaiting(h))
    }

    /// The slave said something: it is alive, whatever PINGs it left unanswered.
    pub fn heard(&mut self, idx: SlaveIdx, now: Instant) {
        let s = self.get_mut(idx);
        s.last_heard = now;
        s.unanswered_pings = 0;
    }

    /// Take the slave out of service (it is dead, or this master no longer serves). Returns
    /// its connection and id, or `None` if it was not live.
    pub fn mark_dead(&mut self, idx: SlaveIdx) -> Option<(ConnId, String)> {
        if !self.is_live(idx) {
            return None;
        }
        let s = self.get_mut(idx);
        s.live = false;
        Some((s.conn, s.id.clone()))
    }

    /// One round of the PING sweep: slaves silent for `interval` are PINGed (and counted),
    /// those that left too many PINGs unanswered are to be dropped.
    pub fn ping_round(&mut self, now: Instant, interval: Duration) -> PingRound {
        let mut round = PingRound::default();
        for (i, s) in self.list.iter_mut().enumerate().filter(|(_, s)| s.live) {
            if s.unanswered_pings >= PINGS_UNANSWERED {
                round.silent.push(i as SlaveIdx);
            } else if now.saturating_duration_since(s.last_heard) >= interval {
                s.unanswered_pings += 1;
                round.ping.push(s.conn);
            }
        }
        round
    }

    /// The live slave registered under `id`, if any.
    pub fn live_by_id(&self, id: &str) -> Option<SlaveIdx> {
        self.list
            .iter()
            .rposition(|s| s.live && s.id == id)
            .map(|i| i as SlaveIdx)
    }

    pub fn get(&self, idx: SlaveIdx) -> &Replica {
        &self.list[idx as usize]
    }

    pub fn get_mut(&mut self, idx: SlaveIdx) -> &mut Replica {
        &mut self.list[idx as usize]
    }

    pub fn is_live(&self, idx: SlaveIdx) -> bool {
        self.list.get(idx as usize).is_some_and(|s| s.live)
    }

    pub fn live_count(&self) -> usize {
        self.list.iter().filter(|s| s.live).count()
    }

    pub fn live(&self) -> impl Iterator<Item = (SlaveIdx, &Replica)> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, s)| (i as SlaveIdx, s))
    }

    /// Take every live slave out of service; returns their connections.
    pub fn mark_all_dead(&mut self) -> Vec<ConnId> {
        let mut conns = Vec::new();
        for s in self.list.iter_mut().filter(|s| s.live) {
            s.live = false;
            conns.push(s.conn);
        }
        conns
    }

    /// Live slaves in rendezvous order for a key: the first R are its home. (Inline up to 4
    /// slaves: every write ranks them, and the allocation cost as much as the ranking.)
    pub fn ranked_live(&self, key_hash: u64) -> Ranked {
        let mut order: Ranked = self.live().map(|(i, _)| i).collect();
        placement::rank_in_place(key_hash, &mut order, |i| self.list[i as usize].hash);
        order
    }

    /// The newest registration of each id, in order of first appearance: what STATUS lists.
    pub fn latest_per_id(&self) -> Vec<(SlaveIdx, &Replica)> {
        let mut out: Vec<(SlaveIdx, &Replica)> = Vec::new();
        for (i, s) in self.list.iter().enumerate() {
            let entry = (i as SlaveIdx, s);
            match out.iter_mut().find(|o| o.1.id == s.id) {
                Some(slot) => *slot = entry,
                None => out.push(entry),
            }
        }
        out
    }
}

//! The master's table of slaves (replicas): who is live, where to reach them, how many keys they
//! hold, and the rendezvous ranking of live slaves for a key.

use std::time::Instant;

use crate::keymap::SlaveIdx;
use crate::placement;

pub type ConnId = usize;

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

    /// Stop waiting for slaves that never came back: their data is given up.
    pub fn forget_awaiting(&mut self) -> usize {
        let mut n = 0;
        for s in self.list.iter_mut().filter(|s| s.awaiting) {
            s.awaiting = false;
            n += 1;
        }
        n
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

    pub fn live_mut(&mut self) -> impl Iterator<Item = (SlaveIdx, &mut Replica)> {
        self.list
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, s)| (i as SlaveIdx, s))
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

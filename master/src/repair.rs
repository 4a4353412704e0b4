//! Re-replication: after a slave is dropped, every key left with fewer than R live copies is
//! copied from a surviving holder to the next slaves in its rendezvous order. Each copy is an
//! internal operation in the key's queue, so it never races a client write to the same key;
//! a bound on copies and bytes in flight keeps client traffic moving.

use std::rc::Rc;
use std::time::Instant;

use dsm_wire::Body;
use log::{debug, info, warn};

use crate::core::{Master, OpId, Out, Shared};
use crate::keymap::SlaveIdx;
use crate::ops::{Op, OpKind};
use crate::placement::stable_hash;

/// Copies running at once.
pub(crate) const MAX_REPAIRS: usize = 32;
/// Value bytes held by running copies; no new copy starts above this.
pub(crate) const MAX_REPAIR_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct RepairOp {
    /// The version being copied (the latest acknowledged one when the copy started).
    pub version: u64,
    /// Shared by the STOREs to every target.
    pub value: Rc<[u8]>,
    /// Live slaves in rendezvous order that do not hold the key: where copies go.
    pub candidates: Vec<SlaveIdx>,
    pub next: usize,
    /// Copies still wanted beyond those in flight.
    pub wanted: usize,
    pub pending: crate::ops::Subs,
    pub added: Vec<SlaveIdx>,
    pub fetching: bool,
}

impl Master {
    /// Queue every key that has fewer live holders than it should; copies start in `pump_repairs`.
    pub(crate) fn schedule_repairs(&mut self) {
        let want = self.cfg.replicas.min(self.slaves.live_count());
        if want == 0 {
            return;
        }
        let before = self.repair_queue.len();
        for (key, e) in self.keys.iter() {
            let live = e
                .holders
                .iter()
                .filter(|&&h| self.slaves.is_live(h))
                .count();
            if live > 0 && live < want {
                self.repair_queue.push_back(key.into());
            }
        }
        let added = self.repair_queue.len() - before;
        if added > 0 {
            info!("re-replication: {added} keys below {want} live copies queued");
        }
    }

    /// Start queued copies while under the bounds.
    pub(crate) fn pump_repairs(&mut self, now: Instant) {
        while self.repairs_active < MAX_REPAIRS && self.repair_bytes < MAX_REPAIR_BYTES {
            let Some(key) = self.repair_queue.pop_front() else {
                if self.repairs_active == 0 && self.repairs_done > 0 {
                    info!("re-replication finished: {} copies made", self.repairs_done);
                    self.repairs_done = 0;
                }
                return;
            };
            self.repairs_active += 1;
            let id = self.ops.insert(Op {
                client: None,
                req_id: 0,
                key: key.clone(),
                hash: self.keys.hash(&key),
                started: false,
                reply: None,
                deadline_at: now + self.cfg.request_timeout,
                deadline: None,
                kind: OpKind::Repair(Box::default()),
            });
            self.arm_deadline(id);
            self.enqueue(id, now);
        }
    }

    pub(crate) fn start_repair(&mut self, id: OpId, now: Instant) {
        let key = self.ops[id].key.clone();
        let Some(e) = self.keys.get(&key) else {
            return self.finish_repair(id, now);
        };
        let live: Vec<SlaveIdx> = e
            .holders
            .iter()
            .copied()
            .filter(|&h| self.slaves.is_live(h))
            .collect();
        let want = self.cfg.replicas.min(self.slaves.live_count());
        if live.is_empty() || live.len() >= want {
            return self.finish_repair(id, now);
        }
        let candidates: Vec<SlaveIdx> = self
            .slaves
            .ranked_live(stable_hash(&key))
            .iter()
            .copied()
            .filter(|s| !e.holders.contains(s))
            .collect();
        let version = e.version;
        if let OpKind::Repair(r) = &mut self.ops[id].kind {
            r.version = version;
            r.candidates = candidates;
            r.wanted = want - live.len();
            r.fetching = true;
        }
        let epoch = self.epoch;
        self.send_sub(id, live[0], false, now, |req_id| Shared::Fetch {
            req_id,
            epoch,
            key,
        });
    }

    /// Send a sub-request for op `id` to `slave`, made by `frame` from its request id;
    /// `acked` arms the ACK timeout.
    fn send_sub(
        &mut self,
        id: OpId,
        slave: SlaveIdx,
        acked: bool,
        now: Instant,
        frame: impl FnOnce(u64) -> Shared,
    ) {
        let sub = self.new_sub(id, slave, acked.then(|| now + self.cfg.ack_timeout));
        if let OpKind::Repair(r) = &mut self.ops[id].kind {
            r.pending.push(sub);
        }
        let conn = self.slaves.get(slave).conn;
        self.out.push(Out::SendShared(conn, frame(sub)));
    }

    /// Send STOREs until `wanted` copies are in flight or no candidate is left.
    fn repair_store_more(&mut self, id: OpId, now: Instant) {
        loop {
            let (slave, version, key, value) = {
                let op = &mut self.ops[id];
                let OpKind::Repair(r) = &mut op.kind else {
                    return;
                };
                if r.pending.len() >= r.wanted {
                    return;
                }
                let next = loop {
                    match r.candidates.get(r.next).copied() {
                        Some(c) => {
                            r.next += 1;
                            if self.slaves.is_live(c) {
                                break Some(c);
                            }
                        }
                        None => break None,
                    }
                };
                let Some(slave) = next else { return };
                (slave, r.version, op.key.clone(), r.value.clone())
            };
            let epoch = self.epoch;
            self.send_sub(id, slave, true, now, |req_id| Shared::Store {
                req_id,
                epoch,
                version,
                key,
                value,
            });
        }
    }

    pub(crate) fn repair_on_fetched(
        &mut self,
        id: OpId,
        sub: u64,
        answer: Option<(u64, Vec<u8>)>,
        now: Instant,
    ) {
        let OpKind::Repair(r) = &mut self.ops[id].kind else {
            return;
        };
        r.pending.retain(|&p| p != sub);
        match answer {
            Some((version, value)) if version == r.version => {
                r.fetching = false;
                self.repair_bytes += value.len();
                r.value = value.into();
                self.repair_store_more(id, now);
                self.repair_maybe_done(id, now);
            }
            other => {
                debug!(
                    "copy source answered {:?}; giving the copy up",
                    other.map(|o| o.0)
                );
                self.finish_repair(id, now);
            }
        }
    }

    pub(crate) fn repair_on_ack(
        &mut self,
        id: OpId,
        sub: u64,
        from: SlaveIdx,
        version: u64,
        now: Instant,
    ) {
        let OpKind::Repair(r) = &mut self.ops[id].kind else {
            return;
        };
        r.pending.retain(|&p| p != sub);
        if version == r.version {
            r.added.push(from);
            r.wanted = r.wanted.saturating_sub(1);
        }
        self.repair_store_more(id, now);
        self.repair_maybe_done(id, now);
    }

    pub(crate) fn repair_sub_failed(&mut self, id: OpId, sub: u64, now: Instant) {
        let OpKind::Repair(r) = &mut self.ops[id].kind else {
            return;
        };
        r.pending.retain(|&p| p != sub);
        if r.fetching {
            // The source died: start over, choosing a surviving holder.
            let key = self.ops[id].key.clone();
            self.repair_queue.push_back(key);
            return self.finish_repair(id, now);
        }
        self.repair_store_more(id, now);
        self.repair_maybe_done(id, now);
    }

    fn repair_maybe_done(&mut self, id: OpId, now: Instant) {
        let OpKind::Repair(r) = &self.ops[id].kind else {
            return;
        };
        if !r.pending.is_empty() || r.fetching {
            return;
        }
        let (version, added) = (r.version, r.added.clone());
        let key = self.ops[id].key.clone();
        let mut made = 0;
        if self.keys.get(&key).is_some_and(|e| e.version == version) {
            let slaves = &self.slaves;
            self.keys.update_holders(&key, |holders| {
                for s in added {
                    if slaves.is_live(s) && !holders.contains(&s) {
                        holders.push(s);
                        made += 1;
                    }
                }
            });
        }
        self.repairs_done += made;
        if made > 0 {
            self.sync_key(&key);
        }
        self.finish_repair(id, now);
    }

    /// End a copy (done, pointless or given up) and let the key's queue move on.
    pub(crate) fn finish_repair(&mut self, id: OpId, now: Instant) {
        if let OpKind::Repair(r) = &mut self.ops[id].kind {
            self.repair_bytes = self.repair_bytes.saturating_sub(r.value.len());
            r.value = Rc::default();
        }
        self.complete_and_advance(id, Body::Ok, now);
    }

    /// A copy reached its deadline: give it up and queue the key again.
    pub(crate) fn repair_timed_out(&mut self, id: OpId, now: Instant) {
        warn!("a copy timed out; retrying the key later");
        let key = self.ops[id].key.clone();
        self.repair_queue.push_back(key);
        self.finish_repair(id, now);
    }
}

//! Client operations on the master: the per-key queue that keeps one client's requests to a key
//! answered in order, the WRITE path (STORE to R slaves, replace the dead, commit on ACK) and the
//! READ path (FETCH from a holder, ask again until one answers or the deadline passes).

use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::Instant;

use dsm_net::TimerId;
use dsm_wire::{Body, ErrorCode};
use log::{debug, warn};

use crate::core::{ConnId, Master, OpId, Out, Shared, Timer};
use crate::few::{Few, OpQueue};
use crate::key::Key;
use crate::keymap::SlaveIdx;
use crate::placement::stable_hash;

/// Sub-request ids: one FETCH per read, R STOREs per write, usually.
pub(crate) type Subs = Few<u64, 2>;

/// The operations waiting on one key.
pub(crate) type KeyQueue = OpQueue;

/// A key of the per-key queues, with its keyed hash ([`crate::keymap::KeyIndex::hash`]),
/// computed once when the operation arrives: the queue map (an [`crate::idmap::IdMap`]) and the
/// key index both use it, so a READ hashes its key once instead of four or five times.
#[derive(Clone)]
pub(crate) struct QueueKey {
    pub hash: u64,
    pub key: Key,
}

impl Hash for QueueKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for QueueKey {
    fn eq(&self, other: &QueueKey) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for QueueKey {}

pub(crate) struct Op {
    /// None once the client has gone: the work finishes, the reply is dropped.
    pub client: Option<ConnId>,
    pub req_id: u64,
    /// Copied into the key's queue and every STORE/FETCH sent for this op (see [`Key`]).
    pub key: Key,
    /// `keys.hash(&key)`.
    pub hash: u64,
    pub started: bool,
    /// Set when the outcome is known; sent once every earlier op on the key has been answered.
    pub reply: Option<Body>,
    /// When the op is answered TIMEOUT at the latest.
    pub deadline_at: Instant,
    /// The timer for `deadline_at`. A started READ has none: its retry timer, never set later
    /// than `deadline_at`, keeps the deadline (one timer per read instead of two).
    pub deadline: Option<TimerId>,
    pub kind: OpKind,
}

pub(crate) enum OpKind {
    Write(WriteOp),
    Read(ReadOp),
    /// An internal copy made by re-replication (no client). Boxed, like a read's probe: it
    /// is rare, and the largest kind would set the size of every op.
    Repair(Box<crate::repair::RepairOp>),
}

#[derive(Default)]
pub(crate) struct WriteOp {
    /// Shared by the STOREs to every replica.
    pub value: Rc<[u8]>,
    pub version: u64,
    /// Live slaves in rendezvous order when the write started; replacements come from here.
    pub ranked: crate::slaves::Ranked,
    /// Next position in `ranked` to try as a replacement.
    pub next: usize,
    /// Sub-request ids of STOREs not yet ACKed.
    pub pending: Subs,
    pub acked: Few<SlaveIdx, 2>,
    /// The SYNC that carries this write's intent to the backup (0: no backup).
    pub sync_seq: u64,
}

#[derive(Default)]
pub(crate) struct ReadOp {
    /// The latest acknowledged version when the read started; older answers are refused.
    pub version: u64,
    /// Outstanding FETCH sub-requests; the first usable answer wins.
    pub pending: Subs,
    pub retry: Option<TimerId>,
    pub attempts: u32,
    /// Set when the read asks every slave (see `probe.rs`).
    /// (Boxed: most reads never probe, and every op is moved into and out of the slab.)
    pub probe: Option<Box<crate::probe::Probe>>,
}

/// The answer to an operation this master took but cannot stand by (it lost its lease, or
/// stepped down). NOT_PRIMARY tells a client to send the request to another master, which is
/// safe only for a request that had no effect: a READ. A WRITE may already be stored, and sent
/// again it would take effect a second time, after whatever was written in between; so it is
/// answered TIMEOUT, outcome unknown, and the client does not resend it.
pub(crate) fn cannot_vouch(kind: &OpKind, why: String) -> Body {
    match kind {
        OpKind::Write(_) => Body::error(
            ErrorCode::Timeout,
            format!("{why}; the write may or may not have happened"),
        ),
        _ => Body::error(ErrorCode::NotPrimary, format!("{why}; outcome unknown")),
    }
}

impl Master {
    /// Queue a client's WRITE (`value` is Some) or READ behind earlier operations on the key.
    pub(crate) fn submit(
        &mut self,
        conn: ConnId,
        req_id: u64,
        key: &[u8],
        value: Option<&[u8]>,
        now: Instant,
    ) {
        let key = Key::from(key);
        let hash = self.keys.hash(&key);
        let kind = match value {
            Some(value) => OpKind::Write(WriteOp {
                value: value.into(),
                ..WriteOp::default()
            }),
            None => OpKind::Read(ReadOp::default()),
        };
        let read = matches!(kind, OpKind::Read(_));
        let deadline_at = now + self.cfg.request_timeout;
        let id = self.ops.insert(Op {
            client: Some(conn),
            req_id,
            key: key.clone(),
            hash,
            started: false,
            reply: None,
            deadline_at,
            deadline: None,
            kind,
        });
        if !read {
            self.arm_deadline(id);
        }
        if let Some(n) = self.owed.get_mut(conn) {
            *n += 1;
        }
        self.enqueue(id, now);
        // A READ that started holds a retry timer, and that keeps its deadline; one left
        // queued behind a write needs its own. (Nothing inside `enqueue` takes a new op, so
        // `id` is still this READ if it is there at all.)
        if read && self.ops.get(id).is_some_and(|op| !op.started) {
            self.arm_deadline(id);
        }
    }

    /// Arm the TIMEOUT of op `id` at its `deadline_at`.
    pub(crate) fn arm_deadline(&mut self, id: OpId) {
        let t = self
            .timers
            .insert(self.ops[id].deadline_at, Timer::Deadline(id));
        self.ops[id].deadline = Some(t);
    }

    /// Put op `id` at the back of its key's queue and start what may start.
    pub(crate) fn enqueue(&mut self, id: OpId, now: Instant) {
        let read = matches!(self.ops[id].kind, OpKind::Read(_));
        match self.queues.entry(self.queue_key(id)) {
            // Nothing else on the key: a READ starts now, which is what `advance` would
            // decide, without its second lookup of the queue and its pass over it.
            Entry::Vacant(slot) if read => {
                let qkey = slot.key().clone();
                slot.insert(KeyQueue::default()).push_back(id);
                self.ops[id].started = true;
                self.start_read(id, now);
                // Answered while starting (no holder left): `advance` sends it and forgets
                // it, unless a nested pass already has.
                if self.ops.get(id).is_some_and(|op| op.reply.is_some()) {
                    self.advance(&qkey, now);
                }
            }
            entry => {
                let qkey = entry.key().clone();
                entry.or_default().push_back(id);
                self.advance(&qkey, now);
            }
        }
    }

    pub(crate) fn queue_key(&self, id: OpId) -> QueueKey {
        let op = &self.ops[id];
        QueueKey {
            hash: op.hash,
            key: op.key.clone(),
        }
    }

    /// Answer finished operations at the front of the key's queue, then start what may start:
    /// reads run together, a write runs alone once everything before it has been answered.
    pub(crate) fn advance(&mut self, key: &QueueKey, now: Instant) {
        // Scratch lists reused across calls (a nested call, through a reply, gets fresh ones).
        let mut finished = std::mem::take(&mut self.scratch_finished);
        let mut to_start = std::mem::take(&mut self.scratch_start);
        loop {
            finished.clear();
            to_start.clear();
            // One hash of the key per pass: the entry also removes an emptied queue.
            let Entry::Occupied(mut entry) = self.queues.entry(key.clone()) else {
                break;
            };
            let q = entry.get_mut();
            while let Some(id) = q.front() {
                if self.ops[id].reply.is_none() {
                    break;
                }
                q.pop_front();
                finished.push(id);
            }
            for (pos, id) in q.iter().enumerate() {
                let op = &self.ops[id];
                if !matches!(op.kind, OpKind::Read(_)) {
                    if pos == 0 && !op.started {
                        to_start.push(id);
                    }
                    break;
                }
                if !op.started {
                    to_start.push(id);
                }
            }
            if q.is_empty() {
                entry.remove();
            }
            for &id in finished.iter() {
                self.finish(id, now);
            }
            for &id in to_start.iter() {
                // A start can answer at once and advance this queue from inside (a READ whose
                // holders are all dead): that nested pass may already have started, answered
                // and forgotten the ops after it, so check each again.
                match self.ops.get_mut(id) {
                    Some(op) if !op.started => op.started = true,
                    _ => continue,
                }
                match self.ops[id].kind {
                    OpKind::Write(_) => self.start_write(id, now),
                    OpKind::Read(_) => self.start_read(id, now),
                    OpKind::Repair(_) => self.start_repair(id, now),
                }
            }
            // Only an op answered while starting can let more ops start.
            let again = to_start
                .iter()
                .any(|&id| self.ops.get(id).is_some_and(|op| op.reply.is_some()));
            if !again {
                break;
            }
        }
        finished.clear();
        to_start.clear();
        self.scratch_finished = finished;
        self.scratch_start = to_start;
    }

    /// Record the outcome; the reply goes out from `advance` in queue order.
    pub(crate) fn complete(&mut self, id: OpId, reply: Body) {
        let op = &mut self.ops[id];
        if op.reply.is_some() {
            return;
        }
        op.reply = Some(reply);
        if let Some(t) = op.deadline.take() {
            self.timers.cancel(t);
        }
        let subs: Subs = match &mut op.kind {
            OpKind::Write(w) => std::mem::take(&mut w.pending),
            OpKind::Repair(r) => std::mem::take(&mut r.pending),
            OpKind::Read(r) => {
                if let Some(t) = r.retry.take() {
                    self.timers.cancel(t);
                }
                std::mem::take(&mut r.pending)
            }
        };
        for &sub in subs.iter() {
            if let Some(s) = self.subs.remove(&sub) {
                if let Some(t) = s.timer {
                    self.timers.cancel(t);
                }
            }
        }
    }

    /// Send the reply of a completed op that has reached the front of its queue, and forget it.
    fn finish(&mut self, id: OpId, now: Instant) {
        let op = self.ops.remove(id);
        if let OpKind::Repair(_) = op.kind {
            self.repairs_active -= 1;
        }
        let reply = match op.reply {
            // Without a live lease a newer primary may exist: say nothing we cannot stand by.
            Some(ref r) if !matches!(r, Body::Error { .. }) && !self.lease_ok(now) => {
                Some(cannot_vouch(&op.kind, self.not_primary_text()))
            }
            other => other,
        };
        if let Some(n) = op.client.and_then(|c| self.owed.get_mut(c)) {
            *n = n.saturating_sub(1);
        }
        if let (Some(conn), Some(reply)) = (op.client, reply) {
            self.out
                .push(Out::Send(conn, dsm_wire::Frame::new(op.req_id, reply)));
        }
    }

    /// The client went away: its ops finish (a write already sent must still commit or fail
    /// cleanly) but nobody is told.
    pub(crate) fn orphan_ops(&mut self, conn: ConnId) {
        if let Some(n) = self.owed.get_mut(conn) {
            *n = 0;
        }
        for (_, op) in self.ops.iter_mut() {
            if op.client == Some(conn) {
                op.client = None;
            }
        }
    }

    pub(crate) fn complete_and_advance(&mut self, id: OpId, reply: Body, now: Instant) {
        self.complete(id, reply);
        // Usually the op is alone on its key: answer it and drop the queue, which is all
        // `advance` would do, without its passes over the queue and its second lookup.
        if let Entry::Occupied(entry) = self.queues.entry(self.queue_key(id)) {
            if entry.get().is_only(id) {
                entry.remove();
                return self.finish(id, now);
            }
            let key = entry.key().clone();
            self.advance(&key, now);
        }
    }

    pub(crate) fn start_write(&mut self, id: OpId, now: Instant) {
        let ranked = self.slaves.ranked_live(stable_hash(&self.ops[id].key));
        if ranked.len() < self.cfg.replicas && self.in_grace(now) && self.slaves.any_awaiting() {
            // Just after a takeover the slaves are still re-registering: wait for them (each
            // registration and the end of the grace period start this write again).
            self.ha.deferred.push(id);
            return;
        }
        if ranked.is_empty() {
            warn!("write refused: no live slave");
            return self.complete(id, Body::error(ErrorCode::NoSlaves, "no live slave"));
        }
        let version = self.next_version;
        self.next_version += 1;
        let first = self.cfg.replicas.min(ranked.len());
        if first < self.cfg.replicas {
            warn!(
                "only {} live slave(s) for a write that wants {} copies",
                ranked.len(),
                self.cfg.replicas
            );
        }
        let key = self.ops[id].key.clone();
        let sync_seq = self.intent(&key);
        if let OpKind::Write(w) = &mut self.ops[id].kind {
            w.version = version;
            w.ranked = ranked;
            w.next = first;
            w.sync_seq = sync_seq;
        }
        for pos in 0..first {
            let slave = match &self.ops[id].kind {
                OpKind::Write(w) => w.ranked[pos],
                _ => unreachable!("start_write on a non-write"),
            };
            self.send_store(id, slave, now);
        }
    }

    fn send_store(&mut self, id: OpId, slave: SlaveIdx, now: Instant) {
        let sub = self.new_sub(id, slave, Some(now + self.cfg.ack_timeout));
        let op = &mut self.ops[id];
        let OpKind::Write(w) = &mut op.kind else {
            unreachable!("send_store on a read")
        };
        w.pending.push(sub);
        let store = Shared::Store {
            req_id: sub,
            epoch: self.epoch,
            version: w.version,
            key: op.key.clone(),
            value: w.value.clone(),
        };
        let conn = self.slaves.get(slave).conn;
        self.out.push(Out::SendShared(conn, store));
    }

    pub(crate) fn on_ack(&mut self, sub: u64, from: SlaveIdx, version: u64, now: Instant) {
        let Some(s) = self.subs.get(&sub) else {
            return; // late ACK for a finished op
        };
        if s.slave != from {
            return;
        }
        let s = self.subs.remove(&sub).expect("checked above");
        if let Some(t) = s.timer {
            self.timers.cancel(t);
        }
        let id = s.op;
        if let OpKind::Repair(_) = self.ops[id].kind {
            return self.repair_on_ack(id, sub, from, version, now);
        }
        let done = {
            let OpKind::Write(w) = &mut self.ops[id].kind else {
                return;
            };
            if version < w.version {
                warn!("slave ACKed version {version} for a STORE of {}", w.version);
            }
            w.pending.retain(|&p| p != sub);
            w.acked.push(from);
            w.pending.is_empty()
        };
        if done {
            self.commit_write(id, now);
        }
    }

    /// Every chosen slave has answered: record the new version and its holders, then say OK.
    pub(crate) fn commit_write(&mut self, id: OpId, now: Instant) {
        if let OpKind::Write(w) = &self.ops[id].kind {
            if !w.acked.is_empty() && !self.ha_synced(w.sync_seq) {
                // The backup has not confirmed the intent: it would not know to distrust its
                // map for this key after a takeover. Wait for its SYNC_ACK (or its loss).
                self.ha.sync_waiters.push(id);
                return;
            }
        }
        let (key, hash, version, holders) = {
            let op = &mut self.ops[id];
            let OpKind::Write(w) = &mut op.kind else {
                return;
            };
            (
                op.key.clone(),
                op.hash,
                w.version,
                std::mem::take(&mut w.acked),
            )
        };
        if holders.is_empty() {
            warn!("write of version {version} lost every slave it was sent to");
            return self.complete_and_advance(
                id,
                Body::error(ErrorCode::NoSlaves, "every slave chosen for the write died"),
                now,
            );
        }
        if holders.len() < self.cfg.replicas {
            warn!(
                "version {version} acknowledged with {} of {} copies",
                holders.len(),
                self.cfg.replicas
            );
        }
        self.record_hashed(hash, &key, version, holders);
        self.complete_and_advance(id, Body::Ok, now);
    }

    /// Make `version` on `holders` the latest acknowledged state of `key` (and tell the
    /// backup).
    pub(crate) fn record(&mut self, key: &[u8], version: u64, holders: impl AsRef<[SlaveIdx]>) {
        self.record_hashed(self.keys.hash(key), key, version, holders)
    }

    /// [`Master::record`] with `hash` = `self.keys.hash(key)` (an op carries it).
    pub(crate) fn record_hashed(
        &mut self,
        hash: u64,
        key: &[u8],
        version: u64,
        holders: impl AsRef<[SlaveIdx]>,
    ) {
        self.keys
            .commit_hashed(hash, key, version, holders.as_ref());
        // Removing hashes the key even from an empty set; the set is empty but after a takeover.
        if !self.ha.suspect.is_empty() {
            self.ha.suspect.remove(key);
        }
        self.sync_key(key);
    }

    /// A sub-request will not be answered (its slave died or refused). Writes move to the next
    /// slave in rendezvous order; reads ask another holder.
    pub(crate) fn on_sub_failed(&mut self, sub: u64, now: Instant) {
        let Some(s) = self.subs.remove(&sub) else {
            return;
        };
        if let Some(t) = s.timer {
            self.timers.cancel(t);
        }
        let id = s.op;
        if !self.ops.contains(id) || self.ops[id].reply.is_some() {
            return;
        }
        match &mut self.ops[id].kind {
            OpKind::Write(w) => {
                w.pending.retain(|&p| p != sub);
                let replacement = loop {
                    match w.ranked.get(w.next).copied() {
                        Some(c) => {
                            w.next += 1;
                            if self.slaves.is_live(c) && !w.acked.contains(&c) {
                                break Some(c);
                            }
                        }
                        None => break None,
                    }
                };
                let nothing_left = w.pending.is_empty();
                match replacement {
                    Some(c) => {
                        debug!("write moves to replacement slave {c}");
                        self.send_store(id, c, now);
                    }
                    None if nothing_left => self.commit_write(id, now),
                    None => {}
                }
            }
            OpKind::Read(r) if r.probe.is_some() => {
                r.pending.retain(|&p| p != sub);
                self.probe_maybe_decide(id, now);
            }
            OpKind::Read(r) => {
                r.pending.retain(|&p| p != sub);
                if r.pending.is_empty() {
                    self.send_fetch(id, now);
                }
            }
            OpKind::Repair(_) => self.repair_sub_failed(id, sub, now),
        }
    }

    fn start_read(&mut self, id: OpId, now: Instant) {
        if self.needs_probe(&self.ops[id].key) {
            return self.start_probe(id, now);
        }
        self.fetch(id, now, true);
    }

    /// FETCH from the next live holder (round robin spreads reads over the copies). With no live
    /// holder left the key is gone: NOT_FOUND, as the seed design says.
    fn send_fetch(&mut self, id: OpId, now: Instant) {
        self.fetch(id, now, false)
    }

    /// [`Master::send_fetch`]; on the READ's `start` it also records the version the answer
    /// must reach, from the same lookup of the key.
    fn fetch(&mut self, id: OpId, now: Instant, start: bool) {
        let holder = {
            let op = &self.ops[id];
            let Some(e) = self.keys.get_hashed(op.hash, &op.key) else {
                if start {
                    // `advance`, which started it, sends the answer.
                    return self.complete(id, Body::NotFound);
                }
                return self.complete_and_advance(id, Body::NotFound, now);
            };
            if start {
                if let OpKind::Read(r) = &mut self.ops[id].kind {
                    r.version = e.version;
                }
            }
            if !e.holders.iter().any(|&h| self.slaves.is_live(h)) {
                if self.in_grace(now) && e.holders.iter().any(|&h| self.slaves.is_awaiting(h)) {
                    // After a takeover: the holders may still be re-registering. Ask again.
                    return self.arm_read_retry(id, now);
                }
                warn!("every holder of a key is dead; answering NOT_FOUND");
                return self.complete_and_advance(id, Body::NotFound, now);
            }
            // At most one FETCH per holder per read: a retry asks a holder not yet waited on,
            // and when every live holder is already asked it only waits longer. Without this
            // cap a burst of reads to a slow slave multiplied itself every retry interval
            // until the slaves fell behind their PINGs and were dropped.
            let pending: &[u64] = match &self.ops[id].kind {
                OpKind::Read(r) => &r.pending,
                _ => &[],
            };
            let asked = |h: SlaveIdx| {
                pending
                    .iter()
                    .any(|s| self.subs.get(s).is_some_and(|s| s.slave == h))
            };
            // A live holder this read has not asked yet.
            let fresh = |h: SlaveIdx| self.slaves.is_live(h) && !asked(h);
            // Prefer a holder this turn already sends to: one more FETCH rides in the same
            // write and wakes no other slave. Round robin still spreads the turns.
            let woken = |h: SlaveIdx| self.turn_targets.contains(&h);
            let (mut count, mut preferred) = (0, 0);
            for &h in e.holders {
                if fresh(h) {
                    count += 1;
                    preferred += usize::from(woken(h));
                }
            }
            if count == 0 {
                return self.arm_read_retry(id, now);
            }
            self.read_rr = self.read_rr.wrapping_add(1);
            let only_woken = preferred > 0;
            let nth = self.read_rr % if only_woken { preferred } else { count };
            e.holders
                .iter()
                .copied()
                .filter(|&h| fresh(h) && (!only_woken || woken(h)))
                .nth(nth)
                .expect("counted above")
        };
        if !self.turn_targets.contains(&holder) {
            self.turn_targets.push(holder);
        }
        let sub = self.new_sub(id, holder, None);
        self.arm_read_retry(id, now);
        let op = &mut self.ops[id];
        let OpKind::Read(r) = &mut op.kind else {
            unreachable!("send_fetch on a write")
        };
        r.pending.push(sub);
        r.attempts += 1;
        let fetch = Shared::Fetch {
            req_id: sub,
            epoch: self.epoch,
            key: op.key.clone(),
        };
        let conn = self.slaves.get(holder).conn;
        self.out.push(Out::SendShared(conn, fetch));
    }

    /// (Re)start the READ's retry timer: `on_read_retry` runs after `read_retry` unless an
    /// answer comes first, and at the READ's deadline at the latest.
    pub(crate) fn arm_read_retry(&mut self, id: OpId, now: Instant) {
        let at = (now + self.cfg.read_retry).min(self.ops[id].deadline_at);
        let retry = self.timers.insert(at, Timer::ReadRetry(id));
        if let OpKind::Read(r) = &mut self.ops[id].kind {
            if let Some(old) = r.retry.replace(retry) {
                self.timers.cancel(old);
            }
        }
    }

    pub(crate) fn on_read_retry(&mut self, id: OpId, now: Instant) {
        if !self.ops.contains(id) || self.ops[id].reply.is_some() {
            return;
        }
        if now >= self.ops[id].deadline_at {
            return self.on_deadline(id, now);
        }
        if let OpKind::Read(ReadOp { probe: Some(_), .. }) = &self.ops[id].kind {
            return self.probe_on_retry(id, now);
        }
        let op = &mut self.ops[id];
        if let OpKind::Read(r) = &mut op.kind {
            r.retry = None;
            debug!("read retry {} for request {}", r.attempts, op.req_id);
            self.send_fetch(id, now);
        }
    }

    /// A FETCH answer (`None` = the slave holds nothing for the key).
    pub(crate) fn on_fetched(
        &mut self,
        sub: u64,
        from: SlaveIdx,
        answer: Option<(u64, Vec<u8>)>,
        now: Instant,
    ) {
        let Some(s) = self.subs.remove(&sub) else {
            return;
        };
        if s.slave != from {
            // Not that slave's to answer: the sub stays open for the right one.
            self.subs.insert(sub, s);
            return;
        }
        let id = s.op;
        let want = match &mut self.ops[id].kind {
            OpKind::Read(r) if r.probe.is_some() => {
                r.pending.retain(|&p| p != sub);
                return self.probe_on_answer(id, from, answer, now);
            }
            OpKind::Read(r) => {
                r.pending.retain(|&p| p != sub);
                r.version
            }
            OpKind::Write(_) => return,
            OpKind::Repair(_) => return self.repair_on_fetched(id, sub, answer, now),
        };
        match answer {
            Some((version, value)) if version >= want => {
                if version > want {
                    // A write whose outcome was reported unknown reached this slave after all:
                    // it takes effect now, and reads follow this copy from here on.
                    let key = self.ops[id].key.clone();
                    warn!("adopting version {version} (newer than {want}) from slave {from}");
                    self.record(&key, version, [from]);
                }
                self.complete_and_advance(id, Body::Value { value }, now);
            }
            other => {
                let got = other.map(|(v, _)| v);
                warn!("slave {from} holds {got:?} for a key at version {want}; no longer a holder");
                let key = self.ops[id].key.clone();
                self.keys.update_holders(&key, |h| h.retain(|&h| h != from));
                self.sync_key(&key);
                self.send_fetch(id, now);
            }
        }
    }

    pub(crate) fn on_deadline(&mut self, id: OpId, now: Instant) {
        if !self.ops.contains(id) || self.ops[id].reply.is_some() {
            return;
        }
        self.ops[id].deadline = None;
        if let OpKind::Repair(_) = self.ops[id].kind {
            return self.repair_timed_out(id, now);
        }
        let op = &mut self.ops[id];
        let text = match &mut op.kind {
            OpKind::Write(w) if !w.acked.is_empty() => {
                // Some copies are held: make them the record so every later read agrees.
                let (key, version, holders) =
                    (op.key.clone(), w.version, std::mem::take(&mut w.acked));
                self.record(&key, version, holders);
                "deadline passed with some copies stored; the write may have happened"
            }
            OpKind::Write(_) => "deadline passed; the write may or may not have happened",
            OpKind::Read(_) => "deadline passed before any holder answered",
            OpKind::Repair(_) => unreachable!("handled above"),
        };
        warn!("request {} timed out: {text}", self.ops[id].req_id);
        self.complete_and_advance(id, Body::error(ErrorCode::Timeout, text), now);
    }
}

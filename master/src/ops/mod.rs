//! Operations in flight and the per-key queues that order them: one client's requests to a key
//! are answered in the order sent; reads run together, a write runs alone. Completing an
//! operation only marks it ([`Ops::complete`]); [`Ops::settle`], once at the end of every
//! event, answers what reached the front of its queue and starts what may start. A kind's
//! logic (`write.rs`, `read.rs`, `copy.rs`) returns a [`Step`] and never answers or queues
//! anything itself, so no code path depends on what is on the call stack.

mod budget;
pub(crate) use budget::SMALL as SMALL_RESERVE;
mod copy;
mod op;
mod purge;
mod queue;
mod read;
mod step;
mod subs;
mod update;
mod write;

use std::time::{Duration, Instant};

use dsm_wire::{Body, BodyRef, ErrorCode, WriteId};
use log::warn;
use slab::Slab;

use crate::ctx::Ctx;
use crate::idmap::{ConnId, OpId};
use crate::key::Key;
use crate::keymap::SlaveIdx;
use crate::metrics::{RequestStats, READ, UPDATE, WRITE};
use crate::once::{Records, Seen};
use crate::outbox::Shared;
use crate::timer::{Timer, Timers};

use op::{cannot_vouch, exactly_once, Op, OpKind};
use purge::PurgeOp;
use queue::{Pass, QueueKey, Queues};
use read::{AtOnce, ReadOp, ReadSpread};
use step::Step;
use subs::{Late, SubTable};
use update::{Change, UpdateOp};
use write::{Reply, WriteOp};

/// A client's request on one key, as the master takes it.
pub(crate) enum Request<'a> {
    Read {
        key: &'a [u8],
    },
    Write {
        key: &'a [u8],
        value: &'a [u8],
    },
    WriteOnce {
        id: WriteId,
        resent_ms: u32,
        key: &'a [u8],
        value: &'a [u8],
    },
    VRead {
        key: &'a [u8],
    },
    Set {
        key: &'a [u8],
        expected: Option<u64>,
        value: &'a [u8],
        once: Option<Sent>,
    },
    Delete {
        key: &'a [u8],
        expected: Option<u64>,
        once: Option<Sent>,
    },
    Incr {
        key: &'a [u8],
        delta: i64,
        once: Option<Sent>,
    },
}

/// The writer of an exactly-once SET, DELETE or INCR (ONCE), and `resent_ms` as in WRITE_ONCE.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sent {
    pub id: WriteId,
    pub resent_ms: u32,
}

impl<'a> Request<'a> {
    /// A READ, WRITE or WRITE_ONCE straight from the read buffer.
    pub fn of(body: BodyRef<'a>) -> Request<'a> {
        match body {
            BodyRef::Read { key } => Request::Read { key },
            BodyRef::Write { key, value } => Request::Write { key, value },
            BodyRef::WriteOnce {
                id,
                resent_ms,
                key,
                value,
            } => Request::WriteOnce {
                id,
                resent_ms,
                key,
                value,
            },
            other => unreachable!("a request of {:?}", other.opcode()),
        }
    }
}

#[derive(Default)]
pub(crate) struct Ops {
    slab: Slab<Op>,
    queues: Queues,
    subs: SubTable,
    /// Operations completed, or queued behind others, since the last [`Ops::settle`]: their
    /// queues are looked at then.
    ready: Vec<OpId>,
    /// Operations completed alone on their key (the queue is gone): answered by the next
    /// [`Ops::settle`], in this order.
    done: Vec<OpId>,
    /// Writes waiting for slaves to re-register after a takeover.
    deferred: Vec<OpId>,
    /// Writes whose slaves have all ACKed but whose intent the backup has not yet confirmed.
    sync_waiters: Vec<OpId>,
    spread: ReadSpread,
    /// Per connection id: client operations taken and not yet answered (see [`Ops::owes`]).
    owed: Vec<u32>,
    /// Kept to save two allocations per pass.
    scratch: Pass,
    /// The answers of exactly-once writes (`once.rs`).
    records: Records,
    /// Bytes the clients' open requests may bring back (see `budget.rs`).
    budget: budget::Budget,
    /// Tombstones recorded on every copy since the last settle: keys and versions to collect.
    to_collect: Vec<(Key, u64)>,
    /// Counters and latencies for `/metrics`.
    pub stats: RequestStats,
}

impl Ops {
    /// Exactly-once answers kept, and the clients they belong to.
    pub fn records(&self) -> (usize, usize) {
        self.records.len()
    }

    /// Client operations (and copies) and slave sub-requests still open.
    pub fn in_flight(&self) -> (usize, usize) {
        (self.slab.len(), self.subs.len())
    }

    /// A new client connection: it is owed nothing yet.
    pub fn on_connect(&mut self, conn: ConnId) {
        if self.owed.len() <= conn {
            self.owed.resize(conn + 1, 0);
        }
        self.owed[conn] = 0;
    }

    /// Bytes reserved by the connection's open requests, and by every client's: a WRITE's
    /// value, a READ's last known value size.
    pub fn reserved(&self, conn: ConnId) -> (usize, usize) {
        self.budget.reserved(conn)
    }

    /// What a READ of the key of `hash` would reserve now.
    pub fn read_reserve(&self, hash: u64) -> usize {
        self.budget.read_size(hash) as usize
    }

    /// Bytes reserved by every client's open requests.
    pub fn reserved_total(&self) -> usize {
        self.budget.total()
    }

    /// Whether the connection has requests in progress whose replies are still to come.
    pub fn owes(&self, conn: ConnId) -> bool {
        self.owed.get(conn).is_some_and(|&n| n > 0)
    }

    /// The keys of the changes under way (a WRITE, SET, DELETE or INCR started and not yet
    /// decided), whose STOREs may be out: a standby attaching now is told them as intents in
    /// its snapshot. Their own intents went to no standby, or to the one before it, and one
    /// may commit once the new standby is in step: if its Key event were then lost with the
    /// primary, that standby would take over trusting a map without the change.
    pub fn changing_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.slab
            .iter()
            .filter(|(_, op)| {
                op.started
                    && op.is_open()
                    && matches!(op.kind, OpKind::Write(_) | OpKind::Update(_))
            })
            .map(|(_, op)| &op.key[..])
    }

    /// The event loop has written out everything: see [`ReadSpread`].
    pub fn end_turn(&mut self) {
        self.spread.end_turn();
    }

    /// A client's request on a key: queued behind earlier operations on it, unless this
    /// master may not take it now (`refusal` says why) or it is over the limits.
    pub fn on_request(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        req_id: u64,
        request: Request<'_>,
        refusal: Option<String>,
    ) {
        // Not the primary, or a primary that has lost its lease (its backup may be taking
        // over): refuse at once so the client moves on instead of waiting for a deadline.
        let (key, value, op) = match request {
            Request::Read { key } | Request::VRead { key } => (key, None, READ),
            Request::Write { key, value } | Request::WriteOnce { key, value, .. } => {
                (key, Some(value), WRITE)
            }
            Request::Set { key, value, .. } => (key, Some(value), UPDATE),
            Request::Delete { key, .. } | Request::Incr { key, .. } => (key, None, UPDATE),
        };
        let refused = match refusal {
            Some(text) => Some(Body::error(ErrorCode::NotPrimary, text)),
            None => (ctx.cfg.check_request(key, value)).map(|(code, text)| Body::error(code, text)),
        };
        if let Some(reply) = refused {
            self.stats.answered(op, &reply, None, ctx.now);
            return ctx.out.send(conn, req_id, reply);
        }
        let once = match &request {
            Request::Set { once, .. }
            | Request::Delete { once, .. }
            | Request::Incr { once, .. } => *once,
            _ => None,
        };
        if let Some(sent) = once {
            match self.records.arrived(sent.id, ctx.now) {
                Seen::New => {}
                Seen::Answered(reply) => return ctx.out.send(conn, req_id, reply),
                Seen::Stale => return ctx.out.send(conn, req_id, below_acked(sent.id)),
            }
        }
        // A READ with nothing queued on its key, whose start would answer at once (a read
        // cache hit, or the map's NOT_FOUND), is answered here as `start` and `finish` would
        // answer it, without an operation: the same checks (the lease's refusal above, doubts,
        // a live holder, nothing ahead in the key's queue), the same reply and counters.
        let mut hashed = None;
        if let &Request::Read { key } | &Request::VRead { key } = &request {
            let hash = ctx.keys.hash(key);
            hashed = Some(hash);
            let versioned = matches!(request, Request::VRead { .. });
            let queued = self.queues.busy(&QueueKey {
                hash,
                key: Key::from(key),
            });
            let reply = match queued {
                true => None,
                false => ReadOp::at_once(ctx, hash, key, versioned),
            };
            match reply {
                Some(AtOnce::Reply(reply)) => {
                    self.stats.queued.record(Duration::ZERO);
                    self.stats.answered(READ, &reply, Some(ctx.now), ctx.now);
                    return ctx.out.send(conn, req_id, reply);
                }
                Some(AtOnce::Large { version, value }) => {
                    self.stats.queued.record(Duration::ZERO);
                    // Counted as the VALUE it is (the body's value is not looked at).
                    let counted = Body::Value { value: Vec::new() };
                    self.stats.answered(READ, &counted, Some(ctx.now), ctx.now);
                    let reply = Shared::Value {
                        req_id,
                        version,
                        value,
                    };
                    return ctx.out.shared(conn, reply);
                }
                None => {}
            }
        }
        let now = ctx.now;
        let update = |change| {
            let once = once.map(|s| (s.id, s.resent_ms));
            OpKind::Update(Box::new(UpdateOp::new(change, once, now)))
        };
        let kind = match request {
            Request::WriteOnce {
                id,
                resent_ms,
                value,
                ..
            } => match self.records.arrived(id, ctx.now) {
                Seen::New => {
                    OpKind::Write(WriteOp::once(ctx.shared(value), id, resent_ms, ctx.now))
                }
                Seen::Answered(reply) => return ctx.out.send(conn, req_id, reply),
                Seen::Stale => return ctx.out.send(conn, req_id, below_acked(id)),
            },
            Request::Write { value, .. } => {
                OpKind::Write(WriteOp::new(ctx.shared(value), Reply::Plain, false))
            }
            Request::Read { .. } => OpKind::Read(ReadOp::default()),
            Request::VRead { .. } => OpKind::Read(ReadOp::versioned()),
            Request::Set {
                value, expected, ..
            } => update(Change::Set {
                value: value.to_vec(),
                expected,
            }),
            Request::Delete { expected, .. } => update(Change::Delete { expected }),
            Request::Incr { delta, .. } => update(Change::Incr { delta }),
        };
        if let Some(n) = self.owed.get_mut(conn) {
            *n += 1;
        }
        let key = Key::from(key);
        let hash = hashed.unwrap_or_else(|| ctx.keys.hash(&key));
        self.add_hashed(ctx, Some(conn), req_id, key, hash, kind);
    }

    /// Start queued re-replication copies while their bounds allow.
    pub fn pump_copies(&mut self, ctx: &mut Ctx) {
        while let Some(key) = ctx.repairs.next_copy() {
            self.add(ctx, None, 0, key, OpKind::Copy(Box::default()));
        }
    }

    /// Add an operation at the back of its key's queue; alone there, it starts at once.
    fn add(&mut self, ctx: &mut Ctx, client: Option<ConnId>, req_id: u64, key: Key, kind: OpKind) {
        let hash = ctx.keys.hash(&key);
        self.add_hashed(ctx, client, req_id, key, hash, kind)
    }

    /// [`Ops::add`] with `hash` = `ctx.keys.hash(&key)`, computed by the caller.
    fn add_hashed(
        &mut self,
        ctx: &mut Ctx,
        client: Option<ConnId>,
        req_id: u64,
        key: Key,
        hash: u64,
        kind: OpKind,
    ) {
        let reserve = match (&kind, client) {
            (_, None) | (OpKind::Copy(_), _) => 0,
            (OpKind::Write(w), Some(conn)) => {
                self.budget.learn(hash, w.value_len());
                let n = w.value_len().min(u32::MAX as usize) as u32;
                self.budget.reserve(conn, n);
                n
            }
            (OpKind::Read(_), Some(conn)) => {
                let n = self.budget.read_size(hash);
                self.budget.reserve(conn, n);
                n
            }
            // A SET holds its value; DELETE and INCR, small ones. Each answers briefly.
            (OpKind::Update(u), Some(conn)) => {
                let len = u.set_len();
                if let Some(len) = len {
                    self.budget.learn(hash, len);
                }
                let n = len
                    .unwrap_or(0)
                    .max(budget::SMALL as usize)
                    .min(u32::MAX as usize) as u32;
                self.budget.reserve(conn, n);
                n
            }
            (OpKind::Purge(_), Some(_)) => 0,
        };
        let id = self.slab.insert(Op {
            client,
            reserve,
            req_id,
            key,
            hash,
            started: false,
            reply: None,
            deadline_at: ctx.now + ctx.cfg.request_timeout,
            deadline: None,
            kind,
            arrived: ctx.now,
            started_at: ctx.now,
            acked_at: None,
        });
        // A READ's deadline is armed only if it has to wait (see `Op::deadline`).
        if !self.slab[id].is_read() {
            self.arm_deadline(id, ctx.timers);
        }
        if self.queues.push(QueueKey::of(&self.slab[id]), id) {
            self.start(ctx, id);
        } else {
            self.ready.push(id);
        }
    }

    fn arm_deadline(&mut self, id: OpId, timers: &mut Timers) {
        let op = &mut self.slab[id];
        op.deadline = Some(timers.insert(op.deadline_at, Timer::Deadline(id)));
    }

    fn start(&mut self, ctx: &mut Ctx, id: OpId) {
        let op = &mut self.slab[id];
        if !op.started && op.client.is_some() {
            let waited = ctx.now.saturating_duration_since(op.arrived);
            self.stats.queued.record(waited);
        }
        op.started_at = ctx.now;
        // A copy of an exactly-once write that waited behind the first: its answer, again.
        let answered = self.slab[id].writer().and_then(|w| self.records.answer(w));
        if let Some(reply) = answered {
            self.slab[id].started = true;
            return self.complete(ctx.timers, id, reply);
        }
        let step = self.slab[id].start(id, ctx, &mut self.subs, &mut self.spread);
        self.apply(ctx.timers, id, step);
    }

    /// Carry out what a step of op `id`'s logic decided.
    fn apply(&mut self, timers: &mut Timers, id: OpId, step: Step) {
        match step {
            Step::Wait => {}
            Step::Done(reply) => {
                if let OpKind::Update(u) = &self.slab[id].kind {
                    if let Some(version) = u.tombstone_recorded() {
                        self.to_collect.push((self.slab[id].key.clone(), version));
                    }
                }
                self.complete(timers, id, reply)
            }
            Step::Defer => self.deferred.push(id),
            Step::AwaitBackup => self.sync_waiters.push(id),
        }
    }

    /// Record the outcome; the reply goes out from [`Ops::settle`] in queue order.
    fn complete(&mut self, timers: &mut Timers, id: OpId, reply: Body) {
        let op = &mut self.slab[id];
        if op.reply.is_some() {
            return;
        }
        op.reply = Some(reply);
        for &sub in op.end(timers).iter() {
            self.subs.cancel(sub, timers);
        }
        // Usually the op is alone on its key: its queue goes now, and settle has only to
        // answer it.
        if self.queues.take_if_alone(QueueKey::of(op), id) {
            self.done.push(id);
        } else {
            self.ready.push(id);
        }
    }

    /// Whether [`Ops::settle`] has anything to do.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.done.is_empty()
    }

    /// Once per event: answer completed operations that reached the front of their queue
    /// (`refusal`: this master cannot stand by its answers, and why) and start what may start.
    /// Starting can complete an operation at once; its queue is then looked at again, here.
    pub fn settle(&mut self, ctx: &mut Ctx, refusal: Option<&str>) {
        // A collection queues behind the DELETE that asked for it, in the key's queue.
        for (key, version) in std::mem::take(&mut self.to_collect) {
            let kind = OpKind::Purge(Box::new(PurgeOp::new(version)));
            self.add(ctx, None, 0, key, kind);
        }
        while self.has_ready() {
            // Finishing answers and forgets; it completes nothing, so `done` does not grow.
            let mut done = std::mem::take(&mut self.done);
            for id in done.drain(..) {
                self.finish(ctx, id, refusal);
            }
            self.done = done;
            // A look can start ops that complete at once: they join the lists as we go.
            let mut i = 0;
            while i < self.ready.len() {
                let id = self.ready[i];
                i += 1;
                self.look_at(ctx, id, refusal);
            }
            self.ready.clear();
        }
    }

    /// One look at the queue of op `id`'s key (see [`Queues::pass`]).
    fn look_at(&mut self, ctx: &mut Ctx, id: OpId, refusal: Option<&str>) {
        let Some(op) = self.slab.get(id) else {
            return;
        };
        if self
            .queues
            .pass(&self.slab, QueueKey::of(op), id, &mut self.scratch)
        {
            return self.finish(ctx, id, refusal);
        }
        let mut pass = std::mem::take(&mut self.scratch);
        for f in pass.finished.drain(..) {
            self.finish(ctx, f, refusal);
        }
        for s in pass.to_start.drain(..) {
            self.start(ctx, s);
        }
        self.scratch = pass;
        // A READ that has to wait behind a write gets its own deadline timer.
        if self
            .slab
            .get(id)
            .is_some_and(|op| !op.started && op.deadline.is_none())
        {
            self.arm_deadline(id, ctx.timers);
        }
    }

    /// Send the reply of a completed op that has left its queue, and forget it.
    fn finish(&mut self, ctx: &mut Ctx, id: OpId, refusal: Option<&str>) {
        let op = self.slab.remove(id);
        if let OpKind::Copy(_) = op.kind {
            ctx.repairs.copy_ended();
        }
        // An exactly-once change that failed for want of slaves (every one chosen died, or none
        // was live: a primary cut from its slaves) or whose outcome this master could not
        // learn: without a lease, the primary the slaves elect can learn it, so the client is
        // told to send it there rather than left not knowing. Not recorded as its answer: a
        // resend here asks the slaves again.
        // The same while every slave is gone and may come back (`Members::drop`): this master
        // may be cut off from them, and a resend here waits for them (RECALL defers).
        let all_gone =
            refusal.is_none() && ctx.slaves.live_count() == 0 && ctx.slaves.may_return(ctx.now);
        let why_gone = "every slave was dropped; this master may be cut off from them";
        let sent_on_why = refusal.or(all_gone.then_some(why_gone));
        let sent_on = sent_on_why.is_some()
            && exactly_once(&op.kind)
            && matches!(
                op.reply,
                Some(Body::Error {
                    code: ErrorCode::NoSlaves | ErrorCode::Timeout,
                    ..
                })
            );
        if let (Some(w), Some(reply), false) = (op.writer(), op.reply.as_ref(), sent_on) {
            self.records.answered(w, reply, ctx.now);
        }
        let reply = match (op.reply, refusal) {
            (Some(_), _) if sent_on => Some(cannot_vouch(
                &op.kind,
                sent_on_why.expect("set with sent_on"),
            )),
            // Without a live lease a newer primary may exist: say nothing we cannot stand by.
            (Some(r), Some(why)) if !matches!(r, Body::Error { .. }) => {
                Some(cannot_vouch(&op.kind, why))
            }
            (reply, _) => reply,
        };
        if let Some(n) = op.client.and_then(|c| self.owed.get_mut(c)) {
            *n = n.saturating_sub(1);
        }
        let kind = match op.kind {
            OpKind::Read(_) => Some(READ),
            OpKind::Write(_) => Some(WRITE),
            OpKind::Update(_) => Some(UPDATE),
            OpKind::Copy(_) | OpKind::Purge(_) => None,
        };
        if let (Some(kind), Some(reply)) = (kind, &reply) {
            self.stats.answered(kind, reply, Some(op.arrived), ctx.now);
        }
        if let Some(conn) = op.client {
            self.budget.release(conn, op.reserve);
        }
        if let (Some(conn), Some(reply)) = (op.client, reply) {
            ctx.out.send(conn, op.req_id, reply);
        }
    }

    /// The client went away: its ops finish (a write already sent must still commit or fail
    /// cleanly) but nobody is told.
    pub fn orphan(&mut self, conn: ConnId) {
        if let Some(n) = self.owed.get_mut(conn) {
            *n = 0;
        }
        self.budget.forget(conn);
        for (_, op) in self.slab.iter_mut() {
            if op.client == Some(conn) {
                op.client = None;
            }
        }
    }

    /// This master stepped down: every open operation is answered with what it can still say.
    pub fn fail_all(&mut self, timers: &mut Timers, why: &str) {
        // A later term learns what became of a write from the slaves, not from this one.
        self.records.clear();
        let open: Vec<OpId> = self
            .slab
            .iter()
            .filter(|(_, op)| op.is_open())
            .map(|(id, _)| id)
            .collect();
        for id in open {
            let reply = cannot_vouch(&self.slab[id].kind, why);
            self.complete(timers, id, reply);
        }
    }

    /// The backup confirmed SYNCs (or went away): commit the writes that waited for it.
    pub fn release_sync_waiters(&mut self, ctx: &mut Ctx) {
        for id in std::mem::take(&mut self.sync_waiters) {
            let Some(op) = self.slab.get_mut(id).filter(|op| op.is_open()) else {
                continue;
            };
            let (r, kind) = op.split(id);
            let w = match kind {
                OpKind::Write(w) => Some(w),
                OpKind::Update(u) => u.writing(),
                _ => None,
            };
            if let Some(w) = w.filter(|w| w.all_answered()) {
                let step = w.commit(&r, ctx);
                if !matches!(step, Step::AwaitBackup) {
                    if let Some(acked) = op.acked_at {
                        let waited = ctx.now.saturating_duration_since(acked);
                        self.stats.backup.record(waited);
                    }
                }
                self.apply(ctx.timers, id, step);
            }
        }
    }

    /// Start again the writes that waited for slaves (one registered, or the grace ended).
    pub fn restart_deferred(&mut self, ctx: &mut Ctx) {
        for id in std::mem::take(&mut self.deferred) {
            // The slot may have been reused (the id may even be here twice: a deferred op that
            // timed out, and the one in its slot): only a started write still waiting is ours.
            let waiting = self.slab.get(id).is_some_and(|op| {
                op.started
                    && op.is_open()
                    && match &op.kind {
                        OpKind::Write(w) => w.is_deferred(),
                        OpKind::Update(u) => u.is_deferred(),
                        _ => false,
                    }
            });
            if waiting {
                self.start(ctx, id);
            }
        }
    }

    /// The request's deadline passed.
    fn on_deadline(&mut self, ctx: &mut Ctx, id: OpId) {
        if let Some(op) = self.slab.get_mut(id).filter(|op| op.is_open()) {
            let reply = op.timed_out(id, ctx);
            self.complete(ctx.timers, id, reply);
        }
    }

    /// A READ's retry timer fired.
    fn on_read_retry(&mut self, ctx: &mut Ctx, id: OpId) {
        let Some(op) = self.slab.get_mut(id).filter(|op| op.is_open()) else {
            return;
        };
        if ctx.now >= op.deadline_at {
            return self.on_deadline(ctx, id);
        }
        let (r, kind) = op.split(id);
        let step = match kind {
            OpKind::Read(rd) => rd.retry(&r, ctx, &mut self.subs, &mut self.spread),
            OpKind::Update(u) => u.retry(&r, ctx, &mut self.subs, &mut self.spread),
            _ => return,
        };
        self.apply(ctx.timers, id, step);
    }

    /// A slave ACKed a STORE.
    fn on_ack(&mut self, ctx: &mut Ctx, sub: u64, from: SlaveIdx, version: u64) {
        // A late ACK for a finished op, or one from a slave the STORE was not sent to.
        if let Some(s) = self.subs.take_answer(sub, from, ctx.timers) {
            let op = &mut self.slab[s.op];
            if !matches!(op.kind, OpKind::Purge(_)) {
                let took = ctx.now.saturating_duration_since(s.sent);
                self.stats.service[0].record(took);
            }
            let step = op.acked(s.op, ctx, &mut self.subs, sub, from, version);
            if matches!(&op.kind, OpKind::Write(w) if w.all_answered()) && op.acked_at.is_none() {
                op.acked_at = Some(ctx.now);
                let took = ctx.now.saturating_duration_since(op.started_at);
                self.stats.replication.record(took);
            }
            self.apply(ctx.timers, s.op, step);
        }
    }

    /// A slave answered a FETCH (`None`: it holds nothing for the key).
    pub fn on_fetched(
        &mut self,
        ctx: &mut Ctx,
        sub: u64,
        from: SlaveIdx,
        answer: Option<(u64, Vec<u8>)>,
    ) {
        if let Some(s) = self.subs.take_answer(sub, from, ctx.timers) {
            let took = ctx.now.saturating_duration_since(s.sent);
            self.stats.service[1].record(took);
            if let (Some((_, value)), Some(op)) = (&answer, self.slab.get(s.op)) {
                self.budget.learn(op.hash, value.len());
            }
            let (subs, spread) = (&mut self.subs, &mut self.spread);
            let step = self.slab[s.op].fetched(s.op, ctx, subs, spread, sub, from, answer);
            self.apply(ctx.timers, s.op, step);
        }
    }

    /// A sub-request will not be answered (its slave died or refused). Writes move to the next
    /// slave in rendezvous order; reads ask another holder.
    pub fn on_sub_failed(&mut self, ctx: &mut Ctx, sub: u64, refusal: Option<ErrorCode>) {
        let Some(s) = self.subs.take(sub, ctx.timers) else {
            return;
        };
        if let Some(op) = self.slab.get_mut(s.op).filter(|op| op.is_open()) {
            let (subs, spread) = (&mut self.subs, &mut self.spread);
            let step = op.sub_failed(s.op, ctx, subs, spread, sub, refusal);
            self.apply(ctx.timers, s.op, step);
        }
    }

    /// The slave is dead: every sub-request sent to it fails, in the order they were sent.
    pub fn on_slave_dropped(&mut self, ctx: &mut Ctx, slave: SlaveIdx) {
        for sub in self.subs.sent_to(slave) {
            self.on_sub_failed(ctx, sub, None);
        }
        self.subs.forget_deadlines(slave);
    }

    /// The STOREs whose ACK deadline passed by `now` (see `subs.rs`), into `out` as
    /// `Timer::Ack` with the deadline, to be handed back to [`Ops::on_timer`].
    pub fn acks_due(&mut self, now: Instant, out: &mut Vec<(Instant, Timer)>) {
        self.subs.acks_due(now, out);
    }

    /// The earliest ACK deadline of a STORE.
    pub fn next_ack_deadline(&self) -> Option<Instant> {
        self.subs.next_ack_deadline()
    }

    /// A STORE's ACK is late. A write moves to a replacement slave when one is left (the slow
    /// slave may still store it: that copy simply does not count); otherwise it waits.
    fn on_ack_late(&mut self, ctx: &mut Ctx, sub: u64) {
        let Late::Slow { op, again } = self.subs.ack_timeout(ctx, sub) else {
            return;
        };
        let moves_on = self
            .slab
            .get(op)
            .filter(|o| o.is_open())
            .is_some_and(|o| o.moves_on_from_slow(ctx.slaves));
        if moves_on {
            self.on_sub_failed(ctx, sub, None);
        } else {
            self.subs.wait_longer(sub, again, ctx.timers);
        }
    }

    /// A timer of an operation or a sub-request fired.
    pub fn on_timer(&mut self, ctx: &mut Ctx, timer: Timer) {
        match timer {
            Timer::Ack(sub) => self.on_ack_late(ctx, sub),
            Timer::ReadRetry(id) => self.on_read_retry(ctx, id),
            Timer::Deadline(id) => self.on_deadline(ctx, id),
            _ => {}
        }
    }

    /// A slave's frame: the answer to one of its sub-requests (or a PONG).
    pub fn on_reply(&mut self, ctx: &mut Ctx, from: SlaveIdx, req: u64, body: Body) {
        match body {
            Body::Ack { version } => self.on_ack(ctx, req, from, version),
            Body::Fetched { version, value } => {
                self.on_fetched(ctx, req, from, Some((version, value)))
            }
            Body::NotFound => self.on_fetched(ctx, req, from, None),
            Body::Recalled { held, stored, kept } => {
                if let Some(s) = self.subs.take_answer(req, from, ctx.timers) {
                    let (subs, spread) = (&mut self.subs, &mut self.spread);
                    let recall = (held, stored, kept);
                    let step = self.slab[s.op].recalled(s.op, ctx, subs, spread, req, from, recall);
                    self.apply(ctx.timers, s.op, step);
                }
            }
            Body::Pong => {}
            Body::Error { code, text } => {
                let id = &ctx.slaves.get(from).id;
                warn!(
                    "slave '{id}' answered request {req} with {}: {text}",
                    code.name()
                );
                // A slave may refuse only what was sent to it.
                if self.subs.is_sent_to(req, from) {
                    self.on_sub_failed(ctx, req, Some(code));
                }
            }
            other => {
                let text = format!("a slave may not send {:?}", other.opcode());
                let conn = ctx.slaves.get(from).conn;
                ctx.out
                    .send(conn, req, Body::error(ErrorCode::BadRequest, text));
            }
        }
    }
}

/// The answer to an exactly-once request numbered below its client's own `acked` mark.
fn below_acked(id: WriteId) -> Body {
    let text = format!(
        "write {} of client {:x} is below the client's own acked mark {}; not applied",
        id.seq, id.client, id.acked
    );
    Body::error(ErrorCode::BadRequest, text)
}

//! One operation in flight: who asked (if anyone), its key, its deadline, its reply once known,
//! and the state of its kind.

use std::time::Instant;

use dsm_net::TimerId;
use dsm_wire::{Body, ErrorCode};

use crate::ctx::Ctx;
use crate::idmap::{ConnId, OpId};
use crate::key::Key;
use crate::keymap::SlaveIdx;
use crate::slaves::SlaveTable;
use crate::timer::Timers;

use super::copy::CopyOp;
use super::purge::PurgeOp;
use super::read::{ReadOp, ReadSpread};
use super::step::{OpRef, Step};
use super::subs::{Pending, SubTable};
use super::update::UpdateOp;
use super::write::WriteOp;

pub(crate) struct Op {
    /// None once the client has gone (and for copies): the work finishes, the reply is dropped.
    pub client: Option<ConnId>,
    /// Bytes this op holds of its client's budget (see `budget.rs`), released when answered.
    pub reserve: u32,
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
    /// For the metrics (`metrics.rs`): when it came, started, and (a write) got its last ACK.
    pub arrived: Instant,
    pub started_at: Instant,
    pub acked_at: Option<Instant>,
}

pub(crate) enum OpKind {
    Write(WriteOp),
    Read(ReadOp),
    /// An internal copy made by re-replication (no client). Boxed, like a read's probe: it
    /// is rare, and the largest kind would set the size of every op.
    Copy(Box<CopyOp>),
    /// SET, DELETE, INCR: a write that depends on the key's state. Boxed, as rarer.
    Update(Box<UpdateOp>),
    /// Collecting a tombstone (no client).
    Purge(Box<PurgeOp>),
}

impl Op {
    pub fn is_open(&self) -> bool {
        self.reply.is_none()
    }

    pub fn is_read(&self) -> bool {
        matches!(self.kind, OpKind::Read(_))
    }

    /// What its kind's logic reads of the op, and the kind itself.
    #[inline]
    pub(super) fn split(&mut self, id: OpId) -> (OpRef<'_>, &mut OpKind) {
        let op = OpRef {
            id,
            key: &self.key,
            hash: self.hash,
            req_id: self.req_id,
            deadline_at: self.deadline_at,
            answer: self.reserve as usize,
        };
        (op, &mut self.kind)
    }

    /// Start it (its turn in the queue came).
    #[inline]
    pub fn start(
        &mut self,
        id: OpId,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
    ) -> Step {
        self.started = true;
        let (r, kind) = self.split(id);
        match kind {
            OpKind::Write(w) => w.start(&r, ctx, subs),
            OpKind::Read(rd) => rd.start(&r, ctx, subs, spread),
            OpKind::Copy(c) => c.start(&r, ctx, subs),
            OpKind::Update(u) => u.start(&r, ctx, subs, spread),
            OpKind::Purge(p) => p.start(&r, ctx, subs),
        }
    }

    /// Its deadline passed: the reply.
    #[inline]
    pub fn timed_out(&mut self, id: OpId, ctx: &mut Ctx) -> Body {
        self.deadline = None;
        let (r, kind) = self.split(id);
        match kind {
            OpKind::Write(w) => w.timed_out(&r, ctx),
            OpKind::Read(rd) => rd.timed_out(&r),
            OpKind::Copy(c) => c.timed_out(&r, ctx),
            OpKind::Update(u) => u.timed_out(&r, ctx),
            OpKind::Purge(_) => Body::Ok,
        }
    }

    /// The slave a STORE went to ACKed it.
    #[inline]
    pub fn acked(
        &mut self,
        id: OpId,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        sub: u64,
        from: SlaveIdx,
        version: u64,
    ) -> Step {
        let (r, kind) = self.split(id);
        match kind {
            OpKind::Write(w) => w.acked(&r, ctx, sub, from, version),
            OpKind::Copy(c) => c.acked(&r, ctx, subs, sub, from, version),
            OpKind::Update(u) => u.acked(&r, ctx, sub, from, version),
            OpKind::Purge(p) => p.acked(&r, ctx, sub),
            OpKind::Read(_) => Step::Wait,
        }
    }

    /// The slave a FETCH went to answered it (`None`: it holds nothing for the key).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn fetched(
        &mut self,
        id: OpId,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        sub: u64,
        from: SlaveIdx,
        answer: Option<(u64, Vec<u8>)>,
    ) -> Step {
        let (r, kind) = self.split(id);
        match kind {
            OpKind::Read(rd) => rd.answered(&r, ctx, subs, spread, sub, from, answer),
            OpKind::Copy(c) => c.fetched(&r, ctx, subs, sub, answer),
            OpKind::Update(u) => u.fetched(&r, ctx, subs, spread, sub, from, answer),
            OpKind::Write(_) | OpKind::Purge(_) => Step::Wait,
        }
    }

    /// A slave answered the RECALL of an exactly-once write sent again.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn recalled(
        &mut self,
        id: OpId,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        sub: u64,
        from: SlaveIdx,
        recall: (u64, u64, Option<Vec<u8>>),
    ) -> Step {
        let (r, kind) = self.split(id);
        match kind {
            OpKind::Write(w) => {
                let (held, stored, kept) = recall;
                w.recalled(&r, ctx, subs, sub, from, held, stored, kept)
            }
            OpKind::Update(u) => u.recalled(&r, ctx, subs, spread, sub, from, recall),
            _ => Step::Wait,
        }
    }

    /// The writer of an exactly-once write (WRITE_ONCE, or a SET, DELETE or INCR in ONCE).
    pub fn writer(&self) -> Option<dsm_wire::WriteId> {
        match &self.kind {
            OpKind::Write(w) => w.writer(),
            OpKind::Update(u) => u.writer(),
            _ => None,
        }
    }

    /// Whether the op would rather move on than wait for a slow slave's ACK: a write with
    /// a replacement left; and a PURGE always, which is optional work that holds its key's
    /// queue (a slave that answers PINGs but not the PURGE would block every client of the
    /// key): it gives up, and the tombstone stays. Copies wait (they have time; a write has a
    /// client).
    pub fn moves_on_from_slow(&self, slaves: &SlaveTable) -> bool {
        match &self.kind {
            OpKind::Write(w) => w.can_replace(slaves),
            OpKind::Update(u) => u.can_replace(slaves),
            OpKind::Purge(_) => true,
            _ => false,
        }
    }

    /// A sub-request will not be answered (`refusal`: its slave refused it with this code).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn sub_failed(
        &mut self,
        id: OpId,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        sub: u64,
        refusal: Option<ErrorCode>,
    ) -> Step {
        let (r, kind) = self.split(id);
        match kind {
            OpKind::Write(w) => w.sub_failed(&r, ctx, subs, sub, refusal),
            OpKind::Read(rd) => rd.sub_failed(&r, ctx, subs, spread, sub),
            OpKind::Copy(c) => c.sub_failed(&r, ctx, subs, sub),
            OpKind::Update(u) => u.sub_failed(&r, ctx, subs, spread, sub, refusal),
            OpKind::Purge(p) => p.sub_failed(&r, ctx, sub),
        }
    }

    /// The op is over: stop its timers and hand over the sub-requests it still has out.
    pub fn end(&mut self, timers: &mut Timers) -> Pending {
        if let Some(t) = self.deadline.take() {
            timers.cancel(t);
        }
        match &mut self.kind {
            OpKind::Write(w) => std::mem::take(&mut w.pending),
            OpKind::Copy(c) => std::mem::take(&mut c.pending),
            OpKind::Read(r) => r.take_pending(timers),
            OpKind::Update(u) => u.take_pending(timers),
            OpKind::Purge(p) => std::mem::take(&mut p.pending),
        }
    }
}

/// A WRITE_ONCE, or a change sent in ONCE: a master that took it may say it cannot vouch for
/// it, and the client sends it again (the next primary finds out whether it was applied).
pub(crate) fn exactly_once(kind: &OpKind) -> bool {
    match kind {
        OpKind::Write(w) => w.writer().is_some(),
        OpKind::Update(u) => u.writer().is_some(),
        _ => false,
    }
}

/// The answer to an operation this master took but cannot stand by (it lost its lease, or
/// stepped down). NOT_PRIMARY tells a client to send the request to another master, which is
/// safe only for a request that had no effect: a READ. A WRITE may already be stored, and sent
/// again it would take effect a second time, after whatever was written in between; so it is
/// answered TIMEOUT, outcome unknown, and the client does not resend it. An exactly-once
/// write (WRITE_ONCE, or a SET, DELETE or INCR sent in ONCE) may be sent again (the next
/// primary finds out whether it was applied): NOT_PRIMARY.
pub(crate) fn cannot_vouch(kind: &OpKind, why: &str) -> Body {
    let once = exactly_once(kind);
    match kind {
        OpKind::Write(_) | OpKind::Update(_) if once => {
            // `TAKEN` opens the reason, after the primary's address if `why` names it.
            let (named, reason) = match dsm_wire::primary_named(why) {
                Some(addr) => (Some(addr), why.split_once("; ").map_or("", |(_, r)| r)),
                None => (None, why),
            };
            let reason = format!(
                "{}{reason}; send the write again, as it is, to the primary",
                dsm_wire::TAKEN
            );
            let text = match named {
                Some(addr) => dsm_wire::naming_primary(addr, &reason),
                None => reason,
            };
            Body::error(ErrorCode::NotPrimary, text)
        }
        OpKind::Write(_) | OpKind::Update(_) => Body::error(
            ErrorCode::Timeout,
            format!("{why}; the write may or may not have happened"),
        ),
        _ => Body::error(ErrorCode::NotPrimary, format!("{why}; outcome unknown")),
    }
}

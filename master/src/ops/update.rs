//! The changes that depend on the key's current state: SET (a WRITE answered with its version,
//! optionally compare-and-set), DELETE (a tombstone) and INCR. Each runs alone in its key's
//! queue, like a WRITE, so what it reads of the key cannot change before it writes: the
//! master decides a compare-and-set from its key map with no extra round trip, and reads the
//! value first only for INCR, or when the map may be wrong about the key (a probe). Sent
//! exactly-once (ONCE), its STOREs name the writer, and one sent again first asks the slaves
//! whether an earlier copy took effect (RECALL, as for WRITE_ONCE) before anything is decided.

use std::time::Instant;

use dsm_net::SharedBytes;
use dsm_wire::{plain_version, Body, ErrorCode, WriteId};

use crate::ctx::Ctx;
use crate::keymap::SlaveIdx;
use crate::slaves::SlaveTable;

use super::read::{ReadOp, ReadSpread};
use super::step::{OpRef, Step};
use super::subs::{Pending, SubTable};
use super::write::{Reply, WriteOp};

/// What the client asked for.
pub(crate) enum Change {
    Set {
        value: Vec<u8>,
        expected: Option<u64>,
    },
    Delete {
        expected: Option<u64>,
    },
    Incr {
        delta: i64,
    },
}

pub(crate) struct UpdateOp {
    change: Change,
    /// The writer of an exactly-once change (ONCE).
    writer: Option<WriteId>,
    phase: Phase,
    /// FETCHes the read phase left unanswered when it decided (a retry to another holder,
    /// a probe's other slaves): still in the sub table until the op ends, so that a late
    /// answer finds its op, and is cancelled with the op's other sub-requests.
    read_leftovers: Pending,
}

enum Phase {
    /// Not started, or decided without writing.
    Idle,
    /// An exactly-once change sent again: asking the slaves whether an earlier copy took
    /// effect, before deciding anything (a probe-only [`WriteOp`]).
    Recalling(WriteOp),
    /// Reading the key's value (INCR) or its true version (a doubted key).
    Reading(ReadOp),
    Writing(WriteOp),
}

impl UpdateOp {
    /// `once`: the writer and `resent_ms` of an exactly-once change (ONCE), arrived `now`.
    pub fn new(change: Change, once: Option<(WriteId, u32)>, now: Instant) -> UpdateOp {
        let phase = match once {
            Some((id, resent_ms)) if resent_ms > 0 => {
                Phase::Recalling(WriteOp::probe(reply_of(&change), id, resent_ms, now))
            }
            _ => Phase::Idle,
        };
        UpdateOp {
            change,
            writer: once.map(|(id, _)| id),
            phase,
            read_leftovers: Pending::default(),
        }
    }

    /// The writer of an exactly-once change.
    pub fn writer(&self) -> Option<WriteId> {
        self.writer
    }

    /// A write that waits for slaves after a takeover (see [`WriteOp::is_deferred`]).
    /// The length of the value a SET writes (none for DELETE and INCR).
    pub fn set_len(&self) -> Option<usize> {
        match &self.change {
            Change::Set { value, .. } => Some(value.len()),
            Change::Delete { .. } | Change::Incr { .. } => None,
        }
    }

    pub fn is_deferred(&self) -> bool {
        matches!(&self.phase, Phase::Writing(w) | Phase::Recalling(w) if w.is_deferred())
    }

    pub fn writing(&mut self) -> Option<&mut WriteOp> {
        match &mut self.phase {
            Phase::Writing(w) | Phase::Recalling(w) => Some(w),
            _ => None,
        }
    }

    /// A DELETE whose tombstone is recorded on every copy it wants: it may be collected.
    pub fn tombstone_recorded(&self) -> Option<u64> {
        match (&self.change, &self.phase) {
            (Change::Delete { .. }, Phase::Writing(w)) => w.recorded_tombstone(),
            _ => None,
        }
    }

    pub fn start(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
    ) -> Step {
        match &mut self.phase {
            // A deferred write starting again.
            Phase::Writing(w) => return w.start(op, ctx, subs),
            Phase::Recalling(w) => {
                let step = w.start(op, ctx, subs);
                return self.after_recall(op, ctx, subs, spread, step);
            }
            Phase::Idle | Phase::Reading(_) => {}
        }
        self.begin(op, ctx, subs, spread)
    }

    /// Decide the change: read the key first if it must, else at once from the key map.
    fn begin(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
    ) -> Step {
        let must_read =
            matches!(self.change, Change::Incr { .. }) || ctx.doubts.needs_probe(op.key, ctx.keys);
        if must_read {
            let mut read = ReadOp::versioned();
            let step = read.start(op, ctx, subs, spread);
            self.phase = Phase::Reading(read);
            return self.after_read(op, ctx, subs, step);
        }
        let current = ctx
            .keys
            .get_hashed(op.hash, op.key)
            .filter(|e| !e.deleted())
            .map(|e| e.plain());
        self.decide(op, ctx, subs, current, None)
    }

    /// What the RECALL phase came to: the first answer again, TIMEOUT, or (no earlier copy took
    /// effect, and none can) on to deciding the change now.
    fn after_recall(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        step: Step,
    ) -> Step {
        match &self.phase {
            Phase::Recalling(w) if w.recall_clear() => {
                self.phase = Phase::Idle;
                self.begin(op, ctx, subs, spread)
            }
            _ => step,
        }
    }

    /// A slave answered the RECALL of a change sent again.
    #[allow(clippy::too_many_arguments)]
    pub fn recalled(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        sub: u64,
        from: SlaveIdx,
        recall: (u64, u64, Option<Vec<u8>>),
    ) -> Step {
        let Phase::Recalling(w) = &mut self.phase else {
            return Step::Wait;
        };
        let (held, stored, kept) = recall;
        let step = w.recalled(op, ctx, subs, sub, from, held, stored, kept);
        self.after_recall(op, ctx, subs, spread, step)
    }

    /// What the read phase decided: the key's state, or an error that ends the op.
    fn after_read(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable, step: Step) -> Step {
        match step {
            Step::Done(Body::Versioned { version, value }) => {
                self.decide(op, ctx, subs, Some(plain_version(version)), Some(value))
            }
            Step::Done(Body::NotFound) => self.decide(op, ctx, subs, None, None),
            other => other,
        }
    }

    /// The key's committed state is `current` (its version; `None`: it does not exist) and,
    /// when read, `value`: answer at once, or start the write.
    fn decide(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        current: Option<u64>,
        value: Option<Vec<u8>>,
    ) -> Step {
        if let Phase::Reading(read) = &mut self.phase {
            for &sub in read.take_pending(ctx.timers).iter() {
                self.read_leftovers.push(sub);
            }
        }
        self.phase = Phase::Idle;
        let now = current.unwrap_or(0);
        let expected = match &self.change {
            Change::Set { expected, .. } | Change::Delete { expected } => *expected,
            Change::Incr { .. } => None,
        };
        if expected.is_some_and(|e| e != now) {
            return Step::Done(Body::Conflict { version: now });
        }
        let write = match &mut self.change {
            Change::Set { value, .. } => WriteOp::new(value[..].into(), Reply::Version, false),
            Change::Delete { .. } if current.is_none() => return Step::Done(Body::NotFound),
            Change::Delete { .. } => WriteOp::new(SharedBytes::default(), Reply::Version, true),
            Change::Incr { delta } => match incremented(value.as_deref(), *delta) {
                Ok(text) => WriteOp::new(text.as_bytes().into(), Reply::Counter, false),
                Err(reply) => return Step::Done(reply),
            },
        };
        if let Change::Set { value, .. } = &mut self.change {
            *value = Vec::new();
        }
        let mut write = match self.writer {
            Some(id) => write.for_writer(id, ctx.now),
            None => write,
        };
        let step = write.start(op, ctx, subs);
        self.phase = Phase::Writing(write);
        step
    }

    pub fn retry(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
    ) -> Step {
        match &mut self.phase {
            Phase::Reading(r) => {
                let step = r.retry(op, ctx, subs, spread);
                self.after_read(op, ctx, subs, step)
            }
            _ => Step::Wait,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn fetched(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        sub: u64,
        from: SlaveIdx,
        answer: Option<(u64, Vec<u8>)>,
    ) -> Step {
        self.read_leftovers.retain(|&p| p != sub);
        match &mut self.phase {
            Phase::Reading(r) => {
                let step = r.answered(op, ctx, subs, spread, sub, from, answer);
                self.after_read(op, ctx, subs, step)
            }
            _ => Step::Wait,
        }
    }

    pub fn acked(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        sub: u64,
        from: SlaveIdx,
        version: u64,
    ) -> Step {
        match &mut self.phase {
            Phase::Writing(w) => w.acked(op, ctx, sub, from, version),
            _ => Step::Wait,
        }
    }

    pub fn sub_failed(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        sub: u64,
        refusal: Option<ErrorCode>,
    ) -> Step {
        if self.read_leftovers.contains(&sub) {
            // A FETCH of the finished read phase: the write does not wait for it.
            self.read_leftovers.retain(|&p| p != sub);
            return Step::Wait;
        }
        match &mut self.phase {
            Phase::Reading(r) => {
                let step = r.sub_failed(op, ctx, subs, spread, sub);
                self.after_read(op, ctx, subs, step)
            }
            Phase::Writing(w) => w.sub_failed(op, ctx, subs, sub, refusal),
            Phase::Recalling(w) => {
                let step = w.sub_failed(op, ctx, subs, sub, refusal);
                self.after_recall(op, ctx, subs, spread, step)
            }
            Phase::Idle => Step::Wait,
        }
    }

    pub fn can_replace(&self, slaves: &SlaveTable) -> bool {
        matches!(&self.phase, Phase::Writing(w) if w.can_replace(slaves))
    }

    pub fn timed_out(&mut self, op: &OpRef, ctx: &mut Ctx) -> Body {
        match &mut self.phase {
            Phase::Reading(r) => r.timed_out(op),
            Phase::Writing(w) | Phase::Recalling(w) => w.timed_out(op, ctx),
            Phase::Idle => Body::error(ErrorCode::Timeout, "deadline passed"),
        }
    }

    pub fn take_pending(&mut self, timers: &mut crate::timer::Timers) -> Pending {
        let mut pending = match &mut self.phase {
            Phase::Reading(r) => r.take_pending(timers),
            Phase::Writing(w) | Phase::Recalling(w) => std::mem::take(&mut w.pending),
            Phase::Idle => Pending::default(),
        };
        for &sub in std::mem::take(&mut self.read_leftovers).iter() {
            pending.push(sub);
        }
        pending
    }
}

/// How the change is answered once it took effect.
fn reply_of(change: &Change) -> Reply {
    match change {
        Change::Set { .. } | Change::Delete { .. } => Reply::Version,
        Change::Incr { .. } => Reply::Counter,
    }
}

/// INCR's new value: `held` (decimal text; `None`: the key is missing, 0) plus `delta`.
pub(crate) fn incremented(held: Option<&[u8]>, delta: i64) -> Result<String, Body> {
    let n = match held {
        None => 0,
        Some(bytes) => match std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(n) => n,
            None => {
                let text = "the value is not a signed 64-bit decimal integer";
                return Err(Body::error(ErrorCode::NotAnInteger, text));
            }
        },
    };
    match n.checked_add(delta) {
        Some(sum) => Ok(sum.to_string()),
        None => Err(Body::error(
            ErrorCode::Overflow,
            format!("{n} + {delta} is outside the signed 64-bit range; nothing was written"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_add_and_refuse() {
        assert_eq!(incremented(None, 5), Ok("5".into()));
        assert_eq!(incremented(Some(b"-3"), 1), Ok("-2".into()));
        assert_eq!(incremented(Some(b"10"), -11), Ok("-1".into()));
        let code = |r: Result<String, Body>| match r {
            Err(Body::Error { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(incremented(Some(b"abc"), 1)), ErrorCode::NotAnInteger);
        assert_eq!(code(incremented(Some(b" 1"), 1)), ErrorCode::NotAnInteger);
        assert_eq!(code(incremented(Some(b""), 1)), ErrorCode::NotAnInteger);
        let max = i64::MAX.to_string();
        assert_eq!(
            code(incremented(Some(max.as_bytes()), 1)),
            ErrorCode::Overflow
        );
        assert_eq!(
            code(incremented(None, i64::MIN).and_then(|s| incremented(Some(s.as_bytes()), -1))),
            ErrorCode::Overflow
        );
    }
}

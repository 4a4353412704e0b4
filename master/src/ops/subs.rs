//! Sub-requests: the STOREs and FETCHes an operation sends to slaves, each with its own request
//! id, and the one way to send them ([`SubTable::send`]); and the cursor over the slaves a
//! write or a copy may try next ([`Candidates`]).
//!
//! A STORE's ACK deadline is not a timer in the wheel: it goes at the back of its slave's
//! queue of deadlines ([`AckDeadlines`]), looked at once per loop turn (`Master::on_tick`).
//! One wheel insert and one cancel per STORE were 5% of the master's time at 400k writes/s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dsm_net::TimerId;

use crate::ctx::Ctx;
use crate::effect::Effect;
use crate::few::Few;
use crate::idmap::{IdMap, OpId};
use crate::keymap::SlaveIdx;
use crate::outbox::Shared;
use crate::slaves::{Ranked, SlaveTable};
use crate::timer::{Timer, Timers};

/// Sub-request ids of one operation: one FETCH per read, R STOREs per write, usually.
pub(crate) type Pending = Few<u64, 2>;

/// A request the master sent to a slave on behalf of an operation.
#[derive(Debug)]
pub(crate) struct Sub {
    pub op: OpId,
    pub slave: SlaveIdx,
    /// The ACK deadline of a PURGE, or of a STORE waited for longer
    /// ([`SubTable::wait_longer`]); a STORE's first deadline is in [`AckDeadlines`].
    pub timer: Option<TimerId>,
    /// When it was sent, for the metrics.
    pub sent: Instant,
    /// Bytes it moves: the frame sent, and the answer expected (a FETCH's value).
    bytes: usize,
}

/// The slowest a slave that is alive and working may take in (or send back) the bytes of its
/// sub-requests. A deadline allows this rate for every byte queued to the slave ahead of the
/// sub-request and its own, on top of `--ack-timeout-ms` (or `--read-retry-ms`): a slave
/// receiving 1 MB STOREs queued eight deep is behind by design, not late. 16 MiB/s is a fifth
/// of what one slave drained on the loaded 2-core VM (`bench-results/large-values-2026-12-03.md`);
/// with 64-byte values the allowance is microseconds, so small requests time out as before.
pub(crate) const SLOWEST_DRAIN_BYTES_PER_SEC: u64 = 16 << 20;

/// What [`SLOWEST_DRAIN_BYTES_PER_SEC`] allows for `bytes`, in whole milliseconds (nothing
/// under 16 KiB: small requests keep their deadlines to the tick).
pub(crate) fn drain_allowance(bytes: usize) -> Duration {
    Duration::from_millis((bytes as u64).saturating_mul(1000) / SLOWEST_DRAIN_BYTES_PER_SEC)
}

/// Per slave, the ACK deadlines of the STOREs sent to it, in the order they were sent: a
/// slave answers its connection's frames in order, so a STORE cannot be ACKed before the ones
/// sent ahead of it, and its deadline is never taken to be earlier than theirs (with small
/// values the deadlines are `now + --ack-timeout-ms`, in order anyway; a STORE behind a large
/// one may get a later deadline than its own drain allowance says, never an earlier one).
/// Entries of sub-requests already answered or failed are skipped when they reach the front;
/// an ACK, nearly always for the front, pops it at once.
#[derive(Default)]
struct AckDeadlines {
    per_slave: Vec<VecDeque<(Instant, u64)>>,
}

impl AckDeadlines {
    /// `sub`, sent to `slave`, is due by `at` (or by the deadline of the STORE ahead of it).
    fn push(&mut self, slave: SlaveIdx, at: Instant, sub: u64) {
        let i = slave as usize;
        if self.per_slave.len() <= i {
            self.per_slave.resize_with(i + 1, VecDeque::new);
        }
        let q = &mut self.per_slave[i];
        let at = q.back().map_or(at, |&(ahead, _)| ahead.max(at));
        q.push_back((at, sub));
    }

    /// `sub`, sent to `slave`, is answered or failed: pop it if it is at the front.
    fn answered(&mut self, slave: SlaveIdx, sub: u64) {
        if let Some(q) = self.per_slave.get_mut(slave as usize) {
            if q.front().is_some_and(|&(_, s)| s == sub) {
                q.pop_front();
            }
        }
    }

    /// The earliest deadline at the front of a queue (may be that of a sub-request answered
    /// out of order: at most one early turn, which [`AckDeadlines::due`] clears).
    fn next_deadline(&self) -> Option<Instant> {
        self.per_slave
            .iter()
            .filter_map(|q| q.front().map(|&(at, _)| at))
            .min()
    }
}

pub(crate) struct SubTable {
    map: IdMap<u64, Sub>,
    next: u64,
    /// Per slave: bytes of its open sub-requests (sent and expected back).
    ahead: Vec<usize>,
    acks: AckDeadlines,
}

impl Default for SubTable {
    fn default() -> SubTable {
        SubTable {
            map: IdMap::default(),
            next: 1,
            ahead: Vec::new(),
            acks: AckDeadlines::default(),
        }
    }
}

impl SubTable {
    /// Send the sub-request `frame` makes from its request id to `slave`, for op `op`, that
    /// should bring back about `answer` bytes; with `acked`, the slave is suspected if no ACK
    /// comes within the ACK timeout, plus the time to drain what is queued to it ahead (see
    /// [`SLOWEST_DRAIN_BYTES_PER_SEC`]). Returns the id.
    pub fn send(
        &mut self,
        ctx: &mut Ctx,
        op: OpId,
        slave: SlaveIdx,
        acked: bool,
        answer: usize,
        frame: impl FnOnce(u64) -> Shared,
    ) -> u64 {
        let sub = self.next;
        self.next += 1;
        let shared = frame(sub);
        let bytes = shared.payload_len() + answer;
        let ahead = self.add_ahead(slave, bytes);
        if acked {
            let at = ctx.now + ctx.cfg.ack_timeout + drain_allowance(ahead);
            self.acks.push(slave, at, sub);
        }
        self.map.insert(
            sub,
            Sub {
                op,
                slave,
                timer: None,
                sent: ctx.now,
                bytes,
            },
        );
        ctx.out.shared(ctx.slaves.get(slave).conn, shared);
        sub
    }

    /// Count `bytes` more open at `slave`; returns the total now open there.
    fn add_ahead(&mut self, slave: SlaveIdx, bytes: usize) -> usize {
        let i = slave as usize;
        if self.ahead.len() <= i {
            self.ahead.resize(i + 1, 0);
        }
        self.ahead[i] += bytes;
        self.ahead[i]
    }

    fn forget_ahead(&mut self, s: &Sub) {
        if let Some(a) = self.ahead.get_mut(s.slave as usize) {
            *a = a.saturating_sub(s.bytes);
        }
    }

    /// The time [`SLOWEST_DRAIN_BYTES_PER_SEC`] allows `slave` for everything open there: a
    /// read waits this much longer before it asks another holder.
    pub fn allowance(&self, slave: SlaveIdx) -> Duration {
        drain_allowance(self.ahead.get(slave as usize).copied().unwrap_or(0))
    }

    /// [`SubTable::send`] for a request that is not a STORE or FETCH (a PURGE), ACKed.
    pub fn send_body(
        &mut self,
        ctx: &mut Ctx,
        op: OpId,
        slave: SlaveIdx,
        body: impl FnOnce(u64) -> dsm_wire::Body,
    ) -> u64 {
        let sub = self.next;
        self.next += 1;
        let at = ctx.now + ctx.cfg.ack_timeout + self.allowance(slave);
        let timer = Some(ctx.timers.insert(at, Timer::Ack(sub)));
        let sent = ctx.now;
        self.map.insert(
            sub,
            Sub {
                op,
                slave,
                timer,
                sent,
                bytes: 0,
            },
        );
        ctx.out.send(ctx.slaves.get(slave).conn, sub, body(sub));
        sub
    }

    /// Forget the sub-request (it was answered, or will not be) and stop its timer.
    pub fn take(&mut self, sub: u64, timers: &mut Timers) -> Option<Sub> {
        let s = self.map.remove(&sub)?;
        if let Some(t) = s.timer {
            timers.cancel(t);
        }
        self.acks.answered(s.slave, sub);
        self.forget_ahead(&s);
        Some(s)
    }

    /// [`SubTable::take`] of the answer `from` gave: only the slave it was sent to may answer
    /// it (the sub stays open for the right one).
    #[inline]
    pub fn take_answer(&mut self, sub: u64, from: SlaveIdx, timers: &mut Timers) -> Option<Sub> {
        // One lookup on the common path: take it, and put it back in the rare wrong case.
        let s = self.map.remove(&sub)?;
        if s.slave != from {
            self.map.insert(sub, s);
            return None;
        }
        if let Some(t) = s.timer {
            timers.cancel(t);
        }
        self.acks.answered(from, sub);
        self.forget_ahead(&s);
        Some(s)
    }

    /// The STOREs whose ACK deadline has passed by `now`, into `out` as `Timer::Ack` with the
    /// deadline, each slave's in the order sent; they leave the queues
    /// ([`SubTable::ack_timeout`] says what each means).
    pub fn acks_due(&mut self, now: Instant, out: &mut Vec<(Instant, Timer)>) {
        for (i, q) in self.acks.per_slave.iter_mut().enumerate() {
            while let Some(&(at, sub)) = q.front() {
                let open = self.map.get(&sub).is_some_and(|s| s.slave as usize == i);
                if open && at > now {
                    break;
                }
                q.pop_front();
                if open {
                    out.push((at, Timer::Ack(sub)));
                }
            }
        }
    }

    /// The earliest ACK deadline of a STORE (the wheel holds the other timers).
    pub fn next_ack_deadline(&self) -> Option<Instant> {
        self.acks.next_deadline()
    }

    /// Forget the ACK deadlines of the STOREs sent to `slave` (it is dropped: they failed).
    pub fn forget_deadlines(&mut self, slave: SlaveIdx) {
        if let Some(q) = self.acks.per_slave.get_mut(slave as usize) {
            q.clear();
        }
    }

    /// Whether sub-request `sub` is open and was sent to `slave` (only that slave may answer
    /// it, or refuse it).
    pub fn is_sent_to(&self, sub: u64, slave: SlaveIdx) -> bool {
        self.map.get(&sub).is_some_and(|s| s.slave == slave)
    }

    pub fn cancel(&mut self, sub: u64, timers: &mut Timers) {
        self.take(sub, timers);
    }

    /// Whether one of `pending` was sent to `slave`.
    pub fn any_to(&self, pending: &[u64], slave: SlaveIdx) -> bool {
        pending
            .iter()
            .any(|s| self.map.get(s).is_some_and(|s| s.slave == slave))
    }

    /// The sub-requests sent to `slave`, oldest first.
    pub fn sent_to(&self, slave: SlaveIdx) -> Vec<u64> {
        let mut subs: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, s)| s.slave == slave)
            .map(|(&id, _)| id)
            .collect();
        subs.sort_unstable();
        subs
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// A STORE was not ACKed in time. A slave answers in order, so one still answering is
    /// behind, not dead: it is suspected, and the op it was for may move on without it
    /// (`Late::Slow`); dropping slow slaves under load only made the remaining ones slower. A
    /// slave silent for the whole ACK timeout is dropped.
    pub fn ack_timeout(&mut self, ctx: &mut Ctx, sub: u64) -> Late {
        let Some(s) = self.map.get_mut(&sub) else {
            return Late::Gone;
        };
        s.timer = None;
        let slave = s.slave;
        // A slave taking in a large frame says nothing until it is all in.
        let quiet_until =
            ctx.slaves.get(slave).last_heard + ctx.cfg.ack_timeout + drain_allowance(s.bytes);
        if ctx.now < quiet_until {
            let why = "an ACK later than --ack-timeout-ms";
            ctx.effects.push(Effect::Suspect { slave, why });
            return Late::Slow {
                op: s.op,
                again: quiet_until,
            };
        }
        let why = format!(
            "no ACK within {} ms and nothing heard since",
            ctx.cfg.ack_timeout.as_millis()
        );
        ctx.effects.push(Effect::DropSlave { slave, why });
        Late::Gone
    }

    /// Wait for sub-request `sub`'s ACK until `at` (its slave is slow, and the op has
    /// nobody to move to).
    pub fn wait_longer(&mut self, sub: u64, at: Instant, timers: &mut Timers) {
        if let Some(s) = self.map.get_mut(&sub) {
            s.timer = Some(timers.insert(at, Timer::Ack(sub)));
        }
    }

    /// The slave `sub` was sent to, if it is open.
    pub fn slave_of(&self, sub: u64) -> Option<SlaveIdx> {
        self.map.get(&sub).map(|s| s.slave)
    }
}

/// What a late ACK means ([`SubTable::ack_timeout`]).
pub(crate) enum Late {
    /// Nothing to do: the sub is answered, or its slave is being dropped (which fails it).
    Gone,
    /// Its slave is still talking: op `op` may move on, or wait until `again`.
    Slow { op: OpId, again: Instant },
}

/// Slaves in rendezvous order and how far a write or copy has got through them.
#[derive(Default)]
pub(crate) struct Candidates {
    ranked: Ranked,
    next: usize,
}

impl Candidates {
    pub fn new(ranked: Ranked) -> Candidates {
        Candidates { ranked, next: 0 }
    }

    /// Whether [`Candidates::next_live`] would find one.
    pub fn has_live(&self, slaves: &SlaveTable, skip: impl Fn(SlaveIdx) -> bool) -> bool {
        self.ranked[self.next.min(self.ranked.len())..]
            .iter()
            .any(|&c| slaves.is_live(c) && !skip(c))
    }

    /// The next candidate that is live and not `skip`ped, if any is left.
    pub fn next_live(
        &mut self,
        slaves: &SlaveTable,
        skip: impl Fn(SlaveIdx) -> bool,
    ) -> Option<SlaveIdx> {
        while let Some(&c) = self.ranked.get(self.next) {
            self.next += 1;
            if slaves.is_live(c) && !skip(c) {
                return Some(c);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_behind_another_is_never_due_before_it() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = AckDeadlines::default();
        q.push(1, t0 + ms(300), 10); // a large STORE: its drain allowance on top
        q.push(1, t0 + ms(200), 11); // a small one behind it
        q.push(0, t0 + ms(250), 12);
        assert_eq!(q.next_deadline(), Some(t0 + ms(250)));
        assert_eq!(q.per_slave[1].back(), Some(&(t0 + ms(300), 11)));
        // Answering the front pops it; an answer out of order leaves the front alone.
        q.answered(1, 11);
        assert_eq!(q.per_slave[1].len(), 2);
        q.answered(1, 10);
        assert_eq!(q.per_slave[1].front(), Some(&(t0 + ms(300), 11)));
        q.answered(0, 12);
        assert_eq!(q.next_deadline(), Some(t0 + ms(300)));
    }
}

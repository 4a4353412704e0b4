//! The READ path: FETCH from a holder of the latest acknowledged version, ask again (another
//! holder, or the same) when no usable answer comes within `--read-retry-ms`, until one
//! answers, every holder is dead (NOT_FOUND, as the seed design says), or the deadline passes.
//!
//! A key the map may be wrong about (see `doubts.rs`) is *probed* instead: every live slave is
//! asked, the highest version wins (its holders are all slaves that answered with it), and
//! becomes the record.

use std::time::Duration;

use dsm_net::{SharedBytes, TimerId};
use dsm_wire::{is_tombstone, plain_version, Body, ErrorCode};
use log::{debug, info, warn};

use crate::cache::NewValue;
use crate::ctx::Ctx;
use crate::effect::Effect;
use crate::keymap::SlaveIdx;
use crate::outbox::Shared;
use crate::timer::{Timer, Timers};

use super::step::{OpRef, Step};
use super::subs::{Pending, SubTable};

#[derive(Default)]
pub(crate) struct ReadOp {
    /// The latest acknowledged version when the read started; older answers are refused.
    version: u64,
    /// Outstanding FETCH sub-requests; the first usable answer wins.
    pub pending: Pending,
    retry: Option<TimerId>,
    attempts: u32,
    /// Waiting for holders (or, probing, slaves) that are out of reach but may come back: at
    /// the deadline the answer is UNAVAILABLE, not a TIMEOUT.
    unreachable: bool,
    /// Set when the read asks every slave. Boxed: most reads never probe, and every op is
    /// moved into and out of the slab.
    probe: Option<Box<Probe>>,
    /// VREAD (and the read of an INCR): answer VERSIONED, with the version, not VALUE.
    versioned: bool,
}

/// The answer to a read of `version` (as held: a tombstone reads NOT_FOUND).
fn found(versioned: bool, version: u64, value: Vec<u8>) -> Body {
    if is_tombstone(version) {
        return Body::NotFound;
    }
    match versioned {
        true => Body::Versioned { version, value },
        false => Body::Value { value },
    }
}

/// A READ answered on arrival ([`ReadOp::at_once`]).
pub enum AtOnce {
    Reply(Body),
    /// A large cached value, written from the cache's buffer; `version` for a VREAD.
    Large {
        version: Option<u64>,
        value: SharedBytes,
    },
}

#[derive(Default)]
struct Probe {
    asked: Vec<SlaveIdx>,
    /// The highest version seen, its value, and who holds it.
    best: Option<(u64, Vec<u8>, Vec<SlaveIdx>)>,
}

/// How reads are spread over holders: round robin over the turns, and within one turn of the
/// event loop, holders this turn already sends to (one more FETCH rides in the same write and
/// wakes no other slave).
#[derive(Default)]
pub(crate) struct ReadSpread {
    rr: usize,
    /// Slaves sent a FETCH since the event loop last wrote its buffers.
    turn_targets: Vec<SlaveIdx>,
}

impl ReadSpread {
    /// The event loop has written out everything: no slave counts as woken any more.
    pub fn end_turn(&mut self) {
        self.turn_targets.clear();
    }
}

impl ReadOp {
    /// A read answered VERSIONED.
    pub fn versioned() -> ReadOp {
        ReadOp {
            versioned: true,
            ..ReadOp::default()
        }
    }

    /// Stop the retry timer and hand over the FETCHes still out (the read is over).
    pub fn take_pending(&mut self, timers: &mut Timers) -> Pending {
        if let Some(t) = self.retry.take() {
            timers.cancel(t);
        }
        std::mem::take(&mut self.pending)
    }

    /// The answer a READ of `key` (`hash`: its keyed hash) that starts now with nothing ahead
    /// of it in the key's queue would get at once from [`ReadOp::start`], if it would: a read
    /// cache hit under a live holder (`cache.rs`, rule 3), or the map's NOT_FOUND for a key it
    /// does not have or holds a tombstone for. `None`: the READ goes the ordinary way (a
    /// probe, a FETCH, a wait). Looks at nothing `start` would not, and changes nothing but
    /// the cache's hit counter, as `start` would (a miss is counted by the `start` that
    /// follows).
    pub fn at_once(ctx: &mut Ctx, hash: u64, key: &[u8], versioned: bool) -> Option<AtOnce> {
        if ctx.doubts.needs_probe(key, ctx.keys) {
            return None;
        }
        let slaves = ctx.slaves;
        let live = |holders: &[SlaveIdx]| holders.iter().any(|&h| slaves.is_live(h));
        let Some((e, cached)) = ctx.keys.get_if_cached(hash, key, live) else {
            return Some(AtOnce::Reply(Body::NotFound));
        };
        if e.deleted() {
            return Some(AtOnce::Reply(Body::NotFound));
        }
        let version = e.version;
        let value = cached?;
        if value.len() > crate::cache::MAX_VALUE && !is_tombstone(version) {
            // A large value goes out from the cache's buffer: no copy of it per READ.
            if let Some(value) = ctx.keys.large_value(hash, key, version) {
                let version = versioned.then_some(version);
                return Some(AtOnce::Large { version, value });
            }
        }
        Some(AtOnce::Reply(found(
            versioned,
            version,
            ctx.pool.copy_of(value),
        )))
    }

    pub fn start(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
    ) -> Step {
        if ctx.doubts.needs_probe(op.key, ctx.keys) {
            self.probe = Some(Box::default());
            self.probe_ask(op, ctx, subs);
            return self.probe_decide(op, ctx, subs);
        }
        self.fetch(op, ctx, subs, spread, true)
    }

    /// FETCH from the next live holder (round robin spreads reads over the copies). With no live
    /// holder left the key is gone: NOT_FOUND. On the READ's `start` it also records the
    /// version the answer must reach, from the same lookup of the key.
    fn fetch(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        start: bool,
    ) -> Step {
        let slaves = ctx.slaves;
        // On the READ's start, the read cache is looked at in the same lookup (`cache.rs`):
        // the committed version's value, answered as a live holder of it would, so only while
        // one is live (a key whose copies are all lost reads as without a cache).
        let live = |holders: &[SlaveIdx]| holders.iter().any(|&h| slaves.is_live(h));
        let looked = match start {
            true => ctx.keys.get_with_value(op.hash, op.key, live),
            false => ctx.keys.get_hashed(op.hash, op.key).map(|e| (e, None)),
        };
        let Some((e, cached)) = looked else {
            return Step::Done(Body::NotFound);
        };
        if e.deleted() {
            // The master orders every change to the key: its tombstone is the last word.
            return Step::Done(Body::NotFound);
        }
        if let Some(value) = cached {
            return Step::Done(found(self.versioned, e.version, ctx.pool.copy_of(value)));
        }
        if start {
            self.version = e.version;
        }
        if !e.holders.iter().any(|&h| slaves.is_live(h)) {
            if slaves.holder_may_return(e.holders) {
                // Out of reach, not gone (dropped, restarting, or not yet back after a
                // takeover): wait for one to come back, until the deadline.
                self.unreachable = true;
                self.arm_retry(op, ctx, Duration::ZERO);
                return Step::Wait;
            }
            warn!("every copy of a key is lost; answering NOT_FOUND");
            return Step::Done(Body::NotFound);
        }
        self.unreachable = false;
        // At most one FETCH per holder per read: a retry asks a holder not yet waited on,
        // and when every live holder is already asked it only waits longer. Without this
        // cap a burst of reads to a slow slave multiplied itself every retry interval
        // until the slaves fell behind their PINGs and were dropped.
        // A slow holder is asked only when no other is left.
        let pending = &self.pending;
        let now = ctx.now;
        let unasked = |h: SlaveIdx| slaves.is_live(h) && !subs.any_to(pending, h);
        let careful = slaves.any_suspected(now);
        let slow = |h: SlaveIdx| careful && slaves.is_suspected(h, now);
        let woken = |h: SlaveIdx| spread.turn_targets.contains(&h);
        let (mut all, mut all_woken, mut calm, mut calm_woken) = (0, 0, 0, 0);
        for &h in e.holders {
            if unasked(h) {
                let (w, c) = (usize::from(woken(h)), usize::from(!slow(h)));
                all += 1;
                all_woken += w;
                calm += c;
                calm_woken += c & w;
            }
        }
        let calm_only = calm > 0 && calm < all;
        let (count, preferred) = match calm_only {
            true => (calm, calm_woken),
            false => (all, all_woken),
        };
        let fresh = |h: SlaveIdx| unasked(h) && !(calm_only && slow(h));
        if count == 0 {
            let drain = (self.pending.iter())
                .filter_map(|&p| subs.slave_of(p))
                .map(|s| subs.allowance(s))
                .max()
                .unwrap_or_default();
            self.arm_retry(op, ctx, drain);
            return Step::Wait;
        }
        let rr = spread.rr.wrapping_add(1);
        let only_woken = preferred > 0;
        let nth = rr % if only_woken { preferred } else { count };
        let holder = e
            .holders
            .iter()
            .copied()
            .filter(|&h| fresh(h) && (!only_woken || woken(h)))
            .nth(nth)
            .expect("counted above");
        spread.rr = rr;
        if !spread.turn_targets.contains(&holder) {
            spread.turn_targets.push(holder);
        }
        let (epoch, key) = (ctx.term.epoch, op.key.clone());
        let sub = subs.send(ctx, op.id, holder, false, op.answer, |req_id| {
            Shared::Fetch { req_id, epoch, key }
        });
        self.arm_retry(op, ctx, subs.allowance(holder));
        self.pending.push(sub);
        self.attempts += 1;
        Step::Wait
    }

    /// (Re)start the retry timer: the read asks again after `read_retry` (and `drain`, the
    /// time the holder asked may take over what is queued to it ahead of this read: see
    /// `subs.rs`) unless an answer comes first, and at its deadline at the latest.
    fn arm_retry(&mut self, op: &OpRef, ctx: &mut Ctx, drain: Duration) {
        let at = (ctx.now + ctx.cfg.read_retry + drain).min(op.deadline_at);
        let retry = ctx.timers.insert(at, Timer::ReadRetry(op.id));
        if let Some(old) = self.retry.replace(retry) {
            ctx.timers.cancel(old);
        }
    }

    /// The retry timer fired before the deadline: ask again.
    pub fn retry(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
    ) -> Step {
        if self.probe.is_some() {
            self.probe_ask(op, ctx, subs);
            return self.probe_decide(op, ctx, subs);
        }
        self.retry = None;
        debug!("read retry {} for request {}", self.attempts, op.req_id);
        // Whoever was asked and has not answered is slow (or gone: PINGs will tell).
        for &sub in self.pending.iter() {
            if let Some(slave) = subs.slave_of(sub) {
                let why = "a READ's answer later than --read-retry-ms";
                ctx.effects.push(Effect::Suspect { slave, why });
            }
        }
        self.fetch(op, ctx, subs, spread, false)
    }

    /// A FETCH answer (`None`: the slave holds nothing for the key) from the slave asked.
    #[allow(clippy::too_many_arguments)]
    pub fn answered(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        sub: u64,
        from: SlaveIdx,
        answer: Option<(u64, Vec<u8>)>,
    ) -> Step {
        self.pending.retain(|&p| p != sub);
        if let Some(p) = self.probe.as_mut() {
            match answer {
                Some((version, _)) if !ctx.term.handed_out(version) => warn!(
                    "slave '{}' answered a probe with version {version}, which no master \
                     handed out (the next is {}): refused",
                    ctx.slaves.get(from).id,
                    ctx.term.next_version()
                ),
                answer => p.note(from, answer),
            }
            return self.probe_decide(op, ctx, subs);
        }
        let want = self.version;
        match answer {
            // A version no master handed out: the slave lies (or is broken). Serving it would
            // let it outrank every later write; it stops counting as a holder instead.
            Some((version, _))
                if plain_version(version) > plain_version(want)
                    && !ctx.term.handed_out(version) =>
            {
                warn!(
                    "slave '{}' answered a FETCH with version {version}, which no master handed \
                     out (the next is {}): refused; it is no longer a holder of the key",
                    ctx.slaves.get(from).id,
                    ctx.term.next_version()
                );
                ctx.keys
                    .update_holders(op.key, |h| h.retain(|&h| h != from));
                ctx.key_changed(op.key);
                self.fetch(op, ctx, subs, spread, false)
            }
            Some((version, value)) if plain_version(version) >= plain_version(want) => {
                if plain_version(version) > plain_version(want) {
                    // A write whose outcome was reported unknown reached this slave after all:
                    // it takes effect now, and reads follow this copy from here on.
                    warn!("adopting version {version} (newer than {want}) from slave {from}");
                    ctx.record_value(
                        op.hash,
                        op.key,
                        version,
                        &[from],
                        Some(NewValue::Copy(&value)),
                    );
                } else {
                    // Kept only if it is still the committed version (`keep_value`).
                    ctx.keys.keep_value(op.hash, op.key, version, &value);
                }
                Step::Done(found(self.versioned, version, value))
            }
            other => {
                let got = other.map(|(v, _)| v);
                warn!("slave {from} holds {got:?} for a key at version {want}; no longer a holder");
                ctx.keys
                    .update_holders(op.key, |h| h.retain(|&h| h != from));
                ctx.key_changed(op.key);
                self.fetch(op, ctx, subs, spread, false)
            }
        }
    }

    pub fn sub_failed(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        spread: &mut ReadSpread,
        sub: u64,
    ) -> Step {
        self.pending.retain(|&p| p != sub);
        if self.probe.is_some() {
            self.probe_decide(op, ctx, subs)
        } else if self.pending.is_empty() {
            self.fetch(op, ctx, subs, spread, false)
        } else {
            Step::Wait
        }
    }

    /// The deadline passed: the reply, UNAVAILABLE while the copies were out of reach (retry
    /// later), else TIMEOUT.
    pub fn timed_out(&self, op: &OpRef) -> Body {
        if self.unreachable {
            let text = "every holder of the key is out of reach; it may come back: retry";
            warn!("request {} unavailable: {text}", op.req_id);
            return Body::error(ErrorCode::Unavailable, text);
        }
        let text = "deadline passed before any holder answered";
        warn!("request {} timed out: {text}", op.req_id);
        Body::error(ErrorCode::Timeout, text)
    }

    /// Probe: FETCH from every live slave not yet asked, and look again after `read_retry`.
    fn probe_ask(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable) {
        let probe = self.probe.as_mut().expect("a probing read");
        let epoch = ctx.term.epoch;
        let live: Vec<SlaveIdx> = ctx.slaves.live().map(|(i, _)| i).collect();
        for slave in live {
            if probe.asked.contains(&slave) {
                continue;
            }
            probe.asked.push(slave);
            let key = op.key.clone();
            let sub = subs.send(ctx, op.id, slave, false, op.answer, |req_id| {
                Shared::Fetch { req_id, epoch, key }
            });
            self.pending.push(sub);
        }
        self.arm_retry(op, ctx, Duration::ZERO);
    }

    /// Probe: decide once every live slave has been asked and has answered or died, and no
    /// slave that may hold the newest copy is out of reach (a slave lost for good, or
    /// forgotten, no longer counts).
    fn probe_decide(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable) -> Step {
        if !self.pending.is_empty() {
            return Step::Wait;
        }
        if ctx.slaves.any_may_come_back() {
            self.unreachable = true;
            return Step::Wait;
        }
        self.unreachable = false;
        let p = self.probe.as_mut().expect("a probing read");
        // A slave that registered after the last round has not been asked, and may hold the
        // newest copy: deciding without it could answer an older value, or NOT_FOUND.
        if ctx.slaves.live().any(|(s, _)| !p.asked.contains(&s)) {
            self.probe_ask(op, ctx, subs);
            return Step::Wait;
        }
        match p.best.take() {
            Some((version, value, holders)) => {
                info!(
                    "probe settled a key at version {version} on {} slave(s)",
                    holders.len()
                );
                ctx.record_value(
                    op.hash,
                    op.key,
                    version,
                    &holders,
                    Some(NewValue::Copy(&value)),
                );
                Step::Done(found(self.versioned, version, value))
            }
            None => {
                // Every slave that may hold it answered, and none does (not even a tombstone):
                // an entry left in the map (a collected DELETE whose end this master never
                // heard) would decide the next change as if the key existed.
                if ctx.keys.get_hashed(op.hash, op.key).is_some() {
                    info!("probe found a key the map has on no slave: forgetting it");
                    ctx.forget(op.key);
                } else {
                    ctx.doubts.settled(op.key);
                }
                Step::Done(Body::NotFound)
            }
        }
    }
}

impl Probe {
    /// A slave's answer: the highest version seen so far wins.
    fn note(&mut self, from: SlaveIdx, answer: Option<(u64, Vec<u8>)>) {
        let Some((version, value)) = answer else {
            return;
        };
        match &mut self.best {
            Some((v, _, holders)) if *v == version => holders.push(from),
            Some((v, _, _)) if plain_version(*v) >= plain_version(version) => {}
            _ => self.best = Some((version, value, vec![from])),
        }
    }
}

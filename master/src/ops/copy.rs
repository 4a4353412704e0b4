//! A re-replication copy as an operation in its key's queue: FETCH the latest version from a
//! live holder, STORE it on the next slaves in the key's rendezvous order that lack it, and
//! record the new holders if the version is still the latest.

use dsm_net::SharedBytes;

use dsm_wire::Body;
use log::{debug, warn};

use crate::ctx::Ctx;
use crate::keymap::SlaveIdx;
use crate::outbox::Shared;
use crate::placement::stable_hash;

use super::step::{OpRef, Step};
use super::subs::{Candidates, Pending, SubTable};

#[derive(Default)]
pub(crate) struct CopyOp {
    /// The version being copied (the latest acknowledged one when the copy started).
    version: u64,
    /// Shared by the STOREs to every target.
    value: SharedBytes,
    /// Live slaves in rendezvous order that do not hold the key: where copies go.
    cands: Candidates,
    /// Copies still wanted beyond those in flight.
    wanted: usize,
    pub pending: Pending,
    added: Vec<SlaveIdx>,
    fetching: bool,
}

impl CopyOp {
    pub fn start(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable) -> Step {
        let Some(e) = ctx.keys.get_hashed(op.hash, op.key) else {
            return self.finish(ctx);
        };
        let live: Vec<SlaveIdx> = e
            .holders
            .iter()
            .copied()
            .filter(|&h| ctx.slaves.is_live(h))
            .collect();
        let want = ctx.cfg.replicas.min(ctx.slaves.live_count());
        let (now, patience) = (ctx.now, ctx.cfg.repair_after);
        let counted = e
            .holders
            .iter()
            .filter(|&&h| ctx.slaves.counts_as_copy(h, now, patience))
            .count();
        if live.is_empty() || counted >= want {
            return self.finish(ctx);
        }
        let cands = ctx
            .slaves
            .ranked_live(stable_hash(op.key))
            .iter()
            .copied()
            .filter(|s| !e.holders.contains(s))
            .collect();
        self.version = e.version;
        self.cands = Candidates::new(cands);
        self.wanted = want - counted;
        self.fetching = true;
        let (epoch, key) = (ctx.term.epoch, op.key.clone());
        let sub = subs.send(ctx, op.id, live[0], false, op.answer, |req_id| {
            Shared::Fetch { req_id, epoch, key }
        });
        self.pending.push(sub);
        Step::Wait
    }

    /// Send STOREs until `wanted` copies are in flight or no candidate is left.
    fn store_more(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable) {
        while self.pending.len() < self.wanted {
            let Some(slave) = self.cands.next_live(ctx.slaves, |_| false) else {
                return;
            };
            let (epoch, version) = (ctx.term.epoch, self.version);
            let (key, value) = (op.key.clone(), self.value.clone());
            let sub = subs.send(ctx, op.id, slave, true, 0, |req_id| Shared::Store {
                req_id,
                epoch,
                version,
                key,
                value,
            });
            self.pending.push(sub);
        }
    }

    pub fn fetched(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        sub: u64,
        answer: Option<(u64, Vec<u8>)>,
    ) -> Step {
        self.pending.retain(|&p| p != sub);
        match answer {
            Some((version, value)) if version == self.version => {
                self.fetching = false;
                ctx.repairs.hold_bytes(value.len());
                self.value = value.into();
                self.store_more(op, ctx, subs);
                self.maybe_done(op, ctx)
            }
            other => {
                debug!(
                    "copy source answered {:?}; giving the copy up",
                    other.map(|o| o.0)
                );
                self.finish(ctx)
            }
        }
    }

    pub fn acked(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        sub: u64,
        from: SlaveIdx,
        version: u64,
    ) -> Step {
        self.pending.retain(|&p| p != sub);
        if version == self.version {
            self.added.push(from);
            self.wanted = self.wanted.saturating_sub(1);
        }
        self.store_more(op, ctx, subs);
        self.maybe_done(op, ctx)
    }

    pub fn sub_failed(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable, sub: u64) -> Step {
        self.pending.retain(|&p| p != sub);
        if self.fetching {
            // The source died: start over, choosing a surviving holder.
            ctx.repairs.requeue(op.key.clone());
            return self.finish(ctx);
        }
        self.store_more(op, ctx, subs);
        self.maybe_done(op, ctx)
    }

    fn maybe_done(&mut self, op: &OpRef, ctx: &mut Ctx) -> Step {
        if !self.pending.is_empty() || self.fetching {
            return Step::Wait;
        }
        let (version, added) = (self.version, std::mem::take(&mut self.added));
        let mut made = 0;
        if ctx.keys.get(op.key).is_some_and(|e| e.version == version) {
            let slaves = ctx.slaves;
            ctx.keys.update_holders(op.key, |holders| {
                for s in added {
                    if slaves.is_live(s) && !holders.contains(&s) {
                        holders.push(s);
                        made += 1;
                    }
                }
            });
        }
        ctx.repairs.made(made);
        if made > 0 {
            ctx.key_changed(op.key);
        }
        self.finish(ctx)
    }

    /// End the copy (done, pointless or given up) and let the key's queue move on.
    fn finish(&mut self, ctx: &mut Ctx) -> Step {
        ctx.repairs.release_bytes(self.value.len());
        self.value = SharedBytes::default();
        Step::Done(Body::Ok)
    }

    /// The copy reached its deadline: give it up and queue the key again.
    pub fn timed_out(&mut self, op: &OpRef, ctx: &mut Ctx) -> Body {
        warn!("a copy timed out; retrying the key later");
        ctx.repairs.requeue(op.key.clone());
        self.finish(ctx);
        Body::Ok
    }
}

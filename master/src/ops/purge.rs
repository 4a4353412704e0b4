//! Collecting a DELETE's tombstone, as an operation in its key's queue (so no write to the key
//! runs meanwhile). The rule: a tombstone is collected only when nothing older than it can come
//! back, which this master knows when (1) the tombstone is recorded on every copy it wants,
//! (2) every slave of the roster is in service (none out of reach that could return with an
//! older copy, none still reporting what it holds) and this master's map is complete, and (3)
//! every one of those slaves has ACKed a PURGE of the key at the tombstone's version: it has
//! forgotten any copy as old or older, on disk before the ACK. Only then is the key forgotten
//! here, and the backup told (SYNC GONE). If any of this fails (a slave leaves, refuses, or a
//! new one arrives meanwhile) the tombstone stays, and is collected at the key's next DELETE.

use dsm_wire::{Body, TOMBSTONE};
use log::debug;

use crate::ctx::Ctx;
use crate::keymap::SlaveIdx;

use super::step::{OpRef, Step};
use super::subs::{Pending, SubTable};

#[derive(Default)]
pub(crate) struct PurgeOp {
    /// The tombstone's version (with its [`TOMBSTONE`] bit).
    version: u64,
    pub pending: Pending,
    asked: Vec<SlaveIdx>,
    failed: bool,
}

impl PurgeOp {
    pub fn new(version: u64) -> PurgeOp {
        PurgeOp {
            version: version | TOMBSTONE,
            ..PurgeOp::default()
        }
    }

    /// Whether nothing older than the tombstone can come back from a slave this master cannot
    /// reach now, and the tombstone is still the key's latest word.
    fn may_collect(&self, op: &OpRef, ctx: &Ctx) -> bool {
        let latest = ctx.keys.get_hashed(op.hash, op.key);
        latest.is_some_and(|e| e.version == self.version)
            && !ctx.slaves.any_may_come_back()
            && !ctx.doubts.incomplete
            && !ctx.doubts.needs_probe(op.key, ctx.keys)
    }

    pub fn start(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable) -> Step {
        if !self.may_collect(op, ctx) {
            return Step::Done(Body::Ok);
        }
        let live: Vec<SlaveIdx> = ctx.slaves.live().map(|(i, _)| i).collect();
        let (epoch, version) = (ctx.term.epoch, self.version);
        for slave in live {
            let key = op.key.to_vec();
            let sub = subs.send_body(ctx, op.id, slave, |_| Body::Purge {
                epoch,
                version,
                key,
            });
            self.pending.push(sub);
            self.asked.push(slave);
        }
        self.settle(op, ctx)
    }

    pub fn acked(&mut self, op: &OpRef, ctx: &mut Ctx, sub: u64) -> Step {
        self.pending.retain(|&p| p != sub);
        self.settle(op, ctx)
    }

    pub fn sub_failed(&mut self, op: &OpRef, ctx: &mut Ctx, sub: u64) -> Step {
        self.pending.retain(|&p| p != sub);
        self.failed = true;
        self.settle(op, ctx)
    }

    /// Every PURGE answered: forget the key if each live slave ACKed and nothing changed.
    fn settle(&mut self, op: &OpRef, ctx: &mut Ctx) -> Step {
        if !self.pending.is_empty() {
            return Step::Wait;
        }
        let everyone = ctx.slaves.live().all(|(s, _)| self.asked.contains(&s));
        if self.failed || !everyone || !self.may_collect(op, ctx) {
            debug!("a tombstone stays: a slave did not confirm its PURGE");
            return Step::Done(Body::Ok);
        }
        ctx.forget(op.key);
        Step::Done(Body::Ok)
    }
}

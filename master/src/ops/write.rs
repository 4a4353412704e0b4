//! The WRITE path: a new version, STOREs to the first R live slaves in the key's rendezvous
//! order, a replacement from further down that order for each one that dies, and the commit
//! once every STORE is ACKed and the backup has confirmed the write's intent. An exactly-once
//! write (WRITE_ONCE) sends STORE_ONCE, and one sent again first asks every live slave whether
//! an earlier copy of it was stored (RECALL: [`Once`]).

use dsm_net::SharedBytes;
use std::time::{Duration, Instant};

use dsm_wire::{plain_version, Body, ErrorCode, WriteId, RECALL_NONE, RECALL_UNSURE, TOMBSTONE};
use log::{debug, warn};

use crate::cache::NewValue;
use crate::ctx::Ctx;
use crate::few::Few;
use crate::keymap::SlaveIdx;
use crate::outbox::Shared;
use crate::placement::stable_hash;
use crate::slaves::SlaveTable;

use super::step::{OpRef, Step};
use super::subs::{Candidates, Pending, SubTable};

/// How a write that took effect is answered.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// WRITE: OK, or DEGRADED with fewer copies than wanted.
    #[default]
    Plain,
    /// SET and DELETE: WRITTEN with the version.
    Version,
    /// INCR: VERSIONED with the version and the value written.
    Counter,
}

#[derive(Default)]
pub(crate) struct WriteOp {
    reply: Reply,
    /// A DELETE: the STOREs carry a tombstone (the version's [`TOMBSTONE`] bit, no value).
    tombstone: bool,
    /// Committed on every copy wanted (a tombstone that may then be collected).
    full: bool,
    /// Shared by the STOREs to every replica.
    value: SharedBytes,
    /// 0 until the write starts (a write deferred after a takeover has none yet).
    version: u64,
    /// Live slaves in rendezvous order when the write started; replacements come from here.
    cands: Candidates,
    /// Sub-request ids of STOREs not yet ACKed.
    pub pending: Pending,
    acked: Few<SlaveIdx, 2>,
    /// The SYNC that carries this write's intent to the backup (0: no backup).
    sync_seq: u64,
    /// STOREs refused by their slave (an ERROR: it did not apply them), and whether one of
    /// those said OUT_OF_MEMORY.
    refused: u8,
    out_of_memory: bool,
    /// A STORE went to a slave that was lost before it answered: it may have applied it.
    unanswered: bool,
    /// The writer of an exactly-once write (boxed: most writes have none).
    once: Option<Box<Once>>,
    /// Only asks the slaves whether an earlier copy of an exactly-once SET, DELETE or INCR was
    /// stored (its own write comes later, from `update.rs`): see [`WriteOp::recall_clear`].
    probe_only: bool,
}

/// An exactly-once write's writer, and what the slaves said of an earlier copy of it.
pub(crate) struct Once {
    pub id: WriteId,
    /// When the client first sent it, as this master reckons (arrival less `resent_ms`).
    first_sent: Instant,
    /// Sent before, and the slaves not asked yet: an earlier copy may have been applied.
    must_ask: bool,
    /// RECALLs are out (their sub-requests are the write's `pending`).
    asking: bool,
    /// A slave could not say, or could not be asked.
    unsure: bool,
    /// A slave stored it: the newest version one stored it at (0: none did).
    stored: u64,
    /// The value a slave kept with its record (STORE_KEEP: an INCR's new value).
    kept: Option<Vec<u8>>,
    /// The answer the write got when it was first applied, rebuilt from what the slaves said.
    again: Option<Body>,
    /// Probe only: no slave stored it and none is unsure; the change may be applied now.
    clear: bool,
    /// The newest version of the key a slave holds, and the slaves holding it.
    held: u64,
    holders: Few<SlaveIdx, 2>,
}

impl WriteOp {
    /// The value's length.
    pub fn value_len(&self) -> usize {
        self.value.len()
    }

    pub fn new(value: SharedBytes, reply: Reply, tombstone: bool) -> WriteOp {
        WriteOp {
            value,
            reply,
            tombstone,
            ..WriteOp::default()
        }
    }

    /// An exactly-once write from `id`; `resent_ms` as in WRITE_ONCE (0: its first send).
    pub fn once(value: SharedBytes, id: WriteId, resent_ms: u32, now: Instant) -> WriteOp {
        let ago = Duration::from_millis(resent_ms.into());
        WriteOp {
            value,
            once: Some(Box::new(Once {
                id,
                first_sent: now.checked_sub(ago).unwrap_or(now),
                must_ask: resent_ms > 0,
                asking: false,
                unsure: false,
                stored: 0,
                kept: None,
                again: None,
                clear: false,
                held: 0,
                holders: Few::default(),
            })),
            ..WriteOp::default()
        }
    }

    /// The writer, for an exactly-once write.
    pub fn writer(&self) -> Option<WriteId> {
        self.once.as_ref().map(|o| o.id)
    }

    /// An exactly-once SET, DELETE or INCR sent again (`reply` says which answer it gets):
    /// only the RECALL part of a write, before the change is decided. It ends with the
    /// change's first answer, given again (the slaves stored it), TIMEOUT (they cannot say),
    /// or [`WriteOp::recall_clear`] (it never took effect).
    pub fn probe(reply: Reply, id: WriteId, resent_ms: u32, now: Instant) -> WriteOp {
        let mut w = WriteOp::once(SharedBytes::default(), id, resent_ms.max(1), now);
        w.reply = reply;
        w.probe_only = true;
        w
    }

    /// The STOREs of this write carry the writer `id` (STORE_ONCE; STORE_KEEP for an INCR,
    /// whose new value is its answer): the write of an exactly-once SET, DELETE or INCR,
    /// decided after any RECALL.
    pub fn for_writer(mut self, id: WriteId, now: Instant) -> WriteOp {
        self.once = Some(Box::new(Once {
            id,
            first_sent: now,
            must_ask: false,
            asking: false,
            unsure: false,
            stored: 0,
            kept: None,
            again: None,
            clear: false,
            held: 0,
            holders: Few::default(),
        }));
        self
    }

    /// A probe found that no earlier copy took effect (see [`WriteOp::probe`]).
    pub fn recall_clear(&self) -> bool {
        self.probe_only && self.once.as_ref().is_some_and(|o| o.clear)
    }

    /// The tombstone's version, once it is recorded on every copy wanted.
    pub fn recorded_tombstone(&self) -> Option<u64> {
        (self.tombstone && self.full).then_some(self.version)
    }

    /// Deferred after a takeover: it has no version yet, and nothing out. A write sent again
    /// that is asking the slaves (RECALL) has no version either, but must not start again.
    pub fn is_deferred(&self) -> bool {
        self.version == 0 && self.pending.is_empty()
    }

    /// Every STORE has been answered (a write waiting for the backup).
    pub fn all_answered(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn start(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable) -> Step {
        if self.once.as_ref().is_some_and(|o| o.must_ask) {
            return self.recall(op, ctx, subs);
        }
        let mut ranked = ctx.slaves.ranked_live(stable_hash(op.key));
        // A slave that is slow right now goes to the back of the line (it would be replaced
        // after the ACK timeout anyway), as long as enough others are live.
        let (slaves, now) = (ctx.slaves, ctx.now);
        if slaves.any_suspected(now) {
            let slow = ranked
                .iter()
                .filter(|&&s| slaves.is_suspected(s, now))
                .count();
            if slow > 0 && ranked.len() - slow >= ctx.cfg.replicas {
                ranked.sort_by_key(|&s| slaves.is_suspected(s, now));
            }
        }
        if ranked.len() < ctx.cfg.replicas && ctx.slaves.may_return(ctx.now) {
            // Just after a takeover the slaves are still re-registering: wait for them (each
            // registration and the end of the grace period start this write again).
            return Step::Defer;
        }
        if ranked.is_empty() {
            warn!("write refused: no live slave");
            return Step::Done(Body::error(ErrorCode::NoSlaves, "no live slave"));
        }
        let first = ctx.cfg.replicas.min(ranked.len());
        if first < ctx.cfg.replicas {
            warn!(
                "only {} live slave(s) for a write that wants {} copies",
                ranked.len(),
                ctx.cfg.replicas
            );
        }
        self.version = ctx.term.take_version();
        if self.tombstone {
            self.version |= TOMBSTONE;
        }
        self.sync_seq = ctx.intent(op.key);
        self.cands = Candidates::new(ranked);
        for _ in 0..first {
            let slave = self.cands.next_live(ctx.slaves, |_| false);
            let slave = slave.expect("ranked among the live slaves");
            self.send_store(op, ctx, subs, slave);
        }
        Step::Wait
    }

    fn send_store(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable, slave: SlaveIdx) {
        let (epoch, version) = (ctx.term.epoch, self.version);
        let (key, value) = (op.key.clone(), self.value.clone());
        let writer = self.writer();
        let keep = self.reply == Reply::Counter;
        let sub = subs.send(ctx, op.id, slave, true, 0, |req_id| match writer {
            Some(id) => Shared::StoreOnce {
                req_id,
                epoch,
                version,
                id,
                key,
                value,
                keep,
            },
            None => Shared::Store {
                req_id,
                epoch,
                version,
                key,
                value,
            },
        });
        self.pending.push(sub);
    }

    /// A write sent again: before applying it, ask every live slave whether an earlier copy
    /// was stored (by this master or an earlier primary). A RECALL at this master's epoch also
    /// fences the slave against an older primary's STOREs still on their way.
    fn recall(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable) -> Step {
        if ctx.slaves.may_return(ctx.now) {
            // Just after a takeover: a slave that held it may not have registered yet.
            return Step::Defer;
        }
        let once = self.once.as_deref_mut().expect("an exactly-once write");
        once.must_ask = false;
        let live: Vec<SlaveIdx> = ctx.slaves.live().map(|(i, _)| i).collect();
        if live.is_empty() {
            let text = "no live slave to ask whether the write was applied; it may or may not \
                        have happened";
            return Step::Done(Body::error(ErrorCode::Timeout, text));
        }
        // A slave out of reach since the first send may have stored it (its STORE applied,
        // its ACK lost with its connection): nobody can say it did not, so the live slaves'
        // "not stored" cannot make the write happen now. Applied again it could be refused
        // (OUT_OF_MEMORY, "did not happen") while that copy comes back at the slave's next
        // INVENTORY. Unless a live slave says it stored it, the answer is TIMEOUT (unknown).
        if ctx.slaves.any_out_of_reach_since(once.first_sent) {
            warn!(
                "write {:?} sent again: a slave out of reach since its first send may hold it",
                once.id
            );
            once.unsure = true;
        }
        once.asking = true;
        let (epoch, id) = (ctx.term.epoch, once.id);
        let age = ctx.now.saturating_duration_since(once.first_sent);
        let age_ms = u32::try_from(age.as_millis()).unwrap_or(u32::MAX).max(1);
        for slave in live {
            let key = op.key.clone();
            let sub = subs.send(ctx, op.id, slave, false, 0, |req_id| Shared::Recall {
                req_id,
                epoch,
                client: id.client,
                seq: id.seq,
                age_ms,
                key,
            });
            self.pending.push(sub);
        }
        Step::Wait
    }

    /// A slave answered RECALL: it holds `held` of the key, and stored the write at `stored`
    /// (with `kept`, the value a STORE_KEEP asked it to keep).
    #[allow(clippy::too_many_arguments)]
    pub fn recalled(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        sub: u64,
        from: SlaveIdx,
        held: u64,
        stored: u64,
        kept: Option<Vec<u8>>,
    ) -> Step {
        self.pending.retain(|&p| p != sub);
        let Some(once) = self.once.as_deref_mut().filter(|o| o.asking) else {
            return Step::Wait;
        };
        match stored {
            RECALL_NONE => {}
            RECALL_UNSURE => {
                let id = &ctx.slaves.get(from).id;
                warn!(
                    "slave '{id}' cannot say whether write {:?} was stored",
                    once.id
                );
                once.unsure = true;
            }
            _ => {
                if stored >= once.stored {
                    once.stored = stored;
                    if kept.is_some() {
                        once.kept = kept;
                    }
                }
            }
        }
        // Compared without the tombstone bit: a tombstone is newer than older values only.
        if plain_version(held) > plain_version(once.held) {
            once.held = held;
            once.holders = Few::default();
        }
        if held == once.held && held != 0 {
            once.holders.push(from);
        }
        self.recall_decide(op, ctx, subs)
    }

    /// Every slave asked has answered (or cannot): the write happened (its answer is OK, and the
    /// newest copy becomes the record if the key map is behind), it cannot be told (TIMEOUT),
    /// or it never happened and never can (it is applied now, once).
    fn recall_decide(&mut self, op: &OpRef, ctx: &mut Ctx, subs: &mut SubTable) -> Step {
        if !self.pending.is_empty() {
            return Step::Wait;
        }
        let once = self.once.as_deref_mut().expect("an exactly-once write");
        once.asking = false;
        if once.stored != 0 {
            debug!("write {:?} was applied before: answering it again", once.id);
            let again = match self.reply {
                Reply::Plain => Body::Ok,
                Reply::Version => Body::Written {
                    version: plain_version(once.stored),
                },
                Reply::Counter => match once.kept.take() {
                    Some(value) => Body::Versioned {
                        version: plain_version(once.stored),
                        value,
                    },
                    None => {
                        let text = "a slave stored the INCR but none kept the value it was \
                                    answered; it happened once, with an unknown result";
                        Body::error(ErrorCode::Timeout, text)
                    }
                },
            };
            once.again = Some(again.clone());
            let known = ctx.keys.get_hashed(op.hash, op.key).map(|e| e.version);
            let known = known.map(plain_version);
            if known.is_some_and(|v| v >= plain_version(once.held)) || once.holders.is_empty() {
                return Step::Done(again);
            }
            // The key map is behind what the slaves hold (the write's primary died before it
            // told its standby): make the newest copy the record, through the backup first.
            self.version = once.held;
            self.acked = std::mem::take(&mut once.holders);
            self.sync_seq = ctx.intent(op.key);
            return self.commit(op, ctx);
        }
        if once.unsure {
            let text = "a slave could not say whether an earlier copy of the write was applied \
                        (it restarted, or could not be asked); it may or may not have happened";
            return Step::Done(Body::error(ErrorCode::Timeout, text));
        }
        if self.probe_only {
            once.clear = true;
            return Step::Wait;
        }
        self.start(op, ctx, subs)
    }

    /// A STORE was ACKed by the slave it was sent to.
    pub fn acked(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        sub: u64,
        from: SlaveIdx,
        version: u64,
    ) -> Step {
        if plain_version(version) < plain_version(self.version) {
            warn!(
                "slave ACKed version {version} for a STORE of {}",
                self.version
            );
        }
        self.pending.retain(|&p| p != sub);
        self.acked.push(from);
        if self.pending.is_empty() {
            return self.commit(op, ctx);
        }
        Step::Wait
    }

    /// Every chosen slave has answered: record the new version and its holders, then say OK.
    pub fn commit(&mut self, op: &OpRef, ctx: &mut Ctx) -> Step {
        if !self.acked.is_empty() && !ctx.synced(self.sync_seq) {
            // A standby has not confirmed the intent: it would not know to distrust its map
            // for this key after a takeover. Wait for its SYNC_ACK (or its loss); one that
            // attached after the intent went out never got it: send it again.
            if ctx.missed(self.sync_seq) {
                self.sync_seq = ctx.intent(op.key);
            }
            return Step::AwaitBackup;
        }
        let (version, holders) = (self.version, std::mem::take(&mut self.acked));
        if holders.is_empty() {
            return Step::Done(self.failed(version));
        }
        // The value this write's STOREs carried, at this version, for the read cache; not when
        // the record is another write's newest copy (a RECALL's `again`), nor a tombstone.
        let own = self.once.as_ref().is_none_or(|o| o.again.is_none()) && !self.tombstone;
        let value = own.then_some(NewValue::Share(&self.value));
        ctx.record_value(op.hash, op.key, version, &holders, value);
        if let Some(again) = self.once.as_ref().and_then(|o| o.again.clone()) {
            // The newest copy of a write applied before became the record: its first answer.
            return Step::Done(again);
        }
        let wanted = ctx.cfg.replicas;
        self.full = holders.len() >= wanted;
        match self.reply {
            Reply::Plain => {}
            Reply::Version => {
                let version = plain_version(version);
                return Step::Done(Body::Written { version });
            }
            Reply::Counter => {
                let (version, value) = (plain_version(version), self.value.to_vec());
                return Step::Done(Body::Versioned { version, value });
            }
        }
        if holders.len() < wanted {
            warn!(
                "version {version} acknowledged with {} of {wanted} copies",
                holders.len()
            );
            return Step::Done(Body::Degraded {
                copies: holders.len() as u16,
                wanted: wanted as u16,
            });
        }
        Step::Done(Body::Ok)
    }

    /// No slave holds the write: a definite failure if every slave tried refused it, else an
    /// unknown outcome (one may have applied it before it was lost).
    fn failed(&self, version: u64) -> Body {
        if self.unanswered || self.refused == 0 {
            warn!("write of version {version} lost every slave it was sent to");
            return Body::error(ErrorCode::NoSlaves, "every slave chosen for the write died");
        }
        warn!(
            "write of version {version} refused by every slave tried ({})",
            self.refused
        );
        if self.out_of_memory {
            let text = "no slave has room for the value (--max-memory); the write did not happen";
            return Body::error(ErrorCode::OutOfMemory, text);
        }
        let text = "every slave tried refused the value; the write did not happen";
        Body::error(ErrorCode::Unavailable, text)
    }

    /// Whether a slave is left to replace one that is slow to ACK.
    pub fn can_replace(&self, slaves: &SlaveTable) -> bool {
        self.cands.has_live(slaves, |c| self.acked.contains(&c))
    }

    /// A STORE will not be ACKed (`refusal`: its slave answered with this ERROR; `None`: the
    /// slave was lost): try the next slave in line, or commit with what was ACKed.
    pub fn sub_failed(
        &mut self,
        op: &OpRef,
        ctx: &mut Ctx,
        subs: &mut SubTable,
        sub: u64,
        refusal: Option<ErrorCode>,
    ) -> Step {
        self.pending.retain(|&p| p != sub);
        if let Some(once) = self.once.as_deref_mut().filter(|o| o.asking) {
            // A slave that cannot answer a RECALL may hold the earlier copy.
            warn!("a RECALL of write {:?} failed ({refusal:?})", once.id);
            once.unsure = true;
            return self.recall_decide(op, ctx, subs);
        }
        match refusal {
            Some(code) => {
                self.refused = self.refused.saturating_add(1);
                self.out_of_memory |= code == ErrorCode::OutOfMemory;
            }
            None => self.unanswered = true,
        }
        let acked = &self.acked;
        let replacement = self.cands.next_live(ctx.slaves, |c| acked.contains(&c));
        match replacement {
            Some(c) => {
                debug!("write moves to replacement slave {c}");
                self.send_store(op, ctx, subs, c);
                Step::Wait
            }
            None if self.pending.is_empty() => self.commit(op, ctx),
            None => Step::Wait,
        }
    }

    /// The deadline passed: the reply, TIMEOUT (outcome unknown).
    pub fn timed_out(&mut self, op: &OpRef, ctx: &mut Ctx) -> Body {
        let text = if self.acked.is_empty() {
            "deadline passed; the write may or may not have happened"
        } else {
            // Some copies are held: make them the record so every later read agrees.
            let holders = std::mem::take(&mut self.acked);
            ctx.record(op.hash, op.key, self.version, &holders);
            "deadline passed with some copies stored; the write may have happened"
        };
        warn!("request {} timed out: {text}", op.req_id);
        Body::error(ErrorCode::Timeout, text)
    }
}

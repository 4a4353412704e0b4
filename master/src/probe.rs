//! Reads a new primary cannot answer from its map: keys with an unconfirmed write (an intent)
//! or, when its snapshot was incomplete, keys it has never heard of. Every live slave is asked;
//! the highest version wins (its holders are all slaves that answered with it), and becomes
//! the record.

use std::time::Instant;

use dsm_wire::Body;
use log::info;

use crate::core::{Master, OpId, Out, Shared};
use crate::keymap::SlaveIdx;
use crate::ops::OpKind;

#[derive(Default)]
pub(crate) struct Probe {
    pub asked: Vec<SlaveIdx>,
    /// The highest version seen, its value, and who holds it.
    pub best: Option<(u64, Vec<u8>, Vec<SlaveIdx>)>,
}

impl Master {
    pub(crate) fn needs_probe(&self, key: &[u8]) -> bool {
        self.ha.suspect.contains(key) || (self.ha.incomplete && self.keys.get(key).is_none())
    }

    pub(crate) fn start_probe(&mut self, id: OpId, now: Instant) {
        if let OpKind::Read(r) = &mut self.ops[id].kind {
            r.probe = Some(Box::default());
        }
        self.probe_ask(id, now);
        self.probe_maybe_decide(id, now);
    }

    /// FETCH from every live slave not yet asked, and look again after `read_retry`.
    fn probe_ask(&mut self, id: OpId, now: Instant) {
        let live: Vec<SlaveIdx> = self.slaves.live().map(|(i, _)| i).collect();
        let key = self.ops[id].key.clone();
        for slave in live {
            let asked = match &self.ops[id].kind {
                OpKind::Read(r) => r.probe.as_ref().is_some_and(|p| p.asked.contains(&slave)),
                _ => true,
            };
            if asked {
                continue;
            }
            let sub = self.new_sub(id, slave, None);
            if let OpKind::Read(r) = &mut self.ops[id].kind {
                r.pending.push(sub);
                if let Some(p) = r.probe.as_mut() {
                    p.asked.push(slave);
                }
            }
            let fetch = Shared::Fetch {
                req_id: sub,
                epoch: self.epoch,
                key: key.clone(),
            };
            let conn = self.slaves.get(slave).conn;
            self.out.push(Out::SendShared(conn, fetch));
        }
        self.arm_read_retry(id, now);
    }

    pub(crate) fn probe_on_retry(&mut self, id: OpId, now: Instant) {
        self.probe_ask(id, now);
        self.probe_maybe_decide(id, now);
    }

    pub(crate) fn probe_on_answer(
        &mut self,
        id: OpId,
        from: SlaveIdx,
        answer: Option<(u64, Vec<u8>)>,
        now: Instant,
    ) {
        if let (OpKind::Read(r), Some((version, value))) = (&mut self.ops[id].kind, answer) {
            if let Some(p) = r.probe.as_mut() {
                match &mut p.best {
                    Some((v, _, holders)) if *v == version => holders.push(from),
                    Some((v, _, _)) if *v > version => {}
                    _ => p.best = Some((version, value, vec![from])),
                }
            }
        }
        self.probe_maybe_decide(id, now);
    }

    /// Decide once every live slave has been asked and has answered or died, and no slave
    /// known from the old primary may still come back.
    pub(crate) fn probe_maybe_decide(&mut self, id: OpId, now: Instant) {
        let waiting_for_slaves = self.in_grace(now) && self.slaves.any_awaiting();
        let OpKind::Read(r) = &mut self.ops[id].kind else {
            return;
        };
        if !r.pending.is_empty() || waiting_for_slaves {
            return;
        }
        // A slave that registered after the last round has not been asked, and may hold the
        // newest copy: deciding without it could answer an older value, or NOT_FOUND.
        let asked = r
            .probe
            .as_ref()
            .map(|p| p.asked.as_slice())
            .unwrap_or_default();
        if self.slaves.live().any(|(s, _)| !asked.contains(&s)) {
            return self.probe_ask(id, now);
        }
        let best = r.probe.as_mut().and_then(|p| p.best.take());
        let key = self.ops[id].key.clone();
        match best {
            Some((version, value, holders)) => {
                info!(
                    "probe settled a key at version {version} on {} slave(s)",
                    holders.len()
                );
                self.record(&key, version, holders);
                self.complete_and_advance(id, Body::Value { value }, now);
            }
            None => {
                self.ha.suspect.remove(&key[..]);
                self.complete_and_advance(id, Body::NotFound, now);
            }
        }
    }
}

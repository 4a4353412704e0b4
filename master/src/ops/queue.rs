//! The per-key queues: operations on one key in arrival order, and what one look at a queue
//! decides (which finished ops reached the front, which waiting ones may start).

use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};

use slab::Slab;

use crate::few::OpQueue;
use crate::idmap::{IdMap, OpId};
use crate::key::Key;

use super::op::Op;

/// A key of the per-key queues, with its keyed hash ([`crate::keymap::KeyIndex::hash`]),
/// computed once when the operation arrives: the queue map (an [`IdMap`]) and the key index
/// both use it, so a READ hashes its key once instead of four or five times.
#[derive(Clone)]
pub(crate) struct QueueKey {
    pub hash: u64,
    pub key: Key,
}

impl QueueKey {
    pub fn of(op: &Op) -> QueueKey {
        QueueKey {
            hash: op.hash,
            key: op.key.clone(),
        }
    }
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

/// What a look at a queue found: `finished` left it (answer them, in this order), `to_start`
/// may start now.
#[derive(Default)]
pub(crate) struct Pass {
    pub finished: Vec<OpId>,
    pub to_start: Vec<OpId>,
}

#[derive(Default)]
pub(crate) struct Queues {
    map: IdMap<QueueKey, OpQueue>,
}

impl Queues {
    /// Put `id` at the back of its key's queue; returns whether it is alone there.
    pub fn push(&mut self, key: QueueKey, id: OpId) -> bool {
        match self.map.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(OpQueue::default()).push_back(id);
                true
            }
            Entry::Occupied(mut queue) => {
                queue.get_mut().push_back(id);
                false
            }
        }
    }

    /// Whether any operation on `key` is queued (started or waiting).
    #[inline]
    pub fn busy(&self, key: &QueueKey) -> bool {
        !self.map.is_empty() && self.map.contains_key(key)
    }

    /// Drop the queue of `key` if `id` is the one op in it; returns whether it was.
    #[inline]
    pub fn take_if_alone(&mut self, key: QueueKey, id: OpId) -> bool {
        match self.map.entry(key) {
            Entry::Occupied(entry) if entry.get().is_only(id) => {
                entry.remove();
                true
            }
            _ => false,
        }
    }

    /// Look at the queue of `key`, where `id` is. Returns true when `id` is alone there and
    /// finished: the queue is dropped and `id` is the whole answer (the common case). Else
    /// finished ops at the front leave the queue into `pass.finished`, and reads before the
    /// first write may start, or that write if it is at the front (`pass.to_start`). An emptied
    /// queue is dropped. `pass` must be empty.
    pub fn pass(&mut self, ops: &Slab<Op>, key: QueueKey, id: OpId, pass: &mut Pass) -> bool {
        let Entry::Occupied(mut entry) = self.map.entry(key) else {
            return false;
        };
        if entry.get().is_only(id) && !ops[id].is_open() {
            entry.remove();
            return true;
        }
        let q = entry.get_mut();
        while let Some(front) = q.front() {
            if ops[front].is_open() {
                break;
            }
            q.pop_front();
            pass.finished.push(front);
        }
        for (pos, qid) in q.iter().enumerate() {
            let op = &ops[qid];
            if !op.is_read() {
                if pos == 0 && !op.started {
                    pass.to_start.push(qid);
                }
                break;
            }
            if !op.started {
                pass.to_start.push(qid);
            }
        }
        if q.is_empty() {
            entry.remove();
        }
        false
    }
}

//! `--fsync always`, pipelined: the batches written to the log and not yet settled, oldest
//! first. A batch is written at the end of its loop turn; one sync on the syncer thread then
//! covers every batch written before it started, and while it runs the loop goes on reading
//! and writing the next batches (which the next sync covers). A batch is applied to the table
//! and its STOREs ACKed only once a sync that covers it has succeeded; batches settle in the
//! order they were staged, so the table sees the changes in the order the log holds them.
//!
//! A sync that fails fails exactly the batches it covered: the log is cut back to where the
//! last good sync ended, those batches' STOREs are refused (ERROR DISK, not applied), and the
//! batches written after the failed sync began are written again for the next sync.

use std::collections::VecDeque;

use super::batch::Staged;

/// One batch (or several consecutive ones merged) waiting for its sync.
pub struct Flight {
    pub ops: Vec<Staged>,
    /// The batch's records, for the compaction's mirror and to write them again after a
    /// failed sync; `Drop` ranges point into them.
    pub bytes: Vec<u8>,
    /// Where its bytes end in the log (meaningful while `written`).
    pub end: u64,
    /// False: refused (the write failed, or a sync that covered it did): settled as such in
    /// its turn.
    pub written: bool,
    /// The connection its STOREs came on is gone: settle it, but answer no one.
    pub orphan: bool,
    /// What its STOREs may grow the table by, and how many new keys they bring.
    pub growth: usize,
    pub new_keys: usize,
}

#[derive(Default)]
pub struct Flights {
    queue: VecDeque<Flight>,
    growth: usize,
    new_keys: usize,
}

impl Flights {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// What the unsettled STOREs may grow the table by, for `--max-memory`.
    pub fn growth(&self) -> usize {
        self.growth
    }

    /// New keys among the unsettled STOREs (at most: a key may come twice).
    pub fn new_keys(&self) -> usize {
        self.new_keys
    }

    /// Queue `f` behind the others; merged into the last one if both are written and that
    /// one is not covered by a sync that has begun (ending at `syncing_to`), so that a slow
    /// sync leaves one batch behind it, not one per turn. (A sync queued and not yet begun
    /// is widened to cover `f` as well.)
    pub fn push(&mut self, mut f: Flight, syncing_to: Option<u64>) {
        self.growth += f.growth;
        self.new_keys += f.new_keys;
        if let Some(last) = self.queue.back_mut() {
            let uncovered = syncing_to.is_none_or(|to| last.end > to);
            if last.written && f.written && !last.orphan && !f.orphan && uncovered {
                let shift = last.bytes.len();
                for op in &mut f.ops {
                    if let Staged::Drop { key, .. } = op {
                        *key = key.start + shift..key.end + shift;
                    }
                }
                last.ops.append(&mut f.ops);
                last.bytes.extend_from_slice(&f.bytes);
                last.end = f.end;
                last.growth += f.growth;
                last.new_keys += f.new_keys;
                return;
            }
        }
        self.queue.push_back(f);
    }

    /// The oldest batch, if its fate is known: refused, or written and within `durable`.
    pub fn pop_settled(&mut self, durable: u64) -> Option<Flight> {
        let front = self.queue.front()?;
        if front.written && front.end > durable {
            return None;
        }
        let f = self.queue.pop_front()?;
        self.growth -= f.growth;
        self.new_keys -= f.new_keys;
        Some(f)
    }

    /// Whether a batch is written and not yet within `durable`.
    pub fn unsynced(&self, durable: u64) -> bool {
        self.queue.iter().any(|f| f.written && f.end > durable)
    }

    /// The batches written and not yet settled, oldest first.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Flight> {
        self.queue.iter_mut()
    }

    /// Nobody is owed the answers of the batches queued now.
    pub fn orphan_all(&mut self) {
        for f in &mut self.queue {
            f.orphan = true;
        }
    }
}

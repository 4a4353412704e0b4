//! Re-replication's bookkeeping: the keys left with fewer than R live copies, waiting for a
//! copy, and the bounds on copies and bytes in flight that keep client traffic moving. The
//! copies themselves are operations in their key's queue (`ops/copy.rs`), so they never race
//! a client write to the same key.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::info;

use crate::key::Key;
use crate::keymap::KeyIndex;
use crate::slaves::SlaveTable;

/// Copies running at once.
pub(crate) const MAX_COPIES: usize = 32;
/// Value bytes held by running copies; no new copy starts above this.
pub(crate) const MAX_COPY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct Repairs {
    /// Keys waiting for a copy.
    queue: VecDeque<Key>,
    active: usize,
    bytes: usize,
    /// Copies made since re-replication last had nothing left to do.
    done: usize,
    /// Copies made since this master started (STATUS `copies_made`).
    total: u64,
    /// Value bytes copies have read from holders since this master started (`/metrics`).
    bytes_read: u64,
}

impl Repairs {
    /// Queue every key that has fewer copies that count than it should (a copy on a slave out
    /// of reach for less than `patience` still counts: it is likely back soon) and a live
    /// holder to copy from.
    pub fn schedule(
        &mut self,
        keys: &KeyIndex,
        slaves: &SlaveTable,
        replicas: usize,
        now: Instant,
        patience: Duration,
    ) {
        let want = replicas.min(slaves.live_count());
        if want == 0 {
            return;
        }
        let before = self.queue.len();
        for (key, e) in keys.iter() {
            let live = e.holders.iter().filter(|&&h| slaves.is_live(h)).count();
            let counted = e
                .holders
                .iter()
                .filter(|&&h| slaves.counts_as_copy(h, now, patience))
                .count();
            if live > 0 && counted < want {
                self.queue.push_back(key.into());
            }
        }
        let added = self.queue.len() - before;
        if added > 0 {
            info!("re-replication: {added} keys below {want} copies queued");
        }
    }

    /// The next key to copy now, if the bounds allow one; counted as running.
    pub fn next_copy(&mut self) -> Option<Key> {
        if self.active >= MAX_COPIES || self.bytes >= MAX_COPY_BYTES {
            return None;
        }
        let Some(key) = self.queue.pop_front() else {
            if self.active == 0 && self.done > 0 {
                info!("re-replication finished: {} copies made", self.done);
                self.done = 0;
            }
            return None;
        };
        self.active += 1;
        Some(key)
    }

    /// Copy the key again later (its source died, or the copy timed out).
    pub fn requeue(&mut self, key: Key) {
        self.queue.push_back(key);
    }

    /// A running copy holds `n` more value bytes.
    pub fn hold_bytes(&mut self, n: usize) {
        self.bytes += n;
        self.bytes_read += n as u64;
    }

    /// A running copy let go of `n` value bytes.
    pub fn release_bytes(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_sub(n);
    }

    /// `n` new copies were recorded.
    pub fn made(&mut self, n: usize) {
        self.done += n;
        self.total += n as u64;
    }

    /// Value bytes copies have read from holders since this master started.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Copies made since this master started.
    pub fn copies_made(&self) -> u64 {
        self.total
    }

    /// A copy ended (done, pointless or given up).
    pub fn copy_ended(&mut self) {
        self.active -= 1;
    }
}

//! What each client's requests in flight may bring back, for the event loop's per-client and
//! global buffer budgets (`--max-client-memory`, `--max-buffer-memory`; see `server.rs`).
//!
//! A WRITE holds its value until it is answered; a READ brings back a value whose size the
//! master learns from the writes it takes and the answers it gets. Only sizes over
//! [`SMALL`] are remembered, by the key's hash (a collision misjudges one reservation, no
//! more); any other READ reserves [`SMALL`].

use std::collections::HashMap;

use crate::idmap::ConnId;

/// What a READ of a key whose value size is unknown, or small, reserves.
pub(crate) const SMALL: u32 = 4096;
/// At most this many large values' sizes are remembered (16 bytes each, and more for the
/// table); past it, new keys reserve [`SMALL`] until a size is forgotten.
const MAX_REMEMBERED: usize = 1 << 20;

#[derive(Default)]
pub(crate) struct Budget {
    /// Per connection id: bytes reserved by its open requests.
    reserved: Vec<usize>,
    total: usize,
    /// The last value size seen per key hash, when over [`SMALL`].
    sizes: HashMap<u64, u32>,
}

impl Budget {
    /// A value of `len` bytes was written to, or read from, the key of `hash`.
    pub fn learn(&mut self, hash: u64, len: usize) {
        if len as u64 > u64::from(SMALL) {
            if self.sizes.len() < MAX_REMEMBERED || self.sizes.contains_key(&hash) {
                self.sizes.insert(hash, len.min(u32::MAX as usize) as u32);
            }
        } else if !self.sizes.is_empty() {
            self.sizes.remove(&hash);
        }
    }

    /// What a READ of the key of `hash` should reserve.
    pub fn read_size(&self, hash: u64) -> u32 {
        match self.sizes.is_empty() {
            true => SMALL,
            false => self.sizes.get(&hash).copied().unwrap_or(SMALL),
        }
    }

    /// Reserve `n` bytes for a request of `conn`.
    pub fn reserve(&mut self, conn: ConnId, n: u32) {
        if self.reserved.len() <= conn {
            self.reserved.resize(conn + 1, 0);
        }
        self.reserved[conn] += n as usize;
        self.total += n as usize;
    }

    /// A request of `conn` that reserved `n` bytes was answered.
    pub fn release(&mut self, conn: ConnId, n: u32) {
        if let Some(r) = self.reserved.get_mut(conn) {
            let n = (n as usize).min(*r);
            *r -= n;
            self.total -= n;
        }
    }

    /// The client went away: its requests' reservations go with it.
    pub fn forget(&mut self, conn: ConnId) {
        if let Some(r) = self.reserved.get_mut(conn) {
            self.total -= *r;
            *r = 0;
        }
    }

    /// Bytes reserved by every client's requests.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes reserved by `conn`'s requests, and by every client's.
    pub fn reserved(&self, conn: ConnId) -> (usize, usize) {
        (self.reserved.get(conn).copied().unwrap_or(0), self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_and_go_with_their_client() {
        let mut b = Budget::default();
        b.learn(7, 1_000_000);
        assert_eq!(b.read_size(7), 1_000_000);
        assert_eq!(b.read_size(8), SMALL);
        b.reserve(3, b.read_size(7));
        b.reserve(3, b.read_size(8));
        b.reserve(5, 100);
        assert_eq!(
            b.reserved(3),
            (1_000_000 + SMALL as usize, 1_000_100 + SMALL as usize)
        );
        b.release(3, 1_000_000);
        assert_eq!(b.reserved(3), (SMALL as usize, SMALL as usize + 100));
        b.forget(3);
        assert_eq!(b.reserved(3), (0, 100));
        // Releasing more than was reserved (a reservation forgotten with its client) is a
        // no-op, never an underflow.
        b.release(3, 50);
        assert_eq!(b.reserved(5), (100, 100));
        // A small value written over a large one: back to the small reservation.
        b.learn(7, 10);
        assert_eq!(b.read_size(7), SMALL);
    }
}

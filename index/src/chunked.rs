//! [`Chunked`]: a `Vec` for tables of millions of records that never copies them all at once.
//!
//! A `Vec` that doubles moves every record to the new block in one step: at 10M records of
//! 32 bytes that is a 320 MB copy (and 480 MB held at once) inside one push, long enough to
//! stall an event loop. Here the records live in blocks of [`CHUNK`] that never move once
//! full; growing adds a block. Only the first block grows by doubling (so that a small table
//! stays small), up to [`CHUNK`] records: no push copies more than that.

use std::collections::TryReserveError;
use std::ops::{Index, IndexMut};

const SHIFT: u32 = 12;
/// Records per block: 4096 (128 KiB of the master's 32-byte records).
pub const CHUNK: usize = 1 << SHIFT;
const MASK: usize = CHUNK - 1;

/// A growable array addressed by position like a `Vec`, stored in blocks of [`CHUNK`].
/// Record `i` is at `chunks[i / CHUNK][i % CHUNK]`; every block but the last is full.
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records it holds room for without allocating.
    pub fn capacity(&self) -> usize {
        match self.chunks.first() {
            None => 0,
            Some(first) => first.capacity() + (self.chunks.len() - 1) * CHUNK,
        }
    }

    /// The capacity [`Chunked::try_reserve`] would leave for `need` records in all: the
    /// first block doubles (at least 4, at least `need`, at most [`CHUNK`]), then whole
    /// blocks are added.
    fn capacity_for(&self, need: usize) -> usize {
        let cap = self.capacity();
        if need <= cap {
            return cap;
        }
        if self.chunks.len() <= 1 && cap < CHUNK {
            let first = (cap * 2).max(4).max(need).min(CHUNK);
            if need <= first {
                return first;
            }
        }
        need.next_multiple_of(CHUNK)
    }

    /// How many more records' room (times the record size: bytes) `additional` more pushes
    /// would allocate.
    pub fn growth(&self, additional: usize) -> usize {
        self.capacity_for(self.len + additional) - self.capacity()
    }

    /// Make room for `additional` more pushes, so that they do not allocate. An error (an
    /// allocation failed) may leave part of the room made, never less than there was.
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), TryReserveError> {
        let need = self.len + additional;
        let want = self.capacity_for(need);
        if want == self.capacity() {
            return Ok(());
        }
        if self.chunks.len() <= 1 {
            let first_cap = want.min(CHUNK);
            if self.chunks.is_empty() {
                self.chunks.push(Vec::new());
            }
            let first = &mut self.chunks[0];
            let extra = first_cap - first.len();
            first.try_reserve_exact(extra)?;
        }
        while self.capacity() < want {
            let mut block = Vec::new();
            block.try_reserve_exact(CHUNK)?;
            self.chunks.push(block);
        }
        Ok(())
    }

    /// Add `value` at position `len`. Panics if the allocation fails.
    pub fn push(&mut self, value: T) {
        if self.len == self.capacity() {
            self.try_reserve(1).expect("out of memory");
        }
        self.chunks[self.len >> SHIFT].push(value);
        self.len += 1;
    }

    /// Take the last record; the room it took stays.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.chunks[self.len >> SHIFT].pop()
    }

    /// Remove the record at `pos` and put the last one in its place, as `Vec::swap_remove`.
    pub fn swap_remove(&mut self, pos: usize) -> T {
        assert!(pos < self.len, "swap_remove at {pos} of {}", self.len);
        let last = self.pop().expect("not empty");
        if pos == self.len {
            last
        } else {
            std::mem::replace(&mut self[pos], last)
        }
    }

    pub fn get(&self, pos: usize) -> Option<&T> {
        self.chunks.get(pos >> SHIFT)?.get(pos & MASK)
    }

    pub fn get_mut(&mut self, pos: usize) -> Option<&mut T> {
        self.chunks.get_mut(pos >> SHIFT)?.get_mut(pos & MASK)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// Drop every record and free every block.
    pub fn clear(&mut self) {
        *self = Chunked::default();
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;

    #[inline]
    fn index(&self, pos: usize) -> &T {
        &self.chunks[pos >> SHIFT][pos & MASK]
    }
}

impl<T> IndexMut<usize> for Chunked<T> {
    #[inline]
    fn index_mut(&mut self, pos: usize) -> &mut T {
        &mut self.chunks[pos >> SHIFT][pos & MASK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_vec_across_blocks() {
        let mut c = Chunked::default();
        let mut model = Vec::new();
        let mut state = 5u64;
        for step in 0..(5 * CHUNK as u64) {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            match (state >> 33) % 8 {
                0 if !model.is_empty() => {
                    let pos = (state >> 40) as usize % model.len();
                    assert_eq!(c.swap_remove(pos), model.swap_remove(pos), "step {step}");
                }
                1 => assert_eq!(c.pop(), model.pop(), "step {step}"),
                _ => {
                    c.push(step);
                    model.push(step);
                }
            }
            assert_eq!(c.len(), model.len());
        }
        assert!(c.len() > 2 * CHUNK, "several blocks were used");
        for (pos, v) in model.iter().enumerate() {
            assert_eq!(c[pos], *v);
            assert_eq!(c.get(pos), Some(v));
        }
        assert_eq!(c.get(model.len()), None);
        assert!(c.iter().eq(model.iter()));
        c[3] = 99;
        assert_eq!(c.get_mut(3).copied(), Some(99));
        c.clear();
        assert_eq!((c.len(), c.capacity()), (0, 0));
    }

    #[test]
    fn growth_is_predicted_and_only_the_first_block_is_ever_copied() {
        let mut c: Chunked<u32> = Chunked::default();
        for i in 0..(3 * CHUNK + 7) as u32 {
            let before = c.capacity();
            let predicted = c.growth(1);
            let first_block = c.chunks.first().map(|b| b.as_ptr());
            c.push(i);
            assert_eq!(c.capacity() - before, predicted, "push {i}");
            if i as usize >= CHUNK {
                assert_eq!(
                    c.chunks.first().map(|b| b.as_ptr()),
                    first_block,
                    "a full block moved"
                );
            }
        }
        assert!(c.chunks.iter().all(|b| b.capacity() == CHUNK));
        assert_eq!(c.capacity(), 4 * CHUNK);
        let mut r: Chunked<u32> = Chunked::default();
        let predicted = r.growth(CHUNK + 1);
        r.try_reserve(CHUNK + 1).unwrap();
        assert_eq!(r.capacity(), predicted);
        assert_eq!(r.capacity(), 2 * CHUNK);
        let small: Chunked<u32> = Chunked::default();
        assert_eq!(small.growth(1), 4, "a small table stays small");
    }
}

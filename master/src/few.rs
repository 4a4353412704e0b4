//! Small collections for the per-request hot path. A request usually has one or two of
//! everything (one FETCH outstanding, R=2 STOREs, two ACKs, one queued op per key), and a heap
//! allocation for each such list cost more than the rest of the bookkeeping.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

/// A list that keeps up to `N` items inline and moves to the heap beyond that.
#[derive(Debug, Clone)]
pub enum Few<T: Copy + Default, const N: usize> {
    Inline { len: usize, items: [T; N] },
    Heap(Vec<T>),
}

impl<T: Copy + Default, const N: usize> Default for Few<T, N> {
    fn default() -> Self {
        Few::Inline {
            len: 0,
            items: [T::default(); N],
        }
    }
}

impl<T: Copy + Default, const N: usize> Deref for Few<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Few::Inline { len, items } => &items[..*len],
            Few::Heap(v) => v,
        }
    }
}

impl<T: Copy + Default, const N: usize> DerefMut for Few<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Few::Inline { len, items } => &mut items[..*len],
            Few::Heap(v) => v,
        }
    }
}

impl<T: Copy + Default, const N: usize> FromIterator<T> for Few<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut few = Few::default();
        for item in iter {
            few.push(item);
        }
        few
    }
}

impl<T: Copy + Default, const N: usize> AsRef<[T]> for Few<T, N> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T: Copy + Default, const N: usize> Few<T, N> {
    pub fn push(&mut self, item: T) {
        match self {
            Few::Inline { len, items } if *len < N => {
                items[*len] = item;
                *len += 1;
            }
            Few::Inline { items, .. } => {
                let mut v = items.to_vec();
                v.push(item);
                *self = Few::Heap(v);
            }
            Few::Heap(v) => v.push(item),
        }
    }

    /// Keep the items for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        match self {
            Few::Inline { len, items } => {
                let mut kept = 0;
                for i in 0..*len {
                    if keep(&items[i]) {
                        items[kept] = items[i];
                        kept += 1;
                    }
                }
                *len = kept;
            }
            Few::Heap(v) => v.retain(|x| keep(x)),
        }
    }
}

/// The operations queued on one key, in arrival order. Most keys have one at a time, so the
/// first lives inline and the deque (which allocates on its first push) holds the rest.
#[derive(Debug, Default)]
pub struct OpQueue {
    head: Option<usize>,
    rest: VecDeque<usize>,
}

impl OpQueue {
    pub fn push_back(&mut self, id: usize) {
        if self.is_empty() {
            self.head = Some(id);
        } else {
            self.rest.push_back(id);
        }
    }

    pub fn front(&self) -> Option<usize> {
        self.head.or_else(|| self.rest.front().copied())
    }

    pub fn pop_front(&mut self) -> Option<usize> {
        self.head.take().or_else(|| self.rest.pop_front())
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.head.into_iter().chain(self.rest.iter().copied())
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_none() && self.rest.is_empty()
    }

    /// Whether `id` is the one op queued.
    pub fn is_only(&self, id: usize) -> bool {
        match self.head {
            Some(h) => h == id && self.rest.is_empty(),
            None => self.rest.len() == 1 && self.rest[0] == id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_matches_a_vec_through_spilling_and_retain() {
        let mut few: Few<u64, 2> = Few::default();
        let mut model = Vec::new();
        for i in 0..7u64 {
            few.push(i);
            model.push(i);
            assert_eq!(&few[..], &model[..]);
        }
        few.retain(|&x| x % 3 != 0);
        model.retain(|&x| x % 3 != 0);
        assert_eq!(&few[..], &model[..]);
        let mut small: Few<u32, 2> = Few::default();
        small.push(4);
        small.push(5);
        small.retain(|&x| x != 4);
        assert_eq!(&small[..], &[5]);
        assert!(matches!(small, Few::Inline { .. }));
        small.retain(|_| false);
        assert!(small.is_empty());
    }

    #[test]
    fn op_queue_is_fifo_across_its_inline_head() {
        let mut q = OpQueue::default();
        let mut model = VecDeque::new();
        let mut next = 0;
        // Interleave pushes and pops so the head empties while the deque still holds items.
        for round in 0..50 {
            for _ in 0..(round % 4) {
                q.push_back(next);
                model.push_back(next);
                next += 1;
            }
            assert_eq!(q.iter().collect::<Vec<_>>(), Vec::from(model.clone()));
            assert_eq!(q.front(), model.front().copied());
            if round % 3 != 0 {
                assert_eq!(q.pop_front(), model.pop_front());
            }
            assert_eq!(q.is_empty(), model.is_empty());
            for id in 0..next {
                assert_eq!(q.is_only(id), model.len() == 1 && model[0] == id);
            }
        }
    }
}

//! [`SharedBytes`]: a value shared by reference-count, in a buffer of its own or in the
//! middle of a larger one it keeps alive (the frame it arrived in), so a large WRITE's value
//! is written to every slave from the buffer the client's frame was read into, never copied.

use std::fmt;
use std::ops::{Deref, Range};
use std::rc::Rc;

/// An immutable byte slice that clones by reference: `buf[range]`.
#[derive(Clone, Default)]
pub struct SharedBytes {
    buf: Rc<Vec<u8>>,
    range: Range<usize>,
}

impl SharedBytes {
    /// `part` as a slice of `buf`, without copying, if `part` lies inside `buf` (it was
    /// borrowed from it); `None` otherwise.
    pub fn within(buf: &Rc<Vec<u8>>, part: &[u8]) -> Option<SharedBytes> {
        let outer = buf.as_ptr_range();
        let inner = part.as_ptr_range();
        if part.is_empty() || inner.start < outer.start || inner.end > outer.end {
            return None;
        }
        let start = inner.start as usize - outer.start as usize;
        Some(SharedBytes {
            buf: Rc::clone(buf),
            range: start..start + part.len(),
        })
    }

    /// Bytes the buffer behind it holds (its allocation may be larger than the slice).
    pub fn buffer_len(&self) -> usize {
        self.buf.capacity()
    }
}

impl Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<&[u8]> for SharedBytes {
    /// A copy of `value` in a buffer of its own.
    fn from(value: &[u8]) -> SharedBytes {
        SharedBytes::from(value.to_vec())
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(value: Vec<u8>) -> SharedBytes {
        let range = 0..value.len();
        SharedBytes {
            buf: Rc::new(value),
            range,
        }
    }
}

impl PartialEq for SharedBytes {
    fn eq(&self, other: &SharedBytes) -> bool {
        self[..] == other[..]
    }
}

impl Eq for SharedBytes {}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self[..], f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_of_the_buffer_is_shared_not_copied() {
        let buf = Rc::new((0..100u8).collect::<Vec<u8>>());
        let part = SharedBytes::within(&buf, &buf[10..30]).expect("inside");
        assert_eq!(&part[..], &buf[10..30]);
        assert_eq!(
            part.as_ptr(),
            buf[10..].as_ptr(),
            "the same bytes, not a copy"
        );
        assert_eq!(
            Rc::strong_count(&buf),
            2,
            "the slice keeps the buffer alive"
        );
        drop(part);
        assert_eq!(Rc::strong_count(&buf), 1);
    }

    #[test]
    fn bytes_from_elsewhere_are_not_taken_for_a_part() {
        let buf = Rc::new(vec![1u8; 10]);
        let other = vec![1u8; 10];
        assert!(SharedBytes::within(&buf, &other).is_none());
        assert!(
            SharedBytes::within(&buf, &buf[..0]).is_none(),
            "empty: nothing to share"
        );
        let copied = SharedBytes::from(&other[..]);
        assert_eq!(copied, SharedBytes::from(vec![1u8; 10]));
        assert_eq!(SharedBytes::default().len(), 0);
    }
}

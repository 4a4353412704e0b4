//! A key as the master holds it while operations on it are in flight: in the operation, in its
//! key's queue, and in every STORE or FETCH sent for it. Short keys, the common case, live
//! inline, so a request costs no allocation for its key; longer ones are shared behind an
//! `Rc`, so the copies of a large key stay one.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::rc::Rc;

/// Keys up to this many bytes are stored inline (with the length byte and the tag, 24 bytes:
/// the size of the enum is set by `Rc<[u8]>` plus its tag anyway).
pub const INLINE: usize = 22;

#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Rc<[u8]>),
}

impl From<&[u8]> for Key {
    fn from(key: &[u8]) -> Key {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            Key::Shared(key.into())
        }
    }
}

impl Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Shared(rc) => rc,
        }
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

/// Hashes as the byte slice does, so maps keyed by `Key` can be searched with a `&[u8]`.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;

    #[test]
    fn short_keys_are_inline_long_ones_shared_and_both_read_back() {
        for len in [0, 1, 16, INLINE, INLINE + 1, 100] {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(7)).collect();
            let key = Key::from(&bytes[..]);
            assert_eq!(&*key, &bytes[..], "length {len}");
            assert_eq!(
                matches!(key, Key::Inline { .. }),
                len <= INLINE,
                "length {len}"
            );
            assert_eq!(&*key.clone(), &bytes[..]);
        }
        assert_eq!(std::mem::size_of::<Key>(), 24);
    }

    #[test]
    fn equality_and_hash_follow_the_bytes_not_the_storage() {
        let s = RandomState::new();
        let short = Key::from(&b"abc"[..]);
        let same = Key::Shared(Rc::from(&b"abc"[..]));
        assert_eq!(short, same);
        assert_eq!(s.hash_one(&short), s.hash_one(&same));
        assert_eq!(s.hash_one(&short), s.hash_one(&b"abc"[..]));
        // Trailing bytes of the inline buffer take no part.
        assert_ne!(Key::from(&b"ab"[..]), Key::from(&b"ab\0"[..]));
        let mut set = std::collections::HashSet::new();
        set.insert(short);
        assert!(set.contains(&b"abc"[..]));
    }
}

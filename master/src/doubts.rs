//! What this master's key map may be wrong about: keys with a write whose outcome it never
//! learnt (an *intent* from the primary with no later state), and, while its snapshot from the
//! primary is incomplete, every key it has not heard of. A read of such a key asks every live
//! slave (`ops/probe.rs`) instead of trusting the map.

use std::collections::HashSet;

use crate::keymap::KeyIndex;

#[derive(Default)]
pub(crate) struct Doubts {
    /// Keys with an intent and no later state.
    suspect: HashSet<Box<[u8]>>,
    /// The map may lack keys: a backup before its snapshot is complete, and a primary that
    /// took over without one, until its recovery ends (every slave that may hold a key has
    /// reported it: `Members::end_recovery`).
    pub incomplete: bool,
}

impl Doubts {
    /// A write to `key` started somewhere this master cannot see the end of.
    pub fn intent(&mut self, key: &[u8]) {
        self.suspect.insert(key.into());
    }

    /// The key's state is known again.
    pub fn settled(&mut self, key: &[u8]) {
        // Removing hashes the key even from an empty set; it is empty but after a takeover.
        if !self.suspect.is_empty() {
            self.suspect.remove(key);
        }
    }

    /// Whether a read of `key` must ask every slave.
    #[inline]
    pub fn needs_probe(&self, key: &[u8], keys: &KeyIndex) -> bool {
        // An empty set is not asked: asking hashes the key (SipHash) on every READ.
        (!self.suspect.is_empty() && self.suspect.contains(key))
            || (self.incomplete && keys.get(key).is_none())
    }

    pub fn suspects(&self) -> impl Iterator<Item = &[u8]> {
        self.suspect.iter().map(|k| &k[..])
    }

    pub fn suspect_count(&self) -> usize {
        self.suspect.len()
    }
}

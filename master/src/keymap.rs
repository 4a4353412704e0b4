//! The master's key index: for each key, the latest acknowledged version and the slaves that
//! hold it. Only acknowledged writes are recorded here.

use std::collections::HashMap;

/// Index of a slave in the master's slave table. An index is never reused: a slave that rejoins
/// gets a new one, so a dead index can never be mistaken for a live holder.
pub type SlaveIdx = u32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub version: u64,
    pub holders: Vec<SlaveIdx>,
}

#[derive(Default)]
pub struct KeyIndex {
    map: HashMap<Box<[u8]>, Entry>,
}

impl KeyIndex {
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.map.get_mut(key)
    }

    /// Record `version` on `holders`; returns the previous entry, whose holders no longer count.
    pub fn commit(&mut self, key: &[u8], version: u64, holders: Vec<SlaveIdx>) -> Option<Entry> {
        let entry = Entry { version, holders };
        match self.map.get_mut(key) {
            Some(old) => Some(std::mem::replace(old, entry)),
            None => {
                self.map.insert(key.into(), entry);
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.map.iter().map(|(k, e)| (&k[..], e))
    }
}

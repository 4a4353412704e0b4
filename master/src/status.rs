//! The master's answer to STATUS: its role and epoch, its key count, how many keys are short
//! of R live copies, how many copies re-replication has made, and every slave it knows with
//! the keys placed on it.

use std::collections::HashMap;

use dsm_wire::{BackupLink, ServerRole, SlaveStatus, Status};

use crate::keymap::{KeyIndex, SlaveIdx};
use crate::slaves::SlaveTable;

/// STATUS lists at most this many slaves (connected first): with ids of up to 128 bytes the
/// reply stays under 300 KiB, far below every frame limit, however many slaves registered.
pub(crate) const MAX_LISTED: usize = 1000;

/// What STATUS says of the answering master itself.
pub(crate) struct Head {
    pub role: ServerRole,
    pub epoch: u64,
    pub replicas: usize,
    pub copies_made: u64,
    /// Its own client address, and the primary's as it knows it.
    pub addr: String,
    pub primary: String,
    pub backup: BackupLink,
}

/// One pass over the key map: per-slave counts and under-replication are derived here rather
/// than kept up to date on every write. A key is short of R live copies also when fewer than R
/// slaves are live to hold them.
pub(crate) fn status(head: Head, keys: &KeyIndex, slaves: &SlaveTable) -> Status {
    let replicas = head.replicas;
    let mut per_slave: HashMap<SlaveIdx, u64> = HashMap::new();
    let mut under = 0;
    for (_, e) in keys.iter() {
        let mut live = 0;
        for &h in e.holders.iter().filter(|&&h| slaves.is_live(h)) {
            live += 1;
            *per_slave.entry(h).or_default() += 1;
        }
        if live < replicas {
            under += 1;
        }
    }
    Status {
        role: head.role,
        epoch: head.epoch,
        replicas: replicas as u16,
        keys: keys.len() as u64,
        under_replicated: under as u64,
        copies_made: head.copies_made,
        addr: head.addr,
        primary: head.primary,
        backup: head.backup,
        slaves: slaves
            .listed(MAX_LISTED)
            .into_iter()
            .map(|(idx, s)| SlaveStatus {
                id: s.id.clone(),
                addr: s.addr.clone(),
                live: s.live(),
                keys: per_slave.get(&idx).copied().unwrap_or(0),
            })
            .collect(),
    }
}

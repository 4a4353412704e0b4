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

/// What a walk over the key map counts: keys placed on each live slave, and keys short of R
/// live copies (also when fewer than R slaves are live to hold them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    pub per_slave: HashMap<SlaveIdx, u64>,
    pub under: u64,
}

impl Counts {
    /// Count one key held by `holders`.
    #[inline]
    pub fn add(&mut self, holders: &[SlaveIdx], slaves: &SlaveTable, replicas: usize) {
        let mut live = 0;
        for &h in holders.iter().filter(|&&h| slaves.reported_live(h)) {
            live += 1;
            *self.per_slave.entry(h).or_default() += 1;
        }
        if live < replicas {
            self.under += 1;
        }
    }
}

/// One pass over the key map at once: per-slave counts and under-replication are derived
/// rather than kept up to date on every write. For tests; the event loop walks the map in
/// slices instead (`census.rs`) and answers with [`assemble`].
pub(crate) fn status(head: Head, keys: &KeyIndex, slaves: &SlaveTable) -> Status {
    let mut counts = Counts::default();
    for (_, e) in keys.iter() {
        counts.add(e.holders, slaves, head.replicas);
    }
    assemble(head, keys.len(), slaves, &counts)
}

/// STATUS from `counts` made by a walk over a key map of `keys` keys.
pub(crate) fn assemble(head: Head, keys: usize, slaves: &SlaveTable, counts: &Counts) -> Status {
    let replicas = head.replicas;
    let (per_slave, under) = (&counts.per_slave, counts.under);
    Status {
        role: head.role,
        epoch: head.epoch,
        replicas: replicas as u16,
        keys: keys as u64,
        under_replicated: under,
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
                live: s.reported_live(),
                keys: per_slave.get(&idx).copied().unwrap_or(0),
            })
            .collect(),
    }
}

//! The master's epoch and the versions it hands out. Versions carry the epoch in their top
//! bits, so every write of a newer primary outranks anything an older one wrote.

/// Bits of a version below the epoch.
pub(crate) const EPOCH_SHIFT: u32 = 40;

/// The first version a primary of `epoch` hands out.
pub(crate) fn first_version(epoch: u64) -> u64 {
    (epoch << EPOCH_SHIFT) | 1
}

/// The lowest version no master could have handed out by epoch `epoch` included: the ceiling
/// of what a slave that has seen at most `epoch` can legitimately hold (every STORE it took
/// carried the epoch of the master that sent it, and that master's versions carry it too).
pub(crate) fn ceiling_after(epoch: u64) -> u64 {
    match epoch.checked_add(1) {
        Some(next) if next < 1 << (64 - EPOCH_SHIFT) => first_version(next),
        _ => u64::MAX,
    }
}

pub(crate) struct Term {
    pub epoch: u64,
    next_version: u64,
}

impl Default for Term {
    fn default() -> Term {
        Term {
            epoch: 1,
            next_version: first_version(1),
        }
    }
}

impl Term {
    /// A new version for a write.
    pub fn take_version(&mut self) -> u64 {
        let v = self.next_version;
        self.next_version += 1;
        v
    }

    pub fn next_version(&self) -> u64 {
        self.next_version
    }

    /// Whether a slave may report `version` to this master serving at its settled epoch: only
    /// a version this master, or a primary before it whose counter it followed or whose epoch
    /// it outranks, handed out. Everything above is a lie (or a bug) and is refused.
    /// (A tombstone's bit is not part of the version: see `dsm_wire::plain_version`.)
    pub fn handed_out(&self, version: u64) -> bool {
        dsm_wire::plain_version(version) < self.next_version
    }

    /// A peer has seen `epoch`: never go below it.
    pub fn see_epoch(&mut self, epoch: u64) {
        self.epoch = self.epoch.max(epoch);
    }

    /// A backup follows its primary's epoch and versions, so that after a takeover it gives
    /// out none the primary already gave.
    pub fn follow(&mut self, epoch: u64, next_version: u64) {
        self.see_epoch(epoch);
        self.next_version = self.next_version.max(next_version);
    }

    /// A restarted master that has heard every slave: serve at `epoch`, above any seen.
    pub fn restart_at(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.next_version = self.next_version.max(first_version(epoch));
    }
}

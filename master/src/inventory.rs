//! A slave's report of what it holds (INVENTORY), reconciled with the key map by version: a copy
//! at the committed version makes the slave a holder again (no copying), an older one is stale
//! (the slave is told to DROP it), and one newer than the map knows came from a write whose
//! outcome was reported unknown to its client: it is adopted, as if that write took effect now
//! (it may, by the meaning of an unknown outcome), and the older copies are stale. One at a
//! version no master handed out ([`Reconcile::ceiling`]) is refused and logged. Work is
//! proportional to the report, one key-map lookup per key; each frame's lookups are warmed
//! first ([`KeyIndex::warm`]), which took the master's CPU for a 1M-key report from about
//! 340 to 160–240 ms (alternating runs, `bench-results/persist-bench-2026-12-03.md`).

use dsm_wire::Body;

use crate::ha::stream::Streams;
use crate::idmap::ConnId;
use crate::keymap::{KeyIndex, Reported, SlaveIdx};
use crate::outbox::Outbox;
use crate::slaves::{SlaveTable, State};

/// How one report went, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub held: usize,
    pub adopted: usize,
    pub stale: usize,
    /// Entries at a version no master handed out (see [`Reconcile::ceiling`]): ignored.
    pub refused: usize,
    /// The highest of them, for the log.
    pub refused_max: u64,
}

pub(crate) struct Reconcile<'a> {
    pub keys: &'a mut KeyIndex,
    pub slaves: &'a SlaveTable,
    pub out: &'a mut Outbox,
    pub stream: Option<&'a mut Streams>,
    /// Versions from here up were never handed out, so no slave can hold them: serving at a
    /// settled epoch, this master's next version (`Term::handed_out`); recovering (the epoch
    /// is not settled, the map was not kept), the first version of the epoch after the
    /// highest the reporting slave has seen (`term::ceiling_after`). A lying slave's entries
    /// above it are refused, so it cannot plant a version that outranks every later write.
    pub ceiling: u64,
}

impl Reconcile<'_> {
    /// Take the entries of one INVENTORY frame from slave `from` (on `conn`).
    pub fn entries(
        &mut self,
        from: SlaveIdx,
        conn: ConnId,
        entries: Vec<(Vec<u8>, u64)>,
        tally: &mut Tally,
    ) {
        let hashes: Vec<u64> = entries.iter().map(|(k, _)| self.keys.hash(k)).collect();
        let mut likely = Vec::with_capacity(hashes.len());
        std::hint::black_box(self.keys.warm(&hashes, &mut likely));
        for ((key, version), hash) in entries.into_iter().zip(hashes) {
            if dsm_wire::plain_version(version) >= self.ceiling {
                tally.refused += 1;
                tally.refused_max = tally.refused_max.max(version);
                continue;
            }
            match self.keys.reported_hashed(hash, &key, version, from) {
                Reported::Held => tally.held += 1,
                Reported::Stale => {
                    self.out.send(conn, 0, Body::Drop { version, key });
                    tally.stale += 1;
                    continue;
                }
                Reported::Newer(committed) => {
                    // Newer than anything known: the old copies are stale where they can be
                    // told so now; the others are told when they report.
                    if let Some(old) = committed {
                        let stale_on = self
                            .keys
                            .get_hashed(hash, &key)
                            .map(|e| e.holders.to_vec())
                            .unwrap_or_default();
                        self.drop_stale(&key, old, &stale_on);
                    }
                    self.keys.commit_hashed(hash, &key, version, &[from]);
                    tally.adopted += 1;
                }
            }
            if let Some(stream) = self.stream.as_deref_mut() {
                stream.key_changed(&key, self.keys, self.slaves);
            }
        }
    }

    fn drop_stale(&mut self, key: &[u8], version: u64, holders: &[SlaveIdx]) {
        for &h in holders {
            let s = self.slaves.get(h);
            if let State::Live | State::Joining = s.state {
                let body = Body::Drop {
                    version,
                    key: key.to_vec(),
                };
                self.out.send(s.conn, 0, body);
            }
        }
    }
}

//! Compaction: a new log holding one STORE per key held (and the writers' records, written
//! first), written beside the old one a bounded
//! slice per loop turn (Bitcask's merge, Redis's AOF rewrite), then synced and renamed over
//! it. Until the rename the old log is whole and is what a restart replays; the temporary
//! file left by a crash is removed at the next start.
//!
//! The table changes while it is copied, so every change committed meanwhile is appended to
//! the new file too, after what was copied before it: replaying the new file applies the same
//! changes in the same order as the table saw them. One more case: a DROP fills its hole with
//! the table's last record, which may move a record not yet copied behind the copy cursor;
//! [`Compaction::moved`] copies such a record at once.
//!
//! Once everything is copied, the new file is synced on the syncer thread while the loop goes
//! on (and mirrors on); then the little appended meanwhile is synced in place, and the file is
//! renamed over the old log.

use std::io;
use std::time::Instant;

use super::file::{Disk, LogFile};
use super::record;
use crate::table::Table;
use crate::writers::Writers;

/// The temporary file a compaction writes.
pub const COMPACTING: &str = "slave.log.compact";

pub struct Compaction {
    file: Box<dyn LogFile>,
    /// The next table position to copy.
    cursor: usize,
    buf: Vec<u8>,
    /// Bytes written to the new file.
    written: u64,
    /// Keys copied (the moved ones included).
    copied: u64,
    turns: u64,
    /// Every record of the table is copied.
    pub copied_all: bool,
    /// The sync of the copy was started on the syncer thread.
    pub syncing: bool,
    /// That sync succeeded.
    pub synced: bool,
    pub started: Instant,
    /// The old log's length when this started.
    pub old_len: u64,
}

impl Compaction {
    /// Create the new file with the header, VOUCHES if `writers` is complete, the epoch and
    /// the writers' records (the changes applied from now on are mirrored after them, each
    /// STORE_ONCE with its writer, so replay rebuilds the records as they will be).
    pub fn start(
        disk: &mut dyn Disk,
        epoch: u64,
        writers: &Writers,
        old_len: u64,
        now: Instant,
    ) -> io::Result<Compaction> {
        let mut file = disk.create(COMPACTING)?;
        let mut buf = record::MAGIC.to_vec();
        if writers.complete() {
            record::encode_vouches(&mut buf);
        }
        record::encode_epoch(&mut buf, epoch);
        writers.encode(&mut buf);
        file.append(&buf)?;
        Ok(Compaction {
            file,
            cursor: 0,
            written: buf.len() as u64,
            buf,
            copied: 0,
            turns: 0,
            copied_all: false,
            syncing: false,
            synced: false,
            started: now,
            old_len,
        })
    }

    /// Copy records from the cursor on, about `budget` bytes of them; returns whether the
    /// whole table is copied.
    pub fn step(&mut self, table: &Table, budget: usize) -> io::Result<bool> {
        self.turns += 1;
        self.buf.clear();
        while self.buf.len() < budget {
            let Some(r) = table.at(self.cursor) else {
                break;
            };
            record::encode_store(&mut self.buf, r.version(), r.key(), r.value());
            self.cursor += 1;
            self.copied += 1;
        }
        self.file.append(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.copied_all = self.cursor >= table.len();
        Ok(self.copied_all)
    }

    /// Start syncing what is written on the syncer thread; false if it is busy.
    pub fn start_sync(&mut self) -> io::Result<bool> {
        self.syncing = self.file.start_sync()?;
        Ok(self.syncing)
    }

    /// The outcome of that sync, once known.
    pub fn sync_outcome(&mut self) -> Option<io::Result<()>> {
        self.file.sync_outcome()
    }

    /// Bytes the log got while this runs (whole records, already applied to the table).
    pub fn mirror(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.append(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// A DROP moved the table's record at `from` to `to`: if that takes it from the part
    /// not copied yet to the part copied, copy it now.
    pub fn moved(&mut self, table: &Table, from: usize, to: usize) -> io::Result<()> {
        if !(to < self.cursor && from >= self.cursor) {
            return Ok(());
        }
        let Some(r) = table.at(to) else {
            return Ok(());
        };
        self.buf.clear();
        record::encode_store(&mut self.buf, r.version(), r.key(), r.value());
        self.copied += 1;
        self.file.append(&self.buf)?;
        self.written += self.buf.len() as u64;
        Ok(())
    }

    /// Sync the new file (in place: what was mirrored since the background sync started):
    /// the last step before it may replace the old log. Returns it, its length, and the loop
    /// turns it took.
    pub fn finish(mut self) -> io::Result<(Box<dyn LogFile>, u64, u64)> {
        self.file.sync()?;
        Ok((self.file, self.written, self.turns))
    }
}

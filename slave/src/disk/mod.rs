//! The slave's data on disk (`--data-dir`): an append-only log of the changes it keeps
//! (STOREs, DROPs, the highest master epoch seen), replayed at start, compacted in the
//! background. [`Durable`] owns the log and decides when to write, sync and compact; the
//! [`crate::Store`] calls it and applies what it says reached the disk.
//!
//! | file | what it owns |
//! |---|---|
//! | `record.rs` | the byte layout of a record, and its checksum (`crc.rs`) |
//! | `file.rs` | the file-system calls, behind the [`Disk`] and [`LogFile`] traits |
//! | `mem.rs` | [`MemDisk`], the in-memory disk of the tests, which fails and crashes on demand |
//! | `replay.rs` | reading the log back at start, cutting a torn or corrupt tail |
//! | `journal.rs` | the file appended to, `--fsync`, and cutting back a failed write |
//! | `batch.rs` | the records of one loop turn, written together, applied after |
//! | `flight.rs` | under `--fsync always`, the batches written and waiting for their sync |
//! | `compact.rs` | the new log written beside the old one, a slice per turn |
//! | `syncer.rs` | the thread that runs the syncs the loop does not wait for |

mod batch;
mod compact;
mod crc;
mod file;
mod flight;
mod journal;
mod mem;
pub mod record;
mod replay;
mod syncer;

use std::io;
use std::time::{Duration, Instant};

use dsm_auth::RefusalLog;
use log::{error, info, warn};

pub use self::compact::COMPACTING;
pub use self::crc::crc32c;
pub use self::file::{Disk, FsDisk, LogFile};
pub use self::journal::Fsync;
pub use self::mem::{MemDisk, Op};
pub use self::replay::{Cut, Replayed, LOG, SET_ASIDE};
pub use self::syncer::Wake;

use self::batch::{Batch, Staged};
use self::compact::Compaction;
use self::flight::{Flight, Flights};
use self::journal::Journal;
use crate::table::{Put, Record, Table};
use crate::writers::Writers;

/// A batch this large is written at once rather than at the end of the turn, so a turn that
/// reads a flood of STOREs holds a bounded buffer.
const BATCH_MAX: usize = 1 << 20;
/// Default of [`Settings::compact_step`]: about 50 µs of work per turn (256 KiB doubled the
/// p99 of a 4x32 WRITE load while a compaction ran; 64 KiB added a third).
pub const COMPACT_STEP: usize = 64 * 1024;
/// After a compaction fails (say, the disk is full), wait this long before the next.
const COMPACT_RETRY: Duration = Duration::from_secs(60);
/// Under `--fsync always` the log grows ahead of its appends by this much at a time (see
/// [`FsDisk::preallocate`]): a sync in ten thousand or so of 100-byte records pays for it.
pub const PREALLOCATE: u64 = 1 << 20;
/// Default of `--compact-min-bytes`.
pub const COMPACT_MIN: u64 = 64 << 20;

/// A point where a debug build stops the process on purpose (`DSM_FAILPOINT`), so that tests
/// can crash a slave in the middle of a compaction. Release builds ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// After the first slice of records is written to the new file.
    CompactMidway,
    /// The new file is whole and synced, not yet renamed.
    CompactBeforeRename,
    /// Renamed over the old log; the directory not yet synced.
    CompactAfterRename,
}

impl Failpoint {
    pub fn parse(s: &str) -> Option<Failpoint> {
        match s {
            "compact-midway" => Some(Failpoint::CompactMidway),
            "compact-before-rename" => Some(Failpoint::CompactBeforeRename),
            "compact-after-rename" => Some(Failpoint::CompactAfterRename),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Failpoint::CompactMidway => "compact-midway",
            Failpoint::CompactBeforeRename => "compact-before-rename",
            Failpoint::CompactAfterRename => "compact-after-rename",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub fsync: Fsync,
    /// Compact once the log is at least this long and over twice what it would be compacted.
    pub compact_min: u64,
    /// Bytes of records a compaction copies per loop turn.
    pub compact_step: usize,
    pub failpoint: Option<Failpoint>,
}

/// What became of one staged STORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// On disk and applied; the table holds `version` (or a newer one it already had).
    Ack { req: u64, version: u64 },
    /// Not written (nor applied): the disk refused the batch.
    Refused { req: u64 },
}

pub struct Durable {
    disk: Box<dyn Disk>,
    journal: Journal,
    batch: Batch,
    /// Under `--fsync always`: batches written, waiting for the sync that covers them.
    flights: Flights,
    compaction: Option<Compaction>,
    settings: Settings,
    /// What a compacted log would hold: the header, an epoch, a STORE per key.
    live_bytes: u64,
    /// The epoch last written, and the one to write.
    epoch_logged: u64,
    epoch_wanted: u64,
    /// No compaction starts before this.
    compact_after: Option<Instant>,
    /// A rename was not made durable: sync the directory before anything more is ACKed.
    dir_unsynced: bool,
    /// The time the event loop last reported, for commits made in the middle of a turn.
    now: Instant,
    /// Failed writes and syncs, logged once and then every 10 s with a count.
    failures: RefusalLog,
    /// Compactions that replaced the log (`/metrics`).
    compactions: u64,
}

/// The bytes of the header, one EPOCH record and VOUCHES: a compacted log of no keys (and
/// no writers' records).
const BASE_BYTES: u64 = (record::MAGIC.len() + record::HEADER + 8 + record::VOUCHES_LEN) as u64;

impl Durable {
    /// Replay the log in `disk` and take it over for appending: the log is cut to its last
    /// good record, or started with a header if it is new.
    pub fn open(
        mut disk: Box<dyn Disk>,
        settings: Settings,
        now: Instant,
    ) -> io::Result<(Replayed, Durable)> {
        let mut replayed = replay::replay(&mut *disk, now)?;
        let (mut file, mut len) = disk.open_append(LOG)?;
        let header = record::MAGIC.len() as u64;
        // A log that always carried the writers' records vouches for the writes it stored;
        // a new one does from its first record, since nothing is stored here before it.
        let mut complete = replayed.vouches && replayed.cut.is_none();
        if replayed.len < header {
            let mut fresh = record::MAGIC.to_vec();
            record::encode_vouches(&mut fresh);
            file.truncate(0)?;
            file.append(&fresh)?;
            file.sync()?;
            disk.sync_dir()?;
            len = fresh.len() as u64;
            complete = true;
        } else if len > replayed.len {
            file.truncate(replayed.len)?;
            file.sync()?;
            len = replayed.len;
        }
        let live: u64 = (0..replayed.table.len())
            .filter_map(|i| replayed.table.at(i))
            .map(|r| record::store_len(r.key().len(), r.value().len()))
            .sum();
        replayed.writers.set_complete(complete);
        let durable = Durable {
            disk,
            journal: Journal::new(file, len, settings.fsync),
            batch: Batch::default(),
            flights: Flights::default(),
            compaction: None,
            settings,
            live_bytes: BASE_BYTES + live,
            epoch_logged: replayed.epoch,
            epoch_wanted: replayed.epoch,
            compact_after: None,
            dir_unsynced: false,
            now,
            failures: RefusalLog::default(),
            compactions: 0,
        };
        Ok((replayed, durable))
    }

    /// Where the log is, for log lines.
    pub fn path(&self) -> String {
        self.disk.path_of(LOG)
    }

    /// How long syncs took, for `/metrics`.
    pub fn sync_latency(&self) -> &dsm_net::prom::Histogram {
        &self.journal.syncs
    }

    /// Compactions that replaced the log since start.
    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    pub fn log_len(&self) -> u64 {
        self.journal.len()
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// What the STOREs not yet applied (staged, or written and waiting for their sync) may
    /// grow the table by.
    pub fn staged_growth(&self) -> usize {
        self.batch.growth() + self.flights.growth()
    }

    /// New keys among the STOREs not yet applied (at most: a key may come twice).
    pub fn staged_new_keys(&self) -> usize {
        self.batch.new_keys() + self.flights.new_keys()
    }

    /// The connection the STOREs not yet answered came on is gone: they are still written,
    /// synced and applied, but their answers go to no one.
    pub fn forget_answers(&mut self) {
        self.flights.orphan_all();
    }

    /// Under `--fsync always`: when the sync that ACKs wait for started (`None`: none runs).
    pub fn sync_started(&self) -> Option<Instant> {
        self.journal.syncing_since()
    }

    /// `--fsync always`: syncs run on the syncer thread, pipelined with the next batches.
    fn pipelined(&self) -> bool {
        self.settings.fsync == Fsync::Always
    }

    pub fn compacting(&self) -> bool {
        self.compaction.is_some()
    }

    /// Whether commits wait for a sync (so they are best grouped per loop turn).
    pub fn groups_commits(&self) -> bool {
        self.journal.syncs_every_append()
    }

    /// Stage a STORE (its table `record` built already; `writer`: a STORE_ONCE's); its
    /// answer comes from a commit. Returns whether the batch is full and should be committed
    /// now.
    pub fn stage_store(
        &mut self,
        req: u64,
        record: Record,
        writer: Option<&record::Writer<'_>>,
        growth: usize,
        new_key: bool,
    ) -> bool {
        self.batch.store(req, record, writer, growth, new_key);
        self.batch.bytes().len() >= BATCH_MAX
    }

    pub fn stage_drop(&mut self, version: u64, key: &[u8]) {
        self.batch.drop_key(version, key, None);
    }

    /// Stage a PURGE: a DROP whose request `req` is ACKed once it is on disk.
    pub fn stage_purge(&mut self, req: u64, version: u64, key: &[u8]) {
        self.batch.drop_key(version, key, Some(req));
    }

    /// A higher epoch was seen: it goes into the next commit.
    pub fn note_epoch(&mut self, epoch: u64) {
        self.epoch_wanted = self.epoch_wanted.max(epoch);
    }

    /// Write what is staged, then apply it to `table` and put each STORE's answer in
    /// `answers`; if the disk refuses, no STORE of the batch is applied (DROPs are:
    /// forgetting a stale copy needs no disk) and `Some(why)` says why. Under `--fsync
    /// always` the batch is applied and answered only once a sync covers it
    /// ([`Durable::commit_pipelined`]): what this call settles may be earlier batches.
    pub fn commit(&mut self, table: &mut Table, answers: &mut Vec<Answer>) -> Option<String> {
        if self.pipelined() {
            return self.commit_pipelined(table, answers);
        }
        if self.epoch_wanted > self.epoch_logged {
            self.batch.epoch(self.epoch_wanted);
        }
        if self.batch.is_empty() {
            return None;
        }
        let (mut ops, bytes) = self.batch.take();
        let written = self.write(&bytes);
        let applied = written.is_ok();
        if applied {
            self.epoch_logged = self.epoch_logged.max(self.epoch_wanted);
        }
        for op in ops.drain(..) {
            self.apply(table, op, &bytes, applied, answers);
        }
        if applied {
            if let Some(c) = self.compaction.as_mut() {
                if let Err(e) = c.mirror(&bytes) {
                    self.abandon_compaction(&format!("write: {e}"));
                }
            }
        }
        self.batch.recycle(ops, bytes);
        written.err()
    }

    /// `--fsync always`: write the batch (not synced) and queue it behind the batches
    /// waiting for their sync; then settle what the syncer has decided and start the next
    /// sync if it is free. A refused write refuses its batch in its turn.
    fn commit_pipelined(&mut self, table: &mut Table, answers: &mut Vec<Answer>) -> Option<String> {
        if self.epoch_wanted > self.epoch_logged {
            self.batch.epoch(self.epoch_wanted);
        }
        let mut refused = None;
        if !self.batch.is_empty() {
            let (growth, new_keys) = (self.batch.growth(), self.batch.new_keys());
            let (ops, bytes) = self.batch.take();
            match self.write(&bytes) {
                Ok(()) => self.epoch_logged = self.epoch_logged.max(self.epoch_wanted),
                Err(why) => refused = Some(why),
            }
            let flight = Flight {
                ops,
                bytes,
                end: self.journal.len(),
                written: refused.is_none(),
                orphan: false,
                growth,
                new_keys,
            };
            let begun = self.journal.begun_to();
            self.flights.push(flight, begun);
        }
        self.pump(table, answers).or(refused)
    }

    /// `--fsync always`: take the outcome of the sync under way, settle the batches it
    /// decided, and start the next sync unless the syncer should go to a compaction first.
    /// Returns why STOREs were refused, if some were.
    fn pump(&mut self, table: &mut Table, answers: &mut Vec<Answer>) -> Option<String> {
        let mut refused = None;
        // Twice at most: a sync done at once (in place, or in tests) is settled at once.
        for _ in 0..2 {
            // Two may be done: the one under way and the one queued behind it.
            while let Some(outcome) = self.journal.sync_outcome() {
                match outcome {
                    Ok(_) => self.recovered(),
                    Err((to, why)) => refused = Some(self.sync_failed(to, why)),
                }
            }
            self.settle_flights(table, answers);
            if self.compaction_wants_syncer() {
                break;
            }
            match self.journal.start_sync(self.now) {
                Ok(true) => {}
                // Nothing more to sync, or the syncer can take no more: its end wakes the loop.
                Ok(false) => break,
                Err(e) => {
                    let to = self.journal.len();
                    refused = Some(self.sync_failed(to, format!("fdatasync: {e}")));
                    self.settle_flights(table, answers);
                    break;
                }
            }
        }
        refused
    }

    /// A sync covering the log up to `to` failed: cut the log back to where the last good
    /// sync ended, refuse the batches the failed sync covered, and write the later ones
    /// again (the next sync covers them). Returns `why`.
    fn sync_failed(&mut self, to: u64, why: String) -> String {
        let from = self.journal.durable_len();
        self.journal.rewind(from);
        let now = self.now;
        for f in self.flights.iter_mut().filter(|f| f.written) {
            if f.end <= to {
                f.written = false;
                continue;
            }
            match self.journal.append(&f.bytes, now) {
                Ok(()) => f.end = self.journal.len(),
                Err(_) => f.written = false,
            }
        }
        self.failed(why)
    }

    /// Apply, in order, the batches whose fate is known, and put their answers in `answers`.
    fn settle_flights(&mut self, table: &mut Table, answers: &mut Vec<Answer>) {
        let durable = self.journal.durable_len();
        while let Some(mut f) = self.flights.pop_settled(durable) {
            let mark = answers.len();
            let mut ops = std::mem::take(&mut f.ops);
            for op in ops.drain(..) {
                self.apply(table, op, &f.bytes, f.written, answers);
            }
            if f.orphan {
                answers.truncate(mark);
            }
            if f.written {
                if let Some(c) = self.compaction.as_mut() {
                    if let Err(e) = c.mirror(&f.bytes) {
                        self.abandon_compaction(&format!("write: {e}"));
                    }
                }
            }
            self.batch.recycle(ops, f.bytes);
        }
    }

    /// Whether a compaction waits for the syncer (to sync its file, or to finish once the
    /// batches in flight are settled): no new sync of the log starts meanwhile.
    fn compaction_wants_syncer(&self) -> bool {
        self.compaction
            .as_ref()
            .is_some_and(|c| c.copied_all && (!c.syncing || c.synced))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.dir_unsynced {
            let synced = self.disk.sync_dir();
            self.dir_unsynced = synced.is_err();
            if let Err(e) = synced {
                return Err(self.failed(format!("directory fsync after a compaction: {e}")));
            }
        }
        match self.journal.append(bytes, self.now) {
            Ok(()) => {
                self.recovered();
                Ok(())
            }
            Err(why) => Err(self.failed(why)),
        }
    }

    /// A write or sync failed: say so (once, then every 10 s with a count).
    fn failed(&mut self, why: String) -> String {
        if let Some(line) = self.failures.note(&why, self.now) {
            warn!(
                "{}: {line}; STOREs are refused with ERROR DISK (and not applied) until the \
                 disk takes them again; reads go on",
                self.path()
            );
        }
        why
    }

    fn recovered(&mut self) {
        if self.failures.failing() {
            info!("{}: the disk takes writes again", self.path());
            self.failures = RefusalLog::default();
        }
    }

    fn apply(
        &mut self,
        table: &mut Table,
        op: Staged,
        bytes: &[u8],
        written: bool,
        answers: &mut Vec<Answer>,
    ) {
        match op {
            Staged::Store { req, record } if written => {
                let (key_len, value_len) = (record.key().len(), record.value().len());
                let version = record.version();
                let version = match table.put_record(record) {
                    Put::Older { held } => held,
                    Put::Inserted => {
                        self.live_bytes += record::store_len(key_len, value_len);
                        version
                    }
                    Put::Replaced { old_value } => {
                        self.live_bytes += record::store_len(key_len, value_len);
                        self.live_bytes -= record::store_len(key_len, old_value);
                        version
                    }
                };
                answers.push(Answer::Ack { req, version });
            }
            Staged::Store { req, .. } => answers.push(Answer::Refused { req }),
            Staged::Drop { version, key, req } => {
                match req {
                    Some(req) if written => answers.push(Answer::Ack { req, version }),
                    Some(req) => answers.push(Answer::Refused { req }),
                    None => {}
                }
                let Some(d) = table.drop_stale(&bytes[key], version) else {
                    return;
                };
                self.live_bytes -= record::store_len(d.key_len, d.value_len);
                if let (Some((from, to)), Some(c)) = (d.moved, self.compaction.as_mut()) {
                    if let Err(e) = c.moved(table, from, to) {
                        self.abandon_compaction(&format!("write: {e}"));
                    }
                }
            }
        }
    }

    /// The end of a loop turn: start a compaction if one is due, commit what is staged, sync
    /// if the interval is up, and move a compaction along. `writers`: the writers' records,
    /// which a new compaction copies; they must match `table` (every change applied to it
    /// answered and recorded, so `answers` is empty): that is why a compaction starts before
    /// the commit, whose answers the caller records only once this returns.
    pub fn end_turn(
        &mut self,
        table: &mut Table,
        answers: &mut Vec<Answer>,
        writers: &Writers,
        now: Instant,
    ) -> Option<String> {
        self.now = now;
        if self.compaction.is_none() && self.compaction_due(now) {
            self.start_compaction(writers, now);
        }
        let mut refused = self.commit(table, answers);
        self.tick_journal(now);
        if self.compaction.is_some() {
            if let Some(why) = self.compact_step(table, answers, now) {
                refused = Some(why);
            }
        }
        // The compaction may have freed the syncer for a sync that waited.
        if self.pipelined() {
            if let Some(why) = self.pump(table, answers) {
                refused = Some(why);
            }
        }
        self.tick_journal(now);
        refused
    }

    fn tick_journal(&mut self, now: Instant) {
        if let Err(why) = self.journal.tick(now) {
            self.failed(why);
        }
    }

    /// The time a commit in the middle of a turn is taken to happen at.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// When [`Durable::end_turn`] must run even if nothing happens: an interval sync.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.journal.sync_due()
    }

    /// Whether there is work for the next turn whatever happens (a compaction copying): the
    /// event loop should not sleep. (Syncs on the syncer thread wake it when they end.)
    pub fn busy(&self) -> bool {
        self.compaction.as_ref().is_some_and(|c| !c.copied_all)
    }

    fn compaction_due(&self, now: Instant) -> bool {
        let len = self.journal.len();
        len >= self.settings.compact_min
            && len > 2 * self.live_bytes
            && self.compact_after.is_none_or(|t| now >= t)
    }

    fn start_compaction(&mut self, writers: &Writers, now: Instant) {
        let epoch = self.epoch_logged.max(self.epoch_wanted);
        let old_len = self.journal.len();
        match Compaction::start(&mut *self.disk, epoch, writers, old_len, now) {
            Ok(c) => {
                info!(
                    "compacting {}: {old_len} bytes, {} of them live",
                    self.path(),
                    self.live_bytes
                );
                self.compaction = Some(c);
            }
            Err(e) => self.abandon_compaction(&format!("create: {e}")),
        }
    }

    /// Copy the next slice; once all is copied, sync the copy on the syncer thread; once
    /// that is done, finish. Under `--fsync always` it finishes with no batch in flight:
    /// it waits for the log's sync under way, and syncs what was written since in place.
    /// Returns why STOREs were refused, if that sync failed.
    fn compact_step(
        &mut self,
        table: &mut Table,
        answers: &mut Vec<Answer>,
        now: Instant,
    ) -> Option<String> {
        let c = self.compaction.as_mut()?;
        if !c.copied_all {
            if let Err(e) = c.step(table, self.settings.compact_step) {
                self.abandon_compaction(&format!("write: {e}"));
                return None;
            }
            self.failpoint(Failpoint::CompactMidway);
        }
        let c = self.compaction.as_mut()?;
        if !c.copied_all {
            return None;
        }
        if !c.syncing {
            match c.start_sync() {
                Ok(true) => {}
                // The syncer is busy with the log's sync: its end wakes the loop.
                Ok(false) => return None,
                Err(e) => {
                    self.abandon_compaction(&format!("fdatasync: {e}"));
                    return None;
                }
            }
        }
        if !c.synced {
            match c.sync_outcome() {
                None => return None,
                Some(Ok(())) => c.synced = true,
                Some(Err(e)) => {
                    self.abandon_compaction(&format!("fdatasync: {e}"));
                    return None;
                }
            }
        }
        let mut refused = None;
        if self.pipelined() {
            if self.journal.syncing_to().is_some() {
                // Its end wakes the loop; no other starts meanwhile.
                return None;
            }
            if self.flights.unsynced(self.journal.durable_len()) {
                if let Err((to, why)) = self.journal.sync_now() {
                    refused = Some(self.sync_failed(to, why));
                }
            }
            self.settle_flights(table, answers);
            if !self.flights.is_empty() {
                // Written again after a failed sync: the next turn tries again.
                return refused;
            }
        }
        self.finish_compaction(table.len(), now);
        refused
    }

    /// Sync the new log, rename it over the old one, sync the directory and append to it
    /// from now on. Nothing is committed between the rename and the switch.
    fn finish_compaction(&mut self, keys: usize, now: Instant) {
        let Some(c) = self.compaction.take() else {
            return;
        };
        let (started, old_len) = (c.started, c.old_len);
        let (file, len, turns) = match c.finish() {
            Ok(done) => done,
            Err(e) => return self.abandon_compaction(&format!("fdatasync: {e}")),
        };
        self.failpoint(Failpoint::CompactBeforeRename);
        if let Err(e) = self.disk.rename(COMPACTING, LOG) {
            return self.abandon_compaction(&format!("rename: {e}"));
        }
        self.failpoint(Failpoint::CompactAfterRename);
        // From here the new file is the log, whatever happens next.
        self.journal.switch(file, len);
        self.compactions += 1;
        if let Err(e) = self.disk.sync_dir() {
            error!("{}: directory fsync after the compaction: {e}", self.path());
            self.dir_unsynced = true;
        }
        let per_key = match keys {
            0 => String::new(),
            n => format!(", {:.1} bytes per key", len as f64 / n as f64),
        };
        info!(
            "compacted {} in {} ms over {turns} loop turns: {old_len} -> {len} bytes for \
             {keys} keys{per_key}",
            self.path(),
            now.saturating_duration_since(started).as_millis()
        );
    }

    fn abandon_compaction(&mut self, why: &str) {
        self.compaction = None;
        let removed = self.disk.remove(COMPACTING);
        warn!(
            "compaction of {} abandoned ({why}){}; the log stays as it was, next try in {} s",
            self.path(),
            match removed {
                Ok(()) => String::new(),
                Err(e) => format!("; cannot remove {COMPACTING}: {e}"),
            },
            COMPACT_RETRY.as_secs()
        );
        self.compact_after = Some(self.now + COMPACT_RETRY);
    }

    fn failpoint(&self, at: Failpoint) {
        if self.settings.failpoint == Some(at) {
            warn!("failpoint {}: stopping the process here", at.name());
            if cfg!(test) {
                panic!("failpoint {}", at.name());
            }
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests;

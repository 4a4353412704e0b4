//! The log file being appended to: where its last whole record ends, when it must be synced
//! (`--fsync`), and what a failed write leaves behind (nothing: the file is cut back to the
//! last whole record, so a partial record never stays between two good ones).

use std::io;
use std::time::{Duration, Instant};

use super::file::LogFile;

/// `--fsync`: when appended records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before the STOREs they hold are ACKed: one `fdatasync` on the syncer thread covers
    /// everything written since the last one began (group commit, pipelined: see
    /// [`super::Durable`]).
    Always,
    /// At most this long after the oldest record not yet synced was written.
    Interval(Duration),
    /// Never asked for: the kernel writes dirty pages back when it likes (about 30 s).
    Never,
}

/// A sync on the syncer thread, under way.
#[derive(Clone, Copy)]
struct Background {
    /// The log's length when it started: what it makes durable.
    len: u64,
    started: Instant,
}

impl Fsync {
    pub fn name(&self) -> String {
        match self {
            Fsync::Always => "always".into(),
            Fsync::Interval(d) => format!("interval ({} ms)", d.as_millis()),
            Fsync::Never => "never".into(),
        }
    }
}

pub struct Journal {
    file: Box<dyn LogFile>,
    /// Where the last whole record ends: everything before is replayable.
    len: u64,
    fsync: Fsync,
    /// When the oldest record not yet synced was appended.
    unsynced_since: Option<Instant>,
    /// A failed append could not be cut back: the file may end in a partial record, so no
    /// append goes after it until a truncate succeeds.
    torn: bool,
    /// A sync failed: until one succeeds, every append is synced in place (under `interval`
    /// or `never`), so a STORE is ACKed only if the disk takes it.
    sync_failing: bool,
    /// Under `always`: where the bytes known to be on disk end.
    durable: u64,
    /// The sync under way on the syncer thread (the interval sync, or under `always` the
    /// oldest of the two that ACKs wait for).
    background: Option<Background>,
    /// Under `always`: a sync queued behind `background`, begun by the syncer thread the
    /// moment that one ends; until it begins it covers everything appended.
    queued: Option<Background>,
    /// An interval sync is due but the syncer is busy (with a compaction's): it is started
    /// when the loop is woken for the other one's end.
    waiting: bool,
    /// How long each sync took (`/metrics`): in place, the call; on the syncer thread, from
    /// its start to the loop taking its outcome.
    pub syncs: dsm_net::prom::Histogram,
}

impl Journal {
    /// The log `file`, whose first `len` bytes are whole records.
    pub fn new(file: Box<dyn LogFile>, len: u64, fsync: Fsync) -> Journal {
        Journal {
            file,
            len,
            fsync,
            unsynced_since: None,
            torn: false,
            sync_failing: false,
            durable: len,
            background: None,
            queued: None,
            waiting: false,
            syncs: Default::default(),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether answers wait for a sync: under `always`, and after a failed sync.
    pub fn syncs_every_append(&self) -> bool {
        self.fsync == Fsync::Always || self.sync_failing
    }

    /// Whether [`Journal::append`] syncs in place: after a failed sync under `interval` or
    /// `never`. Under `always` the sync is the pipelined one ([`Journal::start_sync`]).
    fn syncs_in_place(&self) -> bool {
        self.fsync != Fsync::Always && self.sync_failing
    }

    /// Under `always`: where the bytes known to be on disk end.
    pub fn durable_len(&self) -> u64 {
        self.durable
    }

    /// Under `always`: when the sync under way started (`None`: none is).
    pub fn syncing_since(&self) -> Option<Instant> {
        match self.fsync {
            Fsync::Always => self.background.map(|bg| bg.started),
            _ => None,
        }
    }

    /// Under `always`: where the syncs under way or queued end (`None`: none is).
    pub fn syncing_to(&self) -> Option<u64> {
        self.queued.or(self.background).map(|bg| bg.len)
    }

    /// Under `always`: where the syncs that have begun end, as far as the loop can tell (a
    /// queued one counts once the thread may have begun it); `None`: none is under way.
    /// Records appended past it are still to be covered by a later sync.
    pub fn begun_to(&mut self) -> Option<u64> {
        match self.queued {
            Some(q) if !self.file.sync_not_started() => Some(q.len),
            _ => self.background.map(|bg| bg.len),
        }
    }

    /// Append `bytes` (whole records), synced in place if the policy says so. On an error (`Err` says
    /// which call failed and why), none of them stays in the file.
    pub fn append(&mut self, bytes: &[u8], now: Instant) -> Result<(), String> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.torn {
            self.file
                .truncate(self.len)
                .map_err(|e| format!("ftruncate (after an earlier failed write): {e}"))?;
            self.torn = false;
        }
        if let Err(e) = self.file.append(bytes) {
            self.cut_back();
            return Err(format!("write: {e}"));
        }
        // Under `always` the bytes are synced later, by `start_sync`, with whatever else is
        // written meanwhile.
        if self.syncs_in_place() {
            let t0 = Instant::now();
            let synced = self.file.sync();
            self.syncs.record(t0.elapsed());
            if let Err(e) = synced {
                // What the failed sync covered may never reach the disk: take it out, so a
                // refused STORE cannot come back at the next start.
                self.cut_back();
                self.sync_failing = true;
                return Err(format!("fdatasync: {e}"));
            }
            self.sync_failing = false;
            self.unsynced_since = None;
        } else if self.fsync != Fsync::Always && self.unsynced_since.is_none() {
            self.unsynced_since = Some(now);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn cut_back(&mut self) {
        if self.file.truncate(self.len).is_err() {
            self.torn = true;
        }
    }

    /// When the interval policy wants the next sync started: `None` while one is under way,
    /// or waits for the syncer (the loop is woken when either ends).
    pub fn sync_due(&self) -> Option<Instant> {
        match self.fsync {
            Fsync::Interval(d) if self.background.is_none() && !self.waiting => {
                self.unsynced_since.map(|t| t + d)
            }
            _ => None,
        }
    }

    /// Take the outcome of an interval sync under way, and start one if the interval is up.
    /// `Err` says why a sync failed (then every later append is synced until one succeeds).
    pub fn tick(&mut self, now: Instant) -> Result<(), String> {
        if self.fsync == Fsync::Always {
            // Its syncs are started and taken by `start_sync` and `sync_outcome`.
            return Ok(());
        }
        if let Some(bg) = &self.background {
            let outcome = match self.file.sync_outcome() {
                None => return Ok(()),
                Some(outcome) => outcome,
            };
            let (len, started) = (bg.len, bg.started);
            self.background = None;
            self.syncs.record(now.saturating_duration_since(started));
            if let Err(e) = outcome {
                self.sync_failing = true;
                return Err(format!("fdatasync: {e}"));
            }
            self.sync_failing = false;
            // What was appended after it started may not be covered.
            self.unsynced_since = (self.len > len).then_some(started);
        }
        self.waiting = false;
        let due = match self.fsync {
            Fsync::Interval(d) => self.unsynced_since.map(|t| t + d),
            _ => None,
        };
        if due.is_none_or(|due| now < due) {
            return Ok(());
        }
        match self.file.start_sync() {
            Ok(true) => {
                self.background = Some(Background {
                    len: self.len,
                    started: now,
                });
                Ok(())
            }
            Ok(false) => {
                self.waiting = true;
                Ok(())
            }
            Err(e) => {
                self.sync_failing = true;
                Err(format!("fdatasync: {e}"))
            }
        }
    }

    /// Under `always`: have everything written so far synced on the syncer thread: by a new
    /// sync if none is under way, else by one queued behind it (which the thread begins the
    /// moment the first ends, without waiting for the loop), or by widening the queued one
    /// if it has not begun yet. `Ok(false)`: nothing more to sync, or the syncer can take no
    /// more now (two syncs outstanding, or another file's: their ends wake the loop).
    pub fn start_sync(&mut self, now: Instant) -> io::Result<bool> {
        if self.len <= self.syncing_to().unwrap_or(self.durable) {
            return Ok(false);
        }
        if let Some(q) = self.queued.as_mut() {
            // Everything up to `len` was written before this check: a sync that had not
            // begun then covers it when it does.
            if !self.file.sync_not_started() {
                return Ok(false);
            }
            q.len = self.len;
            return Ok(true);
        }
        if !self.file.start_sync()? {
            return Ok(false);
        }
        let bg = Background {
            len: self.len,
            started: now,
        };
        match self.background {
            None => self.background = Some(bg),
            Some(_) => self.queued = Some(bg),
        }
        Ok(true)
    }

    /// Under `always`: the outcome of the sync [`Journal::start_sync`] started, once known:
    /// where the bytes it made durable end, or why it failed and where they would have ended
    /// (the caller then cuts them out with [`Journal::rewind`]).
    pub fn sync_outcome(&mut self) -> Option<Result<u64, (u64, String)>> {
        let bg = self.background?;
        let outcome = self.file.sync_outcome()?;
        let now = Instant::now();
        self.syncs.record(now.saturating_duration_since(bg.started));
        // The queued sync began when this one ended: about now, as the loop sees it.
        self.background = self.queued.take().map(|q| Background { started: now, ..q });
        match outcome {
            Ok(()) => {
                self.durable = self.durable.max(bg.len);
                Some(Ok(bg.len))
            }
            Err(e) => {
                // The file dropped the sync queued behind the failed one.
                self.background = None;
                Some(Err((bg.len, format!("fdatasync: {e}"))))
            }
        }
    }

    /// Under `always`: sync what is written in place, on the calling thread (once per
    /// compaction, before the log is replaced). `Ok` says where the durable bytes end.
    pub fn sync_now(&mut self) -> Result<u64, (u64, String)> {
        let len = self.len;
        if len == self.durable {
            return Ok(len);
        }
        let t0 = Instant::now();
        let synced = self.file.sync();
        self.syncs.record(t0.elapsed());
        match synced {
            Ok(()) => {
                self.durable = len;
                Ok(len)
            }
            Err(e) => Err((len, format!("fdatasync: {e}"))),
        }
    }

    /// Cut the file back to `len` (what a failed sync may have lost comes out, so that a
    /// STORE refused for it cannot come back at the next start). If the cut fails, no append
    /// goes after the partial bytes until one succeeds.
    pub fn rewind(&mut self, len: u64) {
        self.len = len.min(self.len);
        self.durable = self.durable.min(self.len);
        if self.file.truncate(self.len).is_err() {
            self.torn = true;
        }
    }

    /// Whether an interval sync is under way (its outcome not yet taken).
    #[cfg(test)]
    pub fn syncing(&self) -> bool {
        self.background.is_some()
    }

    /// A compacted log, synced and renamed into place, replaces this one.
    pub fn switch(&mut self, file: Box<dyn LogFile>, len: u64) {
        self.file.abandon_sync();
        self.background = None;
        self.queued = None;
        self.waiting = false;
        self.file = file;
        self.len = len;
        self.durable = len;
        self.unsynced_since = None;
        self.torn = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{Disk, MemDisk, Op};

    fn journal(disk: &mut MemDisk, fsync: Fsync) -> Journal {
        let (file, len) = disk.open_append("log").unwrap();
        Journal::new(file, len, fsync)
    }

    #[test]
    fn always_syncs_what_is_written_on_the_syncer_interval_when_due_never_not_at_all() {
        let t0 = Instant::now();
        let mut disk = MemDisk::new();
        let mut j = journal(&mut disk, Fsync::Always);
        j.append(b"abc", t0).unwrap();
        assert_eq!(disk.ops()[1..], [Op::Append(3)], "written, not synced");
        assert_eq!(j.sync_due(), None);
        disk.hold_syncs(true);
        assert!(j.start_sync(t0).unwrap());
        assert_eq!(j.syncing_to(), Some(3));
        j.append(b"de", t0).unwrap();
        assert!(j.start_sync(t0).unwrap(), "queued behind the first");
        assert_eq!(j.syncing_to(), Some(5));
        assert_eq!(j.begun_to(), Some(3), "the queued one has not begun");
        j.append(b"f", t0).unwrap();
        assert!(j.start_sync(t0).unwrap(), "widened: it has not begun");
        assert_eq!(j.syncing_to(), Some(6));
        assert_eq!(
            disk.ops()[1..],
            [
                Op::Append(3),
                Op::StartSync,
                Op::Append(2),
                Op::StartSync,
                Op::Append(1)
            ]
        );
        assert_eq!(j.sync_outcome().map(|r| r.is_ok()), None, "held");
        disk.hold_syncs(false);
        assert_eq!(
            j.sync_outcome(),
            Some(Ok(3)),
            "what was written when it began"
        );
        assert_eq!((j.durable_len(), j.len()), (3, 6));
        assert_eq!(
            j.begun_to(),
            Some(6),
            "the queued one began as the first ended"
        );
        j.append(b"g", t0).unwrap();
        assert_eq!(
            j.sync_outcome(),
            Some(Ok(6)),
            "not what came after it began"
        );
        assert!(j.start_sync(t0).unwrap());
        assert_eq!(j.sync_outcome(), Some(Ok(7)));
        assert!(!j.start_sync(t0).unwrap(), "nothing left to sync");
        assert_eq!(disk.synced_len("log"), 7);

        let mut disk = MemDisk::new();
        let sec = Duration::from_secs(1);
        let mut j = journal(&mut disk, Fsync::Interval(sec));
        j.append(b"abc", t0).unwrap();
        j.append(b"def", t0 + sec / 2).unwrap();
        assert_eq!(
            j.sync_due(),
            Some(t0 + sec),
            "from the oldest unsynced append"
        );
        j.tick(t0 + sec / 2).unwrap();
        assert_eq!(disk.syncs(), 0);
        j.tick(t0 + sec).unwrap();
        assert_eq!(disk.ops().last(), Some(&Op::StartSync), "on the syncer");
        assert!(j.syncing());
        assert_eq!(j.sync_due(), None, "under way");
        j.append(b"ghi", t0 + sec).unwrap();
        j.tick(t0 + sec).unwrap();
        assert!(!j.syncing(), "its outcome taken");
        assert_eq!(
            j.sync_due(),
            Some(t0 + 2 * sec),
            "what came after the sync started waits for the next"
        );
        assert_eq!(disk.syncs(), 1);

        let mut disk = MemDisk::new();
        let mut j = journal(&mut disk, Fsync::Never);
        j.append(b"abc", t0).unwrap();
        j.tick(t0 + 100 * sec).unwrap();
        assert_eq!((disk.syncs(), j.len()), (0, 3));
    }

    #[test]
    fn a_failed_write_leaves_no_partial_record_and_the_next_one_goes_on() {
        let t0 = Instant::now();
        let mut disk = MemDisk::new();
        let mut j = journal(&mut disk, Fsync::Never);
        j.append(b"good", t0).unwrap();
        disk.set_capacity(Some(6));
        let e = j.append(b"too long", t0).unwrap_err();
        assert!(e.starts_with("write: No space left"), "{e}");
        assert_eq!(disk.file("log").unwrap(), b"good");
        assert_eq!(j.len(), 4);
        disk.set_capacity(None);
        j.append(b"+more", t0).unwrap();
        assert_eq!(disk.file("log").unwrap(), b"good+more");
    }

    #[test]
    fn a_failed_truncate_blocks_appends_until_one_succeeds() {
        let t0 = Instant::now();
        let mut disk = MemDisk::new();
        let mut j = journal(&mut disk, Fsync::Never);
        j.append(b"good", t0).unwrap();
        disk.set_capacity(Some(6));
        disk.fail_truncate(true);
        assert!(j.append(b"partial", t0).is_err());
        assert_eq!(
            disk.file("log").unwrap(),
            b"goodpa",
            "could not be cut back"
        );
        disk.set_capacity(None);
        let e = j.append(b"next", t0).unwrap_err();
        assert!(e.starts_with("ftruncate"), "{e}");
        assert_eq!(
            disk.file("log").unwrap(),
            b"goodpa",
            "nothing after a torn record"
        );
        disk.fail_truncate(false);
        j.append(b"next", t0).unwrap();
        assert_eq!(disk.file("log").unwrap(), b"goodnext");
    }

    #[test]
    fn a_failed_sync_takes_the_records_out_and_syncs_every_append_until_one_works() {
        let t0 = Instant::now();
        let mut disk = MemDisk::new();
        let mut j = journal(&mut disk, Fsync::Always);
        j.append(b"good", t0).unwrap();
        assert!(j.start_sync(t0).unwrap());
        assert_eq!(j.sync_outcome(), Some(Ok(4)));
        disk.fail_sync(true);
        j.append(b"lost", t0).unwrap();
        assert!(j.start_sync(t0).unwrap());
        let (to, e) = j.sync_outcome().unwrap().unwrap_err();
        assert!(e.starts_with("fdatasync"), "{e}");
        assert_eq!(to, 8, "where the failed sync would have ended");
        j.rewind(j.durable_len());
        assert_eq!(disk.file("log").unwrap(), b"good");
        disk.fail_sync(false);
        j.append(b"back", t0).unwrap();
        assert!(j.start_sync(t0).unwrap());
        assert_eq!(j.sync_outcome(), Some(Ok(8)));
        assert_eq!(disk.file("log").unwrap(), b"goodback");

        // Under the interval policy a failed sync makes every append sync until one works.
        let mut disk = MemDisk::new();
        let sec = Duration::from_secs(1);
        let mut j = journal(&mut disk, Fsync::Interval(sec));
        j.append(b"a", t0).unwrap();
        disk.fail_sync(true);
        j.tick(t0 + sec).unwrap();
        assert!(j.tick(t0 + sec).is_err(), "the background sync failed");
        assert!(j.syncs_every_append());
        assert!(j.append(b"b", t0 + sec).is_err());
        disk.fail_sync(false);
        j.append(b"c", t0 + sec).unwrap();
        assert!(!j.syncs_every_append());
        assert_eq!(disk.file("log").unwrap(), b"ac");
    }
}

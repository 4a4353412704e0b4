//! Reading the log back at start: every whole record with a good checksum is applied, in
//! order, to a fresh table; the first torn or corrupt record and everything after it are cut
//! off (the file truncated to the last good record), and the start goes on. Records after a
//! corrupt one might still parse, but they came after a change that is lost: applying them
//! could leave a mix no moment ever had, so they go too; the master's inventory reconciliation
//! then finds what this slave no longer holds, and another replica still does.

use std::io::{self, Read};
use std::time::Instant;

use super::compact::COMPACTING;
use super::file::Disk;
use super::record::{self, Entry};
use crate::table::{NoRoom, Table};
use crate::writers::Writers;

/// The log file in the data directory.
pub const LOG: &str = "slave.log";
/// Where a file named like the log but not a log is moved, so that nothing is destroyed.
pub const SET_ASIDE: &str = "slave.log.unrecognised";

/// Bytes asked of the file per read.
const CHUNK: usize = 1 << 20;
/// Records decoded, then applied together: their table lookups are warmed first
/// ([`Table::warm`]), so that their cache misses overlap.
const BATCH: usize = 1024;

/// What replay found.
pub struct Replayed {
    pub table: Table,
    pub epoch: u64,
    /// The writers' records the log holds (complete once [`Durable::open`] says so).
    ///
    /// [`Durable::open`]: super::Durable::open
    pub writers: Writers,
    /// The log's first record is VOUCHES: it carried every writer's record since it was
    /// created.
    pub vouches: bool,
    /// Records applied.
    pub records: u64,
    /// Where the last good record ends (the log's length now).
    pub len: u64,
    pub cut: Option<Cut>,
    /// A compaction's temporary file was left by a crash and removed.
    pub removed_temp: bool,
    /// The log did not start with the log header and was renamed to [`SET_ASIDE`].
    pub set_aside: bool,
}

/// The tail cut off the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Where the first bad record starts.
    pub at: u64,
    pub bytes: u64,
    pub why: String,
    /// Records after the bad one that still parsed (and were cut with it).
    pub records_after: u64,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cut {} bytes at offset {}: {}",
            self.bytes, self.at, self.why
        )?;
        if self.records_after > 0 {
            write!(
                f,
                "; {} whole records after it were cut too",
                self.records_after
            )?;
        }
        Ok(())
    }
}

/// Read the log in `disk`, cut any bad tail off the file, remove a crashed compaction's
/// file, and return what the log holds. Only I/O errors and running out of memory fail.
pub fn replay(disk: &mut dyn Disk, now: Instant) -> io::Result<Replayed> {
    let removed_temp = disk.exists(COMPACTING);
    if removed_temp {
        disk.remove(COMPACTING)?;
        disk.sync_dir()?;
    }
    let mut out = Replayed {
        table: Table::default(),
        epoch: 0,
        writers: Writers::new(now),
        vouches: false,
        records: 0,
        len: 0,
        cut: None,
        removed_temp,
        set_aside: false,
    };
    let Some((reader, file_len)) = disk.open_read(LOG)? else {
        return Ok(out);
    };
    let mut log = Reader::new(reader, file_len);
    let head = log.fill(record::MAGIC.len())?;
    if head.len() < record::MAGIC.len() && record::MAGIC.starts_with(head) {
        // Torn while the file was being created: there is nothing in it.
        out.cut = (file_len > 0).then(|| Cut {
            at: 0,
            bytes: file_len,
            why: "a torn log header".into(),
            records_after: 0,
        });
        return Ok(out);
    }
    if head != record::MAGIC {
        disk.rename(LOG, SET_ASIDE)?;
        disk.sync_dir()?;
        out.set_aside = true;
        return Ok(out);
    }
    log.consume(record::MAGIC.len());
    out.len = record::MAGIC.len() as u64;
    let (mut hashes, mut likely) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
    loop {
        let need = match log.next_record_len()? {
            Next::End => return Ok(out),
            // Zeros where a header should be: the end of what was written in a file grown
            // ahead of its appends (`FsDisk::preallocate`), which the start cuts off quietly,
            // if nothing but zeros follows. Data after them is a hole in the log (a lost
            // write, a zeroed block): what follows it is cut like any corrupt tail, and said.
            Next::Zeros => {
                let (at, bytes) = (log.offset, log.left());
                if let Some(data_at) = log.first_nonzero()? {
                    out.cut = Some(Cut {
                        at,
                        bytes,
                        why: format!(
                            "zeros where a record should start, then data again at offset \
                             {data_at}"
                        ),
                        records_after: 0,
                    });
                }
                return Ok(out);
            }
            Next::Torn(why) => {
                out.cut = Some(log.cut_here(why, 0));
                return Ok(out);
            }
            Next::Record(n) => n,
        };
        log.fill(need)?;
        // Every whole record buffered (the first one is), up to a batch; a record cut by the
        // end of the buffer is read whole next time round.
        let buf = log.buffered();
        let mut entries = Vec::with_capacity(BATCH);
        let (mut used, mut bad) = (0, None);
        while entries.len() < BATCH {
            let rest = &buf[used..];
            if rest.len() >= record::HEADER && rest[..record::HEADER].iter().all(|&b| b == 0) {
                break; // zeros: `next_record_len` says so
            }
            match record::decode(rest) {
                Ok(Some((entry, n))) => {
                    entries.push(entry);
                    used += n;
                }
                Ok(None) => break,
                Err(b) => {
                    bad = Some(b);
                    break;
                }
            }
        }
        hashes.clear();
        hashes.extend(entries.iter().map(|e| match e {
            Entry::Store { key, .. } => out.table.hash(key),
            _ => 0,
        }));
        std::hint::black_box(out.table.warm(&hashes, &mut likely));
        for (entry, &hash) in entries.into_iter().zip(&hashes) {
            apply(&mut out, entry, hash, now)?;
            out.records += 1;
        }
        log.consume(used);
        out.len += used as u64;
        if let Some(bad) = bad {
            let mut cut = log.cut_here(bad.to_string(), 0);
            cut.records_after = log.count_after()?;
            out.cut = Some(cut);
            return Ok(out);
        }
    }
}

/// Apply one record; `hash` is the table's hash of a STORE's key.
fn apply(out: &mut Replayed, entry: Entry<'_>, hash: u64, now: Instant) -> io::Result<()> {
    match entry {
        Entry::Store {
            version,
            key,
            value,
            writer,
        } => match out.table.put_hashed(hash, key, version, value) {
            Ok(_) => {
                if let Some(w) = writer {
                    out.writers.replayed(&w, version, now);
                }
            }
            Err(NoRoom::Alloc | NoRoom::Cap { .. }) => {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!(
                        "out of memory loading the log after {} keys",
                        out.table.len()
                    ),
                ))
            }
        },
        Entry::Drop { version, key } => {
            out.table.drop_stale(key, version);
        }
        Entry::Epoch(e) => out.epoch = out.epoch.max(e),
        Entry::Client {
            client,
            acked,
            floor,
        } => out.writers.restore_client(client, acked, floor, now),
        Entry::Writer { writer, version } => out.writers.replayed(&writer, version, now),
        Entry::Vouches => out.vouches |= out.records == 0,
    }
    Ok(())
}

enum Next {
    End,
    /// Zeros where the next record's header would be (no record has length 0).
    Zeros,
    Torn(String),
    /// The next record is this many bytes long and all of them are in the file.
    Record(usize),
}

/// The log file read in chunks, with its offset.
struct Reader {
    inner: Box<dyn Read>,
    file_len: u64,
    /// Buffered bytes; `buf[pos..]` are not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// The file offset of `buf[pos]`.
    offset: u64,
}

impl Reader {
    fn new(inner: Box<dyn Read>, file_len: u64) -> Reader {
        Reader {
            inner,
            file_len,
            buf: Vec::new(),
            pos: 0,
            offset: 0,
        }
    }

    fn left(&self) -> u64 {
        self.file_len.saturating_sub(self.offset)
    }

    /// At least `n` unconsumed bytes, or fewer at the end of the file.
    fn fill(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.buf.len() - self.pos < n {
            self.buf.drain(..self.pos);
            self.pos = 0;
            // A chunk, or the rest of the file if that is less (a small log needs no MiB).
            let rest = self.left().saturating_sub(self.buf.len() as u64);
            let want = n.max(CHUNK.min(rest as usize));
            self.buf
                .try_reserve(want)
                .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "log read buffer"))?;
            while self.buf.len() < n {
                let have = self.buf.len();
                self.buf.resize(have + want, 0);
                let got = loop {
                    match self.inner.read(&mut self.buf[have..]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                let got = match got {
                    Ok(g) => g,
                    Err(e) => {
                        self.buf.truncate(have);
                        return Err(e);
                    }
                };
                self.buf.truncate(have + got);
                if got == 0 {
                    break;
                }
            }
        }
        let end = (self.pos + n).min(self.buf.len());
        Ok(&self.buf[self.pos..end])
    }

    /// The bytes buffered and not consumed yet.
    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.offset += n as u64;
    }

    /// The file offset of the first byte from here on that is not zero, if any (reads to
    /// the end, a chunk at a time).
    fn first_nonzero(&mut self) -> io::Result<Option<u64>> {
        while self.left() > 0 {
            let buf = self.fill(CHUNK.min(self.left() as usize))?;
            if buf.is_empty() {
                break; // shorter than its length said: nothing more to read
            }
            if let Some(i) = buf.iter().position(|&b| b != 0) {
                return Ok(Some(self.offset + i as u64));
            }
            let n = buf.len();
            self.consume(n);
        }
        Ok(None)
    }

    /// Whether another record follows, and its length.
    fn next_record_len(&mut self) -> io::Result<Next> {
        let left = self.left();
        if left == 0 {
            return Ok(Next::End);
        }
        let head = self.fill(record::HEADER.min(left as usize))?;
        if head.iter().all(|&b| b == 0) {
            return Ok(Next::Zeros);
        }
        if left < record::HEADER as u64 {
            return Ok(Next::Torn(format!("a torn record header ({left} bytes)")));
        }
        let need = record::needed(self.fill(record::HEADER)?);
        if need > left {
            return Ok(Next::Torn(format!(
                "a torn record ({need} bytes claimed, {left} left in the file)"
            )));
        }
        Ok(Next::Record(need as usize))
    }

    /// After a bad record at the current offset (whole in the buffer): skip it, taking its
    /// length at its word, and count the whole records that follow. For the log line only:
    /// they are cut too.
    fn count_after(&mut self) -> io::Result<u64> {
        let skip = record::needed(self.fill(record::HEADER)?) as usize;
        self.consume(skip);
        let mut count = 0;
        while let Next::Record(n) = self.next_record_len()? {
            match record::decode(self.fill(n)?) {
                Ok(Some((_, used))) => {
                    count += 1;
                    self.consume(used);
                }
                _ => break,
            }
        }
        Ok(count)
    }

    fn cut_here(&self, why: String, records_after: u64) -> Cut {
        Cut {
            at: self.offset,
            bytes: self.left(),
            why,
            records_after,
        }
    }
}

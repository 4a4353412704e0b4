//! The slave's key store: each key's newest version, epoch fencing, the memory cap, and the
//! answer to each frame from the master once registered. No sockets and no connection state:
//! [`crate::Slave`] decides when frames reach it.
//!
//! With a data directory ([`Durable`]) a STORE is not answered at once: it is staged, written
//! to the log with the other changes of its loop turn ([`Store::end_turn`]), applied, and only
//! then ACKed (or refused with ERROR DISK, and not applied, if the disk refused the write).
//! Answers settled that way wait in the store until [`Store::take_answers`].

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use dsm_auth::RefusalLog;
use dsm_wire::{Body, BodyRef, Decoded, ErrorCode, Frame, WriteId};
use log::{debug, info, warn};

use crate::disk::{record, Answer, Disk, Durable, Replayed, Settings};
use crate::memory;
use crate::table::{NoRoom, Put, Record, Table};
use crate::writers::{Kept, Writers, MAX_KEPT};

/// The answer to one frame: most are owned frames; a FETCHED borrows the value from the store
/// so it is copied once, into the socket buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    Frame(Frame),
    Borrowed(u64, BodyRef<'a>),
}

impl Reply<'_> {
    pub fn into_frame(self) -> Frame {
        match self {
            Reply::Frame(f) => f,
            Reply::Borrowed(req, body) => Frame::new(req, body.to_body()),
        }
    }
}

/// A STORE or STORE_ONCE (STORE_KEEP) decoded in place: what the store needs of it.
pub struct StoreParts<'a> {
    pub req: u64,
    pub epoch: u64,
    pub version: u64,
    /// A STORE_ONCE's write, and whether it is a STORE_KEEP.
    pub id: Option<(WriteId, bool)>,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> StoreParts<'a> {
    /// `decoded`'s parts if it is a STORE of either kind.
    pub fn of(decoded: &Decoded<'a>) -> Option<StoreParts<'a>> {
        let (req, epoch, version, id, key, value) = match *decoded {
            Decoded::Ref(
                req,
                BodyRef::Store {
                    epoch,
                    version,
                    key,
                    value,
                },
            ) => (req, epoch, version, None, key, value),
            Decoded::Ref(
                req,
                BodyRef::StoreOnce {
                    epoch,
                    version,
                    id,
                    key,
                    value,
                    keep,
                },
            ) => (req, epoch, version, Some((id, keep)), key, value),
            _ => return None,
        };
        Some(StoreParts {
            req,
            epoch,
            version,
            id,
            key,
            value,
        })
    }
}

/// A STORE's key and value as they reached the store.
enum Incoming<'a> {
    /// In the connection's read buffer: copied into a record of their own.
    Borrowed { key: &'a [u8], value: &'a [u8] },
    /// A large STORE's frame, taken from the connection: already the record.
    Taken(Record),
}

impl Incoming<'_> {
    fn key(&self) -> &[u8] {
        match self {
            Incoming::Borrowed { key, .. } => key,
            Incoming::Taken(record) => record.key(),
        }
    }

    fn value(&self) -> &[u8] {
        match self {
            Incoming::Borrowed { value, .. } => value,
            Incoming::Taken(record) => record.value(),
        }
    }
}

/// Bytes of keys per INVENTORY frame: far below any frame limit.
const INVENTORY_FRAME_BYTES: usize = 64 * 1024;

pub struct Store {
    map: Table,
    /// The highest master epoch seen; commands from older epochs are refused (fencing).
    epoch: u64,
    /// A report of what is held (INVENTORY) under way.
    inventory: Option<Inventory>,
    /// `--max-memory`: the most heap the table may hold (see [`Table::heap_bytes`]).
    max_memory: usize,
    /// The log, with `--data-dir`; `None`: memory only.
    durable: Option<Durable>,
    /// Answers to staged STOREs that a commit settled, not yet taken.
    settled: Vec<Frame>,
    /// Scratch for [`Durable::commit`].
    answers: Vec<Answer>,
    /// STOREs refused for want of room, logged once and then every 10 s with a count.
    full: RefusalLog,
    /// The time of the last frame or turn, for the refusal log and the writers' records.
    now: Instant,
    /// STOREs and FETCHes taken (`/metrics`).
    pub stores: u64,
    pub fetches: u64,
    /// Who wrote what was stored here (STORE_ONCE), for RECALL.
    writers: Writers,
    /// STORE_ONCEs (and STORE_KEEPs) staged for the log (request id, writer, version, value
    /// kept), recorded in `writers` once the commit applies them.
    staged_writers: VecDeque<(u64, WriteId, u64, Option<Kept>)>,
}

/// Where a report of what is held stands.
struct Inventory {
    /// The next table position to report.
    from: usize,
    /// DROPs that came while reporting: dropping moves the table's last record into the hole,
    /// which could put a record not yet reported behind the cursor; so they wait for the end.
    drops: Vec<(Vec<u8>, u64)>,
}

impl Default for Store {
    /// Memory only, with no cap.
    fn default() -> Store {
        Store::in_memory(u64::MAX)
    }
}

impl Store {
    /// A store that keeps nothing on disk, holding at most `max_memory` bytes of table.
    pub fn in_memory(max_memory: u64) -> Store {
        let now = Instant::now();
        Store {
            map: Table::default(),
            epoch: 0,
            inventory: None,
            max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
            durable: None,
            settled: Vec::new(),
            answers: Vec::new(),
            full: RefusalLog::default(),
            now,
            writers: Writers::new(now),
            staged_writers: VecDeque::new(),
            stores: 0,
            fetches: 0,
        }
    }

    /// A store that keeps its changes in the log in `disk`: what the log holds is loaded
    /// first (a torn or corrupt tail cut off). Also returns what replay found, without the
    /// data, for the log lines.
    pub fn open(
        disk: Box<dyn Disk>,
        settings: Settings,
        max_memory: u64,
        now: Instant,
    ) -> io::Result<(Store, Replayed)> {
        let (mut replayed, durable) = Durable::open(disk, settings, now)?;
        let mut store = Store::in_memory(max_memory);
        store.map = std::mem::take(&mut replayed.table);
        store.epoch = replayed.epoch;
        store.durable = Some(durable);
        store.now = now;
        store.writers = std::mem::replace(&mut replayed.writers, Writers::new(now));
        Ok((store, replayed))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The version held for `key`, if any.
    pub fn version_of(&self, key: &[u8]) -> Option<u64> {
        self.map.get(key).map(|(version, _)| version)
    }

    /// A new process over the same data (a test's restart): it remembers no writer, and
    /// vouches for no write that may predate `now`.
    pub fn forget_writers(&mut self, now: Instant) {
        self.writers = Writers::new(now);
        self.staged_writers.clear();
    }

    /// The writers' records kept (records, clients).
    pub fn writer_records(&self) -> (usize, usize) {
        self.writers.len()
    }

    /// The heap the table holds, which `--max-memory` caps.
    pub fn memory_used(&self) -> usize {
        self.map.heap_bytes()
    }

    pub fn max_memory(&self) -> usize {
        self.max_memory
    }

    pub fn durable(&self) -> Option<&Durable> {
        self.durable.as_ref()
    }

    /// The master registered us: take its epoch, and, if it asks (`inventory`), report every
    /// key held. Nothing is ever dropped because a master lost sight of us: it reconciles
    /// by version, and sends DROP for a copy that is stale.
    pub fn on_welcome(&mut self, epoch: u64, inventory: bool) {
        self.see_epoch(epoch);
        self.inventory = None;
        if inventory {
            info!(
                "master asked what we hold: reporting {} keys",
                self.map.len()
            );
            self.inventory = Some(Inventory {
                from: 0,
                drops: Vec::new(),
            });
        }
    }

    /// Whether a report of what is held is under way ([`Store::next_inventory`]).
    pub fn reporting(&self) -> bool {
        self.inventory.is_some()
    }

    /// The next INVENTORY frame of the report under way (`None` if there is none); the last
    /// says `done`, and then the DROPs that came meanwhile are applied.
    pub fn next_inventory(&mut self) -> Option<Frame> {
        let inv = self.inventory.as_mut()?;
        let (entries, next) = self.map.versions_from(inv.from, INVENTORY_FRAME_BYTES);
        let done = next.is_none();
        match next {
            Some(from) => inv.from = from,
            None => {
                let drops = std::mem::take(&mut inv.drops);
                self.inventory = None;
                for (key, version) in drops {
                    self.drop_stale(&key, version);
                }
            }
        }
        Some(Frame::new(0, Body::Inventory { done, entries }))
    }

    /// The master found our copy of `key` stale: drop it unless what we hold is newer.
    fn drop_stale(&mut self, key: &[u8], version: u64) {
        if let Some(inv) = self.inventory.as_mut() {
            return inv.drops.push((key.to_vec(), version));
        }
        match self.durable.as_mut() {
            Some(d) => d.stage_drop(version, key),
            None => {
                if self.map.drop_stale(key, version).is_some() {
                    debug!("dropped a stale copy (version {version} or older)");
                }
            }
        }
    }

    /// Answer one frame from the master; `None` when nothing is owed now. With a log, a
    /// STORE's answer comes later, from [`Store::take_answers`].
    pub fn on_frame(&mut self, frame: Frame) -> Option<Frame> {
        self.respond(frame).map(Reply::into_frame)
    }

    /// [`Store::on_frame`], with a FETCHED borrowing its value from the store.
    pub fn respond(&mut self, frame: Frame) -> Option<Reply<'_>> {
        let req = frame.req_id;
        let reply = match frame.body {
            Body::Welcome {
                epoch, inventory, ..
            } => {
                self.on_welcome(epoch, inventory);
                return None;
            }
            Body::Drop { version, key } => {
                self.drop_stale(&key, version);
                return None;
            }
            Body::Store {
                epoch,
                version,
                key,
                value,
            } => {
                let incoming = Incoming::Borrowed {
                    key: &key,
                    value: &value,
                };
                return self.store(req, epoch, version, None, incoming);
            }
            Body::StoreOnce {
                epoch,
                version,
                id,
                key,
                value,
                keep,
            } => {
                let incoming = Incoming::Borrowed {
                    key: &key,
                    value: &value,
                };
                return self.store(req, epoch, version, Some((id, keep)), incoming);
            }
            Body::Fetch { epoch, key } => return Some(self.fetch(req, epoch, &key)),
            Body::Recall {
                epoch,
                client,
                seq,
                age_ms,
                key,
            } => self.recall(epoch, client, seq, age_ms, &key),
            Body::Purge {
                epoch,
                version,
                key,
            } => return self.purge(req, epoch, version, &key).map(Reply::Frame),
            Body::Ping => Body::Pong,
            Body::Pong | Body::Ok => return None,
            Body::Error { code, text } => {
                warn!("master says {}: {text}", code.name());
                return None;
            }
            other => Body::error(
                ErrorCode::BadRequest,
                format!("a slave does not take {:?}", other.opcode()),
            ),
        };
        Some(Reply::Frame(Frame::new(req, reply)))
    }

    /// The time frames now arrive at (for the logs of refusals and of the disk).
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// [`Store::respond`] for a frame decoded by [`dsm_wire::decode_borrowed`]: a STORE or
    /// FETCH is answered from the bytes in the read buffer, with no copy of its key or value
    /// but the ones a STORE makes into the table (and the log).
    pub fn respond_decoded(&mut self, decoded: Decoded<'_>) -> Option<Reply<'_>> {
        if let Some(s) = StoreParts::of(&decoded) {
            let incoming = Incoming::Borrowed {
                key: s.key,
                value: s.value,
            };
            return self.store(s.req, s.epoch, s.version, s.id, incoming);
        }
        match decoded {
            Decoded::Ref(req, BodyRef::Fetch { epoch, key }) => Some(self.fetch(req, epoch, key)),
            other => self.respond(other.into_frame()),
        }
    }

    /// A buffer to read the next large frame into ([`Table::take_recycled`]).
    pub fn spare_buffer(&mut self) -> Option<Vec<u8>> {
        self.map.take_recycled()
    }

    /// A large STORE whose whole frame, `buf`, was taken from the connection (its key at
    /// `buf[key]`, its value at `buf[value]`): the frame becomes the record, with no copy of
    /// the value ([`Record::from_frame`]), or, where its layout does not allow that, the
    /// value is copied as any STORE's is. Answered as [`Store::respond_decoded`] answers.
    #[allow(clippy::too_many_arguments)]
    pub fn store_taken(
        &mut self,
        req: u64,
        epoch: u64,
        version: u64,
        id: Option<(WriteId, bool)>,
        buf: Vec<u8>,
        key: std::ops::Range<usize>,
        value: std::ops::Range<usize>,
    ) -> Option<Reply<'_>> {
        match Record::from_frame(version, buf, key.clone(), value.clone()) {
            Ok(record) => self.store(req, epoch, version, id, Incoming::Taken(record)),
            Err(buf) => {
                let (key, value) = (&buf[key], &buf[value]);
                self.store(req, epoch, version, id, Incoming::Borrowed { key, value })
            }
        }
    }

    /// A STORE (of the write `id`, for a STORE_ONCE; `keep`: a STORE_KEEP, whose value the
    /// record keeps).
    fn store(
        &mut self,
        req: u64,
        epoch: u64,
        version: u64,
        id: Option<(WriteId, bool)>,
        incoming: Incoming<'_>,
    ) -> Option<Reply<'_>> {
        // A taken frame's record also keeps the frame's head and the bytes read before it.
        // Where that is what would not fit, the value is copied as any STORE's is (one as long
        // as the value held, in place), so whether a STORE fits never depends on where its
        // frame landed in the read buffer.
        if let Incoming::Taken(record) = &incoming {
            let staged = self.durable.as_ref().map_or(0, Durable::staged_growth);
            let room = self
                .max_memory
                .saturating_sub(self.map.heap_bytes() + staged);
            let pending_new = self.durable.as_ref().map_or(0, Durable::staged_new_keys);
            if self.map.growth_of(record, pending_new) > room {
                let (key, value) = (record.key(), record.value());
                return self.store(req, epoch, version, id, Incoming::Borrowed { key, value });
            }
        }
        let value_len = incoming.value().len();
        // What a STORE_KEEP's record keeps: its value, if short enough (the log's record and
        // the one in memory alike). A taken frame's value is never that short.
        let short = match incoming {
            Incoming::Borrowed { value, .. } if value.len() <= MAX_KEPT => Some(value),
            _ => None,
        };
        let keepable = |keep: bool| short.filter(|_| keep);
        let kept = |keep: bool| keepable(keep).map(Kept::from);
        self.stores += 1;
        if let Some(stale) = self.fence(epoch) {
            return Some(Reply::Frame(Frame::new(req, stale)));
        }
        let staged = self.durable.as_ref().map_or(0, Durable::staged_growth);
        let room = self
            .max_memory
            .saturating_sub(self.map.heap_bytes() + staged);
        let Some(pending_new) = self.durable.as_ref().map(Durable::staged_new_keys) else {
            let kept = id.map(|(_, keep)| kept(keep));
            let put = match incoming {
                Incoming::Borrowed { key, value } => self.map.put_within(key, version, value, room),
                Incoming::Taken(record) => self.map.put_within_record(record, room),
            };
            let body = match put {
                Ok(put) => {
                    if let (Some((id, _)), Some(kept)) = (id, kept) {
                        self.writers.stored(id, version, kept, self.now);
                    }
                    match put {
                        Put::Older { held } => Body::Ack { version: held },
                        _ => Body::Ack { version },
                    }
                }
                Err(no) => self.no_room(no, value_len),
            };
            return Some(Reply::Frame(Frame::new(req, body)));
        };
        let writer = id.map(|(id, keep)| record::Writer {
            client: id.client,
            seq: id.seq,
            acked: id.acked,
            kept: keepable(keep),
        });
        let new_key = self.map.get(incoming.key()).is_none();
        let growth = match &incoming {
            Incoming::Borrowed { key, value } => {
                let old = self.map.get(key).map(|(_, v)| v.len());
                self.map.growth(key.len(), value.len(), old, pending_new)
            }
            Incoming::Taken(record) => self.map.growth_of(record, pending_new),
        };
        if growth > room {
            let body = self.no_room(NoRoom::Cap { needed: growth }, value_len);
            return Some(Reply::Frame(Frame::new(req, body)));
        }
        // Everything applying the STORE will allocate, allocated now: once the log has it,
        // it must be applied.
        let reserved = match new_key {
            true => self.map.try_reserve(pending_new + 1),
            false => Ok(()),
        };
        let record = reserved.and_then(|()| match incoming {
            Incoming::Borrowed { key, value } => {
                Record::try_new(version, key, value).ok_or(NoRoom::Alloc)
            }
            Incoming::Taken(record) => Ok(record),
        });
        let record = match record {
            Ok(r) => r,
            Err(no) => {
                let body = self.no_room(no, value_len);
                return Some(Reply::Frame(Frame::new(req, body)));
            }
        };
        let d = self.durable.as_mut().expect("checked above");
        d.set_now(self.now);
        let full = d.stage_store(req, record, writer.as_ref(), growth, new_key);
        if let Some((id, keep)) = id {
            self.staged_writers
                .push_back((req, id, version, kept(keep)));
        }
        if full {
            self.commit();
        }
        None
    }

    /// A collected tombstone: forget `key` if held at `version` or older, and ACK once that is
    /// done (with a log, once the log says so: a restart must not bring an older copy back).
    fn purge(&mut self, req: u64, epoch: u64, version: u64, key: &[u8]) -> Option<Frame> {
        if let Some(stale) = self.fence(epoch) {
            return Some(Frame::new(req, stale));
        }
        if self.inventory.is_some() {
            let text = "reporting what this slave holds; PURGE later";
            return Some(Frame::new(req, Body::error(ErrorCode::Busy, text)));
        }
        match self.durable.as_mut() {
            Some(d) => {
                d.set_now(self.now);
                d.stage_purge(req, version, key);
                None
            }
            None => {
                self.map.drop_stale(key, version);
                Some(Frame::new(req, Body::Ack { version }))
            }
        }
    }

    /// The ERROR for a STORE that does not fit, logged once and then every 10 s with a count.
    fn no_room(&mut self, no: NoRoom, value_len: usize) -> Body {
        let (used, max) = (self.map.heap_bytes(), self.max_memory);
        let why = match no {
            NoRoom::Cap { .. } => format!(
                "memory cap reached: {} of --max-memory {} used",
                memory::show(used as u64),
                memory::show(max as u64)
            ),
            NoRoom::Alloc => format!(
                "the allocator refused memory with {} used",
                memory::show(used as u64)
            ),
        };
        if let Some(line) = self.full.note(&why, self.now) {
            warn!("{line}: STOREs that need more are refused with OUT_OF_MEMORY; reads go on");
        }
        let needed = match no {
            NoRoom::Cap { needed } => format!(", this one needs {needed} more bytes"),
            NoRoom::Alloc => String::new(),
        };
        Body::error(
            ErrorCode::OutOfMemory,
            format!("{why}{needed}; a value of {value_len} bytes was not stored"),
        )
    }

    fn fetch(&mut self, req: u64, epoch: u64, key: &[u8]) -> Reply<'_> {
        self.fetches += 1;
        if let Some(stale) = self.fence(epoch) {
            return Reply::Frame(Frame::new(req, stale));
        }
        match self.map.get(key) {
            Some((version, value)) => Reply::Borrowed(req, BodyRef::Fetched { version, value }),
            None => Reply::Frame(Frame::new(req, Body::NotFound)),
        }
    }

    /// RECALL: the version of `key` held, and whether the write `(client, seq)` was stored
    /// here, after everything received before it is applied (a staged STORE is committed
    /// first, so that a STORE on its way is never answered "not stored").
    fn recall(&mut self, epoch: u64, client: u64, seq: u64, age_ms: u32, key: &[u8]) -> Body {
        if let Some(stale) = self.fence(epoch) {
            return stale;
        }
        self.commit();
        let held = self.map.get(key).map_or(0, |(version, _)| version);
        let age = Duration::from_millis(age_ms.into());
        let (stored, kept) = self.writers.recall(client, seq, age, self.now);
        let kept = kept.map(<[u8]>::to_vec);
        Body::Recalled { held, stored, kept }
    }

    fn see_epoch(&mut self, epoch: u64) {
        if epoch > self.epoch {
            self.epoch = epoch;
            if let Some(d) = self.durable.as_mut() {
                d.note_epoch(epoch);
            }
        }
    }

    /// `Some(error)` when `epoch` is older than one already seen.
    fn fence(&mut self, epoch: u64) -> Option<Body> {
        if epoch < self.epoch {
            return Some(Body::error(
                ErrorCode::StaleEpoch,
                format!("epoch {epoch} is older than {}", self.epoch),
            ));
        }
        self.see_epoch(epoch);
        None
    }

    /// Write what is staged now, and settle the answers of its STOREs.
    pub fn commit(&mut self) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        let refused = d.commit(&mut self.map, &mut self.answers);
        self.settle(refused);
    }

    /// Whether commits wait for an `fdatasync`, so they are best made once per loop turn
    /// (everything the turn read) rather than after every read.
    pub fn groups_commits(&self) -> bool {
        self.durable.as_ref().is_some_and(Durable::groups_commits)
    }

    /// The end of a loop turn: commit what the turn staged, sync if the interval is up,
    /// move a compaction along.
    pub fn end_turn(&mut self, now: Instant) {
        self.now = now;
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        let refused = d.end_turn(&mut self.map, &mut self.answers, &self.writers, now);
        self.settle(refused);
    }

    fn settle(&mut self, refused: Option<String>) {
        for a in self.answers.drain(..) {
            let req = match a {
                Answer::Ack { req, .. } | Answer::Refused { req } => req,
            };
            if self.staged_writers.front().is_some_and(|w| w.0 == req) {
                if let Some((_, id, version, kept)) = self.staged_writers.pop_front() {
                    if matches!(a, Answer::Ack { .. }) {
                        self.writers.stored(id, version, kept, self.now);
                    }
                }
            }
            let frame = match a {
                Answer::Ack { req, version } => Frame::new(req, Body::Ack { version }),
                Answer::Refused { req } => {
                    let why = refused.as_deref().unwrap_or("the write failed");
                    let text = format!("cannot write the log: {why}; the STORE was not applied");
                    Frame::new(req, Body::error(ErrorCode::Disk, text))
                }
            };
            self.settled.push(frame);
        }
    }

    /// The connection to the master is gone: what is staged is written, and the answers
    /// not yet given (settled, or of STOREs still waiting for their sync) go to no one. The
    /// STOREs themselves are applied as usual once on disk.
    pub fn forget_answers(&mut self) {
        self.commit();
        self.settled.clear();
        if let Some(d) = self.durable.as_mut() {
            d.forget_answers();
        }
    }

    /// Whether answers are waiting for [`Store::take_answers`].
    pub fn has_answers(&self) -> bool {
        !self.settled.is_empty()
    }

    /// Move the settled answers to `out`, oldest first.
    pub fn take_answers(&mut self, out: &mut Vec<Frame>) {
        out.append(&mut self.settled);
    }

    /// When [`Store::end_turn`] must run even if nothing arrives (an interval sync).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.durable.as_ref().and_then(Durable::next_deadline)
    }

    /// Under `--fsync always`: when the sync that ACKs wait for started (`None`: none runs).
    pub fn sync_started(&self) -> Option<Instant> {
        self.durable.as_ref().and_then(Durable::sync_started)
    }

    /// Whether the next turn has work whatever happens (a compaction under way).
    pub fn busy(&self) -> bool {
        self.durable.as_ref().is_some_and(Durable::busy)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

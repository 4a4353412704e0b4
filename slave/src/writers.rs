//! Who wrote what this slave stored (exactly-once writes, `wire/PROTOCOL.md` section 6): per
//! client, the version at which each of its recent writes (STORE_ONCE) was stored, kept past
//! later writes to the key, so that a new primary can learn from RECALL whether a write it never
//! saw was applied. A record goes when the client's `acked` passes it, beyond the
//! [`PER_CLIENT`] highest numbers of one client, or with its client after [`IDLE`].
//!
//! With `--data-dir` the records are in the log too (`disk/record.rs`: a STORE_ONCE carries
//! its writer; a compaction copies the records): a slave restarted over a log that has
//! carried them since it was created knows every write it stored, and is *complete*. Any
//! other (memory only, a log cut at a corrupt record, a log of an older version) says it
//! cannot vouch for writes that may predate its start.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use dsm_wire::{WriteId, RECALL_NONE, RECALL_UNSURE};

use crate::disk::record::{self, Writer};

/// The highest sequence numbers of one client that are kept at least (a client sends a write
/// again only while fewer than this many of its later writes were sent).
pub const PER_CLIENT: usize = 1024;
/// A client that stored nothing here for this long is forgotten (a client sends a write again
/// at most 30 s after its first send).
pub const IDLE: Duration = Duration::from_secs(60);
/// How often idle clients are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Slack on a RECALL's age: clocks that run at slightly different rates, frames on their way.
const MARGIN: Duration = Duration::from_millis(100);

pub struct Writers {
    clients: HashMap<u64, Client, ClientIds>,
    /// When this process started keeping records: unless `complete`, it cannot say anything
    /// of writes before.
    started: Instant,
    /// The records of every write this slave ever stored (but those the bound and the
    /// clients' word let go) are here: replayed from a log that always carried them.
    complete: bool,
    next_sweep: Instant,
    records: usize,
}

struct Client {
    /// Every write below this has had its answer (the client's word): forgotten.
    acked: u64,
    /// Records below this were dropped for the bound, without the client's word.
    floor: u64,
    last: Instant,
    /// (seq, version, kept value), by ascending seq.
    stored: VecDeque<(u64, u64, Option<Kept>)>,
}

impl Client {
    /// A client first seen at `now`, with no record yet.
    fn new(now: Instant) -> Client {
        Client {
            acked: 0,
            floor: 0,
            last: now,
            stored: VecDeque::new(),
        }
    }
}

/// A value kept with a record (STORE_KEEP: an INCR's new value, the answer it was given).
pub type Kept = Box<[u8]>;

/// The longest value a record keeps: an INCR's value is at most 20 bytes (`i64::MIN`).
pub const MAX_KEPT: usize = 32;

impl Writers {
    pub fn new(started: Instant) -> Writers {
        Writers {
            clients: HashMap::with_hasher(ClientIds::default()),
            started,
            complete: false,
            next_sweep: started + SWEEP_EVERY,
            records: 0,
        }
    }

    /// Say whether these records are complete (see the module's doc).
    pub fn set_complete(&mut self, complete: bool) {
        self.complete = complete;
    }

    pub fn complete(&self) -> bool {
        self.complete
    }

    /// A record read back from the log: `writer`'s write stored at `version`.
    pub fn replayed(&mut self, writer: &Writer<'_>, version: u64, now: Instant) {
        let id = WriteId {
            client: writer.client,
            seq: writer.seq,
            acked: writer.acked,
        };
        self.stored(id, version, writer.kept.map(Kept::from), now);
    }

    /// A client's `acked` and `floor` read back from a compacted log (its records follow).
    pub fn restore_client(&mut self, client: u64, acked: u64, floor: u64, now: Instant) {
        let c = self
            .clients
            .entry(client)
            .or_insert_with(|| Client::new(now));
        c.acked = c.acked.max(acked);
        c.floor = c.floor.max(floor);
    }

    /// Append every record as log records (a CLIENT per client, then a WRITER per record),
    /// for a compaction to copy.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for (&client, c) in &self.clients {
            record::encode_client(out, client, c.acked, c.floor);
            for (seq, version, kept) in &c.stored {
                let w = Writer {
                    client,
                    seq: *seq,
                    acked: c.acked,
                    kept: kept.as_deref(),
                };
                record::encode_writer_record(out, &w, *version);
            }
        }
    }

    /// Records kept, and clients they belong to.
    pub fn len(&self) -> (usize, usize) {
        (self.records, self.clients.len())
    }

    /// The write `id` is held here at `version` (or a newer version was held already);
    /// `kept`: the value to give back with a RECALL of it (at most [`MAX_KEPT`] bytes).
    pub fn stored(&mut self, id: WriteId, version: u64, kept: Option<Kept>, now: Instant) {
        let kept = kept.filter(|k| k.len() <= MAX_KEPT);
        let c = self
            .clients
            .entry(id.client)
            .or_insert_with(|| Client::new(now));
        c.last = now;
        if id.acked > c.acked {
            c.acked = id.acked;
            while c.stored.front().is_some_and(|&(s, _, _)| s < id.acked) {
                c.stored.pop_front();
                self.records -= 1;
            }
        }
        if id.seq < c.acked {
            return;
        }
        match c.stored.back() {
            Some(&(last, _, _)) if last >= id.seq => {
                match c.stored.binary_search_by_key(&id.seq, |&(s, _, _)| s) {
                    Ok(i) => {
                        let rec = &mut c.stored[i];
                        if version >= rec.1 {
                            rec.1 = version;
                            if kept.is_some() {
                                rec.2 = kept;
                            }
                        }
                    }
                    Err(i) => {
                        c.stored.insert(i, (id.seq, version, kept));
                        self.records += 1;
                    }
                }
            }
            _ => {
                c.stored.push_back((id.seq, version, kept));
                self.records += 1;
            }
        }
        if c.stored.len() > PER_CLIENT {
            if let Some((s, _, _)) = c.stored.pop_front() {
                c.floor = c.floor.max(s + 1);
                self.records -= 1;
            }
        }
        if now >= self.next_sweep {
            self.sweep(now);
        }
    }

    /// What RECALLED says of the write `(client, seq)`, first sent at most `age` ago: the
    /// version it was stored at, [`RECALL_NONE`], or [`RECALL_UNSURE`] when this process may
    /// not know (it started since, or dropped the client's records below `seq`); and the value
    /// kept with the record, if any.
    pub fn recall(
        &self,
        client: u64,
        seq: u64,
        age: Duration,
        now: Instant,
    ) -> (u64, Option<&[u8]>) {
        let c = self.clients.get(&client);
        if let Some(c) = c {
            if let Ok(i) = c.stored.binary_search_by_key(&seq, |&(s, _, _)| s) {
                return (c.stored[i].1, c.stored[i].2.as_deref());
            }
        }
        let young = !self.complete && now.saturating_duration_since(self.started) < age + MARGIN;
        let forgot = c.is_some_and(|c| seq < c.floor || seq < c.acked);
        if young || forgot {
            return (RECALL_UNSURE, None);
        }
        (RECALL_NONE, None)
    }

    /// Forget the clients that stored nothing here for [`IDLE`].
    pub fn sweep(&mut self, now: Instant) {
        self.next_sweep = now + SWEEP_EVERY;
        let before = self.records;
        let mut dropped = 0;
        self.clients.retain(|_, c| {
            let keep = now.saturating_duration_since(c.last) < IDLE;
            if !keep {
                dropped += c.stored.len();
            }
            keep
        });
        self.records = before - dropped;
    }
}

/// Client ids are chosen by clients, so the map's hash is keyed with a random number of this
/// process; one multiply mixes it (a SipHash per STORE would cost more than the record).
#[derive(Clone)]
struct ClientIds {
    key: u64,
}

impl Default for ClientIds {
    fn default() -> ClientIds {
        ClientIds {
            key: RandomState::new().build_hasher().finish(),
        }
    }
}

impl BuildHasher for ClientIds {
    type Hasher = ClientHash;

    fn build_hasher(&self) -> ClientHash {
        ClientHash(self.key)
    }
}

struct ClientHash(u64);

impl Hasher for ClientHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: u64, seq: u64, acked: u64) -> WriteId {
        WriteId { client, seq, acked }
    }

    const LONG_AGO: Duration = Duration::from_secs(1000);

    #[test]
    fn a_stored_write_is_recalled_past_later_writes_until_the_client_acks_it() {
        let t0 = Instant::now();
        let now = t0 + LONG_AGO;
        let mut w = Writers::new(t0);
        let age = Duration::from_millis(300);
        w.stored(id(7, 1, 1), 10, None, now);
        w.stored(id(7, 3, 1), 30, None, now);
        // Out of order (another key's queue): kept in order all the same.
        w.stored(id(7, 2, 1), 20, None, now);
        w.stored(id(8, 1, 1), 11, None, now);
        assert_eq!(w.len(), (4, 2));
        assert_eq!(w.recall(7, 1, age, now).0, 10);
        assert_eq!(w.recall(7, 2, age, now).0, 20);
        assert_eq!(w.recall(7, 4, age, now).0, RECALL_NONE);
        assert_eq!(
            w.recall(9, 1, age, now).0,
            RECALL_NONE,
            "a client never seen"
        );
        // The same write stored again (a replacement STORE, say) keeps the newest version.
        w.stored(id(7, 2, 1), 25, None, now);
        assert_eq!(w.recall(7, 2, age, now).0, 25);
        // Client 7 has had the answers below 3: those go; a RECALL of one can only be a bug,
        // and is not answered "none".
        w.stored(id(7, 4, 3), 40, None, now);
        assert_eq!(w.len(), (3, 2));
        assert_eq!(w.recall(7, 1, age, now).0, RECALL_UNSURE);
        assert_eq!(w.recall(7, 3, age, now).0, 30);
        // A late STORE of an acked write is not recorded again.
        w.stored(id(7, 2, 1), 20, None, now);
        assert_eq!(w.len(), (3, 2));
    }

    #[test]
    fn a_young_process_cannot_say_what_it_did_not_store() {
        let t0 = Instant::now();
        let mut w = Writers::new(t0);
        let now = t0 + Duration::from_secs(2);
        w.stored(id(1, 5, 1), 50, None, now);
        // Stored since it started: known whatever the age.
        assert_eq!(w.recall(1, 5, LONG_AGO, now).0, 50);
        // Not stored, and the write is older than this process: it may have gone to the one
        // before.
        assert_eq!(w.recall(1, 6, Duration::from_secs(3), now).0, RECALL_UNSURE);
        assert_eq!(
            w.recall(1, 6, Duration::from_millis(1950), now).0,
            RECALL_UNSURE
        );
        assert_eq!(
            w.recall(1, 6, Duration::from_millis(500), now).0,
            RECALL_NONE
        );
    }

    #[test]
    fn records_are_bounded_per_client_and_idle_clients_are_forgotten() {
        let t0 = Instant::now();
        let now = t0 + LONG_AGO;
        let mut w = Writers::new(t0);
        let n = PER_CLIENT as u64 + 10;
        for seq in 1..=n {
            w.stored(id(3, seq, 0), seq, None, now);
        }
        assert_eq!(w.len(), (PER_CLIENT, 1));
        let age = Duration::from_millis(1);
        assert_eq!(
            w.recall(3, 10, age, now).0,
            RECALL_UNSURE,
            "dropped for the bound"
        );
        assert_eq!(w.recall(3, 11, age, now).0, 11);
        assert_eq!(w.recall(3, n + 1, age, now).0, RECALL_NONE);
        w.stored(id(4, 1, 0), 1, None, now + IDLE / 2);
        w.sweep(now + IDLE);
        assert_eq!(w.len(), (1, 1), "client 3 idle for IDLE, client 4 not");
        // A STORE long after the last sweep sweeps.
        w.stored(id(5, 1, 0), 1, None, now + IDLE * 3);
        assert_eq!(w.len(), (1, 1));
    }

    #[test]
    fn a_kept_value_comes_back_with_its_record_and_a_long_one_is_not_kept() {
        let t0 = Instant::now();
        let now = t0 + LONG_AGO;
        let mut w = Writers::new(t0);
        let age = Duration::from_millis(1);
        w.stored(id(1, 1, 1), 10, Some(b"41".as_slice().into()), now);
        w.stored(id(1, 2, 1), 20, None, now);
        w.stored(id(1, 3, 1), 30, Some(vec![b'7'; MAX_KEPT + 1].into()), now);
        assert_eq!(w.recall(1, 1, age, now), (10, Some(b"41".as_slice())));
        assert_eq!(w.recall(1, 2, age, now), (20, None));
        assert_eq!(w.recall(1, 3, age, now), (30, None));
        // A replacement STORE_KEEP at a newer version keeps its own value.
        w.stored(id(1, 1, 1), 11, Some(b"42".as_slice().into()), now);
        assert_eq!(w.recall(1, 1, age, now), (11, Some(b"42".as_slice())));
    }
}

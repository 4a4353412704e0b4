//! The slave's key table, laid out for memory: a slave holds its share of every key, so bytes
//! per key decide how much data a machine can hold.
//!
//! Each key is one heap block, `[key length: u32][key][value]`, in a dense [`Chunked`] array
//! beside its version, found through a [`TagIndex`]. Neither grows in one step (the index
//! moves a few slots per insert, the records go in fixed blocks that never move), so the
//! slave never stalls for long. A `HashMap<Box<[u8]>, (u64, Box<[u8]>)>` costs 40 bytes a bucket
//! (up to twice that per key just after the table grows) plus a second allocation for the
//! value; this layout costs 24 bytes per record, 9–18 per key for the index and one
//! allocation. `bench-results/memory.md` has the measured figures.
//!
//! The table also counts the heap it holds ([`Table::heap_bytes`]): the blocks (as malloc
//! rounds them), the records' capacity and the index's slots (old and new during a growth), so that `--max-memory` can
//! refuse a STORE before it allocates rather than abort after. Every allocation a put makes is
//! fallible (`try_reserve`): a failed one is a refusal too, never an abort.

use std::mem::size_of;

use dsm_index::{Chunked, Found, TagIndex};
use dsm_wire::plain_version;

const HEADER: usize = 4;

/// Set in the first word of a record that is a taken frame ([`Record::from_frame`]); the rest
/// of that word is the key's length, the next two words where the key and the value start.
const TAKEN: u32 = 1 << 31;
/// A taken frame's record header: the flagged key length, the key's and the value's offsets.
const TAKEN_HEADER: usize = 12;

/// One key's newest version and its bytes.
pub struct Record {
    version: u64,
    /// `[key length: u32 BE][key][value]`, or a large STORE's whole frame (with the bytes read
    /// before it), taken from its connection without a copy: `[TAKEN | key length: u32 BE]
    /// [key offset: u32 BE][value offset: u32 BE][the rest of the frame's head][key][...]
    /// [value]`, the value running to the end (whatever followed it in the frame cut off).
    bytes: Box<[u8]>,
}

impl Record {
    /// `None` if the allocation fails.
    pub fn try_new(version: u64, key: &[u8], value: &[u8]) -> Option<Record> {
        let klen = u32::try_from(key.len())
            .ok()
            .filter(|&l| l < TAKEN)
            .expect("key over 2^31 bytes");
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(HEADER + key.len() + value.len())
            .ok()?;
        bytes.extend_from_slice(&klen.to_be_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        Some(Record {
            version,
            bytes: bytes.into_boxed_slice(),
        })
    }

    /// The record of a STORE whose frame was read into `buf` and taken out of the connection
    /// whole, its key at `buf[key]` and its value at `buf[value]`: `buf` itself becomes the
    /// record (its first bytes, before the key, overwritten with the header), so a large
    /// value is not copied again after the kernel put it there. `Err(buf)` back when the
    /// layout does not allow it (the key in the first bytes, the value before the key, or
    /// more bytes before the frame than an eighth of the value: those would be kept too),
    /// for the caller to copy from.
    pub fn from_frame(
        version: u64,
        mut buf: Vec<u8>,
        key: std::ops::Range<usize>,
        value: std::ops::Range<usize>,
    ) -> Result<Record, Vec<u8>> {
        let fits = |n: usize| u32::try_from(n).ok().filter(|&n| n < TAKEN);
        let (Some(klen), Some(koff), Some(voff)) =
            (fits(key.len()), fits(key.start), fits(value.start))
        else {
            return Err(buf);
        };
        if key.start < TAKEN_HEADER
            || key.end > value.start
            || value.end > buf.len()
            || key.start > value.len() / 8
        {
            return Err(buf);
        }
        buf.truncate(value.end);
        buf[..4].copy_from_slice(&(TAKEN | klen).to_be_bytes());
        buf[4..8].copy_from_slice(&koff.to_be_bytes());
        buf[8..12].copy_from_slice(&voff.to_be_bytes());
        Ok(Record {
            version,
            bytes: buf.into_boxed_slice(),
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    fn word(&self, at: usize) -> usize {
        let mut b = [0; 4];
        b.copy_from_slice(&self.bytes[at..at + 4]);
        u32::from_be_bytes(b) as usize
    }

    /// Where the key starts, its length and where the value starts.
    fn layout(&self) -> (usize, usize, usize) {
        let first = self.word(0);
        if first & TAKEN as usize == 0 {
            (HEADER, first, HEADER + first)
        } else {
            (self.word(4), first & !(TAKEN as usize), self.word(8))
        }
    }

    pub fn key(&self) -> &[u8] {
        let (at, len, _) = self.layout();
        &self.bytes[at..at + len]
    }

    pub fn value(&self) -> &[u8] {
        let (_, _, at) = self.layout();
        &self.bytes[at..]
    }

    fn value_mut(&mut self) -> &mut [u8] {
        let (_, _, at) = self.layout();
        &mut self.bytes[at..]
    }

    /// A byte of the key, to bring the record into the cache ([`Table::warm`]).
    fn first_key_byte(&self) -> u8 {
        let (at, len, _) = self.layout();
        if len == 0 {
            0
        } else {
            self.bytes[at]
        }
    }

    /// The heap this record's block takes.
    pub fn heap_bytes(&self) -> usize {
        block_bytes(self.bytes.len())
    }
}

/// The heap a block of `n` bytes takes, as glibc's malloc lays it out: 8 bytes of header,
/// rounded up to 16, at least 32; blocks of 128 KiB or more are whole pages of their own.
pub fn block_bytes(n: usize) -> usize {
    if n >= 128 * 1024 {
        (n + 16).next_multiple_of(4096)
    } else {
        (n + 8).next_multiple_of(16).max(32)
    }
}

/// The heap a record of this key and value would take.
pub fn record_bytes(key_len: usize, value_len: usize) -> usize {
    block_bytes(HEADER + key_len + value_len)
}

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// A version as new or newer is held: nothing changed.
    Older { held: u64 },
    /// A new key.
    Inserted,
    /// A newer version of a key held; `old_value` is the length of the value it replaced.
    Replaced { old_value: usize },
}

/// Why a put was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// It would grow the table by `needed` bytes, more than the room it was given.
    Cap { needed: usize },
    /// The allocator said no.
    Alloc,
}

/// What a drop removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub key_len: usize,
    pub value_len: usize,
    /// The last record moved into the hole: from, to.
    pub moved: Option<(usize, usize)>,
}

#[derive(Default)]
pub struct Table {
    records: Chunked<Record>,
    index: TagIndex,
    /// The heap of every record's block.
    blocks: usize,
    /// The block of the last large record replaced, for the connection to read the next
    /// large frame into ([`Table::take_recycled`]); not counted in `blocks`.
    recycled: Option<Box<[u8]>>,
}

/// A replaced record's block at least this large is kept for [`Table::take_recycled`].
const RECYCLE_MIN: usize = 64 * 1024;

impl Table {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The heap the table holds: every block, the records' capacity, the index.
    pub fn heap_bytes(&self) -> usize {
        self.blocks + self.records.capacity() * size_of::<Record>() + self.index.heap_bytes()
    }

    fn find(&self, key: &[u8]) -> Found {
        self.index.find(key, |pos| self.records[pos].key())
    }

    /// This table's keyed hash of `key`, for [`Table::put_hashed`] and [`Table::warm`].
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.index.hash(key)
    }

    /// Read, for each of `hashes` (of keys about to be put), the index slot and the record
    /// it most likely points at, so that the puts that follow find them in the cache: the
    /// reads of one pass do not depend on each other, so their misses overlap (see
    /// `TagIndex::likely`). Returns a value to hand to [`std::hint::black_box`].
    pub fn warm(&self, hashes: &[u64], likely: &mut Vec<usize>) -> u64 {
        likely.clear();
        likely.extend(hashes.iter().filter_map(|&h| self.index.likely(h)));
        likely.iter().fold(0, |sink, &pos| {
            let r = &self.records[pos];
            sink ^ r.version ^ u64::from(r.first_key_byte())
        })
    }

    /// [`Table::put_within`] with no limit, `hash` = [`Table::hash`] of `key`: replay's put.
    pub fn put_hashed(
        &mut self,
        hash: u64,
        key: &[u8],
        version: u64,
        value: &[u8],
    ) -> Result<Put, NoRoom> {
        let found = self
            .index
            .find_hashed(hash, key, |pos| self.records[pos].key());
        self.put_found(found, key, version, value, usize::MAX)
    }

    /// The version and value held for `key`.
    pub fn get(&self, key: &[u8]) -> Option<(u64, &[u8])> {
        match self.find(key) {
            Found::At(pos) => {
                let r = &self.records[pos];
                Some((r.version, r.value()))
            }
            Found::Vacant(_) => None,
        }
    }

    /// The record at position `pos` (positions run from 0 to `len`; a drop moves the last
    /// record into the hole).
    pub fn at(&self, pos: usize) -> Option<&Record> {
        self.records.get(pos)
    }

    /// How many bytes the table would grow by if it kept `value_len` bytes under a key of
    /// `key_len` bytes whose current value is `old_value` bytes long (`None`: a new key, and
    /// `pending_new` other new keys will come first). Zero for a value no larger than the one
    /// it replaces.
    pub fn growth(
        &self,
        key_len: usize,
        value_len: usize,
        old_value: Option<usize>,
        pending_new: usize,
    ) -> usize {
        let new = record_bytes(key_len, value_len);
        match old_value {
            Some(old) => new.saturating_sub(record_bytes(key_len, old)),
            None => new + self.slots_growth(pending_new + 1),
        }
    }

    /// What the records and the index would grow by for `additional` more keys (the old
    /// slots of an index growth count until it ends, a few puts later).
    fn slots_growth(&self, additional: usize) -> usize {
        self.records.growth(additional) * size_of::<Record>() + self.index.growth_bytes(additional)
    }

    /// Allocate now what `additional` new keys will need, so that putting them cannot fail.
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), NoRoom> {
        self.records
            .try_reserve(additional)
            .map_err(|_| NoRoom::Alloc)?;
        self.index
            .try_reserve(additional)
            .map_err(|_| NoRoom::Alloc)
    }

    /// Keep `record` unless a version as new or newer is held. Allocates only for a new key
    /// whose room was not reserved with [`Table::try_reserve`].
    pub fn put_record(&mut self, record: Record) -> Put {
        match self.find(record.key()) {
            Found::At(pos) => {
                let r = &mut self.records[pos];
                if plain_version(r.version) >= plain_version(record.version) {
                    return Put::Older { held: r.version };
                }
                let old_value = r.value().len();
                self.blocks = self.blocks - r.heap_bytes() + record.heap_bytes();
                let old = std::mem::replace(r, record);
                if old.bytes.len() >= RECYCLE_MIN {
                    self.recycled = Some(old.bytes);
                }
                Put::Replaced { old_value }
            }
            Found::Vacant(vacancy) => {
                self.blocks += record.heap_bytes();
                self.index.insert(vacancy, self.records.len());
                self.records.push(record);
                Put::Inserted
            }
        }
    }

    /// Keep `value` as `version` of `key` unless a newer version is held, if the table grows
    /// by at most `room` bytes doing so and every allocation succeeds. A value as long as the
    /// one it replaces is copied in place.
    pub fn put_within(
        &mut self,
        key: &[u8],
        version: u64,
        value: &[u8],
        room: usize,
    ) -> Result<Put, NoRoom> {
        let found = self.find(key);
        self.put_found(found, key, version, value, room)
    }

    fn put_found(
        &mut self,
        found: Found,
        key: &[u8],
        version: u64,
        value: &[u8],
        room: usize,
    ) -> Result<Put, NoRoom> {
        match found {
            Found::At(pos) => {
                let r = &self.records[pos];
                if plain_version(r.version) >= plain_version(version) {
                    return Ok(Put::Older { held: r.version });
                }
                let old_value = r.value().len();
                if old_value == value.len() {
                    let r = &mut self.records[pos];
                    r.value_mut().copy_from_slice(value);
                    r.version = version;
                    return Ok(Put::Replaced { old_value });
                }
                let needed = self.growth(key.len(), value.len(), Some(old_value), 0);
                if needed > room {
                    return Err(NoRoom::Cap { needed });
                }
                let record = Record::try_new(version, key, value).ok_or(NoRoom::Alloc)?;
                Ok(self.put_record(record))
            }
            Found::Vacant(_) => {
                let needed = self.growth(key.len(), value.len(), None, 0);
                if needed > room {
                    return Err(NoRoom::Cap { needed });
                }
                self.try_reserve(1)?;
                let record = Record::try_new(version, key, value).ok_or(NoRoom::Alloc)?;
                Ok(self.put_record(record))
            }
        }
    }

    /// The block of the last large record replaced, if not taken yet: its bytes are in
    /// memory already, so a frame read into it costs no page faults and no zeroing
    /// (`Conn::offer_buffer`). At most one is kept; the event loop takes it after every
    /// frame it hands over, so it is not held beside the connection's read buffer.
    pub fn take_recycled(&mut self) -> Option<Vec<u8>> {
        self.recycled.take().map(Vec::from)
    }

    /// The heap a put of `record` would add: its block less the block it replaces, or, for
    /// a new key, its block and the slots for it and `pending_new` keys staged before it.
    pub fn growth_of(&self, record: &Record, pending_new: usize) -> usize {
        match self.find(record.key()) {
            Found::At(pos) => record
                .heap_bytes()
                .saturating_sub(self.records[pos].heap_bytes()),
            Found::Vacant(_) => record.heap_bytes() + self.slots_growth(pending_new + 1),
        }
    }

    /// Put a record made by the caller (a taken frame: [`Record::from_frame`]) if its
    /// version is newer than the one held and what it adds to the heap is within `room`.
    pub fn put_within_record(&mut self, record: Record, room: usize) -> Result<Put, NoRoom> {
        let held = match self.find(record.key()) {
            Found::At(pos) => Some(self.records[pos].version),
            Found::Vacant(_) => None,
        };
        if let Some(held) = held.filter(|&h| plain_version(h) >= plain_version(record.version)) {
            return Ok(Put::Older { held });
        }
        let needed = self.growth_of(&record, 0);
        if needed > room {
            return Err(NoRoom::Cap { needed });
        }
        if held.is_none() {
            self.try_reserve(1)?;
        }
        Ok(self.put_record(record))
    }

    /// [`Table::put_within`] with no limit; returns the version held afterwards. Panics if
    /// an allocation fails (tests and replay only).
    pub fn put(&mut self, key: &[u8], version: u64, value: &[u8]) -> u64 {
        match self.put_within(key, version, value, usize::MAX) {
            Ok(Put::Older { held }) => held,
            Ok(_) => version,
            Err(e) => panic!("put of {} bytes: {e:?}", value.len()),
        }
    }

    /// Drop `key` if the version held is `version` or older (the master found it stale).
    /// The last record fills the hole.
    pub fn drop_stale(&mut self, key: &[u8], version: u64) -> Option<Dropped> {
        let hash = self.index.hash(key);
        let pos = match self
            .index
            .find_hashed(hash, key, |pos| self.records[pos].key())
        {
            Found::At(pos)
                if plain_version(self.records[pos].version) <= plain_version(version) =>
            {
                pos
            }
            _ => return None,
        };
        self.index.remove(hash, pos);
        let last = self.records.len() - 1;
        let mut moved = None;
        if pos != last {
            let h = self.index.hash(self.records[last].key());
            self.index.repoint(h, last, pos);
            moved = Some((last, pos));
        }
        let gone = self.records.swap_remove(pos);
        self.blocks -= gone.heap_bytes();
        Some(Dropped {
            key_len: gone.key().len(),
            value_len: gone.value().len(),
            moved,
        })
    }

    /// The keys and versions of the records from position `from` on, until about `max_bytes`
    /// of keys; and the position to go on from (`None`: that was the end).
    pub fn versions_from(
        &self,
        from: usize,
        max_bytes: usize,
    ) -> (Vec<(Vec<u8>, u64)>, Option<usize>) {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut pos = from;
        while let Some(r) = self.records.get(pos) {
            if bytes >= max_bytes {
                return (out, Some(pos));
            }
            bytes += r.key().len() + 12;
            out.push((r.key().to_vec(), r.version));
            pos += 1;
        }
        (out, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ops::Range;

    #[test]
    fn behaves_like_a_map_that_keeps_the_newest_version() {
        // Against a HashMap model, with key collisions in the probe sequence guaranteed by
        // the number of keys, growth through several sizes, and values changing length.
        let mut t = Table::default();
        let mut model: HashMap<Vec<u8>, (u64, Vec<u8>)> = HashMap::new();
        let mut state = 7u64;
        for step in 0..20_000u64 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = format!("k{}", (state >> 33) % 3000).into_bytes();
            let version = (state >> 20) % 50;
            let value = vec![step as u8; ((state >> 40) % 5) as usize];
            let expect = match model.get(&key) {
                Some(&(held, _)) if held >= version => held,
                _ => {
                    model.insert(key.clone(), (version, value.clone()));
                    version
                }
            };
            assert_eq!(t.put(&key, version, &value), expect, "step {step}");
        }
        assert_eq!(t.len(), model.len());
        for (k, (v, val)) in &model {
            assert_eq!(t.get(k), Some((*v, &val[..])), "key {k:?}");
        }
        assert_eq!(t.get(b"absent"), None);
    }

    #[test]
    fn older_versions_are_refused_and_values_change_size() {
        let mut t = Table::default();
        assert_eq!(t.put(b"k", 5, b"five"), 5);
        assert_eq!(t.put(b"k", 3, b"three"), 5);
        assert_eq!(t.get(b"k"), Some((5, &b"five"[..])));
        assert_eq!(t.put(b"k", 6, b"a much longer value"), 6);
        assert_eq!(t.get(b"k"), Some((6, &b"a much longer value"[..])));
        assert_eq!(t.put(b"k", 7, b""), 7);
        assert_eq!(t.get(b"k"), Some((7, &b""[..])));
        assert_eq!(t.put(b"", 1, b"empty key"), 1);
        assert_eq!(t.get(b""), Some((1, &b"empty key"[..])));
    }

    #[test]
    fn stale_copies_are_dropped_and_every_record_is_listed_once() {
        let mut t = Table::default();
        for i in 0..500u64 {
            t.put(format!("k{i}").as_bytes(), i + 10, b"v");
        }
        assert!(t.drop_stale(b"k3", 12).is_none(), "a newer version stays");
        let d = t.drop_stale(b"k3", 13).unwrap();
        assert_eq!((d.key_len, d.value_len, d.moved), (2, 1, Some((499, 3))));
        assert!(t.drop_stale(b"k3", 100).is_none(), "gone already");
        for i in (0..500u64).step_by(7) {
            t.drop_stale(format!("k{i}").as_bytes(), u64::MAX);
        }
        let mut listed = Vec::new();
        let mut from = Some(0);
        while let Some(at) = from {
            let (chunk, next) = t.versions_from(at, 100);
            listed.extend(chunk);
            from = next;
        }
        let mut want: Vec<(Vec<u8>, u64)> = (0..500u64)
            .filter(|i| i % 7 != 0 && *i != 3)
            .map(|i| (format!("k{i}").into_bytes(), i + 10))
            .collect();
        listed.sort();
        want.sort();
        assert_eq!(listed, want);
        for (k, v) in &want {
            assert_eq!(t.get(k).map(|(v, _)| v), Some(*v));
        }
    }

    /// The heap the table counts, recomputed from scratch.
    fn counted(t: &Table) -> usize {
        let blocks: usize = t.records.iter().map(Record::heap_bytes).sum();
        blocks + t.records.capacity() * size_of::<Record>() + t.index.heap_bytes()
    }

    #[test]
    fn the_heap_count_follows_puts_drops_and_predicted_growth() {
        let mut t = Table::default();
        assert_eq!(t.heap_bytes(), 0);
        let mut state = 3u64;
        for step in 0..5000u64 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = format!("key-{}", (state >> 33) % 700).into_bytes();
            let value = vec![1u8; ((state >> 40) % 300) as usize];
            if step % 5 == 4 {
                t.drop_stale(&key, u64::MAX);
            } else {
                let old = t.get(&key).map(|(_, v)| v.len());
                let predicted = t.growth(key.len(), value.len(), old, 0);
                let (before, freed) = (t.heap_bytes(), t.index.freed_bytes());
                t.put(&key, step + 1, &value);
                // An index growth that ends in this put frees its old slots.
                let after = t.heap_bytes() + (t.index.freed_bytes() - freed) as usize;
                assert_eq!(after.saturating_sub(before), predicted, "step {step}");
            }
            assert_eq!(t.heap_bytes(), counted(&t), "step {step}");
        }
    }

    #[test]
    fn a_put_past_its_room_is_refused_but_a_smaller_value_always_fits() {
        let mut t = Table::default();
        t.put(b"k", 1, &[0; 1000]);
        let used = t.heap_bytes();
        let r = t.put_within(b"other", 2, &[0; 100], 10);
        assert!(
            matches!(r, Err(NoRoom::Cap { needed }) if needed > 100),
            "{r:?}"
        );
        assert_eq!(t.heap_bytes(), used);
        assert_eq!(t.get(b"other"), None);
        let r = t.put_within(b"k", 2, &[1; 2000], 10);
        assert!(matches!(r, Err(NoRoom::Cap { .. })), "{r:?}");
        assert_eq!(t.get(b"k").unwrap().0, 1);
        assert_eq!(
            t.put_within(b"k", 3, &[2; 10], 0),
            Ok(Put::Replaced { old_value: 1000 })
        );
        assert!(t.heap_bytes() < used);
        assert_eq!(
            t.put_within(b"k", 4, &[3; 10], 0),
            Ok(Put::Replaced { old_value: 10 }),
            "the same length, in place"
        );
        assert_eq!(
            t.put_within(b"k", 1, &[0; 5000], 0),
            Ok(Put::Older { held: 4 })
        );
    }

    /// A frame-like buffer: `before` bytes read ahead of it, a 30-byte head, the key, a
    /// 4-byte length, the value and one trailing byte; with the key's and value's ranges.
    fn framed(before: usize, key: &[u8], value: &[u8]) -> (Vec<u8>, Range<usize>, Range<usize>) {
        let mut buf = vec![0xEE; before + 30];
        let k = buf.len()..buf.len() + key.len();
        buf.extend_from_slice(key);
        buf.extend_from_slice(&(value.len() as u32).to_be_bytes());
        let v = buf.len()..buf.len() + value.len();
        buf.extend_from_slice(value);
        buf.push(1);
        (buf, k, v)
    }

    #[test]
    fn a_taken_frame_is_a_record_without_a_copy() {
        let value: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let (buf, k, v) = framed(100, b"big", &value);
        let at = buf[v.clone()].as_ptr();
        let r = Record::from_frame(7, buf, k, v.clone()).expect("a taken record");
        assert_eq!(
            (r.version(), r.key(), r.value()),
            (7, &b"big"[..], &value[..])
        );
        assert_eq!(r.value().as_ptr(), at, "the value stays where it was read");
        assert_eq!(
            r.heap_bytes(),
            block_bytes(v.end),
            "the trailing byte is cut off"
        );

        // Layouts that would keep too much, or that leave no room for the header, are
        // given back.
        let (buf, k, v) = framed(20_000, b"big", &value);
        let back = Record::from_frame(7, buf, k, v)
            .err()
            .expect("12.5% would be waste");
        assert_eq!(back.len(), 20_030 + 3 + 4 + 100_000 + 1, "given back whole");
        let (buf, _, v) = framed(0, b"big", &value);
        assert!(
            Record::from_frame(7, buf, 2..5, v).is_err(),
            "key in the header"
        );
        let (buf, k, v) = framed(0, b"big", &value);
        assert!(
            Record::from_frame(7, buf, v, k).is_err(),
            "value before the key"
        );
        let (buf, k, v) = framed(0, b"big", &value);
        assert!(
            Record::from_frame(7, buf, k, v.start..v.end + 10).is_err(),
            "past the end"
        );
    }

    #[test]
    fn taken_records_are_put_counted_recycled_and_overwritten_in_place() {
        let mut t = Table::default();
        t.put(b"small", 1, b"v");
        let value = vec![5u8; 80_000];
        let taken = |version: u64, fill: u8| {
            let (buf, k, v) = framed(0, b"big", &vec![fill; 80_000]);
            Record::from_frame(version, buf, k, v).expect("a taken record")
        };
        // Too little room: refused, nothing changes.
        let r = t.put_within_record(taken(3, 5), 1000);
        assert!(matches!(r, Err(NoRoom::Cap { .. })), "{r:?}");
        assert_eq!((t.get(b"big"), t.heap_bytes()), (None, counted(&t)));

        let predicted = t.growth_of(&taken(3, 5), 0);
        let before = t.heap_bytes();
        assert_eq!(
            t.put_within_record(taken(3, 5), usize::MAX),
            Ok(Put::Inserted)
        );
        assert_eq!(t.heap_bytes() - before, predicted);
        assert_eq!(t.get(b"big"), Some((3, &value[..])));
        assert_eq!(t.heap_bytes(), counted(&t));
        assert_eq!(t.take_recycled(), None, "nothing replaced yet");

        assert_eq!(
            t.put_within_record(taken(2, 9), usize::MAX),
            Ok(Put::Older { held: 3 })
        );
        let old_block = t.at(1).expect("big").value().as_ptr() as usize;
        assert_eq!(
            t.put_within_record(taken(4, 6), usize::MAX),
            Ok(Put::Replaced { old_value: 80_000 })
        );
        assert_eq!(t.get(b"big"), Some((4, &[6u8; 80_000][..])));
        assert_eq!(t.heap_bytes(), counted(&t));
        let spare = t.take_recycled().expect("the replaced block");
        let range = spare.as_ptr() as usize..spare.as_ptr() as usize + spare.len();
        assert!(
            range.contains(&old_block),
            "the replaced record's own block"
        );
        assert_eq!(t.take_recycled(), None, "handed out once");

        // A value of the same length copied in over a taken record lands in its value, not
        // over its key.
        assert_eq!(
            t.put_within(b"big", 5, &[8; 80_000], usize::MAX),
            Ok(Put::Replaced { old_value: 80_000 })
        );
        assert_eq!(t.get(b"big"), Some((5, &[8u8; 80_000][..])));
        assert_eq!(t.get(b"small"), Some((1, &b"v"[..])));
        let dropped = t.drop_stale(b"big", 5).expect("dropped");
        assert_eq!((dropped.key_len, dropped.value_len), (3, 80_000));
        assert_eq!(t.heap_bytes(), counted(&t));
    }

    #[test]
    fn block_sizes_follow_malloc() {
        assert_eq!(block_bytes(0), 32);
        assert_eq!(block_bytes(24), 32);
        assert_eq!(block_bytes(25), 48);
        assert_eq!(block_bytes(84), 96);
        assert_eq!(block_bytes(1 << 20), (1 << 20) + 4096);
    }
}

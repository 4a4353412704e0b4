//! The byte layout of the slave's log, and nothing else: no I/O. A log is a file header, then
//! records, each carrying its own length and a CRC-32C, so that replay finds where a torn
//! write or a flipped byte begins and cuts the log there (LevelDB's `log_format.md`, without
//! the 32 KiB blocks: a record here is one STORE, never split).
//!
//! ```text
//! file:    "DSMSLOG1" (8 bytes), then records back to back
//! record:  crc: u32 | len: u32 | kind: u8 | body: len bytes      (big-endian, like the wire)
//!          crc is the CRC-32C of len, kind and body (bytes 4 .. 9 + len)
//! kind 1   STORE  version: u64 | key length: u32 | key | value (the rest of the body)
//! kind 2   DROP   version: u64 | key (the rest)
//! kind 3   EPOCH  epoch: u64
//! kind 4   STORE_ONCE  writer | version: u64 | key length: u32 | key | value
//! kind 5   CLIENT  client: u64 | acked: u64 | floor: u64
//! kind 6   WRITER  writer | version: u64
//! kind 7   VOUCHES  (no body)
//! writer:  client: u64 | seq: u64 | acked: u64 | kept length: u8 (255: none) | kept
//! ```
//!
//! A STORE costs 21 bytes beyond its key and value; nothing is padded or aligned.
//!
//! The writers' records (`crate::writers`, exactly-once writes) live in the log too, so that
//! a restarted slave still knows which writes it stored: a STORE_ONCE is a STORE with its
//! writer in the same record (one checksum: the value and the record of who wrote it reach
//! the disk together or not at all); a compaction writes the records kept at its start as a
//! CLIENT per client (its `acked` and the `floor` below which records were dropped for the
//! bound) and a WRITER per record. VOUCHES, the first record of a log, says that the log has
//! carried every writer's record since it was created: replaying it, a slave knows of every
//! write it stored and may say of any other that it was not stored here.

use std::ops::Range;

use super::crc::Crc32c;

/// The first bytes of every log file.
pub const MAGIC: &[u8; 8] = b"DSMSLOG1";
/// crc, len, kind.
pub const HEADER: usize = 9;
const STORE: u8 = 1;
const DROP: u8 = 2;
const EPOCH: u8 = 3;
const STORE_ONCE: u8 = 4;
const CLIENT: u8 = 5;
const WRITER: u8 = 6;
const VOUCHES: u8 = 7;
/// A writer's client, seq, acked and kept length.
const WRITER_FIXED: usize = 25;
/// The kept length that says no value is kept.
const NO_KEPT: u8 = 255;
/// A STORE body's version and key length.
const STORE_FIXED: usize = 12;

/// One decoded record, borrowing from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    Store {
        version: u64,
        key: &'a [u8],
        value: &'a [u8],
        /// A STORE_ONCE's writer.
        writer: Option<Writer<'a>>,
    },
    Drop {
        version: u64,
        key: &'a [u8],
    },
    Epoch(u64),
    /// A client's records as a compaction found them: every write below `acked` answered,
    /// records below `floor` dropped for the bound.
    Client {
        client: u64,
        acked: u64,
        floor: u64,
    },
    /// A record a compaction copied: `writer`'s write is held at `version` (or newer).
    Writer {
        writer: Writer<'a>,
        version: u64,
    },
    /// The log has carried every writer's record since it was created.
    Vouches,
}

/// Who wrote an exactly-once STORE (the wire's `WriteId`), and the value kept with the
/// record (STORE_KEEP: an INCR's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer<'a> {
    pub client: u64,
    pub seq: u64,
    pub acked: u64,
    pub kept: Option<&'a [u8]>,
}

/// Why the bytes at some offset are not a record: from there on the log cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corrupt {
    /// The checksum does not match: a flipped byte, or a write that never reached the disk
    /// whole. `len` is what the header claims (a flipped length makes it wrong too).
    Checksum { len: u32 },
    /// The checksum matches but the body does not parse: written by a different program.
    Malformed { kind: u8 },
}

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corrupt::Checksum { len } => write!(f, "checksum mismatch (record of {len} bytes)"),
            Corrupt::Malformed { kind } => write!(f, "record of unknown kind {kind}"),
        }
    }
}

/// The bytes a STORE record of this key and value takes in the log.
pub fn store_len(key_len: usize, value_len: usize) -> u64 {
    (HEADER + STORE_FIXED + key_len + value_len) as u64
}

/// Bytes needed to decode the record starting at `buf`: its whole length once the header
/// is there, else the header's.
pub fn needed(buf: &[u8]) -> u64 {
    if buf.len() < HEADER {
        return HEADER as u64;
    }
    HEADER as u64 + u64::from(read_u32(&buf[4..8]))
}

/// Decode the record at the start of `buf`: `Ok(None)` if `buf` does not hold all of it yet,
/// else the entry and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Entry<'_>, usize)>, Corrupt> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = read_u32(&buf[4..8]);
    let end = HEADER + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let mut crc = Crc32c::default();
    crc.update(&buf[4..end]);
    if crc.value() != read_u32(&buf[..4]) {
        return Err(Corrupt::Checksum { len });
    }
    let kind = buf[8];
    let body = &buf[HEADER..end];
    let malformed = Corrupt::Malformed { kind };
    let entry = match kind {
        STORE => decode_store(body, None).ok_or(malformed)?,
        STORE_ONCE => {
            let (writer, rest) = decode_writer(body).ok_or(malformed)?;
            decode_store(rest, Some(writer)).ok_or(malformed)?
        }
        CLIENT if body.len() == 24 => Entry::Client {
            client: read_u64(&body[..8]),
            acked: read_u64(&body[8..16]),
            floor: read_u64(&body[16..24]),
        },
        WRITER => match decode_writer(body).ok_or(malformed)? {
            (writer, rest) if rest.len() == 8 => Entry::Writer {
                writer,
                version: read_u64(rest),
            },
            _ => return Err(malformed),
        },
        VOUCHES if body.is_empty() => Entry::Vouches,
        DROP if body.len() >= 8 => Entry::Drop {
            version: read_u64(&body[..8]),
            key: &body[8..],
        },
        EPOCH if body.len() == 8 => Entry::Epoch(read_u64(body)),
        _ => return Err(malformed),
    };
    Ok(Some((entry, end)))
}

/// A STORE's body (after the writer, for a STORE_ONCE).
fn decode_store<'a>(body: &'a [u8], writer: Option<Writer<'a>>) -> Option<Entry<'a>> {
    if body.len() < STORE_FIXED {
        return None;
    }
    let version = read_u64(&body[..8]);
    let klen = read_u32(&body[8..12]) as usize;
    let rest = &body[STORE_FIXED..];
    if klen > rest.len() {
        return None;
    }
    let (key, value) = rest.split_at(klen);
    Some(Entry::Store {
        version,
        key,
        value,
        writer,
    })
}

/// A writer at the start of `body`, and what follows it.
fn decode_writer(body: &[u8]) -> Option<(Writer<'_>, &[u8])> {
    if body.len() < WRITER_FIXED {
        return None;
    }
    let (client, seq, acked) = (
        read_u64(&body[..8]),
        read_u64(&body[8..16]),
        read_u64(&body[16..24]),
    );
    let rest = &body[WRITER_FIXED..];
    let (kept, rest) = match body[24] {
        NO_KEPT => (None, rest),
        n if usize::from(n) <= rest.len() => {
            let (k, r) = rest.split_at(n.into());
            (Some(k), r)
        }
        _ => return None,
    };
    let writer = Writer {
        client,
        seq,
        acked,
        kept,
    };
    Some((writer, rest))
}

fn encode_writer(out: &mut Vec<u8>, w: &Writer<'_>) {
    out.extend_from_slice(&w.client.to_be_bytes());
    out.extend_from_slice(&w.seq.to_be_bytes());
    out.extend_from_slice(&w.acked.to_be_bytes());
    match w.kept {
        Some(k) => {
            let n = u8::try_from(k.len())
                .ok()
                .filter(|&n| n != NO_KEPT)
                .expect("a kept value of at most 254 bytes");
            out.push(n);
            out.extend_from_slice(k);
        }
        None => out.push(NO_KEPT),
    }
}

/// Where a STORE's key and value landed in the buffer it was encoded into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub record: Range<usize>,
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// Append a STORE record to `out`.
pub fn encode_store(out: &mut Vec<u8>, version: u64, key: &[u8], value: &[u8]) -> Placed {
    encode_store_of(out, None, version, key, value)
}

/// Append a STORE record to `out`, a STORE_ONCE with `writer`.
pub fn encode_store_of(
    out: &mut Vec<u8>,
    writer: Option<&Writer<'_>>,
    version: u64,
    key: &[u8],
    value: &[u8],
) -> Placed {
    let start = match writer {
        Some(w) => {
            let start = begin(out, STORE_ONCE);
            encode_writer(out, w);
            start
        }
        None => begin(out, STORE),
    };
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&len32(key.len()).to_be_bytes());
    let key_at = out.len();
    out.extend_from_slice(key);
    let value_at = out.len();
    out.extend_from_slice(value);
    finish(out, start);
    Placed {
        record: start..out.len(),
        key: key_at..value_at,
        value: value_at..out.len(),
    }
}

/// Append a DROP record to `out`; returns where its key is.
pub fn encode_drop(out: &mut Vec<u8>, version: u64, key: &[u8]) -> Range<usize> {
    let start = begin(out, DROP);
    out.extend_from_slice(&version.to_be_bytes());
    let key_at = out.len();
    out.extend_from_slice(key);
    finish(out, start);
    key_at..out.len()
}

/// Append an EPOCH record to `out`.
pub fn encode_epoch(out: &mut Vec<u8>, epoch: u64) {
    let start = begin(out, EPOCH);
    out.extend_from_slice(&epoch.to_be_bytes());
    finish(out, start);
}

/// Append a CLIENT record to `out`.
pub fn encode_client(out: &mut Vec<u8>, client: u64, acked: u64, floor: u64) {
    let start = begin(out, CLIENT);
    for n in [client, acked, floor] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    finish(out, start);
}

/// Append a WRITER record to `out`.
pub fn encode_writer_record(out: &mut Vec<u8>, writer: &Writer<'_>, version: u64) {
    let start = begin(out, WRITER);
    encode_writer(out, writer);
    out.extend_from_slice(&version.to_be_bytes());
    finish(out, start);
}

/// Append a VOUCHES record to `out`.
pub fn encode_vouches(out: &mut Vec<u8>) {
    let start = begin(out, VOUCHES);
    finish(out, start);
}

/// The bytes of a VOUCHES record.
pub const VOUCHES_LEN: usize = HEADER;

/// Reserve the header (crc and length filled in by [`finish`]).
fn begin(out: &mut Vec<u8>, kind: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.push(kind);
    start
}

fn finish(out: &mut [u8], start: usize) {
    let len = len32(out.len() - start - HEADER);
    out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
    let mut crc = Crc32c::default();
    crc.update(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.value().to_be_bytes());
}

/// Keys and values are bounded by the frame maximum, itself a `u32`.
fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("a record over 4 GiB")
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut buf = Vec::new();
        encode_store(&mut buf, 7, b"key", b"a value");
        encode_drop(&mut buf, 9, b"gone");
        encode_epoch(&mut buf, 3);
        encode_store(&mut buf, u64::MAX, b"", b"");
        buf
    }

    fn decode_all(mut buf: &[u8]) -> Vec<Entry<'_>> {
        let mut out = Vec::new();
        while let Some((e, used)) = decode(buf).unwrap() {
            out.push(e);
            buf = &buf[used..];
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        out
    }

    #[test]
    fn every_kind_round_trips() {
        let buf = sample();
        let want = [
            Entry::Store {
                version: 7,
                key: b"key",
                value: b"a value",
                writer: None,
            },
            Entry::Drop {
                version: 9,
                key: b"gone",
            },
            Entry::Epoch(3),
            Entry::Store {
                version: u64::MAX,
                key: b"",
                value: b"",
                writer: None,
            },
        ];
        assert_eq!(decode_all(&buf), want);
        assert_eq!(
            buf.len() as u64,
            store_len(3, 7) + (HEADER + 8 + 4) as u64 + (HEADER + 8) as u64 + store_len(0, 0)
        );
    }

    #[test]
    fn the_writers_records_round_trip() {
        let w = |seq, kept| Writer {
            client: 0xfeed,
            seq,
            acked: 3,
            kept,
        };
        let (w1, w2) = (w(5, None), w(6, Some(&b"41"[..])));
        let empty = w(7, Some(&b""[..]));
        let mut buf = Vec::new();
        encode_vouches(&mut buf);
        assert_eq!(buf.len(), VOUCHES_LEN);
        encode_client(&mut buf, 0xfeed, 3, 2);
        encode_writer_record(&mut buf, &w1, 10);
        let p = encode_store_of(&mut buf, Some(&w2), 11, b"k", b"42");
        assert_eq!(&buf[p.value], b"42");
        encode_store_of(&mut buf, Some(&empty), 12, b"", b"");
        let want = [
            Entry::Vouches,
            Entry::Client {
                client: 0xfeed,
                acked: 3,
                floor: 2,
            },
            Entry::Writer {
                writer: w1,
                version: 10,
            },
            Entry::Store {
                version: 11,
                key: b"k",
                value: b"42",
                writer: Some(w2),
            },
            Entry::Store {
                version: 12,
                key: b"",
                value: b"",
                writer: Some(empty),
            },
        ];
        assert_eq!(decode_all(&buf), want);
    }

    #[test]
    fn a_writer_whose_kept_value_overruns_its_record_is_malformed() {
        let mut buf = Vec::new();
        let start = begin(&mut buf, WRITER);
        buf.extend_from_slice(&[0; 24]);
        buf.push(9); // nine kept bytes, then only the eight of the version
        buf.extend_from_slice(&[0; 8]);
        finish(&mut buf, start);
        assert_eq!(decode(&buf), Err(Corrupt::Malformed { kind: WRITER }));
    }

    #[test]
    fn placed_ranges_point_at_the_key_and_value() {
        let mut buf = b"junk".to_vec();
        let p = encode_store(&mut buf, 1, b"k1", b"v-one");
        assert_eq!(&buf[p.key], b"k1");
        assert_eq!(&buf[p.value], b"v-one");
        assert_eq!(p.record, 4..buf.len());
        let k = encode_drop(&mut buf, 1, b"k2");
        assert_eq!(&buf[k], b"k2");
    }

    #[test]
    fn every_prefix_of_a_record_needs_more() {
        let mut buf = Vec::new();
        encode_store(&mut buf, 1, b"some key", b"some value");
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Ok(None), "prefix of {cut} bytes");
            assert!(needed(&buf[..cut]) > cut as u64);
        }
        assert_eq!(needed(&buf), buf.len() as u64);
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let mut clean = Vec::new();
        encode_store(&mut clean, 5, b"k", b"value bytes");
        for i in 0..clean.len() {
            for bit in 0..8 {
                let mut buf = clean.clone();
                buf[i] ^= 1 << bit;
                match decode(&buf) {
                    Err(Corrupt::Checksum { .. }) | Ok(None) => {}
                    other => panic!("byte {i} bit {bit}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_good_checksum_over_a_bad_body_is_malformed() {
        let bad = [
            (9u8, vec![]),
            (STORE, vec![0; 11]),
            (EPOCH, vec![0; 9]),
            (STORE_ONCE, vec![0; 24]),
            (CLIENT, vec![0; 23]),
            (VOUCHES, vec![0]),
        ];
        for (kind, body) in bad {
            let mut buf = Vec::new();
            let start = begin(&mut buf, kind);
            buf.extend_from_slice(&body);
            finish(&mut buf, start);
            assert_eq!(decode(&buf), Err(Corrupt::Malformed { kind }));
        }
        // A key length past the end of the body.
        let mut buf = Vec::new();
        let start = begin(&mut buf, STORE);
        buf.extend_from_slice(&1u64.to_be_bytes());
        buf.extend_from_slice(&100u32.to_be_bytes());
        buf.extend_from_slice(b"short");
        finish(&mut buf, start);
        assert_eq!(decode(&buf), Err(Corrupt::Malformed { kind: STORE }));
    }
}

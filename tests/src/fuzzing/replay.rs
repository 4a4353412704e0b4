//! The slave's log replay on an arbitrary data directory (the in-memory disk of the tests):
//! whatever the file holds, opening the store never panics and fails only for memory; a
//! corrupt or torn tail is cut and reported, never dropped in silence; and the store opened
//! again over what the first open left finds the same thing, with nothing left to cut.

use std::time::Instant;

use dsm_slave::disk::{crc32c, record, Fsync, MemDisk, Settings, COMPACTING, COMPACT_STEP, LOG};
use dsm_slave::Store;

use super::Input;

/// The first byte says how the log file is made: raw bytes; the log header then raw bytes;
/// or the header then records with good checksums built from the input, then damaged at
/// one place (a flipped byte, a cut, nine zero bytes) or not. It also says whether a
/// compaction's leftover file is there and whether the memory cap is tiny.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let mut file = Vec::new();
    match mode & 3 {
        0 => file.extend_from_slice(input.rest()),
        1 => {
            file.extend_from_slice(record::MAGIC);
            file.extend_from_slice(input.rest());
        }
        _ => {
            file.extend_from_slice(record::MAGIC);
            let damage = [input.byte(), input.byte(), input.byte()];
            while !input.is_empty() {
                let chunk = input.long_chunk();
                let (kind, body) = chunk.split_first().unwrap_or((&0, &[]));
                push_record(&mut file, kind % 9, body);
            }
            damage_at(&mut file, damage);
        }
    }
    let disk = MemDisk::new();
    disk.put_file(LOG, &file);
    if mode & 4 != 0 {
        disk.put_file(COMPACTING, &file[..file.len() / 2]);
    }
    let max_memory = if mode & 8 != 0 { 4096 } else { u64::MAX };
    let settings = Settings {
        fsync: Fsync::Never,
        compact_min: u64::MAX,
        compact_step: COMPACT_STEP,
        failpoint: None,
    };

    let (first, r) = match Store::open(Box::new(disk.clone()), settings, max_memory, Instant::now())
    {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::OutOfMemory => return,
        Err(e) => panic!(
            "opening a store over {} bytes of log failed: {e}",
            file.len()
        ),
    };
    assert!(
        !disk.names().iter().any(|n| n == COMPACTING),
        "{COMPACTING} left behind"
    );
    if !r.set_aside {
        assert!(
            r.len <= file.len().max(record::MAGIC.len()) as u64,
            "replayed past the end"
        );
        // What replay did not take, it said it cut, unless it is zeros all the way (the end of
        // a log grown ahead of its appends).
        let tail = file.get(r.len as usize..).unwrap_or_default();
        assert!(
            r.cut.is_some() || tail.iter().all(|&b| b == 0),
            "{} bytes after offset {} were dropped without a word (file of {} bytes)",
            tail.len(),
            r.len,
            file.len()
        );
        if let Some(cut) = &r.cut {
            assert_eq!(cut.at, r.len, "the cut starts where the good records end");
            assert_eq!(
                cut.at + cut.bytes,
                file.len() as u64,
                "the cut runs to the end"
            );
        }
    }
    let (keys, epoch) = (first.len(), first.epoch());
    drop(first);

    let (again, r2) = Store::open(Box::new(disk.clone()), settings, max_memory, Instant::now())
        .expect("a log the store has opened once opens again");
    assert!(r2.cut.is_none(), "the second open cut again: {:?}", r2.cut);
    assert!(!r2.set_aside, "the second open set the log aside");
    assert_eq!(
        (again.len(), again.epoch()),
        (keys, epoch),
        "the second open differs"
    );
    if !r.set_aside {
        // A file too short for the header is started afresh: the header and VOUCHES.
        let fresh = r.len < record::MAGIC.len() as u64;
        assert_eq!(
            r2.records,
            r.records + u64::from(fresh),
            "the second open replayed other records"
        );
    }
}

/// One record with a good checksum: `kind` 1 to 7 are STORE, DROP, EPOCH, STORE_ONCE, CLIENT,
/// WRITER, VOUCHES (0 and 8 are not kinds a slave writes).
fn push_record(file: &mut Vec<u8>, kind: u8, body: &[u8]) {
    let mut covered = Vec::with_capacity(5 + body.len());
    covered.extend_from_slice(&(body.len() as u32).to_be_bytes());
    covered.push(kind);
    covered.extend_from_slice(body);
    file.extend_from_slice(&crc32c(&covered).to_be_bytes());
    file.extend_from_slice(&covered);
}

/// Damage the file at one place: `how` picks what, `at` (two bytes) where.
fn damage_at(file: &mut Vec<u8>, [how, hi, lo]: [u8; 3]) {
    let at = usize::from(u16::from_be_bytes([hi, lo])) % (file.len() + 1);
    match how % 4 {
        0 => {}
        1 if at < file.len() => file[at] ^= how | 1,
        2 => file.truncate(at),
        _ => {
            let zeros = [0u8; record::HEADER];
            file.splice(at..at, zeros);
        }
    }
}

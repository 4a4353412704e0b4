//! The log against an in-memory disk: round trips, a torn tail at every byte of the last
//! record, a flipped byte anywhere, foreign and half-made files, compaction under load with a
//! crash (kill -9 or power cut) after every loop turn and at every failpoint, the epoch, a
//! full disk and the sync policies.

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::*;
use crate::table::Table;

type Dump = Vec<(Vec<u8>, u64, Vec<u8>)>;

fn settings(fsync: Fsync) -> Settings {
    Settings {
        fsync,
        compact_min: u64::MAX,
        compact_step: COMPACT_STEP,
        failpoint: None,
    }
}

fn open(disk: &MemDisk, s: Settings) -> (Table, u64, Replayed, Durable) {
    let (mut r, d) = Durable::open(Box::new(disk.clone()), s, Instant::now()).unwrap();
    let table = std::mem::take(&mut r.table);
    (table, r.epoch, r, d)
}

/// What a new log holds: the header, and VOUCHES.
fn fresh_log() -> Vec<u8> {
    let mut log = record::MAGIC.to_vec();
    record::encode_vouches(&mut log);
    log
}

/// A store's writers' records, when a test has none.
fn no_writers() -> Writers {
    Writers::new(Instant::now())
}

fn dump(t: &Table) -> Dump {
    let mut out: Dump = (0..t.len())
        .map(|i| t.at(i).unwrap())
        .map(|r| (r.key().to_vec(), r.version(), r.value().to_vec()))
        .collect();
    out.sort();
    out
}

/// Stage a STORE as the store does: room reserved, record built.
fn stage(d: &mut Durable, t: &mut Table, version: u64, key: &[u8], value: &[u8]) {
    let new = t.get(key).is_none();
    if new {
        t.try_reserve(d.staged_new_keys() + 1).unwrap();
    }
    let record = Record::try_new(version, key, value).unwrap();
    d.stage_store(version, record, None, 0, new);
}

fn commit(d: &mut Durable, t: &mut Table) -> Vec<Answer> {
    let mut answers = Vec::new();
    assert_eq!(d.commit(t, &mut answers), None);
    answers
}

#[test]
fn a_log_replays_to_what_was_committed() {
    let disk = MemDisk::new();
    let (mut t, epoch, r, mut d) = open(&disk, settings(Fsync::Always));
    assert_eq!((t.len(), epoch, r.records, r.cut.clone()), (0, 0, 0, None));
    assert_eq!(
        disk.file(LOG).unwrap(),
        fresh_log(),
        "a new log has its header"
    );
    assert!(r.writers.complete(), "and vouches for what it will hold");
    stage(&mut d, &mut t, 1, b"a", b"one");
    stage(&mut d, &mut t, 2, b"b", b"two");
    d.note_epoch(3);
    let answers = commit(&mut d, &mut t);
    assert_eq!(
        answers,
        [
            Answer::Ack { req: 1, version: 1 },
            Answer::Ack { req: 2, version: 2 }
        ]
    );
    stage(&mut d, &mut t, 5, b"a", b"newer and longer");
    stage(&mut d, &mut t, 1, b"b", b"older: not applied");
    d.stage_drop(9, b"c"); // not held
    let answers = commit(&mut d, &mut t);
    assert_eq!(answers[1], Answer::Ack { req: 1, version: 2 }, "b keeps 2");
    d.stage_drop(1, b"b"); // older than held: stays
    d.stage_drop(5, b"a"); // held at 5: goes
    commit(&mut d, &mut t);
    let want = dump(&t);
    assert_eq!(want, [(b"b".to_vec(), 2, b"two".to_vec())]);
    for crashed in [disk.after_process_crash(), disk.after_power_cut()] {
        let (t2, epoch, r, _) = open(&crashed, settings(Fsync::Always));
        assert_eq!(dump(&t2), want);
        assert_eq!(epoch, 3);
        assert_eq!(r.records, 9, "VOUCHES, then 8 changes");
        assert_eq!(r.cut, None);
        assert!(r.writers.complete());
    }
}

/// A log of `n` STOREs (keys k0..), and where each record starts.
fn log_of(n: usize) -> (Vec<u8>, Vec<usize>) {
    let mut buf = record::MAGIC.to_vec();
    let mut starts = Vec::new();
    for i in 0..n {
        starts.push(buf.len());
        let value = format!("value number {i}");
        record::encode_store(
            &mut buf,
            i as u64 + 1,
            format!("k{i}").as_bytes(),
            value.as_bytes(),
        );
    }
    (buf, starts)
}

#[test]
fn a_torn_last_record_is_cut_at_every_byte() {
    let (full, starts) = log_of(3);
    let last = starts[2];
    for end in last..full.len() {
        let disk = MemDisk::new();
        disk.put_file(LOG, &full[..end]);
        let (mut t, _, r, mut d) = open(&disk, settings(Fsync::Always));
        assert_eq!(t.len(), 2, "torn at {end}");
        assert_eq!(r.len, last as u64);
        match r.cut {
            None => assert_eq!(end, last, "nothing to cut"),
            Some(cut) => {
                assert_eq!((cut.at, cut.bytes), (last as u64, (end - last) as u64));
                assert!(cut.why.contains("torn"), "{}", cut.why);
            }
        }
        assert_eq!(disk.file(LOG).unwrap(), &full[..last], "truncated");
        // What comes next is appended after the good records.
        stage(&mut d, &mut t, 9, b"next", b"value");
        commit(&mut d, &mut t);
        let (t2, ..) = open(&disk.after_power_cut(), settings(Fsync::Always));
        assert_eq!(dump(&t2), dump(&t));
        assert_eq!(t2.len(), 3);
    }
}

#[test]
fn a_flipped_byte_cuts_from_its_record_on() {
    let (clean, starts) = log_of(10);
    for k in 0..10 {
        let end = starts.get(k + 1).copied().unwrap_or(clean.len());
        // Every byte of record k: the checksum, the length, the kind, version, key, value.
        for at in starts[k]..end {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x20;
            let disk = MemDisk::new();
            disk.put_file(LOG, &bytes);
            let (t, _, r, _) = open(&disk, settings(Fsync::Always));
            assert_eq!(t.len(), k, "byte {at} of record {k}");
            let cut = r.cut.expect("a cut");
            assert_eq!(cut.at, starts[k] as u64, "byte {at}");
            assert_eq!(cut.bytes, (clean.len() - starts[k]) as u64);
            if at >= starts[k] + 9 {
                // The length was intact: every later record was seen and counted.
                assert_eq!(cut.records_after, 9 - k as u64, "byte {at}");
                assert!(cut.why.contains("checksum"), "{}", cut.why);
            }
            assert_eq!(disk.file(LOG).unwrap(), &clean[..starts[k]]);
        }
    }
}

#[test]
fn a_half_made_header_starts_empty_and_a_foreign_file_is_set_aside() {
    let disk = MemDisk::new();
    disk.put_file(LOG, b"DSMS");
    let (t, _, r, _) = open(&disk, settings(Fsync::Always));
    assert!(t.is_empty());
    assert_eq!(r.cut.map(|c| c.bytes), Some(4));
    assert_eq!(disk.file(LOG).unwrap(), fresh_log());

    let disk = MemDisk::new();
    disk.put_file(LOG, b"not a log at all, but someone's notes");
    let (t, _, r, _) = open(&disk, settings(Fsync::Always));
    assert!(t.is_empty());
    assert!(r.set_aside);
    assert_eq!(
        disk.file(SET_ASIDE).unwrap(),
        b"not a log at all, but someone's notes"
    );
    assert_eq!(disk.file(LOG).unwrap(), fresh_log());
}

#[test]
fn a_compaction_file_left_by_a_crash_is_removed() {
    let (full, _) = log_of(4);
    let disk = MemDisk::new();
    disk.put_file(LOG, &full);
    disk.put_file(COMPACTING, &full[..20]);
    let (t, _, r, _) = open(&disk, settings(Fsync::Always));
    assert!(r.removed_temp);
    assert_eq!(t.len(), 4);
    assert_eq!(disk.names(), [LOG]);
}

#[test]
fn the_epoch_survives_a_restart_without_any_store() {
    let disk = MemDisk::new();
    let (mut t, ..) = open(&disk, settings(Fsync::Never));
    let (_, _, _, mut d) = open(&disk, settings(Fsync::Never));
    d.note_epoch(7);
    let mut answers = Vec::new();
    d.end_turn(&mut t, &mut answers, &no_writers(), Instant::now());
    let (_, epoch, ..) = open(&disk.after_process_crash(), settings(Fsync::Never));
    assert_eq!(epoch, 7);
    d.note_epoch(3); // lower: nothing to write
    disk.clear_ops();
    d.end_turn(&mut t, &mut answers, &no_writers(), Instant::now());
    assert!(disk.ops().is_empty(), "{:?}", disk.ops());
}

#[test]
fn always_writes_and_syncs_a_turn_once_then_answers() {
    let disk = MemDisk::new();
    let (mut t, _, _, mut d) = open(&disk, settings(Fsync::Always));
    disk.clear_ops();
    for i in 0..10u64 {
        stage(&mut d, &mut t, i + 1, format!("k{i}").as_bytes(), b"v");
    }
    assert!(t.is_empty(), "nothing applied before the write");
    let mut answers = Vec::new();
    d.end_turn(&mut t, &mut answers, &no_writers(), Instant::now());
    assert!(
        matches!(disk.ops()[..], [Op::Append(_), Op::StartSync]),
        "{:?}",
        disk.ops()
    );
    assert_eq!(answers.len(), 10);
    assert_eq!(t.len(), 10);
}

#[test]
fn always_pipelines_the_next_turns_behind_a_sync_and_acks_only_what_it_covered() {
    let t0 = Instant::now();
    let disk = MemDisk::new();
    let (mut t, _, _, mut d) = open(&disk, settings(Fsync::Always));
    let header = disk.file(LOG).unwrap().len();
    disk.clear_ops();
    disk.hold_syncs(true);
    let mut answers = Vec::new();
    stage(&mut d, &mut t, 1, b"a", b"first turn");
    stage(&mut d, &mut t, 2, b"b", b"first turn");
    d.end_turn(&mut t, &mut answers, &no_writers(), t0);
    assert!(matches!(disk.ops()[..], [Op::Append(_), Op::StartSync]));
    let first = disk.file(LOG).unwrap().len();
    // The sync is slow: two more turns are read and written behind it, not ACKed.
    for (turn, version) in [(1u64, 3u64), (2, 4)] {
        stage(&mut d, &mut t, version, b"c", b"a later turn");
        d.end_turn(
            &mut t,
            &mut answers,
            &no_writers(),
            t0 + Duration::from_millis(turn),
        );
    }
    assert_eq!(
        disk.ops()[2..],
        [Op::Append(34), Op::StartSync, Op::Append(34)],
        "written at once; one sync queued behind the one under way, widened for the next turn"
    );
    assert!(
        answers.is_empty() && t.is_empty(),
        "nothing ACKed or applied"
    );
    assert_eq!(
        d.staged_new_keys(),
        4,
        "the batches in flight count for --max-memory"
    );
    assert_eq!(disk.synced_len(LOG), header);
    disk.hold_syncs(false);
    d.end_turn(
        &mut t,
        &mut answers,
        &no_writers(),
        t0 + Duration::from_millis(3),
    );
    // The first sync covered the first turn only; the queued one, begun as it ended, the
    // others: no sync was started after the release.
    assert_eq!(disk.ops().len(), 5, "{:?}", disk.ops());
    assert_eq!(
        answers,
        [
            Answer::Ack { req: 1, version: 1 },
            Answer::Ack { req: 2, version: 2 },
            Answer::Ack { req: 3, version: 3 },
            Answer::Ack { req: 4, version: 4 },
        ]
    );
    assert!(disk.synced_len(LOG) > first);
    assert_eq!(t.get(b"c").map(|(v, _)| v), Some(4));
    assert_eq!(d.staged_new_keys(), 0);
}

#[test]
fn a_failed_pipelined_sync_fails_exactly_the_stores_it_covered() {
    let t0 = Instant::now();
    let disk = MemDisk::new();
    let (mut t, _, _, mut d) = open(&disk, settings(Fsync::Always));
    let mut answers = Vec::new();
    stage(&mut d, &mut t, 1, b"kept", b"acked before");
    d.end_turn(&mut t, &mut answers, &no_writers(), t0);
    assert_eq!(answers, [Answer::Ack { req: 1, version: 1 }]);
    answers.clear();
    disk.hold_syncs(true);
    stage(&mut d, &mut t, 2, b"a", b"covered by the failing sync");
    stage(&mut d, &mut t, 3, b"kept", b"covered by the failing sync");
    d.end_turn(&mut t, &mut answers, &no_writers(), t0);
    stage(&mut d, &mut t, 4, b"b", b"written after it began");
    d.end_turn(&mut t, &mut answers, &no_writers(), t0);
    assert!(answers.is_empty());
    disk.fail_next_sync();
    disk.hold_syncs(false);
    let why = d
        .end_turn(&mut t, &mut answers, &no_writers(), t0)
        .expect("refused");
    assert!(why.contains("fdatasync"), "{why}");
    assert_eq!(
        answers,
        [
            Answer::Refused { req: 2 },
            Answer::Refused { req: 3 },
            Answer::Ack { req: 4, version: 4 }
        ],
        "the batch written after the failed sync began is written again and synced"
    );
    assert_eq!(t.get(b"a"), None, "not applied");
    assert_eq!(t.get(b"kept").map(|(v, _)| v), Some(1));
    let want = dump(&t);
    for (how, crashed) in [
        ("kill -9", disk.after_process_crash()),
        ("power cut", disk.after_power_cut()),
    ] {
        let (t2, _, r, _) = open(&crashed, settings(Fsync::Always));
        assert_eq!(dump(&t2), want, "{how}: a refused STORE never comes back");
        assert_eq!(r.cut, None, "{how}");
    }
}

/// A turn of random STOREs only (no DROPs: a refused batch's DROPs are applied without the
/// disk, which [`a_full_disk_refuses_the_batch_applies_nothing_and_recovers`] covers).
fn random_stores(rng: &mut Rng, d: &mut Durable, t: &mut Table, version: &mut u64) {
    for _ in 0..1 + rng.below(6) {
        let key = format!("key-{}", rng.below(150)).into_bytes();
        *version += 1;
        let value = vec![b'a' + (*version % 26) as u8; 10 + rng.below(120) as usize];
        stage(d, t, *version, &key, &value);
    }
}

#[test]
fn always_applies_only_what_is_synced_through_slow_and_failed_syncs_and_compactions() {
    let s = Settings {
        compact_min: 4096,
        compact_step: 600,
        ..settings(Fsync::Always)
    };
    let disk = MemDisk::new();
    let (mut t, _, _, mut d) = open(&disk, s);
    let (mut rng, mut version, mut answers) = (Rng(5), 0, Vec::new());
    let t0 = Instant::now();
    let (mut acked, mut refused, mut held) = (0, 0, 0);
    for turn in 0..800u64 {
        let hold = rng.below(3) == 0;
        held += usize::from(hold);
        disk.hold_syncs(hold);
        if rng.below(25) == 0 {
            disk.fail_next_sync();
        }
        random_stores(&mut rng, &mut d, &mut t, &mut version);
        d.end_turn(
            &mut t,
            &mut answers,
            &no_writers(),
            t0 + Duration::from_millis(turn),
        );
        for a in answers.drain(..) {
            match a {
                Answer::Ack { .. } => acked += 1,
                Answer::Refused { .. } => refused += 1,
            }
        }
        // What is applied (and ACKed) is exactly what a power cut leaves.
        let (t2, _, r, _) = open(&disk.after_power_cut(), s);
        assert_eq!(dump(&t2), dump(&t), "power cut after turn {turn}");
        assert_eq!(r.cut, None, "after turn {turn}");
    }
    let renames = disk
        .ops()
        .iter()
        .filter(|o| matches!(o, Op::Rename(..)))
        .count();
    assert!(renames >= 3, "{renames} compactions");
    assert!(
        acked > 1000 && refused > 10 && held > 200,
        "{acked} {refused} {held}"
    );
}

#[test]
fn interval_syncs_the_oldest_write_within_the_interval() {
    let t0 = Instant::now();
    let sec = Duration::from_secs(1);
    let disk = MemDisk::new();
    let (mut t, _, _, mut d) = open(&disk, settings(Fsync::Interval(sec)));
    let mut answers = Vec::new();
    stage(&mut d, &mut t, 1, b"k", b"v");
    d.end_turn(&mut t, &mut answers, &no_writers(), t0);
    assert_eq!(answers.len(), 1, "answered once written");
    assert_eq!(d.next_deadline(), Some(t0 + sec));
    let (lost, ..) = open(&disk.after_power_cut(), settings(Fsync::Never));
    assert!(lost.is_empty(), "not synced yet: a power cut loses it");
    let (kept, ..) = open(&disk.after_process_crash(), settings(Fsync::Never));
    assert_eq!(kept.len(), 1, "a kill -9 loses nothing written");
    d.end_turn(&mut t, &mut answers, &no_writers(), t0 + sec);
    assert_eq!(d.next_deadline(), None);
    let (synced, ..) = open(&disk.after_power_cut(), settings(Fsync::Never));
    assert_eq!(synced.len(), 1);
}

#[test]
fn a_full_disk_refuses_the_batch_applies_nothing_and_recovers() {
    let disk = MemDisk::new();
    let (mut t, _, _, mut d) = open(&disk, settings(Fsync::Always));
    stage(&mut d, &mut t, 1, b"acked", b"kept");
    commit(&mut d, &mut t);
    let len = disk.file(LOG).unwrap().len() as u64;
    disk.set_capacity(Some(len + 30));
    stage(
        &mut d,
        &mut t,
        2,
        b"acked",
        b"a newer value that does not fit",
    );
    stage(&mut d, &mut t, 3, b"new", b"neither does this");
    d.stage_drop(1, b"acked"); // a DROP needs no disk
    let mut answers = Vec::new();
    let why = d.commit(&mut t, &mut answers).expect("refused");
    assert!(why.contains("No space left"), "{why}");
    assert_eq!(
        answers,
        [Answer::Refused { req: 2 }, Answer::Refused { req: 3 }]
    );
    assert_eq!(dump(&t), [], "the DROP was applied, the STOREs not");
    assert_eq!(
        disk.file(LOG).unwrap().len() as u64,
        len,
        "no partial record"
    );
    disk.set_capacity(None);
    stage(&mut d, &mut t, 4, b"later", b"fits again");
    assert_eq!(commit(&mut d, &mut t), [Answer::Ack { req: 4, version: 4 }]);
    let (t2, ..) = open(&disk.after_power_cut(), settings(Fsync::Always));
    // The DROP was never written: the stale copy comes back, and the master drops it again.
    assert_eq!(
        dump(&t2),
        [
            (b"acked".to_vec(), 1, b"kept".to_vec()),
            (b"later".to_vec(), 4, b"fits again".to_vec())
        ]
    );
}

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// One turn of random changes: STOREs of new and held keys (some older than held), DROPs
/// of held keys (some of an older version, which stay).
fn random_turn(rng: &mut Rng, d: &mut Durable, t: &mut Table, version: &mut u64) {
    for _ in 0..1 + rng.below(6) {
        let key = format!("key-{}", rng.below(150)).into_bytes();
        match rng.below(10) {
            0..=2 => {
                let held = t.get(&key).map(|(v, _)| v);
                if let Some(v) = held {
                    d.stage_drop(v - rng.below(2), &key);
                }
            }
            3 => stage(d, t, rng.below(*version + 1), &key, b"maybe older"),
            _ => {
                *version += 1;
                let value = vec![b'a' + (*version % 26) as u8; 10 + rng.below(120) as usize];
                stage(d, t, *version, &key, &value);
            }
        }
    }
}

#[test]
fn compaction_under_load_survives_a_crash_after_any_turn() {
    let s = Settings {
        compact_min: 4096,
        compact_step: 600,
        ..settings(Fsync::Always)
    };
    let disk = MemDisk::new();
    let (mut t, _, _, mut d) = open(&disk, s);
    let (mut rng, mut version, mut answers) = (Rng(42), 0, Vec::new());
    let t0 = Instant::now();
    let mut compacting_turns = 0;
    for turn in 0..700u64 {
        random_turn(&mut rng, &mut d, &mut t, &mut version);
        if turn % 50 == 0 {
            d.note_epoch(turn);
        }
        d.end_turn(
            &mut t,
            &mut answers,
            &no_writers(),
            t0 + Duration::from_millis(turn),
        );
        compacting_turns += usize::from(d.compacting());
        let want = dump(&t);
        for (how, crashed) in [
            ("kill -9", disk.after_process_crash()),
            ("power cut", disk.after_power_cut()),
        ] {
            let (t2, epoch, r, _) = open(&crashed, s);
            assert_eq!(dump(&t2), want, "{how} after turn {turn}");
            assert_eq!(epoch, turn / 50 * 50, "{how} after turn {turn}");
            assert_eq!(r.cut, None, "{how} after turn {turn}");
        }
    }
    let renames = disk
        .ops()
        .iter()
        .filter(|o| matches!(o, Op::Rename(..)))
        .count();
    assert!(renames >= 3, "{renames} compactions");
    assert!(
        compacting_turns > 3 * renames,
        "{compacting_turns} turns compacting"
    );
    // Compacted, the log is about what the table holds.
    let live: u64 = (0..t.len())
        .map(|i| t.at(i).unwrap())
        .map(|r| record::store_len(r.key().len(), r.value().len()))
        .sum();
    assert!(d.log_len() < 2 * (live + BASE_BYTES) + 4096);
}

#[test]
fn compaction_and_interval_syncs_share_the_syncer_and_a_kill_9_loses_nothing() {
    let sec = Duration::from_millis(20);
    let s = Settings {
        compact_min: 4096,
        compact_step: 600,
        ..settings(Fsync::Interval(sec))
    };
    let disk = MemDisk::new();
    let (mut t, _, _, mut d) = open(&disk, s);
    let (mut rng, mut version, mut answers) = (Rng(9), 0, Vec::new());
    let t0 = Instant::now();
    let mut held_turns = 0;
    for turn in 0..600u64 {
        // The syncer is slow now and then: syncs take several turns to end.
        let hold = rng.below(3) == 0;
        held_turns += usize::from(hold);
        disk.hold_syncs(hold);
        random_turn(&mut rng, &mut d, &mut t, &mut version);
        d.end_turn(
            &mut t,
            &mut answers,
            &no_writers(),
            t0 + Duration::from_millis(5 * turn),
        );
        let (t2, _, r, _) = open(&disk.after_process_crash(), s);
        assert_eq!(dump(&t2), dump(&t), "kill -9 after turn {turn}");
        assert_eq!(r.cut, None);
    }
    let ops = disk.ops();
    let renames = ops.iter().filter(|o| matches!(o, Op::Rename(..))).count();
    let background = ops.iter().filter(|o| **o == Op::StartSync).count();
    assert!(renames >= 3, "{renames} compactions");
    assert!(
        background > renames + 20,
        "{background} syncs on the syncer"
    );
    assert!(held_turns > 100);
}

#[test]
fn a_crash_at_each_failpoint_leaves_a_replayable_log() {
    for fp in [
        Failpoint::CompactMidway,
        Failpoint::CompactBeforeRename,
        Failpoint::CompactAfterRename,
    ] {
        let s = Settings {
            compact_min: 4096,
            compact_step: 600,
            failpoint: Some(fp),
            ..settings(Fsync::Always)
        };
        let disk = MemDisk::new();
        let (mut t, _, _, mut d) = open(&disk, s);
        let (mut rng, mut version, mut answers) = (Rng(7), 0, Vec::new());
        let now = Instant::now();
        // Quiet: the panic stands for the abort a real process does.
        let hook = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        let crashed = (0..10_000).any(|_| {
            random_turn(&mut rng, &mut d, &mut t, &mut version);
            panic::catch_unwind(AssertUnwindSafe(|| {
                d.end_turn(&mut t, &mut answers, &no_writers(), now);
            }))
            .is_err()
        });
        panic::set_hook(hook);
        assert!(crashed, "{fp:?} never reached");
        let names = disk.names();
        match fp {
            Failpoint::CompactAfterRename => assert_eq!(names, [LOG], "{fp:?}"),
            _ => assert_eq!(names, [LOG, COMPACTING], "{fp:?}"),
        }
        let want = dump(&t);
        for (how, crashed) in [
            ("kill -9", disk.after_process_crash()),
            ("power cut", disk.after_power_cut()),
        ] {
            let (t2, _, r, _) = open(&crashed, settings(Fsync::Always));
            assert_eq!(dump(&t2), want, "{how} at {fp:?}");
            assert_eq!(r.cut, None, "{how} at {fp:?}");
            assert_eq!(
                crashed.names(),
                [LOG],
                "{how} at {fp:?}: the temporary file goes"
            );
        }
    }
}

#[test]
fn zeros_after_the_last_record_end_the_log_quietly_and_are_cut_off() {
    let (full, _) = log_of(5);
    for zeros in [1, 8, 9, 10, 4096] {
        let disk = MemDisk::new();
        let mut bytes = full.clone();
        bytes.resize(full.len() + zeros, 0);
        disk.put_file(LOG, &bytes);
        let (t, _, r, _) = open(&disk, settings(Fsync::Always));
        assert_eq!((t.len(), r.records), (5, 5), "{zeros} zeros");
        assert_eq!(r.cut, None, "{zeros} zeros: not a torn tail");
        assert_eq!(disk.file(LOG).unwrap(), full, "{zeros} zeros cut off");
    }
    // A record that is not all zeros is still a torn tail, zeros or not after it.
    let disk = MemDisk::new();
    let mut bytes = full.clone();
    bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0]);
    bytes.resize(bytes.len() + 100, 0);
    disk.put_file(LOG, &bytes);
    let (t, _, r, _) = open(&disk, settings(Fsync::Always));
    assert_eq!(t.len(), 5);
    assert!(r.cut.is_some());
}

/// Found by fuzzing (fuzz/regressions/slave_replay): nine zero bytes where a record header
/// should be, then records again, ended replay as the zeros of a grown-ahead file do, and
/// the records after them were dropped without a word. A hole in the log is a cut, reported.
#[test]
fn zeros_between_records_are_a_cut_not_the_end_of_the_log() {
    let (full, _) = log_of(5);
    let (two, _) = log_of(2);
    for zeros in [9, 10, 4096] {
        let disk = MemDisk::new();
        let mut bytes = two.clone();
        bytes.resize(two.len() + zeros, 0);
        bytes.extend_from_slice(&full[two.len()..]);
        disk.put_file(LOG, &bytes);
        let (t, _, r, _) = open(&disk, settings(Fsync::Always));
        assert_eq!((t.len(), r.records), (2, 2), "{zeros} zeros");
        let cut = r
            .cut
            .unwrap_or_else(|| panic!("{zeros} zeros: the records after go unsaid"));
        assert_eq!(
            (cut.at, cut.bytes),
            (two.len() as u64, (bytes.len() - two.len()) as u64)
        );
        let data_at = two.len() + zeros;
        assert!(
            cut.why.contains(&format!("data again at offset {data_at}")),
            "{}",
            cut.why
        );
        assert_eq!(
            disk.file(LOG).unwrap(),
            two,
            "{zeros} zeros: cut off with what follows"
        );
    }
}

#[test]
fn a_preallocating_disk_grows_the_log_ahead_and_replays_it_whole() {
    let dir = std::env::temp_dir().join(format!("dsm-prealloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = Settings {
        compact_min: 64 * 1024,
        compact_step: 4096,
        ..settings(Fsync::Always)
    };
    let fs = |dir: &std::path::Path| {
        let mut disk = FsDisk::open(dir, None).unwrap();
        disk.preallocate(8192);
        let (mut r, d) = Durable::open(Box::new(disk), s, Instant::now()).unwrap();
        (std::mem::take(&mut r.table), r, d)
    };
    let (mut t, _, mut d) = fs(&dir);
    let (mut rng, mut version, mut answers) = (Rng(3), 0, Vec::new());
    let t0 = Instant::now();
    let mut saw_zeros = false;
    for turn in 0..400u64 {
        random_turn(&mut rng, &mut d, &mut t, &mut version);
        d.end_turn(
            &mut t,
            &mut answers,
            &no_writers(),
            t0 + Duration::from_millis(turn),
        );
        let file_len = std::fs::metadata(dir.join(LOG)).unwrap().len();
        assert!(file_len >= d.log_len(), "turn {turn}");
        saw_zeros |= file_len > d.log_len();
        if turn % 50 == 49 {
            // As a kill -9 leaves it: the zeros ahead are there, and replay stops at them.
            let (t2, r, _) = fs(&dir);
            assert_eq!(dump(&t2), dump(&t), "turn {turn}");
            assert_eq!(r.cut, None, "turn {turn}");
        }
    }
    assert!(saw_zeros, "the log was grown ahead");
    drop(d);
    std::fs::remove_dir_all(&dir).unwrap();
}

//! The store's answers to the master's frames, memory-only: STORE, FETCH, fencing, the
//! inventory report, DROP.

use super::*;

fn store(req: u64, version: u64, key: &str, value: &str) -> Frame {
    Frame::new(
        req,
        Body::Store {
            epoch: 1,
            version,
            key: key.into(),
            value: value.into(),
        },
    )
}

fn fetch(req: u64, key: &str) -> Frame {
    Frame::new(
        req,
        Body::Fetch {
            epoch: 1,
            key: key.into(),
        },
    )
}

#[test]
fn stores_acks_and_fetches() {
    let mut s = Store::default();
    assert_eq!(
        s.on_frame(store(1, 5, "k", "v")),
        Some(Frame::new(1, Body::Ack { version: 5 }))
    );
    assert_eq!(
        s.on_frame(fetch(2, "k")),
        Some(Frame::new(
            2,
            Body::Fetched {
                version: 5,
                value: b"v".to_vec()
            }
        ))
    );
    assert_eq!(
        s.on_frame(fetch(3, "nope")),
        Some(Frame::new(3, Body::NotFound))
    );
}

#[test]
fn borrowed_frames_get_the_answers_owned_ones_do() {
    let frames = [
        store(1, 5, "k", "v"),
        fetch(2, "k"),
        fetch(3, "nope"),
        store(4, 3, "k", "old"),
        Frame::new(5, Body::Ping),
        Frame::new(
            6,
            Body::Fetch {
                epoch: 0,
                key: b"k".to_vec(),
            },
        ),
        Frame::new(7, Body::Read { key: b"k".to_vec() }),
    ];
    let (mut owned, mut borrowed) = (Store::default(), Store::default());
    for frame in frames {
        let mut buf = Vec::new();
        dsm_wire::encode(&frame, &mut buf);
        let (decoded, _) = dsm_wire::decode_borrowed(&buf, dsm_wire::DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        let got = borrowed.respond_decoded(decoded).map(Reply::into_frame);
        assert_eq!(got, owned.on_frame(frame.clone()), "{frame:?}");
    }
    assert_eq!(borrowed.version_of(b"k"), Some(5));
}

#[test]
fn an_older_version_never_replaces_a_newer_one() {
    let mut s = Store::default();
    s.on_frame(store(1, 9, "k", "new"));
    // The ACK reports the version held, so the master can tell.
    assert_eq!(
        s.on_frame(store(2, 3, "k", "old")),
        Some(Frame::new(2, Body::Ack { version: 9 }))
    );
    assert_eq!(s.version_of(b"k"), Some(9));
    let Some(Frame {
        body: Body::Fetched { value, .. },
        ..
    }) = s.on_frame(fetch(3, "k"))
    else {
        panic!("expected FETCHED");
    };
    assert_eq!(value, b"new");
}

fn welcome(epoch: u64, inventory: bool) -> Frame {
    Frame::new(
        0,
        Body::Welcome {
            epoch,
            inventory,
            standby: false,
            lease_ms: 0,
            proof: None,
        },
    )
}

/// Reads the whole report of what is held, frame by frame.
fn report(s: &mut Store) -> Vec<(Vec<u8>, u64)> {
    let mut all = Vec::new();
    while let Some(frame) = s.next_inventory() {
        let Body::Inventory { done, entries } = frame.body else {
            panic!("expected INVENTORY, got {frame:?}");
        };
        all.extend(entries);
        if done {
            assert!(!s.reporting());
            break;
        }
    }
    all.sort();
    all
}

#[test]
fn a_welcome_keeps_the_data_and_old_epochs_are_refused() {
    let mut s = Store::default();
    s.on_frame(store(1, 1, "a", "1"));
    s.on_frame(welcome(2, false));
    assert_eq!(s.version_of(b"a"), Some(1), "a WELCOME never drops data");
    assert!(!s.reporting());
    let reply = s.on_frame(store(2, 2, "a", "x")).unwrap();
    assert!(matches!(
        reply.body,
        Body::Error {
            code: ErrorCode::StaleEpoch,
            ..
        }
    ));
    assert_eq!(
        s.version_of(b"a"),
        Some(1),
        "a fenced STORE must not be applied"
    );
}

#[test]
fn the_inventory_reports_everything_and_drops_wait_for_its_end() {
    let mut s = Store::default();
    for i in 0..5000u64 {
        s.on_frame(store(i, i + 1, &format!("key-{i}"), "v"));
    }
    s.on_frame(welcome(1, true));
    assert!(s.reporting());
    // A DROP in the middle of the report must not make any key go unreported.
    let first = s.next_inventory().unwrap();
    let Body::Inventory { done: false, .. } = first.body else {
        panic!("5000 keys fit in one frame? {first:?}");
    };
    s.on_frame(Frame::new(
        0,
        Body::Drop {
            version: 1,
            key: b"key-0".to_vec(),
        },
    ));
    assert_eq!(s.version_of(b"key-0"), Some(1), "the drop waits");
    let mut rest = report(&mut s);
    let Body::Inventory { entries, .. } = first.body else {
        unreachable!()
    };
    rest.extend(entries);
    rest.sort();
    let mut want: Vec<(Vec<u8>, u64)> = (0..5000u64)
        .map(|i| (format!("key-{i}").into_bytes(), i + 1))
        .collect();
    want.sort();
    assert_eq!(rest, want);
    assert_eq!(s.version_of(b"key-0"), None, "applied after the last frame");
    // A DROP of an older version than held leaves the copy.
    s.on_frame(Frame::new(
        0,
        Body::Drop {
            version: 5,
            key: b"key-9".to_vec(),
        },
    ));
    assert_eq!(s.version_of(b"key-9"), Some(10));
    assert_eq!(s.next_inventory(), None, "no report under way");
}

#[test]
fn pings_are_answered_and_client_opcodes_refused() {
    let mut s = Store::default();
    assert_eq!(
        s.on_frame(Frame::new(4, Body::Ping)),
        Some(Frame::new(4, Body::Pong))
    );
    let reply = s
        .on_frame(Frame::new(5, Body::Read { key: b"k".to_vec() }))
        .unwrap();
    assert!(matches!(
        reply.body,
        Body::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    ));
}

fn store_bytes(req: u64, version: u64, key: &str, len: usize) -> Frame {
    Frame::new(
        req,
        Body::Store {
            epoch: 1,
            version,
            key: key.into(),
            value: vec![b'x'; len],
        },
    )
}

fn is_error(reply: &Option<Frame>, want: ErrorCode) -> bool {
    matches!(reply, Some(Frame { body: Body::Error { code, .. }, .. }) if *code == want)
}

#[test]
fn a_store_past_the_cap_is_refused_and_a_smaller_value_always_fits() {
    let mut s = Store::in_memory(64 * 1024);
    let mut stored = 0;
    for i in 0..100u64 {
        let reply = s.on_frame(store_bytes(i, i + 1, &format!("k{i}"), 4000));
        if is_error(&reply, ErrorCode::OutOfMemory) {
            break;
        }
        assert_eq!(reply, Some(Frame::new(i, Body::Ack { version: i + 1 })));
        stored += 1;
    }
    assert!(
        (10..=16).contains(&stored),
        "{stored} values of 4000 bytes in 64 KiB"
    );
    assert!(s.memory_used() <= 64 * 1024, "{}", s.memory_used());
    assert_eq!(s.len(), stored);
    // Reads go on, a smaller value for a held key fits, a larger one does not.
    assert!(matches!(
        s.on_frame(fetch(500, "k0")),
        Some(Frame {
            body: Body::Fetched { version: 1, .. },
            ..
        })
    ));
    let bigger = s.on_frame(store_bytes(501, 1000, "k0", 9000));
    assert!(is_error(&bigger, ErrorCode::OutOfMemory), "{bigger:?}");
    assert_eq!(s.version_of(b"k0"), Some(1));
    let smaller = s.on_frame(store_bytes(502, 1001, "k0", 10));
    assert_eq!(smaller, Some(Frame::new(502, Body::Ack { version: 1001 })));
    // The room freed takes a new key again.
    let again = s.on_frame(store_bytes(503, 1002, "new", 3000));
    assert_eq!(again, Some(Frame::new(503, Body::Ack { version: 1002 })));
}

fn durable_store(disk: &crate::disk::MemDisk, max_memory: u64) -> Store {
    compacting_store(disk, max_memory, u64::MAX)
}

/// A store over `disk` that compacts its log from `compact_min` bytes on.
fn compacting_store(disk: &crate::disk::MemDisk, max_memory: u64, compact_min: u64) -> Store {
    let settings = crate::disk::Settings {
        fsync: crate::disk::Fsync::Always,
        compact_min,
        compact_step: crate::disk::COMPACT_STEP,
        failpoint: None,
    };
    let now = std::time::Instant::now();
    Store::open(Box::new(disk.clone()), settings, max_memory, now)
        .unwrap()
        .0
}

fn answers(s: &mut Store) -> Vec<Frame> {
    s.end_turn(std::time::Instant::now());
    let mut out = Vec::new();
    s.take_answers(&mut out);
    out
}

#[test]
fn with_a_log_stores_are_answered_after_the_turn_and_the_cap_counts_staged_ones() {
    let disk = crate::disk::MemDisk::new();
    let mut s = durable_store(&disk, 16 * 1024);
    // A turn's worth of STOREs: none answered until the turn ends; the cap counts the
    // staged ones, so the third is refused at once.
    assert_eq!(s.on_frame(store_bytes(1, 1, "a", 6000)), None);
    assert_eq!(s.on_frame(store_bytes(2, 2, "b", 6000)), None);
    let third = s.on_frame(store_bytes(3, 3, "c", 6000));
    assert!(is_error(&third, ErrorCode::OutOfMemory), "{third:?}");
    assert!(s.is_empty(), "nothing applied before the write");
    assert_eq!(
        answers(&mut s),
        [
            Frame::new(1, Body::Ack { version: 1 }),
            Frame::new(2, Body::Ack { version: 2 })
        ]
    );
    assert_eq!(s.len(), 2);
    // A full disk: ERROR DISK, not applied, reads go on; then it takes writes again.
    disk.set_capacity(Some(disk.file(crate::disk::LOG).unwrap().len() as u64 + 10));
    assert_eq!(s.on_frame(store_bytes(4, 4, "a", 10)), None);
    let refused = answers(&mut s);
    assert!(
        matches!(&refused[..], [Frame { req_id: 4, body: Body::Error { code: ErrorCode::Disk, text } }]
            if text.contains("No space left") && text.contains("not applied")),
        "{refused:?}"
    );
    assert_eq!(s.version_of(b"a"), Some(1));
    assert!(s.on_frame(fetch(5, "a")).is_some());
    disk.set_capacity(None);
    assert_eq!(s.on_frame(store_bytes(6, 6, "a", 10)), None);
    assert_eq!(answers(&mut s), [Frame::new(6, Body::Ack { version: 6 })]);
    // Reopened, it holds what was ACKed.
    let mut back = durable_store(&disk.after_power_cut(), 16 * 1024);
    assert_eq!(back.version_of(b"a"), Some(6));
    assert_eq!(back.version_of(b"b"), Some(2));
    assert_eq!(back.epoch(), 1, "the epoch of the STOREs was kept");
    assert!(answers(&mut back).is_empty());
}

fn store_once(req: u64, epoch: u64, version: u64, seq: u64, value: &str) -> Frame {
    store_writer(req, epoch, version, seq, value, false)
}

fn store_writer(req: u64, epoch: u64, version: u64, seq: u64, value: &str, keep: bool) -> Frame {
    Frame::new(
        req,
        Body::StoreOnce {
            epoch,
            version,
            id: WriteId {
                client: 42,
                seq,
                acked: 1,
            },
            key: b"k".to_vec(),
            value: value.into(),
            keep,
        },
    )
}

fn recall(req: u64, epoch: u64, seq: u64, age_ms: u32) -> Frame {
    Frame::new(
        req,
        Body::Recall {
            epoch,
            client: 42,
            seq,
            age_ms,
            key: b"k".to_vec(),
        },
    )
}

fn recalled(req: u64, held: u64, stored: u64) -> Option<Frame> {
    let kept = None;
    Some(Frame::new(req, Body::Recalled { held, stored, kept }))
}

fn recalled_kept(req: u64, held: u64, stored: u64, kept: &str) -> Option<Frame> {
    let kept = Some(kept.into());
    Some(Frame::new(req, Body::Recalled { held, stored, kept }))
}

#[test]
fn a_store_keep_value_is_given_back_by_recall_after_later_writes() {
    for disk in [None, Some(crate::disk::MemDisk::new())] {
        let mut s = match &disk {
            Some(d) => durable_store(d, u64::MAX),
            None => Store::default(),
        };
        s.forget_writers(std::time::Instant::now() - Duration::from_secs(10));
        s.on_frame(store_writer(1, 1, 10, 1, "41", true));
        s.on_frame(store_writer(2, 1, 11, 2, "42", false));
        s.on_frame(store(3, 20, "k", "99"));
        assert_eq!(
            s.on_frame(recall(4, 1, 1, 500)),
            recalled_kept(4, 20, 10, "41")
        );
        assert_eq!(s.on_frame(recall(5, 1, 2, 500)), recalled(5, 20, 11));
    }
}

#[test]
fn a_stored_write_is_recalled_after_later_writes_and_recall_fences_older_masters() {
    let mut s = Store::default();
    let t0 = std::time::Instant::now();
    s.forget_writers(t0);
    s.set_now(t0 + Duration::from_secs(10));
    assert_eq!(
        s.on_frame(store_once(1, 1, 10, 1, "a")),
        Some(Frame::new(1, Body::Ack { version: 10 }))
    );
    // Another write supersedes it; the record of write 1 stays.
    assert_eq!(
        s.on_frame(store(2, 20, "k", "b")),
        Some(Frame::new(2, Body::Ack { version: 20 }))
    );
    // An older version arriving late is ACKed with the newer one, and still recorded: the
    // write reached this slave.
    assert_eq!(
        s.on_frame(store_once(3, 1, 15, 2, "c")),
        Some(Frame::new(3, Body::Ack { version: 20 }))
    );
    assert_eq!(s.on_frame(recall(4, 2, 1, 500)), recalled(4, 20, 10));
    assert_eq!(s.on_frame(recall(5, 2, 2, 500)), recalled(5, 20, 15));
    assert_eq!(s.on_frame(recall(6, 2, 3, 500)), recalled(6, 20, 0));
    // The RECALL was at epoch 2: a STORE of the old primary (epoch 1) is refused from now on,
    // so a write recalled as "not stored" can never be stored by it.
    assert!(is_error(
        &s.on_frame(store_once(7, 1, 30, 3, "late")),
        ErrorCode::StaleEpoch
    ));
    assert!(is_error(
        &s.on_frame(recall(8, 1, 1, 0)),
        ErrorCode::StaleEpoch
    ));
    assert_eq!(s.on_frame(recall(9, 2, 3, 500)), recalled(9, 20, 0));
    // A restarted process cannot say what its predecessor stored.
    s.forget_writers(t0 + Duration::from_secs(10));
    assert_eq!(
        s.on_frame(recall(10, 2, 1, 500)),
        recalled(10, 20, u64::MAX)
    );
}

#[test]
fn with_a_log_a_recall_answers_after_the_stores_before_it() {
    let disk = crate::disk::MemDisk::new();
    let mut s = durable_store(&disk, u64::MAX);
    s.forget_writers(std::time::Instant::now() - Duration::from_secs(10));
    assert_eq!(s.on_frame(store_once(1, 1, 10, 1, "a")), None, "staged");
    // The RECALL commits the staged STORE first: it is held, and recorded.
    assert_eq!(s.on_frame(recall(2, 1, 1, 500)), recalled(2, 10, 10));
    assert_eq!(answers(&mut s), [Frame::new(1, Body::Ack { version: 10 })]);
    // A STORE the disk refuses is not recorded.
    disk.set_capacity(Some(disk.file(crate::disk::LOG).unwrap().len() as u64 + 10));
    assert_eq!(s.on_frame(store_once(3, 1, 20, 2, "b")), None);
    assert!(matches!(
        &answers(&mut s)[..],
        [Frame {
            req_id: 3,
            body: Body::Error {
                code: ErrorCode::Disk,
                ..
            }
        }]
    ));
    assert_eq!(s.on_frame(recall(4, 1, 2, 500)), recalled(4, 10, 0));
    assert_eq!(s.writer_records(), (1, 1));
}

#[test]
fn with_a_log_a_restarted_slave_still_knows_the_writes_it_stored() {
    let disk = crate::disk::MemDisk::new();
    let mut s = durable_store(&disk, u64::MAX);
    s.on_frame(store_writer(1, 1, 10, 1, "41", true));
    s.on_frame(store_once(2, 1, 11, 2, "a"));
    assert_eq!(answers(&mut s).len(), 2);
    for crashed in [disk.after_process_crash(), disk.after_power_cut()] {
        let mut back = durable_store(&crashed, u64::MAX);
        assert_eq!(
            back.on_frame(recall(3, 1, 1, 500)),
            recalled_kept(3, 11, 10, "41")
        );
        assert_eq!(back.on_frame(recall(4, 1, 2, 500)), recalled(4, 11, 11));
        // A write it never stored, first sent before the restart: not stored (not "unsure",
        // as a slave without a log, or with a log of an older version, must say).
        assert_eq!(back.on_frame(recall(5, 1, 3, 500)), recalled(5, 11, 0));
    }
}

#[test]
fn a_log_that_did_not_always_carry_the_writers_cannot_vouch() {
    // A log written before the writers' records were logged: STOREs, no VOUCHES.
    let mut log = crate::disk::record::MAGIC.to_vec();
    crate::disk::record::encode_store(&mut log, 10, b"k", b"a");
    let disk = crate::disk::MemDisk::new();
    disk.put_file(crate::disk::LOG, &log);
    let mut s = durable_store(&disk, u64::MAX);
    assert_eq!(s.on_frame(recall(1, 1, 1, 500)), recalled(1, 10, u64::MAX));
    // Nor one cut at a corrupt record: what was cut may have been a STORE_ONCE.
    let writer = |seq| crate::disk::record::Writer {
        client: 42,
        seq,
        acked: 1,
        kept: None,
    };
    let mut log = crate::disk::record::MAGIC.to_vec();
    crate::disk::record::encode_vouches(&mut log);
    crate::disk::record::encode_store_of(&mut log, Some(&writer(1)), 10, b"k", b"a");
    crate::disk::record::encode_store_of(&mut log, Some(&writer(2)), 11, b"k", b"b");
    let last = log.len() - 1;
    log[last] ^= 1;
    let disk = crate::disk::MemDisk::new();
    disk.put_file(crate::disk::LOG, &log);
    let mut s = durable_store(&disk, u64::MAX);
    assert_eq!(s.on_frame(recall(3, 1, 1, 500)), recalled(3, 10, 10));
    assert_eq!(s.on_frame(recall(4, 1, 2, 500)), recalled(4, 10, u64::MAX));
}

#[test]
fn a_compacted_log_keeps_the_writers_and_what_the_bound_dropped() {
    let disk = crate::disk::MemDisk::new();
    let mut s = compacting_store(&disk, u64::MAX, 1);
    let n = crate::writers::PER_CLIENT as u64 + 5;
    // Client 42's writes 1..=n to "k" (its acked stays 1): the bound drops the records of
    // writes 1 to 5 (and 6, once write n + 1 below comes); a STORE_KEEP among the kept ones.
    for seq in 1..=n {
        let keep = seq == n - 1;
        s.on_frame(store_writer(seq, 1, 10 + seq, seq, "41", keep));
        if seq % 100 == 0 {
            answers(&mut s);
        }
    }
    answers(&mut s);
    let mut turns = 0;
    while s.durable().unwrap().compactions() == 0 {
        turns += 1;
        assert!(turns < 1000, "no compaction");
        answers(&mut s);
    }
    // One more write after the compaction, logged in the new file.
    s.on_frame(store_once(n + 1, 1, 10 + n + 1, n + 1, "b"));
    answers(&mut s);
    let held = 10 + n + 1;
    for crashed in [disk.after_process_crash(), disk.after_power_cut()] {
        let mut back = durable_store(&crashed, u64::MAX);
        assert_eq!(back.writer_records(), s.writer_records());
        let unsure = back.on_frame(recall(1, 1, 3, 500));
        assert_eq!(unsure, recalled(1, held, u64::MAX), "dropped for the bound");
        let stored = back.on_frame(recall(2, 1, 7, 500));
        assert_eq!(stored, recalled(2, held, 17));
        let kept = back.on_frame(recall(3, 1, n - 1, 500));
        assert_eq!(kept, recalled_kept(3, held, 10 + n - 1, "41"));
        let last = back.on_frame(recall(4, 1, n + 1, 500));
        assert_eq!(last, recalled(4, held, held));
        let never = back.on_frame(recall(5, 1, n + 2, 500));
        assert_eq!(never, recalled(5, held, 0));
    }
}

//! The slave with a log on an in-memory disk, on the simulated network: with `--fsync always`
//! an ACK goes out only after the sync that covers its STORE, one sync covers a whole turn,
//! and while a sync is slow the slave keeps answering (PINGs, FETCHes of what is synced) and
//! writing the next turns, whose ACKs wait for the next sync; answers owed on a connection
//! that broke go to no one; a write the disk refuses is answered ERROR DISK and not applied while reads go on;
//! a STORE past `--max-memory` is answered OUT_OF_MEMORY and the slave keeps serving; and a
//! restarted slave comes back with its data and its epoch.

use std::time::{Duration, Instant};

use dsm_slave::disk::{Fsync, MemDisk, Op, Settings, COMPACT_STEP, LOG};
use dsm_slave::Store;
use dsm_wire::{Body, ErrorCode, Frame};

mod common;
use common::{addr, config, logged, welcoming, Net};

const MS: Duration = Duration::from_millis(1);

fn settings(fsync: Fsync) -> Settings {
    Settings {
        fsync,
        compact_min: u64::MAX,
        compact_step: COMPACT_STEP,
        failpoint: None,
    }
}

/// A registered slave (epoch 1) whose store keeps its log on `disk`.
fn slave_on(disk: &MemDisk, fsync: Fsync, max_memory: u64) -> Net {
    let a = addr(7000);
    let mut cfg = config(&[a], None);
    cfg.max_memory = max_memory;
    let (store, _) = Store::open(
        Box::new(disk.clone()),
        settings(fsync),
        max_memory,
        Instant::now(),
    )
    .unwrap();
    let mut net = Net::with_store(cfg, store, disk.clone());
    net.listen(a, welcoming(1, false));
    net.run_for(10 * MS);
    assert!(net.slave.registered());
    net
}

fn store(req: u64, version: u64, key: &str, value: &[u8]) -> Frame {
    let body = Body::Store {
        epoch: 1,
        version,
        key: key.into(),
        value: value.to_vec(),
    };
    Frame::new(req, body)
}

fn fetch(req: u64, key: &str) -> Frame {
    let key = key.into();
    Frame::new(req, Body::Fetch { epoch: 1, key })
}

fn error_code(f: &Frame) -> Option<ErrorCode> {
    match &f.body {
        Body::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn with_fsync_always_acks_follow_the_one_sync_of_their_turn() {
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Always, u64::MAX);
    disk.clear_ops();
    let before = net.sent.len();
    // Ten pipelined STOREs that arrive together: one loop turn.
    for i in 0..10u64 {
        net.send(store(100 + i, i + 1, &format!("k{i}"), b"value"));
    }
    net.run_for(5 * MS);
    let len = disk.file(LOG).unwrap().len();
    assert_eq!(
        disk.ops(),
        [Op::Append(len - 8 - 9 - 17), Op::StartSync],
        "one write and one sync for the turn (the header and VOUCHES were written at the \
         start, the epoch record at the WELCOME)"
    );
    let acks = &net.sent[before..];
    assert_eq!(acks.len(), 10);
    for (i, (_, f)) in acks.iter().enumerate() {
        let version = i as u64 + 1;
        assert_eq!(*f, Frame::new(100 + i as u64, Body::Ack { version }));
        assert_eq!(
            net.synced_at_send[before + i],
            len,
            "ACK {i} before the sync"
        );
    }
    // And a restart finds them all, even after a power cut.
    let back = slave_on(&disk.after_power_cut(), Fsync::Always, u64::MAX);
    assert_eq!(back.slave.store().len(), 10);
}

#[test]
fn with_fsync_interval_acks_go_out_once_written_and_the_sync_follows() {
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Interval(Duration::from_millis(100)), u64::MAX);
    disk.clear_ops();
    let ack = net.ask(store(1, 1, "k", b"v"));
    assert_eq!(ack, Some(Frame::new(1, Body::Ack { version: 1 })));
    assert_eq!(disk.syncs(), 0, "ACKed before any sync");
    net.run_for(150 * MS);
    assert_eq!(disk.syncs(), 1, "synced within the interval");
}

#[test]
fn a_store_the_disk_refuses_gets_error_disk_while_reads_go_on() {
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Always, u64::MAX);
    net.ask(store(1, 1, "kept", b"acknowledged"));
    let len = disk.file(LOG).unwrap().len() as u64;
    disk.set_capacity(Some(len + 20));
    for req in 2..6 {
        let refused = net.ask(store(req, req, "new", &[7; 100])).unwrap();
        assert_eq!(refused.req_id, req);
        assert_eq!(error_code(&refused), Some(ErrorCode::Disk), "{refused:?}");
    }
    assert_eq!(
        disk.file(LOG).unwrap().len() as u64,
        len,
        "no partial record"
    );
    assert_eq!(net.slave.store().version_of(b"new"), None, "not applied");
    let read = net.ask(fetch(9, "kept")).unwrap();
    assert!(
        matches!(read.body, Body::Fetched { version: 1, .. }),
        "{read:?}"
    );
    let lines = logged("ERROR DISK");
    assert_eq!(lines.len(), 1, "logged once, not once per STORE: {lines:?}");
    assert!(lines[0].contains("No space left"), "{lines:?}");
    // Space comes back: the next STORE is written.
    disk.set_capacity(None);
    let ack = net.ask(store(10, 10, "new", b"fits"));
    assert_eq!(ack, Some(Frame::new(10, Body::Ack { version: 10 })));
    assert_eq!(logged("the disk takes writes again").len(), 1);
    let back = slave_on(&disk.after_power_cut(), Fsync::Always, u64::MAX);
    assert_eq!(back.slave.store().version_of(b"kept"), Some(1));
    assert_eq!(back.slave.store().version_of(b"new"), Some(10));
}

#[test]
fn a_store_past_max_memory_gets_out_of_memory_and_the_slave_keeps_serving() {
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Never, 2 << 20);
    let value = vec![b'v'; 64 * 1024];
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..64u64 {
        let reply = net.ask(store(i, i + 1, &format!("k{i}"), &value)).unwrap();
        match error_code(&reply) {
            None => acked.push(i),
            Some(ErrorCode::OutOfMemory) => refused += 1,
            Some(other) => panic!("{other:?}: {reply:?}"),
        }
    }
    assert!(
        (25..32).contains(&acked.len()),
        "{} of 64 KiB under 2 MiB",
        acked.len()
    );
    assert_eq!(refused, 64 - acked.len());
    assert!(net.slave.store().memory_used() <= 2 << 20);
    assert_eq!(acked, (0..acked.len() as u64).collect::<Vec<_>>());
    for &i in &acked {
        let read = net.ask(fetch(1000 + i, &format!("k{i}"))).unwrap();
        assert!(matches!(read.body, Body::Fetched { .. }), "{read:?}");
    }
    let pong = net.ask(Frame::new(7, Body::Ping));
    assert_eq!(pong, Some(Frame::new(7, Body::Pong)));
    assert_eq!(logged("memory cap reached").len(), 1, "logged once");
}

#[test]
fn a_restarted_slave_says_the_epoch_it_had_seen_in_its_hello() {
    let disk = MemDisk::new();
    let a = addr(7000);
    let (store, _) = Store::open(
        Box::new(disk.clone()),
        settings(Fsync::Never),
        u64::MAX,
        Instant::now(),
    )
    .unwrap();
    let mut net = Net::with_store(config(&[a], None), store, disk.clone());
    net.listen(a, welcoming(4, false));
    net.run_for(10 * MS);
    assert_eq!(net.slave.store().epoch(), 4);

    // kill -9, restart on what is on disk.
    let crashed = disk.after_process_crash();
    let (store, _) = Store::open(
        Box::new(crashed.clone()),
        settings(Fsync::Never),
        u64::MAX,
        Instant::now(),
    )
    .unwrap();
    let mut net = Net::with_store(config(&[a], None), store, crashed);
    net.listen(a, welcoming(4, true));
    net.run_for(10 * MS);
    assert!(
        matches!(net.sent[0].1.body, Body::Hello { epoch: 4, .. }),
        "{:?}",
        net.sent[0]
    );
}

#[test]
fn with_fsync_always_a_slow_sync_holds_the_acks_not_the_loop() {
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Always, u64::MAX);
    assert!(net.ask(store(1, 1, "old", b"synced")).is_some());
    disk.hold_syncs(true);
    let before = net.sent.len();
    for i in 0..5u64 {
        net.send(store(
            10 + i,
            10 + i,
            &format!("k{i}"),
            b"waiting for its sync",
        ));
    }
    net.send(store(20, 20, "old", b"newer, waiting for its sync"));
    net.run_for(5 * MS);
    assert_eq!(net.sent.len(), before, "no ACK while the sync runs");
    // The loop still answers: a PING, and a FETCH from what is synced (not the newer copy).
    assert_eq!(
        net.ask(Frame::new(30, Body::Ping)),
        Some(Frame::new(30, Body::Pong))
    );
    let read = net.ask(fetch(31, "old")).unwrap();
    assert!(
        matches!(read.body, Body::Fetched { version: 1, .. }),
        "{read:?}"
    );
    assert_eq!(
        net.ask(fetch(32, "k0")),
        Some(Frame::new(32, Body::NotFound))
    );
    // More STOREs are written behind the sync under way.
    net.send(store(40, 40, "later", b"behind the sync"));
    net.run_for(5 * MS);
    let len = disk.file(LOG).unwrap().len();
    assert!(disk.synced_len(LOG) < len);
    let before = net.sent.len();
    disk.hold_syncs(false);
    net.wake();
    let acked: Vec<u64> = net.sent[before..].iter().map(|(_, f)| f.req_id).collect();
    assert_eq!(acked, [10, 11, 12, 13, 14, 20, 40]);
    for i in before..net.sent.len() {
        assert_eq!(net.synced_at_send[i], len, "ACK {i} before its sync");
    }
    let read = net.ask(fetch(50, "old")).unwrap();
    assert!(
        matches!(read.body, Body::Fetched { version: 20, .. }),
        "{read:?}"
    );
}

#[test]
fn with_fsync_always_a_failed_sync_refuses_what_it_covered_and_later_stores_go_on() {
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Always, u64::MAX);
    disk.hold_syncs(true);
    let before = net.sent.len();
    net.send(store(1, 1, "a", b"covered by the failing sync"));
    net.run_for(5 * MS);
    net.send(store(2, 2, "b", b"written behind it"));
    net.run_for(5 * MS);
    disk.fail_next_sync();
    disk.hold_syncs(false);
    net.wake();
    let answers: Vec<&Frame> = net.sent[before..].iter().map(|(_, f)| f).collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(
        (answers[0].req_id, error_code(answers[0])),
        (1, Some(ErrorCode::Disk))
    );
    assert_eq!(*answers[1], Frame::new(2, Body::Ack { version: 2 }));
    assert_eq!(net.slave.store().version_of(b"a"), None, "not applied");
    let back = slave_on(&disk.after_power_cut(), Fsync::Always, u64::MAX);
    assert_eq!(
        back.slave.store().version_of(b"a"),
        None,
        "never comes back"
    );
    assert_eq!(back.slave.store().version_of(b"b"), Some(2));
}

#[test]
fn with_fsync_always_answers_owed_on_a_broken_connection_go_to_no_one() {
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Always, u64::MAX);
    disk.hold_syncs(true);
    net.send(store(7, 7, "k", b"in flight when the connection broke"));
    net.run_for(5 * MS);
    let connects = net.connects.len();
    net.cut();
    let back = net.run_until(Duration::from_secs(2), |n| {
        n.connects.len() > connects && n.slave.registered()
    });
    assert!(back, "registered again on a new connection");
    let before = net.sent.len();
    disk.hold_syncs(false);
    net.wake();
    net.run_for(5 * MS);
    assert!(
        net.sent[before..].iter().all(|(_, f)| f.req_id != 7),
        "{:?}",
        &net.sent[before..]
    );
    assert_eq!(
        net.slave.store().version_of(b"k"),
        Some(7),
        "applied once synced"
    );
}

#[test]
fn with_fsync_always_a_slow_sync_is_covered_by_unasked_pongs() {
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Always, u64::MAX);
    let before = net.sent.len();
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.sent.len(), before, "nothing unasked while no sync runs");
    disk.hold_syncs(true);
    net.send(store(1, 1, "k", b"waiting for a slow sync"));
    net.run_for(175 * MS);
    let pongs: Vec<&Frame> = net.sent[before..].iter().map(|(_, f)| f).collect();
    assert!(
        pongs.iter().all(|f| **f == Frame::new(0, Body::Pong)),
        "no ACK, only PONGs: {pongs:?}"
    );
    assert_eq!(
        pongs.len(),
        3,
        "at 50, 100 and 150 ms into the sync: {pongs:?}"
    );
    let before = net.sent.len();
    disk.hold_syncs(false);
    net.wake();
    net.run_for(200 * MS);
    let after: Vec<&Frame> = net.sent[before..].iter().map(|(_, f)| f).collect();
    assert_eq!(after, [&Frame::new(1, Body::Ack { version: 1 })]);
}

#[test]
fn with_fsync_always_a_sync_longer_than_the_master_timeout_does_not_make_the_slave_leave() {
    // The master sends nothing new while every write it has waits for this slave's ACKs:
    // that silence is the slave's own, and must not count as the master's (1.5 s here).
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Always, u64::MAX);
    disk.hold_syncs(true);
    let closes = net.closes.len();
    net.send(store(1, 1, "k", b"waiting for a very slow sync"));
    net.run_for(Duration::from_secs(3));
    assert_eq!(
        net.closes.len(),
        closes,
        "left the master during its own sync"
    );
    disk.hold_syncs(false);
    net.wake();
    assert_eq!(
        net.sent.last().map(|(_, f)| f.clone()),
        Some(Frame::new(1, Body::Ack { version: 1 }))
    );
    // Once the ACK is out, a master that stays silent is given up as before.
    net.run_for(Duration::from_millis(1400));
    assert_eq!(net.closes.len(), closes);
    net.run_for(Duration::from_millis(200));
    assert_eq!(
        net.closes.len(),
        closes + 1,
        "a silent master is still left"
    );
}

/// Large STOREs (their frames kept as the records, `Record::from_frame`) go to the log like
/// any other: replaced, refused when the disk is full (and not applied), and back whole after
/// a power cut.
#[test]
fn large_values_kept_as_their_frames_are_logged_and_come_back_after_a_power_cut() {
    let disk = MemDisk::new();
    let mut net = slave_on(&disk, Fsync::Always, u64::MAX);
    let big = |seed: u8| -> Vec<u8> { (0..200_000u32).map(|i| (i as u8) ^ seed).collect() };
    for (req, (key, seed)) in [("a", 1u8), ("b", 2), ("a", 3)].into_iter().enumerate() {
        let req = req as u64 + 1;
        let ack = net.ask(store(req, req, key, &big(seed)));
        assert_eq!(ack, Some(Frame::new(req, Body::Ack { version: req })));
    }
    let len = disk.file(LOG).unwrap().len() as u64;
    disk.set_capacity(Some(len + 1000));
    let refused = net.ask(store(9, 9, "b", &big(9))).unwrap();
    assert_eq!(error_code(&refused), Some(ErrorCode::Disk), "{refused:?}");
    let fetched = |net: &mut Net, key: &str| match net.ask(fetch(20, key)).map(|f| f.body) {
        Some(Body::Fetched { version, value }) => (version, value),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        fetched(&mut net, "b"),
        (2, big(2)),
        "the refused STORE not applied"
    );

    let mut back = slave_on(&disk.after_power_cut(), Fsync::Always, u64::MAX);
    assert_eq!(fetched(&mut back, "a"), (3, big(3)));
    assert_eq!(fetched(&mut back, "b"), (2, big(2)));
}

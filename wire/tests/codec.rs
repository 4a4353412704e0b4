//! Codec tests: round trips for every opcode, every truncated prefix, and each typed error.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dsm_wire::{
    decode, decode_with_max, encode, max_frame_for, BackupLink, Body, ErrorCode, Frame, Limits,
    Opcode, Role, ServerRole, SlaveStatus, Status, SyncEvent, WireError, WriteId, AUTH_LEN,
    DEFAULT_MAX_FRAME, DEFAULT_MAX_KEY, DEFAULT_MAX_VALUE, HEADER_LEN, RECALL_NONE, RECALL_UNSURE,
};

// The largest single allocation each thread has asked for, so a test can prove that decoding a
// hostile length or count did not reserve memory for it.
thread_local! {
    static LARGEST_ALLOC: Cell<usize> = const { Cell::new(0) };
}

struct TrackingAlloc;

fn note_alloc(size: usize) {
    // try_with: allocations can happen while a thread's locals are being torn down.
    let _ = LARGEST_ALLOC.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the tracking only reads
// the requested size and touches a const-initialised thread local, which never allocates.
unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// The largest allocation `f` made on this thread.
fn largest_alloc_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_ALLOC.with(|l| l.set(0));
    let out = f();
    (out, LARGEST_ALLOC.with(|l| l.get()))
}

const MIB: usize = 1024 * 1024;

/// A value of `n` bytes that is not all one byte, so a misplaced slice shows.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// 32 distinct bytes starting at `from`, so a shifted or cut nonce shows.
fn auth_bytes(from: u8) -> [u8; AUTH_LEN] {
    std::array::from_fn(|i| from.wrapping_add(i as u8))
}

fn slave(id: &str, addr: &str, live: bool, keys: u64) -> SlaveStatus {
    SlaveStatus {
        id: id.to_string(),
        addr: addr.to_string(),
        live,
        keys,
    }
}

/// Sample frames covering every opcode, with edge values: empty and 1 MiB payloads, extreme
/// integers, unicode strings, STATUS_REPLY with no slaves and with several.
fn samples() -> Vec<Frame> {
    let unicode = "näme-日本語-🦀-ünïcødé";
    let bodies = vec![
        Body::Hello {
            role: Role::Client,
            epoch: 0,
            id: String::new(),
            boot: 0,
            nonce: None,
            limits: None,
        },
        Body::Hello {
            role: Role::Slave,
            epoch: u64::MAX,
            id: "slave-1".into(),
            boot: u64::MAX,
            nonce: Some(Box::new(auth_bytes(1))),
            limits: Some(Limits {
                max_key: u32::MAX,
                max_value: 0,
                masters: 7,
            }),
        },
        Body::Hello {
            role: Role::Backup,
            epoch: 42,
            id: unicode.into(),
            boot: 0,
            nonce: Some(Box::new([0xff; AUTH_LEN])),
            limits: None,
        },
        Body::Welcome {
            epoch: 0,
            inventory: false,
            standby: false,
            lease_ms: 0,
            proof: None,
        },
        Body::Welcome {
            epoch: u64::MAX,
            inventory: true,
            standby: false,
            lease_ms: 400,
            proof: Some(auth_bytes(7)),
        },
        Body::Welcome {
            epoch: 3,
            inventory: false,
            standby: true,
            lease_ms: u32::MAX,
            proof: None,
        },
        Body::Takeover {
            epoch: 4,
            inventory: true,
            lease_ms: 400,
            id: "127.0.0.1:7003 127.0.0.1:7002".into(),
            voters: 5,
        },
        Body::Takeover {
            epoch: u64::MAX,
            inventory: false,
            lease_ms: 0,
            id: unicode.into(),
            voters: u16::MAX,
        },
        Body::Vote {
            granted: true,
            stale: false,
            voters: 0,
        },
        Body::Vote {
            granted: false,
            stale: true,
            voters: 7,
        },
        Body::Stale {
            gen: 0,
            voters: 0,
            ids: vec![],
        },
        Body::Stale {
            gen: 7,
            voters: 5,
            ids: vec!["127.0.0.1:7003 127.0.0.1:7002".into(), unicode.into()],
        },
        Body::Release,
        Body::Released { below: 0 },
        Body::Released {
            below: (1 << 62) + 9,
        },
        Body::Challenge {
            nonce: [0; AUTH_LEN],
        },
        Body::Challenge {
            nonce: auth_bytes(3),
        },
        Body::Auth {
            proof: auth_bytes(5),
        },
        Body::Write {
            key: vec![],
            value: vec![],
        },
        Body::Write {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
        Body::Write {
            key: pattern(DEFAULT_MAX_KEY),
            value: pattern(MIB),
        },
        Body::Write {
            key: unicode.as_bytes().to_vec(),
            value: vec![0, 0xff, 0, 0xff],
        },
        Body::WriteOnce {
            id: WriteId {
                client: 0,
                seq: 0,
                acked: 0,
            },
            resent_ms: 0,
            key: vec![],
            value: vec![],
        },
        Body::WriteOnce {
            id: WriteId {
                client: u64::MAX,
                seq: 1 << 40 | 7,
                acked: 1 << 40,
            },
            resent_ms: u32::MAX,
            key: pattern(DEFAULT_MAX_KEY),
            value: pattern(MIB),
        },
        Body::Read { key: vec![] },
        Body::Read {
            key: vec![0x00, 0xff, 0x80],
        },
        Body::Ok,
        Body::Value { value: vec![] },
        Body::Value {
            value: pattern(MIB),
        },
        Body::NotFound,
        Body::error(ErrorCode::BadRequest, ""),
        Body::error(ErrorCode::TooLarge, "value of 2000000 bytes over 1048576"),
        Body::error(ErrorCode::NoSlaves, "no live slave"),
        Body::error(ErrorCode::Timeout, "deadline passed"),
        Body::error(ErrorCode::NotPrimary, "primary is 127.0.0.1:7000"),
        Body::error(ErrorCode::StaleEpoch, unicode),
        Body::error(ErrorCode::Unauthorized, "no"),
        Body::error(ErrorCode::Busy, "too many connections"),
        Body::error(ErrorCode::Other(0), "zero"),
        Body::error(ErrorCode::Other(99), "from a newer peer"),
        Body::error(ErrorCode::OutOfMemory, "no room"),
        Body::error(ErrorCode::Unavailable, "out of reach"),
        Body::error(ErrorCode::Disk, "disk full"),
        Body::error(ErrorCode::Other(u16::MAX), "max"),
        Body::Store {
            epoch: 0,
            version: 0,
            key: vec![],
            value: vec![],
        },
        Body::Store {
            epoch: 3,
            version: u64::MAX,
            key: pattern(DEFAULT_MAX_KEY),
            value: pattern(MIB),
        },
        Body::StoreOnce {
            epoch: 0,
            version: 0,
            id: WriteId {
                client: 0,
                seq: 0,
                acked: 0,
            },
            key: vec![],
            value: vec![],
            keep: false,
        },
        Body::StoreOnce {
            epoch: 3,
            version: u64::MAX,
            id: WriteId {
                client: 0x0102_0304_0506_0708,
                seq: u64::MAX,
                acked: 9,
            },
            key: pattern(DEFAULT_MAX_KEY),
            value: pattern(MIB),
            keep: false,
        },
        Body::StoreOnce {
            epoch: 3,
            version: 3 << 40 | 2,
            id: WriteId {
                client: 1,
                seq: 2,
                acked: 2,
            },
            key: b"n".to_vec(),
            value: b"-9223372036854775808".to_vec(),
            keep: true,
        },
        Body::Recall {
            epoch: 2,
            client: 7,
            seq: 3,
            age_ms: 0,
            key: vec![],
        },
        Body::Recall {
            epoch: u64::MAX,
            client: u64::MAX,
            seq: u64::MAX,
            age_ms: u32::MAX,
            key: pattern(DEFAULT_MAX_KEY),
        },
        Body::Recalled {
            held: 0,
            stored: RECALL_NONE,
            kept: None,
        },
        Body::Recalled {
            held: 2 << 40 | 5,
            stored: RECALL_UNSURE,
            kept: None,
        },
        Body::Recalled {
            held: 2 << 40 | 5,
            stored: 1 << 40 | 3,
            kept: None,
        },
        Body::Recalled {
            held: 2 << 40 | 5,
            stored: 1 << 40 | 3,
            kept: Some(b"42".to_vec()),
        },
        Body::Once {
            id: WriteId {
                client: 3,
                seq: 4,
                acked: 1,
            },
            resent_ms: 0,
            inner: Box::new(Body::Set {
                key: b"k".to_vec(),
                expected: Some(0),
                value: pattern(100),
            }),
        },
        Body::Once {
            id: WriteId {
                client: u64::MAX,
                seq: u64::MAX,
                acked: u64::MAX,
            },
            resent_ms: u32::MAX,
            inner: Box::new(Body::Delete {
                key: vec![],
                expected: None,
            }),
        },
        Body::Ack { version: 0 },
        Body::Ack { version: u64::MAX },
        Body::Degraded {
            copies: 1,
            wanted: 2,
        },
        Body::Degraded {
            copies: u16::MAX,
            wanted: 0,
        },
        Body::Inventory {
            done: false,
            entries: vec![],
        },
        Body::Inventory {
            done: true,
            entries: vec![
                (b"k".to_vec(), 1 << 40 | 3),
                (vec![], 0),
                (pattern(DEFAULT_MAX_KEY), u64::MAX),
            ],
        },
        Body::Drop {
            version: 0,
            key: vec![],
        },
        Body::Drop {
            version: u64::MAX,
            key: b"stale".to_vec(),
        },
        Body::Forget { id: String::new() },
        Body::Forget { id: unicode.into() },
        Body::Fetch {
            epoch: 1,
            key: vec![],
        },
        Body::Fetch {
            epoch: u64::MAX,
            key: b"some/key".to_vec(),
        },
        Body::Fetched {
            version: 0,
            value: vec![],
        },
        Body::Fetched {
            version: 7,
            value: pattern(4096),
        },
        Body::Ping,
        Body::Pong,
        Body::Status,
        Body::StatusReply(Status {
            role: ServerRole::Primary,
            epoch: 0,
            replicas: 0,
            keys: 0,
            under_replicated: 0,
            copies_made: 0,
            addr: String::new(),
            primary: String::new(),
            backup: BackupLink::None,
            slaves: vec![],
        }),
        Body::StatusReply(Status {
            role: ServerRole::Backup,
            epoch: 9,
            replicas: 3,
            keys: 1_000_000,
            under_replicated: 12,
            copies_made: 3_211,
            addr: "127.0.0.1:7002".into(),
            primary: "127.0.0.1:7000".into(),
            backup: BackupLink::CatchingUp,
            slaves: vec![
                slave("s1", "127.0.0.1:7001", true, 10),
                slave("", "", false, 0),
                slave(unicode, "[::1]:7003", true, u64::MAX),
            ],
        }),
        Body::StatusReply(Status {
            role: ServerRole::Fenced,
            epoch: u64::MAX,
            replicas: u16::MAX,
            keys: u64::MAX,
            under_replicated: u64::MAX,
            copies_made: u64::MAX,
            addr: unicode.into(),
            primary: "[::1]:7000".into(),
            backup: BackupLink::InStep,
            slaves: vec![slave("only", "10.0.0.1:1", false, 1)],
        }),
        Body::Sync {
            epoch: 2,
            next_version: 2 << 40,
            complete: false,
            events: vec![],
        },
        Body::Sync {
            epoch: u64::MAX,
            next_version: 7,
            complete: true,
            events: vec![
                SyncEvent::SlaveUp {
                    id: "s1".into(),
                    boot: u64::MAX,
                },
                SyncEvent::SlaveDown { id: unicode.into() },
                SyncEvent::SlaveLost { id: "s9".into() },
                SyncEvent::Key {
                    key: b"k".to_vec(),
                    version: 9,
                    holders: vec!["s1".into(), "s2".into()],
                },
                SyncEvent::Key {
                    key: vec![],
                    version: 0,
                    holders: vec![],
                },
                SyncEvent::Intent { key: vec![0xff; 3] },
                SyncEvent::Gone { key: b"g".to_vec() },
                SyncEvent::Standby {
                    id: "127.0.0.1:7003 127.0.0.1:7002".into(),
                },
            ],
        },
        Body::SyncAck,
        Body::Set {
            key: b"k".to_vec(),
            expected: Some(0),
            value: b"v".to_vec(),
        },
        Body::Set {
            key: b"k".to_vec(),
            expected: None,
            value: vec![],
        },
        Body::Delete {
            key: b"k".to_vec(),
            expected: Some(u64::MAX),
        },
        Body::Delete {
            key: b"k".to_vec(),
            expected: None,
        },
        Body::Incr {
            key: b"n".to_vec(),
            delta: -5,
        },
        Body::VRead { key: b"k".to_vec() },
        Body::Scan {
            prefix: b"user:".to_vec(),
            cursor: 0,
            limit: 100,
        },
        Body::Written {
            version: 1 << 40 | 7,
        },
        Body::Versioned {
            version: 3,
            value: b"42".to_vec(),
        },
        Body::Conflict { version: 0 },
        Body::Keys {
            next: 0,
            keys: vec![b"a".to_vec(), vec![]],
        },
        Body::Purge {
            epoch: 1,
            version: 9 | dsm_wire::TOMBSTONE,
            key: b"k".to_vec(),
        },
    ];
    let req_ids = [0, 1, 2, u64::MAX, 0x0102_0304_0506_0708];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Frame::new(req_ids[i % req_ids.len()], body))
        .collect()
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut buf = Vec::new();
    encode(frame, &mut buf);
    buf
}

/// A frame built by hand: a correct header around `body`, whatever `body` holds.
fn raw(op: u8, req_id: u64, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_be_bytes());
    buf.push(op);
    buf.extend_from_slice(&req_id.to_be_bytes());
    buf.extend_from_slice(body);
    buf
}

fn malformed(op: Opcode, reason: &'static str) -> WireError {
    WireError::Malformed {
        op: op as u8,
        reason,
    }
}

#[test]
fn samples_cover_every_opcode() {
    let samples = samples();
    for op in Opcode::ALL {
        assert!(
            samples.iter().any(|f| f.body.opcode() == op),
            "no sample frame for {op:?}: add one to samples()"
        );
    }
}

#[test]
fn opcode_bytes_are_distinct_and_map_back() {
    for (i, op) in Opcode::ALL.iter().enumerate() {
        assert_eq!(Opcode::from_u8(*op as u8), Some(*op));
        for other in &Opcode::ALL[i + 1..] {
            assert_ne!(*op as u8, *other as u8, "{op:?} and {other:?} share a byte");
        }
    }
}

#[test]
fn every_sample_round_trips_and_consumes_exactly_its_bytes() {
    for frame in samples() {
        let buf = encoded(&frame);
        assert_eq!(
            u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize,
            buf.len(),
            "length prefix of {:?}",
            frame.body.opcode()
        );
        assert_eq!(buf[4], frame.body.opcode() as u8);
        assert_eq!(decode(&buf), Ok(Some((frame.clone(), buf.len()))));
    }
}

#[test]
fn every_strict_prefix_of_every_sample_needs_more_bytes() {
    for frame in samples() {
        let buf = encoded(&frame);
        for cut in 0..buf.len() {
            assert_eq!(
                decode(&buf[..cut]),
                Ok(None),
                "{:?} cut to {cut} of {} bytes",
                frame.body.opcode(),
                buf.len()
            );
        }
    }
}

#[test]
fn frames_back_to_back_decode_one_then_the_other() {
    let samples = samples();
    // Every sample followed by the next one (and the last by the first).
    for (i, first) in samples.iter().enumerate() {
        let second = &samples[(i + 1) % samples.len()];
        let mut buf = Vec::new();
        encode(first, &mut buf);
        let first_len = buf.len();
        // encode appends: it must not disturb what the buffer already holds.
        encode(second, &mut buf);
        assert_eq!(decode(&buf), Ok(Some((first.clone(), first_len))));
        assert_eq!(
            decode(&buf[first_len..]),
            Ok(Some((second.clone(), buf.len() - first_len)))
        );
    }
}

#[test]
fn a_partial_second_frame_does_not_disturb_the_first() {
    let first = Frame::new(1, Body::Ping);
    let second = Frame::new(2, Body::Read { key: b"k".to_vec() });
    let mut buf = encoded(&first);
    let first_len = buf.len();
    let second_bytes = encoded(&second);
    buf.extend_from_slice(&second_bytes[..second_bytes.len() - 1]);
    assert_eq!(decode(&buf), Ok(Some((first, first_len))));
    assert_eq!(decode(&buf[first_len..]), Ok(None));
}

#[test]
fn status_reply_has_the_documented_bytes() {
    // The STATUS_REPLY example in PROTOCOL.md: a primary at 127.0.0.1:7000 with its backup in
    // step and one live slave.
    let status = Frame::new(
        5,
        Body::StatusReply(Status {
            role: ServerRole::Primary,
            epoch: 2,
            replicas: 2,
            keys: 1,
            under_replicated: 0,
            copies_made: 0,
            addr: "127.0.0.1:7000".into(),
            primary: "127.0.0.1:7000".into(),
            backup: BackupLink::InStep,
            slaves: vec![slave("s1", "127.0.0.1:40000", true, 1)],
        }),
    );
    let documented = "00000071 33 0000000000000005 \
        01 0000000000000002 0002 0000000000000001 0000000000000000 0000000000000000 \
        000e 3132372e302e302e313a37303030 000e 3132372e302e302e313a37303030 02 \
        0001 0002 7331 000f 3132372e302e302e313a3430303030 01 0000000000000001";
    let documented: String = documented.split_whitespace().collect();
    assert_eq!(hex(&encoded(&status)), documented);
    assert_eq!(decode(&encoded(&status)), Ok(Some((status, 113))));
}

#[test]
fn write_and_ok_have_the_documented_bytes() {
    // The worked example in PROTOCOL.md.
    let write = Frame::new(
        1,
        Body::Write {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    );
    let write_hex = "00000017 10 0000000000000001 00000001 6b 00000001 76";
    assert_eq!(hex(&encoded(&write)), write_hex.replace(' ', ""));
    let ok = Frame::new(1, Body::Ok);
    assert_eq!(hex(&encoded(&ok)), "0000000d120000000000000001");
    let hello = Frame::new(
        0,
        Body::Hello {
            role: Role::Client,
            epoch: 0,
            id: "c1".into(),
            boot: 0,
            nonce: None,
            limits: None,
        },
    );
    let hello_hex =
        "00000024 01 0000000000000000 01 0000000000000000 0002 6331 0000000000000000 00 00";
    assert_eq!(hex(&encoded(&hello)), hello_hex.replace(' ', ""));
}

#[test]
fn exactly_once_frames_have_the_documented_bytes() {
    // The worked example of PROTOCOL.md section 9: client 0x2a's write number 5 of "k" = "v",
    // sent again 250 ms after its first send, with writes below 4 answered.
    let id = WriteId {
        client: 0x2a,
        seq: 5,
        acked: 4,
    };
    let write = Frame::new(
        9,
        Body::WriteOnce {
            id,
            resent_ms: 250,
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    );
    let write_hex = "00000033 17 0000000000000009 000000000000002a 0000000000000005 \
                     0000000000000004 000000fa 00000001 6b 00000001 76";
    assert_eq!(hex(&encoded(&write)), squeeze(write_hex));
    let store = Frame::new(
        3,
        Body::StoreOnce {
            epoch: 2,
            version: 2 << 40 | 1,
            id,
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            keep: false,
        },
    );
    let store_hex = "0000003f 29 0000000000000003 0000000000000002 0000020000000001 \
                     000000000000002a 0000000000000005 0000000000000004 00000001 6b 00000001 76";
    assert_eq!(hex(&encoded(&store)), squeeze(store_hex));
    let recall = Frame::new(
        4,
        Body::Recall {
            epoch: 2,
            client: 0x2a,
            seq: 5,
            age_ms: 260,
            key: b"k".to_vec(),
        },
    );
    let recall_hex = "0000002e 2a 0000000000000004 0000000000000002 000000000000002a \
                      0000000000000005 00000104 00000001 6b";
    assert_eq!(hex(&encoded(&recall)), squeeze(recall_hex));
    let recalled = Frame::new(
        4,
        Body::Recalled {
            held: 1 << 40 | 9,
            stored: 1 << 40 | 7,
            kept: None,
        },
    );
    let recalled_hex = "0000001d 2b 0000000000000004 0000010000000009 0000010000000007";
    assert_eq!(hex(&encoded(&recalled)), squeeze(recalled_hex));
    // ONCE: an INCR of "k" by -1 from the same client, its write number 6, first send.
    let incr = Frame::new(
        10,
        Body::Once {
            id: WriteId {
                client: 0x2a,
                seq: 6,
                acked: 4,
            },
            resent_ms: 0,
            inner: Box::new(Body::Incr {
                key: b"k".to_vec(),
                delta: -1,
            }),
        },
    );
    let incr_hex = "00000037 18 000000000000000a 000000000000002a 0000000000000006 \
                    0000000000000004 00000000 44 00000001 6b ffffffffffffffff";
    assert_eq!(hex(&encoded(&incr)), squeeze(incr_hex));
    // Its STORE_KEEP of the new value "7", and a RECALLED_KEPT giving it back.
    let keep = Frame::new(
        11,
        Body::StoreOnce {
            epoch: 2,
            version: 2 << 40 | 2,
            id: WriteId {
                client: 0x2a,
                seq: 6,
                acked: 4,
            },
            key: b"k".to_vec(),
            value: b"7".to_vec(),
            keep: true,
        },
    );
    let keep_hex = "0000003f 2c 000000000000000b 0000000000000002 0000020000000002 \
                    000000000000002a 0000000000000006 0000000000000004 00000001 6b 00000001 37";
    assert_eq!(hex(&encoded(&keep)), squeeze(keep_hex));
    let kept = Frame::new(
        12,
        Body::Recalled {
            held: 2 << 40 | 2,
            stored: 2 << 40 | 2,
            kept: Some(b"7".to_vec()),
        },
    );
    let kept_hex = "00000022 2d 000000000000000c 0000020000000002 0000020000000002 00000001 37";
    assert_eq!(hex(&encoded(&kept)), squeeze(kept_hex));
    for f in [incr, keep, kept] {
        let bytes = encoded(&f);
        assert_eq!(decode(&bytes).unwrap(), Some((f, bytes.len())));
    }
}

#[test]
fn the_authenticated_handshake_has_the_documented_bytes() {
    // The handshake example in PROTOCOL.md: a slave "s1" with epoch 0 and boot 42; the nonces are the
    // bytes 00..1f (the slave's) and 20..3f (the master's). The proofs are the HMACs the
    // document derives from its example secret (checked against HMAC-SHA256 in dsm-net).
    let peer_nonce = auth_bytes(0x00);
    let master_nonce = auth_bytes(0x20);
    let hello = Frame::new(
        0,
        Body::Hello {
            role: Role::Slave,
            epoch: 0,
            id: "s1".into(),
            boot: 42,
            nonce: Some(Box::new(peer_nonce)),
            limits: Some(Limits {
                max_key: 1024,
                max_value: 1 << 20,
                masters: 2,
            }),
        },
    );
    let hello_hex =
        "0000004e 01 0000000000000000 02 0000000000000000 0002 7331 000000000000002a 01 \
                     000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
                     01 00000400 00100000 0002";
    assert_eq!(hex(&encoded(&hello)), squeeze(hello_hex));
    let challenge = Frame::new(
        0,
        Body::Challenge {
            nonce: master_nonce,
        },
    );
    let challenge_hex = "0000002d 03 0000000000000000 \
                         202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
    assert_eq!(hex(&encoded(&challenge)), squeeze(challenge_hex));
    let peer_proof = "9d13cdc2b9c1c5fa8ffedf162db33853354aa899443b89f13fab3c6efa06cbf7";
    let auth = Frame::new(
        0,
        Body::Auth {
            proof: unhex(peer_proof),
        },
    );
    assert_eq!(
        hex(&encoded(&auth)),
        format!("0000002d040000000000000000{peer_proof}")
    );
    let master_proof = "40444388158e416acf8109ee14adb599aedd2f643fc290d6a40c4858a183d354";
    let welcome = Frame::new(
        0,
        Body::Welcome {
            epoch: 1,
            inventory: true,
            standby: false,
            lease_ms: 400,
            proof: Some(unhex(master_proof)),
        },
    );
    assert_eq!(
        hex(&encoded(&welcome)),
        squeeze(&format!(
            "0000003c 02 0000000000000000 0000000000000001 01 00 00000190 01 {master_proof}"
        ))
    );
}

fn unhex(s: &str) -> [u8; AUTH_LEN] {
    std::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
}

/// A hex string written over several lines, with its spaces and line breaks removed.
fn squeeze(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_hexdigit()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn error_codes_keep_their_numbers() {
    let known = [
        (ErrorCode::BadRequest, 1),
        (ErrorCode::TooLarge, 2),
        (ErrorCode::NoSlaves, 3),
        (ErrorCode::Timeout, 4),
        (ErrorCode::NotPrimary, 5),
        (ErrorCode::StaleEpoch, 6),
        (ErrorCode::Unauthorized, 7),
        (ErrorCode::Busy, 8),
    ];
    for (code, n) in known {
        assert_eq!(code.to_u16(), n);
        assert_eq!(ErrorCode::from_u16(n), code);
    }
    // A code this build does not know survives a decode and re-encode unchanged.
    let buf = raw(Opcode::Error as u8, 5, &[0x01, 0x00, 0, 0]);
    let (frame, _) = decode(&buf).unwrap().unwrap();
    assert_eq!(frame.body, Body::error(ErrorCode::Other(256), ""));
    assert_eq!(encoded(&frame), buf);
}

#[test]
fn role_bytes_are_fixed() {
    for (role, b) in [(Role::Client, 1), (Role::Slave, 2), (Role::Backup, 3)] {
        assert_eq!(role as u8, b);
        assert_eq!(Role::from_u8(b), Some(role));
    }
    let server_roles = [
        (ServerRole::Primary, 1),
        (ServerRole::Backup, 2),
        (ServerRole::Fenced, 3),
        (ServerRole::Recovering, 4),
    ];
    for (role, b) in server_roles {
        assert_eq!(role as u8, b);
        assert_eq!(ServerRole::from_u8(b), Some(role));
    }
}

#[test]
fn default_limits_fit_a_maximal_store() {
    assert_eq!(
        DEFAULT_MAX_FRAME,
        DEFAULT_MAX_VALUE + DEFAULT_MAX_KEY + 64 * 1024
    );
    assert_eq!(
        max_frame_for(DEFAULT_MAX_KEY, DEFAULT_MAX_VALUE),
        DEFAULT_MAX_FRAME
    );
    assert_eq!(max_frame_for(usize::MAX, usize::MAX), u32::MAX as usize);
    let store = Frame::new(
        1,
        Body::Store {
            epoch: 1,
            version: 1,
            key: pattern(DEFAULT_MAX_KEY),
            value: pattern(DEFAULT_MAX_VALUE),
        },
    );
    let buf = encoded(&store);
    assert!(buf.len() <= DEFAULT_MAX_FRAME);
    assert_eq!(decode(&buf), Ok(Some((store, buf.len()))));
}

#[test]
fn long_strings_are_cut_at_a_char_boundary_and_counts_at_u16_max() {
    // 'é' is two bytes: 40,000 of them are 80,000 bytes, cut to the 32,767 that fit 65,535.
    let id = "é".repeat(40_000);
    let hello = Frame::new(
        1,
        Body::Hello {
            role: Role::Slave,
            epoch: 1,
            id,
            boot: 0,
            nonce: None,
            limits: None,
        },
    );
    let (back, _) = decode(&encoded(&hello)).unwrap().unwrap();
    let expected = Body::Hello {
        role: Role::Slave,
        epoch: 1,
        id: "é".repeat(32_767),
        boot: 0,
        nonce: None,
        limits: None,
    };
    assert_eq!(back.body, expected);

    let mut status = Status {
        role: ServerRole::Primary,
        epoch: 1,
        replicas: 2,
        keys: 0,
        under_replicated: 0,
        copies_made: 0,
        addr: String::new(),
        primary: String::new(),
        backup: BackupLink::None,
        slaves: (0..70_000).map(|i| slave("", "", i % 2 == 0, i)).collect(),
    };
    let (back, _) = decode(&encoded(&Frame::new(1, Body::StatusReply(status.clone()))))
        .unwrap()
        .unwrap();
    status.slaves.truncate(u16::MAX as usize);
    assert_eq!(back.body, Body::StatusReply(status));
}

// Regression: `encode` wrote a key or value length as `len as u32`, so a value of 4 GiB went out
// with length 0 and the receiver would have read the value's own bytes as further frames (a
// client could smuggle frames past the master's checks). It now panics instead.
#[cfg(target_pointer_width = "64")]
#[test]
#[should_panic(expected = "key or value over u32::MAX bytes")]
fn a_value_of_4_gib_is_refused_instead_of_wrapping_its_length() {
    // Zeroed pages that are never touched: the panic comes before the copy, so this costs
    // address space, not memory.
    let value = vec![0u8; u32::MAX as usize + 1];
    let write = Frame::new(
        1,
        Body::Write {
            key: b"k".to_vec(),
            value,
        },
    );
    encode(&write, &mut Vec::new());
}

// ---- Typed errors ----

#[test]
fn every_unknown_opcode_byte_is_refused_as_soon_as_it_arrives() {
    for b in 0..=u8::MAX {
        if Opcode::ALL.iter().any(|op| *op as u8 == b) {
            continue;
        }
        let buf = raw(b, 1, &[]);
        assert_eq!(decode(&buf), Err(WireError::UnknownOpcode(b)));
        // Five bytes are enough: no need to wait for the rest of a frame with a bad opcode.
        let long = [0, 0, 0x10, 0, b];
        assert_eq!(decode(&long), Err(WireError::UnknownOpcode(b)));
    }
}

#[test]
fn a_length_shorter_than_the_header_is_too_short() {
    for len in 0..HEADER_LEN as u32 {
        let err = WireError::TooShort {
            len: len as usize,
            min: HEADER_LEN,
        };
        // Found from the length prefix alone, whatever follows.
        assert_eq!(decode(&len.to_be_bytes()), Err(err.clone()));
        let mut buf = len.to_be_bytes().to_vec();
        buf.extend_from_slice(&[Opcode::Ping as u8; 20]);
        assert_eq!(decode(&buf), Err(err));
    }
}

#[test]
fn a_length_over_the_maximum_is_too_large_after_four_bytes() {
    let len = 100u32.to_be_bytes();
    assert_eq!(
        decode_with_max(&len, 99),
        Err(WireError::TooLarge { len: 100, max: 99 })
    );
    // Exactly the maximum is allowed: the decoder waits for the rest.
    assert_eq!(decode_with_max(&len, 100), Ok(None));
    let ping = raw(Opcode::Ping as u8, 3, &[]);
    assert_eq!(
        decode_with_max(&ping, ping.len()),
        Ok(Some((Frame::new(3, Body::Ping), 13)))
    );
    assert_eq!(
        decode_with_max(&ping, ping.len() - 1),
        Err(WireError::TooLarge {
            len: ping.len(),
            max: ping.len() - 1
        })
    );

    // A ~4 GiB prefix fails at once with the default maximum, before the opcode arrives.
    let huge = [0xff; 4];
    let expected = WireError::TooLarge {
        len: u32::MAX as usize,
        max: DEFAULT_MAX_FRAME,
    };
    let (result, largest) = largest_alloc_during(|| decode(&huge));
    assert_eq!(result, Err(expected.clone()));
    assert_eq!(largest, 0, "refusing a length must not allocate");
    assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff, 0x30]), Err(expected));
    let one_over = ((DEFAULT_MAX_FRAME + 1) as u32).to_be_bytes();
    assert_eq!(
        decode(&one_over),
        Err(WireError::TooLarge {
            len: DEFAULT_MAX_FRAME + 1,
            max: DEFAULT_MAX_FRAME
        })
    );
}

#[test]
fn trailing_bytes_inside_a_frame_are_malformed() {
    let trailing = malformed(Opcode::Ping, "trailing bytes after the body");
    assert_eq!(decode(&raw(Opcode::Ping as u8, 1, &[0])), Err(trailing));
    // A WRITE with one byte after its value.
    let mut body = encoded(&Frame::new(
        1,
        Body::Write {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    ))[HEADER_LEN..]
        .to_vec();
    body.push(0);
    assert_eq!(
        decode(&raw(Opcode::Write as u8, 1, &body)),
        Err(malformed(Opcode::Write, "trailing bytes after the body"))
    );
    // Every sample with one extra byte counted inside its length.
    for frame in samples() {
        let op = frame.body.opcode();
        let mut body = encoded(&frame)[HEADER_LEN..].to_vec();
        body.push(0xaa);
        assert_eq!(
            decode(&raw(op as u8, frame.req_id, &body)),
            Err(malformed(op, "trailing bytes after the body"))
        );
    }
}

#[test]
fn a_body_shorter_than_its_fields_is_malformed() {
    let short = "body shorter than its fields";
    assert_eq!(
        decode(&raw(Opcode::Ack as u8, 1, &[0; 7])),
        Err(malformed(Opcode::Ack, short))
    );
    // A key length that claims more bytes than the frame holds.
    assert_eq!(
        decode(&raw(Opcode::Read as u8, 1, &[0, 0, 0, 5, b'a', b'b'])),
        Err(malformed(Opcode::Read, short))
    );
    // A key length of 4 GiB - 1 in a tiny frame: refused without reserving the 4 GiB.
    let (result, largest) =
        largest_alloc_during(|| decode(&raw(Opcode::Write as u8, 1, &[0xff, 0xff, 0xff, 0xff, 1])));
    assert_eq!(result, Err(malformed(Opcode::Write, short)));
    assert!(largest < 4096, "decode allocated {largest} bytes");
    // Every sample whose body has fields, with its last body byte cut (and the length fixed to
    // match): the body no longer holds its fields.
    for frame in samples() {
        let op = frame.body.opcode();
        let body = &encoded(&frame)[HEADER_LEN..];
        if body.is_empty() {
            continue;
        }
        assert_eq!(
            decode(&raw(op as u8, frame.req_id, &body[..body.len() - 1])),
            Err(malformed(op, short)),
            "{op:?}"
        );
    }
}

#[test]
fn bad_utf8_in_a_string_is_malformed() {
    let not_utf8 = "string is not UTF-8";
    // HELLO: role, epoch, id of two bytes that are not UTF-8.
    let mut body = vec![Role::Client as u8];
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(&[0, 2, 0xc3, 0x28]);
    assert_eq!(
        decode(&raw(Opcode::Hello as u8, 1, &body)),
        Err(malformed(Opcode::Hello, not_utf8))
    );
    // ERROR text that stops in the middle of a character.
    let mut body = vec![0, 1, 0, 2];
    body.extend_from_slice(&"é".as_bytes()[..1]);
    body.push(b'x');
    assert_eq!(
        decode(&raw(Opcode::Error as u8, 1, &body)),
        Err(malformed(Opcode::Error, not_utf8))
    );
    // A slave address in STATUS_REPLY.
    let mut body = status_head(1);
    body.extend_from_slice(&[0, 0, 0, 1, 0xff, 1]);
    body.extend_from_slice(&0u64.to_be_bytes());
    assert_eq!(
        decode(&raw(Opcode::StatusReply as u8, 1, &body)),
        Err(malformed(Opcode::StatusReply, not_utf8))
    );
}

/// A STATUS_REPLY body up to and including the slave count.
fn status_head(slaves: u16) -> Vec<u8> {
    let mut body = vec![ServerRole::Primary as u8];
    body.extend_from_slice(&1u64.to_be_bytes());
    body.extend_from_slice(&2u16.to_be_bytes());
    body.extend_from_slice(&3u64.to_be_bytes());
    body.extend_from_slice(&4u64.to_be_bytes());
    body.extend_from_slice(&5u64.to_be_bytes());
    // addr and primary: empty strings; the backup link: none.
    body.extend_from_slice(&[0, 0, 0, 0, BackupLink::None as u8]);
    body.extend_from_slice(&slaves.to_be_bytes());
    body
}

#[test]
fn bad_role_and_flag_bytes_are_malformed() {
    for b in [0u8, 5, 0x7f, 0xff] {
        let mut hello = vec![b];
        hello.extend_from_slice(&0u64.to_be_bytes());
        hello.extend_from_slice(&[0, 0]);
        assert_eq!(
            decode(&raw(Opcode::Hello as u8, 1, &hello)),
            Err(malformed(Opcode::Hello, "unknown role"))
        );
        let mut status = status_head(0);
        status[0] = b;
        assert_eq!(
            decode(&raw(Opcode::StatusReply as u8, 1, &status)),
            Err(malformed(Opcode::StatusReply, "unknown server role"))
        );
    }
    for b in [2u8, 0xff] {
        let mut welcome = 5u64.to_be_bytes().to_vec();
        welcome.extend_from_slice(&[b, 0]);
        assert_eq!(
            decode(&raw(Opcode::Welcome as u8, 1, &welcome)),
            Err(malformed(Opcode::Welcome, "flag byte is neither 0 nor 1"))
        );
        // The flag before an optional nonce or proof: anything but 0 or 1 is no encoding.
        let mut welcome = 5u64.to_be_bytes().to_vec();
        welcome.extend_from_slice(&[1, b]);
        welcome.extend_from_slice(&[0; AUTH_LEN]);
        assert_eq!(
            decode(&raw(Opcode::Welcome as u8, 1, &welcome)),
            Err(malformed(Opcode::Welcome, "flag byte is neither 0 nor 1"))
        );
        let mut hello = vec![Role::Slave as u8];
        hello.extend_from_slice(&0u64.to_be_bytes());
        hello.extend_from_slice(&[0, 0]);
        hello.extend_from_slice(&7u64.to_be_bytes());
        hello.push(b);
        hello.extend_from_slice(&[0; AUTH_LEN]);
        assert_eq!(
            decode(&raw(Opcode::Hello as u8, 1, &hello)),
            Err(malformed(Opcode::Hello, "flag byte is neither 0 nor 1"))
        );
        let mut status = status_head(1);
        status.extend_from_slice(&[0, 0, 0, 0, b]);
        status.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(
            decode(&raw(Opcode::StatusReply as u8, 1, &status)),
            Err(malformed(
                Opcode::StatusReply,
                "flag byte is neither 0 nor 1"
            ))
        );
    }
}

#[test]
fn an_unknown_backup_link_byte_is_malformed() {
    for b in [3u8, 0x7f, 0xff] {
        let mut status = status_head(0);
        let link = status.len() - 3;
        status[link] = b;
        assert_eq!(
            decode(&raw(Opcode::StatusReply as u8, 1, &status)),
            Err(malformed(Opcode::StatusReply, "unknown backup link state"))
        );
    }
}

#[test]
fn a_slave_count_the_body_cannot_hold_is_malformed_without_allocating_for_it() {
    let body = status_head(u16::MAX);
    let buf = raw(Opcode::StatusReply as u8, 1, &body);
    let (result, largest) = largest_alloc_during(|| decode(&buf));
    assert_eq!(
        result,
        Err(malformed(
            Opcode::StatusReply,
            "slave count larger than the body"
        ))
    );
    assert!(largest < 4096, "decode allocated {largest} bytes");

    // The smallest slave entry is 13 bytes (two empty strings, a flag, a u64): n such entries
    // decode, and a count of n + 1 over the same bytes is refused before reading them.
    let n = 5u16;
    let mut entries = Vec::new();
    for i in 0..n {
        entries.extend_from_slice(&[0, 0, 0, 0, 1]);
        entries.extend_from_slice(&u64::from(i).to_be_bytes());
    }
    let mut fits = status_head(n);
    fits.extend_from_slice(&entries);
    let (frame, _) = decode(&raw(Opcode::StatusReply as u8, 1, &fits))
        .unwrap()
        .unwrap();
    match frame.body {
        Body::StatusReply(s) => assert_eq!(s.slaves.len(), n as usize),
        other => panic!("decoded {other:?}"),
    }
    let mut over = status_head(n + 1);
    over.extend_from_slice(&entries);
    assert_eq!(
        decode(&raw(Opcode::StatusReply as u8, 1, &over)),
        Err(malformed(
            Opcode::StatusReply,
            "slave count larger than the body"
        ))
    );
}

#[test]
fn errors_name_their_numbers() {
    let cases = [
        (
            WireError::TooShort { len: 3, min: 13 },
            "frame length 3 is shorter than the 13-byte header",
        ),
        (
            WireError::TooLarge { len: 10, max: 9 },
            "frame length 10 is over the maximum of 9 bytes",
        ),
        (WireError::UnknownOpcode(0xab), "unknown opcode 0xab"),
        (
            malformed(Opcode::Read, "body shorter than its fields"),
            "malformed body for opcode 0x11: body shorter than its fields",
        ),
    ];
    for (err, text) in cases {
        assert_eq!(err.to_string(), text);
    }
}

/// A SYNC body up to and including the event count.
fn sync_head(complete: u8, events: u32) -> Vec<u8> {
    let mut body = 3u64.to_be_bytes().to_vec();
    body.extend_from_slice(&(3u64 << 40 | 1).to_be_bytes());
    body.push(complete);
    body.extend_from_slice(&events.to_be_bytes());
    body
}

#[test]
fn an_event_count_the_body_cannot_hold_is_malformed_without_allocating_for_it() {
    let too_many = "event count larger than the body";
    // 4 billion events claimed in a 21-byte body: reserving room for them first would ask for
    // hundreds of GiB and abort the process.
    let buf = raw(Opcode::Sync as u8, 1, &sync_head(1, u32::MAX));
    let (result, largest) = largest_alloc_during(|| decode(&buf));
    assert_eq!(result, Err(malformed(Opcode::Sync, too_many)));
    assert!(largest < 4096, "decode allocated {largest} bytes");

    // The smallest event is 3 bytes (SLAVE_DOWN with an empty id): n of them decode, and a
    // count of n + 1 over the same bytes is refused before reading them.
    let n = 7u32;
    let events = [2u8, 0, 0].repeat(n as usize);
    let mut fits = sync_head(0, n);
    fits.extend_from_slice(&events);
    let expected = Body::Sync {
        epoch: 3,
        next_version: 3 << 40 | 1,
        complete: false,
        events: vec![SyncEvent::SlaveDown { id: String::new() }; n as usize],
    };
    assert_eq!(
        decode(&raw(Opcode::Sync as u8, 9, &fits)),
        Ok(Some((Frame::new(9, expected), HEADER_LEN + fits.len())))
    );
    let mut over = sync_head(0, n + 1);
    over.extend_from_slice(&events);
    assert_eq!(
        decode(&raw(Opcode::Sync as u8, 9, &over)),
        Err(malformed(Opcode::Sync, too_many))
    );
}

#[test]
fn bad_sync_bytes_are_malformed() {
    for tag in [0u8, 8, 0xff] {
        let mut body = sync_head(1, 1);
        body.extend_from_slice(&[tag, 0, 0]);
        assert_eq!(
            decode(&raw(Opcode::Sync as u8, 1, &body)),
            Err(malformed(Opcode::Sync, "unknown sync event"))
        );
    }
    assert_eq!(
        decode(&raw(Opcode::Sync as u8, 1, &sync_head(2, 0))),
        Err(malformed(Opcode::Sync, "flag byte is neither 0 nor 1"))
    );
    // A KEY event whose holder count promises more ids than follow.
    let mut body = sync_head(1, 1);
    body.push(3);
    body.extend_from_slice(&[0, 0, 0, 1, b'k']);
    body.extend_from_slice(&5u64.to_be_bytes());
    body.push(3);
    body.extend_from_slice(&[0, 2, b's', b'1']);
    assert_eq!(
        decode(&raw(Opcode::Sync as u8, 1, &body)),
        Err(malformed(Opcode::Sync, "body shorter than its fields"))
    );
    // A SLAVE_DOWN id that is not UTF-8.
    let mut body = sync_head(1, 1);
    body.extend_from_slice(&[2, 0, 1, 0xff]);
    assert_eq!(
        decode(&raw(Opcode::Sync as u8, 1, &body)),
        Err(malformed(Opcode::Sync, "string is not UTF-8"))
    );
}

#[test]
fn a_key_event_sends_at_most_255_holders() {
    let holders: Vec<String> = (0..300).map(|i| format!("s{i}")).collect();
    let event = |holders: Vec<String>| SyncEvent::Key {
        key: b"k".to_vec(),
        version: 1,
        holders,
    };
    let sync = |events| Body::Sync {
        epoch: 1,
        next_version: 2,
        complete: true,
        events,
    };
    let buf = encoded(&Frame::new(1, sync(vec![event(holders.clone())])));
    let (back, _) = decode(&buf).unwrap().unwrap();
    assert_eq!(back.body, sync(vec![event(holders[..255].to_vec())]));
}

/// A body ending in a value written as its head (`encode_ref_head`) and then its value is byte
/// for byte the frame `encode_ref` writes whole; any other body writes nothing.
#[test]
fn store_head_then_value_is_the_whole_frame() {
    let value = vec![7u8; 70_000];
    let id = WriteId {
        client: 3,
        seq: 9,
        acked: 8,
    };
    let bodies = [
        dsm_wire::BodyRef::Store {
            epoch: 2,
            version: 5,
            key: b"k",
            value: &value,
        },
        dsm_wire::BodyRef::StoreOnce {
            epoch: 2,
            version: 5,
            id,
            key: b"key",
            value: &value,
            keep: false,
        },
        dsm_wire::BodyRef::StoreOnce {
            epoch: 2,
            version: 5,
            id,
            key: b"key",
            value: &value,
            keep: true,
        },
        dsm_wire::BodyRef::Value { value: &value },
        dsm_wire::BodyRef::Versioned {
            version: 4,
            value: &value,
        },
        dsm_wire::BodyRef::Fetched {
            version: 4,
            value: &value,
        },
    ];
    for body in bodies {
        let mut whole = Vec::new();
        dsm_wire::encode_ref(42, &body, &mut whole);
        let mut split = vec![1, 2, 3];
        let tail = dsm_wire::encode_ref_head(42, &body, &mut split).expect("a value body");
        split.extend_from_slice(tail);
        assert_eq!(&split[3..], &whole[..]);
        let (frame, used) = decode(&split[3..]).unwrap().unwrap();
        assert_eq!(used, whole.len());
        assert_eq!(frame.req_id, 42);
    }
    let mut out = Vec::new();
    let fetch = dsm_wire::BodyRef::Fetch {
        epoch: 1,
        key: b"k",
    };
    assert!(dsm_wire::encode_ref_head(1, &fetch, &mut out).is_none());
    assert!(out.is_empty());
}

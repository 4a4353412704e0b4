//! Randomized decode tests with a fixed-seed PRNG: random, truncated and mutated frames must never
//! panic, and whatever decodes must re-encode to the same bytes.
//!
//! `DSM_FUZZ_SEED=<u64 or 0xHEX>` picks another seed; `DSM_FUZZ_ITERS=<n>` runs longer.

use std::panic;

use dsm_wire::{
    decode, decode_borrowed, decode_with_max, encode, BackupLink, Body, ErrorCode, Frame, Limits,
    Opcode, Role, ServerRole, SlaveStatus, Status, SyncEvent, WireError, WriteId, AUTH_LEN,
    DEFAULT_MAX_FRAME, HEADER_LEN,
};

const DEFAULT_SEED: u64 = 0x00d5_3a11_c0de_c0de;
const DEFAULT_ITERS: u64 = 200_000;

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that 0 and small seeds still give a non-zero state.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let n = self.below(max_len + 1);
        (0..n).map(|_| self.byte()).collect()
    }
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    /// Mostly edge values: they are where length and range checks break.
    fn u64(&mut self) -> u64 {
        match self.below(5) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            _ => self.next(),
        }
    }
    fn u16(&mut self) -> u16 {
        match self.below(4) {
            0 => 0,
            1 => u16::MAX,
            _ => self.next() as u16,
        }
    }
    /// A short string mixing one-, two-, three- and four-byte characters.
    fn string(&mut self) -> String {
        const CHARS: [char; 6] = ['a', 'Z', '0', 'é', '日', '🦀'];
        let n = self.below(8);
        (0..n).map(|_| CHARS[self.below(CHARS.len())]).collect()
    }
    fn auth(&mut self) -> [u8; AUTH_LEN] {
        std::array::from_fn(|_| self.byte())
    }
    fn opt_auth(&mut self) -> Option<[u8; AUTH_LEN]> {
        self.one_in(2).then(|| self.auth())
    }
    /// A byte that a length or opcode check is likely to care about.
    fn interesting_byte(&mut self) -> u8 {
        const BYTES: [u8; 8] = [0x00, 0x01, 0x0c, 0x0d, 0x7f, 0x80, 0xfe, 0xff];
        if self.one_in(2) {
            BYTES[self.below(BYTES.len())]
        } else {
            self.byte()
        }
    }
}

fn random_frame(rng: &mut Rng) -> Frame {
    let op = Opcode::ALL[rng.below(Opcode::ALL.len())];
    // An exhaustive match: a new opcode does not compile until it has a generator here.
    let body = match op {
        Opcode::Hello => Body::Hello {
            role: Role::from_u8(1 + rng.below(3) as u8).unwrap(),
            epoch: rng.u64(),
            id: rng.string(),
            boot: rng.u64(),
            nonce: rng.opt_auth().map(Box::new),
            limits: rng.one_in(2).then(|| Limits {
                max_key: rng.u64() as u32,
                max_value: rng.u64() as u32,
                masters: rng.u64() as u16,
            }),
        },
        Opcode::Welcome => Body::Welcome {
            epoch: rng.u64(),
            inventory: rng.one_in(2),
            standby: rng.one_in(2),
            lease_ms: rng.u64() as u32,
            proof: rng.opt_auth(),
        },
        Opcode::Challenge => Body::Challenge { nonce: rng.auth() },
        Opcode::Auth => Body::Auth { proof: rng.auth() },
        Opcode::Write => Body::Write {
            key: rng.bytes(16),
            value: rng.bytes(64),
        },
        Opcode::WriteOnce => Body::WriteOnce {
            id: write_id(rng),
            resent_ms: rng.u64() as u32,
            key: rng.bytes(16),
            value: rng.bytes(64),
        },
        Opcode::StoreOnce | Opcode::StoreKeep => Body::StoreOnce {
            epoch: rng.u64(),
            version: rng.u64(),
            id: write_id(rng),
            key: rng.bytes(16),
            value: rng.bytes(64),
            keep: op == Opcode::StoreKeep,
        },
        Opcode::Recall => Body::Recall {
            epoch: rng.u64(),
            client: rng.u64(),
            seq: rng.u64(),
            age_ms: rng.u64() as u32,
            key: rng.bytes(16),
        },
        Opcode::Recalled => Body::Recalled {
            held: rng.u64(),
            stored: rng.u64(),
            kept: None,
        },
        Opcode::RecalledKept => Body::Recalled {
            held: rng.u64(),
            stored: rng.u64(),
            kept: Some(rng.bytes(20)),
        },
        Opcode::Once => Body::Once {
            id: write_id(rng),
            resent_ms: rng.u64() as u32,
            inner: Box::new(match rng.below(3) {
                0 => Body::Set {
                    key: rng.bytes(16),
                    expected: rng.one_in(2).then(|| rng.u64()),
                    value: rng.bytes(64),
                },
                1 => Body::Delete {
                    key: rng.bytes(16),
                    expected: rng.one_in(2).then(|| rng.u64()),
                },
                _ => Body::Incr {
                    key: rng.bytes(16),
                    delta: rng.u64() as i64,
                },
            }),
        },
        Opcode::Read => Body::Read { key: rng.bytes(16) },
        Opcode::Ok => Body::Ok,
        Opcode::Value => Body::Value {
            value: rng.bytes(64),
        },
        Opcode::NotFound => Body::NotFound,
        Opcode::Error => Body::Error {
            code: ErrorCode::from_u16(if rng.one_in(2) {
                rng.below(10) as u16
            } else {
                rng.u16()
            }),
            text: rng.string(),
        },
        Opcode::Store => Body::Store {
            epoch: rng.u64(),
            version: rng.u64(),
            key: rng.bytes(16),
            value: rng.bytes(64),
        },
        Opcode::Ack => Body::Ack { version: rng.u64() },
        Opcode::Degraded => Body::Degraded {
            copies: rng.u16(),
            wanted: rng.u16(),
        },
        Opcode::Inventory => Body::Inventory {
            done: rng.one_in(2),
            entries: (0..rng.below(4))
                .map(|_| (rng.bytes(16), rng.u64()))
                .collect(),
        },
        Opcode::Drop => Body::Drop {
            version: rng.u64(),
            key: rng.bytes(16),
        },
        Opcode::Forget => Body::Forget { id: rng.string() },
        Opcode::Takeover => Body::Takeover {
            epoch: rng.u64(),
            inventory: rng.one_in(2),
            lease_ms: rng.u64() as u32,
            id: rng.string(),
            voters: rng.u64() as u16,
        },
        Opcode::Vote => Body::Vote {
            granted: rng.one_in(2),
            stale: rng.one_in(2),
            voters: rng.u64() as u16,
        },
        Opcode::Stale => Body::Stale {
            gen: rng.u64(),
            voters: rng.u64() as u16,
            ids: (0..rng.below(4)).map(|_| rng.string()).collect(),
        },
        Opcode::Fetch => Body::Fetch {
            epoch: rng.u64(),
            key: rng.bytes(16),
        },
        Opcode::Fetched => Body::Fetched {
            version: rng.u64(),
            value: rng.bytes(64),
        },
        Opcode::Release => Body::Release,
        Opcode::Released => Body::Released { below: rng.u64() },
        Opcode::Ping => Body::Ping,
        Opcode::Pong => Body::Pong,
        Opcode::Status => Body::Status,
        Opcode::StatusReply => {
            let n = rng.below(4);
            Body::StatusReply(Status {
                role: ServerRole::from_u8(1 + rng.below(4) as u8).unwrap(),
                epoch: rng.u64(),
                replicas: rng.u16(),
                keys: rng.u64(),
                under_replicated: rng.u64(),
                copies_made: rng.u64(),
                addr: rng.string(),
                primary: rng.string(),
                backup: BackupLink::from_u8(rng.below(3) as u8).unwrap(),
                slaves: (0..n)
                    .map(|_| SlaveStatus {
                        id: rng.string(),
                        addr: rng.string(),
                        live: rng.one_in(2),
                        keys: rng.u64(),
                    })
                    .collect(),
            })
        }
        Opcode::Sync => Body::Sync {
            epoch: rng.u64(),
            next_version: rng.u64(),
            complete: rng.one_in(2),
            events: (0..rng.below(6))
                .map(|_| match rng.below(7) {
                    0 => SyncEvent::SlaveUp {
                        id: rng.string(),
                        boot: rng.u64(),
                    },
                    1 => SyncEvent::SlaveDown { id: rng.string() },
                    4 => SyncEvent::SlaveLost { id: rng.string() },
                    2 => SyncEvent::Key {
                        key: rng.bytes(16),
                        version: rng.u64(),
                        holders: (0..rng.below(4)).map(|_| rng.string()).collect(),
                    },
                    5 => SyncEvent::Gone { key: rng.bytes(16) },
                    6 => SyncEvent::Standby { id: rng.string() },
                    _ => SyncEvent::Intent { key: rng.bytes(16) },
                })
                .collect(),
        },
        Opcode::SyncAck => Body::SyncAck,
        Opcode::Set => Body::Set {
            key: rng.bytes(16),
            expected: rng.one_in(2).then(|| rng.u64()),
            value: rng.bytes(64),
        },
        Opcode::Delete => Body::Delete {
            key: rng.bytes(16),
            expected: rng.one_in(2).then(|| rng.u64()),
        },
        Opcode::Incr => Body::Incr {
            key: rng.bytes(16),
            delta: rng.u64() as i64,
        },
        Opcode::VRead => Body::VRead { key: rng.bytes(16) },
        Opcode::Scan => Body::Scan {
            prefix: rng.bytes(16),
            cursor: rng.u64(),
            limit: rng.u64() as u32,
        },
        Opcode::Written => Body::Written { version: rng.u64() },
        Opcode::Versioned => Body::Versioned {
            version: rng.u64(),
            value: rng.bytes(64),
        },
        Opcode::Conflict => Body::Conflict { version: rng.u64() },
        Opcode::Keys => Body::Keys {
            next: rng.u64(),
            keys: (0..rng.below(4)).map(|_| rng.bytes(16)).collect(),
        },
        Opcode::Purge => Body::Purge {
            epoch: rng.u64(),
            version: rng.u64(),
            key: rng.bytes(16),
        },
    };
    Frame::new(rng.u64(), body)
}

fn write_id(rng: &mut Rng) -> WriteId {
    WriteId {
        client: rng.u64(),
        seq: rng.u64(),
        acked: rng.u64(),
    }
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut buf = Vec::new();
    encode(frame, &mut buf);
    buf
}

/// Flip, overwrite, insert or delete a few bytes of `buf`.
fn mutate(rng: &mut Rng, buf: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        if buf.is_empty() {
            buf.push(rng.byte());
            continue;
        }
        let at = rng.below(buf.len());
        match rng.below(5) {
            0 | 1 => buf[at] ^= 1 << rng.below(8),
            2 => buf[at] = rng.interesting_byte(),
            3 => buf.insert(at, rng.interesting_byte()),
            _ => {
                buf.remove(at);
            }
        }
    }
}

/// One test input, and whether it must decode to `Ok(None)`.
fn random_input(rng: &mut Rng) -> (Vec<u8>, bool) {
    match rng.below(6) {
        // Noise.
        0 => (rng.bytes(64), false),
        // A correct header (length, mostly a known opcode) around a random body, so the body
        // parsers see noise instead of the length check refusing almost everything.
        1 => {
            let body = rng.bytes(48);
            let op = if rng.one_in(8) {
                rng.byte()
            } else {
                Opcode::ALL[rng.below(Opcode::ALL.len())] as u8
            };
            let mut buf = ((HEADER_LEN + body.len()) as u32).to_be_bytes().to_vec();
            buf.push(op);
            buf.extend_from_slice(&rng.next().to_be_bytes());
            buf.extend_from_slice(&body);
            (buf, false)
        }
        // A strict prefix of a valid frame: must ask for more bytes.
        2 => {
            let buf = encoded(&random_frame(rng));
            let cut = rng.below(buf.len());
            (buf[..cut].to_vec(), true)
        }
        // A valid frame, mutated.
        3 | 4 => {
            let mut buf = encoded(&random_frame(rng));
            mutate(rng, &mut buf);
            (buf, false)
        }
        // Two valid frames back to back, mutated or not, possibly cut.
        _ => {
            let mut buf = encoded(&random_frame(rng));
            encode(&random_frame(rng), &mut buf);
            if rng.one_in(2) {
                mutate(rng, &mut buf);
            }
            if rng.one_in(2) {
                let cut = rng.below(buf.len() + 1);
                buf.truncate(cut);
            }
            (buf, false)
        }
    }
}

/// What `decode` made of one input.
#[derive(Clone, Copy)]
enum Outcome {
    Decoded,
    Partial,
    Refused,
}

/// Decode `input` and check what came back against its header; on failure, describe the first
/// violated property.
fn check(input: &[u8], max: usize) -> Result<Outcome, String> {
    let result = panic::catch_unwind(|| decode_with_max(input, max))
        .map_err(|_| "decode panicked".to_string())?;
    // The borrowing decoder is the same decoder: same frame, same length, same error.
    let borrowed = panic::catch_unwind(|| {
        decode_borrowed(input, max).map(|o| o.map(|(d, used)| (d.into_frame(), used)))
    })
    .map_err(|_| "decode_borrowed panicked".to_string())?;
    if borrowed != result {
        return Err(format!(
            "decode_borrowed gave {borrowed:?}, decode_with_max {result:?}"
        ));
    }
    let declared = (input.len() >= 4).then(|| u32::from_be_bytes(input[..4].try_into().unwrap()));
    let declared = declared.map(|l| l as usize);
    let known_op = input.get(4).and_then(|b| Opcode::from_u8(*b));
    match result {
        Ok(Some((frame, used))) => {
            if used > input.len() {
                return Err(format!("consumed {used} of {} bytes", input.len()));
            }
            if Some(used) != declared || used < HEADER_LEN || used > max {
                return Err(format!("consumed {used}, length prefix {declared:?}"));
            }
            let again = encoded(&frame);
            if again != input[..used] {
                return Err(format!("{frame:?} re-encodes to {again:02x?}"));
            }
            let back = decode_with_max(&again, max);
            if back != Ok(Some((frame.clone(), used))) {
                return Err(format!("{frame:?} re-encoded decodes to {back:?}"));
            }
            Ok(Outcome::Decoded)
        }
        Ok(None) => {
            if let Some(len) = declared {
                let valid_len = (HEADER_LEN..=max).contains(&len);
                if !valid_len || input.len() >= len || (input.len() >= 5 && known_op.is_none()) {
                    return Err(format!("Ok(None) for a {}-byte input", input.len()));
                }
            }
            Ok(Outcome::Partial)
        }
        Err(e) => {
            let consistent = match (&e, declared) {
                (WireError::TooShort { len, min }, Some(d)) => {
                    *len == d && *min == HEADER_LEN && d < *min
                }
                (WireError::TooLarge { len, max: m }, Some(d)) => *len == d && *m == max && d > max,
                (WireError::UnknownOpcode(b), Some(_)) => input[4] == *b && known_op.is_none(),
                (WireError::Malformed { op, .. }, Some(d)) => {
                    input[4] == *op && known_op.is_some() && input.len() >= d
                }
                _ => false,
            };
            if !consistent {
                return Err(format!("{e:?} does not match the header"));
            }
            Ok(Outcome::Refused)
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a u64")))
}

#[test]
fn random_and_mutated_input_never_breaks_decode() {
    let seed = env_u64("DSM_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let iters = env_u64("DSM_FUZZ_ITERS").unwrap_or(DEFAULT_ITERS);
    let mut rng = Rng::new(seed);
    let (mut decoded, mut partial, mut refused) = (0u64, 0u64, 0u64);
    for i in 0..iters {
        let (input, must_be_partial) = random_input(&mut rng);
        // Mostly the default maximum; sometimes a small one so TooLarge shows up on real frames.
        let max = if rng.one_in(8) {
            HEADER_LEN + rng.below(96)
        } else {
            DEFAULT_MAX_FRAME
        };
        let fail = |why: String| -> ! {
            panic!("DSM_FUZZ_SEED={seed:#x}, iteration {i}, max {max}: {why}\ninput: {input:02x?}")
        };
        match check(&input, max) {
            Ok(Outcome::Decoded) => decoded += 1,
            Ok(Outcome::Partial) => partial += 1,
            Ok(Outcome::Refused) => refused += 1,
            Err(why) => fail(why),
        }
        // Generated frames are far below the default maximum, so their prefixes always wait.
        if must_be_partial && decode(&input) != Ok(None) {
            fail("a strict prefix of a valid frame did not ask for more bytes".into());
        }
    }
    eprintln!(
        "seed {seed:#x}: {iters} inputs, {decoded} decoded, {partial} partial, {refused} refused"
    );
    // The generator must keep reaching every outcome, or the test checks less than it claims.
    if iters >= 10_000 {
        assert!(
            decoded > iters / 20,
            "only {decoded} of {iters} inputs decoded"
        );
        assert!(
            partial > iters / 20,
            "only {partial} of {iters} inputs were partial"
        );
        assert!(
            refused > iters / 20,
            "only {refused} of {iters} inputs were refused"
        );
    }
}

#[test]
fn the_prng_is_deterministic() {
    let mut a = Rng::new(7);
    let mut b = Rng::new(7);
    let mut c = Rng::new(8);
    let xs: Vec<u64> = (0..4).map(|_| a.next()).collect();
    assert_eq!(xs, (0..4).map(|_| b.next()).collect::<Vec<_>>());
    assert_ne!(xs, (0..4).map(|_| c.next()).collect::<Vec<_>>());
    assert_ne!(Rng::new(0).next(), 0);
}

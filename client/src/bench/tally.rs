//! What each bench request is and what its reply counts as: the workload plan, the request
//! bodies, and the tally of latencies, error replies, mismatched reads and NOT_FOUNDs. No
//! sockets and no clock: the event loop passes latencies in.

use std::time::Duration;

use dsm_wire::{Body, BodyRef, Decoded, Frame};
use hdrhistogram::Histogram;

use super::check::{splitmix, KeyBook, ValueGen, Verdict};
use super::report::{new_histogram, Summary};
use super::{BenchConfig, Workload};

/// One request as the bench remembers it until its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Ping,
    Write {
        key: usize,
        version: u64,
    },
    /// `floor`: the version acknowledged for the key when the read was sent.
    Read {
        key: usize,
        floor: u64,
    },
}

/// Every bench key starts with this; the key number follows in decimal.
pub const KEY_PREFIX: &[u8] = b"bench:";

/// Decimal digits of `n` (1 for 0).
pub fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The smallest `--key-size` that gives each of `keys` keys its own name of exactly that many
/// bytes: the prefix and the digits of the largest key number, `keys - 1`.
pub fn min_key_size(keys: usize) -> usize {
    KEY_PREFIX.len() + digits(keys.saturating_sub(1))
}

pub struct Tally {
    workload: Workload,
    keys: usize,
    /// Key numbers are zero-padded to this many digits (0: not padded).
    key_digits: usize,
    conns: usize,
    gen: ValueGen,
    book: KeyBook,
    hist: Histogram<u64>,
    pub completed: u64,
    pub error_replies: u64,
    pub mismatches: u64,
    pub not_found: u64,
}

impl Tally {
    /// `run` seeds the values, so a value left by an earlier run never passes a check.
    pub fn new(cfg: &BenchConfig, run: u64) -> Tally {
        Tally {
            workload: cfg.workload,
            keys: cfg.keys,
            key_digits: cfg
                .key_size
                .map_or(0, |b| b.saturating_sub(KEY_PREFIX.len())),
            conns: cfg.clients,
            gen: ValueGen::new(run, cfg.value_size),
            book: KeyBook::new(cfg.keys),
            hist: new_histogram(),
            completed: 0,
            error_replies: 0,
            mismatches: 0,
            not_found: 0,
        }
    }

    /// The name of key number `key`, for messages.
    fn key_label(&self, key: usize) -> String {
        let mut b = Vec::new();
        key_name(key, self.key_digits, &mut b);
        String::from_utf8_lossy(&b).into_owned()
    }

    /// `WRITE bench:3`, for messages.
    fn request_label(&self, request: Request) -> String {
        match request {
            Request::Ping => "PING".into(),
            Request::Write { key, .. } => format!("WRITE {}", self.key_label(key)),
            Request::Read { key, .. } => format!("READ {}", self.key_label(key)),
        }
    }

    pub fn failures(&self) -> u64 {
        self.error_replies + self.mismatches + self.not_found
    }

    /// The untimed write of `key` before a read or mixed run.
    pub fn preload(&mut self, key: usize) -> Request {
        Request::Write {
            key,
            version: self.book.next_write(key),
        }
    }

    /// Timed request number `i`, to be sent on connection `conn` (whose generator is `rng`).
    pub fn plan(&mut self, conn: usize, i: u64, rng: &mut u64) -> Request {
        let key = match self.workload {
            Workload::Ping => return Request::Ping,
            Workload::Write | Workload::Read => (i % self.keys as u64) as usize,
            // A key this connection owns (k mod N = conn), so only it ever writes the key.
            Workload::Mixed => {
                let owned = (self.keys - conn).div_ceil(self.conns);
                conn + self.conns * (splitmix(rng) % owned as u64) as usize
            }
        };
        let write = match self.workload {
            Workload::Write => true,
            Workload::Mixed => splitmix(rng) >> 63 == 0,
            _ => false,
        };
        if write {
            Request::Write {
                key,
                version: self.book.next_write(key),
            }
        } else {
            Request::Read {
                key,
                floor: self.book.read_floor(key),
            }
        }
    }

    /// The frame body of `request`, built in the caller's reusable buffers (take them back
    /// with [`Tally::recycle`] once the frame is encoded).
    pub fn body(&self, request: Request, key_buf: &mut Vec<u8>, value_buf: &mut Vec<u8>) -> Body {
        match request {
            Request::Ping => Body::Ping,
            Request::Write { key, version } => {
                key_name(key, self.key_digits, key_buf);
                self.gen.fill(key, version, value_buf);
                Body::Write {
                    key: std::mem::take(key_buf),
                    value: std::mem::take(value_buf),
                }
            }
            Request::Read { key, .. } => {
                key_name(key, self.key_digits, key_buf);
                Body::Read {
                    key: std::mem::take(key_buf),
                }
            }
        }
    }

    /// Hand the buffers of an encoded body back, so steady state sends without allocating.
    pub fn recycle(body: Body, key_buf: &mut Vec<u8>, value_buf: &mut Vec<u8>) {
        match body {
            Body::Write { key, value } => {
                *key_buf = key;
                *value_buf = value;
            }
            Body::Read { key } => *key_buf = key,
            _ => {}
        }
    }

    /// A preload write's reply: anything but OK stops the run (`Err` says what came back).
    pub fn on_preload_reply(
        &mut self,
        request: Request,
        reply: &Decoded<'_>,
    ) -> Result<(), String> {
        match (request, reply) {
            (Request::Write { key, version }, Decoded::Owned(Frame { body: Body::Ok, .. })) => {
                self.book.acked(key, version);
                Ok(())
            }
            (_, reply) => Err(describe(reply)),
        }
    }

    /// Count a timed reply; `Some` describes a failure (it is counted either way). The reply is
    /// only borrowed: a VALUE is checked where the decoder left it, in the connection's read
    /// buffer, so a READ costs no allocation and no copy.
    pub fn on_reply(
        &mut self,
        request: Request,
        reply: &Decoded<'_>,
        latency: Duration,
    ) -> Option<String> {
        let nanos = latency.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.hist.saturating_record(nanos.max(1));
        self.completed += 1;
        match (request, reply) {
            (
                Request::Ping,
                Decoded::Owned(Frame {
                    body: Body::Pong, ..
                }),
            ) => None,
            (Request::Write { key, version }, Decoded::Owned(Frame { body: Body::Ok, .. })) => {
                self.book.acked(key, version);
                None
            }
            // The decoder borrows every VALUE; an owned one is checked all the same.
            (Request::Read { key, floor }, Decoded::Ref(_, BodyRef::Value { value })) => {
                self.check_read(key, floor, value)
            }
            (
                Request::Read { key, floor },
                Decoded::Owned(Frame {
                    body: Body::Value { value },
                    ..
                }),
            ) => self.check_read(key, floor, value),
            (
                Request::Read { key, .. },
                Decoded::Owned(Frame {
                    body: Body::NotFound,
                    ..
                }),
            ) => {
                self.not_found += 1;
                Some(format!(
                    "READ {} returned NOT_FOUND after a write",
                    self.key_label(key)
                ))
            }
            (request, reply) => {
                self.error_replies += 1;
                Some(format!(
                    "{}: {}",
                    self.request_label(request),
                    describe(reply)
                ))
            }
        }
    }

    /// Check the VALUE answering a READ of `key` sent at `floor`; a mismatch is counted and
    /// described.
    fn check_read(&mut self, key: usize, floor: u64, value: &[u8]) -> Option<String> {
        match self.book.check(&self.gen, key, floor, Some(value)) {
            Verdict::Ok => None,
            _ => {
                self.mismatches += 1;
                Some(format!(
                    "READ {} returned a value it never held",
                    self.key_label(key)
                ))
            }
        }
    }

    pub fn summary(&mut self, cfg: &BenchConfig, elapsed: Duration) -> Summary {
        Summary {
            op: cfg.workload.name(),
            clients: cfg.clients,
            pipeline: cfg.pipeline,
            requests: cfg.requests,
            error_replies: self.error_replies,
            mismatches: self.mismatches,
            not_found: self.not_found,
            elapsed,
            hist: std::mem::replace(&mut self.hist, new_histogram()),
        }
    }
}

/// A reply of the wrong kind, for messages: an ERROR's code and text, or else its opcode.
pub fn describe(reply: &Decoded<'_>) -> String {
    match reply {
        Decoded::Owned(Frame {
            body: Body::Error { code, text },
            ..
        }) => format!("ERROR {}: {text}", code.name()),
        other => format!("unexpected {:?}", other.opcode()),
    }
}

/// `bench:<key>` into `out`, the number zero-padded to at least `width` digits (0: as is),
/// without the formatting machinery (it runs once per request).
fn key_name(key: usize, width: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(KEY_PREFIX);
    let mut digits = [0u8; 20];
    let mut n = key;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let pad = width.saturating_sub(digits.len() - i);
    out.resize(out.len() + pad, b'0');
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsm_wire::{decode_borrowed, encode, ErrorCode, DEFAULT_MAX_FRAME};

    fn cfg(workload: Workload, clients: usize, keys: usize) -> BenchConfig {
        BenchConfig {
            workload,
            clients,
            pipeline: 4,
            requests: 100,
            value_size: 16,
            keys,
            key_size: None,
            rate: None,
            burst: false,
            json: false,
            hist: None,
        }
    }

    const MS: Duration = Duration::from_millis(1);

    fn value_of(t: &Tally, request: Request) -> Vec<u8> {
        match t.body(request, &mut Vec::new(), &mut Vec::new()) {
            Body::Write { value, .. } => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_names_are_decimal() {
        let mut b = Vec::new();
        for (k, s) in [(0, "bench:0"), (7, "bench:7"), (1234567, "bench:1234567")] {
            key_name(k, 0, &mut b);
            assert_eq!(b, s.as_bytes());
        }
        key_name(usize::MAX, 0, &mut b);
        assert_eq!(b, format!("bench:{}", usize::MAX).as_bytes());
    }

    #[test]
    fn padded_key_names_have_exactly_the_key_size() {
        let mut b = Vec::new();
        for (k, s) in [
            (0, "bench:0000000000"),
            (7, "bench:0000000007"),
            (999_999, "bench:0000999999"),
            (1_234_567_890, "bench:1234567890"),
        ] {
            key_name(k, 10, &mut b);
            assert_eq!(b, s.as_bytes());
        }
        // A number wider than the padding is never cut (the options rule it out anyway).
        key_name(12345, 3, &mut b);
        assert_eq!(b, b"bench:12345");
        // Through the config: --key-size 16 with 1M keys names every key in 16 bytes.
        let mut c = cfg(Workload::Write, 1, 1_000_000);
        c.key_size = Some(16);
        let t = Tally::new(&c, 1);
        let mut names = std::collections::HashSet::new();
        for key in [0, 1, 9, 10, 99_999, 500_000, 999_999] {
            match t.body(
                Request::Write { key, version: 1 },
                &mut Vec::new(),
                &mut Vec::new(),
            ) {
                Body::Write { key: name, .. } => {
                    assert_eq!(name.len(), 16, "{}", String::from_utf8_lossy(&name));
                    assert!(names.insert(name));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(t.key_label(42), "bench:0000000042");
        assert_eq!(
            t.request_label(Request::Read { key: 3, floor: 0 }),
            "READ bench:0000000003"
        );
    }

    #[test]
    fn min_key_size_counts_the_largest_key_number() {
        assert_eq!(
            (digits(0), digits(9), digits(10), digits(999_999)),
            (1, 1, 2, 6)
        );
        assert_eq!(digits(usize::MAX), usize::MAX.to_string().len());
        // Keys 0..K-1: K = 10 needs one digit, K = 11 two.
        assert_eq!(
            (min_key_size(1), min_key_size(10), min_key_size(11)),
            (7, 7, 8)
        );
        assert_eq!(min_key_size(1_000_000), 12);
        assert_eq!(min_key_size(1_000_001), 13);
    }

    #[test]
    fn write_and_read_cycle_keys_and_mixed_stays_on_owned_keys() {
        let mut rng = 1;
        let mut t = Tally::new(&cfg(Workload::Write, 2, 3), 9);
        let keys: Vec<_> = (0..5)
            .map(|i| match t.plan(i as usize % 2, i, &mut rng) {
                Request::Write { key, .. } => key,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(keys, [0, 1, 2, 0, 1]);
        let mut t = Tally::new(&cfg(Workload::Mixed, 3, 10), 9);
        let (mut reads, mut writes) = (0, 0);
        for i in 0..1000 {
            match t.plan(1, i, &mut rng) {
                Request::Write { key, .. } => {
                    writes += 1;
                    assert_eq!(key % 3, 1, "connection 1 owns keys 1, 4, 7");
                }
                Request::Read { key, .. } => {
                    reads += 1;
                    assert_eq!(key % 3, 1);
                }
                Request::Ping => panic!("no pings in mixed"),
            }
        }
        assert!(
            (400..600).contains(&reads) && reads + writes == 1000,
            "{reads}"
        );
    }

    #[test]
    fn every_read_reply_is_checked_and_counted() {
        let mut t = Tally::new(&cfg(Workload::Read, 1, 2), 5);
        let w = t.preload(0);
        let good = value_of(&t, w);
        assert_eq!(t.on_preload_reply(w, &owned(Body::Ok)), Ok(()));
        let w1 = t.preload(1);
        assert!(t
            .on_preload_reply(w1, &owned(Body::error(ErrorCode::NoSlaves, "none")))
            .unwrap_err()
            .contains("NO_SLAVES"));
        let mut rng = 0;
        let r = t.plan(0, 0, &mut rng);
        assert_eq!(r, Request::Read { key: 0, floor: 1 });
        assert_eq!(t.on_reply(r, &owned(Body::Value { value: good }), MS), None);
        let wrong = value_of(&t, Request::Write { key: 1, version: 1 });
        assert!(t
            .on_reply(r, &owned(Body::Value { value: wrong }), MS)
            .is_some());
        assert!(t.on_reply(r, &owned(Body::NotFound), MS).is_some());
        assert!(t
            .on_reply(r, &owned(Body::error(ErrorCode::Timeout, "slow")), MS)
            .is_some());
        assert!(
            t.on_reply(r, &owned(Body::Pong), MS).is_some(),
            "wrong reply kind"
        );
        assert_eq!(
            (t.mismatches, t.not_found, t.error_replies, t.failures()),
            (1, 1, 2, 4)
        );
        assert_eq!(t.completed, 5);
        let s = t.summary(&cfg(Workload::Read, 1, 2), Duration::from_secs(1));
        assert_eq!((s.hist.len(), s.errors()), (5, 4));
    }

    /// A reply the decoder handed over owned.
    fn owned(body: Body) -> Decoded<'static> {
        Decoded::Owned(Frame::new(0, body))
    }

    /// `body` sent as request 7 and decoded from `buf` as the bench's connections decode it.
    fn received(body: Body, buf: &mut Vec<u8>) -> Decoded<'_> {
        buf.clear();
        encode(&Frame::new(7, body), buf);
        let (reply, used) = decode_borrowed(buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(used, buf.len());
        reply
    }

    #[test]
    fn a_value_borrowed_from_the_read_buffer_is_checked() {
        let mut t = Tally::new(&cfg(Workload::Read, 1, 2), 5);
        let w = t.preload(0);
        let good = value_of(&t, w);
        assert_eq!(t.on_preload_reply(w, &owned(Body::Ok)), Ok(()));
        let r = t.plan(0, 0, &mut 0);
        let mut buf = Vec::new();
        let reply = received(
            Body::Value {
                value: good.clone(),
            },
            &mut buf,
        );
        assert!(
            matches!(reply, Decoded::Ref(7, BodyRef::Value { .. })),
            "VALUE must arrive borrowed, or this test checks the owned path: {reply:?}"
        );
        assert_eq!(t.on_reply(r, &reply, MS), None);
        // Another key's value, a value cut short, the right one with one bit flipped.
        let mut flipped = good.clone();
        flipped[15] ^= 0x80;
        let wrong = [
            value_of(&t, Request::Write { key: 1, version: 1 }),
            good[..8].to_vec(),
            flipped,
        ];
        for value in wrong {
            let reply = received(Body::Value { value }, &mut buf);
            assert!(matches!(reply, Decoded::Ref(..)), "{reply:?}");
            let why = t.on_reply(r, &reply, MS).expect("a mismatch is reported");
            assert!(why.contains("READ bench:0 returned a value"), "{why}");
        }
        // A VALUE answering anything but a READ is a reply of the wrong kind.
        let reply = received(Body::Value { value: good }, &mut buf);
        let why = t.on_reply(Request::Ping, &reply, MS).expect("an error");
        assert_eq!(why, "PING: unexpected Value");
        assert_eq!(
            (t.mismatches, t.error_replies, t.not_found, t.completed),
            (3, 1, 0, 5)
        );
        let s = t.summary(&cfg(Workload::Read, 1, 2), Duration::from_secs(1));
        assert_eq!((s.hist.len(), s.errors()), (5, 4));
    }

    #[test]
    fn bodies_reuse_the_callers_buffers() {
        let t = Tally::new(&cfg(Workload::Write, 1, 1), 1);
        let (mut k, mut v) = (Vec::with_capacity(64), Vec::with_capacity(64));
        let body = t.body(Request::Write { key: 3, version: 1 }, &mut k, &mut v);
        assert!(
            matches!(&body, Body::Write { key, value } if key == b"bench:3" && value.len() == 16)
        );
        Tally::recycle(body, &mut k, &mut v);
        assert_eq!((k.capacity() >= 64, v.len()), (true, 16));
        assert_eq!(t.body(Request::Ping, &mut k, &mut v), Body::Ping);
    }
}

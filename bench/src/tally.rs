//! What each bench request is and what its reply counts as: the workload plan, the request
//! bodies, and the tally of latencies, error replies, mismatched reads and NOT_FOUNDs. No
//! sockets and no clock: the event loop passes latencies in.

use std::time::Duration;

use dsm_wire::{Body, BodyRef, Decoded, Frame};

use crate::check::{splitmix, KeyBook, ValueCache, ValueGen, Verdict, VALUE_CACHE_BYTES};
use crate::keys::{below, key_name, KeyCycle, KeyNames, KEY_NAME_CACHE_BYTES, KEY_PREFIX};
use crate::latencies::Latencies;
use crate::model::{delta, render_num, Model, Outcome};
use crate::report::Summary;
use crate::{BenchConfig, Workload};

pub use crate::model::Request;

pub struct Tally {
    workload: Workload,
    /// Key numbers are zero-padded to this many digits (0: not padded).
    key_digits: usize,
    names: KeyNames,
    /// The newest value sent for each key, which every READ answer is compared against first.
    values: ValueCache,
    book: KeyBook,
    cycle: KeyCycle,
    /// What the new operations must answer (incr, delete, cas, mix-all).
    model: Model,
    /// A number SET by incr and mix-all, rendered in decimal at its end.
    num: [u8; 20],
    latencies: Latencies,
    /// `--slow-log`: the latency (ns) over which a request is noted, and the notes so far
    /// (when answered, latency; both ns on the driver's clock), at most [`crate::report::SLOW_MAX`].
    slow: Option<(u64, Vec<(u64, u64)>)>,
    pub completed: u64,
    /// Timed answers that were exactly what was predicted.
    pub checked: u64,
    /// Keys read back after the timed run and found as predicted.
    pub verified: u64,
    pub error_replies: u64,
    pub mismatches: u64,
    pub not_found: u64,
}

impl Tally {
    /// `run` seeds the values, so a value left by an earlier run never passes a check.
    pub fn new(cfg: &BenchConfig, run: u64) -> Tally {
        Tally::with_budgets(cfg, run, KEY_NAME_CACHE_BYTES, VALUE_CACHE_BYTES)
    }

    /// [`Tally::new`] with the memory of the key name and value caches given.
    fn with_budgets(cfg: &BenchConfig, run: u64, names: usize, values: usize) -> Tally {
        let key_digits = cfg
            .key_size
            .map_or(0, |b| b.saturating_sub(KEY_PREFIX.len()));
        Tally {
            workload: cfg.workload,
            key_digits,
            names: KeyNames::new(cfg.keys, key_digits, names),
            values: ValueCache::new(ValueGen::new(run, cfg.value_size), cfg.keys, values),
            book: KeyBook::new(cfg.keys),
            cycle: KeyCycle::new(cfg.keys),
            model: Model::new(cfg.workload, cfg.keys, cfg.clients),
            num: [0; 20],
            latencies: Latencies::new(),
            slow: cfg
                .slow_log
                .as_ref()
                .map(|(_, us)| (us.saturating_mul(1000), Vec::new())),
            completed: 0,
            checked: 0,
            verified: 0,
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
        match request.key() {
            None => request.verb().into(),
            Some(key) => format!("{} {}", request.verb(), self.key_label(key)),
        }
    }

    pub fn failures(&self) -> u64 {
        self.error_replies + self.mismatches + self.not_found
    }

    /// The untimed write of `key` before the timed run: a WRITE (read, mixed, delete), a SET
    /// of 0 (incr), of a generated value (cas) or of a number (mix-all), so every answer after
    /// it can be predicted.
    pub fn preload(&mut self, key: usize, rng: &mut u64) -> Request {
        match self.workload {
            Workload::Incr => Request::SetNum {
                key,
                n: 0,
                expected: None,
            },
            Workload::Cas => Request::Set {
                key,
                seq: self.book.next_write(key),
                expected: None,
            },
            Workload::MixAll => Request::SetNum {
                key,
                n: below(splitmix(rng), crate::model::MIX_VALUE_RANGE) as i64,
                expected: None,
            },
            _ => Request::Write {
                key,
                version: self.book.next_write(key),
            },
        }
    }

    /// The untimed read of `key` after the timed run, checked against what it must hold.
    pub fn verify(&self, key: usize) -> Request {
        Request::VRead { key }
    }

    /// Timed request number `i`, to be sent on connection `conn` (whose generator is `rng`).
    #[inline]
    pub fn plan(&mut self, conn: usize, i: u64, rng: &mut u64) -> Request {
        let key = match self.workload {
            Workload::Ping => return Request::Ping,
            Workload::Write | Workload::Read => self.cycle.key(i),
            // A key this connection owns (k mod N = conn), so only it ever writes the key.
            Workload::Mixed => self.model.any_owned(conn, splitmix(rng)),
            Workload::Incr => {
                let key = self.model.any_owned(conn, splitmix(rng));
                return self.model.incr(key, delta(splitmix(rng)));
            }
            Workload::Delete => return self.model.delete(conn),
            Workload::Cas => {
                let key = self.model.take_free(conn);
                return Request::Set {
                    key,
                    seq: self.book.next_write(key),
                    expected: Some(self.model.state(key).version),
                };
            }
            Workload::MixAll => {
                let key = self.model.take_free(conn);
                return self.model.mix(key, splitmix(rng), splitmix(rng));
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

    /// The frame body of `request`, borrowed from the key name table and the value cache
    /// (encode it with `encode_ref`, nothing is copied before that); `None` for a PING, which
    /// has no borrowed form. A WRITE's value stays cached, the expected answer to later READs.
    #[inline]
    pub fn body_ref(&mut self, request: Request) -> Option<BodyRef<'_>> {
        match request {
            Request::Ping => None,
            Request::Write { key, version } => Some(BodyRef::Write {
                key: self.names.name(key),
                value: self.values.value(key, version),
            }),
            Request::Read { key, .. } => Some(BodyRef::Read {
                key: self.names.name(key),
            }),
            Request::Incr { key, delta, .. } => Some(BodyRef::Incr {
                key: self.names.name(key),
                delta,
            }),
            Request::Delete { key, .. } => Some(BodyRef::Delete {
                key: self.names.name(key),
                expected: None,
            }),
            Request::Set { key, seq, expected } => Some(BodyRef::Set {
                key: self.names.name(key),
                expected,
                value: self.values.value(key, seq),
            }),
            Request::SetNum { key, n, expected } => {
                let at = render_num(n, &mut self.num);
                Some(BodyRef::Set {
                    key: self.names.name(key),
                    expected,
                    value: &self.num[at..],
                })
            }
            Request::VRead { key } => Some(BodyRef::VRead {
                key: self.names.name(key),
            }),
        }
    }

    /// The owned frame body of `request` (for tests and messages; the loop uses
    /// [`Tally::body_ref`]).
    #[cfg(test)]
    pub fn body(&mut self, request: Request) -> Body {
        self.body_ref(request).map_or(Body::Ping, |b| b.to_body())
    }

    /// An untimed reply. A preload write's: anything but OK (WRITTEN for a SET) stops the run
    /// (`Err` says what came back). A read-back's: counted verified, or as a failure.
    pub fn on_untimed_reply(
        &mut self,
        request: Request,
        reply: &Decoded<'_>,
    ) -> Result<(), String> {
        match (request, reply) {
            (Request::Write { key, version }, Decoded::Owned(Frame { body: Body::Ok, .. })) => {
                self.book.acked(key, version);
                Ok(())
            }
            (Request::VRead { .. }, _) => {
                let outcome = self
                    .model
                    .settle(request, reply, &mut self.book, &mut self.values);
                match self.count(request, reply, outcome) {
                    None => self.verified += 1,
                    Some(why) => log::warn!("bench: read back: {why}"),
                }
                Ok(())
            }
            (Request::Set { .. } | Request::SetNum { .. }, _) => {
                match self
                    .model
                    .settle(request, reply, &mut self.book, &mut self.values)
                {
                    Outcome::Ok => Ok(()),
                    _ => Err(describe(reply)),
                }
            }
            (_, reply) => Err(describe(reply)),
        }
    }

    /// Note a timed reply answered at `done_nanos` (the driver's clock) that took
    /// `latency_nanos`, if `--slow-log` wants it.
    #[inline]
    pub fn note_slow(&mut self, done_nanos: u64, latency_nanos: u64) {
        if let Some((over, notes)) = &mut self.slow {
            if latency_nanos > *over && notes.len() < crate::report::SLOW_MAX {
                notes.push((done_nanos, latency_nanos));
            }
        }
    }

    /// Count a timed reply that took `latency_nanos`; `Some` describes a failure (it is counted
    /// either way). The reply is only borrowed: a VALUE is checked where the decoder left it,
    /// in the connection's read buffer, so a READ costs no allocation and no copy.
    #[inline]
    pub fn on_reply(
        &mut self,
        request: Request,
        reply: &Decoded<'_>,
        latency_nanos: u64,
    ) -> Option<String> {
        self.latencies.record(latency_nanos.max(1));
        self.completed += 1;
        // The replies a run is made of, handled here; every other pairing below.
        match (request, reply) {
            (Request::Read { key, floor }, Decoded::Ref(_, BodyRef::Value { value })) => {
                self.check_read(key, floor, value)
            }
            (Request::Write { key, version }, Decoded::Owned(Frame { body: Body::Ok, .. })) => {
                self.book.acked(key, version);
                self.checked += 1;
                None
            }
            _ => self.on_other_reply(request, reply),
        }
    }

    /// [`Tally::on_reply`] for the less usual pairings of request and reply (it takes every
    /// pairing, the usual ones too).
    #[inline(never)]
    fn on_other_reply(&mut self, request: Request, reply: &Decoded<'_>) -> Option<String> {
        match (request, reply) {
            (
                Request::Ping,
                Decoded::Owned(Frame {
                    body: Body::Pong, ..
                }),
            ) => {
                self.checked += 1;
                None
            }
            (Request::Write { key, version }, Decoded::Owned(Frame { body: Body::Ok, .. })) => {
                self.book.acked(key, version);
                self.checked += 1;
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
            (Request::Ping | Request::Write { .. } | Request::Read { .. }, reply) => {
                self.error_replies += 1;
                Some(format!(
                    "{}: {}",
                    self.request_label(request),
                    describe(reply)
                ))
            }
            (request, reply) => {
                let outcome = self
                    .model
                    .settle(request, reply, &mut self.book, &mut self.values);
                if self.model.exact() {
                    if let Some(key) = request.key() {
                        self.model.release(key);
                    }
                }
                let failure = self.count(request, reply, outcome);
                if failure.is_none() {
                    self.checked += 1;
                }
                failure
            }
        }
    }

    /// Count a failed `outcome` of the new operations; `Some` describes it.
    fn count(&mut self, request: Request, reply: &Decoded<'_>, outcome: Outcome) -> Option<String> {
        let label = || self.request_label(request);
        let why = match outcome {
            Outcome::Ok => return None,
            Outcome::Mismatch(what) => format!("{} returned {what}", label()),
            Outcome::NotFound => format!("{} returned NOT_FOUND for a key that exists", label()),
            Outcome::Conflict(v) => format!(
                "{}: CONFLICT: the key is at version {v}, not the one this connection last wrote",
                label()
            ),
            Outcome::Error => format!("{}: {}", label(), describe(reply)),
        };
        match outcome {
            Outcome::Mismatch(_) => self.mismatches += 1,
            Outcome::NotFound => self.not_found += 1,
            _ => self.error_replies += 1,
        }
        Some(why)
    }

    /// Check the VALUE answering a READ of `key` sent at `floor`; a mismatch is counted and
    /// described.
    #[inline]
    fn check_read(&mut self, key: usize, floor: u64, value: &[u8]) -> Option<String> {
        match self.book.check(&mut self.values, key, floor, Some(value)) {
            Verdict::Ok => {
                self.checked += 1;
                None
            }
            _ => self.mismatch(key),
        }
    }

    #[cold]
    #[inline(never)]
    fn mismatch(&mut self, key: usize) -> Option<String> {
        self.mismatches += 1;
        Some(format!(
            "READ {} returned a value it never held",
            self.key_label(key)
        ))
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
            checked: self.checked,
            verified: self.verified,
            read_back: cfg.workload.reads_back().then_some(cfg.keys as u64),
            elapsed,
            hist: self.latencies.take(),
            slow: self
                .slow
                .as_mut()
                .map(|s| std::mem::take(&mut s.1))
                .unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use dsm_wire::{decode_borrowed, encode, encode_ref, ErrorCode, DEFAULT_MAX_FRAME};

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
            slow_log: None,
            redis: None,
        }
    }

    /// One millisecond, in the nanoseconds `on_reply` takes.
    const MS: u64 = 1_000_000;

    fn value_of(t: &mut Tally, request: Request) -> Vec<u8> {
        match t.body(request) {
            Body::Write { value, .. } => value,
            other => panic!("{other:?}"),
        }
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
        let mut t = Tally::new(&c, 1);
        let mut names = std::collections::HashSet::new();
        for key in [0, 1, 9, 10, 99_999, 500_000, 999_999] {
            match t.body(Request::Write { key, version: 1 }) {
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
                other => panic!("only READ and WRITE in mixed: {other:?}"),
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
        let w = t.preload(0, &mut 0);
        let good = value_of(&mut t, w);
        assert_eq!(t.on_untimed_reply(w, &owned(Body::Ok)), Ok(()));
        let w1 = t.preload(1, &mut 0);
        assert!(t
            .on_untimed_reply(w1, &owned(Body::error(ErrorCode::NoSlaves, "none")))
            .unwrap_err()
            .contains("NO_SLAVES"));
        let mut rng = 0;
        let r = t.plan(0, 0, &mut rng);
        assert_eq!(r, Request::Read { key: 0, floor: 1 });
        assert_eq!(t.on_reply(r, &owned(Body::Value { value: good }), MS), None);
        let wrong = value_of(&mut t, Request::Write { key: 1, version: 1 });
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
        let w = t.preload(0, &mut 0);
        let good = value_of(&mut t, w);
        assert_eq!(t.on_untimed_reply(w, &owned(Body::Ok)), Ok(()));
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
            value_of(&mut t, Request::Write { key: 1, version: 1 }),
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
    fn bodies_are_borrowed_from_the_caches_and_encode_as_owned_ones() {
        let mut c = cfg(Workload::Mixed, 1, 12);
        c.value_size = 20;
        let mut t = Tally::new(&c, 1);
        let g = ValueGen::new(1, 20);
        for request in [
            Request::Write { key: 3, version: 1 },
            Request::Read { key: 3, floor: 1 },
            Request::Write {
                key: 11,
                version: 2,
            },
            Request::Read { key: 0, floor: 0 },
            Request::Ping,
        ] {
            let owned = t.body(request);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            match t.body_ref(request) {
                Some(body) => encode_ref(9, &body, &mut a),
                None => encode(&Frame::new(9, Body::Ping), &mut a),
            }
            encode(&Frame::new(9, owned.clone()), &mut b);
            assert_eq!(a, b, "{request:?}");
            match (request, owned) {
                (Request::Write { key, version }, Body::Write { key: name, value }) => {
                    assert_eq!(name, format!("bench:{key}").as_bytes());
                    let mut want = Vec::new();
                    g.fill(key, version, &mut want);
                    assert_eq!(value, want);
                }
                (Request::Read { key, .. }, Body::Read { key: name }) => {
                    assert_eq!(name, format!("bench:{key}").as_bytes());
                }
                (Request::Ping, Body::Ping) => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn small_caches_check_reads_as_well() {
        // One slot for names and values: every request takes them from the one before.
        let mut t = Tally::with_budgets(&cfg(Workload::Mixed, 1, 3), 4, 0, 0);
        let mut good = Vec::new();
        for key in 0..3 {
            let w = t.preload(key, &mut 0);
            good.push(value_of(&mut t, w));
            assert_eq!(t.on_untimed_reply(w, &owned(Body::Ok)), Ok(()));
        }
        let mut buf = Vec::new();
        for key in [0, 1, 2, 2, 0] {
            let r = Request::Read { key, floor: 1 };
            assert_eq!(
                t.body(r),
                Body::Read {
                    key: format!("bench:{key}").into_bytes()
                }
            );
            let reply = received(
                Body::Value {
                    value: good[key].clone(),
                },
                &mut buf,
            );
            assert_eq!(t.on_reply(r, &reply, MS), None, "key {key}");
            let other = good[(key + 1) % 3].clone();
            let reply = received(Body::Value { value: other }, &mut buf);
            assert!(t.on_reply(r, &reply, MS).is_some(), "key {key}");
            let mut flipped = good[key].clone();
            flipped[0] ^= 0x40;
            let reply = received(Body::Value { value: flipped }, &mut buf);
            assert!(t.on_reply(r, &reply, MS).is_some(), "key {key}");
        }
        assert_eq!((t.mismatches, t.completed), (10, 15));
    }
}

//! What the bench predicts of every answer under the workloads beyond READ and WRITE (incr,
//! delete, cas, mix-all), and of every key read back at the end. Predictions are exact: each
//! key is changed by one connection only, and the master applies one connection's requests on
//! a key in the order they were sent. No sockets, no clock.

use std::collections::VecDeque;

use dsm_wire::{Body, BodyRef, Decoded, Frame};

use crate::check::{KeyBook, ValueCache};
use crate::keys::below;
use crate::Workload;

/// SET values of mix-all are below this, so its INCRs (at most 100 each way) never overflow.
pub const MIX_VALUE_RANGE: usize = 1_000_000_000;
/// INCR deltas are drawn from -DELTA_RANGE..=DELTA_RANGE.
pub const DELTA_RANGE: i64 = 100;

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
    /// INCR by `delta`; the answer must be `expect`.
    Incr {
        key: usize,
        delta: i64,
        expect: i64,
    },
    /// DELETE; the answer must be WRITTEN when `found`, NOT_FOUND when not.
    Delete {
        key: usize,
        found: bool,
    },
    /// SET of the generated value `seq` of the key (see [`crate::check::ValueGen`]); a
    /// compare-and-set when `expected` is given, which must succeed.
    Set {
        key: usize,
        seq: u64,
        expected: Option<u64>,
    },
    /// SET of the decimal number `n` (incr and mix-all), a compare-and-set with `expected`.
    SetNum {
        key: usize,
        n: i64,
        expected: Option<u64>,
    },
    /// VREAD, whose version and value must be exactly the ones predicted.
    VRead {
        key: usize,
    },
}

impl Request {
    pub fn key(self) -> Option<usize> {
        match self {
            Request::Ping => None,
            Request::Write { key, .. }
            | Request::Read { key, .. }
            | Request::Incr { key, .. }
            | Request::Delete { key, .. }
            | Request::Set { key, .. }
            | Request::SetNum { key, .. }
            | Request::VRead { key } => Some(key),
        }
    }

    /// `WRITE`, `CAS`, ..., for messages.
    pub fn verb(self) -> &'static str {
        match self {
            Request::Ping => "PING",
            Request::Write { .. } => "WRITE",
            Request::Read { .. } => "READ",
            Request::Incr { .. } => "INCR",
            Request::Delete { .. } => "DELETE",
            Request::Set { expected: None, .. } | Request::SetNum { expected: None, .. } => "SET",
            Request::Set { .. } | Request::SetNum { .. } => "CAS",
            Request::VRead { .. } => "VREAD",
        }
    }
}

/// What a key holds: a generated value (its sequence number) or a decimal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    Blob(u64),
    Num(i64),
}

/// A key as the master must hold it: `val` `None` when it does not exist (version 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyState {
    pub version: u64,
    pub val: Option<Val>,
}

/// How an answer compared with the prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// An answer of the right kind with the wrong content; says what was wrong.
    Mismatch(&'static str),
    /// NOT_FOUND where the key must exist.
    NotFound,
    /// CONFLICT to a compare-and-set made with the key's own version.
    Conflict(u64),
    /// ERROR, or an answer of the wrong kind.
    Error,
}

/// The answers the new operations get, borrowed or owned alike.
enum Answer<'a> {
    Written(u64),
    Versioned(u64, &'a [u8]),
    Conflict(u64),
    NotFound,
    Other,
}

fn answer<'a>(reply: &'a Decoded<'_>) -> Answer<'a> {
    match reply {
        Decoded::Ref(_, BodyRef::Versioned { version, value }) => {
            Answer::Versioned(*version, value)
        }
        Decoded::Owned(Frame { body, .. }) => match body {
            Body::Written { version } => Answer::Written(*version),
            Body::Conflict { version } => Answer::Conflict(*version),
            Body::Versioned { version, value } => Answer::Versioned(*version, value),
            Body::NotFound => Answer::NotFound,
            _ => Answer::Other,
        },
        _ => Answer::Other,
    }
}

/// A decimal signed 64-bit integer, as INCR answers and mix-all stores them.
pub fn parse_num(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// `n` in decimal at the end of `buf`; returns where it starts.
pub fn render_num(n: i64, buf: &mut [u8; 20]) -> usize {
    let mut u = n.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    at
}

pub struct Model {
    workload: Workload,
    conns: usize,
    keys: usize,
    /// incr: each counter once every INCR sent so far is applied.
    counts: Vec<i64>,
    /// delete: the keys a DELETE was sent for.
    deleted: Vec<bool>,
    /// delete: per connection, the next of its keys to delete.
    next_owned: Vec<usize>,
    /// cas, mix-all: each key exactly, since it has at most one request in flight.
    state: Vec<KeyState>,
    /// cas, mix-all: per connection, its keys with no request in flight.
    free: Vec<VecDeque<usize>>,
}

impl Model {
    pub fn new(workload: Workload, keys: usize, conns: usize) -> Model {
        let mut m = Model {
            workload,
            conns,
            keys,
            counts: Vec::new(),
            deleted: Vec::new(),
            next_owned: Vec::new(),
            state: Vec::new(),
            free: Vec::new(),
        };
        match workload {
            Workload::Incr => m.counts = vec![0; keys],
            Workload::Delete => {
                m.deleted = vec![false; keys];
                m.next_owned = (0..conns).collect();
            }
            Workload::Cas | Workload::MixAll => {
                m.state = vec![KeyState::default(); keys];
                m.free = (0..conns)
                    .map(|c| (c..keys).step_by(conns).collect())
                    .collect();
            }
            _ => {}
        }
        m
    }

    /// Whether each key has at most one request in flight (and so a state known exactly).
    pub fn exact(&self) -> bool {
        !self.state.is_empty()
    }

    /// A key connection `conn` owns (k mod N = conn), drawn at random.
    #[inline]
    pub fn any_owned(&self, conn: usize, r: u64) -> usize {
        let owned = (self.keys - conn).div_ceil(self.conns);
        conn + self.conns * below(r, owned)
    }

    /// incr: the INCR of `key` by `delta` and the value it must answer.
    #[inline]
    pub fn incr(&mut self, key: usize, delta: i64) -> Request {
        self.counts[key] += delta;
        Request::Incr {
            key,
            delta,
            expect: self.counts[key],
        }
    }

    /// delete: the DELETE of connection `conn`'s next key, its keys taken in turn.
    #[inline]
    pub fn delete(&mut self, conn: usize) -> Request {
        let key = self.next_owned[conn];
        self.next_owned[conn] = if key + self.conns >= self.keys {
            conn
        } else {
            key + self.conns
        };
        let found = !std::mem::replace(&mut self.deleted[key], true);
        Request::Delete { key, found }
    }

    /// cas, mix-all: a key of connection `conn` with nothing in flight. There is always one:
    /// the options ask for at least P keys per connection.
    #[inline]
    pub fn take_free(&mut self, conn: usize) -> usize {
        self.free[conn]
            .pop_front()
            .expect("--keys >= --clients x --pipeline leaves a free key")
    }

    /// cas, mix-all: `key`'s request was answered; it may be used again.
    #[inline]
    pub fn release(&mut self, key: usize) {
        self.free[key % self.conns].push_back(key);
    }

    pub fn state(&self, key: usize) -> KeyState {
        self.state[key]
    }

    /// mix-all: one request on `key` (taken free), each of VREAD, SET, CAS, DELETE and INCR
    /// with chance 1/5, `r1` and `r2` random.
    pub fn mix(&mut self, key: usize, r1: u64, r2: u64) -> Request {
        let st = self.state[key];
        let num = below(r2, MIX_VALUE_RANGE) as i64;
        match below(r1, 5) {
            0 => Request::VRead { key },
            1 => Request::SetNum {
                key,
                n: num,
                expected: None,
            },
            2 => Request::SetNum {
                key,
                n: num,
                expected: Some(st.version),
            },
            3 => Request::Delete {
                key,
                found: st.val.is_some(),
            },
            _ => {
                let delta = delta(r2);
                let base = match st.val {
                    Some(Val::Num(n)) => n,
                    _ => 0,
                };
                Request::Incr {
                    key,
                    delta,
                    expect: base + delta,
                }
            }
        }
    }

    /// Compare the answer to `request` with the prediction, and when it is right, bring the
    /// key's state up to date. `book` and `values` know the generated values (cas, delete).
    pub fn settle(
        &mut self,
        request: Request,
        reply: &Decoded<'_>,
        book: &mut KeyBook,
        values: &mut ValueCache,
    ) -> Outcome {
        let ans = answer(reply);
        let exact = self.exact();
        match (request, ans) {
            (Request::Incr { key, expect, .. }, Answer::Versioned(version, value)) => {
                if parse_num(value) != Some(expect) {
                    return Outcome::Mismatch("a count other than the increments sent");
                }
                if exact {
                    self.state[key] = KeyState {
                        version,
                        val: Some(Val::Num(expect)),
                    };
                }
                Outcome::Ok
            }
            (Request::Delete { key, found: true }, Answer::Written(_)) => {
                if exact {
                    self.state[key] = KeyState::default();
                }
                Outcome::Ok
            }
            (Request::Delete { found: false, .. }, Answer::NotFound) => Outcome::Ok,
            (Request::Delete { found: true, .. }, Answer::NotFound) => Outcome::NotFound,
            (Request::Delete { found: false, .. }, Answer::Written(_)) => {
                Outcome::Mismatch("WRITTEN: a deleted key was found")
            }
            (Request::Set { key, seq, .. }, Answer::Written(version)) => {
                book.acked(key, seq);
                if exact {
                    self.state[key] = KeyState {
                        version,
                        val: Some(Val::Blob(seq)),
                    };
                }
                Outcome::Ok
            }
            (Request::SetNum { key, n, .. }, Answer::Written(version)) => {
                if exact {
                    self.state[key] = KeyState {
                        version,
                        val: Some(Val::Num(n)),
                    };
                }
                Outcome::Ok
            }
            (Request::Set { key, .. } | Request::SetNum { key, .. }, Answer::Conflict(version)) => {
                // Carry on from the version the master has, so one conflict is one error.
                if exact {
                    self.state[key].version = version;
                }
                Outcome::Conflict(version)
            }
            (Request::VRead { key }, Answer::Versioned(version, value)) => {
                self.check_read(key, Some((version, value)), book, values)
            }
            (Request::VRead { key }, Answer::NotFound) => self.check_read(key, None, book, values),
            _ => Outcome::Error,
        }
    }

    /// A VREAD answer (`None`: NOT_FOUND) against what `key` must hold.
    fn check_read(
        &self,
        key: usize,
        got: Option<(u64, &[u8])>,
        book: &KeyBook,
        values: &mut ValueCache,
    ) -> Outcome {
        match self.workload {
            Workload::Incr => match got {
                None => Outcome::NotFound,
                Some((_, v)) if parse_num(v) == Some(self.counts[key]) => Outcome::Ok,
                Some(_) => Outcome::Mismatch("a count other than the increments sent"),
            },
            Workload::Delete => match (self.deleted[key], got) {
                (true, None) => Outcome::Ok,
                (true, Some(_)) => Outcome::Mismatch("a value after its DELETE was answered"),
                (false, None) => Outcome::NotFound,
                (false, Some((_, v))) if values.matches(key, book.newest(key).max(1), v) => {
                    Outcome::Ok
                }
                (false, Some(_)) => Outcome::Mismatch("a value it never held"),
            },
            _ => {
                let st = self.state[key];
                match (st.val, got) {
                    (None, None) => Outcome::Ok,
                    (None, Some(_)) => Outcome::Mismatch("a value after its DELETE was answered"),
                    (Some(_), None) => Outcome::NotFound,
                    (Some(_), Some((version, _))) if version != st.version => {
                        Outcome::Mismatch("a version other than the last one written")
                    }
                    (Some(Val::Num(n)), Some((_, v))) if parse_num(v) == Some(n) => Outcome::Ok,
                    (Some(Val::Blob(seq)), Some((_, v))) if values.matches(key, seq, v) => {
                        Outcome::Ok
                    }
                    (Some(_), Some(_)) => Outcome::Mismatch("a value other than the last written"),
                }
            }
        }
    }
}

/// An INCR delta from `r`: -DELTA_RANGE..=DELTA_RANGE.
#[inline]
pub fn delta(r: u64) -> i64 {
    below(r, 2 * DELTA_RANGE as usize + 1) as i64 - DELTA_RANGE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{ValueGen, VALUE_CACHE_BYTES};

    fn owned(body: Body) -> Decoded<'static> {
        Decoded::Owned(Frame::new(0, body))
    }

    fn versioned(version: u64, value: &[u8]) -> Decoded<'_> {
        Decoded::Ref(0, BodyRef::Versioned { version, value })
    }

    fn parts(keys: usize) -> (KeyBook, ValueCache) {
        let values = ValueCache::new(ValueGen::new(1, 16), keys, VALUE_CACHE_BYTES);
        (KeyBook::new(keys), values)
    }

    #[test]
    fn numbers_render_and_parse_in_decimal() {
        let mut buf = [0; 20];
        for n in [0, 7, -7, 1234567890, i64::MAX, i64::MIN] {
            let at = render_num(n, &mut buf);
            assert_eq!(&buf[at..], n.to_string().as_bytes());
            assert_eq!(parse_num(&buf[at..]), Some(n));
        }
        assert_eq!(parse_num(b"12x"), None);
        assert_eq!(parse_num(b""), None);
        assert_eq!(parse_num(&[0xff]), None);
        let mut seen = [false; 2 * DELTA_RANGE as usize + 1];
        for r in 0..100_000u64 {
            let d = delta(r.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            assert!((-DELTA_RANGE..=DELTA_RANGE).contains(&d));
            seen[(d + DELTA_RANGE) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every delta drawn");
    }

    #[test]
    fn incr_answers_must_be_the_running_sum() {
        let (mut book, mut values) = parts(4);
        let mut m = Model::new(Workload::Incr, 4, 2);
        let a = m.incr(1, 5);
        let b = m.incr(1, -8);
        assert_eq!(
            a,
            Request::Incr {
                key: 1,
                delta: 5,
                expect: 5
            }
        );
        assert_eq!(
            b,
            Request::Incr {
                key: 1,
                delta: -8,
                expect: -3
            }
        );
        assert_eq!(
            m.settle(a, &versioned(9, b"5"), &mut book, &mut values),
            Outcome::Ok
        );
        assert!(matches!(
            m.settle(b, &versioned(10, b"-2"), &mut book, &mut values),
            Outcome::Mismatch(_)
        ));
        assert_eq!(
            m.settle(b, &owned(Body::NotFound), &mut book, &mut values),
            Outcome::Error
        );
        // Read back: the sum, or a failure.
        let r = Request::VRead { key: 1 };
        assert_eq!(
            m.settle(r, &versioned(10, b"-3"), &mut book, &mut values),
            Outcome::Ok
        );
        assert!(matches!(
            m.settle(r, &versioned(10, b"3"), &mut book, &mut values),
            Outcome::Mismatch(_)
        ));
        assert_eq!(
            m.settle(r, &owned(Body::NotFound), &mut book, &mut values),
            Outcome::NotFound
        );
    }

    #[test]
    fn delete_takes_owned_keys_in_turn_and_expects_not_found_the_second_time() {
        let (mut book, mut values) = parts(5);
        let mut m = Model::new(Workload::Delete, 5, 2);
        let keys: Vec<_> = (0..5).map(|_| m.delete(1)).collect();
        assert_eq!(
            keys,
            [
                Request::Delete {
                    key: 1,
                    found: true
                },
                Request::Delete {
                    key: 3,
                    found: true
                },
                Request::Delete {
                    key: 1,
                    found: false
                },
                Request::Delete {
                    key: 3,
                    found: false
                },
                Request::Delete {
                    key: 1,
                    found: false
                },
            ]
        );
        let written = owned(Body::Written { version: 4 });
        let nf = owned(Body::NotFound);
        assert_eq!(
            m.settle(keys[0], &written, &mut book, &mut values),
            Outcome::Ok
        );
        assert_eq!(m.settle(keys[2], &nf, &mut book, &mut values), Outcome::Ok);
        assert_eq!(
            m.settle(keys[0], &nf, &mut book, &mut values),
            Outcome::NotFound
        );
        assert!(matches!(
            m.settle(keys[2], &written, &mut book, &mut values),
            Outcome::Mismatch(_)
        ));
        // Read back: deleted keys NOT_FOUND; key 0, never deleted, its preloaded value.
        let v = book.next_write(0);
        let value = values.value(0, v).to_vec();
        let r1 = Request::VRead { key: 1 };
        let r0 = Request::VRead { key: 0 };
        assert_eq!(m.settle(r1, &nf, &mut book, &mut values), Outcome::Ok);
        assert!(matches!(
            m.settle(r1, &versioned(3, &value), &mut book, &mut values),
            Outcome::Mismatch(_)
        ));
        assert_eq!(
            m.settle(r0, &versioned(3, &value), &mut book, &mut values),
            Outcome::Ok
        );
        assert_eq!(m.settle(r0, &nf, &mut book, &mut values), Outcome::NotFound);
        assert!(matches!(
            m.settle(r0, &versioned(3, b"other"), &mut book, &mut values),
            Outcome::Mismatch(_)
        ));
    }

    #[test]
    fn exact_keys_are_lent_one_at_a_time_and_tracked_through_every_answer() {
        let (mut book, mut values) = parts(4);
        let mut m = Model::new(Workload::MixAll, 4, 2);
        assert!(m.exact());
        // Connection 0 owns keys 0 and 2: two free, then none until one is released.
        assert_eq!((m.take_free(0), m.take_free(0)), (0, 2));
        m.release(2);
        assert_eq!(m.take_free(0), 2);
        m.release(0);
        m.release(2);
        // A SET, then a CAS with its version, an INCR, a DELETE, a CAS on the absent key.
        let set = Request::SetNum {
            key: 0,
            n: 40,
            expected: None,
        };
        assert_eq!(
            m.settle(
                set,
                &owned(Body::Written { version: 7 }),
                &mut book,
                &mut values
            ),
            Outcome::Ok
        );
        assert_eq!(
            m.state(0),
            KeyState {
                version: 7,
                val: Some(Val::Num(40))
            }
        );
        let r = Request::VRead { key: 0 };
        assert_eq!(
            m.settle(r, &versioned(7, b"40"), &mut book, &mut values),
            Outcome::Ok
        );
        assert!(matches!(
            m.settle(r, &versioned(6, b"40"), &mut book, &mut values),
            Outcome::Mismatch(_)
        ));
        assert!(matches!(
            m.settle(r, &versioned(7, b"41"), &mut book, &mut values),
            Outcome::Mismatch(_)
        ));
        let mut kinds = [0; 5];
        for i in 0..1000u64 {
            let req = m.mix(0, i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i);
            match req {
                Request::VRead { .. } => kinds[0] += 1,
                Request::SetNum { expected: None, .. } => kinds[1] += 1,
                Request::SetNum {
                    expected: Some(v), ..
                } => {
                    assert_eq!(v, 7);
                    kinds[2] += 1
                }
                Request::Delete { found, .. } => {
                    assert!(found);
                    kinds[3] += 1
                }
                Request::Incr { delta, expect, .. } => {
                    assert_eq!(expect, 40 + delta);
                    kinds[4] += 1
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(kinds.iter().all(|&k| (150..250).contains(&k)), "{kinds:?}");
        let incr = Request::Incr {
            key: 0,
            delta: 2,
            expect: 42,
        };
        assert_eq!(
            m.settle(incr, &versioned(9, b"42"), &mut book, &mut values),
            Outcome::Ok
        );
        assert_eq!(
            m.state(0),
            KeyState {
                version: 9,
                val: Some(Val::Num(42))
            }
        );
        let del = Request::Delete {
            key: 0,
            found: true,
        };
        assert_eq!(
            m.settle(
                del,
                &owned(Body::Written {
                    version: 1 << 63 | 10
                }),
                &mut book,
                &mut values
            ),
            Outcome::Ok
        );
        assert_eq!(m.state(0), KeyState::default());
        assert_eq!(
            m.settle(r, &owned(Body::NotFound), &mut book, &mut values),
            Outcome::Ok
        );
        match m.mix(0, 2 * (u64::MAX / 5) + 7, 5) {
            Request::SetNum { expected, .. } => assert_eq!(expected, Some(0)),
            other => panic!("a CAS: {other:?}"),
        }
        let cas = Request::SetNum {
            key: 0,
            n: 1,
            expected: Some(0),
        };
        assert_eq!(
            m.settle(
                cas,
                &owned(Body::Conflict { version: 12 }),
                &mut book,
                &mut values
            ),
            Outcome::Conflict(12)
        );
        assert_eq!(
            m.state(0).version,
            12,
            "the run carries on from the master's version"
        );
    }

    #[test]
    fn cas_values_are_the_generated_ones() {
        let (mut book, mut values) = parts(2);
        let mut m = Model::new(Workload::Cas, 2, 1);
        let seq = book.next_write(1);
        let set = Request::Set {
            key: 1,
            seq,
            expected: Some(0),
        };
        let value = values.value(1, seq).to_vec();
        assert_eq!(
            m.settle(
                set,
                &owned(Body::Written { version: 3 }),
                &mut book,
                &mut values
            ),
            Outcome::Ok
        );
        let r = Request::VRead { key: 1 };
        assert_eq!(
            m.settle(r, &versioned(3, &value), &mut book, &mut values),
            Outcome::Ok
        );
        let mut wrong = value.clone();
        wrong[0] ^= 1;
        assert!(matches!(
            m.settle(r, &versioned(3, &wrong), &mut book, &mut values),
            Outcome::Mismatch(_)
        ));
        assert_eq!(
            m.settle(
                set,
                &owned(Body::error(dsm_wire::ErrorCode::Timeout, "slow")),
                &mut book,
                &mut values
            ),
            Outcome::Error
        );
    }
}

//! The torture workload: client threads doing random READs, WRITEs of unique values, DELETEs,
//! compare-and-sets and INCRs on a small key set through the ordinary client library, each
//! operation recorded with its times and an outcome classified by what the system guarantees
//! (see [`classify_write`] and [`classify_change`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dsm_client::{Client, Error, Written};
use dsm_wire::ErrorCode;

use crate::torture::history::{Expected, Kind, Op, Outcome};
use crate::torture::rng::Rng;

/// Nanoseconds since the run started: every history time and fault time uses one clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// The name of key `i` of the workload.
pub fn key_name(i: usize) -> String {
    format!("k{i}")
}

/// Outcome counts so far, for progress lines.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub unknown: AtomicU64,
}

impl Tally {
    pub fn count(&self, outcome: Outcome) {
        let n = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::Fail => &self.fail,
            Outcome::Unknown => &self.unknown,
        };
        n.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.fail.load(Ordering::Relaxed)
            + self.unknown.load(Ordering::Relaxed)
    }
}

/// What one client thread does.
#[derive(Debug, Clone)]
pub struct Worker {
    pub process: u32,
    pub masters: Vec<SocketAddr>,
    pub keys: usize,
    pub read_percent: u64,
    /// What the operations that are not READs are.
    pub changes: ChangeMix,
    /// The client library's deadline per call (reconnects and resends included).
    pub timeout: Duration,
    /// Percent of WRITEs and CASes whose value is large ([`LARGE_VALUE`] bytes: the primary's
    /// read cache keeps such a value by reference in the buffer its frame came in, and answers
    /// from there), recorded in the history by the short part that names it.
    pub large_percent: u64,
    /// A pause of 0 to this many milliseconds after each operation (0: none), so that long runs
    /// keep their histories to a size worth writing and checking.
    pub think_ms: u64,
}

/// The weights of the changes a client makes (each operation that is not a READ is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeMix {
    pub write: u64,
    pub delete: u64,
    pub cas: u64,
    pub incr: u64,
}

impl Default for ChangeMix {
    /// Mostly WRITEs and CASes (unique values), enough DELETEs that INCRs often find a missing
    /// key or a counter rather than a written value (NOT_AN_INTEGER).
    fn default() -> ChangeMix {
        ChangeMix {
            write: 4,
            delete: 2,
            cas: 3,
            incr: 3,
        }
    }
}

impl ChangeMix {
    /// Only WRITEs: the workload before DELETE, CAS and INCR existed.
    pub const WRITES: ChangeMix = ChangeMix {
        write: 1,
        delete: 0,
        cas: 0,
        incr: 0,
    };

    /// `write:4,delete:2,cas:3,incr:3` (kinds left out weigh 0; at least one above 0).
    pub fn parse(spec: &str) -> Result<ChangeMix, String> {
        let mut mix = ChangeMix {
            write: 0,
            delete: 0,
            cas: 0,
            incr: 0,
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once(':').unwrap_or((part, "1"));
            let weight: u64 = weight
                .parse()
                .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
            let slot = match name {
                "write" => &mut mix.write,
                "delete" => &mut mix.delete,
                "cas" => &mut mix.cas,
                "incr" => &mut mix.incr,
                other => {
                    return Err(format!(
                        "unknown change {other:?} (write, delete, cas, incr)"
                    ))
                }
            };
            *slot = weight;
        }
        if mix.weights().iter().all(|&w| w == 0) {
            return Err(format!("{spec:?}: no change has a weight above 0"));
        }
        Ok(mix)
    }

    fn weights(&self) -> [u64; 4] {
        [self.write, self.delete, self.cas, self.incr]
    }
}

impl Worker {
    /// Run operations until `stop`; returns them all, in order.
    pub fn run(&self, mut rng: Rng, clock: Clock, stop: &AtomicBool, tally: &Tally) -> Vec<Op> {
        let mut ops = Vec::new();
        let mut client: Option<Client> = None;
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let c = match client.as_mut() {
                Some(c) => c,
                None => match Client::connect_with_timeout(&self.masters, self.timeout) {
                    Ok(c) => client.insert(c),
                    Err(_) => {
                        // Every master unreachable for a whole deadline: a failover under way.
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                },
            };
            let key = key_name(rng.below(self.keys as u64) as usize);
            let value = format!("{}-{seq}", self.process);
            let large = rng.percent(self.large_percent);
            seq += 1;
            let mut op = Op {
                process: self.process,
                key,
                ..Op::default()
            };
            let change = if rng.percent(self.read_percent) {
                None
            } else {
                rng.weighted(&self.changes.weights())
            };
            match change {
                None => read(c, &mut op, clock, false),
                Some(0) => write(c, &mut op, value, large, clock),
                Some(1) => delete(c, &mut op, clock),
                Some(2) => {
                    // A quarter of them create the key if missing, without reading; the others
                    // expect what a VREAD just saw (itself recorded), so that other clients'
                    // changes in between make conflicts.
                    let expected = if rng.percent(25) {
                        Some(Expected {
                            version: 0,
                            value: None,
                        })
                    } else {
                        let mut vread = op.clone();
                        read(c, &mut vread, clock, true);
                        tally.count(vread.outcome);
                        let seen = expected_from(&vread);
                        ops.push(vread);
                        seen
                    };
                    match expected {
                        Some(e) => cas(c, &mut op, e, value, large, clock),
                        None => continue,
                    }
                }
                Some(_) => {
                    let delta = rng.between(0, 8) as i64 - 3;
                    incr(c, &mut op, delta, clock)
                }
            }
            tally.count(op.outcome);
            ops.push(op);
            if self.think_ms > 0 {
                std::thread::sleep(Duration::from_millis(rng.below(self.think_ms + 1)));
            }
        }
        ops
    }
}

/// What a CAS after the VREAD `vread` expects, `None` if the VREAD got no answer. A counter
/// (an INCR's value) is expected missing instead, which conflicts: the value of a version must
/// name it for the checker, and counts repeat where written values do not.
fn expected_from(vread: &Op) -> Option<Expected> {
    if vread.outcome != Outcome::Ok {
        return None;
    }
    Some(match (&vread.value, vread.version) {
        (Some(v), Some(version)) if v.parse::<i64>().is_err() => Expected {
            version,
            value: Some(v.clone()),
        },
        _ => Expected {
            version: 0,
            value: None,
        },
    })
}

/// A READ (a VREAD with `versioned`, which records the version too) into `op`.
fn read(c: &mut Client, op: &mut Op, clock: Clock, versioned: bool) {
    op.kind = Kind::Read;
    op.invoke_ns = clock.now_ns();
    let r = if versioned {
        c.read_versioned(op.key.as_bytes())
            .map(|v| v.map(|(version, value)| (Some(version), value)))
    } else {
        c.read(op.key.as_bytes())
            .map(|v| v.map(|value| (None, value)))
    };
    op.complete_ns = clock.now_ns();
    match r {
        Ok(v) => {
            op.outcome = Outcome::Ok;
            if let Some((version, value)) = v {
                op.version = version;
                op.value = Some(recorded(&value));
            }
        }
        Err(e) => {
            op.outcome = classify_read_error(&e);
            op.error = Some(e.to_string());
        }
    }
}

/// Bytes of a large value: over the read cache's copied values (4 KiB) and over the size from
/// which the master keeps a WRITE's frame buffer as its value (64 KiB).
pub const LARGE_VALUE: usize = 80 * 1024;

/// What is sent for the value named `short`: itself, or, `large`, itself, `#` and a padding
/// made of its own bytes to [`LARGE_VALUE`], so that a value pieced together from two writes
/// does not read as either.
pub fn on_the_wire(short: &str, large: bool) -> Vec<u8> {
    let mut v = short.as_bytes().to_vec();
    if large {
        v.push(b'#');
        let pad = LARGE_VALUE.saturating_sub(v.len());
        v.extend(short.bytes().cycle().take(pad));
    }
    v
}

/// The history's name for a value read: the short part of a large value whose padding is
/// whole and its own, `SHORT#torn` for one whose padding is not (the checker then finds no
/// write of it), the bytes as text otherwise.
pub fn recorded(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    match text.split_once('#') {
        Some((short, _)) if value == on_the_wire(short, true) => short.to_string(),
        Some((short, _)) => format!("{short}#torn"),
        None => text.into_owned(),
    }
}

fn write(c: &mut Client, op: &mut Op, value: String, large: bool, clock: Clock) {
    op.kind = Kind::Write;
    op.invoke_ns = clock.now_ns();
    let r = c.write(op.key.as_bytes(), &on_the_wire(&value, large));
    op.complete_ns = clock.now_ns();
    (op.outcome, op.error) = classify_write(&r);
    op.value = Some(value);
}

fn delete(c: &mut Client, op: &mut Op, clock: Clock) {
    op.kind = Kind::Delete;
    op.invoke_ns = clock.now_ns();
    let r = c.delete(op.key.as_bytes(), None);
    op.complete_ns = clock.now_ns();
    match r {
        Ok(version) => {
            op.found = Some(version.is_some());
            op.version = version;
        }
        Err(e) => failed(op, e),
    }
}

fn cas(c: &mut Client, op: &mut Op, expected: Expected, value: String, large: bool, clock: Clock) {
    op.kind = Kind::Cas;
    let version = expected.version;
    op.expected = Some(expected);
    op.invoke_ns = clock.now_ns();
    let r = c.set(
        op.key.as_bytes(),
        &on_the_wire(&value, large),
        Some(version),
    );
    op.complete_ns = clock.now_ns();
    op.value = Some(value);
    match r {
        Ok(version) => op.version = Some(version),
        Err(e) => {
            if let Error::Conflict { current } = e {
                op.version = Some(current);
            }
            failed(op, e)
        }
    }
}

fn incr(c: &mut Client, op: &mut Op, delta: i64, clock: Clock) {
    op.kind = Kind::Incr;
    op.delta = Some(delta);
    op.invoke_ns = clock.now_ns();
    let r = c.incr(op.key.as_bytes(), delta);
    op.complete_ns = clock.now_ns();
    match r {
        Ok((n, version)) => {
            op.value = Some(n.to_string());
            op.version = Some(version);
        }
        Err(e) => failed(op, e),
    }
}

/// A change that got an error instead of its answer.
fn failed(op: &mut Op, e: Error) {
    op.outcome = classify_change(&e);
    op.error = Some(e.to_string());
}

/// One READ of `key` through `c`, recorded as `process`.
pub fn recorded_read(c: &mut Client, process: u32, key: &str, clock: Clock) -> Op {
    let mut op = Op {
        process,
        key: key.to_string(),
        ..Op::default()
    };
    read(c, &mut op, clock, false);
    op
}

/// A WRITE's outcome from what the client library returned.
///
/// `fail` only where the system guarantees the write had no effect anywhere:
/// - `Error::Invalid`: the client library refused it before sending;
/// - `BAD_REQUEST` / `TOO_LARGE`: the master checks the key and value in `on_client_frame`
///   before the operation is queued, so no STORE was sent; and since that check gives every
///   master the same answer, no earlier attempt of the client's resend loop was taken either;
/// - `UNAVAILABLE` from a recovering master (restarted, after a kill of every node): it is
///   answered in `Master::on_client_op` before the operation is queued, so no STORE was sent;
/// - `OUT_OF_MEMORY` / `UNAVAILABLE` from the write path (`WriteOp::failed`): said only when
///   no slave ACKed and every STORE sent was refused with an ERROR (a slave that refuses does
///   not apply); a STORE to a slave that was dropped or left behind as slow makes the answer
///   `NO_SLAVES` (unknown) instead.
///
/// In each case the client library sent no earlier copy that a master could have taken: it
/// resends a WRITE only after a NOT_PRIMARY answer or over a connection closed before sending.
///
/// Everything else is `unknown`:
/// - `TIMEOUT` from the master: the deadline can pass with STOREs in flight, or with some
///   ACKed (`on_deadline` then makes those copies the record);
/// - `NOT_PRIMARY`: the client library returns it only after its resends ran out; an earlier
///   attempt may have been taken by a primary that then lost its lease (`finish` answers
///   "outcome unknown") or stepped down (`fence_self`);
/// - `NO_SLAVES`: also sent after STOREs went out to slaves that then died (`commit_write`);
/// - the client's own deadline, a broken connection, no reachable master: the request (or an
///   earlier copy the library resent) may have reached a master.
pub fn classify_write(r: &Result<Written, Error>) -> (Outcome, Option<String>) {
    match r {
        Ok(_) => (Outcome::Ok, None),
        Err(e) => (classify_error(e), Some(e.to_string())),
    }
}

fn classify_error(e: &Error) -> Outcome {
    match e {
        Error::Invalid(_) => Outcome::Fail,
        // Refused before any STORE (BAD_REQUEST, TOO_LARGE, UNAVAILABLE while the master
        // recovers), or refused by every slave tried (OUT_OF_MEMORY, UNAVAILABLE): the write
        // did not happen.
        Error::Server {
            code:
                ErrorCode::BadRequest
                | ErrorCode::TooLarge
                | ErrorCode::OutOfMemory
                | ErrorCode::Unavailable,
            ..
        } => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// A DELETE's, CAS's or INCR's outcome from its error: as a WRITE's (see [`classify_write`];
/// they share the write path), and `fail` for the answers the master gives after deciding
/// from the key's state, before any STORE: CONFLICT (a CAS's expected version is not the
/// key's), NOT_AN_INTEGER and OVERFLOW (`UpdateOp::decide` in `master/src/ops/update.rs`).
pub fn classify_change(e: &Error) -> Outcome {
    match e {
        Error::Conflict { .. }
        | Error::Server {
            code: ErrorCode::NotAnInteger | ErrorCode::Overflow,
            ..
        } => Outcome::Fail,
        _ => classify_error(e),
    }
}

/// A READ has no effect either way, so the checker drops any that did not succeed. Recorded
/// as `fail` when a master answered with an error, `unknown` when no answer came.
pub fn classify_read_error(e: &Error) -> Outcome {
    match e {
        Error::Server { .. } | Error::Invalid(_) => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_value_is_recorded_by_its_name_and_a_torn_one_is_not() {
        let wire = on_the_wire("3-17", true);
        assert_eq!(wire.len(), LARGE_VALUE);
        assert!(wire.starts_with(b"3-17#3-173-17"));
        assert_eq!(recorded(&wire), "3-17");
        assert_eq!(on_the_wire("3-17", false), b"3-17");
        assert_eq!(recorded(b"3-17"), "3-17");
        // Another write's padding, a short one, or a flipped byte: never a written value.
        let mut other = on_the_wire("3-18", true);
        other[..4].copy_from_slice(b"3-17");
        assert_eq!(recorded(&other), "3-17#torn");
        assert_eq!(recorded(&wire[..wire.len() - 1]), "3-17#torn");
        let mut flipped = wire.clone();
        flipped[LARGE_VALUE / 2] ^= 1;
        assert_eq!(recorded(&flipped), "3-17#torn");
    }

    #[test]
    fn only_refusals_before_any_store_count_as_failed_writes() {
        let server = |code| {
            Err(Error::Server {
                code,
                text: String::new(),
            })
        };
        assert_eq!(classify_write(&Ok(Written::Full)).0, Outcome::Ok);
        let short = Written::Short {
            copies: 1,
            wanted: 2,
        };
        assert_eq!(classify_write(&Ok(short)).0, Outcome::Ok);
        assert_eq!(
            classify_write(&server(ErrorCode::OutOfMemory)).0,
            Outcome::Fail
        );
        assert_eq!(
            classify_write(&server(ErrorCode::TooLarge)).0,
            Outcome::Fail
        );
        assert_eq!(
            classify_write(&server(ErrorCode::Unavailable)).0,
            Outcome::Fail,
            "a recovering master, or every slave tried refused"
        );
        assert_eq!(
            classify_write(&server(ErrorCode::BadRequest)).0,
            Outcome::Fail
        );
        assert_eq!(
            classify_write(&Err(Error::Invalid("empty key".into()))).0,
            Outcome::Fail
        );
        for code in [
            ErrorCode::Timeout,
            ErrorCode::NotPrimary,
            ErrorCode::NoSlaves,
            ErrorCode::StaleEpoch,
            ErrorCode::Other(99),
        ] {
            assert_eq!(
                classify_write(&server(code)).0,
                Outcome::Unknown,
                "{code:?}"
            );
        }
        assert_eq!(
            classify_write(&Err(Error::Timeout { waited_ms: 1 })).0,
            Outcome::Unknown
        );
        assert_eq!(
            classify_write(&Err(Error::Unreachable("x".into()))).0,
            Outcome::Unknown
        );
        assert_eq!(
            classify_write(&Err(Error::Unknown("the connection broke".into()))).0,
            Outcome::Unknown
        );
    }

    #[test]
    fn a_read_without_an_answer_is_never_a_not_found() {
        let unavailable = Error::Server {
            code: ErrorCode::Unavailable,
            text: "recovering after a restart".into(),
        };
        assert_eq!(classify_read_error(&unavailable), Outcome::Fail);
        let cut = Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify_read_error(&cut), Outcome::Unknown);
        assert_eq!(
            classify_read_error(&Error::Timeout { waited_ms: 3000 }),
            Outcome::Unknown
        );
    }
}

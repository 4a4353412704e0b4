//! The torture workload: client threads doing random READs and WRITEs of unique values on a
//! small key set through the ordinary client library, each operation recorded with its times
//! and an outcome classified by what the system guarantees (see [`classify`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dsm_client::{Client, Error, Written};
use dsm_wire::ErrorCode;

use crate::torture::history::{Kind, Op, Outcome};
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
    /// The client library's deadline per call (reconnects and resends included).
    pub timeout: Duration,
    /// A pause of 0 to this many milliseconds after each operation (0: none), so that long runs
    /// keep their histories to a size worth writing and checking.
    pub think_ms: u64,
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
            let write = !rng.percent(self.read_percent);
            let value = format!("{}-{seq}", self.process);
            seq += 1;
            let invoke_ns = clock.now_ns();
            let (outcome, value, error) = if write {
                let r = c.write(key.as_bytes(), value.as_bytes());
                let (outcome, error) = classify_write(&r);
                (outcome, Some(value), error)
            } else {
                match c.read(key.as_bytes()) {
                    Ok(v) => (
                        Outcome::Ok,
                        v.map(|v| String::from_utf8_lossy(&v).into_owned()),
                        None,
                    ),
                    Err(e) => (classify_read_error(&e), None, Some(e.to_string())),
                }
            };
            let complete_ns = clock.now_ns();
            tally.count(outcome);
            ops.push(Op {
                process: self.process,
                key,
                kind: if write { Kind::Write } else { Kind::Read },
                value,
                invoke_ns,
                complete_ns,
                outcome,
                error,
            });
            if self.think_ms > 0 {
                std::thread::sleep(Duration::from_millis(rng.below(self.think_ms + 1)));
            }
        }
        ops
    }
}

/// One READ of `key` through `c`, recorded as `process`.
pub fn recorded_read(c: &mut Client, process: u32, key: &str, clock: Clock) -> Op {
    let invoke_ns = clock.now_ns();
    let r = c.read(key.as_bytes());
    let complete_ns = clock.now_ns();
    let (outcome, value, error) = match r {
        Ok(v) => (
            Outcome::Ok,
            v.map(|v| String::from_utf8_lossy(&v).into_owned()),
            None,
        ),
        Err(e) => (classify_read_error(&e), None, Some(e.to_string())),
    };
    Op {
        process,
        key: key.to_string(),
        kind: Kind::Read,
        value,
        invoke_ns,
        complete_ns,
        outcome,
        error,
    }
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
        Err(e @ Error::Invalid(_)) => (Outcome::Fail, Some(e.to_string())),
        // Refused before any STORE (BAD_REQUEST, TOO_LARGE, UNAVAILABLE while the master
        // recovers), or refused by every slave tried (OUT_OF_MEMORY, UNAVAILABLE): the write
        // did not happen.
        Err(
            e @ Error::Server {
                code:
                    ErrorCode::BadRequest
                    | ErrorCode::TooLarge
                    | ErrorCode::OutOfMemory
                    | ErrorCode::Unavailable,
                ..
            },
        ) => (Outcome::Fail, Some(e.to_string())),
        Err(e) => (Outcome::Unknown, Some(e.to_string())),
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

//! A small blocking client: connects to the first master that answers, pipelines requests, and
//! on a broken connection, a "not primary" answer or a master that stops answering moves to the
//! next address (or the primary a NOT_PRIMARY names) and resends what was unanswered, until the
//! call's deadline.
//!
//! Writes are exactly-once (WRITE_ONCE, `wire/PROTOCOL.md` section 6): each client has a random
//! id and numbers its writes, so a write can be sent again across a failover and the primary
//! answers a copy it has already applied with the first answer. A master that does not answer
//! within the probe interval is PINGed; silent for another, it is left (and avoided for a
//! while) and its requests go to the other masters. With `exactly_once` off, writes are plain
//! WRITEs, resent only when no master can have taken them (a NOT_PRIMARY refusal, or a
//! connection found closed before it was sent).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_auth::Secret;
use dsm_wire::{
    encode, primary_named, says_recovering, says_taken, Body, ErrorCode, Frame, Status, WriteId,
};
use log::{debug, info};

use crate::conn::{remaining, MasterConn};
use crate::error::Error;

/// One request of a pipelined [`Client::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Write { key: Vec<u8>, value: Vec<u8> },
    Read { key: Vec<u8> },
}

/// The successful answer to one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    /// The write took effect, on fewer copies than the master keeps (R).
    Degraded {
        copies: u16,
        wanted: u16,
    },
    Value(Vec<u8>),
    NotFound,
}

/// How a write took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// On every one of the R copies the master keeps.
    Full,
    /// On `copies` of the `wanted` R: it happened, with less redundancy (slaves were missing).
    Short { copies: u16, wanted: u16 },
}

/// How long one call may take, reconnects included, unless set with [`Client::set_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_millis(200);
/// How long a master may leave a request unanswered before it is PINGed, and then how long it
/// has to answer anything, unless set in [`ConnectOptions::probe`].
pub const DEFAULT_PROBE: Duration = Duration::from_millis(250);
/// How long a master that went silent, or whose connection broke, is tried only when every
/// other one is avoided too.
const AVOID_FOR: Duration = Duration::from_secs(1);
/// How long a master that refused the connection (nothing listens there) is avoided the
/// same way: short, since a restarted master listens again within moments.
const AVOID_REFUSED_FOR: Duration = Duration::from_millis(250);

/// How [`Client::connect_with_options`] connects, and how every later call reconnects.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The deadline of connecting, and of every later call (reconnects included).
    pub timeout: Duration,
    /// Prove this secret to the master, and talk only to a master that proves it too.
    pub secret: Option<Secret>,
    /// Give up ([`Error::Unreachable`]) as soon as every address has refused the connection in
    /// a row, instead of trying again until the deadline: nothing listens there, which a
    /// command line should say at once. A failover does not look like that (the backup
    /// listens all along), but a restart of every master does: a program that should ride one
    /// out leaves this off.
    pub refused_is_final: bool,
    /// A master that leaves a request unanswered this long is PINGed; if it says nothing for
    /// as long again (frozen, or cut off without a FIN), the request goes to another master.
    pub probe: Duration,
    /// Send writes as WRITE_ONCE (on by default): resent across a failover, applied once.
    /// Off, a write is a plain WRITE and one in flight when its master is lost is answered
    /// [`Error::Unknown`] (for a cluster of version-1 masters).
    pub exactly_once: bool,
    /// The largest value this client expects, as the master's `--max-value`: a frame from
    /// the master longer than such a value with the largest key and a header is refused
    /// (a protocol error, the connection closed) before its bytes are buffered.
    pub max_value: usize,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            timeout: DEFAULT_TIMEOUT,
            secret: None,
            refused_is_final: false,
            probe: DEFAULT_PROBE,
            exactly_once: true,
            max_value: dsm_wire::DEFAULT_MAX_VALUE,
        }
    }
}

pub struct Client {
    masters: Vec<SocketAddr>,
    /// Index of the address in use (or to try next).
    current: usize,
    /// The master the last call talked to (or tried last), for error messages.
    last: usize,
    refused_is_final: bool,
    conn: Option<MasterConn>,
    next_req: u64,
    timeout: Duration,
    max_frame: usize,
    secret: Option<Secret>,
    probe: Duration,
    exactly_once: bool,
    /// This client's id for exactly-once writes, and the number of its next write.
    id: u64,
    next_seq: u64,
    /// Masters to try last, until when: they went silent or their connection broke.
    avoid: Vec<(SocketAddr, Instant)>,
    /// Where the next call's deadline counts from, if not from its start
    /// ([`Client::next_call_from`]).
    next_from: Option<Instant>,
}

/// A random id for a new client (std's per-process random hash keys, the time and a counter).
fn new_client_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static MADE: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(MADE.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map_or(0, |d| d.as_nanos()));
    h.finish()
}

impl Client {
    /// Connect to the first of `masters` that accepts a HELLO, trying them in order within
    /// [`DEFAULT_TIMEOUT`].
    pub fn connect(masters: &[SocketAddr]) -> Result<Client, Error> {
        Client::connect_with_timeout(masters, DEFAULT_TIMEOUT)
    }

    /// [`Client::connect`] with a deadline for connecting, and for every later call.
    pub fn connect_with_timeout(
        masters: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Client, Error> {
        Client::connect_with_secret(masters, timeout, None)
    }

    /// [`Client::connect_with_timeout`] that, given a `secret`, proves it to the master (which
    /// a master started with `--require-client-auth` insists on) and talks only to a master
    /// that proves it holds the secret too.
    pub fn connect_with_secret(
        masters: &[SocketAddr],
        timeout: Duration,
        secret: Option<Secret>,
    ) -> Result<Client, Error> {
        Client::connect_with_options(
            masters,
            ConnectOptions {
                timeout,
                secret,
                refused_is_final: false,
                ..ConnectOptions::default()
            },
        )
    }

    /// Connect as `opts` say (see [`ConnectOptions`]).
    pub fn connect_with_options(
        masters: &[SocketAddr],
        opts: ConnectOptions,
    ) -> Result<Client, Error> {
        if masters.is_empty() {
            return Err(Error::Invalid("no master address given".into()));
        }
        let mut c = Client {
            masters: masters.to_vec(),
            current: 0,
            last: 0,
            refused_is_final: opts.refused_is_final,
            conn: None,
            next_req: 1,
            timeout: opts.timeout,
            // Keys up to 64 KiB (the wire's own bound) and values up to `max_value`: a STATUS
            // reply is far smaller.
            max_frame: dsm_wire::max_frame_for(64 * 1024, opts.max_value),
            secret: opts.secret,
            probe: opts.probe.max(Duration::from_millis(1)),
            exactly_once: opts.exactly_once,
            id: new_client_id(),
            next_seq: 1,
            avoid: Vec::new(),
            next_from: None,
        };
        c.ensure_connected(Instant::now() + c.timeout)?;
        Ok(c)
    }

    /// The deadline for each later call (reconnects and resends included).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// This client's id in its exactly-once writes.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The master this client talks to now.
    pub fn master(&self) -> SocketAddr {
        self.masters[self.current % self.masters.len()]
    }

    /// Count the next call's `timeout` from `start` instead of from the call itself: a
    /// program that connects to make one call (`dsm-client read`) gives the whole of it,
    /// connecting included, one deadline.
    pub fn next_call_from(&mut self, start: Instant) {
        self.next_from = Some(start);
    }

    /// The master the last call talked to, or tried last: the one an error is about (after a
    /// failure [`Client::master`] may already name the next one).
    pub fn last_master(&self) -> SocketAddr {
        self.masters[self.last % self.masters.len()]
    }

    /// Store `value` under `key`. `Ok` means it happened; [`Written::Short`] says on fewer
    /// copies than the master keeps.
    pub fn write(&mut self, key: &[u8], value: &[u8]) -> Result<Written, Error> {
        match self.one(Body::Write {
            key: key.to_vec(),
            value: value.to_vec(),
        })? {
            Body::Ok => Ok(Written::Full),
            Body::Degraded { copies, wanted } => Ok(Written::Short { copies, wanted }),
            other => Err(unexpected(&other)),
        }
    }

    /// The value of `key` and its version, or `None` when the master says NOT_FOUND.
    pub fn read_versioned(&mut self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, Error> {
        match self.one(Body::VRead { key: key.to_vec() })? {
            Body::Versioned { version, value } => Ok(Some((version, value))),
            Body::NotFound => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// Store `value` under `key` and return the new version; with `expected`, only if the
    /// key's committed version is still that one (0: only if the key does not exist), else
    /// [`Error::Conflict`] with the current version, and nothing is written.
    pub fn set(&mut self, key: &[u8], value: &[u8], expected: Option<u64>) -> Result<u64, Error> {
        let body = Body::Set {
            key: key.to_vec(),
            expected,
            value: value.to_vec(),
        };
        match self.one(body)? {
            Body::Written { version } => Ok(version),
            Body::Conflict { version } => Err(Error::Conflict { current: version }),
            other => Err(unexpected(&other)),
        }
    }

    /// Delete `key` (with `expected`, only at that version, as [`Client::set`]): the version
    /// of its tombstone, or `None` when there was no such key.
    pub fn delete(&mut self, key: &[u8], expected: Option<u64>) -> Result<Option<u64>, Error> {
        let body = Body::Delete {
            key: key.to_vec(),
            expected,
        };
        match self.one(body)? {
            Body::Written { version } => Ok(Some(version)),
            Body::NotFound => Ok(None),
            Body::Conflict { version } => Err(Error::Conflict { current: version }),
            other => Err(unexpected(&other)),
        }
    }

    /// Add `delta` to the counter in `key` (a missing key counts as 0): the new value and
    /// its version.
    pub fn incr(&mut self, key: &[u8], delta: i64) -> Result<(i64, u64), Error> {
        let body = Body::Incr {
            key: key.to_vec(),
            delta,
        };
        match self.one(body)? {
            Body::Versioned { version, value } => std::str::from_utf8(&value)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(|n| (n, version))
                .ok_or_else(|| Error::Protocol("INCR answered a value that is no integer".into())),
            other => Err(unexpected(&other)),
        }
    }

    /// One page of the keys under `prefix`, from `cursor` (0 to begin): the keys, and the
    /// cursor of the next page (0: the scan is over).
    pub fn scan_page(
        &mut self,
        prefix: &[u8],
        cursor: u64,
        limit: u32,
    ) -> Result<(Vec<Vec<u8>>, u64), Error> {
        let body = Body::Scan {
            prefix: prefix.to_vec(),
            cursor,
            limit,
        };
        match self.one(body)? {
            Body::Keys { next, keys } => Ok((keys, next)),
            other => Err(unexpected(&other)),
        }
    }

    /// Every key under `prefix`, page by page: each key that exists for the whole scan is
    /// listed once (keys created or deleted meanwhile may or may not be).
    pub fn scan(&mut self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let (mut all, mut cursor) = (Vec::new(), 0);
        loop {
            let (keys, next) = self.scan_page(prefix, cursor, 1000)?;
            all.extend(keys);
            if next == 0 {
                return Ok(all);
            }
            cursor = next;
        }
    }

    /// Tell the master that slave `id` is gone for good (its disk is lost): its copies no
    /// longer count, and keys only it held read NOT_FOUND from then on.
    pub fn forget_slave(&mut self, id: &str) -> Result<(), Error> {
        match self.one(Body::Forget { id: id.into() })? {
            Body::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The value of `key`, or `None` when the master says NOT_FOUND.
    pub fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match self.one(Body::Read { key: key.to_vec() })? {
            Body::Value { value } => Ok(Some(value)),
            Body::NotFound => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    pub fn status(&mut self) -> Result<Status, Error> {
        match self.one(Body::Status)? {
            Body::StatusReply(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// One round trip to the master itself (no slave involved).
    pub fn ping(&mut self) -> Result<(), Error> {
        match self.one(Body::Ping)? {
            Body::Pong => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Send every op before reading any answer (one round trip for the lot); answers come back
    /// in the order of `ops`. The outer error is a transport failure; the inner ones are
    /// per-request answers such as `Error::Server`.
    pub fn batch(&mut self, ops: &[Op]) -> Result<Vec<Result<Reply, Error>>, Error> {
        let bodies: Vec<Body> = ops
            .iter()
            .map(|op| match op {
                Op::Write { key, value } => Body::Write {
                    key: key.clone(),
                    value: value.clone(),
                },
                Op::Read { key } => Body::Read { key: key.clone() },
            })
            .collect();
        let started = self.call_start();
        for b in &bodies {
            check_key(b)?;
        }
        let answers = self.call(bodies, started)?;
        Ok(answers
            .into_iter()
            .map(|b| match b? {
                Body::Ok => Ok(Reply::Ok),
                Body::Degraded { copies, wanted } => Ok(Reply::Degraded { copies, wanted }),
                Body::Value { value } => Ok(Reply::Value(value)),
                Body::NotFound => Ok(Reply::NotFound),
                Body::Error { code, text } => Err(Error::Server { code, text }),
                other => Err(unexpected(&other)),
            })
            .collect())
    }

    fn one(&mut self, body: Body) -> Result<Body, Error> {
        let started = self.call_start();
        check_key(&body)?;
        let mut answers = self.call(vec![body], started)?;
        match answers.pop() {
            Some(Ok(Body::Error { code, text })) => Err(Error::Server { code, text }),
            Some(answer) => answer,
            None => Err(Error::Protocol("no answer".into())),
        }
    }

    /// With exactly-once writes on, each WRITE becomes a WRITE_ONCE with this client's id and
    /// the next number, and each SET, DELETE or INCR goes in a ONCE with them; `acked` is the
    /// first number of this call (every earlier write has had its final answer, or its call
    /// gave up on it).
    fn number(&mut self, bodies: Vec<Body>) -> Vec<Body> {
        if !self.exactly_once {
            return bodies;
        }
        let acked = self.next_seq;
        bodies
            .into_iter()
            .map(|b| match b {
                Body::Write { key, value } => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let id = WriteId {
                        client: self.id,
                        seq,
                        acked,
                    };
                    Body::WriteOnce {
                        id,
                        resent_ms: 0,
                        key,
                        value,
                    }
                }
                change @ (Body::Set { .. } | Body::Delete { .. } | Body::Incr { .. }) => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let id = WriteId {
                        client: self.id,
                        seq,
                        acked,
                    };
                    Body::Once {
                        id,
                        resent_ms: 0,
                        inner: Box::new(change),
                    }
                }
                other => other,
            })
            .collect()
    }

    /// Send `bodies` pipelined and collect one answer for each, reconnecting and resending the
    /// unanswered ones after a NOT_PRIMARY answer, a broken connection or a silent master. A
    /// WRITE_ONCE or ONCE is always sent again (marked as such); a plain WRITE, SET, DELETE or
    /// INCR that may have been taken is answered [`Error::Unknown`] instead.
    /// Where this call's deadline counts from: now, or where [`Client::next_call_from`] said
    /// (taken by the call that comes next, even one refused before it is sent).
    fn call_start(&mut self) -> Instant {
        self.next_from.take().unwrap_or_else(Instant::now)
    }

    fn call(
        &mut self,
        bodies: Vec<Body>,
        started: Instant,
    ) -> Result<Vec<Result<Body, Error>>, Error> {
        let deadline = started + self.timeout;
        let mut bodies = self.number(bodies);
        // Per request: a master may have taken it and said nothing of its outcome.
        let mut maybe_taken = vec![false; bodies.len()];
        let mut answers: Vec<Option<Result<Body, Error>>> = bodies.iter().map(|_| None).collect();
        let mut refusal: Option<String> = None;
        // The last refusal of a recovering master per request: its answer if the deadline
        // comes first.
        let mut recovering_refusals: Vec<Option<Result<Body, Error>>> =
            bodies.iter().map(|_| None).collect();
        // The call left a master for another: said when it is answered.
        let mut moved = false;
        loop {
            if let Err(e) = self.ensure_connected(deadline) {
                return Err(refused_by_then(
                    waited(e, started),
                    refusal,
                    started,
                    deadline,
                ));
            }
            let todo: Vec<usize> = (0..bodies.len())
                .filter(|&i| answers[i].is_none())
                .collect();
            // A write a master may have taken is sent again saying so, with the time since its
            // first send: the next primary first asks the slaves whether it was applied.
            let ms = started.elapsed().as_millis().clamp(1, u32::MAX as u128) as u32;
            for &i in &todo {
                if let Body::WriteOnce { resent_ms, .. } | Body::Once { resent_ms, .. } =
                    &mut bodies[i]
                {
                    if maybe_taken[i] {
                        *resent_ms = ms;
                    }
                }
            }
            let first_req = self.next_req;
            self.next_req += todo.len() as u64;
            let mut out = Vec::new();
            for (n, &i) in todo.iter().enumerate() {
                encode(
                    &Frame::new(first_req + n as u64, bodies[i].clone()),
                    &mut out,
                );
            }
            let round = self.exchange(&out, first_req, &todo, &mut answers, deadline);
            if matches!(
                round,
                Ok(Round::Silent) | Err(Error::Io(_)) | Err(Error::Protocol(_))
            ) {
                for &i in &todo {
                    maybe_taken[i] |= answers[i].is_none();
                }
            }
            // A resend that a master may have taken, refused UNAVAILABLE: a master still
            // recovering refuses before it looks at what the slaves recorded, so the refusal
            // does not say the first send failed. Asked again until it does say, or until the
            // deadline (then TIMEOUT: unknown, never a false "it failed").
            // A request a master refused because it is recovering (`dsm_wire::RECOVERING`)
            // was not taken: asked again until the deadline, when that refusal is the answer
            // (a failover that ends with a short recovery then costs a delay, not an error).
            let mut undecided = false;
            for &i in &todo {
                let unavailable = match &answers[i] {
                    Some(Ok(Body::Error {
                        code: ErrorCode::Unavailable,
                        text,
                    })) => Some(says_recovering(text)),
                    _ => None,
                };
                let Some(recovering) = unavailable else {
                    continue;
                };
                if maybe_taken[i] && matches!(bodies[i], Body::WriteOnce { .. } | Body::Once { .. })
                {
                    answers[i] = None;
                    undecided = true;
                } else if recovering && !(maybe_taken[i] && changes(&bodies[i])) {
                    recovering_refusals[i] = answers[i].take();
                    undecided = true;
                }
            }
            if undecided {
                debug!("{} is recovering: asking again", self.master());
                std::thread::sleep(
                    Duration::from_millis(20)
                        .min(deadline.saturating_duration_since(Instant::now())),
                );
            }
            match round {
                Ok(Round::Answered) => {}
                // Some answers said NOT_PRIMARY and were left unset: try the primary it named,
                // or the next master.
                Ok(Round::Refused { text, taken }) => {
                    for i in taken {
                        maybe_taken[i] = true;
                    }
                    let named = primary_named(&text);
                    info!("{} is not the primary: {text}", self.master());
                    refusal = Some(text);
                    match named.filter(|&a| !self.avoided(a, Instant::now())) {
                        Some(addr) if addr != self.master() => self.go_to(addr),
                        _ => {
                            self.move_on();
                            // No primary named: a failover is under way; give the backup a
                            // moment to take over.
                            std::thread::sleep(
                                Duration::from_millis(20)
                                    .min(deadline.saturating_duration_since(Instant::now())),
                            );
                        }
                    }
                    moved = true;
                }
                // Nothing was sent: everything may go to the next master.
                Ok(Round::ClosedBeforeSend) => {
                    self.move_on();
                    moved = true;
                }
                // The master said nothing for two probe intervals: frozen, or cut off.
                Ok(Round::Silent) => {
                    let master = self.master();
                    info!(
                        "{master} answered neither the requests nor a PING for {} ms: trying \
                         the next master",
                        2 * self.probe.as_millis()
                    );
                    self.give_up_writes(&bodies, &todo, &mut answers, || {
                        format!("{master} stopped answering")
                    });
                    self.avoid_current();
                    moved = true;
                }
                Err(e @ Error::Io(_)) | Err(e @ Error::Protocol(_)) => {
                    let master = self.master();
                    info!("the connection to {master} broke ({e}): trying the next master");
                    self.give_up_writes(&bodies, &todo, &mut answers, || {
                        format!("the connection to {master} broke before the answer ({e})")
                    });
                    self.avoid_current();
                    moved = true;
                }
                // The connection is closed behind a frame not read: what has no answer yet
                // gets this error, and a change among it may or may not have been made.
                Err(Error::ReplyTooLarge { len, max }) => {
                    for &i in &todo {
                        if answers[i].is_none() {
                            answers[i] = Some(Err(match changes(&bodies[i]) {
                                true => Error::Unknown(format!(
                                    "the connection closed behind an answer of {len} bytes, \
                                     over this client's limit of {max}"
                                )),
                                false => Error::ReplyTooLarge { len, max },
                            }));
                        }
                    }
                }
                Err(e) => {
                    return Err(refused_by_then(
                        waited(e, started),
                        refusal,
                        started,
                        deadline,
                    ))
                }
            }
            if answers.iter().all(Option::is_some) {
                if moved {
                    info!("answered by {}", self.master());
                }
                return Ok(answers.into_iter().map(|a| a.expect("all set")).collect());
            }
            if Instant::now() >= deadline {
                for (answer, held) in answers.iter_mut().zip(&mut recovering_refusals) {
                    if answer.is_none() {
                        *answer = held.take();
                    }
                }
                if answers.iter().all(Option::is_some) {
                    return Ok(answers.into_iter().map(|a| a.expect("all set")).collect());
                }
                // Say what the masters said, if they said anything.
                return Err(match refusal {
                    Some(text) => Error::Server {
                        code: ErrorCode::NotPrimary,
                        text: late(text, started),
                    },
                    None => Error::Timeout {
                        waited_ms: self.timeout.as_millis() as u64,
                    },
                });
            }
        }
    }

    /// A master was lost with requests out: a plain WRITE (or SET, DELETE, INCR) among them may
    /// have been taken, and is answered [`Error::Unknown`] (a WRITE_ONCE and a READ are simply
    /// sent again).
    fn give_up_writes(
        &self,
        bodies: &[Body],
        todo: &[usize],
        answers: &mut [Option<Result<Body, Error>>],
        why: impl Fn() -> String,
    ) {
        for &i in todo {
            if answers[i].is_none() && changes(&bodies[i]) {
                answers[i] = Some(Err(Error::Unknown(why())));
            }
        }
    }

    /// Write `out`, then read until every request in `todo` has an answer. Answers that say
    /// NOT_PRIMARY are left unset (`Round::Refused` with the last such text). A master that
    /// leaves the requests unanswered for a probe interval is PINGed, and one that then says
    /// nothing for another is `Round::Silent`.
    fn exchange(
        &mut self,
        out: &[u8],
        first_req: u64,
        todo: &[usize],
        answers: &mut [Option<Result<Body, Error>>],
        deadline: Instant,
    ) -> Result<Round, Error> {
        let (timeout, probe) = (self.timeout, self.probe);
        let conn = self.conn.as_mut().expect("connected");
        // A master that died since the last call has closed the connection already: seen now,
        // nothing has been sent and every request can go to the next master.
        if conn.peer_closed() {
            return Ok(Round::ClosedBeforeSend);
        }
        self.last = self.current;
        conn.send(out, deadline)?;
        let mut missing = todo.len();
        let mut not_primary = None;
        let mut taken = Vec::new();
        let mut probe_at = Instant::now() + probe;
        let mut pinged = false;
        while missing > 0 {
            let frame = match conn.next_frame(deadline.min(probe_at), timeout) {
                Ok(frame) => frame,
                Err(Error::Timeout { .. }) if Instant::now() < deadline => {
                    if pinged {
                        self.conn = None;
                        return Ok(Round::Silent);
                    }
                    // PING is answered by the master itself, however long the requests take.
                    let ping = self.next_req;
                    self.next_req += 1;
                    conn.send_frame(&Frame::new(ping, Body::Ping), deadline)?;
                    pinged = true;
                    probe_at = Instant::now() + probe;
                    continue;
                }
                // The rest of the stream lies behind a frame that is not read: close it.
                Err(e @ Error::ReplyTooLarge { .. }) => {
                    self.conn = None;
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            // Any frame says the master is alive.
            pinged = false;
            probe_at = Instant::now() + probe;
            let Some(n) = frame.req_id.checked_sub(first_req) else {
                continue; // an answer to an earlier, abandoned call
            };
            let Some(&i) = todo.get(n as usize) else {
                continue; // a PONG
            };
            if answers[i].is_some() {
                continue;
            }
            missing -= 1;
            if let Body::Error {
                code: ErrorCode::NotPrimary,
                text,
            } = frame.body
            {
                if says_taken(&text) {
                    taken.push(i);
                }
                not_primary = Some(text);
                continue;
            }
            answers[i] = Some(Ok(frame.body));
        }
        match not_primary {
            Some(text) => {
                self.conn = None;
                Ok(Round::Refused { text, taken })
            }
            None => Ok(Round::Answered),
        }
    }

    /// Whether `addr` is to be tried only when every other master is avoided too.
    fn avoided(&self, addr: SocketAddr, now: Instant) -> bool {
        self.avoid
            .iter()
            .any(|&(a, until)| a == addr && now < until)
    }

    /// The master in use went silent or its connection broke: try the others first for a
    /// while.
    fn avoid_current(&mut self) {
        self.avoid(self.master(), AVOID_FOR);
        self.move_on();
    }

    /// Try `addr` only when every other master is avoided too, for `how_long` from now (and
    /// forget avoidances that have run out).
    fn avoid(&mut self, addr: SocketAddr, how_long: Duration) {
        let now = Instant::now();
        self.avoid.retain(|&(a, until)| a != addr && now < until);
        self.avoid.push((addr, now + how_long));
    }

    /// Use the master at `addr` next (a NOT_PRIMARY named it), adding it to the list if it
    /// was not given.
    fn go_to(&mut self, addr: SocketAddr) {
        self.conn = None;
        self.current = match self.masters.iter().position(|&a| a == addr) {
            Some(i) => i,
            None => {
                self.masters.push(addr);
                self.masters.len() - 1
            }
        };
    }

    fn move_on(&mut self) {
        self.conn = None;
        self.current = (self.current + 1) % self.masters.len();
    }

    /// Make sure a registered connection exists, trying each address in turn with backoff.
    fn ensure_connected(&mut self, deadline: Instant) -> Result<(), Error> {
        if self.conn.is_some() {
            return Ok(());
        }
        let mut backoff = Duration::from_millis(10);
        let mut failures = Vec::new();
        // The masters that refused our secret (or whose proof we refused), each once: only
        // when every one of them did is it the answer.
        let mut auth_failures: Vec<SocketAddr> = Vec::new();
        // Addresses that refused the connection, in a row.
        let mut refused = 0;
        let mut skipped = 0;
        loop {
            let addr = self.master();
            let now = Instant::now();
            if skipped < self.masters.len() && self.avoided(addr, now) {
                skipped += 1;
                self.current = (self.current + 1) % self.masters.len();
                continue;
            }
            skipped = 0;
            self.last = self.current;
            let result = self.hello(addr, deadline);
            match &result {
                Ok(()) => {}
                Err(Error::Timeout { waited_ms }) => {
                    info!("{addr}: no answer to HELLO within {waited_ms} ms")
                }
                Err(e) => info!("{addr}: {e}"),
            }
            refused = match &result {
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    refused + 1
                }
                _ => 0,
            };
            match result {
                Ok(()) => return Ok(()),
                Err(Error::Io(e)) if refused > 0 => {
                    // Not named again by a standby that has not heard it died (a NOT_PRIMARY
                    // naming it is passed over while it is avoided): the client would go round
                    // the two and never reach a third master elected meanwhile.
                    self.avoid(addr, AVOID_REFUSED_FOR);
                    let line = format!("{addr}: {e} (nothing listens there)");
                    if !failures.contains(&line) {
                        failures.push(line);
                    }
                    if self.refused_is_final && refused >= self.masters.len() {
                        return Err(Error::Unreachable(failures.join("; ")));
                    }
                }
                Err(Error::Timeout { .. }) => {
                    self.avoid(addr, AVOID_FOR);
                    let line = format!("{addr}: no answer to HELLO");
                    if !failures.contains(&line) {
                        failures.push(line);
                    }
                }
                // Asking again will not change a secret: give up once every address said no.
                // The error names the master that said it.
                Err(Error::Untrusted(why)) => {
                    if !auth_failures.contains(&addr) {
                        auth_failures.push(addr);
                    }
                    if auth_failures.len() >= self.masters.len() {
                        return Err(Error::Untrusted(format!("{addr}: {why}")));
                    }
                }
                Err(Error::Server {
                    code: code @ ErrorCode::Unauthorized,
                    text,
                }) => {
                    if !auth_failures.contains(&addr) {
                        auth_failures.push(addr);
                    }
                    if auth_failures.len() >= self.masters.len() {
                        // Every master said it: name them all, not only the last.
                        let masters = match auth_failures.len() {
                            1 => "master",
                            _ => "masters",
                        };
                        let named: Vec<String> =
                            auth_failures.iter().map(|a| a.to_string()).collect();
                        let text = format!("{text} ({masters} {})", named.join(", "));
                        return Err(Error::Server { code, text });
                    }
                    // Said in the end if another master cannot be reached either.
                    let line = format!("{addr}: {}: {text}", code.name());
                    if !failures.contains(&line) {
                        failures.push(line);
                    }
                }
                Err(e) => {
                    let line = format!("{addr}: {e}");
                    if !failures.contains(&line) {
                        failures.push(line);
                    }
                }
            }
            self.current = (self.current + 1) % self.masters.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if failures.is_empty() {
                    failures.push("no answer to HELLO before the deadline".into());
                }
                return Err(Error::Unreachable(failures.join("; ")));
            }
            // After a full round of addresses, wait a little before the next round.
            if self.current == 0 {
                std::thread::sleep(backoff.min(left));
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Connect to `addr` and complete the handshake; the connection is kept only if it does.
    fn hello(&mut self, addr: SocketAddr, deadline: Instant) -> Result<(), Error> {
        // A frozen master's kernel still accepts the connection: its silence is the answer.
        let most = (self.probe * 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let wait = remaining(deadline)?.min(most);
        debug!("connecting to {addr}");
        let mut conn = MasterConn::connect(addr, wait, self.max_frame)?;
        let req = self.next_req;
        self.next_req += 1;
        let until = (Instant::now() + wait).min(deadline);
        // A timeout here is the HELLO's own wait, not the call's.
        conn.handshake(self.secret.as_ref(), req, until, wait)?;
        debug!("{addr} welcomed this client");
        self.conn = Some(conn);
        Ok(())
    }
}

/// How one round of [`Client::exchange`] ended (transport failures are `Err`).
enum Round {
    /// Every request has its answer.
    Answered,
    /// Some were refused with NOT_PRIMARY: the text of the last refusal, and the requests
    /// whose refusal said the master had taken them (`dsm_wire::says_taken`).
    Refused { text: String, taken: Vec<usize> },
    /// The master had closed the connection before anything was written.
    ClosedBeforeSend,
    /// The master answered neither the requests nor a PING for two probe intervals.
    Silent,
}

/// What no master can take, refused before sending: an empty key, and a key or value longer
/// than a frame's `u32` lengths can say (which the encoder would refuse with a panic).
/// Whether a request changes the store (so it is never sent twice blindly).
fn changes(body: &Body) -> bool {
    matches!(
        body,
        Body::Write { .. } | Body::Set { .. } | Body::Delete { .. } | Body::Incr { .. }
    )
}

/// The key of a request on one key.
fn key_of(body: &Body) -> Option<&[u8]> {
    match body {
        Body::Write { key, .. }
        | Body::Read { key }
        | Body::VRead { key }
        | Body::Set { key, .. }
        | Body::Delete { key, .. }
        | Body::Incr { key, .. } => Some(key),
        _ => None,
    }
}

fn check_key(body: &Body) -> Result<(), Error> {
    let too_long = |what: &str, n: usize| {
        Error::Invalid(format!(
            "a {what} of {n} bytes is over the 4 GiB a frame can carry"
        ))
    };
    match body {
        _ if key_of(body).is_some_and(<[u8]>::is_empty) => {
            Err(Error::Invalid("the key is empty".into()))
        }
        _ if key_of(body).is_some_and(|k| k.len() > MAX_LEN) => {
            Err(too_long("key", key_of(body).map_or(0, <[u8]>::len)))
        }
        Body::Write { key, value } | Body::Set { key, value, .. }
            if key.len() + value.len() + 64 > MAX_LEN =>
        {
            Err(too_long("value", value.len()))
        }
        _ => Ok(()),
    }
}

/// The most bytes a frame can hold (its length is a `u32`).
const MAX_LEN: usize = u32::MAX as usize;

fn unexpected(body: &Body) -> Error {
    Error::Protocol(format!("unexpected answer {:?}", body.opcode()))
}

/// A timeout says how long the call waited in all (a deadline found passed inside a step
/// knows only that nothing is left).
fn waited(e: Error, started: Instant) -> Error {
    match e {
        Error::Timeout { .. } => Error::Timeout {
            waited_ms: started.elapsed().as_millis() as u64,
        },
        e => e,
    }
}

/// The error of a call that ends with `e`: if masters refused it with NOT_PRIMARY before and
/// the deadline has come (`e` is the timeout of a reconnect or of a resend after a refusal),
/// that refusal, which says more than a bare timeout.
fn refused_by_then(
    e: Error,
    refusal: Option<String>,
    started: Instant,
    deadline: Instant,
) -> Error {
    match refusal {
        Some(text) if matches!(e, Error::Timeout { .. }) || Instant::now() >= deadline => {
            Error::Server {
                code: ErrorCode::NotPrimary,
                text: late(text, started),
            }
        }
        _ => e,
    }
}

/// A NOT_PRIMARY that is the answer only because the deadline came first: the master that
/// said it may name a primary that is gone, so say that no primary answered in time.
fn late(text: String, started: Instant) -> String {
    format!(
        "{text} (no primary answered within {} ms: a failover may be under way; retry, or \
         raise --timeout-ms)",
        started.elapsed().as_millis()
    )
}

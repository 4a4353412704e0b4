//! The bench event loop: N framed connections on one mio `Poll`, up to P requests in flight on
//! each, requests queued per connection and flushed once per loop turn (one `write` for many).

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write as _};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use dsm_auth::{Handshake, Secret, Step};
use dsm_net::{Conn, Io};
use dsm_wire::{Body, Decoded, Frame, Role};
use log::warn;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::report::Summary;
use crate::schedule::Schedule;
use crate::tally::{Request, Tally};
use crate::ticker::Ticker;
use crate::{BenchConfig, BenchError};

/// With requests outstanding and no reply for this long, the run is abandoned.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The untimed preload keeps at least this many writes in flight per connection.
const PRELOAD_DEPTH: usize = 32;
/// The open-loop ticker's wake-ups; connection tokens are their index, far below.
const WAKER: Token = Token(usize::MAX);
/// Failed requests described in the log before the rest are only counted.
const LOGGED_FAILURES: u64 = 5;

#[derive(Debug)]
struct Pending {
    req_id: u64,
    request: Request,
    /// Latency runs from here: the send time, or in open loop the scheduled time (nanoseconds
    /// on the driver's clock, see [`Driver::nanos`]).
    since: u64,
    timed: bool,
}

struct BenchConn {
    conn: Conn,
    welcomed: bool,
    hello: Option<Handshake>,
    /// Sequence number of the next request; its id is `seq << 32 | slot in inflight`.
    next_req: u64,
    inflight: Slab<Pending>,
    /// Open loop: requests that are due but wait for a free slot, with their due times.
    backlog: VecDeque<(u64, Instant)>,
    /// Next key this connection preloads (it owns the keys equal to its index modulo N).
    preload_next: usize,
    rng: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hello,
    Preload,
    Timed,
}

struct Driver<'a> {
    cfg: &'a BenchConfig,
    poll: Poll,
    events: Events,
    conns: Vec<BenchConn>,
    phase: Phase,
    tally: Tally,
    /// Timed requests handed to a connection (closed loop) or scheduled (open loop).
    issued: u64,
    /// Sent and unanswered, over all connections.
    outstanding: usize,
    /// Last reply, or when `outstanding` last rose from zero.
    waiting_since: Instant,
    dirty: Vec<usize>,
    ready: Vec<(usize, bool, bool)>,
    /// Send and reply times are kept as nanoseconds since this instant, so a latency is one
    /// integer subtraction (the clock is read as before: once per fill, once per `read`).
    clock_zero: Instant,
}

pub fn run(
    cfg: &BenchConfig,
    masters: &[SocketAddr],
    secret: Option<&Secret>,
) -> Result<Summary, BenchError> {
    let mut d = Driver::connect(cfg, masters)?;
    d.handshake(secret)?;
    if cfg.workload.preloads() {
        d.preload()?;
    }
    d.timed()
}

/// Connect to the first address that accepts, so all N connections reach the same master.
fn connect_first(masters: &[SocketAddr]) -> Result<(StdStream, SocketAddr), BenchError> {
    let mut failures = Vec::new();
    for &addr in masters {
        match StdStream::connect_timeout(&addr, STALL_TIMEOUT) {
            Ok(s) => return Ok((s, addr)),
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    Err(BenchError::Connect(failures.join("; ")))
}

impl<'a> Driver<'a> {
    fn connect(cfg: &'a BenchConfig, masters: &[SocketAddr]) -> Result<Driver<'a>, BenchError> {
        let poll = Poll::new()?;
        let (first, addr) = connect_first(masters)?;
        let max_frame = dsm_wire::max_frame_for(
            dsm_wire::DEFAULT_MAX_KEY,
            cfg.value_size.max(dsm_wire::DEFAULT_MAX_VALUE),
        );
        let run_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        let mut conns = Vec::with_capacity(cfg.clients);
        let mut pending_stream = Some(first);
        for idx in 0..cfg.clients {
            let std = match pending_stream.take() {
                Some(s) => s,
                None => StdStream::connect_timeout(&addr, STALL_TIMEOUT)
                    .map_err(|e| BenchError::Connect(format!("{addr}: {e}")))?,
            };
            std.set_nodelay(true)?;
            std.set_nonblocking(true)?;
            let mut stream = mio::net::TcpStream::from_std(std);
            poll.registry()
                .register(&mut stream, Token(idx), Interest::READABLE)?;
            conns.push(BenchConn {
                conn: Conn::new(stream, max_frame),
                welcomed: false,
                hello: None,
                next_req: 1,
                inflight: Slab::with_capacity(cfg.pipeline.max(PRELOAD_DEPTH)),
                backlog: VecDeque::new(),
                preload_next: idx,
                rng: run_id ^ (idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            });
        }
        Ok(Driver {
            cfg,
            poll,
            events: Events::with_capacity(1024),
            conns,
            phase: Phase::Hello,
            tally: Tally::new(cfg, run_id),
            issued: 0,
            outstanding: 0,
            waiting_since: Instant::now(),
            dirty: Vec::new(),
            ready: Vec::new(),
            clock_zero: Instant::now(),
        })
    }

    fn handshake(&mut self, secret: Option<&Secret>) -> Result<(), BenchError> {
        for idx in 0..self.conns.len() {
            let c = &mut self.conns[idx];
            let (hs, hello) = Handshake::start(secret, c.next_req, Role::Client, 0, String::new())?;
            c.conn.send(&hello);
            c.hello = Some(hs);
            c.next_req += 1;
            self.dirty.push(idx);
        }
        self.note_sent(self.conns.len());
        self.flush_dirty()?;
        while self.conns.iter().any(|c| !c.welcomed) {
            self.turn(None)?;
            self.flush_dirty()?; // AUTH frames, with a secret
        }
        Ok(())
    }

    /// Write every key once, untimed, each from the connection that owns it.
    fn preload(&mut self) -> Result<(), BenchError> {
        self.phase = Phase::Preload;
        let depth = self.cfg.pipeline.max(PRELOAD_DEPTH);
        loop {
            let now = self.nanos(Instant::now());
            for idx in 0..self.conns.len() {
                while self.conns[idx].inflight.len() < depth
                    && self.conns[idx].preload_next < self.cfg.keys
                {
                    let key = self.conns[idx].preload_next;
                    self.conns[idx].preload_next += self.conns.len();
                    let request = self.tally.preload(key);
                    self.send(idx, request, now, false);
                }
            }
            self.flush_dirty()?;
            if self.outstanding == 0 {
                return Ok(());
            }
            self.turn(None)?;
        }
    }

    fn timed(&mut self) -> Result<Summary, BenchError> {
        self.phase = Phase::Timed;
        let start = Instant::now();
        let schedule = self
            .cfg
            .rate
            .map(|rate| Schedule::new(start, rate, self.cfg.requests));
        let _ticker = match schedule {
            Some(s) => Some(Ticker::start(s, Waker::new(self.poll.registry(), WAKER)?)?),
            None => None,
        };
        let mut progress = std::io::stderr()
            .is_terminal()
            .then(|| start + Duration::from_secs(1));
        let mut last_reply = start;
        while self.tally.completed < self.cfg.requests {
            let now = Instant::now();
            match &schedule {
                None => self.fill_closed(now),
                Some(s) => self.fill_open(s, now),
            }
            self.flush_dirty()?;
            // The ticker wakes the loop on time; this timeout (rounded up to whole
            // milliseconds by mio) is only a backstop.
            let mut wait = schedule
                .as_ref()
                .and_then(|s| s.next_due(now))
                .map(|due| due.saturating_duration_since(now));
            if let Some(at) = progress {
                if now >= at {
                    self.print_progress(start, now);
                    progress = Some(at + Duration::from_secs(1));
                }
                let left = progress.map_or(Duration::MAX, |p| p.saturating_duration_since(now));
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            let before = self.tally.completed;
            self.turn(wait)?;
            if self.tally.completed > before {
                last_reply = Instant::now();
            }
        }
        if progress.is_some() {
            eprint!("\r\x1b[K");
        }
        let elapsed = last_reply.saturating_duration_since(start);
        Ok(self.tally.summary(self.cfg, elapsed))
    }

    fn print_progress(&self, start: Instant, now: Instant) {
        let secs = now.saturating_duration_since(start).as_secs_f64().max(1e-9);
        eprint!(
            "\r\x1b[K{}/{} requests, {:.0} ops/s, {} errors",
            self.tally.completed,
            self.cfg.requests,
            self.tally.completed as f64 / secs,
            self.tally.failures()
        );
        let _ = std::io::stderr().flush();
    }

    /// Closed loop: keep every pipeline full until M requests have been sent (with `--burst`,
    /// refill a connection only once it has no request in flight).
    fn fill_closed(&mut self, now: Instant) {
        let now = self.nanos(now);
        for idx in 0..self.conns.len() {
            if self.cfg.burst && !self.conns[idx].inflight.is_empty() {
                continue;
            }
            while self.conns[idx].inflight.len() < self.cfg.pipeline
                && self.issued < self.cfg.requests
            {
                let request = self.tally.plan(idx, self.issued, &mut self.conns[idx].rng);
                self.issued += 1;
                self.send(idx, request, now, true);
            }
        }
    }

    /// Open loop: hand each due request to connection i mod N; it waits there, its clock
    /// running, until a slot is free.
    fn fill_open(&mut self, schedule: &Schedule, now: Instant) {
        let due = schedule.due_by(now);
        let n = self.conns.len() as u64;
        while self.issued < due {
            let i = self.issued;
            self.conns[(i % n) as usize]
                .backlog
                .push_back((i, schedule.due_at(i)));
            self.issued += 1;
        }
        for idx in 0..self.conns.len() {
            while self.conns[idx].inflight.len() < self.cfg.pipeline {
                let Some((i, due_at)) = self.conns[idx].backlog.pop_front() else {
                    break;
                };
                let request = self.tally.plan(idx, i, &mut self.conns[idx].rng);
                let due_at = self.nanos(due_at);
                self.send(idx, request, due_at, true);
            }
        }
    }

    /// `t` as nanoseconds since `clock_zero` (0 before it).
    fn nanos(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.clock_zero);
        // u64 nanoseconds last 584 years.
        d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos())
    }

    /// Queue one request on a connection (written at the next flush); latency runs from
    /// `since` (see [`Driver::nanos`]).
    #[inline]
    fn send(&mut self, idx: usize, request: Request, since: u64, timed: bool) {
        let c = &mut self.conns[idx];
        // The slot in the id finds the request without hashing; the sequence number catches a
        // reply that names a slot since reused.
        let slot = c.inflight.vacant_key();
        let req_id = c.next_req << 32 | slot as u64;
        c.next_req += 1;
        // Encoded straight from the tally's key name table and value cache.
        match self.tally.body_ref(request) {
            Some(body) => c.conn.send_ref(req_id, &body),
            None => c.conn.send(&Frame::new(req_id, Body::Ping)),
        }
        let pending = Pending {
            req_id,
            request,
            since,
            timed,
        };
        let inserted = c.inflight.insert(pending);
        debug_assert_eq!(inserted, slot);
        if c.conn.pending() > 0 && !self.dirty.contains(&idx) {
            self.dirty.push(idx);
        }
        self.note_sent(1);
    }

    fn note_sent(&mut self, n: usize) {
        if self.outstanding == 0 {
            self.waiting_since = Instant::now();
        }
        self.outstanding += n;
    }

    fn flush_dirty(&mut self) -> Result<(), BenchError> {
        // Taken and put back, so the list keeps its allocation from pass to pass.
        let mut dirty = std::mem::take(&mut self.dirty);
        for idx in dirty.drain(..) {
            let c = &mut self.conns[idx];
            if c.conn.flush_and_rearm(self.poll.registry(), Token(idx)) == Io::Closed {
                return Err(self.closed(idx));
            }
        }
        self.dirty = dirty;
        Ok(())
    }

    fn closed(&self, idx: usize) -> BenchError {
        BenchError::Closed {
            conn: idx,
            outstanding: self.conns[idx].inflight.len(),
        }
    }

    /// Wait for events (at most `timeout`, and never past the stall deadline), then read and
    /// handle every frame that arrived.
    fn turn(&mut self, timeout: Option<Duration>) -> Result<(), BenchError> {
        let now = Instant::now();
        let stall_left = if self.outstanding > 0 {
            (self.waiting_since + STALL_TIMEOUT).saturating_duration_since(now)
        } else {
            STALL_TIMEOUT
        };
        let timeout = timeout.map_or(stall_left, |t| t.min(stall_left));
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        self.ready.clear();
        self.ready.extend(self.events.iter().map(|e| {
            (
                e.token().0,
                e.is_readable() || e.is_read_closed() || e.is_error(),
                e.is_writable(),
            )
        }));
        for i in 0..self.ready.len() {
            let (idx, readable, writable) = self.ready[i];
            if Token(idx) == WAKER {
                continue;
            }
            if writable {
                let c = &mut self.conns[idx];
                if c.conn.flush_and_rearm(self.poll.registry(), Token(idx)) == Io::Closed {
                    return Err(self.closed(idx));
                }
            }
            if readable {
                self.read(idx)?;
            }
        }
        if self.outstanding > 0 && self.waiting_since.elapsed() >= STALL_TIMEOUT {
            return Err(BenchError::Stalled {
                waited: STALL_TIMEOUT,
                outstanding: self.outstanding,
            });
        }
        Ok(())
    }

    /// Read until the socket is drained, handling each frame as it is decoded.
    fn read(&mut self, idx: usize) -> Result<(), BenchError> {
        loop {
            match self.conns[idx].conn.read_some() {
                Io::Done(_) => {}
                Io::WouldBlock => return Ok(()),
                Io::Closed => return Err(self.closed(idx)),
            }
            let now = Instant::now();
            let now_nanos = self.nanos(now);
            while self.next_reply(idx, now, now_nanos)? {}
            if self.conns[idx].conn.drained() {
                return Ok(());
            }
        }
    }

    /// Decode and handle the next reply buffered on connection `idx`; `false` when no whole
    /// frame is left. A VALUE stays borrowed from the connection's read buffer until it is
    /// checked, so while it lives this reaches the rest of `self` by field, never by method.
    fn next_reply(&mut self, idx: usize, now: Instant, nanos: u64) -> Result<bool, BenchError> {
        let c = &mut self.conns[idx];
        let reply = match c.conn.next_decoded() {
            Ok(Some(reply)) => reply,
            Ok(None) => return Ok(false),
            Err(e) => return Err(BenchError::Protocol(format!("connection {idx}: {e}"))),
        };
        self.waiting_since = now;
        if self.phase == Phase::Hello && !c.welcomed {
            let frame = reply.into_frame();
            self.on_handshake(idx, frame)?;
            return Ok(true);
        }
        let Some(p) = take_pending(&mut c.inflight, reply.req_id()) else {
            return Err(BenchError::Protocol(format!(
                "connection {idx}: reply {:?} to unknown request {}",
                reply.opcode(),
                reply.req_id()
            )));
        };
        self.outstanding -= 1;
        p.settle(&mut self.tally, &reply, nanos)?;
        Ok(true)
    }

    /// A frame answering this connection's HELLO (or, with a secret, its AUTH).
    fn on_handshake(&mut self, idx: usize, frame: Frame) -> Result<(), BenchError> {
        let c = &mut self.conns[idx];
        let hs = c.hello.as_mut().expect("HELLO sent");
        match hs.on_frame(frame) {
            // With a secret: AUTH answers the CHALLENGE, and WELCOME is still owed.
            Step::Send(auth) => {
                c.conn.send(&auth);
                self.dirty.push(idx);
                Ok(())
            }
            Step::Welcomed { .. } => {
                self.outstanding -= 1;
                c.welcomed = true;
                c.hello = None;
                Ok(())
            }
            Step::Refused { code, text } => {
                Err(BenchError::Refused(format!("{}: {text}", code.name())))
            }
            Step::Distrust { why, .. } => Err(BenchError::Refused(why)),
        }
    }
}

impl Pending {
    /// Count `reply`, the answer to this request, in `tally`: a preload write must get OK, a
    /// timed request has its latency (to `now`, on the driver's clock) recorded and its reply
    /// checked. Failures of timed requests are counted, and the first few logged.
    fn settle(self, tally: &mut Tally, reply: &Decoded<'_>, now: u64) -> Result<(), BenchError> {
        if !self.timed {
            return tally
                .on_preload_reply(self.request, reply)
                .map_err(BenchError::Preload);
        }
        let latency = now.saturating_sub(self.since);
        if let Some(why) = tally.on_reply(self.request, reply, latency) {
            if tally.failures() <= LOGGED_FAILURES {
                warn!("bench: {why}");
            }
        }
        Ok(())
    }
}

/// Remove and return the request `req_id` names, if it is still in flight: the low half of
/// the id is its slot, and the whole id must match (the slot may have been reused).
fn take_pending(inflight: &mut Slab<Pending>, req_id: u64) -> Option<Pending> {
    let slot = (req_id & u64::from(u32::MAX)) as usize;
    match inflight.get(slot) {
        Some(p) if p.req_id == req_id => Some(inflight.remove(slot)),
        _ => None,
    }
}

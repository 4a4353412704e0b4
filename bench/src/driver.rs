//! The bench event loop: N framed connections on one mio `Poll`, up to P requests in flight on
//! each, requests queued per connection and flushed once per loop turn (one `write` for many).

mod conns;
mod phases;
pub mod resp;

use std::io;
use std::net::{SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use dsm_auth::{Secret, Step};
use dsm_net::Io;
use dsm_wire::{Body, Frame};
use mio::{Events, Poll, Token};

use crate::report::Summary;
use crate::tally::{Request, Tally};
use crate::{BenchConfig, BenchError};
use conns::{take_pending, BenchConn, Pending};

/// With requests outstanding and no reply for this long, the run is abandoned.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The untimed preload keeps at least this many writes in flight per connection.
const PRELOAD_DEPTH: usize = 32;
/// Open loop: requests due closer together than this leave in one batch (see
/// [`crate::schedule::Pacer`]): a request is sent up to this much (plus the kernel's timer
/// slack) after its due time while a slot is free, and that delay is in its latency. 100 µs
/// cost the generator a third of a core at any rate on this 2-core VM, 250 µs a fifth, and
/// 1 ms a tenth but put 0.7 ms in every p50 (bench-results/open-loop-2026-12-04.md).
const OPEN_QUANTUM: Duration = Duration::from_micros(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hello,
    Preload,
    Timed,
    ReadBack,
}

struct Driver<'a> {
    cfg: &'a BenchConfig,
    poll: Poll,
    events: Events,
    conns: Vec<BenchConn>,
    phase: Phase,
    tally: Tally,
    /// Closed loop: timed requests handed to a connection (the open loop's [`Pacer`] counts
    /// its own).
    issued: u64,
    /// Sent and unanswered, over all connections.
    outstanding: usize,
    /// Last reply, or when `outstanding` last rose from zero.
    waiting_since: Instant,
    dirty: Vec<usize>,
    ready: Vec<(usize, bool, bool, bool)>,
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
        d.untimed(Phase::Preload)?;
    }
    let elapsed = d.timed()?;
    if cfg.workload.reads_back() {
        d.untimed(Phase::ReadBack)?;
    }
    Ok(d.tally.summary(cfg, elapsed))
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
            let depth = cfg.pipeline.max(PRELOAD_DEPTH);
            let rng = run_id ^ (idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let c = BenchConn::open(std, idx, poll.registry(), max_frame, depth, rng)?;
            conns.push(c);
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
        // A flag, not a search of `dirty`: at 1,024 connections the search cost more than
        // the requests.
        if c.conn.pending() > 0 && !c.queued {
            c.queued = true;
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
            c.queued = false;
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
            let hung_up = dsm_net::conn::hangs_up(e);
            (
                e.token().0,
                e.is_readable() || hung_up,
                e.is_writable(),
                hung_up,
            )
        }));
        for i in 0..self.ready.len() {
            let (idx, readable, writable, hung_up) = self.ready[i];
            if hung_up {
                self.conns[idx].conn.hung_up();
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
                if !c.queued {
                    c.queued = true;
                    self.dirty.push(idx);
                }
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

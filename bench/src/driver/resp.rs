//! `bench --redis ADDR`: the same runs against a Redis server over RESP (PING, SET, GET), so
//! dsm and Redis are measured by one load generator: the same closed-loop refill and open-loop
//! [`Pacer`], the same keys and values, the same read checks and the same
//! latency histogram (the [`Tally`]), from the same instants (send, or the due time in open
//! loop). Only the bytes on the wire differ.
//!
//! RESP answers in order, so a connection's requests in flight are a queue and a reply is the
//! answer to its front. The loop mirrors the dsm one in `driver.rs` and `phases.rs`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::conns::Pending;
use super::{OPEN_QUANTUM, PRELOAD_DEPTH, STALL_TIMEOUT};
use crate::report::Summary;
use crate::resp;
use crate::schedule::{Pacer, Schedule, Wait};
use crate::tally::{Request, Tally};
use crate::{BenchConfig, BenchError};

/// Bytes asked of the kernel per `read`.
const READ_CHUNK: usize = 64 * 1024;

struct RespConn {
    stream: TcpStream,
    /// Received bytes not yet parsed are `rbuf[rpos..rend]`.
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// Encoded commands not yet written are `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    write_interest: bool,
    /// In `dirty` already (a flag, not a search: with 1,024 connections a search per request
    /// cost the loop more than the requests).
    queued: bool,
    /// Sent and unanswered, oldest first: RESP replies come in order.
    inflight: VecDeque<Pending>,
    /// Open loop: due requests waiting for a free slot, with their due times.
    backlog: VecDeque<(u64, Instant)>,
    preload_next: usize,
    rng: u64,
}

impl RespConn {
    /// Make room for one more chunk after `rend`: reuse the consumed front, else grow.
    fn room(&mut self) {
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        } else if self.rpos > 0 && self.rend + READ_CHUNK > self.rbuf.len() {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        if self.rbuf.len() < self.rend + READ_CHUNK {
            self.rbuf.resize(self.rend + READ_CHUNK, 0);
        }
    }

    /// Write what is queued until done or the socket would block; ask for WRITABLE only
    /// while bytes wait. `false`: the peer is gone.
    fn flush(&mut self, registry: &mio::Registry, token: Token) -> bool {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return false,
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            if self.wbuf.capacity() > 4 * READ_CHUNK {
                self.wbuf.shrink_to(READ_CHUNK);
            }
        }
        let want = self.wpos < self.wbuf.len();
        if want != self.write_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if registry
                .reregister(&mut self.stream, token, interest)
                .is_err()
            {
                return false;
            }
            self.write_interest = want;
        }
        true
    }
}

struct RedisDriver<'a> {
    cfg: &'a BenchConfig,
    poll: Poll,
    events: Events,
    conns: Vec<RespConn>,
    tally: Tally,
    issued: u64,
    outstanding: usize,
    waiting_since: Instant,
    dirty: Vec<usize>,
    clock_zero: Instant,
    /// Longest bulk string accepted in a reply.
    max_bulk: usize,
}

/// The run `cfg` describes, against the Redis server at `addr`.
pub fn run(cfg: &BenchConfig, addr: SocketAddr) -> Result<Summary, BenchError> {
    let mut d = RedisDriver::connect(cfg, addr)?;
    if cfg.workload.preloads() {
        d.preload()?;
    }
    d.timed()
}

impl<'a> RedisDriver<'a> {
    fn connect(cfg: &'a BenchConfig, addr: SocketAddr) -> Result<RedisDriver<'a>, BenchError> {
        let poll = Poll::new()?;
        let run_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        let mut conns = Vec::with_capacity(cfg.clients);
        for idx in 0..cfg.clients {
            let std = StdStream::connect_timeout(&addr, STALL_TIMEOUT)
                .map_err(|e| BenchError::Connect(format!("redis {addr}: {e}")))?;
            std.set_nodelay(true)?;
            std.set_nonblocking(true)?;
            let mut stream = TcpStream::from_std(std);
            poll.registry()
                .register(&mut stream, Token(idx), Interest::READABLE)?;
            conns.push(RespConn {
                stream,
                rbuf: Vec::new(),
                rpos: 0,
                rend: 0,
                wbuf: Vec::new(),
                wpos: 0,
                write_interest: false,
                queued: false,
                inflight: VecDeque::with_capacity(cfg.pipeline.max(PRELOAD_DEPTH)),
                backlog: VecDeque::new(),
                preload_next: idx,
                rng: run_id ^ (idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            });
        }
        Ok(RedisDriver {
            cfg,
            poll,
            events: Events::with_capacity(1024),
            conns,
            tally: Tally::new(cfg, run_id),
            issued: 0,
            outstanding: 0,
            waiting_since: Instant::now(),
            dirty: Vec::new(),
            clock_zero: Instant::now(),
            max_bulk: cfg.value_size.max(dsm_wire::DEFAULT_MAX_VALUE),
        })
    }

    fn nanos(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.clock_zero);
        d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos())
    }

    /// Queue one command (written at the next flush); latency runs from `since`.
    fn send(&mut self, idx: usize, request: Request, since: u64, timed: bool) {
        let c = &mut self.conns[idx];
        resp::encode_body(self.tally.body_ref(request).as_ref(), &mut c.wbuf);
        c.inflight.push_back(Pending {
            req_id: 0,
            request,
            since,
            timed,
        });
        if !c.queued {
            c.queued = true;
            self.dirty.push(idx);
        }
        if self.outstanding == 0 {
            self.waiting_since = Instant::now();
        }
        self.outstanding += 1;
    }

    fn flush_dirty(&mut self) -> Result<(), BenchError> {
        let mut dirty = std::mem::take(&mut self.dirty);
        for idx in dirty.drain(..) {
            let c = &mut self.conns[idx];
            c.queued = false;
            if !c.flush(self.poll.registry(), Token(idx)) {
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

    /// Wait for events (at most `timeout`, never past the stall deadline), then write what
    /// waits and read every reply that arrived.
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
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.token().0,
                    e.is_readable() || dsm_net::conn::hangs_up(e),
                    e.is_writable(),
                )
            })
            .collect();
        for (idx, readable, writable) in ready {
            if writable && !self.conns[idx].flush(self.poll.registry(), Token(idx)) {
                return Err(self.closed(idx));
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

    /// Read until the socket is drained, settling each reply as it is parsed.
    fn read(&mut self, idx: usize) -> Result<(), BenchError> {
        loop {
            let c = &mut self.conns[idx];
            c.room();
            let got = loop {
                match c.stream.read(&mut c.rbuf[c.rend..c.rend + READ_CHUNK]) {
                    Ok(0) => return Err(self.closed(idx)),
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(_) => return Err(self.closed(idx)),
                }
            };
            c.rend += got;
            let now = Instant::now();
            let nanos = self.nanos(now);
            self.settle_replies(idx, now, nanos)?;
            let c = &mut self.conns[idx];
            // A 1 MiB reply grew the buffer; give the memory back once it is consumed.
            if c.rbuf.len() > 4 * READ_CHUNK && c.rend - c.rpos < READ_CHUNK {
                c.rbuf.copy_within(c.rpos..c.rend, 0);
                c.rend -= c.rpos;
                c.rpos = 0;
                c.rbuf.truncate(2 * READ_CHUNK);
                c.rbuf.shrink_to(2 * READ_CHUNK);
            }
            if got < READ_CHUNK {
                return Ok(());
            }
        }
    }

    /// Settle every whole reply buffered on connection `idx`, each against the oldest request
    /// in flight there. The reply stays borrowed from the read buffer while it is checked.
    fn settle_replies(&mut self, idx: usize, now: Instant, nanos: u64) -> Result<(), BenchError> {
        let c = &mut self.conns[idx];
        loop {
            let reply = match resp::parse(&c.rbuf[c.rpos..c.rend], self.max_bulk) {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return Err(BenchError::Protocol(format!("connection {idx}: {e}"))),
            };
            let (reply, used) = reply;
            let Some(p) = c.inflight.pop_front() else {
                return Err(BenchError::Protocol(format!(
                    "connection {idx}: a reply with no request in flight: {reply:?}"
                )));
            };
            self.outstanding -= 1;
            self.waiting_since = now;
            p.settle(&mut self.tally, &resp::as_decoded(&reply), nanos)?;
            c.rpos += used;
        }
    }

    /// SET every key once, untimed, each from the connection that owns it (k mod N).
    fn preload(&mut self) -> Result<(), BenchError> {
        let depth = self.cfg.pipeline.max(PRELOAD_DEPTH);
        loop {
            let now = self.nanos(Instant::now());
            for idx in 0..self.conns.len() {
                while self.conns[idx].inflight.len() < depth
                    && self.conns[idx].preload_next < self.cfg.keys
                {
                    let key = self.conns[idx].preload_next;
                    self.conns[idx].preload_next += self.conns.len();
                    let request = self.tally.preload(key, &mut self.conns[idx].rng);
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
        let start = Instant::now();
        let mut pacer = self.cfg.rate.map(|rate| {
            Pacer::new(
                Schedule::new(start, rate, self.cfg.requests),
                OPEN_QUANTUM,
                self.cfg.pipeline,
            )
        });
        let mut last_reply = start;
        while self.tally.completed < self.cfg.requests {
            let now = Instant::now();
            let wait = match &mut pacer {
                None => {
                    self.fill_closed(now);
                    Wait::Poll(None)
                }
                Some(p) => {
                    self.fill_open(p, now);
                    p.wait(now, self.outstanding)
                }
            };
            self.flush_dirty()?;
            let wait = match wait {
                Wait::Sleep(d) => {
                    std::thread::sleep(d);
                    continue;
                }
                Wait::Poll(d) => d,
            };
            let before = self.tally.completed;
            self.turn(wait)?;
            if self.tally.completed > before {
                last_reply = Instant::now();
            }
        }
        let elapsed = last_reply.saturating_duration_since(start);
        Ok(self.tally.summary(self.cfg, elapsed))
    }

    /// As the dsm loop's: keep every pipeline full (with `--burst`, refill only an idle one).
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

    /// As the dsm loop's: request i goes to connection i mod N when due and waits there for a
    /// free slot, its latency counted from the due time.
    fn fill_open(&mut self, pacer: &mut Pacer, now: Instant) {
        let n = self.conns.len();
        for i in pacer.take_due(now) {
            self.conns[pacer.connection(i, n)]
                .backlog
                .push_back((i, pacer.due_at(i)));
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
}

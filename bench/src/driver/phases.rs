//! The phases of a run, in order: every connection's handshake, the untimed preload of the
//! keys, and the timed load, closed loop (pipelines kept full) or open loop (a schedule).

use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use dsm_auth::{Handshake, Secret};
use dsm_wire::Role;

use super::{Driver, Phase, OPEN_QUANTUM, PRELOAD_DEPTH};
use crate::schedule::{Pacer, Schedule, Wait};
use crate::BenchError;

impl Driver<'_> {
    /// HELLO on every connection, then AUTH where a CHALLENGE asks, until all are welcomed.
    pub(super) fn handshake(&mut self, secret: Option<&Secret>) -> Result<(), BenchError> {
        for idx in 0..self.conns.len() {
            let c = &mut self.conns[idx];
            let (hs, hello) =
                Handshake::start(secret, c.next_req, Role::Client, 0, String::new(), 0)?;
            c.conn.send(&hello);
            c.hello = Some(hs);
            c.next_req += 1;
            c.queued = true;
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

    /// Untimed, each key from the connection that owns it: write every key once before the
    /// timed run (`Phase::Preload`), or read every key back after it (`Phase::ReadBack`).
    pub(super) fn untimed(&mut self, phase: Phase) -> Result<(), BenchError> {
        self.phase = phase;
        let depth = self.cfg.pipeline.max(PRELOAD_DEPTH);
        for (idx, c) in self.conns.iter_mut().enumerate() {
            c.preload_next = idx;
        }
        loop {
            let now = self.nanos(Instant::now());
            for idx in 0..self.conns.len() {
                while self.conns[idx].inflight.len() < depth
                    && self.conns[idx].preload_next < self.cfg.keys
                {
                    let key = self.conns[idx].preload_next;
                    self.conns[idx].preload_next += self.conns.len();
                    let request = match phase {
                        Phase::ReadBack => self.tally.verify(key),
                        _ => self.tally.preload(key, &mut self.conns[idx].rng),
                    };
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

    /// The timed run; returns the time from its first send to its last reply.
    pub(super) fn timed(&mut self) -> Result<Duration, BenchError> {
        self.phase = Phase::Timed;
        let start = Instant::now();
        let mut pacer = self.cfg.rate.map(|rate| {
            Pacer::new(
                Schedule::new(start, rate, self.cfg.requests),
                OPEN_QUANTUM,
                self.cfg.pipeline,
            )
        });
        let mut progress = std::io::stderr()
            .is_terminal()
            .then(|| start + Duration::from_secs(1));
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
            let mut wait = match wait {
                Wait::Sleep(d) => {
                    // Nothing in flight, so nothing to read: sleep to the next batch.
                    std::thread::sleep(d);
                    continue;
                }
                Wait::Poll(d) => d,
            };
            if let Some(at) = progress {
                if now >= at {
                    self.print_progress(start, now);
                    progress = Some(at + Duration::from_secs(1));
                }
                let left = progress.map_or(Duration::MAX, |p| p.saturating_duration_since(now));
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            let before = self.tally.completed;
            // Rounded up to whole milliseconds by mio: with requests in flight the loop is
            // woken by their replies, and a request sent late has the delay in its latency.
            self.turn(wait)?;
            if self.tally.completed > before {
                last_reply = Instant::now();
            }
        }
        if progress.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
        Ok(last_reply.saturating_duration_since(start))
    }

    fn print_progress(&self, start: Instant, now: Instant) {
        let secs = now.saturating_duration_since(start).as_secs_f64().max(1e-9);
        let _ = write!(
            std::io::stderr(),
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

    /// Open loop: hand each request due by now (one batch per quantum, see [`Pacer`]) to
    /// connection i mod N; it waits there, its clock running from its due time, until a slot
    /// is free. Freed slots are refilled from that backlog at every turn.
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

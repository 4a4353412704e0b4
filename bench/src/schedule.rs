//! The open-loop schedule: request i is due at start + i/rate, whatever the server is doing,
//! and the [`Pacer`] that hands due requests to the event loop in batches.
//!
//! Latency is measured from the due instant, not from when a pipeline slot freed up, so a stall
//! shows in the percentiles instead of silently pausing the load (no coordinated omission).
//! For the same reason the loop need not wake at every due time: a request sent a little after
//! its due time has that delay in its latency, so it is not hidden. The pacer lets the loop
//! send every request due by now in one batch, at most one batch per quantum, and sleep until
//! the next batch may go (or a reply comes): a few thousand wake-ups a second at any rate,
//! instead of one per request (the ticker thread this replaced woke the loop at every due time
//! and cost the generator 12 times the CPU per request of the closed loop at 100k/s).

use std::ops::Range;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    /// Requests per second, finite and positive.
    rate: f64,
    total: u64,
}

impl Schedule {
    pub fn new(start: Instant, rate: f64, total: u64) -> Schedule {
        assert!(rate.is_finite() && rate > 0.0, "rate must be positive");
        Schedule { start, rate, total }
    }

    /// Nanoseconds from the start to request `i`'s due time (rounded down).
    fn offset_nanos(&self, i: u64) -> u64 {
        // f64 keeps 53 bits: exact to the nanosecond for any run shorter than ~100 days.
        let nanos = i as f64 * 1e9 / self.rate;
        if nanos >= u64::MAX as f64 {
            u64::MAX
        } else {
            nanos as u64
        }
    }

    /// When request `i` is due.
    pub fn due_at(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos(self.offset_nanos(i))
    }

    /// How many requests are due by `now`: every i below the result has `due_at(i) <= now`
    /// (capped at the total).
    pub fn due_by(&self, now: Instant) -> u64 {
        let Some(elapsed) = now.checked_duration_since(self.start) else {
            return 0;
        };
        let elapsed = elapsed.as_nanos().min(u64::MAX as u128) as u64;
        // First guess from the rate, then correct it against `offset_nanos` itself so the two
        // never disagree about a request on the boundary.
        let guess = (elapsed as f64 * self.rate / 1e9) as u64;
        let mut n = guess.saturating_add(1).min(self.total);
        while n < self.total && self.offset_nanos(n) <= elapsed {
            n += 1;
        }
        while n > 0 && self.offset_nanos(n - 1) > elapsed {
            n -= 1;
        }
        n
    }

    /// The due time of the first request not yet due by `now`, if any remain.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let n = self.due_by(now);
        (n < self.total).then(|| self.due_at(n))
    }
}

/// Hands out the requests of a [`Schedule`] that are due, in batches no closer together than a
/// quantum. Sans-I/O: the caller passes the clock and does the sending and the sleeping.
#[derive(Debug, Clone)]
pub struct Pacer {
    schedule: Schedule,
    /// Requests `0..issued` have been handed out.
    issued: u64,
    /// Shortest gap between two batches: requests due closer together than this go in one.
    quantum: Duration,
    /// When the last batch was handed out.
    last: Option<Instant>,
    /// Consecutive requests that go to one connection (see [`Pacer::connection`]).
    run: u64,
}

/// What the open-loop event loop does between two turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait for a reply, at most this long (`None`: no batch is left to send, only replies).
    Poll(Option<Duration>),
    /// Nothing is in flight, so no reply can come: sleep this long (mio's poll timeout is
    /// whole milliseconds, a plain sleep is accurate to the kernel's timer slack).
    Sleep(Duration),
}

impl Pacer {
    /// Pace `schedule` in batches at least `quantum` apart; at most `max_run` consecutive
    /// requests go to one connection (the pipeline depth).
    pub fn new(schedule: Schedule, quantum: Duration, max_run: usize) -> Pacer {
        let per_quantum = (schedule.rate * quantum.as_secs_f64()).round() as u64;
        let run = per_quantum.clamp(1, max_run.max(1) as u64);
        Pacer {
            schedule,
            issued: 0,
            quantum,
            last: None,
            run,
        }
    }

    /// The connection (of `conns`) that request `i` goes to: runs of consecutive requests, about
    /// a quantum's worth, take turns, so a batch is one `write` on one or two connections
    /// rather than a few requests on each of them.
    pub fn connection(&self, i: u64, conns: usize) -> usize {
        ((i / self.run) % conns as u64) as usize
    }

    /// When request `i` is due; its latency runs from here.
    pub fn due_at(&self, i: u64) -> Instant {
        self.schedule.due_at(i)
    }

    /// Requests handed out so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// The requests due by `now` and not yet handed out, as a range of request numbers; empty
    /// while the last batch is less than a quantum old (those wait for the next batch, their
    /// clocks running from their due times).
    pub fn take_due(&mut self, now: Instant) -> Range<u64> {
        if self.last.is_some_and(|last| now < last + self.quantum) {
            return self.issued..self.issued;
        }
        let from = self.issued;
        let due = self.schedule.due_by(now);
        if due > from {
            self.issued = due;
            self.last = Some(now);
        }
        from..self.issued
    }

    /// When the next batch may go: the next request's due time, but not within a quantum of
    /// the last batch; `None` once every request has been handed out.
    pub fn next_batch_at(&self) -> Option<Instant> {
        if self.issued >= self.schedule.total {
            return None;
        }
        let due = self.schedule.due_at(self.issued);
        Some(self.last.map_or(due, |last| due.max(last + self.quantum)))
    }

    /// How the loop waits after a turn at `now` that left `outstanding` requests in flight.
    pub fn wait(&self, now: Instant, outstanding: usize) -> Wait {
        let left = self
            .next_batch_at()
            .map(|at| at.saturating_duration_since(now));
        match left {
            Some(d) if outstanding == 0 => Wait::Sleep(d),
            _ => Wait::Poll(left),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_step_by_one_over_rate() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1000.0, 10);
        assert_eq!(s.due_at(0), t0);
        assert_eq!(s.due_at(1), t0 + Duration::from_millis(1));
        assert_eq!(s.due_at(7), t0 + Duration::from_millis(7));
        let s = Schedule::new(t0, 3.0, 10);
        assert_eq!(s.due_at(1), t0 + Duration::from_nanos(333_333_333));
        assert_eq!(s.due_at(3), t0 + Duration::from_secs(1));
    }

    #[test]
    fn due_by_counts_requests_whose_time_has_come() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1000.0, 10);
        assert_eq!(s.due_by(t0), 1, "request 0 is due at the start");
        assert_eq!(s.due_by(t0 + Duration::from_micros(999)), 1);
        assert_eq!(s.due_by(t0 + Duration::from_millis(1)), 2);
        assert_eq!(s.due_by(t0 + Duration::from_micros(4500)), 5);
        assert_eq!(
            s.due_by(t0 + Duration::from_secs(60)),
            10,
            "capped at the total"
        );
        assert_eq!(
            s.next_due(t0 + Duration::from_micros(4500)),
            Some(s.due_at(5))
        );
        assert_eq!(s.next_due(t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn due_by_agrees_with_due_at_on_every_boundary() {
        let t0 = Instant::now();
        for rate in [1.0, 3.0, 7.5, 999.0, 12_345.678, 1e6, 3e7] {
            let s = Schedule::new(t0, rate, 1_000);
            for i in 0..1_000 {
                let at = s.due_at(i);
                assert_eq!(s.due_by(at), i + 1, "rate {rate} i {i}");
                if at > t0 {
                    assert_eq!(
                        s.due_by(at - Duration::from_nanos(1)),
                        i,
                        "rate {rate} i {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn before_the_start_nothing_is_due() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let s = Schedule::new(t0, 100.0, 10);
        assert_eq!(s.due_by(t0 - Duration::from_millis(1)), 0);
        assert_eq!(s.next_due(t0 - Duration::from_millis(1)), Some(t0));
    }

    #[test]
    fn the_pacer_hands_out_due_requests_in_batches_a_quantum_apart() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        // A request every 10 µs, batches at least 100 µs apart.
        let mut p = Pacer::new(Schedule::new(t0, 100_000.0, 50), us(100), 32);
        assert_eq!(p.next_batch_at(), Some(t0));
        assert_eq!(p.take_due(t0), 0..1, "request 0 is due at the start");
        // The next request is due at 10 µs, but the next batch may only go at 100 µs.
        assert_eq!(p.next_batch_at(), Some(t0 + us(100)));
        assert_eq!(p.take_due(t0 + us(50)), 1..1, "within the quantum: held");
        assert_eq!(p.issued(), 1);
        // Late (at 130 µs): everything due by then goes in one batch.
        assert_eq!(p.take_due(t0 + us(130)), 1..14);
        assert_eq!(p.next_batch_at(), Some(t0 + us(230)));
        assert_eq!(p.take_due(t0 + us(229)), 14..14);
        assert_eq!(p.take_due(t0 + us(230)), 14..24);
        // The last batch, then nothing is left.
        assert_eq!(p.take_due(t0 + Duration::from_secs(1)), 24..50);
        assert_eq!(p.next_batch_at(), None);
        assert_eq!(p.take_due(t0 + Duration::from_secs(2)), 50..50);
    }

    #[test]
    fn sparse_requests_leave_at_their_due_times() {
        // 1 ms apart, a 100 µs quantum: the quantum never delays one.
        let t0 = Instant::now();
        let mut p = Pacer::new(Schedule::new(t0, 1000.0, 5), Duration::from_micros(100), 32);
        for i in 0..5 {
            let at = p.next_batch_at().unwrap();
            assert_eq!(at, p.due_at(i), "request {i}");
            assert_eq!(p.take_due(at - Duration::from_nanos(1)), i..i);
            assert_eq!(p.take_due(at), i..i + 1);
        }
        assert_eq!(p.next_batch_at(), None);
    }

    #[test]
    fn a_quantum_of_requests_goes_to_one_connection() {
        let t0 = Instant::now();
        let q = Duration::from_micros(100);
        // 100k/s: 10 requests a quantum, so runs of 10 take turns on 4 connections.
        let p = Pacer::new(Schedule::new(t0, 100_000.0, 100), q, 32);
        let conns: Vec<usize> = (0..45).map(|i| p.connection(i, 4)).collect();
        assert_eq!(conns[..10], [0; 10]);
        assert_eq!(conns[10..20], [1; 10]);
        assert_eq!(conns[30..40], [3; 10]);
        assert_eq!(conns[40..], [0; 5], "then connection 0 again");
        // A run never outgrows the pipeline: at 1M/s (100 a quantum) with 32 slots, runs of 32.
        let p = Pacer::new(Schedule::new(t0, 1e6, 1000), q, 32);
        assert_eq!((p.connection(31, 4), p.connection(32, 4)), (0, 1));
        assert_eq!(p.connection(128, 4), 0);
        // Sparse requests (under one a quantum) go round-robin, one per connection.
        let p = Pacer::new(Schedule::new(t0, 1000.0, 10), q, 32);
        let conns: Vec<usize> = (0..6).map(|i| p.connection(i, 4)).collect();
        assert_eq!(conns, [0, 1, 2, 3, 0, 1]);
    }

    #[test]
    fn the_loop_sleeps_only_with_nothing_in_flight() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Schedule::new(t0, 1000.0, 2), Duration::from_micros(100), 32);
        assert_eq!(p.take_due(t0), 0..1);
        let now = t0 + Duration::from_micros(300);
        let left = Duration::from_micros(700);
        assert_eq!(p.wait(now, 0), Wait::Sleep(left));
        assert_eq!(p.wait(now, 3), Wait::Poll(Some(left)));
        assert_eq!(p.take_due(t0 + Duration::from_millis(1)), 1..2);
        // Every request handed out: only replies are left to wait for.
        assert_eq!(p.wait(now, 3), Wait::Poll(None));
    }
}

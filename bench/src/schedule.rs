//! The open-loop schedule: request i is due at start + i/rate, whatever the server is doing.
//!
//! Latency is measured from the due instant, not from when a pipeline slot freed up, so a stall
//! shows in the percentiles instead of silently pausing the load (no coordinated omission).

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
}

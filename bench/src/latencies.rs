//! The bench's latency histogram, recorded a run of equal latencies at a time.

use hdrhistogram::Histogram;

use crate::report::new_histogram;

/// The latency histogram, recording a run of equal latencies at once: replies decoded from one
/// `read` share their receive time and requests queued in one fill share their send time, so
/// equal latencies come in runs. `saturating_record_n(v, n)` counts exactly what `n` calls of
/// `saturating_record(v)` do, so the histogram is the same, only built with fewer calls.
pub struct Latencies {
    hist: Histogram<u64>,
    /// The latency of the run not yet in `hist`, and its length.
    last: u64,
    run: u64,
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            hist: new_histogram(),
            last: 0,
            run: 0,
        }
    }

    #[inline]
    pub fn record(&mut self, nanos: u64) {
        if nanos != self.last {
            self.flush();
            self.last = nanos;
        }
        self.run += 1;
    }

    /// Put the pending run into the histogram.
    #[inline(never)]
    fn flush(&mut self) {
        if self.run > 0 {
            self.hist.saturating_record_n(self.last, self.run);
            self.run = 0;
        }
    }

    /// Every latency recorded so far; recording starts again from empty.
    pub fn take(&mut self) -> Histogram<u64> {
        self.flush();
        std::mem::replace(&mut self.hist, new_histogram())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::splitmix;

    #[test]
    fn runs_of_equal_latencies_make_the_same_histogram() {
        let mut l = Latencies::new();
        let mut direct = new_histogram();
        let mut rng = 5;
        let mut values = vec![1, 1, 1, 7, 7, 1, 3_600_000_000_000, u64::MAX, u64::MAX, 2];
        for _ in 0..2000 {
            // Runs of 1 to 4 of one value, small and large.
            let v = 1 + splitmix(&mut rng) % 50_000_000;
            values.extend(std::iter::repeat_n(v, 1 + (v % 4) as usize));
        }
        for &v in &values {
            l.record(v);
            direct.saturating_record(v);
        }
        let h = l.take();
        assert_eq!(h.len(), values.len() as u64);
        assert_eq!(
            (h.min(), h.max(), h.value_at_quantile(0.5)),
            (direct.min(), direct.max(), direct.value_at_quantile(0.5))
        );
        assert!(h == direct);
        // Taken: recording starts again from nothing, the pending run included.
        l.record(9);
        l.record(9);
        assert_eq!(l.take().len(), 2);
        assert_eq!(l.take().len(), 0);
    }
}

//! Metric primitives for `/metrics`: a latency histogram with fixed bucket bounds (recording
//! is a few compares and three adds: no lock, no allocation) and a writer of the Prometheus
//! text exposition format (version 0.0.4). No I/O: the text goes into a `String`.

use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds of the latency buckets, in nanoseconds: 25 µs to 10 s, about three per
/// decade, which covers a loopback request (tens of µs), a disk sync (ms) and a timeout (s).
pub const BOUNDS_NS: [u64; 19] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// Counts per bucket (not cumulative: the writer sums them), the sum and the count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// `buckets[i]` counts samples in `(BOUNDS_NS[i-1], BOUNDS_NS[i]]`; the last one is +Inf.
    buckets: [u64; BOUNDS_NS.len() + 1],
    sum_ns: u64,
    count: u64,
}

impl Histogram {
    #[inline]
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BOUNDS_NS.len());
        self.buckets[i] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns)
    }

    /// What was recorded since `earlier` (a copy of this histogram taken before).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut d = self.clone();
        for (b, e) in d.buckets.iter_mut().zip(earlier.buckets.iter()) {
            *b = b.saturating_sub(*e);
        }
        d.sum_ns = d.sum_ns.saturating_sub(earlier.sum_ns);
        d.count = d.count.saturating_sub(earlier.count);
        d
    }

    /// The `q` quantile (0..=1), interpolated within its bucket as Prometheus's
    /// `histogram_quantile` does; `None` with no samples. Past the last bound: that bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<(f64, u64)> = (BOUNDS_NS.iter().map(|&b| b as f64))
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().copied())
            .collect();
        quantile(&counts, self.count, q).map(|ns| Duration::from_nanos(ns as u64))
    }
}

/// The `q` quantile of a histogram given as `(upper bound, count in that bucket)` pairs,
/// ascending, with `total` samples, interpolated linearly inside the bucket it falls in.
pub fn quantile(buckets: &[(f64, u64)], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let (mut below, mut lower) = (0u64, 0.0);
    for &(upper, n) in buckets {
        if n > 0 && (below + n) as f64 >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let within = (rank - below as f64) / n as f64;
            return Some(lower + (upper - lower) * within);
        }
        below += n;
        if upper.is_finite() {
            lower = upper;
        }
    }
    Some(lower)
}

/// Writes metric families in the text format: `# HELP` and `# TYPE` once per family, then
/// its samples. Label values are escaped; names are the caller's constants.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Start a family: `kind` is `counter`, `gauge` or `histogram`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family; `labels` are `(name, value)` pairs.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram (in seconds) of the current family: cumulative
    /// `_bucket{le=...}` lines ending with `+Inf`, then `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (i, n) in h.buckets.iter().enumerate() {
            cumulative += n;
            let le = match BOUNDS_NS.get(i) {
                Some(&b) => number(b as f64 / 1e9),
                None => "+Inf".to_string(),
            };
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", number(h.sum_ns as f64 / 1e9));
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            let _ = write!(self.out, "{k}=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample value as the format wants it: integers without a fraction, no exponent surprises.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_the_count() {
        let mut h = Histogram::default();
        for us in [10, 30, 30, 700, 20_000_000] {
            h.record(Duration::from_micros(us));
        }
        let mut e = Exposition::default();
        e.family("x_seconds", "histogram", "test");
        e.histogram("x_seconds", &[("op", "read")], &h);
        let text = e.finish();
        assert!(
            text.contains("x_seconds_bucket{op=\"read\",le=\"0.000025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{op=\"read\",le=\"0.00005\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{op=\"read\",le=\"0.001\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{op=\"read\",le=\"10\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{op=\"read\",le=\"+Inf\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_count{op=\"read\"} 5\n"), "{text}");
        assert!(
            text.contains("x_seconds_sum{op=\"read\"} 20.00077\n"),
            "{text}"
        );
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..100 {
            h.record(Duration::from_micros(60)); // (50, 100] µs
        }
        let p50 = h.quantile(0.5).unwrap();
        assert_eq!(p50, Duration::from_micros(75));
        h.record(Duration::from_secs(60)); // +Inf: reported as the last bound
        assert_eq!(h.quantile(1.0).unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn since_subtracts_an_earlier_copy() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(30));
        let before = h.clone();
        h.record(Duration::from_millis(3));
        let d = h.since(&before);
        assert_eq!(d.count(), 1);
        assert_eq!(d.sum(), Duration::from_millis(3));
        assert!(d.quantile(0.5).unwrap() > Duration::from_millis(2));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition::default();
        e.family("y_total", "counter", "test");
        e.sample("y_total", &[("why", "a \"b\"\\\n")], 2.0);
        assert_eq!(
            e.finish().lines().last().unwrap(),
            "y_total{why=\"a \\\"b\\\"\\\\\\n\"} 2"
        );
    }
}

//! What a bench run prints: the summary line, the `--json` object and the `--hist` file in
//! HdrHistogram's classic percentile-distribution text format (values in microseconds).

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies are recorded in nanoseconds and reported in microseconds.
pub const NANOS_PER_US: f64 = 1000.0;
/// Significant digits of the histogram: 3 keeps every value within 0.1% (the bound is 1%).
pub const SIGFIG: u8 = 3;
/// Percentile rows per halving of the distance to 100%, as HdrHistogram's tools print.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// A latency histogram in nanoseconds, from 1 ns to one hour.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, SIGFIG).expect("static histogram bounds")
}

/// The outcome of one timed run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub op: &'static str,
    pub clients: usize,
    pub pipeline: usize,
    pub requests: u64,
    /// ERROR replies (and replies of the wrong kind).
    pub error_replies: u64,
    pub mismatches: u64,
    pub not_found: u64,
    /// Timed answers that were exactly what was predicted.
    pub checked: u64,
    /// Keys read back after the timed run and found as predicted.
    pub verified: u64,
    /// Keys read back (incr, delete, cas, mix-all); `None`: no read-back.
    pub read_back: Option<u64>,
    /// From the first timed send to the last reply.
    pub elapsed: Duration,
    /// Latency per request, nanoseconds.
    pub hist: Histogram<u64>,
    /// `--slow-log`: the slow requests, (answered at, latency) in ns on the driver's clock.
    pub slow: Vec<(u64, u64)>,
}

impl Summary {
    /// Every failure the run saw: error replies, mismatched reads and NOT_FOUNDs.
    pub fn errors(&self) -> u64 {
        self.error_replies + self.mismatches + self.not_found
    }

    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.hist.len() as f64 / secs
        } else {
            0.0
        }
    }

    /// The latency at `q` (0..=1) in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / NANOS_PER_US
    }

    pub fn max_us(&self) -> f64 {
        self.hist.max() as f64 / NANOS_PER_US
    }

    /// The one-line JSON object of `--json`.
    pub fn json(&self) -> String {
        format!(
            "{{\"op\":\"{}\",\"clients\":{},\"pipeline\":{},\"requests\":{},\"errors\":{},\
             \"ops_per_sec\":{:.1},\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\
             \"p999_us\":{:.1},\"max_us\":{:.1},\"checked\":{},\"verified\":{}}}",
            self.op,
            self.clients,
            self.pipeline,
            self.requests,
            self.errors(),
            self.ops_per_sec(),
            self.quantile_us(0.50),
            self.quantile_us(0.90),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            self.max_us(),
            self.checked,
            self.verified,
        )
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} x {}: {} connection(s), pipeline {}\n\
             {} requests in {:.3} s: {:.0} ops/s, {} errors",
            self.op,
            self.requests,
            self.clients,
            self.pipeline,
            self.hist.len(),
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.errors(),
        );
        if self.errors() > 0 {
            let _ = write!(
                s,
                " ({} error replies, {} mismatches, {} NOT_FOUND)",
                self.error_replies, self.mismatches, self.not_found
            );
        }
        let _ = write!(s, "\nchecked: {} answers as predicted", self.checked);
        if let Some(keys) = self.read_back {
            let _ = write!(
                s,
                "; {} of {keys} keys read back as predicted",
                self.verified
            );
        }
        let _ = write!(
            s,
            "\nlatency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}\n",
            self.quantile_us(0.50),
            self.quantile_us(0.90),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            self.max_us(),
        );
        s
    }
}

/// Sub-buckets per bucket for `sigfig` digits, as HdrHistogram sizes them: the power of two
/// covering 2 * 10^sigfig (2048 for 3 digits).
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// The histogram as HdrHistogram's `outputPercentileDistribution` prints it, with values
/// divided by `scale` (1000 turns recorded nanoseconds into microseconds) and printed with as
/// many decimals as the histogram has significant digits.
pub fn percentile_distribution(hist: &Histogram<u64>, scale: f64, ticks: u32) -> String {
    let d = usize::from(hist.sigfig());
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in hist.iter_quantiles(ticks) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / scale;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.d$} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:12.d$} {q:2.12} {total:10}");
        }
    }
    let (mean, stdev) = if hist.is_empty() {
        (0.0, 0.0)
    } else {
        (hist.mean() / scale, hist.stdev() / scale)
    };
    let max = hist.max() as f64 / scale;
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.d$}, StdDeviation   = {stdev:12.d$}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.d$}, Total count    = {:12}]",
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        hist.buckets(),
        sub_bucket_count(hist.sigfig())
    );
    out
}

/// `--slow-log` keeps at most this many requests (16 MiB of notes).
pub const SLOW_MAX: usize = 1 << 20;

/// The `--slow-log` file: a comment line, then one line per request slower than `over_us`, in
/// the order answered: when (µs since the generator's clock started) and the latency (µs).
pub fn slow_log(slow: &[(u64, u64)], over_us: u64) -> String {
    let mut out = format!(
        "# requests slower than {over_us} us: answered at (us since the generator started), \
         latency (us); {} of them{}\n",
        slow.len(),
        if slow.len() >= SLOW_MAX {
            " (the most kept)"
        } else {
            ""
        }
    );
    for &(at, latency) in slow {
        out.push_str(&format!("{} {}\n", at / 1000, latency / 1000));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist_of(values_us: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for &v in values_us {
            h.record(v * 1000).unwrap();
        }
        h
    }

    #[test]
    fn distribution_has_header_rows_and_footer() {
        let h = hist_of(&(1..=100).collect::<Vec<_>>());
        let text = percentile_distribution(&h, NANOS_PER_US, TICKS_PER_HALF_DISTANCE);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // First row: the minimum at percentile 0; 1 µs is recorded exactly.
        assert_eq!(
            lines[2],
            "       1.000 0.000000000000          1           1.00"
        );
        // The median row.
        assert!(
            lines.contains(&"      50.015 0.500000000000         50           2.00"),
            "{text}"
        );
        // The last row: 100%, no 1/(1-p) column; values are the top of their bucket.
        let last_row = lines[lines.len() - 4];
        assert_eq!(last_row, "     100.031 1.000000000000        100");
        let footer = &lines[lines.len() - 3..];
        assert!(
            footer[0].starts_with("#[Mean    =       50.5"),
            "{}",
            footer[0]
        );
        assert!(
            footer[0].contains(", StdDeviation   =       28.8"),
            "{}",
            footer[0]
        );
        assert_eq!(
            footer[1],
            "#[Max     =      100.031, Total count    =          100]"
        );
        assert_eq!(
            footer[2],
            format!(
                "#[Buckets = {:12}, SubBuckets     =         2048]",
                h.buckets()
            )
        );
    }

    #[test]
    fn percentile_column_climbs_by_halving_distances() {
        let h = hist_of(&(1..=10_000).collect::<Vec<_>>());
        let text = percentile_distribution(&h, NANOS_PER_US, 5);
        let pcts: Vec<f64> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
            .collect();
        // 5 ticks per half distance: 0, .1, .2, .3, .4, .5, then .55, .6, ..., .75, then .775 ...
        assert_eq!(&pcts[..7], &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55]);
        assert!(pcts.windows(2).all(|w| w[0] < w[1]), "{pcts:?}");
        assert_eq!(*pcts.last().unwrap(), 1.0);
    }

    #[test]
    fn empty_histogram_prints_header_and_footer_only() {
        let text = percentile_distribution(&new_histogram(), NANOS_PER_US, 5);
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("#[Max     =        0.000, Total count    =            0]"));
    }

    #[test]
    fn json_has_exactly_the_agreed_fields() {
        let s = Summary {
            op: "write",
            clients: 4,
            pipeline: 32,
            requests: 3,
            error_replies: 1,
            mismatches: 1,
            not_found: 1,
            checked: 0,
            verified: 0,
            read_back: None,
            elapsed: Duration::from_millis(2),
            hist: hist_of(&[10, 20, 30]),
            slow: Vec::new(),
        };
        assert_eq!(
            s.json(),
            "{\"op\":\"write\",\"clients\":4,\"pipeline\":32,\"requests\":3,\"errors\":3,\
             \"ops_per_sec\":1500.0,\"p50_us\":20.0,\"p90_us\":30.0,\"p99_us\":30.0,\
             \"p999_us\":30.0,\"max_us\":30.0,\"checked\":0,\"verified\":0}"
        );
        assert!(s
            .text()
            .contains("1 error replies, 1 mismatches, 1 NOT_FOUND"));
    }

    #[test]
    fn three_significant_digits_keep_error_under_one_percent() {
        let h = hist_of(&[123_456]);
        let got = h.value_at_quantile(0.5) as f64 / 1000.0;
        assert!((got - 123_456.0).abs() / 123_456.0 < 0.001, "{got}");
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
    }
}

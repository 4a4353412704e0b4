//! A latency distribution as the percentile tables give it: rising latencies, each with how
//! many requests took at most that long; read from the two formats the bench produces, and
//! pooled over the runs of one series.

use std::fmt;

/// Requests that took at most `value_us`, for rising values; `total` requests in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Dist {
    /// (latency in µs, requests at or below it), both strictly rising.
    pub points: Vec<(f64, u64)>,
    pub total: u64,
}

/// Why a table could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

impl Dist {
    /// From (value, cumulative count) rows in file order: values must not fall, counts must
    /// not fall; rows that add no request are dropped.
    fn from_rows(rows: Vec<(f64, u64)>, what: &str) -> Result<Dist, ParseError> {
        let mut points: Vec<(f64, u64)> = Vec::with_capacity(rows.len());
        for (v, c) in rows {
            if !v.is_finite() || v < 0.0 {
                return err(format!("{what}: latency {v} is not a latency"));
            }
            match points.last_mut() {
                Some(&mut (pv, pc)) if v < pv || c < pc => {
                    return err(format!(
                        "{what}: rows out of order ({v} µs with {c} after {pv} µs with {pc})"
                    ))
                }
                Some(last) if c == last.1 => continue,
                Some(last) if v == last.0 => last.1 = c,
                _ => points.push((v, c)),
            }
        }
        let total = match points.last() {
            Some(&(_, c)) if c > 0 => c,
            _ => return err(format!("{what}: no requests in the table")),
        };
        Ok(Dist { points, total })
    }

    /// A `dsm-client bench --hist` file: HdrHistogram's percentile distribution text, values
    /// in µs. Columns: value, percentile, total count, 1/(1-percentile); `#` lines are the
    /// footer.
    pub fn from_hdr(text: &str) -> Result<Dist, ParseError> {
        let mut rows = Vec::new();
        let mut header = false;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("Value") {
                header = true;
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let parsed = match f.as_slice() {
                [v, p, c] | [v, p, c, _]
                    if p.parse::<f64>().is_ok_and(|p| (0.0..=1.0).contains(&p)) =>
                {
                    v.parse::<f64>().ok().zip(c.parse::<u64>().ok())
                }
                _ => None,
            };
            match parsed {
                Some(row) => rows.push(row),
                None => return err(format!("HdrHistogram text, line {}: {line:?}", n + 1)),
            }
        }
        if !header {
            return err("not HdrHistogram percentile text (no \"Value Percentile\" header)");
        }
        Dist::from_rows(rows, "HdrHistogram text")
    }

    /// One test (`SET`, `GET`, `PING_MBULK`, ...) of redis-benchmark's text output (redis 7:
    /// its "Latency by percentile distribution" lines, `P% <= V milliseconds (cumulative count
    /// C)`).
    pub fn from_redis_benchmark(text: &str, test: &str) -> Result<Dist, ParseError> {
        let banner = format!("====== {test} ======");
        let Some(at) = text.find(&banner) else {
            return err(format!("redis-benchmark output has no {test} test"));
        };
        let section = &text[at + banner.len()..];
        let Some(start) = section.find("Latency by percentile distribution:") else {
            return err(format!(
                "redis-benchmark output for {test} has no percentile distribution (redis 7 or later)"
            ));
        };
        let mut rows = Vec::new();
        for line in section[start..].lines().skip(1) {
            let line = line.trim();
            if line.is_empty() {
                break;
            }
            let row = (|| {
                let (_, rest) = line.split_once("<= ")?;
                let (ms, rest) = rest.split_once(" milliseconds (cumulative count ")?;
                let count = rest.strip_suffix(')')?;
                Some((ms.parse::<f64>().ok()? * 1000.0, count.parse::<u64>().ok()?))
            })();
            match row {
                Some(r) => rows.push(r),
                None => return err(format!("redis-benchmark {test}: line {line:?}")),
            }
        }
        Dist::from_rows(rows, &format!("redis-benchmark {test}"))
    }

    /// Requests at or below `v` µs.
    pub fn count_at(&self, v: f64) -> u64 {
        match self.points.partition_point(|&(pv, _)| pv <= v) {
            0 => 0,
            i => self.points[i - 1].1,
        }
    }

    /// The runs of one series as one distribution: at each latency any run has a row for, the
    /// requests at or below it in all runs together. Exact at those latencies (the union of
    /// the tables' resolutions), as merging the histograms would be.
    pub fn pool(runs: &[Dist]) -> Dist {
        let mut values: Vec<f64> = runs
            .iter()
            .flat_map(|d| d.points.iter().map(|&(v, _)| v))
            .collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let mut points: Vec<(f64, u64)> = Vec::with_capacity(values.len());
        for v in values {
            let c: u64 = runs.iter().map(|d| d.count_at(v)).sum();
            if points.last().is_none_or(|&(_, pc)| c > pc) {
                points.push((v, c));
            }
        }
        Dist {
            points,
            total: runs.iter().map(|d| d.total).sum(),
        }
    }

    /// The latency at percentile `q` (0..=1): the least latency at or below which at least
    /// that share of the requests took.
    pub fn quantile(&self, q: f64) -> f64 {
        let want = (q * self.total as f64).ceil().max(1.0) as u64;
        let i = self.points.partition_point(|&(_, c)| c < want);
        self.points[i.min(self.points.len() - 1)].0
    }

    pub fn min(&self) -> f64 {
        self.points[0].0
    }

    pub fn max(&self) -> f64 {
        self.points[self.points.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDR: &str = "       Value     Percentile TotalCount 1/(1-Percentile)

      10.000 0.000000000000          1           1.00
      20.000 0.500000000000          5           2.00
      20.000 0.600000000000          5           2.50
      40.000 0.900000000000          9          10.00
     100.000 1.000000000000         10
#[Mean    =       30.000, StdDeviation   =       10.000]
#[Max     =      100.000, Total count    =           10]
#[Buckets =           32, SubBuckets     =         2048]
";

    #[test]
    fn hdr_rows_become_points_and_repeats_drop() {
        let d = Dist::from_hdr(HDR).unwrap();
        assert_eq!(d.points, vec![(10.0, 1), (20.0, 5), (40.0, 9), (100.0, 10)]);
        assert_eq!(d.total, 10);
        assert_eq!(d.quantile(0.5), 20.0);
        assert_eq!(d.quantile(0.51), 40.0);
        assert_eq!(d.quantile(1.0), 100.0);
        assert_eq!(d.quantile(0.0), 10.0);
    }

    #[test]
    fn hdr_refuses_garbage_and_empty_tables() {
        assert!(Dist::from_hdr("hello").is_err());
        assert!(Dist::from_hdr("Value Percentile TotalCount\n\n1.0 abc 3\n").is_err());
        assert!(Dist::from_hdr("Value Percentile TotalCount\n").is_err());
        // Counts that fall are not a cumulative table.
        let bad = "Value Percentile TotalCount\n1.0 0.5 5 2.0\n2.0 0.4 4 1.6\n";
        assert!(Dist::from_hdr(bad).unwrap_err().0.contains("out of order"));
    }

    const REDIS: &str =
        " SET: rps=0.0 (overall: -nan) avg_msec=-nan (overall: -nan)\r====== SET ======
  2000 requests completed in 0.21 seconds

Latency by percentile distribution:
0.000% <= 0.023 milliseconds (cumulative count 1408)
75.000% <= 0.031 milliseconds (cumulative count 1805)
99.951% <= 10.727 milliseconds (cumulative count 2000)
100.000% <= 10.727 milliseconds (cumulative count 2000)

Cumulative distribution of latencies:
96.350% <= 0.103 milliseconds (cumulative count 1927)

====== GET ======
Latency by percentile distribution:
0.000% <= 0.015 milliseconds (cumulative count 7)
100.000% <= 0.040 milliseconds (cumulative count 10)

";

    #[test]
    fn redis_sections_are_read_by_test_name_in_microseconds() {
        let set = Dist::from_redis_benchmark(REDIS, "SET").unwrap();
        assert_eq!(
            set.points,
            vec![(23.0, 1408), (31.0, 1805), (10727.0, 2000)]
        );
        assert_eq!(set.total, 2000);
        let get = Dist::from_redis_benchmark(REDIS, "GET").unwrap();
        assert_eq!(get.points, vec![(15.0, 7), (40.0, 10)]);
        assert!(Dist::from_redis_benchmark(REDIS, "LPUSH").is_err());
    }

    #[test]
    fn pooling_adds_the_counts_at_every_latency() {
        let a = Dist {
            points: vec![(10.0, 2), (30.0, 4)],
            total: 4,
        };
        let b = Dist {
            points: vec![(20.0, 1), (30.0, 2), (50.0, 6)],
            total: 6,
        };
        let p = Dist::pool(&[a, b]);
        assert_eq!(p.points, vec![(10.0, 2), (20.0, 3), (30.0, 6), (50.0, 10)]);
        assert_eq!(p.total, 10);
        assert_eq!(p.count_at(25.0), 3);
        assert_eq!(p.count_at(5.0), 0);
    }
}

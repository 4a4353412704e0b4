//! For the `--metrics` tests: where a node serves HTTP, a blocking GET with deadlines, and a
//! parser for the Prometheus text format that checks what a test relies on (every sample a
//! `name{labels} value` line, histograms cumulative and ending in `+Inf` = `_count`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::{Cluster, MasterId};

impl Cluster {
    /// Where master `id` serves `/metrics` (it was started with `--metrics`).
    pub fn master_metrics(&self, id: MasterId) -> SocketAddr {
        self.master_proc(id)
            .metrics
            .expect("the master was started with --metrics")
    }

    /// Where slave `i` serves `/metrics` (it was started with `--metrics`).
    pub fn slave_metrics(&self, i: usize) -> SocketAddr {
        self.slave(i)
            .metrics
            .expect("the slave was started with --metrics")
    }
}

/// A response: status code, headers (lower-case names) and body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Send `raw` (a whole request) to `addr` and read until the server closes, at most 5 s.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(raw)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse_response(&buf, raw.starts_with(b"HEAD "))
}

/// `GET path` with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, req.as_bytes())
}

/// `head_only`: the answer to a HEAD, whose Content-Length is that of the body it leaves out.
fn parse_response(buf: &[u8], head_only: bool) -> std::io::Result<Response> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        if !head_only && len != body.len() {
            return Err(bad(&format!("content-length {len}, body {}", body.len())));
        }
    }
    Ok(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

/// Samples by `name{labels}` exactly as written (labels in the server's order).
#[derive(Debug, Default)]
pub struct Samples(pub BTreeMap<String, f64>);

impl Samples {
    /// Parse the exposition; `Err` names the first line that is not a comment or a sample,
    /// or a histogram that is not cumulative.
    pub fn parse(text: &str) -> Result<Samples, String> {
        let mut map = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .ok_or_else(|| format!("not a sample: {line:?}"))?;
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().map_err(|_| format!("bad value in {line:?}"))?,
            };
            map.insert(series.to_string(), value);
        }
        let samples = Samples(map);
        samples.check_histograms()?;
        Ok(samples)
    }

    /// The value of `series` (`name` or `name{a="b",...}`), if present.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.get(series).copied()
    }

    pub fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no sample {series} in /metrics"))
    }

    /// Every `_bucket` series is non-decreasing in `le` and its `+Inf` equals `_count`.
    fn check_histograms(&self) -> Result<(), String> {
        let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (series, &v) in &self.0 {
            let Some((name, labels)) = series.split_once("_bucket{") else {
                continue;
            };
            let labels = labels.trim_end_matches('}');
            let (rest, le) = match labels.rsplit_once("le=\"") {
                Some((rest, le)) => (rest.trim_end_matches(','), le.trim_end_matches('"')),
                None => return Err(format!("bucket without le: {series}")),
            };
            let le: f64 = match le {
                "+Inf" => f64::INFINITY,
                le => le.parse().map_err(|_| format!("bad le in {series}"))?,
            };
            let key = match rest.is_empty() {
                true => name.to_string(),
                false => format!("{name}{{{rest}}}"),
            };
            groups.entry(key).or_default().push((le, v));
        }
        for (key, mut buckets) in groups {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{key}: buckets not cumulative: {buckets:?}"));
            }
            let last = buckets.last().expect("one bucket at least");
            if last.0 != f64::INFINITY {
                return Err(format!("{key}: no +Inf bucket"));
            }
            let count = match key.split_once('{') {
                Some((name, rest)) => format!("{name}_count{{{rest}"),
                None => format!("{key}_count"),
            };
            if self.get(&count) != Some(last.1) {
                return Err(format!(
                    "{key}: +Inf is {} but {count} is {:?}",
                    last.1,
                    self.get(&count)
                ));
            }
        }
        Ok(())
    }
}

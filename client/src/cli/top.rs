//! `dsm-client top`: the master's numbers refreshed in the terminal, one line per interval
//! (as `redis-cli --stat`), read from its `/metrics` (the master runs with `--metrics`):
//! role, epoch, live slaves, keys, under-replicated keys, and per op the request rate, the
//! error rate and p50/p99 over the interval (from the latency histograms' buckets).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use dsm_net::prom::quantile;

pub const USAGE: &str = "\
Usage: dsm-client top [--metrics ADDR] [--interval-ms N] [--count N]

Prints the master's role, epoch, live slaves, keys and under-replicated keys, and
per op (rd, wr) requests and errors per second and the p50 and p99 latency over
each interval, one line per interval, from the master's /metrics (start it with
--metrics ADDR; make run-cluster serves it on 127.0.0.1:9100).
  --metrics ADDR     the master's --metrics address (default 127.0.0.1:9100)
  --interval-ms N    refresh every N ms (default 1000)
  --count N          stop after N lines (default: until interrupted)
Exit status: 0, or 2 when /metrics cannot be read (the message says why).";

struct Opts {
    addr: SocketAddr,
    interval: Duration,
    count: Option<u64>,
}

fn parse(args: &[String]) -> Result<Option<Opts>, String> {
    let mut opts = Opts {
        addr: "127.0.0.1:9100".parse().expect("literal address"),
        interval: Duration::from_secs(1),
        count: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} takes a value"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--metrics" => {
                let v = value(a)?;
                opts.addr = dsm_cli::addr::parse_addr(&v).map_err(|e| format!("--metrics: {e}"))?;
            }
            "--interval-ms" => match value(a)?.parse::<u64>() {
                Ok(n) if n > 0 => opts.interval = Duration::from_millis(n),
                _ => return Err("--interval-ms takes a positive number".into()),
            },
            "--count" => match value(a)?.parse::<u64>() {
                Ok(n) if n > 0 => opts.count = Some(n),
                _ => return Err("--count takes a positive number".into()),
            },
            other => return Err(format!("top: unknown argument '{other}'")),
        }
    }
    Ok(Some(opts))
}

/// Run `top` with the arguments after it; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let opts = match parse(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("dsm-client: {e}\n{USAGE}");
            return 2;
        }
    };
    let mut out = io::stdout().lock();
    let mut prev: Option<(Instant, Scrape)> = None;
    let mut lines = 0u64;
    loop {
        let now = Instant::now();
        let scrape = match fetch(opts.addr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "dsm-client top: cannot read http://{}/metrics: {e}",
                    opts.addr
                );
                return 2;
            }
        };
        if lines.is_multiple_of(20) {
            let header = format!(
                "{:<10} {:>5} {:>7} {:>9} {:>6} | {:>8} {:>6} {:>9} {:>9} | {:>8} {:>6} {:>9} {:>9}",
                "role", "epoch", "slaves", "keys", "under", "rd/s", "err/s", "rd p50", "rd p99",
                "wr/s", "err/s", "wr p50", "wr p99"
            );
            if writeln!(out, "{header}").is_err() {
                return 0;
            }
        }
        let line = render(&scrape, prev.as_ref().map(|(t, s)| (now - *t, s)));
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            return 0; // stdout closed (| head): done.
        }
        lines += 1;
        if opts.count.is_some_and(|n| lines >= n) {
            return 0;
        }
        prev = Some((now, scrape));
        thread::sleep(opts.interval);
    }
}

/// Samples of one scrape by `name{labels}` as written.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// The role whose `dsm_master_role` sample is 1.
    fn role(&self) -> &str {
        ["primary", "backup", "fenced", "recovering"]
            .into_iter()
            .find(|r| self.get(&format!("dsm_master_role{{role=\"{r}\"}}")) == 1.0)
            .unwrap_or("?")
    }

    /// Requests answered for `op`, and those answered with an error (not OK, NOT_FOUND).
    fn answered(&self, op: &str) -> (f64, f64) {
        let prefix = format!("dsm_master_requests_total{{op=\"{op}\",result=\"");
        let mut all = 0.0;
        let mut errors = 0.0;
        for (k, v) in self.0.range(prefix.clone()..) {
            let Some(result) = k.strip_prefix(&prefix) else {
                break;
            };
            all += v;
            if !result.starts_with("ok\"") && !result.starts_with("not_found\"") {
                errors += v;
            }
        }
        (all, errors)
    }

    /// The latency buckets of `op`: (upper bound in seconds, cumulative count), ascending.
    fn buckets(&self, op: &str) -> Vec<(f64, f64)> {
        let prefix = format!("dsm_master_request_duration_seconds_bucket{{op=\"{op}\",le=\"");
        let mut b: Vec<(f64, f64)> = (self.0.range(prefix.clone()..))
            .map_while(|(k, v)| {
                let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        b
    }
}

fn render(now: &Scrape, prev: Option<(Duration, &Scrape)>) -> String {
    let live = now.get("dsm_master_slaves{state=\"live\"}");
    let all = live + now.get("dsm_master_slaves{state=\"dead\"}");
    let mut line = format!(
        "{:<10} {:>5} {:>7} {:>9} {:>6}",
        now.role(),
        now.get("dsm_master_epoch"),
        format!("{live}/{all}"),
        now.get("dsm_master_keys"),
        now.get("dsm_master_under_replicated_keys"),
    );
    for op in ["read", "write"] {
        let cols = match prev {
            None => ["-".to_string(), "-".into(), "-".into(), "-".into()],
            Some((dt, before)) => {
                let secs = dt.as_secs_f64().max(1e-3);
                let (a1, e1) = now.answered(op);
                let (a0, e0) = before.answered(op);
                let (b1, b0) = (now.buckets(op), before.buckets(op));
                // Per-bucket counts over the interval, from the cumulative ones.
                let mut per = Vec::with_capacity(b1.len());
                let mut below = 0.0;
                for (i, &(le, c)) in b1.iter().enumerate() {
                    let c0 = b0.get(i).map_or(0.0, |b| b.1);
                    let cum = (c - c0).max(0.0);
                    per.push((le, (cum - below).max(0.0) as u64));
                    below = cum;
                }
                let total = per.iter().map(|b| b.1).sum();
                let q = |q: f64| show(quantile(&per, total, q));
                [
                    format!("{:.1}", (a1 - a0) / secs),
                    format!("{:.1}", (e1 - e0) / secs),
                    q(0.5),
                    q(0.99),
                ]
            }
        };
        line.push_str(&format!(
            " | {:>8} {:>6} {:>9} {:>9}",
            cols[0], cols[1], cols[2], cols[3]
        ));
    }
    line
}

fn show(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 1e-3 => format!("{:.0}us", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.2}ms", s * 1e3),
        Some(s) => format!("{s:.2}s"),
    }
}

/// GET /metrics, at most 5 s, and parse it.
fn fetch(addr: SocketAddr) -> io::Result<Scrape> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let (head, text) = body
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        let status = head.lines().next().unwrap_or_default().to_string();
        return Err(io::Error::new(io::ErrorKind::InvalidData, status));
    }
    let mut map = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((series, v)) = line.rsplit_once(' ') {
            let v = if v == "+Inf" {
                f64::INFINITY
            } else {
                v.parse().unwrap_or(f64::NAN)
            };
            map.insert(series.to_string(), v);
        }
    }
    Ok(Scrape(map))
}

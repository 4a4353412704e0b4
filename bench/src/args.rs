//! The `bench` subcommand's options: parsed and checked here, before any socket is opened.

use std::path::PathBuf;

use crate::keys::{min_key_size, KEY_PREFIX};
use crate::{BenchConfig, Workload};

/// The usage text printed by `dsm-client bench --help`.
pub const USAGE: &str = "\
Usage: dsm-client [--master ADDR] [--secret-file PATH] bench --op OP [options]
  OP: ping|write|read|mixed|incr|delete|cas|mix-all

Drives N connections from one event loop, P requests outstanding on each, M
requests in all, and prints ops/s and latency percentiles in microseconds.

  ping   PING, answered by the master itself (one hop)
  write  WRITE of --value-size bytes to key bench:<i mod K>
  read   writes all K keys first (not timed), then READs them; every answer
         is checked against the value written for its key
  mixed  50/50 READ and WRITE; each connection owns the keys k with
         k mod N = its index, so every READ answer can be checked

The four below predict every answer exactly: each connection owns its keys
(k mod N = its index), writes them all first (not timed), and reads every key
back with VREAD after the timed run (not timed). The summary says how many
answers and keys were as predicted; anything else is an error.

  incr    INCR of a random owned key by a random delta in -100..=100, after a
          SET of 0; every answer must be the sum of the deltas sent so far
  delete  DELETE of the owned keys in turn, after a WRITE of each: the first
          DELETE of a key must answer WRITTEN, any later one NOT_FOUND (so
          with --keys >= --requests every DELETE removes a live key)
  cas     SET with the expected version (compare-and-set) of a free owned key,
          with the version its last SET was answered; one request in flight
          per key, so every CAS must succeed and a CONFLICT is an error
  mix-all VREAD, SET, CAS, DELETE and INCR, 1/5 each, of free owned keys
          holding decimal numbers; one request in flight per key, so every
          VREAD's version and value and every other answer is predicted

incr, delete and mixed need --keys >= --clients; cas and mix-all need
--keys >= --clients x --pipeline. incr and mix-all write decimal numbers, so
they take no --value-size.

Keys are named bench:0 .. bench:<K-1>; with --key-size B the number is
zero-padded so every name is exactly B bytes (bench:0000000042 for B = 16),
which must leave room for the digits of K-1.

Closed loop (the default) refills each connection as answers arrive, so P
requests stay in flight. With --burst a connection sends P requests at once and
the next P only when all P are answered, which is what redis-benchmark -P does.

With --rate the load is open loop: request i is due at start + i/OPS and its
latency runs from that instant, even while it waits for a free pipeline slot.
The requests due by now leave in one batch, at most one batch every 250 us
(so one may leave up to about 0.3 ms late, counted in its latency), about a
batch's worth to one connection at a time.

With --redis ADDR the same run goes to a Redis server instead of a dsm master:
PING, SET and GET over RESP, the same keys, values, read checks, schedule and
latency accounting, so the two systems are measured by one load generator.

Exit status: 0 success; 1 any error, mismatch or NOT_FOUND, or no reply for
10 s; 2 usage error or no master reachable.";

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Help,
    Version,
    Run(BenchConfig),
}

fn options() -> getopts::Options {
    let mut opts = getopts::Options::new();
    opts.optopt(
        "",
        "op",
        "ping, write, read, mixed, incr, delete, cas or mix-all (required)",
        "OP",
    );
    opts.optopt("", "clients", "connections, N (default 1)", "N");
    opts.optopt(
        "",
        "pipeline",
        "outstanding requests per connection, P (default 1)",
        "P",
    );
    opts.optopt("", "requests", "requests in all, M (default 10000)", "M");
    opts.optopt("", "value-size", "bytes per value (default 64)", "B");
    opts.optopt("", "keys", "distinct keys, K (default 1000)", "K");
    opts.optopt(
        "",
        "key-size",
        "bytes per key name, zero-padded (default: unpadded)",
        "B",
    );
    opts.optopt(
        "",
        "rate",
        "open loop at this many requests per second in all",
        "OPS",
    );
    opts.optflag(
        "",
        "burst",
        "closed loop in bursts of P per connection, as redis-benchmark -P",
    );
    opts.optflag(
        "",
        "json",
        "print one JSON object and nothing else on stdout",
    );
    opts.optopt(
        "",
        "hist",
        "write the latency distribution (HdrHistogram text, microseconds)",
        "FILE",
    );
    opts.optopt(
        "",
        "slow-log",
        "write each timed request slower than --slow-us to FILE: when it was answered \
         (µs since the generator started) and its latency (µs), one per line",
        "FILE",
    );
    opts.optopt(
        "",
        "slow-us",
        "the latency over which --slow-log writes a request (default 1000)",
        "US",
    );
    opts.optopt(
        "",
        "redis",
        "measure the Redis server at ADDR (host:port) instead of a dsm master",
        "ADDR",
    );
    opts.optflag("h", "help", "print this help");
    opts.optflag("V", "version", "print the version");
    opts
}

/// The full help text: [`USAGE`] then one line per option.
pub fn help() -> String {
    options().usage(USAGE)
}

/// The workloads `--op` names, for messages.
const OPS: &str = "ping, write, read, mixed, incr, delete, cas or mix-all";

/// Largest value the bench sends: what the client library accepts in a frame.
pub const MAX_VALUE_SIZE: u64 = 256 * 1024 * 1024;
/// Connections one event loop drives; far above any useful setting, below fd limits.
pub const MAX_CLIENTS: u64 = 10_000;
/// Keeps the per-connection in-flight table and the write buffers bounded.
pub const MAX_PIPELINE: u64 = 65_536;
/// Longest key name: the largest key a master or slave accepts unless started with --max-key.
pub const MAX_KEY_SIZE: u64 = dsm_wire::DEFAULT_MAX_KEY as u64;

/// Parse the arguments after `bench`. `Err` carries the message for a usage error (exit 2).
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let m = options().parse(args).map_err(|e| dsm_cli::fail_text(&e))?;
    if m.opt_present("help") {
        return Ok(Parsed::Help);
    }
    if m.opt_present("version") {
        return Ok(Parsed::Version);
    }
    if let Some(extra) = m.free.first() {
        return Err(format!("unexpected argument '{extra}'"));
    }
    let workload = match m.opt_str("op") {
        None => return Err(format!("--op is required ({OPS})")),
        Some(s) => Workload::from_name(&s.to_ascii_lowercase())
            .ok_or_else(|| format!("--op takes {OPS}, not '{s}'"))?,
    };
    let clients = count(&m, "clients", 1, MAX_CLIENTS)?;
    let pipeline = count(&m, "pipeline", 1, MAX_PIPELINE)?;
    let requests = count(&m, "requests", 10_000, u64::MAX)?;
    let value_size = count(&m, "value-size", 64, MAX_VALUE_SIZE)?;
    let keys = count(&m, "keys", 1000, u32::MAX as u64)?;
    let key_size = key_size(&m, keys as usize)?;
    let rate = match m.opt_str("rate") {
        None => None,
        Some(s) => match s.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Some(r),
            _ => return Err(format!("--rate takes a positive number, not '{s}'")),
        },
    };
    let burst = m.opt_present("burst");
    if burst && rate.is_some() {
        return Err("--burst is a closed-loop mode; it cannot go with --rate".into());
    }
    let op = workload.name();
    if workload.one_per_key() && keys < clients.saturating_mul(pipeline) {
        return Err(format!(
            "--op {op} needs --keys >= --clients x --pipeline: each connection owns its \
             keys and has one request in flight per key (got {keys} keys for {clients} \
             clients x {pipeline})"
        ));
    }
    if workload.owns_keys() && keys < clients {
        return Err(format!(
            "--op {op} needs --keys >= --clients: each connection owns its keys \
             (got {keys} keys for {clients} clients)"
        ));
    }
    if workload.numbers() && m.opt_present("value-size") {
        return Err(format!(
            "--op {op} writes decimal numbers; it takes no --value-size"
        ));
    }
    let slow_us = count(&m, "slow-us", 1000, u64::MAX / 1000)?;
    if m.opt_present("slow-us") && !m.opt_present("slow-log") {
        return Err("--slow-us says which requests --slow-log writes; give --slow-log FILE".into());
    }
    let slow_log = m.opt_str("slow-log").map(|p| (PathBuf::from(p), slow_us));
    let redis =
        match m.opt_str("redis") {
            None => None,
            Some(s) => Some(s.parse::<std::net::SocketAddr>().map_err(|_| {
                format!("--redis takes an address such as 127.0.0.1:6379, not '{s}'")
            })?),
        };
    if redis.is_some() && !matches!(op, "ping" | "write" | "read" | "mixed") {
        return Err(format!(
            "--redis runs ping, write, read and mixed (PING, SET, GET); not --op {op}"
        ));
    }
    Ok(Parsed::Run(BenchConfig {
        workload,
        clients: clients as usize,
        pipeline: pipeline as usize,
        requests,
        value_size: value_size as usize,
        keys: keys as usize,
        key_size,
        rate,
        burst,
        json: m.opt_present("json"),
        hist: m.opt_str("hist").map(PathBuf::from),
        slow_log,
        redis,
    }))
}

/// `--key-size`: room for the prefix and the digits of the largest key number, and no longer
/// than a server takes by default.
fn key_size(m: &getopts::Matches, keys: usize) -> Result<Option<usize>, String> {
    let Some(s) = m.opt_str("key-size") else {
        return Ok(None);
    };
    let b = count(m, "key-size", 0, u64::MAX)?;
    if b > MAX_KEY_SIZE {
        return Err(format!(
            "--key-size is at most {MAX_KEY_SIZE} (the largest key a master accepts by \
             default), not {s}"
        ));
    }
    let min = min_key_size(keys);
    if (b as usize) < min {
        return Err(format!(
            "--key-size {b} is too small for {keys} keys: '{}' and the {} digits of key {} \
             need at least {min} bytes",
            String::from_utf8_lossy(KEY_PREFIX),
            min - KEY_PREFIX.len(),
            keys - 1,
        ));
    }
    Ok(Some(b as usize))
}

/// A whole number in 1..=max, or `default` when the option is absent.
fn count(m: &getopts::Matches, name: &str, default: u64, max: u64) -> Result<u64, String> {
    let Some(s) = m.opt_str(name) else {
        return Ok(default);
    };
    match s.parse::<u64>() {
        Ok(n) if n >= 1 && n <= max => Ok(n),
        Ok(n) if n >= 1 => Err(format!("--{name} is at most {max}, not {n}")),
        _ => Err(format!("--{name} takes a positive whole number, not '{s}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn run(line: &str) -> BenchConfig {
        match parse(&args(line)) {
            Ok(Parsed::Run(c)) => c,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn err(line: &str) -> String {
        match parse(&args(line)) {
            Err(e) => e,
            other => panic!("{line} should fail: {other:?}"),
        }
    }

    #[test]
    fn full_line_parses() {
        let c = run(
            "--op write --clients 4 --pipeline 32 --requests 5000 --value-size 64 \
                     --keys 100 --rate 2500.5 --json --hist /tmp/h.txt",
        );
        assert_eq!(c.workload, Workload::Write);
        assert_eq!((c.clients, c.pipeline, c.requests), (4, 32, 5000));
        assert_eq!((c.value_size, c.keys, c.key_size), (64, 100, None));
        assert_eq!(c.rate, Some(2500.5));
        assert!(c.json);
        assert_eq!(c.hist, Some(PathBuf::from("/tmp/h.txt")));
    }

    #[test]
    fn the_slow_log_takes_a_file_and_a_threshold() {
        assert_eq!(run("--op write").slow_log, None);
        let c = run("--op write --slow-log /tmp/s.txt");
        assert_eq!(c.slow_log, Some((PathBuf::from("/tmp/s.txt"), 1000)));
        let c = run("--op write --slow-log /tmp/s.txt --slow-us 250");
        assert_eq!(c.slow_log, Some((PathBuf::from("/tmp/s.txt"), 250)));
        assert!(err("--op write --slow-us 250").contains("give --slow-log FILE"));
        assert!(err("--op write --slow-log f --slow-us 0").contains("--slow-us takes a positive"));
    }

    #[test]
    fn defaults_and_case_insensitive_op() {
        let c = run("--op PING");
        assert_eq!(c.workload, Workload::Ping);
        assert_eq!((c.clients, c.pipeline, c.requests), (1, 1, 10_000));
        assert_eq!((c.value_size, c.keys, c.rate), (64, 1000, None));
        assert!(!c.json && !c.burst);
        assert!(run("--op read --pipeline 32 --burst").burst);
        assert!(err("--op read --burst --rate 100").contains("--burst"));
        assert_eq!(parse(&args("--help")), Ok(Parsed::Help));
    }

    #[test]
    fn bad_values_are_refused_with_the_option_named() {
        assert!(err("--clients 4").contains("--op is required"));
        assert!(err("--op scan").contains("not 'scan'"));
        assert!(err("--op scan").contains("incr, delete, cas or mix-all"));
        assert!(err("--op ping --clients 0").contains("--clients takes a positive"));
        assert!(err("--op ping --pipeline -3").contains("--pipeline"));
        assert!(err("--op ping --requests 1e3").contains("--requests"));
        assert!(err("--op ping --value-size x").contains("--value-size"));
        assert!(err("--op ping --keys 0").contains("--keys"));
        assert!(err("--op ping --rate 0").contains("--rate takes a positive"));
        assert!(err("--op ping --rate nan").contains("--rate"));
        assert!(err("--op ping --rate inf").contains("--rate"));
        assert!(err("--op ping --clients 20000").contains("at most 10000"));
        assert!(err("--op ping extra").contains("unexpected argument 'extra'"));
        assert!(err("--op ping --bogus 1").contains("bogus"));
        assert!(err("--op ping --redis localhost").contains("--redis takes an address"));
        assert_eq!(
            run("--op read --redis 127.0.0.1:6379").redis,
            Some("127.0.0.1:6379".parse().unwrap())
        );
        assert_eq!(run("--op read").redis, None);
        assert!(err("--op ping --clients").contains("clients"));
    }

    #[test]
    fn key_size_must_hold_the_prefix_and_every_key_number() {
        let c = run("--op write --keys 1000000 --key-size 16");
        assert_eq!((c.keys, c.key_size), (1_000_000, Some(16)));
        // Keys 0..999999: 'bench:' and 6 digits, so 12 bytes is the least.
        assert_eq!(
            run("--op write --keys 1000000 --key-size 12").key_size,
            Some(12)
        );
        let e = err("--op write --keys 1000000 --key-size 11");
        assert!(
            e.contains("--key-size 11 is too small for 1000000 keys"),
            "{e}"
        );
        assert!(e.contains("at least 12 bytes"), "{e}");
        // The default 1000 keys need 'bench:' and 3 digits.
        assert!(err("--op read --key-size 8").contains("at least 9 bytes"));
        assert_eq!(run("--op read --key-size 9").key_size, Some(9));
        assert_eq!(
            run(&format!("--op write --key-size {MAX_KEY_SIZE}")).key_size,
            Some(MAX_KEY_SIZE as usize)
        );
        let e = err(&format!("--op write --key-size {}", MAX_KEY_SIZE + 1));
        assert!(e.contains("--key-size is at most 1024"), "{e}");
        assert!(err("--op write --key-size 0").contains("--key-size takes a positive"));
        assert!(err("--op write --key-size 16B").contains("--key-size takes a positive"));
        assert!(help().contains("--key-size B"));
    }

    #[test]
    fn mixed_needs_a_key_per_connection() {
        assert!(err("--op mixed --clients 8 --keys 4").contains("--keys >= --clients"));
        assert_eq!(run("--op mixed --clients 8 --keys 8").keys, 8);
        // Other workloads may share keys between connections.
        assert_eq!(run("--op write --clients 8 --keys 1").keys, 1);
    }

    #[test]
    fn new_ops_parse_and_check_their_keys() {
        for (name, w) in [
            ("incr", Workload::Incr),
            ("delete", Workload::Delete),
            ("cas", Workload::Cas),
            ("MIX-ALL", Workload::MixAll),
        ] {
            assert_eq!(run(&format!("--op {name}")).workload, w);
        }
        assert!(err("--op incr --clients 8 --keys 4").contains("--keys >= --clients"));
        assert!(err("--op delete --clients 8 --keys 4").contains("--keys >= --clients"));
        assert_eq!(
            run("--op delete --clients 8 --keys 8 --pipeline 32").keys,
            8
        );
        // One CAS in flight per key: P keys per connection at least.
        let e = err("--op cas --clients 4 --pipeline 32 --keys 100");
        assert!(e.contains("--keys >= --clients x --pipeline"), "{e}");
        assert!(err("--op mix-all --clients 2 --pipeline 8 --keys 15").contains("x --pipeline"));
        assert_eq!(
            run("--op mix-all --clients 2 --pipeline 8 --keys 16").keys,
            16
        );
        assert!(err("--op incr --value-size 8").contains("no --value-size"));
        assert!(err("--op mix-all --value-size 8").contains("no --value-size"));
        assert_eq!(run("--op cas --value-size 8").value_size, 8);
        assert!(help().contains("mix-all VREAD, SET, CAS, DELETE and INCR"));
    }
}

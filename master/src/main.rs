//! dsm-master command line: parse options, start logging, run the server.

use std::process::exit;
use std::time::Duration;

use dsm_master::Config;
use dsm_net::{addr, log_setup};

const ABOUT: &str = "\
dsm-master: the coordinator of a dsm cluster.

Clients send READ and WRITE here. Each WRITE gets a new version and goes to R
slaves chosen by rendezvous hashing of the key; the client gets OK once all of
them ACK. A READ is answered from a slave that holds the latest acknowledged
version. A slave that misses an ACK deadline, or 3 PINGs, is dropped and its
writes move to the next slave in line. A request that cannot finish by
--request-timeout-ms gets ERROR TIMEOUT, which means the outcome is unknown.

With --backup-of it runs as the backup: it connects to the primary's heartbeat
socket, receives its state, polls it every --heartbeat-interval-ms, and takes
over (a higher epoch) after --heartbeat-misses silent intervals, or at once when
the heartbeat connection closes and cannot be reopened. Until then it answers
clients with ERROR NOT_PRIMARY. Start a recovered old primary with
--backup-of NEW_PRIMARY_HEARTBEAT to make it the new backup.

Once listening it prints 'dsm-master ready: listen=ADDR heartbeat=ADDR' on
stdout (port 0 picks a free port).

Usage: dsm-master [options]";

fn main() {
    let mut opts = getopts::Options::new();
    opts.optopt(
        "l",
        "listen",
        "client and slave address (default 127.0.0.1:7000)",
        "ADDR",
    );
    opts.optopt(
        "",
        "heartbeat",
        "heartbeat address for a backup master (default 127.0.0.1:7001)",
        "ADDR",
    );
    opts.optopt("r", "replicas", "copies of each write, R (default 2)", "R");
    opts.optopt("", "max-key", "largest key, bytes (default 1024)", "N");
    opts.optopt(
        "",
        "max-value",
        "largest value, bytes (default 1048576)",
        "N",
    );
    opts.optopt(
        "",
        "ack-timeout-ms",
        "drop a slave that has not ACKed a STORE by then (default 200)",
        "MS",
    );
    opts.optopt(
        "",
        "request-timeout-ms",
        "deadline of every client request (default 2000)",
        "MS",
    );
    opts.optopt(
        "",
        "read-retry-ms",
        "ask another holder when a READ has no answer by then (default 100)",
        "MS",
    );
    opts.optopt(
        "",
        "ping-interval-ms",
        "PING idle slaves this often; 3 unanswered drop it (default 500)",
        "MS",
    );
    opts.optopt(
        "",
        "hello-timeout-ms",
        "close connections that have not said HELLO by then (default 5000)",
        "MS",
    );
    opts.optopt(
        "",
        "max-conns",
        "stop accepting at this many connections (default 10000)",
        "N",
    );
    opts.optopt(
        "",
        "max-write-buffer",
        "disconnect a peer with more unsent reply bytes (default 67108864)",
        "BYTES",
    );
    opts.optopt(
        "",
        "backup-of",
        "run as the backup of the primary whose heartbeat socket is ADDR",
        "ADDR",
    );
    opts.optopt(
        "",
        "heartbeat-interval-ms",
        "backup polls the primary this often; use the same value on both (default 100)",
        "MS",
    );
    opts.optopt(
        "",
        "heartbeat-misses",
        "backup takes over after this many silent intervals, at least 3 (default 3)",
        "N",
    );
    opts.optopt(
        "",
        "takeover-grace-ms",
        "after a takeover, reads wait this long for known slaves to come back (default 3000)",
        "MS",
    );
    opts.optopt(
        "",
        "log-level",
        "off|error|warn|info|debug|trace (default info)",
        "LEVEL",
    );
    opts.optflagmulti("v", "verbose", "more log output (-v debug, -vv trace)");
    opts.optflag("h", "help", "print this help");
    let m = match opts.parse(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) => usage_error(&e.to_string()),
    };
    if m.opt_present("help") {
        print!("{}", opts.usage(ABOUT));
        return;
    }
    if !m.free.is_empty() {
        usage_error(&format!("unexpected argument '{}'", m.free[0]));
    }
    let Some(level) = log_setup::parse_level(m.opt_str("log-level").as_deref(), m.opt_count("v"))
    else {
        usage_error("--log-level takes off, error, warn, info, debug or trace");
    };
    let mut cfg = Config::default();
    if let Some(s) = m.opt_str("listen") {
        cfg.listen = addr::parse_addr(&s).unwrap_or_else(|e| usage_error(&e));
    }
    if let Some(s) = m.opt_str("heartbeat") {
        cfg.heartbeat = addr::parse_addr(&s).unwrap_or_else(|e| usage_error(&e));
    }
    cfg.replicas = num(&m, "replicas", cfg.replicas as u64) as usize;
    if cfg.replicas > 255 {
        usage_error("--replicas must be between 1 and 255");
    }
    cfg.max_key = num(&m, "max-key", cfg.max_key as u64) as usize;
    cfg.max_value = num(&m, "max-value", cfg.max_value as u64) as usize;
    cfg.ack_timeout = ms(&m, "ack-timeout-ms", cfg.ack_timeout);
    cfg.request_timeout = ms(&m, "request-timeout-ms", cfg.request_timeout);
    cfg.read_retry = ms(&m, "read-retry-ms", cfg.read_retry);
    cfg.ping_interval = ms(&m, "ping-interval-ms", cfg.ping_interval);
    cfg.hello_timeout = ms(&m, "hello-timeout-ms", cfg.hello_timeout);
    cfg.max_conns = num(&m, "max-conns", cfg.max_conns as u64) as usize;
    if let Some(s) = m.opt_str("backup-of") {
        cfg.backup_of = Some(addr::parse_addr(&s).unwrap_or_else(|e| usage_error(&e)));
    }
    cfg.heartbeat_interval = ms(&m, "heartbeat-interval-ms", cfg.heartbeat_interval);
    cfg.heartbeat_misses = num(&m, "heartbeat-misses", cfg.heartbeat_misses as u64).max(3) as u32;
    cfg.takeover_grace = ms(&m, "takeover-grace-ms", cfg.takeover_grace);
    cfg.max_write_buffer = num(&m, "max-write-buffer", cfg.max_write_buffer as u64) as usize;
    log_setup::init(level);
    if let Err(e) = dsm_master::run(cfg) {
        eprintln!("dsm-master: {e}");
        exit(1);
    }
}

/// A positive whole number option, or its default.
fn num(m: &getopts::Matches, name: &str, default: u64) -> u64 {
    match m.opt_str(name) {
        None => default,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => usage_error(&format!(
                "--{name} takes a positive whole number, not '{s}'"
            )),
        },
    }
}

fn ms(m: &getopts::Matches, name: &str, default: Duration) -> Duration {
    Duration::from_millis(num(m, name, default.as_millis() as u64))
}

fn usage_error(msg: &str) -> ! {
    eprintln!("dsm-master: {msg}\nTry 'dsm-master --help'.");
    exit(2);
}

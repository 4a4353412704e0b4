//! `dsm-client bench`: a load generator that drives many pipelined connections from one mio
//! event loop and reports throughput and latency percentiles (HdrHistogram, 3 digits).
//!
//! The pure parts live apart from the loop so they can be tested without sockets: option
//! checking ([`args`]), the open-loop schedule and pacing ([`schedule`]), read checking ([`check`]), the
//! per-request plan and tally (`tally`) and the output formats ([`report`]).

pub mod args;
pub mod check;
mod driver;
mod keys;
mod latencies;
mod model;
pub mod report;
pub mod resp;
pub mod scale_plot;
pub mod schedule;
mod tally;

use std::fmt;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use driver::STALL_TIMEOUT;
use dsm_auth::Secret;
pub use report::Summary;

/// Which requests the bench sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Ping,
    Write,
    Read,
    Mixed,
    Incr,
    Delete,
    Cas,
    MixAll,
}

impl Workload {
    pub fn from_name(name: &str) -> Option<Workload> {
        match name {
            "ping" => Some(Workload::Ping),
            "write" => Some(Workload::Write),
            "read" => Some(Workload::Read),
            "mixed" => Some(Workload::Mixed),
            "incr" => Some(Workload::Incr),
            "delete" => Some(Workload::Delete),
            "cas" => Some(Workload::Cas),
            "mix-all" => Some(Workload::MixAll),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::Ping => "ping",
            Workload::Write => "write",
            Workload::Read => "read",
            Workload::Mixed => "mixed",
            Workload::Incr => "incr",
            Workload::Delete => "delete",
            Workload::Cas => "cas",
            Workload::MixAll => "mix-all",
        }
    }

    /// Every answer must be predictable, so these write all keys before the timed run.
    pub fn preloads(self) -> bool {
        !matches!(self, Workload::Ping | Workload::Write)
    }

    /// These read every key back after the timed run (untimed) and check what it holds.
    pub fn reads_back(self) -> bool {
        matches!(
            self,
            Workload::Incr | Workload::Delete | Workload::Cas | Workload::MixAll
        )
    }

    /// Each connection changes only its own keys: k mod N = its index.
    pub fn owns_keys(self) -> bool {
        matches!(
            self,
            Workload::Mixed | Workload::Incr | Workload::Delete | Workload::Cas | Workload::MixAll
        )
    }

    /// At most one request in flight per key, so each CAS knows the version it expects.
    pub fn one_per_key(self) -> bool {
        matches!(self, Workload::Cas | Workload::MixAll)
    }

    /// Values are decimal numbers, not `--value-size` bytes.
    pub fn numbers(self) -> bool {
        matches!(self, Workload::Incr | Workload::MixAll)
    }
}

/// One bench run as the command line described it.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    pub workload: Workload,
    /// Connections, N.
    pub clients: usize,
    /// Requests outstanding per connection, P.
    pub pipeline: usize,
    /// Timed requests in all, M.
    pub requests: u64,
    pub value_size: usize,
    /// Distinct keys, K: `bench:0` .. `bench:K-1`.
    pub keys: usize,
    /// Every key name exactly this many bytes, the number zero-padded (`bench:0000000042`);
    /// `None`: not padded.
    pub key_size: Option<usize>,
    /// Open loop at this many requests per second in all; closed loop when `None`.
    pub rate: Option<f64>,
    /// Closed loop in bursts: P requests at once, the next P when all are answered.
    pub burst: bool,
    pub json: bool,
    pub hist: Option<PathBuf>,
    /// Write every timed request slower than `.1` (µs) to the file `.0`: when it was
    /// answered and how long it took (`--slow-log`, `--slow-us`).
    pub slow_log: Option<(PathBuf, u64)>,
    /// Measure the Redis server at this address instead of a dsm master (PING, SET, GET over
    /// RESP), with the same loop, schedule, keys, values, checks and histogram.
    pub redis: Option<SocketAddr>,
}

/// Why a run stopped before its last reply.
#[derive(Debug)]
pub enum BenchError {
    /// No master address accepted a connection.
    Connect(String),
    /// The master answered HELLO with ERROR.
    Refused(String),
    /// Requests were outstanding and nothing arrived for this long.
    Stalled {
        waited: Duration,
        outstanding: usize,
    },
    /// The master (or Redis server) closed a connection that still had requests in flight.
    Closed {
        conn: usize,
        outstanding: usize,
    },
    /// A reply that matches no request, or an undecodable stream.
    Protocol(String),
    /// A write of the untimed preload phase did not get OK.
    Preload(String),
    Io(io::Error),
}

impl BenchError {
    /// 2 when no master could be reached (as for the other subcommands), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            BenchError::Connect(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Connect(why) => write!(f, "no master reachable: {why}"),
            BenchError::Refused(why) => write!(f, "the master refused HELLO: {why}"),
            BenchError::Stalled {
                waited,
                outstanding,
            } => write!(
                f,
                "no reply for {} s with {outstanding} request(s) outstanding; giving up",
                waited.as_secs()
            ),
            BenchError::Closed { conn, outstanding } => write!(
                f,
                "the server closed connection {conn} with {outstanding} request(s) outstanding"
            ),
            BenchError::Protocol(why) => write!(f, "protocol error: {why}"),
            BenchError::Preload(why) => write!(f, "preloading the keys failed: {why}"),
            BenchError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<io::Error> for BenchError {
    fn from(e: io::Error) -> BenchError {
        BenchError::Io(e)
    }
}

/// Run one bench against the first of `masters` that accepts connections; every connection
/// authenticates with `secret` when one is given. With `cfg.redis`, against that Redis server
/// instead (`masters` and `secret` unused).
pub fn run(
    cfg: &BenchConfig,
    masters: &[SocketAddr],
    secret: Option<&Secret>,
) -> Result<Summary, BenchError> {
    match cfg.redis {
        Some(addr) => driver::resp::run(cfg, addr),
        None => driver::run(cfg, masters, secret),
    }
}

/// The `bench` subcommand: `args` are the words after `bench`. Returns the exit status.
pub fn main(masters: &[SocketAddr], secret: Option<&Secret>, args: &[String]) -> i32 {
    let cfg = match args::parse(args) {
        Ok(args::Parsed::Run(cfg)) => cfg,
        Ok(args::Parsed::Help) => {
            let _ = write!(std::io::stdout(), "{}", args::help());
            return 0;
        }
        Ok(args::Parsed::Version) => {
            let _ = writeln!(
                std::io::stdout(),
                "dsm-client bench {}",
                env!("CARGO_PKG_VERSION")
            );
            return 0;
        }
        Err(msg) => {
            let _ = writeln!(
                std::io::stderr(),
                "dsm-client bench: {msg}\nTry 'dsm-client bench --help'."
            );
            return 2;
        }
    };
    if cfg.redis.is_some() && secret.is_some() {
        let _ = writeln!(
            std::io::stderr(),
            "dsm-client bench: --secret-file is for dsm masters; a --redis run sends no AUTH"
        );
        return 2;
    }
    let summary = match run(&cfg, masters, secret) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "dsm-client bench: {e}");
            return e.exit_code();
        }
    };
    if let Some((path, over_us)) = &cfg.slow_log {
        if !write_file(path, report::slow_log(&summary.slow, *over_us)) {
            return 1;
        }
    }
    if let Some(path) = &cfg.hist {
        let text = report::percentile_distribution(
            &summary.hist,
            report::NANOS_PER_US,
            report::TICKS_PER_HALF_DISTANCE,
        );
        if !write_file(path, text) {
            return 1;
        }
    }
    if cfg.json {
        let _ = writeln!(std::io::stdout(), "{}", summary.json());
    } else {
        let _ = write!(std::io::stdout(), "{}", summary.text());
    }
    if summary.errors() > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "dsm-client bench: {} errors ({} error replies, {} mismatched answers, {} NOT_FOUND)",
            summary.errors(),
            summary.error_replies,
            summary.mismatches,
            summary.not_found
        );
        return 1;
    }
    0
}

/// Write one of the files a run was asked for (`--hist`, `--slow-log`); false, having said
/// why on stderr, if it cannot be written.
fn write_file(path: &std::path::Path, text: String) -> bool {
    match std::fs::write(path, text) {
        Ok(()) => true,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "dsm-client bench: cannot write {}: {e}",
                path.display()
            );
            false
        }
    }
}

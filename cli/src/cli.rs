//! Command-line plumbing shared by the three binaries: `--help`, the logging flags, typed
//! option values, and usage errors that print a hint and exit 2.

use std::net::SocketAddr;
use std::path::Path;
use std::process::exit;
use std::time::Duration;

use getopts::{Matches, Options};
use log::LevelFilter;

use crate::addr;
use dsm_auth::Secret;

const LEVELS: [LevelFilter; 6] = [
    LevelFilter::Off,
    LevelFilter::Error,
    LevelFilter::Warn,
    LevelFilter::Info,
    LevelFilter::Debug,
    LevelFilter::Trace,
];

/// One program's command line: its name goes into every error message.
pub struct Cli {
    prog: &'static str,
}

impl Cli {
    pub fn new(prog: &'static str) -> Cli {
        Cli { prog }
    }

    /// `--log-level`, `-v` and `-h`; `default` names the level used without them.
    pub fn add_common_opts(&self, opts: &mut Options, default: &str) {
        opts.optopt(
            "",
            "log-level",
            &format!("off|error|warn|info|debug|trace (default {default})"),
            "LEVEL",
        );
        opts.optflagmulti("v", "verbose", "more log output (each -v one level more)");
        opts.optflag("h", "help", "print this help");
    }

    /// `--secret-file PATH`; `what` says who must prove it, for `--help`.
    pub fn add_secret_opt(&self, opts: &mut Options, what: &str) {
        opts.optopt("", "secret-file", what, "PATH");
    }

    /// The secret named by `--secret-file`, if given. Call it after logging is set up (a loose
    /// file mode is logged as a warning); a missing or empty file ends the program with 2.
    pub fn secret(&self, m: &Matches) -> Option<Secret> {
        let path = m.opt_str("secret-file")?;
        match Secret::load(Path::new(&path)) {
            Ok(secret) => Some(secret),
            Err(e) => {
                eprintln!("{}: {e}", self.prog);
                exit(2);
            }
        }
    }

    /// Parse the process arguments. `--help` prints `about` with the options and exits 0;
    /// free arguments are an error unless `allow_free`.
    pub fn parse(&self, opts: &Options, about: &str, allow_free: bool) -> Matches {
        let m = opts
            .parse(std::env::args().skip(1))
            .unwrap_or_else(|e| self.usage_error(&e.to_string()));
        if m.opt_present("help") {
            print!("{}", opts.usage(about));
            exit(0);
        }
        if !allow_free && !m.free.is_empty() {
            self.usage_error(&format!("unexpected argument '{}'", m.free[0]));
        }
        m
    }

    /// The level from `--log-level`, else `default` raised one step per `-v`.
    pub fn log_level(&self, m: &Matches, default: LevelFilter) -> LevelFilter {
        if let Some(name) = m.opt_str("log-level") {
            return LEVELS
                .into_iter()
                .find(|l| l.as_str().eq_ignore_ascii_case(&name))
                .unwrap_or_else(|| {
                    self.usage_error("--log-level takes off, error, warn, info, debug or trace")
                });
        }
        let base = LEVELS.iter().position(|&l| l == default).unwrap_or(3);
        LEVELS[(base + m.opt_count("v")).min(LEVELS.len() - 1)]
    }

    /// A positive whole number option, or `default`.
    pub fn positive(&self, m: &Matches, name: &str, default: u64) -> u64 {
        match m.opt_str(name) {
            None => default,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => self.usage_error(&format!(
                    "--{name} takes a positive whole number, not '{s}'"
                )),
            },
        }
    }

    /// A whole number option (zero allowed), or `default`.
    pub fn whole(&self, m: &Matches, name: &str, default: u64) -> u64 {
        match m.opt_str(name) {
            None => default,
            Some(s) => s.parse::<u64>().unwrap_or_else(|_| {
                self.usage_error(&format!("--{name} takes a whole number, not '{s}'"))
            }),
        }
    }

    /// A positive number of milliseconds, or `default`.
    pub fn millis(&self, m: &Matches, name: &str, default: Duration) -> Duration {
        Duration::from_millis(self.positive(m, name, default.as_millis() as u64))
    }

    /// One `host:port`, if given.
    pub fn addr(&self, m: &Matches, name: &str) -> Option<SocketAddr> {
        m.opt_str(name)
            .map(|s| addr::parse_addr(&s).unwrap_or_else(|e| self.usage_error(&e)))
    }

    /// An `ADDR[,ADDR...]` list, or `default`.
    pub fn addr_list(&self, m: &Matches, name: &str, default: &str) -> Vec<SocketAddr> {
        let s = m.opt_str(name).unwrap_or_else(|| default.to_string());
        addr::parse_addr_list(&s).unwrap_or_else(|e| self.usage_error(&e))
    }

    pub fn usage_error(&self, msg: &str) -> ! {
        eprintln!("{}: {msg}\nTry '{} --help'.", self.prog, self.prog);
        exit(2);
    }
}

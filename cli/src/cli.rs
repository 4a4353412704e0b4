//! Command-line plumbing shared by the three binaries: `--help`, the logging flags, typed
//! option values, and usage errors that print a hint and exit 2.

use std::io::Write;
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
        opts.optflag("V", "version", "print the version");
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
                let _ = writeln!(std::io::stderr(), "{}: {e}", self.prog);
                exit(2);
            }
        }
    }

    /// Parse the process arguments. `--help` prints `about` with the options and exits 0, as
    /// does `--version` with the version; free arguments are an error unless `allow_free`.
    /// `opts` must hold the options of [`Cli::add_common_opts`].
    pub fn parse(&self, opts: &Options, about: &str, allow_free: bool) -> Matches {
        // args_os: an argument that is not UTF-8 is a usage error, not a panic.
        let m = opts
            .parse(std::env::args_os().skip(1))
            .unwrap_or_else(|e| self.usage_error(&fail_text(&e)));
        if m.opt_present("help") {
            print_or_exit(&opts.usage(about));
            exit(0);
        }
        if m.opt_present("version") {
            print_or_exit(&format!("{} {}\n", self.prog, VERSION));
            exit(0);
        }
        if !allow_free && !m.free.is_empty() {
            self.usage_error(&format!("unexpected argument '{}'", m.free[0]));
        }
        m
    }

    /// The level from `--log-level`, else `default` raised one step per `-v`.
    pub fn log_level(&self, m: &Matches, default: LevelFilter) -> LevelFilter {
        self.level_of(m.opt_str("log-level").as_deref(), m.opt_count("v"), default)
    }

    /// The level named `name` (`--log-level`), else `default` raised `verbose` steps.
    pub fn level_of(
        &self,
        name: Option<&str>,
        verbose: usize,
        default: LevelFilter,
    ) -> LevelFilter {
        if let Some(name) = name {
            return LEVELS
                .into_iter()
                .find(|l| l.as_str().eq_ignore_ascii_case(name))
                .unwrap_or_else(|| {
                    self.usage_error("--log-level takes off, error, warn, info, debug or trace")
                });
        }
        let base = LEVELS.iter().position(|&l| l == default).unwrap_or(3);
        LEVELS[(base + verbose).min(LEVELS.len() - 1)]
    }

    /// A whole number option of at least `min`, or `default`.
    pub fn at_least(&self, m: &Matches, name: &str, min: u64, default: u64) -> u64 {
        match m.opt_str(name) {
            None => default,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if n >= min => n,
                _ => self.usage_error(&format!(
                    "--{name} takes a whole number of at least {min}, not '{s}'"
                )),
            },
        }
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
        let _ = writeln!(
            std::io::stderr(),
            "{}: {msg}\nTry '{} --help'.",
            self.prog,
            self.prog
        );
        exit(2);
    }
}

/// The version every dsm binary prints for `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Print `text` on stdout; a closed stdout (`| head`) is no error, another failure exits 2.
pub fn print_or_exit(text: &str) {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cannot write to stdout: {e}");
            exit(2);
        }
    }
}

/// What was wrong with the arguments, said as `dsm-client` says it (getopts' own texts name
/// an option without its dashes: "Unrecognized option: 'bogus'").
pub fn fail_text(e: &getopts::Fail) -> String {
    let dashed = |o: &str| {
        let o = o.trim_start_matches('-');
        if o.chars().count() == 1 {
            format!("-{o}")
        } else {
            format!("--{o}")
        }
    };
    match e {
        getopts::Fail::UnrecognizedOption(o) => format!("unknown option '{}'", dashed(o)),
        getopts::Fail::ArgumentMissing(o) => format!("option '{}' needs a value", dashed(o)),
        getopts::Fail::OptionMissing(o) => format!("option '{}' is required", dashed(o)),
        getopts::Fail::OptionDuplicated(o) => {
            format!("option '{}' is given more than once", dashed(o))
        }
        getopts::Fail::UnexpectedArgument(o) => format!("option '{}' takes no value", dashed(o)),
    }
}

#[cfg(test)]
mod tests {
    use super::fail_text;

    fn parse_fail(args: &[&str]) -> String {
        let mut opts = getopts::Options::new();
        opts.optopt("", "listen", "", "ADDR");
        opts.optflag("v", "", "");
        opts.optflag("", "quiet", "");
        let e = opts.parse(args).expect_err("a bad argument");
        fail_text(&e)
    }

    #[test]
    fn a_bad_argument_is_named_with_its_dashes() {
        assert_eq!(parse_fail(&["--bogus"]), "unknown option '--bogus'");
        assert_eq!(parse_fail(&["-x"]), "unknown option '-x'");
        assert_eq!(parse_fail(&["--listen"]), "option '--listen' needs a value");
        assert_eq!(
            parse_fail(&["--listen", "a", "--listen", "b"]),
            "option '--listen' is given more than once"
        );
        assert_eq!(
            parse_fail(&["--quiet=1"]),
            "option '--quiet' takes no value"
        );
    }
}

//! dsm-client command line: one-shot commands, or a REPL when none is given. Parses the
//! arguments as raw bytes, reads `--value-file`, connects, and hands the command (or every
//! line) to [`Shell`]; no input or output condition panics, and a closed stdout ends it
//! quietly with the status it had.

mod cli;

use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::exit;
use std::time::{Duration, Instant};

use dsm_cli::{addr, log_setup, print_or_exit};
use dsm_client::command::{self, Command};
use dsm_client::output::Style;
use dsm_client::repl::{Shell, EXIT_USAGE};
use dsm_client::{Client, ConnectOptions, Secret};
use dsm_wire::ServerRole;

use crate::cli::args::{self, Args};

const ABOUT: &str = "\
dsm-client: read and write keys in a dsm cluster.

Usage:
  dsm-client [options] write KEY VALUE...     store VALUE (its words joined by single spaces)
  dsm-client [options] write KEY --value-file PATH
                                              store the bytes of PATH ('-': stdin), any size
                                              the master allows
  dsm-client [options] read KEY               print the value
  dsm-client [options] read --version KEY     print VERSION VALUE
  dsm-client [options] write --if-version N KEY VALUE...
                                              store only if KEY is at version N (0: only if
                                              absent); prints OK VERSION, or ERROR CONFLICT
                                              with the current version (exit 1)
  dsm-client [options] delete [--if-version N] KEY
                                              delete KEY; prints OK VERSION (NOT_FOUND: exit 1)
  dsm-client [options] incr KEY [DELTA]       add DELTA (default 1) to the integer in KEY
                                              (missing: 0); prints the new value
  dsm-client [options] scan [--prefix P]      every key (under P), one per line
  dsm-client [options] status [--json]        which master answered, its role and epoch, where
                                              the primary is, the backup, the live slaves and
                                              the absent ones
  dsm-client [options] ping                   one round trip to the master
  dsm-client [options] forget-slave ID        slave ID is gone for good (its disk is lost): its
                                              copies no longer count
  dsm-client [options] help                   this help
  dsm-client [options] bench --op OP ...      load test; 'dsm-client bench --help'
  dsm-client top [--metrics ADDR] ...         the master's numbers every second, from its
                                              --metrics endpoint; 'dsm-client top --help'
  dsm-client [options]                        the REPL: one command a line, the same commands
                                              (WRITE key value..., READ key, VREAD key,
                                              CAS key version value..., DELETE key,
                                              INCR key [delta], SCAN [prefix],
                                              STATUS [--json], PING, FORGET-SLAVE id, HELP,
                                              QUIT)

Keys and values are bytes: arguments are taken as they are, not as UTF-8. Options
may come before or after the command; words after '--' are the command's own
('dsm-client write -- -k -v' stores '-v' under '-k').

Output: a value is printed raw (its bytes exactly, nothing added) when stdout is
not a terminal, and in double quotes with escapes (\\n, \\\", \\xHH for bytes that are
not printable UTF-8) on a terminal; --raw and --quoted choose. A missing key is
NOT_FOUND: on stdout when quoted, on stderr when raw (so stdout holds only stored
bytes). Errors go to stderr as 'ERROR <CODE>: <why> (master ADDR)'.

The REPL, on a terminal, has line editing, history ($DSM_HISTORY, by default
~/.dsm_client_history; set it empty for none) and Tab completion of command
names. Piped, it reads lines as bytes and prints no prompt. An unquoted value
is the rest of the line after the key; a key, or a whole value, may be quoted:
\"a key\" or 'a key', with \\\" \\\\ \\n \\r \\t \\0 \\xHH escapes inside double quotes (HELP
in the REPL says it all). Every answer is one line (a raw value with a newline
in it takes more). --value-file belongs to the command line only.

With --secret-file the client proves it holds the cluster's secret, as a master
with --require-client-auth demands, and talks only to a master that proves it
holds the secret too (every command, the REPL and bench).

Exit status: 0 success; 1 NOT_FOUND (read) or an ERROR answer from the master
(ERROR TIMEOUT and ERROR UNKNOWN mean the outcome of a write is unknown); 2 usage
error, an unreadable --value-file or --secret-file, no master reachable (a
refused connection fails at once; a silent address waits for --timeout-ms), or
the master refused the connection (ERROR UNAUTHORIZED). The REPL exits with the
worst status of its commands (a line that is no command counts 2). A closed
stdout (| head) ends either quietly, with the status so far.";

/// The options, for `--help` only: `cli::args` parses them, as raw bytes.
fn options() -> getopts::Options {
    let mut opts = getopts::Options::new();
    opts.optopt(
        "m",
        "master",
        "master addresses; later ones are fallbacks (default 127.0.0.1:7000,127.0.0.1:7002)",
        "ADDR[,ADDR...]",
    );
    opts.optopt(
        "t",
        "timeout-ms",
        "deadline of each request, reconnects included (default 5000)",
        "MS",
    );
    opts.optopt(
        "",
        "max-value",
        "the largest value expected, as the master's --max-value; a reply frame larger than it \
         allows is refused before it is read (default 1048576)",
        "BYTES",
    );
    opts.optopt(
        "",
        "secret-file",
        "shared secret file, the same as the master's (default: none)",
        "PATH",
    );
    opts.optopt(
        "",
        "value-file",
        "write: the value is the bytes of PATH ('-' for stdin) instead of VALUE words",
        "PATH",
    );
    opts.optflag(
        "",
        "raw",
        "print values as their bytes (default when stdout is not a terminal)",
    );
    opts.optflag(
        "",
        "quoted",
        "print values quoted, with escapes (default on a terminal)",
    );
    opts.optflag("", "json", "status: one JSON object instead of text");
    opts.optopt(
        "",
        "log-level",
        "off|error|warn|info|debug|trace (default warn)",
        "LEVEL",
    );
    opts.optflagmulti("v", "verbose", "more log output");
    opts.optflag("h", "help", "print this help");
    opts.optflag("V", "version", "print the version");
    opts
}

fn main() {
    exit(run());
}

fn run() -> i32 {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let args = match args::parse(&argv) {
        Ok(a) => a,
        Err(msg) => usage_error(&msg),
    };
    let is_help = args
        .words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case(b"help"));
    if args.help || is_help {
        print_or_exit(&options().usage(ABOUT));
        return 0;
    }
    if args.version {
        print_or_exit(&format!("dsm-client {}\n", dsm_cli::VERSION));
        return 0;
    }
    let cli = dsm_cli::Cli::new("dsm-client");
    let level = cli.level_of(
        args.log_level.as_deref(),
        args.verbose,
        log::LevelFilter::Warn,
    );
    log_setup::init(level);
    let masters = addr::parse_addr_list(
        args.master
            .as_deref()
            .unwrap_or("127.0.0.1:7000,127.0.0.1:7002"),
    )
    .unwrap_or_else(|e| usage_error(&format!("--master: {e}")));
    let timeout = match args.timeout_ms.as_deref() {
        None => dsm_client::DEFAULT_TIMEOUT,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n > 0 => Duration::from_millis(n),
            _ => usage_error(&format!("--timeout-ms takes a positive number, not '{s}'")),
        },
    };
    let max_value = match args.max_value.as_deref() {
        None => dsm_wire::DEFAULT_MAX_VALUE,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => usage_error(&format!("--max-value takes a positive number, not '{s}'")),
        },
    };
    let secret = args
        .secret_file
        .as_ref()
        .map(|p| match Secret::load(Path::new(p)) {
            Ok(s) => s,
            Err(e) => fail_early(&e.to_string()),
        });
    if let Some(rest) = &args.top {
        let rest: Vec<String> = rest
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return cli::top::main(&rest);
    }
    if let Some(rest) = &args.bench {
        let rest: Vec<String> = rest
            .iter()
            .map(|a| {
                a.to_str().map(String::from).unwrap_or_else(|| {
                    usage_error(&format!("bench: '{}' is not UTF-8", a.to_string_lossy()))
                })
            })
            .collect();
        // The load generator's large values reuse freed memory too (`dsm_net::malloc`).
        dsm_net::malloc::keep_freed_heap();
        let redis = rest
            .iter()
            .any(|a| a == "--redis" || a.starts_with("--redis="));
        let masters = match redis || rest.iter().any(|a| a == "--help" || a == "-h") {
            true => masters,
            false => primary_first(&masters, secret.as_ref(), timeout),
        };
        return dsm_bench::main(&masters, secret.as_ref(), &rest);
    }
    let style = match (args.raw, args.quoted) {
        (true, true) => usage_error("--raw and --quoted exclude each other"),
        (true, false) => Style::Raw,
        (false, true) => Style::Quoted,
        (false, false) if io::stdout().is_terminal() => Style::Quoted,
        (false, false) => Style::Raw,
    };
    // Check the command line fully, and read the value, before touching the network.
    let cmd = one_shot_command(&args);
    let opts = ConnectOptions {
        timeout,
        secret,
        refused_is_final: true,
        max_value,
        ..ConnectOptions::default()
    };
    let started = Instant::now();
    let mut client = match Client::connect_with_options(&masters, opts) {
        Ok(c) => c,
        Err(e) => fail_early(&e.to_string()),
    };
    match cmd {
        None => repl(&mut client, style),
        Some(cmd) => {
            // One command, one --timeout-ms: the connect counts against it.
            client.next_call_from(started);
            let mut shell =
                Shell::new(&mut client, io::stdout().lock(), io::stderr(), style, false);
            match shell.run(cmd) {
                Ok(_) => shell.status(),
                Err(e) => output_failed(shell.status(), &e),
            }
        }
    }
}

/// `masters` with the primary first: the bench's connections all go to the first address,
/// and through a standby (first in the list after a failover) every request would be refused
/// NOT_PRIMARY. The primary is the master that answers STATUS as one, or the one a standby
/// names; if neither can be found, the list as given (the bench then says what went wrong).
fn primary_first(
    masters: &[SocketAddr],
    secret: Option<&Secret>,
    timeout: Duration,
) -> Vec<SocketAddr> {
    let opts = ConnectOptions {
        timeout,
        secret: secret.cloned(),
        refused_is_final: true,
        ..ConnectOptions::default()
    };
    let primary = Client::connect_with_options(masters, opts).and_then(|mut c| {
        let status = c.status()?;
        Ok(match status.role {
            ServerRole::Primary => Some(c.last_master()),
            ServerRole::Backup => status.primary.parse::<SocketAddr>().ok(),
            _ => None,
        })
    });
    match primary {
        Ok(Some(p)) => {
            log::info!("bench: the primary is {p}");
            std::iter::once(p)
                .chain(masters.iter().copied().filter(|&a| a != p))
                .collect()
        }
        _ => masters.to_vec(),
    }
}

/// The command of a one-shot run (`None`: the REPL), with `--value-file` read.
fn one_shot_command(args: &Args) -> Option<Command> {
    if args.words.is_empty() {
        if args.value_file.is_some() || args.json {
            usage_error("--value-file and --json go with a command (write, status)");
        }
        return None;
    }
    let value = args.value_file.as_ref().map(read_value);
    let cmd = command::from_words(&args.words, value).unwrap_or_else(|e| usage_error(&e));
    match cmd {
        Command::Status { .. } => Some(Command::Status { json: args.json }),
        _ if args.json => usage_error("--json goes with status only"),
        cmd => Some(cmd),
    }
}

/// The bytes of `--value-file PATH` (`-`: stdin); an error names the file and exits 2.
fn read_value(path: &OsString) -> Vec<u8> {
    let shown = Path::new(path).display().to_string();
    let what = if path == "-" { "stdin".into() } else { shown };
    // One byte more than a frame can carry is enough to say it is too much (/dev/zero ends).
    let limit = u64::from(u32::MAX) + 1;
    let mut value = Vec::new();
    let result = if path == "-" {
        io::stdin().lock().take(limit).read_to_end(&mut value)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut value))
    };
    if let Err(e) = result {
        fail_early(&format!("--value-file {what}: {e}"));
    }
    if value.len() as u64 == limit {
        fail_early(&format!(
            "--value-file {what}: over 4 GiB, more than any value can be"
        ));
    }
    value
}

/// The REPL: line editing on a terminal, plain lines otherwise.
fn repl(client: &mut Client, style: Style) -> i32 {
    let stdin_tty = io::stdin().is_terminal();
    if stdin_tty && io::stdout().is_terminal() {
        if let Some(status) = cli::editor::run(client, style) {
            return status;
        }
    }
    let mut shell = Shell::new(client, io::stdout().lock(), io::stderr(), style, true);
    // Typed at but printing into a pipe: the prompt goes to stderr, out of the answers' way.
    let prompt = || {
        if stdin_tty {
            let mut err = io::stderr();
            let _ = write!(err, "dsm> ");
            let _ = err.flush();
        }
    };
    match shell.lines(io::stdin().lock(), prompt) {
        Ok(()) => shell.status(),
        Err(e) => output_failed(shell.status(), &e),
    }
}

/// Writing an answer to stdout failed: a closed pipe ends quietly with the status so far,
/// anything else is said and counts 2.
pub fn output_failed(status: i32, e: &io::Error) -> i32 {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return status;
    }
    let _ = writeln!(io::stderr(), "dsm-client: cannot write to stdout: {e}");
    status.max(EXIT_USAGE)
}

/// A failure before any command ran (connecting, a file): exit 2.
fn fail_early(msg: &str) -> ! {
    let _ = writeln!(io::stderr(), "dsm-client: {msg}");
    exit(EXIT_USAGE);
}

fn usage_error(msg: &str) -> ! {
    let _ = writeln!(io::stderr(), "dsm-client: {msg}\nTry 'dsm-client --help'.");
    exit(EXIT_USAGE);
}

//! dsm-client command line: one-shot subcommands, or a REPL when none is given.

use std::io::IsTerminal;
use std::process::exit;
use std::time::Duration;

use dsm_cli::{addr, log_setup};
use dsm_client::{json, repl, Client, Error};

const ABOUT: &str = "\
dsm-client: read and write keys in a dsm cluster.

Usage:
  dsm-client [options] write KEY VALUE...   store VALUE (the words joined by spaces)
  dsm-client [options] read KEY             print the value
  dsm-client [options] status [--json]      the master's view of the cluster
  dsm-client [options] ping                 one round trip to the master
  dsm-client [options] forget-slave ID      slave ID is gone for good (its disk is lost):
                                            its copies no longer count
  dsm-client [options] bench --op OP ...    load test; 'dsm-client bench --help'
  dsm-client [options]                      REPL: lines 'WRITE key value...', 'READ key'

With --secret-file (before the command, bench included) the client proves it
holds the cluster's secret, as a master with --require-client-auth demands,
and talks only to a master that proves it holds the secret too.

Exit status: 0 success; 1 NOT_FOUND (read) or an ERROR answer from the master
(the message is on stderr; ERROR TIMEOUT means the outcome is unknown);
2 usage error, no master reachable, or the master refused the connection
(ERROR UNAUTHORIZED: a missing or wrong secret).

Options";

/// The options before the subcommand (`bench` has its own, parsed by `dsm_bench`).
fn options() -> getopts::Options {
    let mut opts = getopts::Options::new();
    opts.parsing_style(getopts::ParsingStyle::StopAtFirstFree);
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
        "secret-file",
        "shared secret file, the same as the master's (default: none)",
        "PATH",
    );
    opts.optopt(
        "",
        "log-level",
        "off|error|warn|info|debug|trace (default warn)",
        "LEVEL",
    );
    opts.optflagmulti("v", "verbose", "more log output");
    opts.optflag("h", "help", "print this help");
    opts
}

fn main() {
    let opts = options();
    let m = match opts.parse(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) => usage_error(&e.to_string()),
    };
    if m.opt_present("help") {
        print!("{}", opts.usage(ABOUT));
        return;
    }
    let cli = dsm_cli::Cli::new("dsm-client");
    let level = cli.log_level(&m, log::LevelFilter::Warn);
    log_setup::init(level);
    let secret = cli.secret(&m);
    let masters = addr::parse_addr_list(
        &m.opt_str("master")
            .unwrap_or("127.0.0.1:7000,127.0.0.1:7002".into()),
    )
    .unwrap_or_else(|e| usage_error(&e));
    let timeout = match m.opt_str("timeout-ms") {
        None => dsm_client::DEFAULT_TIMEOUT,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n > 0 => Duration::from_millis(n),
            _ => usage_error(&format!("--timeout-ms takes a positive number, not '{s}'")),
        },
    };
    let args = m.free;
    // Check the command line fully before touching the network.
    let cmd = args.first().map(|s| s.to_ascii_lowercase());
    match (cmd.as_deref(), args.len()) {
        (None, _) | (Some("ping"), 1) | (Some("read"), 2) => {}
        (Some("write"), n) if n >= 3 => {}
        (Some("status"), 1) => {}
        (Some("forget-slave"), 2) => {}
        (Some("status"), 2) if args[1] == "--json" => {}
        (Some("bench"), _) => exit(dsm_bench::main(&masters, secret.as_ref(), &args[1..])),
        (Some("write"), _) => usage_error("usage: dsm-client write KEY VALUE..."),
        (Some("read"), _) => usage_error("usage: dsm-client read KEY"),
        (Some("status"), _) => usage_error("usage: dsm-client status [--json]"),
        (Some("ping"), _) => usage_error("usage: dsm-client ping"),
        (Some("forget-slave"), _) => usage_error("usage: dsm-client forget-slave ID"),
        (Some(other), _) => usage_error(&format!("unknown command '{other}'")),
    }
    let mut client = match Client::connect_with_secret(&masters, timeout, secret) {
        Ok(c) => c,
        Err(e) => fail(2, &e),
    };
    match cmd.as_deref() {
        None => run_repl(&mut client),
        Some(_) => one_shot(&mut client, &args),
    }
}

/// Lines from stdin until it ends; a prompt only on a terminal.
fn run_repl(client: &mut Client) {
    let stdin = std::io::stdin();
    let prompt = stdin.is_terminal();
    if let Err(e) = repl::run(client, stdin.lock(), std::io::stdout().lock(), prompt) {
        eprintln!("dsm-client: {e}");
        exit(2);
    }
}

/// One subcommand, already checked by `main`: `args[0]` names it.
fn one_shot(client: &mut Client, args: &[String]) {
    match args[0].to_ascii_lowercase().as_str() {
        "write" => {
            let value = args[2..].join(" ");
            match client.write(args[1].as_bytes(), value.as_bytes()) {
                Ok(written) => println!("{}", dsm_client::written(written)),
                Err(e) => fail(1, &e),
            }
        }
        "forget-slave" => match client.forget_slave(&args[1]) {
            Ok(()) => println!("OK"),
            Err(e) => fail(1, &e),
        },
        "read" => match client.read(args[1].as_bytes()) {
            Ok(Some(v)) => println!("{}", String::from_utf8_lossy(&v)),
            Ok(None) => {
                println!("NOT_FOUND");
                exit(1);
            }
            Err(e) => fail(1, &e),
        },
        "status" => match client.status() {
            Ok(s) if args.len() == 2 => println!("{}", json::status_json(&s)),
            Ok(s) => print!("{}", json::status_text(&s)),
            Err(e) => fail(1, &e),
        },
        "ping" => {
            let start = std::time::Instant::now();
            match client.ping() {
                Ok(()) => println!(
                    "PONG from {} in {} us",
                    client.master(),
                    start.elapsed().as_micros()
                ),
                Err(e) => fail(1, &e),
            }
        }
        _ => unreachable!("checked by main"),
    }
}

/// Report `e` on stderr; transport failures exit 2, answers from the master `code`.
fn fail(code: i32, e: &Error) -> ! {
    eprintln!("ERROR {e}");
    let code = match e {
        Error::Unreachable(_) | Error::Io(_) => 2,
        _ => code,
    };
    exit(code);
}

fn usage_error(msg: &str) -> ! {
    eprintln!("dsm-client: {msg}\nTry 'dsm-client --help'.");
    exit(2);
}

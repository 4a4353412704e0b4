//! dsm-slave command line: parse options, start logging, run the node.

use std::process::exit;

use dsm_net::{addr, log_setup};

const ABOUT: &str = "\
dsm-slave: stores copies of keys for a dsm master.

It connects out to the first master address, registers with HELLO, then keeps
each key's newest version (an older version never replaces a newer one), ACKs
every STORE and answers FETCH. If the connection fails it tries the next
address (a backup master), with backoff from 20 ms to 1 s.

Usage: dsm-slave [options]";

fn main() {
    let mut opts = getopts::Options::new();
    opts.optopt(
        "m",
        "master",
        "master addresses, primary first (default 127.0.0.1:7000)",
        "ADDR[,ADDR...]",
    );
    opts.optopt(
        "",
        "id",
        "this slave's id (default: generated at start)",
        "ID",
    );
    opts.optopt(
        "",
        "master-timeout-ms",
        "take the master for dead after this long without a frame from it (default 1500)",
        "MS",
    );
    opts.optopt(
        "",
        "max-key",
        "largest key accepted, bytes (default 1024)",
        "N",
    );
    opts.optopt(
        "",
        "max-value",
        "largest value accepted, bytes (default 1048576)",
        "N",
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
    let masters = addr::parse_addr_list(&m.opt_str("master").unwrap_or("127.0.0.1:7000".into()))
        .unwrap_or_else(|e| usage_error(&e));
    let max_key = size_opt(&m, "max-key", dsm_wire::DEFAULT_MAX_KEY);
    let max_value = size_opt(&m, "max-value", dsm_wire::DEFAULT_MAX_VALUE);
    let id = m.opt_str("id").unwrap_or_else(dsm_slave::generated_id);
    if id.is_empty() || id.len() > 255 {
        usage_error("--id must be 1 to 255 bytes");
    }
    log_setup::init(level);
    let cfg = dsm_slave::Config {
        masters,
        id,
        max_frame: dsm_wire::max_frame_for(max_key, max_value),
        master_timeout: std::time::Duration::from_millis(
            size_opt(&m, "master-timeout-ms", 1500) as u64
        ),
    };
    if let Err(e) = dsm_slave::run(cfg) {
        eprintln!("dsm-slave: {e}");
        exit(1);
    }
}

fn size_opt(m: &getopts::Matches, name: &str, default: usize) -> usize {
    match m.opt_str(name) {
        None => default,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => usage_error(&format!("--{name} takes a positive number, not '{s}'")),
        },
    }
}

fn usage_error(msg: &str) -> ! {
    eprintln!("dsm-slave: {msg}\nTry 'dsm-slave --help'.");
    exit(2);
}

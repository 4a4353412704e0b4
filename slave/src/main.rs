//! dsm-slave command line: parse options, start logging, run the node.

use std::process::exit;

use std::time::Duration;

use dsm_cli::{log_setup, Cli};

const ABOUT: &str = "\
dsm-slave: stores copies of keys for a dsm master.

It connects out to the first master address, registers with HELLO, then keeps
each key's newest version (an older version never replaces a newer one), ACKs
every STORE and answers FETCH. If the connection fails (a connect that has not
completed after 1 s counts as failed) it tries the next address (a backup
master), with backoff from 20 ms to 1 s.

With --secret-file it proves to the master that it holds the shared secret
(HMAC-SHA256 challenge and response; the secret never crosses the network) and
serves only a master that proves it holds the secret too. A refused slave keeps
retrying and logs why.

Usage: dsm-slave [options]";

fn main() {
    let cli = Cli::new("dsm-slave");
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
        "spin-us",
        &format!(
            "after handling the master's frames, poll this long without sleeping before \
             blocking, so its next frames find the slave awake; trades CPU for fewer \
             wake-ups, 0 turns it off (default {})",
            dsm_slave::SPIN_US
        ),
        "US",
    );
    cli.add_secret_opt(
        &mut opts,
        "shared secret file, the same as the master's --secret-file; none by default",
    );
    cli.add_common_opts(&mut opts, "info");
    let m = cli.parse(&opts, ABOUT, false);
    let level = cli.log_level(&m, log::LevelFilter::Info);
    let masters = cli.addr_list(&m, "master", "127.0.0.1:7000");
    let max_key = cli.positive(&m, "max-key", dsm_wire::DEFAULT_MAX_KEY as u64) as usize;
    let max_value = cli.positive(&m, "max-value", dsm_wire::DEFAULT_MAX_VALUE as u64) as usize;
    let id = m.opt_str("id").unwrap_or_else(dsm_slave::generated_id);
    if id.is_empty() || id.len() > 255 {
        cli.usage_error("--id must be 1 to 255 bytes");
    }
    log_setup::init(level);
    let cfg = dsm_slave::Config {
        masters,
        id,
        boot: dsm_auth::boot_id(),
        max_frame: dsm_wire::max_frame_for(max_key, max_value),
        master_timeout: cli.millis(&m, "master-timeout-ms", Duration::from_millis(1500)),
        secret: cli.secret(&m),
        spin: Duration::from_micros(cli.whole(&m, "spin-us", dsm_slave::SPIN_US)),
    };
    if let Err(e) = dsm_slave::run(cfg) {
        eprintln!("dsm-slave: {e}");
        exit(1);
    }
}

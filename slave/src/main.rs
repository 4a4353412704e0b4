//! dsm-slave command line: parse options, start logging, run the node.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::exit;
use std::time::Duration;

use dsm_cli::{log_setup, Cli};
use dsm_slave::disk::{self, Failpoint, Fsync};
use dsm_slave::memory;
use getopts::Matches;

const ABOUT: &str = "\
dsm-slave: stores copies of keys for a dsm master.

It connects out to the first master address, registers with HELLO, then keeps
each key's newest version (an older version never replaces a newer one), ACKs
every STORE and answers FETCH. If the connection fails (a connect that has not
completed after 1 s counts as failed) it tries the next address (a backup
master), with backoff from 20 ms to 1 s.

With --data-dir it appends every change (STORE, DROP, the master's epoch) to a
log, DIR/slave.log, with a CRC-32C per record; at start it replays the log (a
torn or corrupt tail is cut off, and logged) before it registers, and compacts
it in the background once it is over twice what it holds. A STORE is ACKed
only once written (with --fsync always, once synced); one the disk refuses
(full, or an I/O error) gets ERROR DISK and is not applied, and reads go on.
Without --data-dir it keeps everything in memory only, and says so at start.

--max-memory caps the memory the key table holds (keys, values, and the table
and allocator overhead around them: 57 bytes per key measured with 16-byte keys
and 64-byte values); a STORE past it gets ERROR OUT_OF_MEMORY (the master then
tries another slave), and reads go on. A smaller value for a key held always
fits.

Test hook: a debug build started with DSM_FAILPOINT=compact-midway (or
compact-before-rename, compact-after-rename) aborts at that point of its next
compaction. Release builds ignore it.

With --secret-file it proves to the master that it holds the shared secret
(HMAC-SHA256 challenge and response; the secret never crosses the network) and
serves only a master that proves it holds the secret too. A refused slave keeps
retrying and logs why.

Usage: dsm-slave [options]";

fn main() {
    // Large values' buffers reused, not faulted in afresh (`dsm_net::malloc`).
    dsm_net::malloc::keep_freed_heap();
    let cli = Cli::new("dsm-slave");
    let m = cli.parse(&options(&cli), ABOUT, false);
    let level = cli.log_level(&m, log::LevelFilter::Info);
    let masters = cli.addr_list(&m, "master", "127.0.0.1:7000");
    let max_key = cli.positive(&m, "max-key", dsm_wire::DEFAULT_MAX_KEY as u64) as usize;
    let max_value = cli.positive(&m, "max-value", dsm_wire::DEFAULT_MAX_VALUE as u64) as usize;
    let id = m.opt_str("id").unwrap_or_else(dsm_slave::generated_id);
    if let Some(why) = dsm_wire::check_peer_id(dsm_wire::Role::Slave, &id) {
        cli.usage_error(&format!("--id: {why}"));
    }
    let max_frame = dsm_wire::max_frame_for(max_key, max_value);
    let disk = disk_settings(&cli, &m);
    let max_memory = size(&cli, &m, "max-memory");
    let compact_min = size(&cli, &m, "compact-min-bytes");
    log_setup::init(level);
    let cfg = dsm_slave::Config {
        masters,
        id,
        boot: dsm_auth::boot_id(),
        max_frame,
        limits: dsm_wire::Limits {
            max_key: u32::try_from(max_key).unwrap_or(u32::MAX),
            max_value: u32::try_from(max_value).unwrap_or(u32::MAX),
            masters: 0, // the slave counts `masters`
        },
        master_timeout: cli.millis(&m, "master-timeout-ms", Duration::from_millis(500)),
        secret: cli.secret(&m),
        spin: Duration::from_micros(cli.whole(&m, "spin-us", dsm_slave::SPIN_US)),
        data_dir: m.opt_str("data-dir").map(PathBuf::from),
        disk: disk::Settings {
            compact_min: compact_min.unwrap_or(disk::COMPACT_MIN),
            ..disk
        },
        max_memory: match max_memory {
            Some(cap) => {
                log::info!("--max-memory {}", memory::show(cap));
                cap
            }
            None => default_memory(max_frame, m.opt_present("data-dir")),
        },
        metrics: cli.addr(&m, "metrics"),
    };
    if let Err(e) = dsm_slave::run(cfg) {
        let _ = writeln!(std::io::stderr(), "dsm-slave: {e}");
        exit(1);
    }
}

fn options(cli: &Cli) -> getopts::Options {
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
        &format!(
            "this slave's id, 1 to {} printable bytes without spaces (default: generated at \
             start)",
            dsm_wire::MAX_PEER_ID
        ),
        "ID",
    );
    opts.optopt(
        "",
        "master-timeout-ms",
        "leave a master after this long without a frame from it, and look for another \
         (default 500; never less than the lease the primary gave plus a quarter, since a \
         slave that answered the primary's PING promised it support for that long)",
        "MS",
    );
    opts.optopt(
        "",
        "max-key",
        "largest key accepted, bytes (default 1024); at least the master's, which refuses a slave below its own",
        "N",
    );
    opts.optopt(
        "",
        "max-value",
        "largest value accepted, bytes (default 1048576); at least the master's",
        "N",
    );
    opts.optopt(
        "",
        "spin-us",
        &format!(
            "after handling the master's frames, poll this long without sleeping before \
             blocking, so its next frames find the slave awake; trades CPU for fewer \
             wake-ups, 0 turns it off (default {}; on a host whose CPUs are shared \
             with other work, 50 did better: README, Benchmarks)",
            dsm_slave::SPIN_US
        ),
        "US",
    );
    opts.optopt(
        "",
        "metrics",
        "serve Prometheus /metrics over HTTP on ADDR (default: off; give a loopback address \
         unless the network is trusted: it has no authentication)",
        "ADDR",
    );
    opts.optopt(
        "",
        "data-dir",
        "keep a log of every change in DIR/slave.log (created if missing) and load it at \
         start; without it the slave keeps its data in memory only",
        "DIR",
    );
    opts.optopt(
        "",
        "fsync",
        "with --data-dir, when the log is synced to the disk: 'always' (before a STORE is \
         ACKed; one fdatasync per loop turn covers every STORE of the turn), 'interval' (at \
         most --fsync-interval-ms after a write: a machine crash loses at most about that \
         much, a killed process nothing) or 'never' (the kernel decides, ~30 s) (default \
         interval)",
        "always|interval|never",
    );
    opts.optopt(
        "",
        "fsync-interval-ms",
        "with --fsync interval, the longest a written change stays unsynced (default 1000)",
        "MS",
    );
    opts.optopt(
        "",
        "compact-min-bytes",
        "with --data-dir, compact the log (in the background, a slice per loop turn) once it \
         is this long and over twice the size of what it holds; K, M, G suffixes (default 64M)",
        "BYTES",
    );
    opts.optopt(
        "",
        "max-memory",
        "the most memory the key table may hold: keys, values, and the table around them; a \
         STORE past it gets ERROR OUT_OF_MEMORY. K, M, G, T (or KiB, MiB, GiB, TiB) are powers \
         of 1024. Default: 3/4 of this process's limit (cgroup memory.max or \
         memory.limit_in_bytes, ulimit -v, ulimit -d, the smallest) less 2 frames and 16 MiB \
         for buffers (64 MiB more under ulimit -v with --data-dir: the sync thread's malloc \
         arena), or half the machine's MemTotal less that when nothing limits it; the value \
         taken is logged at start",
        "BYTES",
    );
    cli.add_secret_opt(
        &mut opts,
        "shared secret file, the same as the master's --secret-file; none by default",
    );
    cli.add_common_opts(&mut opts, "info");
    opts
}

/// `--fsync`, `--fsync-interval-ms`, and the test hook `DSM_FAILPOINT`.
fn disk_settings(cli: &Cli, m: &Matches) -> disk::Settings {
    let interval = cli.millis(m, "fsync-interval-ms", Duration::from_millis(1000));
    let fsync = match m.opt_str("fsync").as_deref() {
        None | Some("interval") => Fsync::Interval(interval),
        Some("always") => Fsync::Always,
        Some("never") => Fsync::Never,
        Some(other) => cli.usage_error(&format!(
            "--fsync takes always, interval or never, not '{other}'"
        )),
    };
    disk::Settings {
        fsync,
        compact_min: disk::COMPACT_MIN,
        compact_step: disk::COMPACT_STEP,
        failpoint: failpoint(),
    }
}

/// A test hook: `DSM_FAILPOINT=compact-midway` (or `compact-before-rename`,
/// `compact-after-rename`) makes a debug build abort at that point of a compaction, so tests
/// can crash a slave there. Release builds ignore it.
fn failpoint() -> Option<Failpoint> {
    let name = std::env::var("DSM_FAILPOINT").ok()?;
    if !cfg!(debug_assertions) {
        let _ = writeln!(
            std::io::stderr(),
            "dsm-slave: DSM_FAILPOINT is honoured by debug builds only; ignored"
        );
        return None;
    }
    match Failpoint::parse(&name) {
        Some(fp) => Some(fp),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "dsm-slave: unknown DSM_FAILPOINT '{name}'"
            );
            exit(2);
        }
    }
}

fn size(cli: &Cli, m: &Matches, name: &str) -> Option<u64> {
    let s = m.opt_str(name)?;
    match memory::parse_size(&s) {
        Ok(n) if n > 0 => Some(n),
        Ok(_) => cli.usage_error(&format!("--{name} must be more than 0")),
        Err(e) => cli.usage_error(&format!("--{name}: {e}")),
    }
}

/// The default `--max-memory`, said in the log with where it comes from.
fn default_memory(max_frame: usize, data_dir: bool) -> u64 {
    // What the cap does not count: the connection's read and write buffers (a frame each),
    // the log's batch and compaction buffers, the program itself.
    let mut reserve = 2 * max_frame as u64 + (16 << 20);
    match memory::machine_budget() {
        Some(budget) => {
            if budget.address_space && data_dir {
                // The syncer thread: glibc gives it a malloc arena, 64 MiB of address space.
                reserve += 64 << 20;
            }
            let cap = memory::default_cap(&budget, reserve);
            log::info!(
                "--max-memory {} by default: {} of {} ({}), less {} for buffers",
                memory::show(cap),
                if budget.whole_machine { "half" } else { "3/4" },
                memory::show(budget.bytes),
                budget.source,
                memory::show(reserve)
            );
            cap
        }
        None => {
            log::warn!("cannot tell how much memory this machine has: no --max-memory cap");
            u64::MAX
        }
    }
}

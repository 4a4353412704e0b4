//! dsm-master command line: parse options, start logging, run the server.

use std::io::Write as _;
use std::process::exit;
use std::time::Duration;

use dsm_cli::{log_setup, Cli};
use dsm_master::Config;
use getopts::Matches;

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

With --secret-file every slave and backup must prove it holds the same secret
before it may register (HMAC-SHA256 challenge and response; the secret itself
never crosses the network), and this master proves it holds it too, also on its
own link to --backup-of. With --require-client-auth clients must prove it as
well. Without a secret anyone who can reach the ports can join, read, write and
fence: keep both addresses on loopback (the default). Nothing is encrypted.

Once listening it prints 'dsm-master ready: listen=ADDR heartbeat=ADDR' on
stdout (port 0 picks a free port).

Usage: dsm-master [options]";

fn main() {
    // Large values' buffers reused, not faulted in afresh (`dsm_net::malloc`).
    dsm_net::malloc::keep_freed_heap();
    let cli = Cli::new("dsm-master");
    let m = cli.parse(&options(&cli), ABOUT, false);
    let level = cli.log_level(&m, log::LevelFilter::Info);
    let cfg = config(&cli, &m);
    if cfg.replicas > 255 {
        cli.usage_error("--replicas must be between 1 and 255");
    }
    if cfg.require_client_auth && !m.opt_present("secret-file") {
        cli.usage_error("--require-client-auth needs --secret-file");
    }
    log_setup::init(level);
    let persisted = match &cfg.data_dir {
        Some(dir) => match dsm_master::disk::MasterState::load(dir) {
            Ok(state) => state,
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "dsm-master: cannot read the state in {}: {e}",
                    dir.display()
                );
                exit(1);
            }
        },
        None => {
            log::warn!(
                "no --data-dir: this master keeps the roster of slaves in memory only; after a \
                 restart it cannot tell a new cluster from one whose slaves are not back yet"
            );
            None
        }
    };
    let cfg = Config {
        secret: cli.secret(&m),
        persisted,
        ..cfg
    };
    let exposed = cfg.exposure_warnings();
    if !exposed.is_empty() && !cfg.insecure {
        for w in &exposed {
            let _ = writeln!(std::io::stderr(), "dsm-master: refusing to start: {w}");
        }
        exit(2);
    }
    for w in exposed {
        log::warn!("{w} (--insecure)");
    }
    if let Err(e) = dsm_master::run(cfg) {
        let _ = writeln!(std::io::stderr(), "dsm-master: {e}");
        exit(1);
    }
}

/// Every option of the command line, with its help line.
fn options(cli: &Cli) -> getopts::Options {
    let mut opts = getopts::Options::new();
    add_cluster_opts(&mut opts);
    add_connection_opts(&mut opts);
    add_backup_opts(&mut opts);
    add_latency_opts(&mut opts);
    cli.add_secret_opt(
        &mut opts,
        "shared secret file: slaves and backups must prove they hold it, and this master proves \
         it to them (also as a backup, to its primary); none by default",
    );
    opts.optflag(
        "",
        "insecure",
        "serve on a non-loopback --listen or --heartbeat without --secret-file (refused otherwise)",
    );
    opts.optflag(
        "",
        "require-client-auth",
        "clients must prove the secret too; others get ERROR UNAUTHORIZED to any request, \
         PING included, and are closed (needs --secret-file)",
    );
    cli.add_common_opts(&mut opts, "info");
    opts
}

/// Addresses, replication, size limits, and the deadlines of slaves and requests.
fn add_cluster_opts(opts: &mut getopts::Options) {
    opts.optopt(
        "l",
        "listen",
        "client and slave address (default 127.0.0.1:7000: loopback only)",
        "ADDR",
    );
    opts.optopt(
        "",
        "heartbeat",
        "heartbeat address for a backup master (default 127.0.0.1:7001: loopback only)",
        "ADDR",
    );
    opts.optopt(
        "r",
        "replicas",
        "copies of each write, R: 1 to 255 (default 2)",
        "R",
    );
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
        "drop a slave that has not ACKed a STORE, nor said anything else, for this long (default 200)",
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
        "read-cache-mb",
        &format!(
            "the primary keeps the committed value of keys whose values are at most {} bytes, \
             up to this many MiB, and answers their READs without asking a slave; 0: no read \
             cache at all, every READ goes to a slave (default {})",
            dsm_master::cache::MAX_VALUE,
            dsm_master::cache::READ_CACHE_MB
        ),
        "MB",
    );
    opts.optopt(
        "",
        "read-cache-large-mb",
        &format!(
            "beside that, the values over {} bytes that WRITEs carried, kept without a copy, \
             up to this many MiB (one value at most an eighth of it), answered from there; 0: \
             none (default {})",
            dsm_master::cache::MAX_VALUE,
            dsm_master::cache::READ_CACHE_LARGE_MB
        ),
        "MB",
    );
    opts.optopt(
        "",
        "ping-interval-ms",
        "PING idle slaves this often; 3 unanswered drop it (default 500)",
        "MS",
    );
    opts.optopt(
        "",
        "repair-after-ms",
        &format!(
            "copy what a slave held to other slaves once it has been out of reach this long; \
             until then its copies still count (default {})",
            dsm_master::config::REPAIR_AFTER_MS
        ),
        "MS",
    );
    opts.optopt(
        "",
        "slave-lost-after-ms",
        &format!(
            "give a slave up for good once it has been out of reach this long: its copies no \
             longer count, and keys only it held read NOT_FOUND (default {}, an hour; \
             'dsm-client forget-slave ID' does it at once)",
            dsm_master::config::SLAVE_LOST_AFTER_MS
        ),
        "MS",
    );
    opts.optopt(
        "",
        "discover-ms",
        &format!(
            "started without a roster of slaves (no --data-dir, or an empty one), answer \
             UNAVAILABLE this long while registering slaves report what they hold, so that \
             keys of a cluster that existed before are found (default {}; 0 for a cluster \
             known to be new)",
            dsm_master::config::DISCOVER_MS
        ),
        "MS",
    );
    opts.optopt(
        "",
        "metrics",
        "serve Prometheus /metrics and a status page (/) over HTTP on ADDR (default: off; \
         give a loopback address unless the network is trusted: it has no authentication)",
        "ADDR",
    );
    opts.optopt(
        "",
        "data-dir",
        "keep the epoch and the roster of slaves here, so that after a restart this master \
         waits for its slaves to report what they hold before it answers (default: memory only)",
        "DIR",
    );
}

/// Limits on each connection: time to HELLO, how many, unsent bytes.
fn add_connection_opts(opts: &mut getopts::Options) {
    opts.optopt(
        "",
        "hello-timeout-ms",
        "close connections that have not finished HELLO (and authentication) by then (default 5000)",
        "MS",
    );
    opts.optopt(
        "",
        "max-conns",
        "clients admitted at once; over it a new client gets ERROR BUSY and is closed \
         (default 10000)",
        "N",
    );
    opts.optopt(
        "",
        "peer-slots",
        &format!(
            "connections kept beyond --max-conns for slaves, backups and connections still in \
             their HELLO (default {})",
            dsm_master::config::PEER_SLOTS
        ),
        "N",
    );
    opts.optopt(
        "",
        "max-client-memory",
        &format!(
            "a client's share of buffers: replies queued for it plus what its requests in flight \
             may bring back; over it, its requests are not read until it drains (default {})",
            dsm_master::config::MAX_CLIENT_MEMORY
        ),
        "BYTES",
    );
    opts.optopt(
        "",
        "max-buffer-memory",
        &format!(
            "the same for all connections together (queued bytes, requests in flight, frames \
             begun); over it only clients with nothing in flight are read, one request at a \
             time, while the total stays within two of the largest frames more (default {})",
            dsm_master::config::MAX_BUFFER_MEMORY
        ),
        "BYTES",
    );
    opts.optopt(
        "",
        "stalled-client-ms",
        &format!(
            "while --max-buffer-memory is spent, disconnect a client whose unsent replies have \
             not moved for this long, or that has sent nothing more of a frame it began \
             (default {})",
            dsm_master::config::STALLED_CLIENT_MS
        ),
        "MS",
    );
    opts.optopt(
        "",
        "max-write-buffer",
        "disconnect a peer with more unsent reply bytes (default 67108864)",
        "BYTES",
    );
}

/// Running as a backup, and taking over.
fn add_backup_opts(opts: &mut getopts::Options) {
    opts.optopt(
        "",
        "backup-of",
        "run as the backup of the primary whose heartbeat socket is ADDR",
        "ADDR",
    );
    opts.optopt(
        "",
        "peers",
        "the other masters of the cluster, by heartbeat address; with them this master starts \
         as a standby and serves only once a majority of the voters elects it",
        "ADDR[,ADDR...]",
    );
    opts.optopt(
        "",
        "lease-ms",
        &format!(
            "a voter (slave or standby) that answers the primary's PING supports no other master \
             for this long; the primary serves only while a majority's promises hold (default {})",
            dsm_master::config::LEASE_MS
        ),
        "MS",
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
        "after a takeover, writes short of slaves wait this long for known slaves to come back (default 3000)",
        "MS",
    );
}

/// Trading CPU for fewer wake-ups and fewer writes.
fn add_latency_opts(opts: &mut getopts::Options) {
    opts.optopt(
        "",
        "spin-us",
        &format!(
            "while requests wait on slaves, poll this long without sleeping before blocking; \
             trades CPU for fewer wake-ups (default {})",
            dsm_master::config::SPIN_US
        ),
        "US",
    );
    opts.optopt(
        "",
        "client-spin-us",
        &format!(
            "after a client's request, poll this long without sleeping before blocking, so \
             its next request finds the master awake; 0 blocks at once (default {})",
            dsm_master::config::CLIENT_SPIN_US
        ),
        "US",
    );
    opts.optopt(
        "",
        "coalesce-us",
        &format!(
            "while the master is busy (or spinning for slave answers, --spin-us), hold \
             replies to a client that is owed more replies for at most this long, to write \
             them together; 0 writes every loop turn (default {})",
            dsm_master::config::COALESCE_US
        ),
        "US",
    );
}

/// The configuration the options ask for; the secret is loaded later, once logging is up.
fn config(cli: &Cli, m: &Matches) -> Config {
    let d = Config::default();
    Config {
        listen: cli.addr(m, "listen").unwrap_or(d.listen),
        heartbeat: cli.addr(m, "heartbeat").unwrap_or(d.heartbeat),
        replicas: cli.positive(m, "replicas", d.replicas as u64) as usize,
        max_key: cli.positive(m, "max-key", d.max_key as u64) as usize,
        max_value: cli.positive(m, "max-value", d.max_value as u64) as usize,
        ack_timeout: cli.millis(m, "ack-timeout-ms", d.ack_timeout),
        request_timeout: cli.millis(m, "request-timeout-ms", d.request_timeout),
        read_retry: cli.millis(m, "read-retry-ms", d.read_retry),
        ping_interval: cli.millis(m, "ping-interval-ms", d.ping_interval),
        hello_timeout: cli.millis(m, "hello-timeout-ms", d.hello_timeout),
        max_conns: cli.positive(m, "max-conns", d.max_conns as u64) as usize,
        max_write_buffer: cli.positive(m, "max-write-buffer", d.max_write_buffer as u64) as usize,
        peer_slots: cli.whole(m, "peer-slots", d.peer_slots as u64) as usize,
        max_client_memory: cli.positive(m, "max-client-memory", d.max_client_memory as u64)
            as usize,
        max_buffer_memory: cli.positive(m, "max-buffer-memory", d.max_buffer_memory as u64)
            as usize,
        stalled_client: cli.millis(m, "stalled-client-ms", d.stalled_client),
        insecure: m.opt_present("insecure"),
        backup_of: cli.addr(m, "backup-of"),
        peers: match m.opt_present("peers") {
            true => cli.addr_list(m, "peers", ""),
            false => Vec::new(),
        },
        lease: cli.millis(m, "lease-ms", d.lease),
        heartbeat_interval: cli.millis(m, "heartbeat-interval-ms", d.heartbeat_interval),
        heartbeat_misses: cli.at_least(m, "heartbeat-misses", 3, d.heartbeat_misses as u64) as u32,
        takeover_grace: cli.millis(m, "takeover-grace-ms", d.takeover_grace),
        repair_after: Duration::from_millis(cli.whole(
            m,
            "repair-after-ms",
            d.repair_after.as_millis() as u64,
        )),
        slave_lost_after: cli.millis(m, "slave-lost-after-ms", d.slave_lost_after),
        discover: Duration::from_millis(cli.whole(m, "discover-ms", d.discover.as_millis() as u64)),
        data_dir: m.opt_str("data-dir").map(std::path::PathBuf::from),
        persisted: None,
        spin: Duration::from_micros(cli.whole(m, "spin-us", d.spin.as_micros() as u64)),
        client_spin: Duration::from_micros(cli.whole(
            m,
            "client-spin-us",
            d.client_spin.as_micros() as u64,
        )),
        coalesce: Duration::from_micros(cli.whole(m, "coalesce-us", d.coalesce.as_micros() as u64)),
        secret: None,
        require_client_auth: m.opt_present("require-client-auth"),
        metrics: cli.addr(m, "metrics"),
        read_cache: (cli.whole(m, "read-cache-mb", (d.read_cache >> 20) as u64) as usize)
            .saturating_mul(1 << 20),
        read_cache_large: (cli.whole(m, "read-cache-large-mb", (d.read_cache_large >> 20) as u64)
            as usize)
            .saturating_mul(1 << 20),
    }
}

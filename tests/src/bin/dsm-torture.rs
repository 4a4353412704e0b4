//! dsm-torture: the long torture run (`make torture`), or the checker alone on a history file.

use std::path::PathBuf;
use std::process::exit;
use std::time::Duration;

use dsm_cli::Cli;
use dsm_tests::torture::history::{parse_history, Kind};
use dsm_tests::torture::nemesis::FaultMix;
use dsm_tests::torture::workload::ChangeMix;
use dsm_tests::torture::{checker, netns, report, rng, run};
use getopts::Matches;

const ABOUT: &str = "\
dsm-torture: start a cluster (primary, backup, slaves, R=2), run concurrent clients doing
random READs, WRITEs of unique values, DELETEs, compare-and-sets and INCRs on a few keys while
a seeded nemesis kills and freezes slaves and masters, then check that the history is
linearizable per key and that every acknowledged change survived. Exit status 0: PASS; 1: FAIL; 2: usage error.

Usage:
  dsm-torture [options]                  a run (the binaries are taken from this program's
                                         directory, or $DSM_BIN_DIR)
  dsm-torture --check FILE [options]     only check a history written by --history";

fn main() {
    let cli = Cli::new("dsm-torture");
    let m = cli.parse(&options(), ABOUT, false);
    let max_steps = cli.positive(&m, "max-steps", checker::DEFAULT_MAX_STEPS);
    if let Some(file) = m.opt_str("check") {
        let final_process = m.opt_str("final-process").map(|s| {
            s.parse()
                .unwrap_or_else(|_| cli.usage_error("--final-process takes a number"))
        });
        exit(check_file(&PathBuf::from(file), final_process, max_steps));
    }
    let r = run::run(config(&cli, &m, max_steps));
    print!("{}", report::summary(&r));
    if let Some(path) = &r.cfg.history {
        println!("history: {} ({} operations)", path.display(), r.ops.len());
    }
    exit(if r.passed() { 0 } else { 1 });
}

fn options() -> getopts::Options {
    let mut opts = getopts::Options::new();
    opts.optopt("", "duration-s", "seconds of faults (default 60)", "S");
    opts.optopt(
        "",
        "seed",
        "seed of the whole schedule (default: from the clock)",
        "N",
    );
    opts.optopt("", "clients", "concurrent clients (default 5)", "N");
    opts.optopt("", "keys", "keys the clients share (default 8)", "N");
    opts.optopt("", "slaves", "slaves, at least 3 (default 5)", "N");
    opts.optopt(
        "",
        "read-percent",
        "share of READs, 0-100 (default 50)",
        "P",
    );
    opts.optopt(
        "",
        "large-percent",
        "share of WRITEs and CASes whose value is 80 KiB (kept and answered by the primary's \
         read cache from the buffer it came in), 0-100 (default 10)",
        "P",
    );
    opts.optopt(
        "",
        "changes",
        "weights of the operations that are not READs (default write:4,delete:2,cas:3,incr:3; write:1 for WRITEs only)",
        "KIND:W,...",
    );
    opts.optopt(
        "",
        "client-timeout-ms",
        "each client call's deadline (default 3000)",
        "MS",
    );
    opts.optopt(
        "",
        "think-ms",
        "each client pauses 0 to MS ms between operations (default 2; 0: none)",
        "MS",
    );
    opts.optopt(
        "",
        "faults",
        "fault kinds and weights (default kill-slave:3,stop-slave:3,stop-primary:2,kill-primary:2,partition:2,stop-slave-repeatedly:2,restart-slave:3,kill-all:1,stop-backup:2,isolate-backup:2,cut-primary:2,isolate-slave:2; partition, isolate-backup, cut-primary and isolate-slave only with network namespaces, restart-slave and kill-all only with --slave-disk other than off; kill-slave removes the slave's data dir)",
        "KIND[:W],...",
    );
    opts.optopt(
        "",
        "history",
        "write the history here as JSON lines",
        "FILE",
    );
    opts.optopt(
        "",
        "check",
        "check this history file instead of running",
        "FILE",
    );
    opts.optopt(
        "",
        "final-process",
        "with --check: the process whose reads are the final ones (default: the highest, if it only reads)",
        "N",
    );
    opts.optopt(
        "",
        "max-steps",
        "search steps per key before giving up (default 20000000)",
        "N",
    );
    opts.optopt(
        "",
        "netns",
        "auto|on|off: every node in a network namespace of its own, and the faults that cut links: the primary from the backup or from the slaves, the backup or a slave from every other node (default auto: when root and `ip netns` allow)",
        "WHEN",
    );
    opts.optopt(
        "",
        "slave-disk",
        "always|interval|never: every node keeps a data dir, the slaves with this --fsync; off: slaves in memory only (default interval)",
        "MODE",
    );
    opts.optflag("q", "quiet", "print only the summary");
    opts.optflag("h", "help", "print this help");
    opts.optflag("V", "version", "print the version");
    opts
}

/// The run the options ask for (all checked: a bad value ends the program with 2).
fn config(cli: &Cli, m: &Matches, max_steps: u64) -> run::Config {
    let seed = match m.opt_str("seed") {
        Some(s) => s
            .parse()
            .unwrap_or_else(|_| cli.usage_error(&format!("--seed takes a number, not '{s}'"))),
        None => rng::clock_seed(),
    };
    let read_percent = match m.opt_str("read-percent").map(|s| s.parse::<u64>()) {
        None => 50,
        Some(Ok(p)) if p <= 100 => p,
        Some(_) => cli.usage_error("--read-percent takes 0 to 100"),
    };
    let large_percent = match m.opt_str("large-percent").map(|s| s.parse::<u64>()) {
        None => 10,
        Some(Ok(p)) if p <= 100 => p,
        Some(_) => cli.usage_error("--large-percent takes 0 to 100"),
    };
    let mut cfg = run::Config {
        seed,
        large_percent,
        duration: Duration::from_secs(cli.positive(m, "duration-s", 60)),
        clients: cli.positive(m, "clients", 5) as usize,
        keys: cli.positive(m, "keys", 8) as usize,
        slaves: cli.positive(m, "slaves", 5) as usize,
        replicas: 2,
        read_percent,
        client_timeout: cli.millis(m, "client-timeout-ms", Duration::from_secs(3)),
        think_ms: match m.opt_str("think-ms").map(|s| s.parse::<u64>()) {
            None => 2,
            Some(Ok(ms)) => ms,
            Some(Err(_)) => cli.usage_error("--think-ms takes a whole number of milliseconds"),
        },
        history: m.opt_str("history").map(PathBuf::from),
        max_steps,
        echo: !m.opt_present("quiet"),
        ..run::Config::default()
    };
    cfg.netns = match m.opt_str("netns").as_deref().unwrap_or("auto") {
        "off" => false,
        "on" => true,
        "auto" => match netns::available() {
            Ok(()) => true,
            Err(e) => {
                println!("network namespaces unavailable ({e}): skipping the separate hosts and the faults that cut links");
                false
            }
        },
        other => cli.usage_error(&format!("--netns takes auto, on or off, not '{other}'")),
    };
    cfg.slave_fsync = match m.opt_str("slave-disk").as_deref().unwrap_or("interval") {
        "off" => None,
        mode @ ("always" | "interval" | "never") => Some(mode.to_string()),
        other => cli.usage_error(&format!(
            "--slave-disk takes always, interval, never or off, not '{other}'"
        )),
    };
    if let Some(spec) = m.opt_str("changes") {
        cfg.changes = ChangeMix::parse(&spec).unwrap_or_else(|e| cli.usage_error(&e));
    }
    if let Some(spec) = m.opt_str("faults") {
        cfg.mix.weights = FaultMix::parse_weights(&spec).unwrap_or_else(|e| cli.usage_error(&e));
    }
    if cfg.slaves < 3 {
        cli.usage_error("--slaves must be at least 3: one may be down while R=2 copies remain");
    }
    cfg
}

/// Check a history file; the exit status.
fn check_file(path: &PathBuf, final_process: Option<u32>, max_steps: u64) -> i32 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dsm-torture: cannot read {}: {e}", path.display());
            return 2;
        }
    };
    let ops = match parse_history(&text) {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("dsm-torture: {}: {e}", path.display());
            return 2;
        }
    };
    let final_process = final_process.or_else(|| {
        let last = ops.iter().map(|o| o.process).max()?;
        ops.iter()
            .filter(|o| o.process == last)
            .all(|o| o.kind == Kind::Read)
            .then_some(last)
    });
    let started = std::time::Instant::now();
    let v = checker::check(&ops, final_process, max_steps);
    println!(
        "{}: {} operations, {} keys; {} linearizable, {} not, {} undecided; {} lost acknowledged changes{} ({:.2} s)",
        path.display(),
        ops.len(),
        v.keys.len(),
        v.linearizable_keys(),
        v.violations().len(),
        v.gave_up().len(),
        v.lost.len(),
        match final_process {
            Some(p) => format!(" (final reads: process {p})"),
            None => " (no final reads named: not checked)".into(),
        },
        started.elapsed().as_secs_f64()
    );
    for line in &v.lost {
        println!("  lost: {line}");
    }
    if let Some(&(key, n, checker::KeyVerdict::Violation { why, witness })) = v.violations().first()
    {
        println!("smallest non-linearizable key: {key} ({n} ops): {why}");
        print!("{}", report::witness_table(witness));
    }
    println!("verdict: {}", if v.passed() { "PASS" } else { "FAIL" });
    if v.passed() {
        0
    } else {
        1
    }
}

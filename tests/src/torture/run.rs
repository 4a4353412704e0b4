//! One torture run from start to verdict: start the cluster, run the clients while the
//! nemesis injects faults, heal, read every key one last time, write the history and check it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dsm_client::Client;

use crate::torture::checker::{self, Verdict};
use crate::torture::history::{Op, Outcome};
use crate::torture::nemesis::{FaultLog, FaultMix, Nemesis};
use crate::torture::netns::Testbed;
use crate::torture::rng::Rng;
use crate::torture::workload::{key_name, recorded_read, ChangeMix, Clock, Tally, Worker};
use crate::{Cluster, ClusterOpts};

#[derive(Debug, Clone)]
pub struct Config {
    /// Everything random (keys, operations, faults and their timing) follows from it.
    pub seed: u64,
    /// How long faults are injected; healing and the final reads come after.
    pub duration: Duration,
    pub clients: usize,
    pub keys: usize,
    pub slaves: usize,
    pub replicas: usize,
    pub read_percent: u64,
    /// What the operations that are not READs are (WRITE, DELETE, CAS, INCR).
    pub changes: ChangeMix,
    /// Each client call's deadline.
    pub client_timeout: Duration,
    /// Each client pauses 0 to this many milliseconds between operations.
    pub think_ms: u64,
    /// Percent of WRITEs and CASes with a large value (`workload::LARGE_VALUE` bytes).
    pub large_percent: u64,
    pub mix: FaultMix,
    /// Further flags for both masters.
    pub master_args: Vec<String>,
    /// Where the history goes (JSON lines); none: not written.
    pub history: Option<PathBuf>,
    pub max_steps: u64,
    /// Print faults and progress as they happen.
    pub echo: bool,
    /// Run every node in a network namespace of its own and add the faults that cut links (the
    /// primary from the backup or from the slaves, the backup or a slave from every other
    /// node; needs root and `ip netns`: see `netns::available`).
    pub netns: bool,
    /// Every node keeps its state in a data dir, the slaves with this `--fsync` (`always`,
    /// `interval`, `never`); this adds [`Fault::RestartSlave`] and [`Fault::KillAll`] to the
    /// faults, and [`Fault::KillSlave`] removes the killed slave's data dir. `None`: slaves
    /// in memory only, masters without data dirs.
    ///
    /// [`Fault::RestartSlave`]: crate::torture::nemesis::Fault::RestartSlave
    /// [`Fault::KillAll`]: crate::torture::nemesis::Fault::KillAll
    /// [`Fault::KillSlave`]: crate::torture::nemesis::Fault::KillSlave
    pub slave_fsync: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            seed: 1,
            duration: Duration::from_secs(20),
            clients: 4,
            keys: 8,
            slaves: 4,
            replicas: 2,
            read_percent: 50,
            changes: ChangeMix::default(),
            client_timeout: Duration::from_secs(3),
            think_ms: 0,
            large_percent: 10,
            mix: FaultMix::default(),
            master_args: Vec::new(),
            history: None,
            max_steps: checker::DEFAULT_MAX_STEPS,
            echo: true,
            netns: false,
            // The default `--fsync`: README promises that a kill -9 loses nothing with it (the
            // log is written before each ACK; the page cache outlives the process).
            slave_fsync: Some("interval".into()),
        }
    }
}

/// What a run did and what the checker decided.
#[derive(Debug)]
pub struct Report {
    pub cfg: Config,
    pub elapsed: Duration,
    /// Every operation, the final reads (by process `final_process`) included.
    pub ops: Vec<Op>,
    pub final_process: u32,
    pub faults: FaultLog,
    /// The nemesis could not inject a fault or the cluster did not heal.
    pub nemesis_error: Option<String>,
    pub verdict: Verdict,
    pub check_time: Duration,
    /// How often a master logged that every holder of a key was dead (and answered a READ
    /// NOT_FOUND, as designed): the nemesis never causes that, so a count here explains
    /// NOT_FOUND violations by something outside the schedule.
    pub holders_dead: usize,
}

impl Report {
    /// Linearizable, nothing lost, and the cluster healed after every fault.
    pub fn passed(&self) -> bool {
        self.nemesis_error.is_none() && self.verdict.passed()
    }
}

pub fn run(cfg: Config) -> Report {
    println!(
        "dsm-torture: seed {} (replay with --seed {}), {} s of faults, {} clients, {} keys, {} slaves, R={}, {}",
        cfg.seed,
        cfg.seed,
        cfg.duration.as_secs_f64(),
        cfg.clients,
        cfg.keys,
        cfg.slaves,
        cfg.replicas,
        slave_disks(&cfg)
    );
    // Declared before the cluster, so dropped after it: processes die before their namespaces.
    let mut testbed = if cfg.netns { testbed(cfg.slaves) } else { None };
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: cfg.slaves,
        replicas: cfg.replicas,
        master_args: cfg.master_args.clone(),
        backup: true,
        hosts: testbed.as_ref().map(|t| t.hosts.clone()),
        data: cfg.slave_fsync.is_some(),
        slave_args: match &cfg.slave_fsync {
            Some(mode) => vec!["--fsync".into(), mode.clone()],
            None => Vec::new(),
        },
        ..ClusterOpts::default()
    });
    let masters = cluster.masters();
    let clock = Clock::start();
    let (mut ops, faults, nemesis_error) =
        clients_under_faults(&cfg, &mut cluster, &mut testbed, &masters, clock);
    let final_process = cfg.clients as u32;
    ops.extend(final_reads(&masters, &cfg, final_process, clock));
    ops.sort_by_key(|o| o.complete_ns);
    if let Some(path) = &cfg.history {
        write_history(path, &ops);
    }
    let checked = Instant::now();
    let verdict = checker::check(&ops, Some(final_process), cfg.max_steps);
    let holders_dead = count_in_logs(cluster.log_dir(), HOLDERS_DEAD);
    let report = Report {
        holders_dead,
        elapsed: clock.elapsed(),
        ops,
        final_process,
        faults,
        nemesis_error,
        verdict,
        check_time: checked.elapsed(),
        cfg,
    };
    if !report.passed() {
        cluster.keep_logs();
    }
    report
}

/// How the slaves keep their data, for people.
pub fn slave_disks(cfg: &Config) -> String {
    match &cfg.slave_fsync {
        Some(mode) => format!("slaves on disk (--fsync {mode})"),
        None => "slaves in memory only".into(),
    }
}

/// A network namespace for every node, or `None` (said on stdout) where they cannot be made.
fn testbed(slaves: usize) -> Option<Testbed> {
    match Testbed::create(slaves) {
        Ok(t) => {
            let m = &t.hosts.masters;
            println!(
                "network namespaces: primary {} in {}, backup {} in {}, {} slaves on their own",
                m[0].ip, m[0].netns, m[1].ip, m[1].netns, slaves
            );
            Some(t)
        }
        Err(e) => {
            println!("network namespaces unavailable ({e}): running on loopback, no partitions");
            None
        }
    }
}

/// The clients' operations while the nemesis injects faults for `cfg.duration`, then heals the
/// cluster; with the faults it injected and, if it could not go on, why.
fn clients_under_faults(
    cfg: &Config,
    cluster: &mut Cluster,
    testbed: &mut Option<Testbed>,
    masters: &[SocketAddr],
    clock: Clock,
) -> (Vec<Op>, FaultLog, Option<String>) {
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..cfg.clients)
            .map(|p| {
                let w = Worker {
                    process: p as u32,
                    masters: masters.to_vec(),
                    keys: cfg.keys,
                    read_percent: cfg.read_percent,
                    changes: cfg.changes,
                    timeout: cfg.client_timeout,
                    think_ms: cfg.think_ms,
                    large_percent: cfg.large_percent,
                };
                let rng = Rng::stream(cfg.seed, p as u64 + 1);
                let (stop, tally) = (&stop, &tally);
                s.spawn(move || w.run(rng, clock, stop, tally))
            })
            .collect();
        if cfg.echo {
            let (stop, tally) = (&stop, &tally);
            s.spawn(move || progress(clock, stop, tally));
        }
        let rng = Rng::stream(cfg.seed, 0);
        let mut nemesis = Nemesis::new(cluster, cfg.mix.clone(), rng, clock, cfg.echo);
        if let Some(t) = testbed.as_mut() {
            nemesis = nemesis.with_testbed(t);
        }
        let never = AtomicBool::new(false);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            nemesis.run(cfg.duration, &never)?;
            nemesis.note("healing everything".into());
            nemesis.heal_all()?;
            nemesis.note("cluster whole; stopping the clients".into());
            Ok::<(), String>(())
        }));
        let nemesis_error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(panic) => Some(panic_text(&panic)),
        };
        let faults = nemesis.log.clone();
        stop.store(true, Ordering::Relaxed);
        let ops = workers
            .into_iter()
            .flat_map(|h| h.join().expect("a client thread panicked"))
            .collect();
        (ops, faults, nemesis_error)
    })
}

/// One successful READ of every key (retried until then, every attempt recorded).
fn final_reads(masters: &[SocketAddr], cfg: &Config, process: u32, clock: Clock) -> Vec<Op> {
    const DEADLINE: Duration = Duration::from_secs(30);
    let mut ops = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut client = None;
    for k in 0..cfg.keys {
        let key = key_name(k);
        while Instant::now() < deadline {
            let c = match client.as_mut() {
                Some(c) => c,
                None => match Client::connect_with_timeout(masters, cfg.client_timeout) {
                    Ok(c) => client.insert(c),
                    Err(_) => continue,
                },
            };
            let op = recorded_read(c, process, &key, clock);
            let done = op.outcome == Outcome::Ok;
            ops.push(op);
            if done {
                break;
            }
        }
    }
    ops
}

fn write_history(path: &PathBuf, ops: &[Op]) {
    let file = File::create(path)
        .unwrap_or_else(|e| panic!("cannot create the history file {}: {e}", path.display()));
    let mut out = BufWriter::new(file);
    for op in ops {
        writeln!(out, "{}", op.to_json())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    out.flush()
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// What a master logs when it answers NOT_FOUND because every copy of the key is lost
/// (`master/src/ops/read.rs`; a test below keeps the two in step).
const HOLDERS_DEAD: &str = "every copy of a key is lost";

/// Lines containing `needle` in the masters' logs (`master.log`, `backup.log`) under `dir`.
fn count_in_logs(dir: &std::path::Path, needle: &str) -> usize {
    ["master.log", "backup.log"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .map(|text| text.lines().filter(|l| l.contains(needle)).count())
        .sum()
}

/// A progress line every 5 s until `stop`.
fn progress(clock: Clock, stop: &AtomicBool, tally: &Tally) {
    let mut next = Duration::from_secs(5);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if clock.elapsed() >= next {
            next += Duration::from_secs(5);
            println!(
                "[{:9.3}s] progress: {} ops (ok {}, fail {}, unknown {})",
                clock.elapsed().as_secs_f64(),
                tally.total(),
                tally.ok.load(Ordering::Relaxed),
                tally.fail.load(Ordering::Relaxed),
                tally.unknown.load(Ordering::Relaxed)
            );
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into());
    format!("the nemesis failed: {text}")
}

#[cfg(test)]
mod tests {
    /// The master's log line for a NOT_FOUND with every copy lost is what the run counts:
    /// renamed once (fe12536) without the run noticing, so the count said 0 whatever happened.
    #[test]
    fn the_needle_is_what_the_master_logs() {
        let read = include_str!("../../../master/src/ops/read.rs");
        assert!(
            read.contains(super::HOLDERS_DEAD),
            "{}",
            super::HOLDERS_DEAD
        );
    }
}

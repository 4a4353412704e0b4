//! Helpers for process-level tests: a master and its slaves as real processes on loopback,
//! started with deadlines, faulted with signals, and all killed when the test ends.
//!
//! ```no_run
//! use dsm_tests::{Cluster, ClusterOpts};
//! let mut cluster = Cluster::start(ClusterOpts { slaves: 3, replicas: 2, ..Default::default() });
//! let mut c = cluster.client();
//! c.write(b"k", b"v").unwrap();
//! cluster.kill_slave(0);
//! assert_eq!(c.read(b"k").unwrap(), Some(b"v".to_vec()));
//! ```
//!
//! With `backup: true` a backup master follows the primary and the slaves know both; see
//! [`MasterId`] for killing, freezing and restarting masters. With `secret` every master, slave
//! and client of the cluster authenticates; `strangers.rs` starts nodes it did not invite. With
//! `data: true` every master and slave keeps its state in a data directory of its own, kept
//! across restarts (`data.rs`).

pub mod bins;
mod data;
pub mod fuzzing;
mod health;
pub mod hosts;
pub mod limits;
pub mod load;
mod logs;
mod masters;
pub mod metrics;
pub mod process;
pub mod raw;
mod slaves;
mod strangers;
pub mod torture;

use std::fs::{self, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dsm_client::{Client, Error, Secret};
use dsm_wire::{ServerRole, Status};

pub use crate::bins::bin;
pub use crate::data::SlaveLaunch;
pub use crate::health::Health;
pub use crate::hosts::{Host, Hosts};
pub use crate::masters::MasterId;
pub use crate::process::{bench_count, run, Finished};

/// Start-up of one process, or of the whole cluster's registration, may take this long on a
/// loaded 2-core machine before a test gives up.
pub const STARTUP: Duration = Duration::from_secs(15);

/// Poll `cond` until it holds; panic with `what` if `timeout` passes first.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    if !poll_until(timeout, &mut cond) {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Poll `cond` until it holds or `timeout` passes; `true` if it held.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[derive(Debug, Clone)]
pub struct ClusterOpts {
    pub slaves: usize,
    /// `--replicas` of the master (R).
    pub replicas: usize,
    /// Further flags for every master (a backup's too), such as `--ack-timeout-ms 200`.
    pub master_args: Vec<String>,
    /// Start a backup master (`--backup-of` the primary's heartbeat socket) and give the
    /// slaves both listen addresses, primary first.
    pub backup: bool,
    /// With `backup`: this many more standbys (`--backup-of` the primary, named `standby2`,
    /// `standby3`, as [`MasterId::standby`] numbers them), each in the slaves' list after the
    /// backup.
    pub more_standbys: usize,
    /// Hold two ports for a backup that the test starts later with [`Cluster::start_backup`],
    /// and give the slaves its listen address already. Ignored with `backup`.
    pub reserve_backup: bool,
    /// A shared secret: written to a file (mode 600) given with `--secret-file` to every
    /// master and slave, and used by the cluster's own clients.
    pub secret: Option<Vec<u8>>,
    /// Run every node in its own network namespace instead of on 127.0.0.1 (not with
    /// `reserve_backup`).
    pub hosts: Option<Hosts>,
    /// Give every master a `--data-dir` of its own ([`Cluster::data_dir`]), kept
    /// across its restarts.
    pub master_data_dirs: bool,
    /// Give every master and slave `--data-dir` (see [`Cluster::data_dir`]), the same one
    /// each time it is restarted; removed with the logs.
    pub data: bool,
    /// Further flags for every slave, such as `--fsync always`.
    pub slave_args: Vec<String>,
    /// How slave `i` is started, for the first `slave_launches.len()` slaves (a wrapper that
    /// limits its memory, say); the others plainly.
    pub slave_launches: Vec<SlaveLaunch>,
}

impl Default for ClusterOpts {
    fn default() -> ClusterOpts {
        ClusterOpts {
            slaves: 3,
            replicas: 2,
            master_args: Vec::new(),
            backup: false,
            more_standbys: 0,
            reserve_backup: false,
            secret: None,
            hosts: None,
            master_data_dirs: false,
            data: false,
            slave_args: Vec::new(),
            slave_launches: Vec::new(),
        }
    }
}

/// A child process of the cluster.
struct Proc {
    child: Child,
    /// SIGSTOPped and not yet continued.
    stopped: bool,
    /// Where it serves `/metrics` (its ready line's `metrics=`), when started with `--metrics`.
    metrics: Option<SocketAddr>,
}

/// A master's addresses, which stay its own across restarts, and its process if one runs.
struct Seat {
    /// Its log file is `<name>.log`.
    name: &'static str,
    listen: SocketAddr,
    heartbeat: SocketAddr,
    /// The heartbeat socket it was last started to follow (`--backup-of`).
    backup_of: Option<SocketAddr>,
    proc: Option<Proc>,
}

pub struct Cluster {
    /// Indexed by [`MasterId`]: the primary, then the backup if any.
    masters: Vec<Seat>,
    /// Listeners holding a not-yet-started backup's ports (listen, heartbeat).
    reserved: Option<(TcpListener, TcpListener)>,
    /// Every master's flags besides its addresses.
    master_args: Vec<String>,
    /// Slot `i` is slave `s{i}`; `None` once killed.
    slaves: Vec<Option<Proc>>,
    log_dir: PathBuf,
    /// The cluster's secret and the file that holds it, with `ClusterOpts::secret`.
    secret: Option<(Secret, PathBuf)>,
    /// Nodes started by `strangers.rs`, killed with the cluster.
    strangers: Vec<Proc>,
    keep_logs: bool,
    hosts: Option<Hosts>,
    /// `ClusterOpts::master_data_dirs`.
    master_data_dirs: bool,
    /// Nodes keep their state in data directories under the log directory.
    data: bool,
    /// Every slave's flags besides its addresses, id and data directory.
    slave_args: Vec<String>,
    /// Per slave: how it is started, if not plainly.
    launches: Vec<SlaveLaunch>,
}

impl Cluster {
    /// Start a master on port 0 (and a backup, as `opts` say) and `opts.slaves` slaves `s0..`,
    /// and wait until the master reports every one of them live and any backup has its state.
    pub fn start(opts: ClusterOpts) -> Cluster {
        // Resolve (and build) the binaries first: a failed build leaves no log directory behind.
        bin("dsm-master");
        bin("dsm-slave");
        let log_dir = logs::new_dir();
        let mut master_args = vec!["--replicas".to_string(), opts.replicas.to_string()];
        master_args.extend(opts.master_args.iter().cloned());
        let secret = opts.secret.as_ref().map(|bytes| {
            let path = strangers::write_secret_file(&log_dir, "secret", bytes);
            let secret = Secret::from_bytes(bytes).expect("ClusterOpts::secret is not empty");
            master_args.extend(["--secret-file".to_string(), path.display().to_string()]);
            (secret, path)
        });
        let mut cluster = Cluster {
            masters: Vec::new(),
            reserved: None,
            master_args,
            slaves: Vec::new(),
            log_dir,
            secret,
            strangers: Vec::new(),
            keep_logs: false,
            hosts: opts.hosts.clone(),
            master_data_dirs: opts.master_data_dirs,
            data: opts.data,
            slave_args: opts.slave_args.clone(),
            launches: opts.slave_launches.clone(),
        };
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        let at = |i: usize| match &opts.hosts {
            Some(h) => (h.masters[i].listen(), h.masters[i].heartbeat()),
            None => (any, any),
        };
        let (listen, heartbeat) = at(0);
        let primary = cluster.spawn_master("master", listen, heartbeat, None);
        cluster.masters.push(primary);
        if opts.backup {
            let (listen, heartbeat) = at(1);
            let following = Some(cluster.primary_heartbeat());
            let backup = cluster.spawn_master("backup", listen, heartbeat, following);
            cluster.masters.push(backup);
            const NAMES: [&str; 2] = ["standby2", "standby3"];
            assert!(opts.more_standbys <= NAMES.len(), "at most 2 more standbys");
            for name in &NAMES[..opts.more_standbys] {
                let standby = cluster.spawn_master(name, any, any, following);
                cluster.masters.push(standby);
            }
        } else if opts.reserve_backup {
            cluster.reserve_backup();
        }
        for i in 0..opts.slaves {
            cluster.slaves.push(None);
            cluster.spawn_slave(i);
        }
        let n = opts.slaves;
        wait_until(
            STARTUP,
            &format!("the master to serve with {n} live slaves"),
            || {
                cluster
                    .try_status()
                    .is_ok_and(|s| live_count(&s) == n && s.role == ServerRole::Primary)
            },
        );
        if opts.backup {
            for i in 1..cluster.masters.len() {
                cluster.wait_backup_synced(MasterId::from_index(i), STARTUP);
            }
        }
        cluster
    }

    /// The listen address of the master started as primary.
    pub fn master_addr(&self) -> SocketAddr {
        self.masters[0].listen
    }

    pub fn master_pid(&self) -> u32 {
        self.master_proc(MasterId::PRIMARY).child.id()
    }

    /// Where every child's stderr (and stdout) goes; kept when the test fails.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// A new client connected to the master started as primary (and to no other).
    pub fn client(&self) -> Client {
        let addr = self.master_addr();
        self.connect(&[addr])
            .unwrap_or_else(|e| panic!("cannot connect a client to {addr}: {e}"))
    }

    /// A client of `masters` with the cluster's secret, if it has one.
    pub fn connect(&self, masters: &[SocketAddr]) -> Result<Client, Error> {
        let secret = self.secret.as_ref().map(|(s, _)| s.clone());
        Client::connect_with_secret(masters, dsm_client::DEFAULT_TIMEOUT, secret)
    }

    /// The cluster's secret, if it has one.
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref().map(|(s, _)| s)
    }

    /// The `dsm-client` binary with `--master` set to this cluster's master (and the cluster's
    /// `--secret-file`, if it has one).
    pub fn client_command(&self) -> Command {
        let mut cmd = Command::new(bin("dsm-client"));
        cmd.args(["--master", &self.master_addr().to_string()]);
        if let Some(path) = self.secret_file() {
            cmd.arg("--secret-file").arg(path);
        }
        cmd
    }

    /// STATUS from the master that is primary now (the one started as primary if none says so,
    /// or it is the only master).
    pub fn try_status(&self) -> Result<Status, Error> {
        if self.masters.len() > 1 {
            if let Some((_, s)) = self.current_primary() {
                return Ok(s);
            }
        }
        self.try_status_of(self.master_addr())
    }

    pub fn status(&self) -> Status {
        self.status_of(self.master_addr())
    }

    /// Keep the log directory when the cluster is dropped (a torture run found something).
    /// `DSM_KEEP_LOGS=1` keeps every cluster's.
    pub fn keep_logs(&mut self) {
        self.keep_logs = true;
    }

    /// The binary `name`, to run on `host` (in its network namespace) or here.
    pub(crate) fn command(&self, name: &str, host: Option<&Host>) -> Command {
        match host {
            Some(h) => h.command(&bin(name)),
            None => Command::new(bin(name)),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.slaves.iter_mut().flatten() {
            kill(p);
        }
        for p in self.masters.iter_mut().filter_map(|m| m.proc.as_mut()) {
            kill(p);
        }
        for p in &mut self.strangers {
            kill(p);
        }
        if std::thread::panicking() {
            logs::print_tails(&self.log_dir);
        } else if self.keep_logs || std::env::var_os("DSM_KEEP_LOGS").is_some() {
            eprintln!("cluster logs kept in {}", self.log_dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// Continue a stopped process (so it dies cleanly), SIGKILL it and reap it.
fn kill(p: &mut Proc) {
    if p.stopped {
        process::signal(p.child.id(), "CONT");
        p.stopped = false;
    }
    let _ = p.child.kill();
    let _ = p.child.wait();
}

/// Start `cmd` with stderr appended to `<dir>/<name>.log` and stdout lines copied there too.
fn spawn(
    cmd: &mut Command,
    dir: &Path,
    name: &str,
    ready: &'static str,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let path = dir.join(format!("{name}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let stderr = log.try_clone().expect("clone a log file handle");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out = child.stdout.take().expect("piped");
    (child, process::watch_stdout(out, log, ready))
}

/// `dsm-master ready: listen=ADDR heartbeat=ADDR` → the ADDR after `field=`.
/// The `field=ADDR` of a ready line, if it has one.
fn ready_addr(line: &str, field: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(field)?.strip_prefix('='))
        .and_then(|a| a.parse().ok())
}

fn parse_ready_addr(line: &str, field: &str) -> SocketAddr {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(field)?.strip_prefix('='))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no {field}=ADDR in the master's ready line {line:?}"))
}

pub fn live_count(s: &Status) -> usize {
    s.slaves.iter().filter(|x| x.live).count()
}

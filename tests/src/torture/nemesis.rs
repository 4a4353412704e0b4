//! The nemesis: a seeded schedule of faults against a running cluster (kill -9 a slave and
//! restart it, with its data or without, SIGSTOP and SIGCONT a slave, the primary or the
//! backup, SIGSTOP a slave past the ACK timeout over and over, kill -9 the primary and bring it
//! back as the backup of the new one, kill -9 every node at once and restart them all on their
//! data dirs; with network namespaces, cut the primary from its backup, cut the primary from
//! every slave, isolate the backup or one slave from every other node), each followed by
//! healing. A kind of fault says what it needs of the cluster beyond processes to signal
//! ([`Needs`]); kinds the cluster cannot do are left out of the schedule.
//!
//! Faults come one at a time, and the next starts only once the primary again lists every slave
//! live with no key under R copies, and the other master is its backup and in step. So every
//! key keeps a live holder, except through [`Fault::KillAll`], which kills every holder of every
//! key at once: that one is only in the schedule when every slave keeps its copies on disk
//! ([`Needs::SlaveDisks`]), where the design says nothing acknowledged is lost. Nothing the
//! checker sees can be blamed on a fault the design does not survive (every holder of a key
//! dead at once with its copies gone). Healing restarts only killed processes: a master that
//! stepped down (frozen, or cut from the slaves, while the backup was elected) must follow the
//! new primary by itself, or the cluster does not heal and the run fails.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dsm_wire::ServerRole;

use crate::torture::netns::{Node, Testbed};
use crate::torture::rng::Rng;
use crate::torture::workload::Clock;
use crate::{Cluster, Health, MasterId};

/// The kinds of fault, in the order of [`FaultMix::weights`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    KillSlave,
    StopSlave,
    StopPrimary,
    KillPrimary,
    /// The primary cut off from its backup (network namespaces only: see `netns.rs`).
    Partition,
    /// One slave SIGSTOPped past the ACK timeout, resumed briefly, and again, several times:
    /// dropped and taken back over and over, with its copies.
    StopSlaveRepeatedly,
    /// kill -9 one slave and start it again on its data dir: a new process that reports what
    /// it holds (with slave disks; [`Fault::KillSlave`] then removes the data dir first).
    RestartSlave,
    /// kill -9 both masters and every slave at once, as a power cut would, and start them all
    /// again on their data dirs: the last primary as the primary, the other master as its
    /// backup, then the slaves.
    KillAll,
    /// The backup SIGSTOPped for long (many leases): the primary must serve on without it.
    StopBackup,
    /// The backup cut from every other node for long (network namespaces only).
    IsolateBackup,
    /// The primary cut from every slave, while the clients and the backup still reach it
    /// (network namespaces only): past a lease and the slaves' patience, the backup is elected.
    CutPrimaryFromSlaves,
    /// One slave cut from both masters (network namespaces only).
    IsolateSlave,
}

/// What a kind of fault needs of the cluster beyond processes to kill and signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Processes,
    /// Every node in a network namespace of its own, and a way to cut links
    /// ([`Nemesis::with_testbed`]).
    Partitions,
    /// Every slave (and master) keeps its state in a data dir of its own
    /// ([`Cluster::slaves_keep_data`]), kept across its restarts.
    SlaveDisks,
}

/// What the cluster under test can do, against which each fault's [`Needs`] is checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Abilities {
    pub partitions: bool,
    pub slave_disks: bool,
}

impl Abilities {
    pub fn allow(self, needs: Needs) -> bool {
        match needs {
            Needs::Processes => true,
            Needs::Partitions => self.partitions,
            Needs::SlaveDisks => self.slave_disks,
        }
    }
}

impl Fault {
    pub const ALL: [Fault; 12] = [
        Fault::KillSlave,
        Fault::StopSlave,
        Fault::StopPrimary,
        Fault::KillPrimary,
        Fault::Partition,
        Fault::StopSlaveRepeatedly,
        Fault::RestartSlave,
        Fault::KillAll,
        Fault::StopBackup,
        Fault::IsolateBackup,
        Fault::CutPrimaryFromSlaves,
        Fault::IsolateSlave,
    ];
    pub const COUNT: usize = Fault::ALL.len();

    pub fn needs(self) -> Needs {
        match self {
            Fault::Partition
            | Fault::IsolateBackup
            | Fault::CutPrimaryFromSlaves
            | Fault::IsolateSlave => Needs::Partitions,
            Fault::RestartSlave | Fault::KillAll => Needs::SlaveDisks,
            Fault::KillSlave
            | Fault::StopSlave
            | Fault::StopPrimary
            | Fault::KillPrimary
            | Fault::StopSlaveRepeatedly
            | Fault::StopBackup => Needs::Processes,
        }
    }

    /// The short name `--faults` takes.
    pub fn flag(self) -> &'static str {
        match self {
            Fault::KillSlave => "kill-slave",
            Fault::StopSlave => "stop-slave",
            Fault::StopPrimary => "stop-primary",
            Fault::KillPrimary => "kill-primary",
            Fault::Partition => "partition",
            Fault::StopSlaveRepeatedly => "stop-slave-repeatedly",
            Fault::RestartSlave => "restart-slave",
            Fault::KillAll => "kill-all",
            Fault::StopBackup => "stop-backup",
            Fault::IsolateBackup => "isolate-backup",
            Fault::CutPrimaryFromSlaves => "cut-primary",
            Fault::IsolateSlave => "isolate-slave",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillSlave => "kill -9 slave",
            Fault::StopSlave => "SIGSTOP slave",
            Fault::StopPrimary => "SIGSTOP primary",
            Fault::KillPrimary => "kill -9 primary",
            Fault::Partition => "partition primary|backup",
            Fault::StopSlaveRepeatedly => "SIGSTOP slave repeatedly",
            Fault::RestartSlave => "kill -9 slave, restart on its data",
            Fault::KillAll => "kill -9 every node, restart all",
            Fault::StopBackup => "SIGSTOP backup",
            Fault::IsolateBackup => "isolate backup",
            Fault::CutPrimaryFromSlaves => "partition primary|slaves",
            Fault::IsolateSlave => "isolate slave",
        }
    }
}

/// How often each fault is chosen, and how long things stay broken (milliseconds, inclusive
/// ranges drawn from the seeded generator).
#[derive(Debug, Clone)]
pub struct FaultMix {
    /// Relative weight of each of [`Fault::ALL`].
    pub weights: [u64; Fault::COUNT],
    /// Quiet time between one fault's healing and the next fault.
    pub quiet_ms: (u64, u64),
    /// A killed slave stays dead this long before it is restarted.
    pub slave_down_ms: (u64, u64),
    /// [`Fault::KillAll`]: every node stays dead this long before the restarts.
    pub all_down_ms: (u64, u64),
    /// A SIGSTOPped slave: past the 200 ms ACK timeout and the 1.5 s PING limit, or not.
    pub slave_stop_ms: (u64, u64),
    /// A SIGSTOPped primary: the backup takes over after about 300 ms of silence.
    pub primary_stop_ms: (u64, u64),
    /// [`Fault::StopSlaveRepeatedly`]: how many stops, each this long (past the 200 ms ACK
    /// timeout), with the slave running this long in between.
    pub slave_blinks: (u64, u64),
    pub slave_blink_stop_ms: (u64, u64),
    pub slave_blink_run_ms: (u64, u64),
    /// A partition of the primary from the backup: shorter and longer than the takeover (300
    /// ms), the slaves' master timeout (1.5 s) and the new primary's grace for them (3 s).
    pub partition_ms: (u64, u64),
    /// [`Fault::StopBackup`] and [`Fault::IsolateBackup`]: for long, many leases (400 ms).
    pub backup_out_ms: (u64, u64),
    /// [`Fault::CutPrimaryFromSlaves`]: shorter and longer than a lease (400 ms) and the
    /// time an election takes (about 1 s).
    pub primary_cut_ms: (u64, u64),
    /// [`Fault::IsolateSlave`]: shorter and longer than the ACK timeout and the PING limit.
    pub slave_isolate_ms: (u64, u64),
    /// The cluster must be whole again within this after each fault.
    pub heal_timeout: Duration,
}

impl FaultMix {
    /// Weights from `kind[:weight],...` (weight 1 when left out); kinds not named get 0.
    pub fn parse_weights(spec: &str) -> Result<[u64; Fault::COUNT], String> {
        let mut weights = [0; Fault::COUNT];
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once(':') {
                Some((n, w)) => (n, w.parse().map_err(|_| format!("bad weight in {part:?}"))?),
                None => (part, 1),
            };
            let i = Fault::ALL
                .iter()
                .position(|f| f.flag() == name)
                .ok_or_else(|| format!("unknown fault {name:?}"))?;
            weights[i] = weight;
        }
        Ok(weights)
    }
}

impl Default for FaultMix {
    fn default() -> FaultMix {
        FaultMix {
            weights: [3, 3, 2, 2, 2, 2, 3, 1, 2, 2, 2, 2],
            quiet_ms: (200, 1500),
            slave_down_ms: (200, 1500),
            all_down_ms: (0, 1500),
            slave_stop_ms: (50, 2500),
            primary_stop_ms: (50, 1500),
            slave_blinks: (3, 6),
            slave_blink_stop_ms: (250, 600),
            slave_blink_run_ms: (30, 150),
            partition_ms: (100, 5000),
            backup_out_ms: (1000, 6000),
            primary_cut_ms: (200, 3000),
            slave_isolate_ms: (200, 3000),
            heal_timeout: Duration::from_secs(30),
        }
    }
}

/// What the nemesis did: every action with its time since the start, and faults by kind.
#[derive(Debug, Clone, Default)]
pub struct FaultLog {
    pub entries: Vec<(u64, String)>,
    pub counts: BTreeMap<Fault, usize>,
    pub takeovers: usize,
    /// Each fault with when it began and when the cluster was whole again after it
    /// (nanoseconds since the start; the end is the last fault's start plus its injection
    /// if it never healed).
    pub windows: Vec<(Fault, u64, u64)>,
}

impl FaultLog {
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// The fault under way (injected, not yet healed) at some time between `from` and `to`
    /// (an operation's invocation and completion), if any: the first such.
    pub fn fault_during(&self, from: u64, to: u64) -> Option<Fault> {
        self.windows
            .iter()
            .find(|&&(_, start, end)| start <= to && from <= end)
            .map(|&(f, _, _)| f)
    }
}

pub struct Nemesis<'a> {
    pub(crate) cluster: &'a mut Cluster,
    pub(crate) mix: FaultMix,
    pub(crate) rng: Rng,
    pub(crate) clock: Clock,
    /// The master that is primary now.
    pub(crate) primary: MasterId,
    pub log: FaultLog,
    /// Print each action as it happens.
    pub(crate) echo: bool,
    /// Partition faults, when the cluster runs in network namespaces.
    pub(crate) testbed: Option<&'a mut Testbed>,
}

impl Nemesis<'_> {
    /// What this cluster can do, for [`Fault::needs`].
    pub fn abilities(&self) -> Abilities {
        Abilities {
            partitions: self.testbed.is_some(),
            slave_disks: self.cluster.slaves_keep_data(),
        }
    }

    fn testbed(&mut self) -> &mut Testbed {
        self.testbed
            .as_deref_mut()
            .expect("faults that need namespaces have weight 0 without them")
    }
}

impl<'a> Nemesis<'a> {
    pub fn new(
        cluster: &'a mut Cluster,
        mix: FaultMix,
        rng: Rng,
        clock: Clock,
        echo: bool,
    ) -> Self {
        Nemesis {
            cluster,
            mix,
            rng,
            clock,
            primary: MasterId::PRIMARY,
            log: FaultLog::default(),
            echo,
            testbed: None,
        }
    }

    /// The network namespaces the cluster runs in: enables the faults that cut links.
    pub fn with_testbed(mut self, testbed: &'a mut Testbed) -> Self {
        self.testbed = Some(testbed);
        self
    }

    /// Inject faults until `until` has passed since the start (or `stop` is set), healing
    /// after each. `Err` when the cluster does not heal in time.
    ///
    /// Every enabled kind of fault comes once (in a seeded order) before the weights decide,
    /// so that even a short run covers them all: that first round finishes even if it takes
    /// longer than `until` (on a loaded machine).
    pub fn run(&mut self, until: Duration, stop: &AtomicBool) -> Result<(), String> {
        let mut weights = self.mix.weights;
        let can = self.abilities();
        for (w, f) in weights.iter_mut().zip(Fault::ALL) {
            if !can.allow(f.needs()) {
                *w = 0;
            }
        }
        let mut first_round: Vec<Fault> = (0..Fault::ALL.len())
            .filter(|&i| weights[i] > 0)
            .map(|i| Fault::ALL[i])
            .collect();
        let more = |first_round: &[Fault], clock: &Clock| {
            !first_round.is_empty() || clock.elapsed() < until
        };
        while more(&first_round, &self.clock) && !stop.load(Ordering::Relaxed) {
            let quiet = self.rng.between(self.mix.quiet_ms.0, self.mix.quiet_ms.1);
            std::thread::sleep(Duration::from_millis(quiet));
            if !more(&first_round, &self.clock) {
                break;
            }
            let fault = if first_round.is_empty() {
                match self.rng.weighted(&weights) {
                    Some(i) => Fault::ALL[i],
                    None => return Ok(()),
                }
            } else {
                let i = self.rng.below(first_round.len() as u64) as usize;
                first_round.swap_remove(i)
            };
            let began = self.clock.now_ns();
            let injected = self.inject(fault);
            self.log.windows.push((fault, began, self.clock.now_ns()));
            injected?;
            let healed = self.heal();
            if let Some(w) = self.log.windows.last_mut() {
                w.2 = self.clock.now_ns();
            }
            healed?;
        }
        Ok(())
    }

    pub(crate) fn note(&mut self, what: String) {
        let at = self.clock.now_ns();
        if self.echo {
            println!("[{:9.3}s] nemesis: {what}", at as f64 / 1e9);
        }
        self.log.entries.push((at, what));
    }

    fn count(&mut self, fault: Fault) {
        *self.log.counts.entry(fault).or_default() += 1;
    }

    fn pause(&mut self, range: (u64, u64)) -> u64 {
        let ms = self.rng.between(range.0, range.1);
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }

    fn inject(&mut self, fault: Fault) -> Result<(), String> {
        self.count(fault);
        match fault {
            Fault::KillSlave => {
                let i = self.rng.below(self.cluster.slave_count() as u64) as usize;
                let pid = self.cluster.slave_pid(i);
                self.note(format!("kill -9 slave s{i} (pid {pid})"));
                self.cluster.kill_slave(i);
                if self.cluster.slaves_keep_data() {
                    // Its disk is lost with it: it comes back empty and gets copies.
                    self.cluster.remove_slave_data(i);
                    self.note(format!("removed the data dir of slave s{i}"));
                }
                let ms = self.pause(self.mix.slave_down_ms);
                self.note(format!("restart slave s{i} after {ms} ms dead"));
                self.cluster.restart_slave(i);
                self.note(format!("slave s{i} registered again"));
            }
            Fault::RestartSlave => {
                let i = self.rng.below(self.cluster.slave_count() as u64) as usize;
                let pid = self.cluster.slave_pid(i);
                self.note(format!(
                    "kill -9 slave s{i} (pid {pid}), keeping its data dir"
                ));
                self.cluster.kill_slave(i);
                let ms = self.pause(self.mix.slave_down_ms);
                self.note(format!("restart slave s{i} on its data after {ms} ms dead"));
                self.cluster.restart_slave(i);
                self.note(format!("slave s{i} registered again"));
            }
            Fault::KillAll => self.kill_all(),
            Fault::StopSlave => {
                let i = self.rng.below(self.cluster.slave_count() as u64) as usize;
                self.note(format!("SIGSTOP slave s{i}"));
                self.cluster.stop_slave(i);
                let ms = self.pause(self.mix.slave_stop_ms);
                self.cluster.cont_slave(i);
                self.note(format!("SIGCONT slave s{i} after {ms} ms"));
            }
            Fault::StopPrimary => {
                let p = self.primary;
                self.note(format!("SIGSTOP primary {p:?}"));
                self.cluster.stop_master(p);
                let ms = self.pause(self.mix.primary_stop_ms);
                self.cluster.cont_master(p);
                self.note(format!("SIGCONT primary {p:?} after {ms} ms"));
            }
            Fault::KillPrimary => {
                let p = self.primary;
                self.note(format!("kill -9 primary {p:?}"));
                self.cluster.kill_master(p);
            }
            Fault::StopSlaveRepeatedly => {
                let i = self.rng.below(self.cluster.slave_count() as u64) as usize;
                let times = self
                    .rng
                    .between(self.mix.slave_blinks.0, self.mix.slave_blinks.1);
                self.note(format!("SIGSTOP slave s{i} {times} times"));
                for n in 1..=times {
                    self.cluster.stop_slave(i);
                    let stopped = self.pause(self.mix.slave_blink_stop_ms);
                    self.cluster.cont_slave(i);
                    let ran = self.pause(self.mix.slave_blink_run_ms);
                    self.note(format!(
                        "slave s{i} stop {n} of {times}: stopped {stopped} ms, ran {ran} ms"
                    ));
                }
            }
            Fault::Partition => {
                let ms = self
                    .rng
                    .between(self.mix.partition_ms.0, self.mix.partition_ms.1);
                self.note("cut the link between the primary and the backup".into());
                self.testbed().partition(true)?;
                std::thread::sleep(Duration::from_millis(ms));
                self.testbed().partition(false)?;
                self.note(format!("link restored after {ms} ms"));
            }
            Fault::StopBackup => {
                let b = self.primary.other();
                self.note(format!("SIGSTOP backup {b:?}"));
                self.cluster.stop_master(b);
                let ms = self.pause(self.mix.backup_out_ms);
                self.cluster.cont_master(b);
                self.note(format!("SIGCONT backup {b:?} after {ms} ms"));
            }
            Fault::IsolateBackup => {
                let b = self.primary.other();
                let node = Node::Master(b.index());
                self.note(format!("isolate backup {b:?} from every other node"));
                self.testbed().isolate(node, true)?;
                let ms = self.pause(self.mix.backup_out_ms);
                self.testbed().isolate(node, false)?;
                self.note(format!("backup {b:?} reachable again after {ms} ms"));
            }
            Fault::CutPrimaryFromSlaves => {
                let p = self.primary;
                self.note(format!("cut primary {p:?} from every slave"));
                self.testbed().isolate_from_slaves(p.index(), true)?;
                let ms = self.pause(self.mix.primary_cut_ms);
                self.testbed().isolate_from_slaves(p.index(), false)?;
                self.note(format!(
                    "primary {p:?} reaches the slaves again after {ms} ms"
                ));
            }
            Fault::IsolateSlave => {
                let i = self.rng.below(self.cluster.slave_count() as u64) as usize;
                self.note(format!("isolate slave s{i} from the masters"));
                self.testbed().isolate(Node::Slave(i), true)?;
                let ms = self.pause(self.mix.slave_isolate_ms);
                self.testbed().isolate(Node::Slave(i), false)?;
                self.note(format!("slave s{i} reachable again after {ms} ms"));
            }
        }
        Ok(())
    }

    /// [`Fault::KillAll`]: every process killed at one moment, then, after a pause, the last
    /// primary started again as the primary on its data dir (it recovers: it answers
    /// UNAVAILABLE until every slave of its roster has reported), the other master as its
    /// backup (refused until the primary serves, it retries), and every slave on its data dir.
    fn kill_all(&mut self) {
        let p = self.primary;
        let slaves = self.cluster.slave_count();
        self.note(format!(
            "kill -9 every node at once: both masters and {slaves} slaves"
        ));
        self.cluster.kill_everything();
        let ms = self.pause(self.mix.all_down_ms);
        self.note(format!(
            "restart {p:?} as the primary after {ms} ms, on its data dir"
        ));
        self.cluster.restart_master_as_primary(p);
        let hb = self.cluster.master_heartbeat(p);
        self.cluster.start_master(p.other(), Some(hb));
        self.note(format!("{:?} started as the backup of {p:?}", p.other()));
        for i in 0..slaves {
            self.cluster.start_slave_again(i);
        }
        self.note(format!("{slaves} slaves started again on their data dirs"));
    }

    /// Wait until the cluster is whole: follow a takeover, bring a killed or fenced master back
    /// as the backup of the primary, and wait for every slave and every key's copies.
    pub fn heal(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.mix.heal_timeout;
        let mut last = Health::Not("not checked yet".into());
        while Instant::now() < deadline {
            if let Some((id, s)) = self.cluster.current_primary() {
                if id != self.primary {
                    self.log.takeovers += 1;
                    self.note(format!("{id:?} took over as primary (epoch {})", s.epoch));
                    self.primary = id;
                }
            }
            let other = self.primary.other();
            let primary = self.cluster.quick_status(self.primary);
            // Only a killed master is restarted (as the backup of the primary): one that
            // stepped down, or has not heard of the new epoch yet, must follow by itself.
            let replace = !self.cluster.master_running(other);
            if replace && primary.is_ok_and(|p| p.role == ServerRole::Primary) {
                self.note(format!(
                    "restart {other:?} as the backup of {:?}",
                    self.primary
                ));
                let hb = self.cluster.master_heartbeat(self.primary);
                self.cluster.restart_master_as_backup_of(other, hb);
                self.note(format!("{other:?} follows {:?}", self.primary));
                continue;
            }
            last = self.cluster.health(self.primary);
            if last == Health::Whole {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the cluster was not whole {:?} after the last fault: {last:?}",
            self.mix.heal_timeout
        ))
    }

    /// After the run: continue anything frozen, restart every killed slave, and heal.
    pub fn heal_all(&mut self) -> Result<(), String> {
        for i in 0..self.cluster.slave_count() {
            if self.cluster.slave_stopped(i) {
                self.cluster.cont_slave(i);
            }
            if !self.cluster.slave_running(i) {
                self.note(format!("restart slave s{i}"));
                self.cluster.restart_slave(i);
            }
        }
        for id in self.cluster.master_ids() {
            if self.cluster.master_stopped(id) {
                self.cluster.cont_master(id);
            }
        }
        if let Some(t) = self.testbed.as_deref_mut() {
            t.heal()?;
        }
        self.heal()
    }
}

//! Nodes that keep state on disk: each master's and slave's data directory (under the log
//! directory, so it goes with the logs and stays with them when a test fails), slaves started
//! with flags, an environment or a wrapper of their own, every process killed at once, and a
//! master restarted as the primary it was.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::{bin, kill, process, Cluster, MasterId};

/// How one slave is started beyond the cluster's defaults.
#[derive(Debug, Clone, Default)]
pub struct SlaveLaunch {
    /// More flags.
    pub args: Vec<String>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
    /// A command that runs the slave: `wrapper[0] wrapper[1..] dsm-slave ARGS...` (it must
    /// exec the program, so that the process the cluster holds is the slave's).
    pub wrapper: Vec<String>,
}

impl Cluster {
    /// The data directory of the node `name` (`master`, `backup`, `s0`, ...).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.log_dir.join("data").join(name)
    }

    /// Whether the slaves keep their data in data directories (`ClusterOpts::data`).
    pub fn slaves_keep_data(&self) -> bool {
        self.data
    }

    /// Remove slave `i`'s data directory, as if its disk were lost: its next start finds
    /// nothing. The slave must not be running.
    pub fn remove_slave_data(&mut self, i: usize) {
        assert!(
            self.slaves[i].is_none(),
            "slave s{i} is running: kill it before removing its data"
        );
        let dir = self.data_dir(&self.slave_id(i));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove {}: {e}", dir.display()),
        }
    }

    /// Start slave `i` this way from now on (its next start or restart).
    pub fn set_slave_launch(&mut self, i: usize, launch: SlaveLaunch) {
        if self.launches.len() <= i {
            self.launches.resize(i + 1, SlaveLaunch::default());
        }
        self.launches[i] = launch;
    }

    /// The command that starts slave `i` before its arguments: the binary, or its wrapper.
    pub(crate) fn slave_command(&self, i: usize) -> Command {
        match self.launches.get(i).filter(|l| !l.wrapper.is_empty()) {
            Some(l) => {
                let mut cmd = Command::new(&l.wrapper[0]);
                cmd.args(&l.wrapper[1..]).arg(bin("dsm-slave"));
                cmd
            }
            None => self.command("dsm-slave", self.hosts.as_ref().map(|h| &h.slaves[i])),
        }
    }

    /// Wait until slave `i` has exited by itself (an abort, say); its status. Panics after
    /// `timeout`.
    pub fn wait_slave_exit(&mut self, i: usize, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let p = self.slaves[i]
            .as_mut()
            .unwrap_or_else(|| panic!("slave s{i} is not running"));
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                self.slaves[i] = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "slave s{i} still runs after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL every master and slave of the cluster, all before reaping any: the whole
    /// cluster dies at one moment, as in a power cut of its one machine.
    pub fn kill_everything(&mut self) {
        let procs = self
            .slaves
            .iter_mut()
            .chain(self.masters.iter_mut().map(|m| &mut m.proc));
        let mut dying = Vec::new();
        for slot in procs {
            if let Some(p) = slot.as_mut() {
                if p.stopped {
                    process::signal(p.child.id(), "CONT");
                    p.stopped = false;
                }
                let _ = p.child.kill();
            }
            if let Some(p) = slot.take() {
                dying.push(p);
            }
        }
        for mut p in dying {
            kill(&mut p);
        }
    }

    /// Start master `id` again (after a kill) on its own addresses, as the primary: no
    /// `--backup-of`. With `data`, it reads its state back from its data directory.
    pub fn restart_master_as_primary(&mut self, id: MasterId) {
        if self.master_running(id) {
            self.kill_master(id);
        }
        let seat = &self.masters[id.index()];
        let (name, listen, heartbeat) = (seat.name, seat.listen, seat.heartbeat);
        self.masters[id.index()] = self.spawn_master(name, listen, heartbeat, None);
    }

    /// Start slave `i` again (after a kill, or an exit of its own) without waiting for the
    /// master to list it: after a whole-cluster restart the master may not answer STATUS
    /// until its slaves are back. Waits for the slave's ready line only.
    pub fn start_slave_again(&mut self, i: usize) {
        if self.slaves[i].is_some() {
            self.kill_slave(i);
        }
        self.spawn_slave(i);
    }
}

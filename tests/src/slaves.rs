//! The slaves of a test cluster: started as `s0..` with every master's address, and killed,
//! frozen, resumed and restarted by tests.

use std::time::Duration;

use crate::{kill, process, spawn, wait_until, Cluster, Proc, STARTUP};

impl Cluster {
    /// Slaves started so far (killed ones included).
    pub fn slave_count(&self) -> usize {
        self.slaves.len()
    }

    pub fn slave_id(&self, i: usize) -> String {
        format!("s{i}")
    }

    pub fn slave_pid(&self, i: usize) -> u32 {
        self.slave(i).child.id()
    }

    /// Whether the master's STATUS lists slave `i` as live.
    pub fn slave_live(&self, i: usize) -> bool {
        let id = self.slave_id(i);
        self.status().slaves.iter().any(|s| s.id == id && s.live)
    }

    /// Wait until the master reports slave `i` as `live` (or not).
    pub fn wait_slave_live(&self, i: usize, live: bool, timeout: Duration) {
        let id = self.slave_id(i);
        let what = format!("the master to report slave {id} live={live}");
        wait_until(timeout, &what, || {
            self.try_status()
                .is_ok_and(|s| s.slaves.iter().any(|x| x.id == id && x.live == live))
        });
    }

    /// SIGKILL slave `i` and reap it.
    pub fn kill_slave(&mut self, i: usize) {
        let mut p = self.slaves[i]
            .take()
            .unwrap_or_else(|| panic!("slave s{i} is not running"));
        kill(&mut p);
    }

    /// SIGSTOP slave `i`: it keeps its sockets but answers nothing.
    pub fn stop_slave(&mut self, i: usize) {
        let p = self.slave_mut(i);
        process::signal(p.child.id(), "STOP");
        p.stopped = true;
    }

    pub fn cont_slave(&mut self, i: usize) {
        let p = self.slave_mut(i);
        process::signal(p.child.id(), "CONT");
        p.stopped = false;
    }

    /// Kill slave `i` if it runs, start it again with the same id, and wait until it has
    /// registered (its ready line) and the master lists it live.
    pub fn restart_slave(&mut self, i: usize) {
        if self.slaves[i].is_some() {
            self.kill_slave(i);
        }
        self.spawn_slave(i);
        self.wait_slave_live(i, true, STARTUP);
    }

    /// [`Cluster::restart_slave`] that waits only for the slave's ready line (it prints it
    /// once registered), not for the master's STATUS: for a master that refuses clients.
    pub fn restart_slave_registered(&mut self, i: usize) {
        if self.slaves[i].is_some() {
            self.kill_slave(i);
        }
        self.spawn_slave(i);
    }

    pub(crate) fn spawn_slave(&mut self, i: usize) {
        let id = self.slave_id(i);
        let masters: Vec<String> = self.masters().iter().map(|a| a.to_string()).collect();
        let mut cmd = self.slave_command(i);
        cmd.args(["--master", &masters.join(","), "--id", &id]);
        if let Some(path) = self.secret_file() {
            cmd.arg("--secret-file").arg(path);
        }
        if self.data {
            cmd.arg("--data-dir").arg(self.data_dir(&id));
        }
        cmd.args(&self.slave_args);
        if let Some(launch) = self.launches.get(i) {
            cmd.args(&launch.args);
            cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
        }
        let (mut child, ready) = spawn(&mut cmd, &self.log_dir, &id, "dsm-slave ready:");
        let log = self.log_dir.join(format!("{id}.log"));
        let what = format!("dsm-slave {id} (log {})", log.display());
        let line = process::wait_ready(&mut child, &ready, &what, STARTUP);
        self.slaves[i] = Some(Proc {
            child,
            stopped: false,
            metrics: crate::ready_addr(&line, "metrics"),
        });
    }

    pub(crate) fn slave(&self, i: usize) -> &Proc {
        self.slaves[i]
            .as_ref()
            .unwrap_or_else(|| panic!("slave s{i} is not running"))
    }

    fn slave_mut(&mut self, i: usize) -> &mut Proc {
        self.slaves[i]
            .as_mut()
            .unwrap_or_else(|| panic!("slave s{i} is not running"))
    }
}

//! Nodes a test cluster did not invite: slaves and masters started with whatever secret (or
//! none) the test chooses, which may never register, plus the secret files and the logs the
//! tests read to see why. They are killed with the cluster.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::{
    bin, parse_ready_addr, poll_until, process, spawn, wait_until, Cluster, Proc, STARTUP,
};

/// Write `bytes` to `<dir>/<name>` with mode 600, as an operator should.
pub(crate) fn write_secret_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    f.write_all(bytes)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

impl Cluster {
    /// The file holding the cluster's secret (`ClusterOpts::secret`).
    pub fn secret_file(&self) -> Option<&Path> {
        self.secret.as_ref().map(|(_, p)| p.as_path())
    }

    /// A secret file of the test's own in the cluster's log directory (mode 600).
    pub fn write_secret_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        write_secret_file(&self.log_dir, name, bytes)
    }

    /// Start a slave `id` that reports to `masters` with `secret_file` (or none), without
    /// waiting for it to register: it may never be let in. Its log is `<id>.log`.
    pub fn spawn_stranger_slave(
        &mut self,
        id: &str,
        masters: &[SocketAddr],
        secret_file: Option<&Path>,
    ) {
        let masters: Vec<String> = masters.iter().map(|a| a.to_string()).collect();
        let mut cmd = Command::new(bin("dsm-slave"));
        cmd.args(["--master", &masters.join(","), "--id", id]);
        if let Some(path) = secret_file {
            cmd.arg("--secret-file").arg(path);
        }
        let (child, _ready) = spawn(&mut cmd, &self.log_dir, id, "dsm-slave ready:");
        self.strangers.push(Proc {
            child,
            stopped: false,
            metrics: None,
        });
    }

    /// Start a slave logging to `<name>.log` with exactly `args` (its `--master`, `--id` and
    /// any limits among them), without waiting for it to register. Returns its number for
    /// [`Cluster::wait_stranger_exit`].
    pub fn spawn_stranger_slave_with(&mut self, name: &str, args: &[&str]) -> usize {
        let mut cmd = Command::new(bin("dsm-slave"));
        cmd.args(args);
        let (child, _ready) = spawn(&mut cmd, &self.log_dir, name, "dsm-slave ready:");
        self.strangers.push(Proc {
            child,
            stopped: false,
            metrics: None,
        });
        self.strangers.len() - 1
    }

    /// Wait until stranger `n` has exited by itself, and return its status; `None` if it
    /// still runs after `timeout`.
    pub fn wait_stranger_exit(&mut self, n: usize, timeout: Duration) -> Option<ExitStatus> {
        let child = &mut self.strangers[n].child;
        let mut status = None;
        poll_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Start a master `name` on loopback port 0 with `args` only (none of the cluster's own
    /// flags, so no secret unless `args` give one), wait for its ready line, and return its
    /// listen address.
    pub fn spawn_stranger_master(&mut self, name: &str, args: &[&str]) -> SocketAddr {
        let mut cmd = Command::new(bin("dsm-master"));
        cmd.args(["--listen", "127.0.0.1:0", "--heartbeat", "127.0.0.1:0"])
            .args(args);
        let (mut child, ready) = spawn(&mut cmd, &self.log_dir, name, "dsm-master ready:");
        let what = format!("dsm-master {name}");
        let line = process::wait_ready(&mut child, &ready, &what, STARTUP);
        self.strangers.push(Proc {
            child,
            stopped: false,
            metrics: None,
        });
        parse_ready_addr(&line, "listen")
    }

    /// Everything a node of the cluster (or a stranger) logged so far: `name` is `master`,
    /// `backup`, `s0`, or a stranger's name.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.log_dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Wait until `name`'s log holds `needle` `times` times or more, and return the log.
    pub fn wait_log(&self, name: &str, needle: &str, times: usize, timeout: Duration) -> String {
        let what = format!("{times} x {needle:?} in {name}.log");
        let mut log = String::new();
        wait_until(timeout, &what, || {
            log = self.log(name);
            log.matches(needle).count() >= times
        });
        log
    }
}

//! The masters of a test cluster: each keeps its addresses across restarts (so slaves and
//! clients, which know only addresses, find it again), and tests kill, freeze, restart and ask
//! it for STATUS.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use dsm_client::{Client, Error};
use dsm_wire::{ServerRole, Status};

use crate::{kill, parse_ready_addr, process, spawn, wait_until, Cluster, Proc, Seat, STARTUP};

/// A master of the cluster, named by the role it was started in. Roles change (the backup
/// takes over, a restarted primary follows it); the id keeps naming the same addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterId(usize);

impl MasterId {
    pub const PRIMARY: MasterId = MasterId(0);
    /// Exists with `ClusterOpts::backup`, or `reserve_backup` (started by `start_backup`).
    pub const BACKUP: MasterId = MasterId(1);

    /// The `n`th standby started with `ClusterOpts::more_standbys` (`n` from 2).
    pub fn standby(n: usize) -> MasterId {
        MasterId(n)
    }

    pub(crate) fn from_index(i: usize) -> MasterId {
        MasterId(i)
    }

    pub(crate) fn index(self) -> usize {
        self.0
    }

    /// The other master of a primary/backup pair.
    pub fn other(self) -> MasterId {
        MasterId(1 - self.0.min(1))
    }
}

impl Cluster {
    pub fn master_listen(&self, id: MasterId) -> SocketAddr {
        self.seat(id).listen
    }

    pub fn master_heartbeat(&self, id: MasterId) -> SocketAddr {
        self.seat(id).heartbeat
    }

    pub fn backup_addr(&self) -> SocketAddr {
        self.master_listen(MasterId::BACKUP)
    }

    pub fn primary_heartbeat(&self) -> SocketAddr {
        self.master_heartbeat(MasterId::PRIMARY)
    }

    pub fn backup_heartbeat(&self) -> SocketAddr {
        self.master_heartbeat(MasterId::BACKUP)
    }

    /// Every master's listen address, primary first: the list the slaves were given.
    pub fn masters(&self) -> Vec<SocketAddr> {
        self.masters.iter().map(|m| m.listen).collect()
    }

    /// A new client given every master's address, primary first.
    pub fn ha_client(&self) -> Client {
        let masters = self.masters();
        self.connect(&masters)
            .unwrap_or_else(|e| panic!("cannot connect a client to {masters:?}: {e}"))
    }

    /// SIGKILL master `id` and reap it.
    pub fn kill_master(&mut self, id: MasterId) {
        let name = self.seat(id).name;
        let mut p = self.masters[id.0]
            .proc
            .take()
            .unwrap_or_else(|| panic!("master {name} is not running"));
        kill(&mut p);
    }

    /// SIGSTOP master `id`: it keeps its sockets but reads and answers nothing.
    pub fn stop_master(&mut self, id: MasterId) {
        let p = self.master_proc_mut(id);
        process::signal(p.child.id(), "STOP");
        p.stopped = true;
    }

    pub fn cont_master(&mut self, id: MasterId) {
        let p = self.master_proc_mut(id);
        process::signal(p.child.id(), "CONT");
        p.stopped = false;
    }

    pub fn kill_primary(&mut self) {
        self.kill_master(MasterId::PRIMARY);
    }

    pub fn stop_primary(&mut self) {
        self.stop_master(MasterId::PRIMARY);
    }

    pub fn cont_primary(&mut self) {
        self.cont_master(MasterId::PRIMARY);
    }

    /// Start the backup on the ports held by `ClusterOpts::reserve_backup`, following the
    /// primary, and wait until it has the primary's state.
    pub fn start_backup(&mut self) {
        self.start_backup_within(STARTUP);
    }

    /// [`Cluster::start_backup`], waiting up to `timeout` for the backup to hold the state (a
    /// snapshot of many keys on a loaded machine takes longer than a start).
    pub fn start_backup_within(&mut self, timeout: Duration) {
        let Some((listen, heartbeat)) = self.reserved.take() else {
            panic!("no backup reserved (ClusterOpts::reserve_backup) or it already started");
        };
        let seat = self.seat(MasterId::BACKUP);
        let (addr, hb) = (seat.listen, seat.heartbeat);
        // The ports are free again only from here to the backup's bind: a short race with any
        // other process binding port 0, which the OS makes unlikely.
        drop((listen, heartbeat));
        let primary = self.primary_heartbeat();
        self.masters[MasterId::BACKUP.0] = self.spawn_master("backup", addr, hb, Some(primary));
        self.wait_backup_synced(MasterId::BACKUP, timeout);
    }

    /// Start the backup on the ports held by `ClusterOpts::reserve_backup` with `--backup-of
    /// target`, which may be no master at all (a typo), and wait for its ready line only.
    pub fn start_backup_following(&mut self, target: SocketAddr) {
        let Some((listen, heartbeat)) = self.reserved.take() else {
            panic!("no backup reserved (ClusterOpts::reserve_backup) or it already started");
        };
        let seat = self.seat(MasterId::BACKUP);
        let (addr, hb) = (seat.listen, seat.heartbeat);
        drop((listen, heartbeat));
        self.masters[MasterId::BACKUP.0] = self.spawn_master("backup", addr, hb, Some(target));
    }

    /// Kill master `id` if it runs, start it again on its own addresses as the backup of the
    /// master whose heartbeat socket is `primary_heartbeat`, and wait until it has that
    /// master's state.
    pub fn restart_master_as_backup_of(&mut self, id: MasterId, primary_heartbeat: SocketAddr) {
        if self.seat(id).proc.is_some() {
            self.kill_master(id);
        }
        let seat = self.seat(id);
        let (name, addr, hb) = (seat.name, seat.listen, seat.heartbeat);
        self.masters[id.0] = self.spawn_master(name, addr, hb, Some(primary_heartbeat));
        self.wait_backup_synced(id, STARTUP);
    }

    /// Start master `id`, which must not be running, again on its own addresses (and its own
    /// data directory, with `ClusterOpts::master_data_dirs`): as a primary when `backup_of` is
    /// `None`, else as the backup of the master whose heartbeat socket that is. Waits for its
    /// ready line only: a master restarted over a cluster may answer UNAVAILABLE for a while.
    pub fn start_master(&mut self, id: MasterId, backup_of: Option<SocketAddr>) {
        let seat = self.seat(id);
        assert!(seat.proc.is_none(), "master {} is running", seat.name);
        let (name, addr, hb) = (seat.name, seat.listen, seat.heartbeat);
        self.masters[id.0] = self.spawn_master(name, addr, hb, backup_of);
    }

    /// The heartbeat socket master `id` was last started to follow (`None`: as primary).
    pub fn master_backup_of(&self, id: MasterId) -> Option<SocketAddr> {
        self.seat(id).backup_of
    }

    /// Master `id`'s `--data-dir`, with `ClusterOpts::master_data_dirs`.
    pub fn master_data_dir(&self, id: MasterId) -> Option<PathBuf> {
        self.data_dir_of(self.seat(id).name)
    }

    fn data_dir_of(&self, name: &str) -> Option<PathBuf> {
        (self.master_data_dirs || self.data).then(|| self.data_dir(name))
    }

    /// Wait until master `id` says it is a backup and knows what the master it follows knows:
    /// the same number of keys, and every slave that master has live. Call it when no writes
    /// are under way.
    pub fn wait_backup_synced(&self, id: MasterId, timeout: Duration) {
        let seat = self.seat(id);
        let followed = seat
            .backup_of
            .and_then(|hb| self.masters.iter().find(|m| m.heartbeat == hb))
            .unwrap_or_else(|| panic!("master {} follows no master of this cluster", seat.name))
            .listen;
        let what = format!(
            "backup {} ({}) to receive the state of {followed}",
            seat.name, seat.listen
        );
        wait_until(timeout, &what, || {
            let (Ok(p), Ok(b)) = (
                self.try_status_of(followed),
                self.try_status_of(seat.listen),
            ) else {
                return false;
            };
            b.role == ServerRole::Backup
                && b.keys == p.keys
                && p.slaves
                    .iter()
                    .filter(|s| s.live)
                    .all(|s| b.slaves.iter().any(|x| x.id == s.id))
        });
    }

    /// Poll master `id` until its STATUS says `role`, and return that STATUS.
    pub fn wait_role(&self, id: MasterId, role: ServerRole, timeout: Duration) -> Status {
        let addr = self.master_listen(id);
        let mut last = None;
        let what = format!(
            "master {} ({addr}) to say role {}",
            self.seat(id).name,
            role.name()
        );
        wait_until(timeout, &what, || {
            last = self.try_status_of(addr).ok();
            last.as_ref().is_some_and(|s| s.role == role)
        });
        last.expect("set when the wait ends")
    }

    /// STATUS from the master at `addr`, whatever its role (a frozen one: an error after the
    /// client's default deadline).
    pub fn try_status_of(&self, addr: SocketAddr) -> Result<Status, Error> {
        self.connect(&[addr])?.status()
    }

    pub fn status_of(&self, addr: SocketAddr) -> Status {
        self.try_status_of(addr)
            .unwrap_or_else(|e| panic!("STATUS from {addr} failed: {e}"))
    }

    /// Start a master on `listen` and `heartbeat` (port 0: any) and wait for its ready line.
    pub(crate) fn spawn_master(
        &self,
        name: &'static str,
        listen: SocketAddr,
        heartbeat: SocketAddr,
        backup_of: Option<SocketAddr>,
    ) -> Seat {
        let host = self
            .hosts
            .as_ref()
            .and_then(|h| h.masters.iter().find(|m| m.ip == listen.ip()));
        let mut cmd = self.command("dsm-master", host);
        cmd.args(["--listen", &listen.to_string()])
            .args(["--heartbeat", &heartbeat.to_string()])
            .args(&self.master_args);
        // The cluster's first master starts a cluster known to be new: no slave can hold
        // anything yet, so it need not discover them (restarts keep the default window).
        if self.masters.is_empty() && !self.master_args.iter().any(|a| a == "--discover-ms") {
            cmd.args(["--discover-ms", "0"]);
        }
        if let Some(primary) = backup_of {
            cmd.args(["--backup-of", &primary.to_string()]);
        }
        if let Some(dir) = self.data_dir_of(name) {
            cmd.arg("--data-dir").arg(dir);
        }
        // In a network namespace of its own the master binds a private bridge address, not
        // loopback: without a secret it starts only when told it may.
        if host.is_some() && self.secret.is_none() {
            cmd.arg("--insecure");
        }
        let (mut child, ready) = spawn(&mut cmd, &self.log_dir, name, "dsm-master ready:");
        let log = self.log_dir.join(format!("{name}.log"));
        let what = format!("dsm-master {name} (log {})", log.display());
        let line = process::wait_ready(&mut child, &ready, &what, STARTUP);
        Seat {
            name,
            listen: parse_ready_addr(&line, "listen"),
            heartbeat: parse_ready_addr(&line, "heartbeat"),
            backup_of,
            proc: Some(Proc {
                child,
                stopped: false,
                metrics: crate::ready_addr(&line, "metrics"),
            }),
        }
    }

    /// Hold two free ports for a backup started later, so the slaves can be told its address
    /// (in network namespaces, `ClusterOpts::hosts`: the second master host's addresses, which
    /// nothing else uses; the ports held then are only placeholders).
    pub(crate) fn reserve_backup(&mut self) {
        let bind = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("cannot reserve a port for the backup: {e}"))
        };
        let (listen, heartbeat) = (bind(), bind());
        let addr = |l: &TcpListener| l.local_addr().expect("a bound listener has an address");
        let (seat_listen, seat_heartbeat) = match &self.hosts {
            Some(h) => (h.masters[1].listen(), h.masters[1].heartbeat()),
            None => (addr(&listen), addr(&heartbeat)),
        };
        self.masters.push(Seat {
            name: "backup",
            listen: seat_listen,
            heartbeat: seat_heartbeat,
            backup_of: Some(self.primary_heartbeat()),
            proc: None,
        });
        self.reserved = Some((listen, heartbeat));
    }

    pub(crate) fn master_proc(&self, id: MasterId) -> &Proc {
        let seat = self.seat(id);
        seat.proc
            .as_ref()
            .unwrap_or_else(|| panic!("master {} is not running", seat.name))
    }

    fn master_proc_mut(&mut self, id: MasterId) -> &mut Proc {
        let name = self.seat(id).name;
        self.masters[id.0]
            .proc
            .as_mut()
            .unwrap_or_else(|| panic!("master {name} is not running"))
    }

    fn seat(&self, id: MasterId) -> &Seat {
        self.masters
            .get(id.0)
            .unwrap_or_else(|| panic!("this cluster has no master {id:?} (no backup asked for?)"))
    }
}

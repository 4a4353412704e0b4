//! What a fault injector asks of a test cluster: which processes run (and which are frozen),
//! which master is primary now, and whether the cluster is whole again (every slave live, every
//! key at R copies, a backup in step with the primary).

use std::time::Duration;

use dsm_client::{Client, Error};
use dsm_wire::{ServerRole, Status};

use crate::{live_count, Cluster, MasterId};

/// STATUS queries made while checking health give up after this (a frozen master never answers).
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// How far a cluster is from whole, for messages when it does not heal in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Whole,
    Not(String),
}

impl Cluster {
    /// Keys the current primary counts on each slave (by id).
    pub fn keys_per_slave(&self) -> Vec<(String, u64)> {
        let s = self
            .try_status()
            .unwrap_or_else(|e| panic!("STATUS of the primary: {e}"));
        s.slaves.iter().map(|s| (s.id.clone(), s.keys)).collect()
    }

    /// No slave was wiped: each holds at least the keys it held `before` (taken with
    /// [`Cluster::keys_per_slave`] before a load that never rewrites its sentinels, so they
    /// stay where they were).
    pub fn assert_no_slave_wiped(&self, before: &[(String, u64)]) {
        let after = self.keys_per_slave();
        for (id, n) in before {
            let now = after.iter().find(|(a, _)| a == id).map_or(0, |(_, k)| *k);
            assert!(
                now >= *n,
                "slave {id} held {n} keys before and {now} after: wiped? (before {before:?}, \
                 after {after:?})"
            );
        }
    }

    /// Masters of this cluster (started or reserved seats).
    pub fn master_ids(&self) -> Vec<MasterId> {
        (0..self.masters.len()).map(MasterId::from_index).collect()
    }

    /// Whether master `id` has a process (frozen or not).
    pub fn master_running(&self, id: MasterId) -> bool {
        self.masters
            .get(id.index())
            .is_some_and(|m| m.proc.is_some())
    }

    /// Whether slave `i` has a process (frozen or not).
    pub fn slave_running(&self, i: usize) -> bool {
        self.slaves.get(i).is_some_and(Option::is_some)
    }

    pub fn slave_stopped(&self, i: usize) -> bool {
        self.slaves
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|p| p.stopped)
    }

    pub fn master_stopped(&self, id: MasterId) -> bool {
        self.masters
            .get(id.index())
            .and_then(|m| m.proc.as_ref())
            .is_some_and(|p| p.stopped)
    }

    /// STATUS of master `id` if it runs, is not frozen and answers within a short deadline.
    pub fn quick_status(&self, id: MasterId) -> Result<Status, Error> {
        if !self.master_running(id) || self.master_stopped(id) {
            return Err(Error::Unreachable(format!("master {id:?} is not running")));
        }
        let addr = self.master_listen(id);
        let secret = self.secret.as_ref().map(|(s, _)| s.clone());
        Client::connect_with_secret(&[addr], STATUS_TIMEOUT, secret)?.status()
    }

    /// The master that says it is primary with the highest epoch, and its STATUS.
    pub fn current_primary(&self) -> Option<(MasterId, Status)> {
        self.master_ids()
            .into_iter()
            .filter_map(|id| Some((id, self.quick_status(id).ok()?)))
            .filter(|(_, s)| s.role == ServerRole::Primary)
            .max_by_key(|(_, s)| s.epoch)
    }

    /// Children that have exited although nobody killed them, with how they ended (a slave
    /// that dies on its own is a finding in itself). They stay listed as running.
    pub fn exited_on_their_own(&mut self) -> Vec<String> {
        let mut gone = Vec::new();
        for (i, p) in self.slaves.iter_mut().enumerate() {
            if let Some(Ok(Some(status))) = p.as_mut().map(|p| p.child.try_wait()) {
                gone.push(format!("slave s{i} exited: {status}"));
            }
        }
        for m in &mut self.masters {
            if let Some(Ok(Some(status))) = m.proc.as_mut().map(|p| p.child.try_wait()) {
                gone.push(format!("master {} exited: {status}", m.name));
            }
        }
        gone
    }

    /// Whole: `primary` says primary, lists every slave of the cluster live with no key under
    /// R copies, and the other master (if the cluster has one) is its backup and has its state.
    pub fn health(&mut self, primary: MasterId) -> Health {
        let gone = self.exited_on_their_own();
        if !gone.is_empty() {
            return Health::Not(gone.join("; "));
        }
        let p = match self.quick_status(primary) {
            Ok(s) if s.role == ServerRole::Primary => s,
            Ok(s) => return Health::Not(format!("{primary:?} says {}", s.role.name())),
            Err(e) => return Health::Not(format!("no STATUS from {primary:?}: {e}")),
        };
        let want = self.slave_count();
        if live_count(&p) != want {
            return Health::Not(format!("{} of {want} slaves live", live_count(&p)));
        }
        if p.under_replicated > 0 {
            return Health::Not(format!("{} keys under-replicated", p.under_replicated));
        }
        for id in self.master_ids().into_iter().filter(|&id| id != primary) {
            let b = match self.quick_status(id) {
                Ok(s) => s,
                Err(e) => return Health::Not(format!("no STATUS from {id:?}: {e}")),
            };
            let synced = b.role == ServerRole::Backup
                && b.epoch == p.epoch
                && b.keys == p.keys
                && p.slaves
                    .iter()
                    .filter(|s| s.live)
                    .all(|s| b.slaves.iter().any(|x| x.id == s.id));
            if !synced {
                return Health::Not(format!(
                    "{id:?} is {} at epoch {} with {} keys, not the backup of epoch {} with {}",
                    b.role.name(),
                    b.epoch,
                    b.keys,
                    p.epoch,
                    p.keys
                ));
            }
        }
        Health::Whole
    }
}

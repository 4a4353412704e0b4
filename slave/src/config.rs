//! What a slave is told at start: its masters, its id, its limits and timings, and where and
//! how it keeps its data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dsm_auth::Secret;

use crate::disk;

#[derive(Debug, Clone)]
pub struct Config {
    /// The primary first, then fallbacks (the backup master).
    pub masters: Vec<SocketAddr>,
    pub id: String,
    /// This process's boot id, sent in HELLO (see `dsm_auth::boot_id`): a master that sees the
    /// same boot again knows what we hold without asking.
    pub boot: u64,
    pub max_frame: usize,
    /// `--max-key` and `--max-value`, told to the master in HELLO: a master with larger
    /// limits refuses this slave instead of sending it STOREs it must refuse.
    /// (Its `masters` is not read: the slave counts [`Config::masters`].)
    pub limits: dsm_wire::Limits,
    /// A master that sends nothing for this long (it PINGs idle slaves) is taken for dead.
    pub master_timeout: Duration,
    /// Prove this secret to the master, and accept only a master that proves it back.
    pub secret: Option<Secret>,
    /// While registered, poll this long without sleeping before blocking (zero: never). See
    /// [`crate::node::Node`].
    pub spin: Duration,
    /// Keep a log of every change here and replay it at start; `None`: memory only.
    pub data_dir: Option<PathBuf>,
    /// How the log is synced and compacted (with `data_dir`).
    pub disk: disk::Settings,
    /// The most heap the key table may hold (`--max-memory`); a STORE past it is refused.
    pub max_memory: u64,
    /// `--metrics`: where to serve `/metrics` over HTTP (`None`: nowhere).
    pub metrics: Option<SocketAddr>,
}

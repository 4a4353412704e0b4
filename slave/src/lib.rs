//! dsm-slave: holds versioned copies of keys for the master and answers its STORE and FETCH.
//!
//! [`Slave`] is the logic with no I/O (the link to the master, then the [`Store`]); [`run`]
//! drives it from a mio loop ([`node`]). With `--data-dir` the store keeps a log on disk
//! ([`disk`]); `--max-memory` caps what it holds ([`memory`]).

mod config;
mod dialer;
pub mod disk;
pub mod memory;
mod metrics;
pub mod node;
mod open;
pub mod slave;
pub mod store;
mod table;
mod web;
pub mod writers;

pub use crate::config::Config;
pub use crate::dialer::{MAX_BACKOFF, MIN_BACKOFF};
pub use crate::node::run;
pub use crate::slave::{Out, Slave, CONNECT_TIMEOUT, GIVE_UP_AFTER};
pub use crate::store::{Reply, Store};

/// Default of `--spin-us` (see [`Config::spin`]).
pub const SPIN_US: u64 = 200;

/// A slave id unique enough for one cluster: process id and start time, hashed.
pub fn generated_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = nanos ^ ((std::process::id() as u64) << 32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("slave-{:08x}", (z ^ (z >> 31)) as u32)
}

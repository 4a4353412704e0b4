//! dsm-slave: holds versioned copies of keys for the master and answers its STORE and FETCH.
//!
//! [`Store`] is the logic with no I/O; [`run`] drives it from a mio loop.

pub mod node;
pub mod store;
mod table;

pub use crate::node::{run, Config};
pub use crate::store::Store;

/// Default of `--spin-us` (see [`node::Config::spin`]).
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

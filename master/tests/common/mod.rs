//! One simulated network for every master sim (raft-rs `harness/src/network.rs` in spirit).
//!
//! Masters are driven only through their event API, as the reactor (`server.rs`) drives them:
//! `on_connect`, `on_decoded`, `on_close`, `on_tick`, `end_turn`, `drain_out` and `recycle`,
//! `link_target`, `on_link_up` and `on_link_failed`. Every frame crosses encoded and is decoded
//! at the other end. Slaves (`dsm_slave::Store`), clients and raw strangers sit on the same
//! network. Connection ids are the network's: the lowest free slot of each master.
//!
//! Determinism: frames are delivered in send order (FIFO per direction, zero delay unless a
//! test sets one). `settle` carries everything due at the current instant, one turn after
//! another (what a turn's deliveries send is due in the next), and fires no timer; `advance`
//! moves the clock 1 ms at a time, each step a turn in the reactor's order (open a wanted link,
//! deliver, tick) followed by `settle`. Every master's `end_turn` closes each turn.
//!
//! Calls that change the network carry what follows before they return (`add_*`, `join`,
//! `kill`, `close`, `heal`, `thaw`, `request`, `write`, `read`); `send` and `connect` only
//! queue, so that a test can put several frames into one turn, and `settle` carries them.
//!
//! Faults: `cut`, `isolate`, `heal`, `freeze`/`thaw`, `drop_if`, `delay`, `close`, `kill`.
//! Each test crate uses a part of this module, hence the allows.
#![allow(dead_code, unused_imports)]

mod bodies;
mod conns;
mod deliver;
mod faults;
mod log;
mod net;
mod nodes;
mod peer;
mod view;

pub use bodies::{delete, read, value, write};
pub use conns::Conn;
pub use faults::Msg;
pub use log::Sent;
pub use net::{Net, NodeId};
pub use peer::Peer;

/// A master starting a cluster known to be new: no slave can hold anything yet, so it serves
/// at once instead of discovering what registering slaves hold (`--discover-ms 0`).
pub fn new_cluster() -> dsm_master::Config {
    dsm_master::Config {
        discover: std::time::Duration::ZERO,
        ..dsm_master::Config::default()
    }
}

//! dsm-master: places each write on R slaves, answers reads from a holder of the latest write.
//!
//! [`Master`] is the logic as a state machine with no I/O, made of components that own their
//! state (`ops/`, `ha/`, `slaves.rs`, `repair.rs`, `peers.rs`, ...); [`run`] drives it from a
//! mio loop. `ARCHITECTURE.md` at the top of the repository follows a WRITE, a READ and a
//! takeover through them.

pub mod cache;
mod census;
pub mod config;
mod core;
mod ctx;
pub mod disk;
mod doubts;
mod effect;
mod few;
mod frames;
mod ha;
mod handshake;
mod hold;
mod idmap;
mod inventory;
pub mod key;
pub mod keymap;
mod listen;
mod master;
mod members;
mod metrics;
mod once;
mod ops;
mod outbox;
mod page;
mod peers;
pub mod placement;
mod recovery;
mod repair;
pub mod server;
mod share;
pub mod slaves;
mod stalls;
mod status;
mod supporter;
mod term;
mod timer;
mod web;

pub use crate::config::Config;
pub use crate::master::Master;
pub use crate::outbox::{ConnId, Out, Shared};
pub use crate::server::run;

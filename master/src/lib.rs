//! dsm-master: places each write on R slaves, answers reads from a holder of the latest write.
//!
//! [`Master`] is the logic as a state machine with no I/O; [`run`] drives it from a mio loop.

pub mod config;
pub mod core;
mod few;
mod ha;
mod handshake;
mod idmap;
pub mod key;
pub mod keymap;
mod link;
mod ops;
pub mod placement;
mod probe;
mod repair;
pub mod server;
pub mod slaves;

pub use crate::config::Config;
pub use crate::core::{Master, Out, Shared};
pub use crate::server::run;

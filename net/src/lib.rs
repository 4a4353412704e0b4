//! Event-loop pieces shared by the dsm servers and client: timer wheel, framed connections,
//! the shared secret and the connecting side of the handshake.

pub mod addr;
pub mod auth;
pub mod cli;
pub mod conn;
pub mod dial;
pub mod handshake;
pub mod log_setup;
pub mod spin;
pub mod tag_index;
pub use conn::{Conn, Io};
pub mod timer;
pub use timer::{TimerId, TimerWheel};

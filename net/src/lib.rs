//! Event-loop pieces shared by the dsm servers and client: timer wheel, framed connections.

pub mod addr;
pub mod cli;
pub mod conn;
pub mod log_setup;
pub use conn::{Conn, Io};
pub mod timer;
pub use timer::{TimerId, TimerWheel};

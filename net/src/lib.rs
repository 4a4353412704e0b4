//! Event-loop pieces shared by the dsm servers and the bench client: the timer wheel, the
//! framed non-blocking connection and the bounded busy poll. No options, logging or crypto.

pub mod conn;
pub mod dial;
pub mod spin;
pub mod timer;
pub use conn::{Conn, Io, Oversize};
pub use timer::{TimerId, TimerWheel};

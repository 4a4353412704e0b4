//! Event-loop pieces shared by the dsm servers and the bench client: the timer wheel, the
//! framed non-blocking connection, the bounded busy poll, and the `--metrics` HTTP endpoint
//! with its metric primitives. No options, logging or crypto.

pub mod bytes;
pub mod conn;
pub mod dial;
pub mod http;
pub mod malloc;
pub mod prom;
pub mod spin;
pub mod timer;
pub use bytes::SharedBytes;
pub use conn::{Conn, Io, Oversize};
pub use timer::{TimerId, TimerWheel};

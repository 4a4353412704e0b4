//! dsm-client: a small blocking client library for a dsm cluster, and the `dsm-client` binary
//! built on it (feature `cli`, on by default; the library alone needs no mio or hdrhistogram).
//!
//! ```no_run
//! use dsm_client::{Client, Op, Reply};
//!
//! let masters = ["127.0.0.1:7000".parse().unwrap(), "127.0.0.1:7002".parse().unwrap()];
//! let mut c = Client::connect(&masters)?;
//! c.write(b"greeting", b"hello world")?;
//! assert_eq!(c.read(b"greeting")?, Some(b"hello world".to_vec()));
//! assert_eq!(c.read(b"missing")?, None);
//!
//! // Pipelined: every request is sent before the first answer is read.
//! let answers = c.batch(&[
//!     Op::Write { key: b"a".to_vec(), value: b"1".to_vec() },
//!     Op::Read { key: b"a".to_vec() },
//! ])?;
//! assert_eq!(answers[1].as_ref().unwrap(), &Reply::Value(b"1".to_vec()));
//! println!("{} keys", c.status()?.keys);
//! # Ok::<(), dsm_client::Error>(())
//! ```
//!
//! A call that cannot finish within its deadline ([`Client::set_timeout`], 5 s by default)
//! returns [`Error::Timeout`]: for a write, the outcome is unknown. When the connection breaks,
//! or the master answers NOT_PRIMARY, the client moves to the next address and resends what
//! was unanswered.

mod client;
pub mod command;
mod conn;
mod error;
pub mod json;
pub mod output;
pub mod repl;

pub use crate::client::{
    Client, ConnectOptions, Op, Reply, Written, DEFAULT_PROBE, DEFAULT_TIMEOUT,
};
pub use crate::error::Error;
/// The shared secret, for [`Client::connect_with_secret`] (`Secret::load` reads a file).
pub use dsm_auth::Secret;

/// What a one-shot `write` and the REPL print for a write that took effect.
pub fn written(w: Written) -> String {
    match w {
        Written::Full => "OK".into(),
        Written::Short { copies, wanted } => format!("OK (on {copies} of {wanted} copies)"),
    }
}

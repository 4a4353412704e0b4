//! What can go wrong for a client call, with enough detail to tell the user what happened.

use std::fmt;
use std::io;

use dsm_wire::ErrorCode;

#[derive(Debug)]
pub enum Error {
    /// No master address could be reached (each attempt's failure is in the text).
    Unreachable(String),
    /// The master answered with ERROR.
    Server {
        code: ErrorCode,
        text: String,
    },
    /// No answer within the client's deadline; a write's outcome is unknown.
    Timeout {
        waited_ms: u64,
    },
    /// The master did not prove it holds the shared secret (or broke the handshake).
    Untrusted(String),
    /// The connection broke after a WRITE was sent and before its answer came: the write may
    /// or may not have happened. It is not sent again, since a second copy could take effect
    /// after writes that others made in between.
    Unknown(String),
    /// A compare-and-set found the key at another version (`current`; 0: no such key), and
    /// wrote nothing.
    Conflict {
        current: u64,
    },
    /// The master sent something that is not a valid answer.
    Protocol(String),
    /// An answer's frame is longer than this client takes (`--max-value`); it was not read,
    /// and the connection it came on was closed.
    ReplyTooLarge {
        len: usize,
        max: usize,
    },
    /// The request cannot be sent as asked (empty or oversize key, for example).
    Invalid(String),
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreachable(why) => write!(f, "no master reachable: {why}"),
            Error::Server { code, text } => write!(f, "{}: {text}", code.name()),
            Error::Timeout { waited_ms } => {
                write!(
                    f,
                    "TIMEOUT: no answer after {waited_ms} ms (a write's outcome is unknown)"
                )
            }
            Error::Untrusted(why) => write!(f, "UNAUTHORIZED: not trusting the master: {why}"),
            Error::Unknown(why) => {
                write!(f, "UNKNOWN: {why}; the write may or may not have happened")
            }
            Error::Conflict { current } => write!(f, "CONFLICT: current version {current}"),
            Error::Protocol(why) => write!(f, "protocol error: {why}"),
            Error::ReplyTooLarge { len, max } => write!(
                f,
                "TOO_LARGE: the answer is a frame of {len} bytes, over this client's limit of \
                 {max} bytes (from --max-value); it was not read: raise --max-value to the \
                 master's"
            ),
            Error::Invalid(why) => write!(f, "invalid request: {why}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

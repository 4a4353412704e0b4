//! Errors the codec reports; each carries the numbers that explain it.

use std::fmt;

/// Why a buffer could not be decoded into a frame. Every variant means the byte stream is not a
/// dsm stream any more: the connection that sent it should be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The length prefix is smaller than the fixed header.
    TooShort { len: usize, min: usize },
    /// The length prefix is over the frame maximum (checked before anything is buffered).
    TooLarge { len: usize, max: usize },
    /// The opcode byte names no known message.
    UnknownOpcode(u8),
    /// The body does not parse as the opcode's layout.
    Malformed { op: u8, reason: &'static str },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooShort { len, min } => {
                write!(
                    f,
                    "frame length {len} is shorter than the {min}-byte header"
                )
            }
            WireError::TooLarge { len, max } => {
                write!(f, "frame length {len} is over the maximum of {max} bytes")
            }
            WireError::UnknownOpcode(op) => write!(f, "unknown opcode 0x{op:02x}"),
            WireError::Malformed { op, reason } => {
                write!(f, "malformed body for opcode 0x{op:02x}: {reason}")
            }
        }
    }
}

impl std::error::Error for WireError {}

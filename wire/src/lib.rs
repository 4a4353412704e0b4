//! The dsm wire protocol: frame types and a sans-I/O codec (no sockets, no clocks).
//!
//! A frame is a fixed 13-byte big-endian header followed by an opcode-specific body:
//!
//! ```text
//! +----------------+--------+---------------------+------------------+
//! | len: u32 (BE)  | op: u8 | request id: u64 (BE)| body (len-13 B)  |
//! +----------------+--------+---------------------+------------------+
//! ```
//!
//! `len` counts the whole frame, header included. See `PROTOCOL.md` for every body layout.
//!
//! ```
//! use dsm_wire::{decode, encode, Frame};
//! let mut buf = Vec::new();
//! encode(&Frame::new(7, dsm_wire::Body::Read { key: b"k".to_vec() }), &mut buf);
//! let (frame, used) = decode(&buf).unwrap().unwrap();
//! assert_eq!(used, buf.len());
//! assert_eq!(frame.req_id, 7);
//! ```

mod body_ref;
mod decode;
mod encode;
mod error;
mod frame;
mod hint;
mod reader;

pub use body_ref::BodyRef;
pub use decode::{decode, decode_borrowed, decode_with_max, Decoded};
pub use encode::{encode, encode_ref, encode_ref_head};
pub use error::WireError;
pub use frame::{is_tombstone, plain_version, TOMBSTONE};
pub use frame::{
    AuthBytes, BackupLink, Body, ErrorCode, Frame, Limits, Opcode, Role, ServerRole, SlaveStatus,
    Status, SyncEvent, WriteId, AUTH_LEN, RECALL_NONE, RECALL_UNSURE,
};
pub use hint::{
    naming_primary, primary_named, says_dropped, says_recovering, says_taken, DROPPED, RECOVERING,
    TAKEN,
};

/// Bytes in the fixed header: length (4), opcode (1), request id (8).
pub const HEADER_LEN: usize = 13;
/// Default largest key a server accepts (1 KiB). Servers take `--max-key` to change it.
pub const DEFAULT_MAX_KEY: usize = 1024;
/// Default largest value a server accepts (1 MiB). Servers take `--max-value` to change it.
pub const DEFAULT_MAX_VALUE: usize = 1024 * 1024;
/// Default largest frame `decode` accepts: a maximal STORE with default key and value limits,
/// plus slack so that a slightly oversize value is still a well-formed frame and gets an ERROR
/// reply instead of a closed connection.
pub const DEFAULT_MAX_FRAME: usize = DEFAULT_MAX_VALUE + DEFAULT_MAX_KEY + 64 * 1024;

/// The largest frame that carries a key of `max_key` and a value of `max_value` bytes, with the
/// same slack as [`DEFAULT_MAX_FRAME`].
pub fn max_frame_for(max_key: usize, max_value: usize) -> usize {
    max_value
        .saturating_add(max_key)
        .saturating_add(64 * 1024)
        .min(u32::MAX as usize)
}

/// The longest id a slave or a standby master may give in HELLO.
pub const MAX_PEER_ID: usize = 128;

/// Why `id` is no id a peer of this `role` may give in HELLO, if it is not: a slave's is 1 to
/// [`MAX_PEER_ID`] bytes of printable characters without spaces; a standby master's (its
/// heartbeat and client addresses) at most [`MAX_PEER_ID`] printable bytes; a client's is not
/// used.
pub fn check_peer_id(role: Role, id: &str) -> Option<String> {
    let printable = |spaces: bool| {
        id.chars()
            .all(|c| !c.is_control() && (spaces || !c.is_whitespace()))
    };
    match role {
        Role::Client => None,
        Role::Slave if id.is_empty() || id.len() > MAX_PEER_ID || !printable(false) => {
            Some(format!(
            "a slave id must be 1 to {MAX_PEER_ID} bytes of printable characters without spaces \
             (got {} bytes: {:?})",
            id.len(),
            id.chars().take(32).collect::<String>()
        ))
        }
        Role::Backup if id.len() > MAX_PEER_ID || !printable(true) => Some(format!(
            "a master id must be at most {MAX_PEER_ID} bytes of printable characters (got {} \
             bytes)",
            id.len()
        )),
        _ => None,
    }
}

//! Fuzzing harnesses: each takes arbitrary bytes, drives one decoder or state machine of the
//! servers with them, and panics only on a bug. The cargo-fuzz targets in `fuzz/` are one
//! line each around these, and `tests/tests/fuzz_corpus.rs` replays the checked-in inputs
//! through them on stable Rust, so a finding stays fixed. Every harness reads frames with
//! `decode_borrowed`, never a list of opcodes: a new opcode needs no change here.

pub mod decode;
pub mod handshake;
mod input;
mod master_side;
pub mod replay;
pub mod seeds;
pub mod standby;

pub use self::input::Input;

/// A harness: arbitrary bytes in, a panic only on a bug.
pub type Harness = fn(&[u8]);

/// The harnesses by the name of their fuzz target (and of their corpus directory).
pub const TARGETS: &[(&str, Harness)] = &[
    ("decode", decode::run),
    ("handshake", handshake::run),
    ("standby_sync", standby::run),
    ("slave_replay", replay::run),
];

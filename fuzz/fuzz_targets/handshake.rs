//! Fuzz target: both sides of the handshake fed arbitrary frames (tests/src/fuzzing/handshake.rs).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsm_tests::fuzzing::handshake::run(data));

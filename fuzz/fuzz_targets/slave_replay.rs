//! Fuzz target: the slave's log replay over an arbitrary data directory (tests/src/fuzzing/replay.rs).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsm_tests::fuzzing::replay::run(data));

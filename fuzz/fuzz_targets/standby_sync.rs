//! Fuzz target: the standby master's SYNC/snapshot apply path (tests/src/fuzzing/standby.rs).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsm_tests::fuzzing::standby::run(data));

//! Fuzz target: decode_borrowed against decode_with_max on arbitrary bytes (tests/src/fuzzing/decode.rs).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dsm_tests::fuzzing::decode::run(data));

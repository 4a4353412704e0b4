//! Fuzz target: `decode` on arbitrary bytes never panics, and every frame it returns re-encodes
//! to exactly the bytes it was decoded from.

#![no_main]

use dsm_wire::{decode, encode, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Decode frames back to back, as a connection's read buffer would.
    let mut rest = data;
    while let Ok(Some((frame, used))) = decode(rest) {
        assert!(
            used >= HEADER_LEN && used <= rest.len(),
            "used {used} of {}",
            rest.len()
        );
        let declared = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert_eq!(
            used, declared,
            "consumed bytes differ from the length prefix"
        );

        // Every frame has one encoding: re-encoding gives back the input bytes, and those
        // decode to the same frame.
        let mut again = Vec::new();
        encode(&frame, &mut again);
        assert_eq!(
            again,
            &rest[..used],
            "re-encoding {frame:?} changed its bytes"
        );
        assert_eq!(decode(&again), Ok(Some((frame, used))));

        // One byte short of a whole frame is a prefix: it needs more bytes.
        assert_eq!(decode(&rest[..used - 1]), Ok(None));
        rest = &rest[used..];
    }
});

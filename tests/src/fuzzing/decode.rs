//! `decode_borrowed` against `decode_with_max` on the same bytes (the servers read with the
//! first, the clients and tests with the second): the same frame or the same error, the same
//! bytes consumed; and each frame has one encoding, which both encoders give back.

use dsm_wire::{
    decode, decode_borrowed, decode_with_max, encode, encode_ref, Decoded, DEFAULT_MAX_FRAME,
    HEADER_LEN,
};

use super::Input;

/// The first byte picks the frame maximum (the default, or a small one so that "too large"
/// is reachable); the rest is decoded frame after frame, as a connection's read buffer is.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let pick = input.byte();
    let max = match pick & 1 {
        0 => DEFAULT_MAX_FRAME,
        _ => HEADER_LEN + (pick >> 1) as usize * 8,
    };
    let mut rest = input.rest();
    loop {
        let owned = decode_with_max(rest, max);
        let borrowed = decode_borrowed(rest, max);
        if max == DEFAULT_MAX_FRAME {
            assert_eq!(decode(rest), owned, "decode and decode_with_max differ");
        }
        let (frame, used) = match (owned, borrowed) {
            (Ok(Some((frame, used))), Ok(Some((view, used_b)))) => {
                assert_eq!(used, used_b, "bytes consumed differ for {frame:?}");
                check_view(&view, rest, used);
                assert_eq!(view.into_frame(), frame, "the borrowed decode differs");
                (frame, used)
            }
            (Ok(None), Ok(None)) => return,
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "the two decoders give different errors");
                return;
            }
            (a, b) => panic!(
                "the decoders disagree on {:?}: decode_with_max {a:?}, decode_borrowed {b:?}",
                &rest[..rest.len().min(64)]
            ),
        };
        assert!(
            (HEADER_LEN..=rest.len()).contains(&used) && used <= max,
            "used {used} of {} (max {max})",
            rest.len()
        );
        let declared = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        assert_eq!(
            used, declared,
            "consumed bytes differ from the length prefix"
        );
        let mut again = Vec::new();
        encode(&frame, &mut again);
        assert_eq!(
            again,
            &rest[..used],
            "re-encoding {frame:?} changed its bytes"
        );
        // Any shorter prefix of a whole frame needs more bytes, from both decoders.
        for cut in [used - 1, rest[0] as usize % used] {
            assert_eq!(decode_with_max(&rest[..cut], max), Ok(None), "prefix {cut}");
            assert_eq!(decode_borrowed(&rest[..cut], max), Ok(None), "prefix {cut}");
        }
        rest = &rest[used..];
    }
}

/// A borrowed body encodes back to the bytes it was decoded from. (Nothing here names a
/// variant of `BodyRef`, so that a new one needs no change.)
fn check_view(view: &Decoded<'_>, buf: &[u8], used: usize) {
    let Decoded::Ref(req_id, body) = view else {
        return;
    };
    let mut again = Vec::new();
    encode_ref(*req_id, body, &mut again);
    assert_eq!(
        again,
        &buf[..used],
        "encode_ref of {body:?} changed its bytes"
    );
}

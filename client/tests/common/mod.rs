//! What the client's tests against fake masters share.

use std::io::Read;
use std::net::TcpStream;

use dsm_wire::{decode, Frame};

/// The next frame from `s` (`buf` holds what came after the last one); `None` once it closes.
pub fn next_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Frame> {
    loop {
        if let Ok(Some((frame, used))) = decode(buf) {
            buf.drain(..used);
            return Some(frame);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

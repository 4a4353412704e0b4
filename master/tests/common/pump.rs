//! The old pump, kept until auth_sim.rs is on the network: frames between the master and the
//! peers a test plays, until nothing moves.

use std::time::Instant;

use dsm_master::{Master, Out};
use dsm_wire::Frame;

/// Drain the master's outbox until it stays empty. Each entry goes to `handle`, which plays
/// the peer it is for; an answer it returns, `(conn, frame)`, is fed back to the master.
pub fn pump(m: &mut Master, now: Instant, mut handle: impl FnMut(Out) -> Option<(usize, Frame)>) {
    let mut out = Vec::new();
    loop {
        m.drain_out(&mut out);
        if out.is_empty() {
            return;
        }
        for o in out.drain(..) {
            if let Some((conn, reply)) = handle(o) {
                m.on_frame(conn, reply, now);
            }
        }
    }
}

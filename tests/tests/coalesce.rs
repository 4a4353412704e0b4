//! Reply coalescing (`--coalesce-us`): the master may hold replies to a client that is still owed
//! more, but only while it has other work at hand. A reply must never wait on a request that is
//! stuck, however long the hold is allowed to be.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use dsm_tests::raw::{next_frame, send_frame as send, stuck_slaves, Heard};
use dsm_wire::{Body, Frame};

/// Far beyond the answer deadline below: a reply that waits for the hold to run out fails.
const HOLD_US: &str = "600000000";
/// How long the PONG may take. Generous for a noisy CI machine, and far below both the hold
/// and the stuck write's deadline.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// The next frame from the master, or a panic once `ANSWER_DEADLINE` has passed.
fn receive(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Frame {
    match next_frame(conn, buf, Instant::now() + ANSWER_DEADLINE) {
        Heard::Frame(frame) => frame,
        other => panic!("no frame from the master within {ANSWER_DEADLINE:?}: {other:?}"),
    }
}

#[test]
fn a_reply_is_not_held_behind_a_stuck_request_when_the_master_is_idle() {
    let (mut cluster, mut raw, mut buf) = stuck_slaves(
        // The stuck write stays stuck for the whole test.
        &["--coalesce-us", HOLD_US, "--request-timeout-ms", "600000"],
        Instant::now() + ANSWER_DEADLINE,
    );
    // This write's STOREs reach stopped slaves: the master owes the client its answer for as
    // long as they stay stopped. The PING behind it is answered at once; with the master idle
    // the PONG must go out, not wait for the write.
    send(
        &mut raw,
        2,
        Body::Write {
            key: b"stuck".to_vec(),
            value: b"v".to_vec(),
        },
    );
    send(&mut raw, 3, Body::Ping);
    let frame = receive(&mut raw, &mut buf);
    assert_eq!((frame.req_id, frame.body), (3, Body::Pong));
    for i in 0..cluster.slave_count() {
        cluster.cont_slave(i);
    }
    // Once the slaves run again the write is answered too.
    let frame = receive(&mut raw, &mut buf);
    assert_eq!((frame.req_id, frame.body), (2, Body::Ok));
}

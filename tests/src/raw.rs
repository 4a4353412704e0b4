//! Frames on a plain `TcpStream`, for tests that speak the protocol without the client library
//! (hostile peers, half-done handshakes, replies observed one by one).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use dsm_wire::{decode, encode, Body, Frame, Role};

use crate::{Cluster, ClusterOpts};

/// Master flags that keep a request to stopped slaves waiting for as long as a test runs: no
/// ACK timeout drops a silent slave, and no PING sweep does.
pub const PATIENT_WITH_SLAVES: [&str; 4] =
    ["--ack-timeout-ms", "600000", "--ping-interval-ms", "600000"];

/// Connect to the master at `addr` as a client without a secret (HELLO, request id 1) and wait
/// for its WELCOME; panics without one by `deadline`. Returns the stream and its read buffer.
pub fn welcomed_client(addr: SocketAddr, deadline: Instant) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let hello = Body::Hello {
        role: Role::Client,
        epoch: 0,
        id: String::new(),
        boot: 0,
        nonce: None,
        limits: None,
    };
    send_frame(&mut stream, 1, hello);
    let mut rbuf = Vec::new();
    match next_frame(&mut stream, &mut rbuf, deadline) {
        Heard::Frame(f) if matches!(f.body, Body::Welcome { .. }) => {}
        other => panic!("the master did not WELCOME a client: {other:?}"),
    }
    (stream, rbuf)
}

/// A master (R=2, `extra` flags on top of [`PATIENT_WITH_SLAVES`]) whose three slaves are
/// stopped once a raw client has been WELCOMEd (by `deadline`): a write sent on it stays stuck
/// on the stopped slaves until its request deadline. Returns the cluster, the client's stream
/// and its read buffer.
pub fn stuck_slaves(extra: &[&str], deadline: Instant) -> (Cluster, TcpStream, Vec<u8>) {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        master_args: extra
            .iter()
            .chain(&PATIENT_WITH_SLAVES)
            .map(|s| s.to_string())
            .collect(),
        ..Default::default()
    });
    let (stream, rbuf) = welcomed_client(cluster.master_addr(), deadline);
    for i in 0..cluster.slave_count() {
        cluster.stop_slave(i);
    }
    (cluster, stream, rbuf)
}

/// What a raw connection heard back by a deadline.
#[derive(Debug, PartialEq)]
pub enum Heard {
    Frame(Frame),
    Closed,
    Nothing,
}

/// The encoded bytes of one frame.
pub fn frame_bytes(req_id: u64, body: Body) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&Frame::new(req_id, body), &mut out);
    out
}

/// Write one frame; panics if the socket refuses it.
pub fn send_frame(stream: &mut TcpStream, req_id: u64, body: Body) {
    stream
        .write_all(&frame_bytes(req_id, body))
        .expect("send a frame to the master");
}

/// The next whole frame on `stream` (decoding from `rbuf`, which keeps any bytes after it),
/// EOF, or nothing by `deadline`.
pub fn next_frame(stream: &mut TcpStream, rbuf: &mut Vec<u8>, deadline: Instant) -> Heard {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if let Some((frame, used)) = decode(rbuf).expect("the master sends well-formed frames") {
            rbuf.drain(..used);
            return Heard::Frame(frame);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Heard::Nothing;
        }
        stream
            .set_read_timeout(Some(left))
            .expect("set a read timeout");
        match stream.read(&mut chunk) {
            Ok(0) => return Heard::Closed,
            Ok(n) => rbuf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Heard::Closed,
        }
    }
}

//! `dsm-relay-bound`: what a 1 MiB WRITE at 1 × 1 could cost at best on this machine with a
//! master in the path, measured with nothing of dsm's in it. Three roles, each its own process
//! (so they can be pinned as `make bench` pins dsm): a `sink` stands for a slave (reads a
//! frame whole, answers one byte), a `relay` for the master (takes a client's frame and sends
//! it to two sinks, answers once both have), a `client` for the load generator (one frame at a
//! time, prints frames per second). With one sink the relay stands for a master at R=1. The
//! relay either forwards a frame once it has all of it
//! (`store`, what dsm's master does) or each piece as it arrives (`cut`, cut-through
//! forwarding). A client sending straight to one sink is one hop, as to Redis. Blocking std
//! I/O, no parsing beyond the 4-byte length: a lower bound on each shape's cost, not dsm's.
//! `scripts/relay-bound.sh` runs the three shapes side by side.
//!
//! Usage:
//!   dsm-relay-bound sink                          prints "listening PORT", serves one client
//!   dsm-relay-bound relay store|cut PORT1 [PORT2] prints "listening PORT", one client
//!   dsm-relay-bound client PORT FRAMES BYTES      prints "FRAMES frames of BYTES in S s: R/s"

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

/// Pieces the relay forwards in `cut` mode, and the read size everywhere.
const CHUNK: usize = 64 * 1024;

fn listen() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    println!(
        "listening {}",
        l.local_addr().expect("local address").port()
    );
    std::io::stdout().flush().expect("stdout");
    l
}

fn connect(port: &str) -> TcpStream {
    let s = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn frame_len(s: &mut TcpStream) -> Option<usize> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    Some(u32::from_be_bytes(len) as usize)
}

fn sink() {
    let (mut s, _) = listen().accept().expect("accept");
    s.set_nodelay(true).expect("nodelay");
    let mut buf = Vec::new();
    while let Some(len) = frame_len(&mut s) {
        buf.resize(len, 0);
        s.read_exact(&mut buf).expect("frame");
        s.write_all(&[1]).expect("ack");
    }
}

fn relay(cut: bool, ports: &[&str]) {
    let l = listen();
    let mut sinks: Vec<TcpStream> = ports.iter().map(|p| connect(p)).collect();
    let (mut c, _) = l.accept().expect("accept");
    c.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; CHUNK];
    let mut whole = Vec::new();
    while let Some(len) = frame_len(&mut c) {
        let head = (len as u32).to_be_bytes();
        if cut {
            for s in &mut sinks {
                s.write_all(&head).expect("to sink");
            }
            let mut left = len;
            while left > 0 {
                let n = c.read(&mut buf[..left.min(CHUNK)]).expect("from client");
                assert!(n > 0, "client closed mid-frame");
                for s in &mut sinks {
                    s.write_all(&buf[..n]).expect("to sink");
                }
                left -= n;
            }
        } else {
            whole.resize(4 + len, 0);
            whole[..4].copy_from_slice(&head);
            c.read_exact(&mut whole[4..]).expect("from client");
            for s in &mut sinks {
                s.write_all(&whole).expect("to sink");
            }
        }
        for s in &mut sinks {
            let mut ack = [0u8; 1];
            s.read_exact(&mut ack).expect("ack");
        }
        c.write_all(&[1]).expect("to client");
    }
}

fn client(port: &str, frames: u64, bytes: usize) {
    let mut s = connect(port);
    let mut frame = vec![7u8; 4 + bytes];
    frame[..4].copy_from_slice(&(bytes as u32).to_be_bytes());
    let start = Instant::now();
    for i in 0..frames {
        frame[4] = i as u8;
        s.write_all(&frame).expect("send");
        let mut ack = [0u8; 1];
        s.read_exact(&mut ack).expect("ack");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{frames} frames of {bytes} in {secs:.3} s: {:.1}/s",
        frames as f64 / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["sink"] => sink(),
        ["relay", mode @ ("store" | "cut"), ports @ ..] if (1..=2).contains(&ports.len()) => {
            relay(*mode == "cut", ports)
        }
        ["client", port, frames, bytes] => match (frames.parse(), bytes.parse()) {
            (Ok(f), Ok(b)) => client(port, f, b),
            _ => usage(),
        },
        _ => usage(),
    }
}

fn usage() {
    eprintln!(
        "usage: dsm-relay-bound sink | relay store|cut PORT1 [PORT2] | client PORT FRAMES BYTES"
    );
    std::process::exit(2);
}

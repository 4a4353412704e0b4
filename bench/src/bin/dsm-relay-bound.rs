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
//! The same at 4 × 32 with small frames (`psink`, `prelay`, `pclient`): the relay a single mio
//! loop, as dsm's master is, forwarding every frame to each sink and answering a client's
//! frame once every sink has answered it (sinks answer in order, one byte a frame); each
//! client connection keeps DEPTH frames in flight.
//!
//! With no relay at all (`fanout`, `msink`, `pfanout`): the client writes each frame straight
//! to every sink and waits for all of them, the least any design can move for a write kept on
//! two nodes (a client-driven data path, GFS-style, with the master ordering versions only;
//! its control messages not counted). This bounds every design at R=2, not only a master in
//! the path.
//!
//! Usage:
//!   dsm-relay-bound sink                          prints "listening PORT", serves one client
//!   dsm-relay-bound relay store|cut PORT1 [PORT2] prints "listening PORT", one client
//!   dsm-relay-bound client PORT FRAMES BYTES      prints "FRAMES frames of BYTES in S s: R/s"
//!   dsm-relay-bound psink                         as sink, answering frames in batches
//!   dsm-relay-bound prelay CONNS PORT1 [PORT2]    a mio relay for CONNS clients
//!   dsm-relay-bound pclient PORT CONNS DEPTH FRAMES BYTES
//!   dsm-relay-bound fanout FRAMES BYTES PORT...   a client writing each frame to every sink
//!   dsm-relay-bound msink CONNS                   a mio sink serving CONNS pipelined clients
//!   dsm-relay-bound pfanout CONNS DEPTH FRAMES BYTES PORT...
//!                                                 pipelined clients writing to every msink

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use mio::{Events, Interest, Poll, Token};

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
    report(frames, bytes, start);
}

/// The client writing each frame straight to every sink (no relay: the least a replicated
/// write can move), a piece to each in turn so the sinks read in parallel, then waiting for
/// every sink's answer.
fn fanout(ports: &[&str], frames: u64, bytes: usize) {
    let mut sinks: Vec<TcpStream> = ports.iter().map(|p| connect(p)).collect();
    let mut frame = vec![7u8; 4 + bytes];
    frame[..4].copy_from_slice(&(bytes as u32).to_be_bytes());
    let start = Instant::now();
    for i in 0..frames {
        frame[4] = i as u8;
        for piece in frame.chunks(CHUNK) {
            for s in &mut sinks {
                s.write_all(piece).expect("send");
            }
        }
        for s in &mut sinks {
            let mut ack = [0u8; 1];
            s.read_exact(&mut ack).expect("ack");
        }
    }
    report(frames, bytes, start);
}

/// Print what a client moved since `start`: "FRAMES frames of BYTES in S s: R/s".
fn report(frames: u64, bytes: usize, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{frames} frames of {bytes} in {secs:.3} s: {:.1}/s",
        frames as f64 / secs
    );
}

/// Whole frames at the front of `buf[at..]`: how many, and where the first partial one starts.
fn whole_frames(buf: &[u8], mut at: usize) -> (usize, usize) {
    let mut n = 0;
    while buf.len() - at >= 4 {
        let len = u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if buf.len() - at < 4 + len {
            break;
        }
        at += 4 + len;
        n += 1;
    }
    (n, at)
}

/// A sink for pipelined frames: reads what has come, answers one byte for each whole frame in
/// it, in one write.
fn psink() {
    let (mut s, _) = listen().accept().expect("accept");
    s.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; 4 * CHUNK];
    let (mut filled, mut acks) = (0, Vec::new());
    loop {
        if filled == buf.len() {
            buf.resize(2 * buf.len(), 0);
        }
        let n = match s.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let (frames, used) = whole_frames(&buf[..filled], 0);
        buf.copy_within(used..filled, 0);
        filled -= used;
        acks.clear();
        acks.resize(frames, 1u8);
        if s.write_all(&acks).is_err() {
            return;
        }
    }
}

/// One connection of the relay: its socket and the bytes read and to write.
struct PConn {
    stream: mio::net::TcpStream,
    rbuf: Vec<u8>,
    rend: usize,
    wbuf: Vec<u8>,
}

impl PConn {
    fn new(stream: mio::net::TcpStream) -> PConn {
        stream.set_nodelay(true).expect("nodelay");
        PConn {
            stream,
            rbuf: vec![0; 4 * CHUNK],
            rend: 0,
            wbuf: Vec::new(),
        }
    }

    /// Read until the socket is empty; false once the peer has closed.
    fn fill(&mut self) -> bool {
        loop {
            if self.rend == self.rbuf.len() {
                self.rbuf.resize(2 * self.rbuf.len(), 0);
            }
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return false,
                Ok(n) => self.rend += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Read what came; once the peer has closed, say so in `closed` and stop polling the
    /// connection (a closed connection can still report events: it is counted once).
    fn fill_or_close(&mut self, registry: &mio::Registry, closed: &mut bool) {
        if !self.fill() {
            *closed = true;
            registry.deregister(&mut self.stream).expect("deregister");
        }
    }

    fn flush(&mut self) {
        while !self.wbuf.is_empty() {
            match self.stream.write(&self.wbuf) {
                Ok(n) => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// The relay for pipelined clients: one mio loop, every client frame to every sink, the
/// client answered (one byte) once every sink has answered that frame.
fn prelay(conns: usize, ports: &[&str]) {
    let l = listen();
    let mut poll = Poll::new().expect("poll");
    let mut sinks: Vec<PConn> = ports
        .iter()
        .map(|p| {
            let s = connect(p);
            s.set_nonblocking(true).expect("nonblocking");
            PConn::new(mio::net::TcpStream::from_std(s))
        })
        .collect();
    for (i, s) in sinks.iter_mut().enumerate() {
        let both = Interest::READABLE | Interest::WRITABLE;
        poll.registry()
            .register(&mut s.stream, Token(1000 + i), both)
            .expect("register");
    }
    let mut clients = Vec::new();
    for i in 0..conns {
        let (c, _) = l.accept().expect("accept");
        c.set_nonblocking(true).expect("nonblocking");
        let mut c = PConn::new(mio::net::TcpStream::from_std(c));
        let both = Interest::READABLE | Interest::WRITABLE;
        poll.registry()
            .register(&mut c.stream, Token(i), both)
            .expect("register");
        clients.push(c);
    }
    // The client of each frame forwarded and not yet answered, oldest first; how many
    // each sink has answered.
    let mut owners: VecDeque<usize> = VecDeque::new();
    let mut acked = vec![0u64; sinks.len()];
    let mut answered = 0u64;
    let mut closed = vec![false; conns];
    let mut events = Events::with_capacity(256);
    while closed.contains(&false) {
        poll.poll(&mut events, None).expect("poll");
        for ev in events.iter() {
            let Token(t) = ev.token();
            if t >= 1000 {
                let s = &mut sinks[t - 1000];
                if ev.is_readable() {
                    s.fill();
                    acked[t - 1000] += s.rend as u64;
                    s.rend = 0;
                }
            } else if ev.is_readable() && !closed[t] {
                let c = &mut clients[t];
                c.fill_or_close(poll.registry(), &mut closed[t]);
                let (frames, used) = whole_frames(&c.rbuf[..c.rend], 0);
                for s in &mut sinks {
                    s.wbuf.extend_from_slice(&c.rbuf[..used]);
                }
                owners.extend(std::iter::repeat_n(t, frames));
                c.rbuf.copy_within(used..c.rend, 0);
                c.rend -= used;
            }
        }
        let done = acked.iter().copied().min().unwrap_or(0);
        while answered < done {
            let owner = owners.pop_front().expect("an owner per frame");
            clients[owner].wbuf.push(1);
            answered += 1;
        }
        for s in &mut sinks {
            s.flush();
        }
        for c in &mut clients {
            c.flush();
        }
    }
}

/// A sink for CONNS pipelined clients at once, in one mio loop (a slave serving several
/// writers): each connection's whole frames answered one byte each, one write per turn.
fn msink(conns: usize) {
    let l = listen();
    let mut poll = Poll::new().expect("poll");
    let mut clients = Vec::new();
    for i in 0..conns {
        let (c, _) = l.accept().expect("accept");
        c.set_nonblocking(true).expect("nonblocking");
        let mut c = PConn::new(mio::net::TcpStream::from_std(c));
        poll.registry()
            .register(&mut c.stream, Token(i), Interest::READABLE)
            .expect("register");
        clients.push(c);
    }
    let mut closed = vec![false; conns];
    let mut events = Events::with_capacity(256);
    while closed.contains(&false) {
        poll.poll(&mut events, None).expect("poll");
        for ev in events.iter() {
            let t = ev.token().0;
            if closed[t] {
                continue;
            }
            let c = &mut clients[t];
            c.fill_or_close(poll.registry(), &mut closed[t]);
            let (frames, used) = whole_frames(&c.rbuf[..c.rend], 0);
            c.rbuf.copy_within(used..c.rend, 0);
            c.rend -= used;
            c.wbuf.resize(c.wbuf.len() + frames, 1);
            c.flush();
        }
    }
}

/// CONNS client threads, each with a connection to every sink (no relay), DEPTH frames of
/// BYTES in flight: every frame goes to every sink, and counts as done once every sink has
/// answered it.
fn pfanout(ports: &[String], conns: usize, depth: usize, frames: u64, bytes: usize) {
    let mut frame = vec![7u8; 4 + bytes];
    frame[..4].copy_from_slice(&(bytes as u32).to_be_bytes());
    let batch: Vec<u8> = frame.repeat(depth);
    let per = frames / conns as u64;
    let links: Vec<Vec<TcpStream>> = (0..conns)
        .map(|_| ports.iter().map(|p| connect(p)).collect())
        .collect();
    let start = Instant::now();
    let threads: Vec<_> = links
        .into_iter()
        .map(|mut sinks| {
            let batch = batch.clone();
            let size = frame.len();
            std::thread::spawn(move || {
                let first = (depth as u64).min(per);
                for s in &mut sinks {
                    s.write_all(&batch[..first as usize * size]).expect("send");
                }
                let (mut sent, mut done) = (first, 0u64);
                let mut acked = vec![0u64; sinks.len()];
                let mut acks = vec![0u8; depth];
                while done < per {
                    for (s, a) in sinks.iter_mut().zip(&mut acked) {
                        if *a == done {
                            let n = s.read(&mut acks).expect("acks");
                            assert!(n > 0, "a sink closed");
                            *a += n as u64;
                        }
                    }
                    let now = acked.iter().copied().min().expect("a sink");
                    let more = (now - done).min(per - sent);
                    done = now;
                    for s in &mut sinks {
                        s.write_all(&batch[..more as usize * size]).expect("send");
                    }
                    sent += more;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread");
    }
    report(per * conns as u64, bytes, start);
}

/// CONNS connections (a thread each), DEPTH frames of BYTES in flight on each, FRAMES in all:
/// [`pfanout`] to one port (the relay answers a frame as a sink does).
fn pclient(port: &str, conns: usize, depth: usize, frames: u64, bytes: usize) {
    pfanout(&[port.to_string()], conns, depth, frames, bytes)
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
        ["psink"] => psink(),
        ["fanout", frames, bytes, ports @ ..] if !ports.is_empty() => {
            match (frames.parse(), bytes.parse()) {
                (Ok(f), Ok(b)) => fanout(ports, f, b),
                _ => usage(),
            }
        }
        ["msink", conns] => match conns.parse() {
            Ok(n) if n > 0 => msink(n),
            _ => usage(),
        },
        ["pfanout", conns, depth, frames, bytes, ports @ ..] if !ports.is_empty() => {
            match (conns.parse(), depth.parse(), frames.parse(), bytes.parse()) {
                (Ok(c), Ok(d), Ok(f), Ok(b)) if c > 0 && d > 0 => {
                    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
                    pfanout(&ports, c, d, f, b)
                }
                _ => usage(),
            }
        }
        ["prelay", conns, ports @ ..] if (1..=2).contains(&ports.len()) => match conns.parse() {
            Ok(n) => prelay(n, ports),
            _ => usage(),
        },
        ["pclient", port, conns, depth, frames, bytes] => {
            match (conns.parse(), depth.parse(), frames.parse(), bytes.parse()) {
                (Ok(c), Ok(d), Ok(f), Ok(b)) if c > 0 && d > 0 => pclient(port, c, d, f, b),
                _ => usage(),
            }
        }
        _ => usage(),
    }
}

fn usage() {
    eprintln!(
        "usage: dsm-relay-bound sink | relay store|cut PORT1 [PORT2] | client PORT FRAMES BYTES\n\
         \x20      | psink | prelay CONNS PORT1 [PORT2] | pclient PORT CONNS DEPTH FRAMES BYTES\n\
         \x20      | fanout FRAMES BYTES PORT... | msink CONNS\n\
         \x20      | pfanout CONNS DEPTH FRAMES BYTES PORT..."
    );
    std::process::exit(2);
}

//! Hostile peers against a real master: idle, half-sent, garbage and absurd-length connections,
//! clients past `--max-conns` (told ERROR BUSY) and a client that never reads its replies. None of them may stop
//! a well-behaved client from being served.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dsm_client::Client;
use dsm_tests::raw::{frame_bytes, next_frame, Heard};
use dsm_tests::{poll_until, wait_until, Cluster, ClusterOpts};
use dsm_wire::{
    decode_with_max, encode, max_frame_for, Body, Frame, Role, DEFAULT_MAX_KEY, DEFAULT_MAX_VALUE,
};

const IDLE: usize = 1000;
const HALF_HEADER: usize = 200;
const GARBAGE: usize = 50;
const HUGE_LEN: usize = 50;
/// Below this many open files the test process cannot hold the whole mix (and neither can the
/// master, which inherits the limit).
const WANT_FDS: u64 = 4096;
/// File descriptors kept free for everything besides the hostile connections.
const FD_MARGIN: u64 = 300;
const PAIRS: usize = 200;
/// How long a peer the master should close gets to see its connection end.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

#[test]
fn hostile_mix_does_not_disturb_a_real_client() {
    let started = Instant::now();
    let limit = raise_fd_limit(WANT_FDS);
    let idle = if limit >= WANT_FDS {
        IDLE
    } else {
        let room = limit.saturating_sub(FD_MARGIN + (HALF_HEADER + GARBAGE + HUGE_LEN) as u64);
        let idle = IDLE.min(room as usize);
        println!(
            "NOTE: open-files limit is {limit} (< {WANT_FDS}) and cannot be raised; \
             opening {idle} of {IDLE} idle connections"
        );
        idle
    };
    // A long hello timeout keeps the idle and half-sent connections open for the whole test, so
    // the real client is served while the master holds all of them. `-v`: the master logs why
    // it closed a connection ("bad frame: ...") at debug level.
    let cluster = start(2, &["--hello-timeout-ms", "60000", "-v"]);
    let addr = cluster.master_addr();
    let pid = cluster.master_pid();
    let mut client = cluster.client();
    client.write(b"warm-up", b"w").expect("warm-up WRITE");
    assert_eq!(
        client.read(b"warm-up").expect("warm-up READ"),
        Some(b"w".to_vec())
    );
    let rss_before = rss_kib(pid);
    let fds_before = open_fds(pid);

    let t = Instant::now();
    let idle_conns: Vec<TcpStream> = (0..idle).map(|_| connect(addr)).collect();
    let half = &hello(1)[..7];
    let half_conns: Vec<TcpStream> = (0..HALF_HEADER)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(half).expect("send half a header");
            s
        })
        .collect();
    let max_frame = max_frame_for(DEFAULT_MAX_KEY, DEFAULT_MAX_VALUE);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut bad_conns: Vec<(&str, TcpStream)> = Vec::new();
    for _ in 0..GARBAGE {
        let mut s = connect(addr);
        // The master may close as soon as it has seen the first bad bytes; a inventory on our
        // side of the write is an early close, not a test failure.
        let _ = s.write_all(&garbage(&mut rng, max_frame));
        bad_conns.push(("garbage", s));
    }
    for _ in 0..HUGE_LEN {
        let mut s = connect(addr);
        let _ = s.write_all(&[0xff, 0xff, 0xff, 0xf0, 0x01]);
        bad_conns.push(("4 GiB length", s));
    }
    let opened = t.elapsed();

    // Every idle and half-sent connection is accepted and held, not left in the backlog. (The
    // slack: a connection of the start-up may still have counted in `fds_before`.)
    let held = idle + HALF_HEADER;
    wait_until(
        Duration::from_secs(10),
        &format!("the master to hold {held} more connections"),
        || open_fds(pid) + 2 >= fds_before + held,
    );

    let mut pair_times = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let key = format!("hostile-key-{i}").into_bytes();
        let value = format!("value {i} written among hostile peers").into_bytes();
        let t = Instant::now();
        client
            .write(&key, &value)
            .unwrap_or_else(|e| panic!("WRITE {i} among hostile peers: {e}"));
        let got = client
            .read(&key)
            .unwrap_or_else(|e| panic!("READ {i} among hostile peers: {e}"));
        pair_times.push(t.elapsed());
        assert_eq!(got, Some(value), "pair {i} read back a wrong value");
    }
    pair_times.sort();
    let (p50, p99, max) = (
        percentile(&pair_times, 50),
        percentile(&pair_times, 99),
        pair_times[PAIRS - 1],
    );
    println!("WRITE+READ pairs among hostile peers: p50 {p50:?} p99 {p99:?} max {max:?}");

    let deadline = Instant::now() + CLOSE_DEADLINE;
    for (i, (what, s)) in bad_conns.iter_mut().enumerate() {
        wait_closed(s, deadline)
            .unwrap_or_else(|e| panic!("{what} connection #{i} was not closed by the master: {e}"));
    }
    let bad_frames_logged = master_log_lines(cluster.log_dir(), "bad frame");

    let rss_after = rss_kib(pid);
    let fds_after = open_fds(pid);
    println!(
        "master RSS before {} KiB, after {} KiB (+{} KiB); open fds before {fds_before}, \
         after {fds_after}; {idle} idle + {HALF_HEADER} half-header connections held, \
         {} bad ones closed, {bad_frames_logged} 'bad frame' log lines; opened in {opened:?}",
        rss_before,
        rss_after,
        rss_after.saturating_sub(rss_before),
        bad_conns.len()
    );

    // Slow but legal peers are left alone (their hello timeout is 60 s), and the master serves.
    let mut probe = [0u8; 1];
    let dropped = idle_conns
        .iter()
        .chain(&half_conns)
        .filter(|s| {
            let mut s: &TcpStream = s;
            s.set_nonblocking(true).expect("non-blocking");
            !matches!(s.read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(dropped, 0, "idle or half-header connections were closed");
    assert!(alive(pid), "the master (pid {pid}) died");
    let status = cluster.status();
    assert_eq!(status.slaves.iter().filter(|s| s.live).count(), 2);
    assert!(
        p50 < Duration::from_millis(20),
        "median WRITE+READ pair took {p50:?} (p99 {p99:?}, max {max:?}) among hostile peers"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "master RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(
        bad_frames_logged >= bad_conns.len(),
        "the master logged {bad_frames_logged} 'bad frame' closes for {} bad connections",
        bad_conns.len()
    );
    println!("hostile mix: {:?} in all", started.elapsed());
}

#[test]
fn half_sent_header_is_closed_after_hello_timeout() {
    let cluster = start(0, &["--hello-timeout-ms", "300"]);
    let addr = cluster.master_addr();

    // A connection that did say HELLO must outlive the timeout: the close is about HELLO.
    let mut good = connect(addr);
    good.write_all(&hello(1)).expect("send HELLO");
    let mut rbuf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let welcome = next_frame(&mut good, &mut rbuf, deadline);
    assert!(is_welcome(&welcome), "HELLO got {welcome:?}");

    let mut half = connect(addr);
    let opened = Instant::now();
    half.write_all(&hello(2)[..5]).expect("send 5 bytes");
    wait_closed(&mut half, opened + Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("a 5-byte half header with --hello-timeout-ms 300: {e}"));
    let took = opened.elapsed();
    println!("half-sent header closed after {took:?} (hello timeout 300 ms)");
    assert!(
        took >= Duration::from_millis(250),
        "closed after {took:?}: before the hello timeout, so not for being silent"
    );

    good.write_all(&frame_bytes(2, Body::Ping))
        .expect("PING on the HELLOed connection");
    let pong = next_frame(
        &mut good,
        &mut rbuf,
        Instant::now() + Duration::from_secs(5),
    );
    assert!(
        matches!(
            pong,
            Heard::Frame(Frame {
                body: Body::Pong,
                ..
            })
        ),
        "a HELLOed connection past the timeout: {pong:?}"
    );
}

#[test]
fn max_conns_refuses_clients_with_an_error_and_serves_again_below_it() {
    const CAP: usize = 20;
    const OPEN: usize = 25;
    let started = Instant::now();
    let cluster = start(0, &["--max-conns", &CAP.to_string()]);
    let addr = cluster.master_addr();

    let mut conns: Vec<(TcpStream, Vec<u8>)> = (0..OPEN)
        .map(|i| {
            let mut s = connect(addr);
            s.write_all(&hello(i as u64)).expect("send HELLO");
            (s, Vec::new())
        })
        .collect();
    // Every HELLO is answered: WELCOME up to the cap, ERROR BUSY past it. None hangs.
    let heard: Vec<Heard> = conns
        .iter_mut()
        .map(|(s, rbuf)| next_frame(s, rbuf, Instant::now() + Duration::from_secs(5)))
        .collect();
    let welcomed = heard.iter().filter(|h| is_welcome(h)).count();
    println!("--max-conns {CAP}: {welcomed} of {OPEN} HELLOs welcomed; all heard: {heard:?}");
    // The last STATUS connection of the start-up may still count for a moment.
    assert!(
        (CAP - 1..=CAP).contains(&welcomed),
        "{welcomed} connections welcomed with --max-conns {CAP}"
    );
    let busy = |h: &Heard| {
        matches!(h, Heard::Frame(Frame { body: Body::Error { code, .. }, .. })
            if *code == dsm_wire::ErrorCode::Busy)
    };
    assert!(
        heard.iter().all(|h| is_welcome(h) || busy(h)),
        "a connection past the cap was not told ERROR BUSY: {heard:?}"
    );

    // Below the cap again, a new client is served at once.
    drop(conns.split_off(10));
    let t = Instant::now();
    let mut c = Client::connect_with_timeout(&[addr], Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("a client after closing connections: {e}"));
    c.ping().expect("PING from the new client");
    println!(
        "new client connected and answered {:?} after closing connections; {:?} in all",
        t.elapsed(),
        started.elapsed()
    );
}

/// 200 READs of a 64 KiB value in one burst: 13 MB of replies for a peer capped at 1 MiB.
/// (Not the 2,000 one might try: that many at once drown the slaves in read retries and every
/// reply becomes a small TIMEOUT error; see `pipelined_reads_of_a_large_value_are_all_served`.)
#[test]
fn client_that_never_reads_is_disconnected() {
    const READS: usize = 200;
    let started = Instant::now();
    let (cluster, value) = capped_cluster_with_big_value();
    let addr = cluster.master_addr();
    let pid = cluster.master_pid();
    let rss_before = rss_kib(pid);

    let (mut hog, port) = hello_conn(addr);
    let t = Instant::now();
    hog.write_all(&read_frames(1, READS, b"big"))
        .expect("send the READs");
    let closed = poll_until(CLOSE_DEADLINE, || !master_holds(addr.port(), port));
    let took = t.elapsed();
    let rss_after = rss_kib(pid);
    let (received, ended) = drain(&mut hog, Instant::now() + Duration::from_secs(5));
    println!(
        "never-reading client, {READS} READs in a burst: closed by the master: {closed} after \
         {took:?}; {received} reply bytes reached it (end seen: {ended}); master RSS \
         {rss_before} KiB before, {rss_after} KiB after"
    );
    assert!(
        closed,
        "the master still holds a peer that read none of the replies to {READS} READs of a \
         64 KiB value (--max-write-buffer 1048576)"
    );
    assert!(ended, "the connection did not end on the client's side");
    check_served(&cluster, &value);
    println!("never-reading client: {:?} in all", started.elapsed());
}

/// The same peer, but its READs trickle in (10 every 20 ms) so that replies come back a few
/// per loop turn instead of in one heap.
#[test]
fn client_that_never_reads_trickled_reads_is_disconnected() {
    const READS: usize = 500;
    const BATCH: usize = 10;
    let (cluster, value) = capped_cluster_with_big_value();
    let addr = cluster.master_addr();
    let pid = cluster.master_pid();
    let rss_before = rss_kib(pid);

    let (mut hog, port) = hello_conn(addr);
    let held = || master_holds(addr.port(), port);
    let t = Instant::now();
    let mut sent = 0;
    // 500 READs at up to 500 a second: 32 MB of replies asked for, far past the cap. A write
    // error means the master closed the connection.
    while sent < READS {
        if hog
            .write_all(&read_frames(sent as u64 + 1, BATCH, b"big"))
            .is_err()
        {
            break;
        }
        sent += BATCH;
        std::thread::sleep(Duration::from_millis(20));
    }
    let closed = poll_until(Duration::from_secs(3), || !held());
    let took = t.elapsed();
    let rss_after = rss_kib(pid);
    let (received, ended) = drain(&mut hog, Instant::now() + Duration::from_secs(5));
    println!(
        "never-reading client, {sent} READs trickled in: closed by the master: {closed} after \
         {took:?}; master RSS {rss_before} KiB before, {rss_after} KiB while it held the peer; \
         then {received} reply bytes reached it (end seen: {ended})"
    );
    assert!(
        closed,
        "the master still holds a peer that read none of the replies to {sent} READs of a \
         64 KiB value (--max-write-buffer 1048576)"
    );
    check_served(&cluster, &value);
}

/// 1,500 pipelined READs of a 64 KiB value from one client that reads its replies: about 1 s
/// of work for two slaves in a debug build (with `--read-retry-ms 5000` all 1,500 are served in
/// 1.0-1.1 s). `--read-retry-ms 20` makes the collapse certain; the default 100 ms shows it too
/// from about 1,000 READs in a debug build, depending on load. The write-buffer cap is raised so
/// that a slow reader here is not what ends the connection.
#[test]
fn pipelined_reads_of_a_large_value_are_all_served() {
    const VALUE: usize = 64 * 1024;
    const READS: usize = 1500;
    let cluster = start(
        2,
        &["--read-retry-ms", "20", "--max-write-buffer", "536870912"],
    );
    let addr = cluster.master_addr();
    cluster
        .client()
        .write(b"big", &big_value())
        .expect("WRITE the 64 KiB value");

    let mut s = connect(addr);
    s.write_all(&hello(0)).expect("send HELLO");
    let mut rbuf = Vec::new();
    let welcome = next_frame(&mut s, &mut rbuf, Instant::now() + Duration::from_secs(5));
    assert!(is_welcome(&welcome), "HELLO got {welcome:?}");
    let t = Instant::now();
    // About 40 KB: the socket buffers take it whole, so nothing blocks before we read.
    s.write_all(&read_frames(1, READS, b"big"))
        .expect("send the READs");
    let (mut values, mut errors) = (0, 0);
    while values + errors < READS {
        match next_frame(&mut s, &mut rbuf, Instant::now() + Duration::from_secs(10)) {
            Heard::Frame(Frame {
                body: Body::Value { value: v },
                ..
            }) => {
                assert_eq!(v.len(), VALUE, "a VALUE of the wrong size");
                values += 1;
            }
            Heard::Frame(Frame {
                body: Body::Error { .. },
                ..
            }) => errors += 1,
            other => panic!("after {values} values and {errors} errors: {other:?}"),
        }
    }
    let took = t.elapsed();
    let slaves = cluster.status().slaves;
    let dropped = slaves.iter().filter(|s| !s.live).count();
    println!(
        "{READS} pipelined READs of 64 KiB: {values} values, {errors} errors in {took:?}; \
         slaves dropped meanwhile: {dropped}"
    );
    assert_eq!(values, READS, "{errors} of {READS} READs failed");
    assert_eq!(
        dropped, 0,
        "live slaves were dropped while serving the READs"
    );
}

// Helpers: raw frames and connections, /proc readings, the fd limit.

fn start(slaves: usize, master_args: &[&str]) -> Cluster {
    Cluster::start(ClusterOpts {
        slaves,
        replicas: 2,
        master_args: master_args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    })
}

fn hello(req_id: u64) -> Vec<u8> {
    let body = Body::Hello {
        role: Role::Client,
        epoch: 0,
        id: format!("hostile-{req_id}"),
        boot: 0,
        nonce: None,
        limits: None,
    };
    frame_bytes(req_id, body)
}

fn read_frames(from: u64, count: usize, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for id in from..from + count as u64 {
        let body = Body::Read { key: key.to_vec() };
        encode(&Frame::new(id, body), &mut out);
    }
    out
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// A raw client connection that said HELLO and got WELCOME, and the master's port and its own.
fn hello_conn(addr: SocketAddr) -> (TcpStream, u16) {
    let mut s = connect(addr);
    s.write_all(&hello(0)).expect("send HELLO");
    let mut rbuf = Vec::new();
    let welcome = next_frame(&mut s, &mut rbuf, Instant::now() + Duration::from_secs(5));
    assert!(is_welcome(&welcome), "HELLO got {welcome:?}");
    let port = s.local_addr().expect("local address").port();
    assert!(
        master_holds(addr.port(), port),
        "no master socket for port {port} in /proc/net/tcp"
    );
    (s, port)
}

fn is_welcome(h: &Heard) -> bool {
    matches!(
        h,
        Heard::Frame(Frame {
            body: Body::Welcome { .. },
            ..
        })
    )
}

/// Wait until the peer ends the connection (EOF or inventory); bytes that arrive first are
/// discarded. `Err` when `deadline` passes with the connection still open.
fn wait_closed(stream: &mut TcpStream, deadline: Instant) -> Result<(), String> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("still open at the deadline".into());
        }
        stream
            .set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .expect("set a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Ok(()),
        }
    }
}

/// Reply bytes that reach `s` until the connection ends or nothing comes for 300 ms, and
/// whether the end was seen.
fn drain(s: &mut TcpStream, deadline: Instant) -> (usize, bool) {
    let mut received = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("set a read timeout");
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => return (received, true),
            Ok(n) => received += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => return (received, true),
        }
    }
    (received, false)
}

/// Whether a socket from `peer_port` to `master_port` is open in some process (inode != 0 in
/// `/proc/net/tcp`): the master's end of that connection, as nothing else holds it.
fn master_holds(master_port: u16, peer_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 9
            && port(f[1]) == Some(master_port)
            && port(f[2]) == Some(peer_port)
            && f[9] != "0"
    })
}

/// xorshift64*: reproducible garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

/// 4 KiB of random bytes that the master's decoder rejects within those 4 KiB. Random bytes
/// can start like a valid header of a large frame; the master would then rightly wait for the
/// rest, which is the half-sent case, not this one.
fn garbage(rng: &mut Rng, max_frame: usize) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    loop {
        rng.fill(&mut buf);
        if decode_with_max(&buf, max_frame).is_err() {
            return buf;
        }
    }
}

/// A master capping unsent replies at 1 MiB, with 2 slaves and the 64 KiB value stored as "big".
fn capped_cluster_with_big_value() -> (Cluster, Vec<u8>) {
    let cluster = start(2, &["--max-write-buffer", "1048576"]);
    let value = big_value();
    cluster
        .client()
        .write(b"big", &value)
        .expect("WRITE the 64 KiB value");
    (cluster, value)
}

fn big_value() -> Vec<u8> {
    (0..64 * 1024).map(|i| (i % 251) as u8).collect()
}

/// A fresh client still gets served, the big value included, and the master lives.
fn check_served(cluster: &Cluster, value: &[u8]) {
    let mut c = cluster.client();
    c.write(b"after", b"still served")
        .expect("WRITE after the hog");
    assert_eq!(
        c.read(b"big").expect("READ after the hog").as_deref(),
        Some(value),
        "the 64 KiB value after the hog"
    );
    let pid = cluster.master_pid();
    assert!(alive(pid), "the master (pid {pid}) died");
}

/// The soft limit on open files, as `ulimit -n` in a child shell reports it (it inherits ours).
fn fd_limit(flag: &str) -> Option<u64> {
    let out = Command::new("sh")
        .args(["-c", &format!("ulimit {flag}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim() {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// Raise our soft open-files limit towards `want` (never past the hard limit) with util-linux
/// `prlimit` when present; returns the soft limit in force afterwards.
fn raise_fd_limit(want: u64) -> u64 {
    let soft = fd_limit("-n").unwrap_or(1024);
    if soft >= want {
        return soft;
    }
    let hard = fd_limit("-Hn").unwrap_or(soft);
    let target = want.min(hard);
    if target > soft {
        let arg = format!(
            "--nofile={target}:{}",
            if hard == u64::MAX { target } else { hard }
        );
        let _ = Command::new("prlimit")
            .args(["--pid", &std::process::id().to_string(), &arg])
            .output();
    }
    fd_limit("-n").unwrap_or(soft)
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The process exists and is neither a zombie nor dead.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|st| !st.trim_start().starts_with(['Z', 'X']))
    })
}

/// p-th percentile (0..=100) of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Lines of the master's log(s) in `dir` that contain `needle`.
fn master_log_lines(dir: &Path, needle: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("master"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|text| text.lines().filter(|l| l.contains(needle)).count())
        .sum()
}

//! Issue 18's attacks on memory, connection slots and start-up, each against real processes on
//! loopback (items 3, 5 and 6). Every test failed on the code before the fix: the figures of
//! that code are in each test's comment. Memory is judged by the peak resident size the kernel
//! keeps (`VmHWM`) against the size before the attack, so no sampling can miss a spike; the
//! bounds leave room for a noisy machine (the fixes keep each process within a few MB).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dsm_tests::raw::{frame_bytes, next_frame, welcomed_client, Heard};
use dsm_tests::{bin, wait_until, Cluster, ClusterOpts, STARTUP};
use dsm_wire::{encode, Body, ErrorCode, Frame, Role, DEFAULT_MAX_FRAME};

const MIB: u64 = 1024 * 1024;

/// The attacks push hundreds of MB through 2 cores and measure RSS and a real client's reads:
/// run side by side, each starves the other's cluster. One at a time.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Resident and peak resident size of a process, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Print process `pid`'s RSS before (`before`, bytes), at its peak and now, as `who`, with
/// `then` after it; returns the peak's growth over `before`.
fn rss_growth(who: &str, pid: u32, before: u64, then: &str) -> u64 {
    let (now, peak) = rss(pid);
    let grew = peak.saturating_sub(before);
    println!(
        "{who}: RSS {} MB before, peak {} MB (+{} MB), now {} MB{then}",
        before / MIB,
        peak / MIB,
        grew / MIB,
        now / MIB
    );
    grew
}

/// The real client's latencies (sorted) as `p50 .., p99 .., max ..`.
fn spread(lat: &[Duration]) -> String {
    format!(
        "p50 {:?}, p99 {:?}, max {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat[lat.len() - 1]
    )
}

fn read_frames(count: usize, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let body = Body::Read { key: key.to_vec() };
        encode(&Frame::new(100 + i as u64, body), &mut out);
    }
    out
}

fn value(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A real client's READs of a small key while an attack runs: every one must succeed.
/// Returns the latencies, sorted.
fn real_reads(cluster: &Cluster, rounds: usize) -> Vec<Duration> {
    let mut c = cluster.client();
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let got = c
            .read(b"small")
            .expect("a real client's READ during the attack");
        lat.push(t.elapsed());
        assert_eq!(got.as_deref(), Some(&b"still here"[..]));
        std::thread::sleep(Duration::from_millis(10));
    }
    lat.sort();
    lat
}

/// [`real_reads`] where the master's budgets are off and a READ may wait behind the hog's
/// unread replies to its deadline: a TIMEOUT is counted, never a wrong answer; most must
/// succeed. Returns the latencies of those that did, sorted.
fn real_reads_budgets_off(cluster: &Cluster, rounds: usize) -> Vec<Duration> {
    let mut c = cluster.client();
    let mut lat = Vec::with_capacity(rounds);
    let mut timeouts = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        match c.read(b"small") {
            Ok(got) => {
                assert_eq!(got.as_deref(), Some(&b"still here"[..]));
                lat.push(t.elapsed());
            }
            Err(dsm_client::Error::Server {
                code: dsm_wire::ErrorCode::Timeout,
                ..
            }) => timeouts += 1,
            Err(e) => panic!("a real client's READ during the attack: {e}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("real client: {timeouts} of {rounds} READs timed out (budgets off)");
    assert!(
        timeouts * 4 <= rounds,
        "{timeouts} of {rounds} real READs timed out"
    );
    lat.sort();
    lat
}

/// 150 pipelined READs of a 1 MiB value, replies never read, against a master told to take
/// them all (its own budgets out of the way): the slaves answer, and must not hold a copy of
/// every value asked for. Before: each slave peaked at 310 MB with 300 such READs.
#[test]
fn slaves_cap_unsent_replies_and_keep_their_master() {
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        secret: Some(b"bounds-test-secret-0123456789".to_vec()),
        master_args: [
            "--max-client-memory",
            "4000000000",
            "--max-buffer-memory",
            "4000000000",
            "--max-write-buffer",
            "4000000000",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    });
    let mut c = cluster.client();
    c.write(b"big", &value(1 << 20)).expect("WRITE 1 MiB");
    c.write(b"small", b"still here").expect("WRITE small");
    let before: Vec<u64> = (0..2).map(|i| rss(cluster.slave_pid(i)).0).collect();

    let (mut hog, _) = welcomed_client(cluster.master_addr(), Instant::now() + STARTUP);
    hog.write_all(&read_frames(150, b"big"))
        .expect("send 150 READs");
    // The master takes every READ and holds every reply (it was told to): other clients'
    // reads wait behind 150 MB of answers and may time out meanwhile (the master's budgets,
    // on by default, are what keeps them fast; see the next test). Here the slaves are
    // judged: their memory, and that they keep their master through the burst.
    let t = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "a real READ after the burst",
        || c.read(b"small").is_ok(),
    );
    println!("the burst took {:?} to clear", t.elapsed());
    let lat = real_reads_budgets_off(&cluster, 20);
    for (i, &before) in before.iter().enumerate() {
        let grew = rss_growth(&format!("slave {i}"), cluster.slave_pid(i), before, "");
        assert!(
            grew < 64 * MIB,
            "slave {i} grew by {} MB under 150 unread 1 MiB READs",
            grew / MIB
        );
        assert!(cluster.slave_live(i), "slave {i} was dropped");
    }
    println!(
        "real client during the attack: p50 {:?}, max {:?}",
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    for i in 0..2 {
        let log = std::fs::read_to_string(
            cluster
                .log_dir()
                .join(format!("{}.log", cluster.slave_id(i))),
        )
        .unwrap_or_default();
        assert!(
            !log.contains("no word from the master"),
            "slave {i} took its master for dead while holding back: {log}"
        );
    }
    drop(hog);
}

/// 20 clients × 30 pipelined READs of a 1 MiB value, never read. Before: the master held
/// 599 MB for as long as they stayed connected.
#[test]
fn the_master_caps_what_clients_that_do_not_read_may_cost() {
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        ..Default::default()
    });
    let mut c = cluster.client();
    c.write(b"big", &value(1 << 20)).expect("WRITE 1 MiB");
    c.write(b"small", b"still here").expect("WRITE small");
    let pid = cluster.master_pid();
    let before = rss(pid).0;

    let mut hogs = Vec::new();
    for _ in 0..20 {
        let (mut hog, _) = welcomed_client(cluster.master_addr(), Instant::now() + STARTUP);
        hog.write_all(&read_frames(30, b"big"))
            .expect("send 30 READs");
        hogs.push(hog);
    }
    let lat = real_reads(&cluster, 200);
    let then = format!("; real client during the attack: {}", spread(&lat));
    let grew = rss_growth("master", pid, before, &then);
    assert!(
        grew < 96 * MIB,
        "the master grew by {} MB for 20 clients that do not read",
        grew / MIB
    );
    // Unpaused by reading: a hog that drains gets its replies, whole.
    let mut hog = hogs.pop().expect("a hog");
    let mut rbuf = Vec::new();
    for _ in 0..30 {
        match next_frame(
            &mut hog,
            &mut rbuf,
            Instant::now() + Duration::from_secs(10),
        ) {
            Heard::Frame(Frame {
                body: Body::Value { value: v },
                ..
            }) => assert_eq!(v.len(), 1 << 20),
            // The request deadline may pass for those the master would not take in time.
            Heard::Frame(Frame {
                body:
                    Body::Error {
                        code: ErrorCode::Timeout,
                        ..
                    },
                ..
            }) => {}
            other => panic!("a hog that reads got {other:?}"),
        }
    }
}

/// 100 clients each pipeline 6 READs of a 1 MiB value and never read, against a master with
/// a 4 MiB budget. The kernel takes about 4 MiB of replies into each loopback socket (its send
/// buffer grows to `tcp_wmem`'s maximum); past that a reply stays in the master. A client with
/// nothing queued or in flight used to be read whatever the budget, so each such client held
/// one 1 MiB reply beyond it: before the fix the master peaked at
/// +118 to +126 MB (4 runs, debug build). Now a request over
/// the budget is taken only while the total stays within budget + 2 largest frames, and a
/// client whose replies have not moved for `--stalled-client-ms` while the budget is spent is
/// disconnected. A real client's small READs, and its large ones (it reads those), all succeed
/// meanwhile, and it is never cut off.
#[test]
fn clients_that_each_leave_one_reply_unread_stay_within_the_slack() {
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    const BUDGET: u64 = 4 * MIB;
    const HOGS: usize = 100;
    let cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        master_args: [
            "--max-buffer-memory",
            &BUDGET.to_string(),
            "--max-client-memory",
            &(2 * MIB).to_string(),
            "--stalled-client-ms",
            "300",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    });
    let mut c = cluster.client();
    let big = value(1 << 20);
    c.write(b"big", &big).expect("WRITE 1 MiB");
    c.write(b"small", b"still here").expect("WRITE small");
    let pid = cluster.master_pid();
    let before = rss(pid).0;

    let mut hogs = Vec::new();
    for _ in 0..HOGS {
        let (mut hog, _) = welcomed_client(cluster.master_addr(), Instant::now() + STARTUP);
        hog.write_all(&read_frames(6, b"big"))
            .expect("send 6 READs");
        hogs.push(hog);
    }
    let lat = real_reads(&cluster, 100);
    // A real client's large READs: each waits its turn among the hogs that still ask (a
    // 1 MiB request is taken within one frame past the budget, in the order clients were
    // paused), usually 0.05-0.6 s, so a deadline of 20 s; it is never cut off (it reads).
    c.set_timeout(Duration::from_secs(20));
    let t = Instant::now();
    for _ in 0..5 {
        let got = c
            .read(b"big")
            .expect("a real client's large READ during the attack");
        assert!(got.as_deref() == Some(&big[..]), "a wrong 1 MiB value");
    }
    let large = t.elapsed() / 5;
    let log = std::fs::read_to_string(cluster.log_dir().join("master.log")).unwrap_or_default();
    // Only hogs are cut off: never the real client (which reconnects on its own, so its reads
    // succeeding would not show it), never a slave.
    let hog_addrs: Vec<String> = hogs
        .iter()
        .map(|h: &TcpStream| h.local_addr().expect("a hog's address").to_string())
        .collect();
    let mut cut = 0;
    for line in log
        .lines()
        .filter(|l| l.contains("closing client connection"))
    {
        let addr = line
            .split(" from ")
            .nth(1)
            .and_then(|r| r.split(": ").next())
            .unwrap_or_default();
        assert!(
            hog_addrs.iter().any(|h| h == addr),
            "a client that is not a hog was cut off: {line}"
        );
        cut += 1;
    }
    let then = format!(
        "; {cut} stalled clients cut off; real client: small READs {}; large READs {large:?} each",
        spread(&lat)
    );
    let grew = rss_growth("master", pid, before, &then);
    // What the master counts (replies queued, READs in flight) stays within the budget + 2
    // largest frames: about 6.2 MiB here. Besides, each connection has a read buffer of
    // 64 KiB, values are copied on their way from a slave's socket to a client's, and the
    // allocator keeps some of what is freed: the issue's +64 MB is the bound (debug build:
    // +24 to +49 MB after the fix, +118 to +126 MB before).
    let frame = dsm_wire::max_frame_for(dsm_wire::DEFAULT_MAX_KEY, dsm_wire::DEFAULT_MAX_VALUE);
    let counted = BUDGET + 2 * frame as u64;
    println!(
        "counted bound {:.1} MiB, read buffers {:.1} MiB",
        counted as f64 / MIB as f64,
        (HOGS * 64 * 1024) as f64 / MIB as f64
    );
    assert!(
        grew < 64 * MIB,
        "the master grew by {} MB for {HOGS} clients that each leave 6 MiB of replies unread",
        grew / MIB
    );
    assert!(cut > 0, "no stalled client was cut off");
    drop(hogs);
}

/// 100 clients each send most of a 1 MiB WRITE frame and stop, against a master with a 4 MiB
/// budget. A frame's bytes were buffered as they came, whatever the budgets: before the fix
/// the master grew by about a MiB per client (+101 MB, 2 runs; after: +10 MB). Now a frame is
/// let in from its header on only if the budgets allow its length, and a client that stops
/// halfway while the budget is spent is cut off after `--stalled-client-ms`. A real client's
/// READs, and its own 1 MiB WRITE (which waits its turn behind the hogs paused before it),
/// succeed meanwhile.
#[test]
fn clients_that_each_send_half_a_large_frame_stay_within_the_slack() {
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    const HOGS: usize = 100;
    let cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        master_args: [
            "--max-buffer-memory",
            &(4 * MIB).to_string(),
            "--stalled-client-ms",
            "300",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    });
    let mut c = cluster.client();
    c.write(b"small", b"still here").expect("WRITE small");
    let pid = cluster.master_pid();
    let before = rss(pid).0;

    let whole = frame_bytes(
        100,
        Body::Write {
            key: b"half".to_vec(),
            value: value(1 << 20),
        },
    );
    let half = &whole[..whole.len() - 64 * 1024];
    let mut hogs = Vec::new();
    for _ in 0..HOGS {
        let (mut hog, _) = welcomed_client(cluster.master_addr(), Instant::now() + STARTUP);
        hog.set_nonblocking(true).unwrap();
        // As much as the sockets take: the rest waits with the hog, which never sends it.
        let mut sent = 0;
        while sent < half.len() {
            match hog.write(&half[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        hogs.push(hog);
    }
    let lat = real_reads(&cluster, 100);
    c.set_timeout(Duration::from_secs(20));
    let t = Instant::now();
    c.write(b"whole", &value(1 << 20))
        .expect("a real client's 1 MiB WRITE during the attack");
    let took = t.elapsed();
    let log = std::fs::read_to_string(cluster.log_dir().join("master.log")).unwrap_or_default();
    let cut = log.matches("-byte frame received, none for").count();
    let then = format!(
        "; {cut} half-sent frames cut off; real client: READs {}; its 1 MiB WRITE {took:?}",
        spread(&lat)
    );
    let grew = rss_growth("master", pid, before, &then);
    assert!(
        grew < 64 * MIB,
        "the master grew by {} MB for {HOGS} clients that each send most of a 1 MiB frame",
        grew / MIB
    );
    assert!(cut > 0, "no half-sent frame was cut off");
    assert_eq!(
        c.read(b"whole")
            .expect("read the real WRITE back")
            .map(|v| v.len()),
        Some(1 << 20)
    );
    drop(hogs);
}

/// With `--require-client-auth`, 200 connections each send most of a maximum-size frame
/// without authenticating. Before: the master buffered all of it until the HELLO timeout
/// (400 such connections held 452 MB).
#[test]
fn unauthenticated_connections_get_a_few_kib() {
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start(ClusterOpts {
        slaves: 1,
        replicas: 1,
        secret: Some(b"bounds-test-secret-0123456789".to_vec()),
        master_args: vec!["--require-client-auth".into()],
        ..Default::default()
    });
    let pid = cluster.master_pid();
    let before = rss(pid).0;
    let len = DEFAULT_MAX_FRAME as u32 - 1;
    let mut frame = Vec::with_capacity(len as usize);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.push(0x10);
    frame.resize(len as usize - 1, 0xAB);
    let mut conns = Vec::new();
    let mut closed = 0;
    for _ in 0..200 {
        let mut s = TcpStream::connect(cluster.master_addr()).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        // The master closes the connection once it sees the length: the rest may fail.
        if s.write_all(&frame).is_err() {
            closed += 1;
        }
        conns.push(s);
    }
    std::thread::sleep(Duration::from_secs(1));
    let then = format!("; {closed} of 200 writes cut off");
    let grew = rss_growth("master", pid, before, &then);
    assert!(
        grew < 24 * MIB,
        "200 unauthenticated near-maximum frames cost the master {} MB",
        grew / MIB
    );
    let mut buf = [0u8; 64];
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(
            matches!(s.read(&mut buf), Ok(0) | Err(_)),
            "an unauthenticated connection with a 1 MiB frame was not closed"
        );
    }
    cluster
        .client()
        .ping()
        .expect("a client with the secret is served");
}

/// 2,000 clients each say HELLO, send one small READ once welcomed, take its answer, and then
/// sit idle: a connection's read buffer must cost what it holds (nothing, here), not a read
/// chunk each. Before: every such connection kept a 64 KiB read buffer, zeroed and so
/// resident: +125 MB or more for the 2,000 (figures in the README's buffer bound).
#[test]
fn idle_clients_after_one_request_hold_no_read_buffer() {
    const CLIENTS: usize = 2_000;
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start(ClusterOpts {
        slaves: 1,
        replicas: 1,
        ..Default::default()
    });
    cluster
        .client()
        .write(b"small", b"still here")
        .expect("WRITE small");
    let pid = cluster.master_pid();
    let before = rss(pid).0;
    let deadline = Instant::now() + Duration::from_secs(30);
    // In phases, so the master has every connection's frames at hand at once: all connect
    // and say HELLO, then each is welcomed; all send a READ, then each takes its VALUE.
    let mut conns: Vec<(TcpStream, Vec<u8>)> = (0..CLIENTS)
        .map(|i| {
            let mut s = TcpStream::connect(cluster.master_addr())
                .unwrap_or_else(|e| panic!("connect client {i}: {e}"));
            s.write_all(&hello()).expect("HELLO");
            (s, Vec::new())
        })
        .collect();
    for (s, rbuf) in &mut conns {
        match next_frame(s, rbuf, deadline) {
            Heard::Frame(f) if matches!(f.body, Body::Welcome { .. }) => {}
            other => panic!("a client was not welcomed: {other:?}"),
        }
    }
    let read = read_frames(1, b"small");
    for (s, _) in &mut conns {
        s.write_all(&read).expect("send a READ");
    }
    // Answered, whatever the answer (a slave slowed by the load may be out of reach for a
    // moment): the request was read, which is what grew the buffers.
    let mut values = 0;
    for (s, rbuf) in &mut conns {
        match next_frame(s, rbuf, deadline) {
            Heard::Frame(Frame {
                body: Body::Value { value },
                ..
            }) => {
                assert_eq!(value, b"still here");
                values += 1;
            }
            Heard::Frame(f) => println!("a client's READ was answered {f:?}"),
            other => panic!("a client's READ was not answered: {other:?}"),
        }
    }
    println!("{values} of {CLIENTS} READs answered with the value");
    let (now, peak) = rss(pid);
    let grew = peak.saturating_sub(before);
    println!(
        "master: RSS {} KiB before, peak {} KiB (+{} KiB, {} B per client), now {} KiB, \
         {CLIENTS} idle clients after one READ each",
        before / 1024,
        peak / 1024,
        grew / 1024,
        grew / CLIENTS as u64,
        now / 1024
    );
    // What a connection costs besides its buffers (its slab entries, its peer state, a
    // small reply's write buffer) is well under 4 KiB; a 64 KiB read buffer each is 16 times
    // that.
    assert!(
        grew < CLIENTS as u64 * 4096,
        "{CLIENTS} idle clients cost the master {} KiB ({} B each): read buffers kept",
        grew / 1024,
        grew / CLIENTS as u64
    );
    cluster.client().ping().expect("the master serves on");
}

/// `--max-conns 20` held by 20 idle clients, and 100 more connections that never say HELLO.
/// Before: new clients hung in the backlog and a restarted slave could not register.
#[test]
fn clients_past_the_cap_get_an_error_and_slaves_still_register() {
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        master_args: vec!["--max-conns".into(), "20".into()],
        ..Default::default()
    });
    let addr = cluster.master_addr();
    let deadline = Instant::now() + STARTUP;
    let clients: Vec<_> = (0..20)
        .filter_map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(&hello()).expect("HELLO");
            let mut rbuf = Vec::new();
            match next_frame(&mut s, &mut rbuf, deadline) {
                Heard::Frame(f) if matches!(f.body, Body::Welcome { .. }) => Some(s),
                _ => None,
            }
        })
        .collect();
    let idle: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    println!(
        "{} clients welcomed, {} idle connections",
        clients.len(),
        idle.len()
    );

    // One more client: told at once, not left hanging.
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect past the cap");
    s.write_all(&hello()).expect("HELLO");
    let heard = next_frame(
        &mut s,
        &mut Vec::new(),
        Instant::now() + Duration::from_secs(5),
    );
    println!(
        "client past the cap heard {heard:?} after {:?}",
        t.elapsed()
    );
    assert!(
        matches!(&heard, Heard::Frame(Frame { body: Body::Error { code, .. }, .. })
            if *code == ErrorCode::Busy),
        "a client past --max-conns heard {heard:?}"
    );

    // A slave restarted meanwhile registers again (the reserved slots). STATUS is a client's
    // request, refused while the cap holds: the master's log says it.
    cluster.kill_slave(0);
    cluster.restart_slave_registered(0);
    let log = cluster.log_dir().join("master.log");
    let id = cluster.slave_id(0);
    let needle = format!("slave '{id}' registered from");
    wait_until(STARTUP, "the restarted slave's registration", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.matches(&needle).count() >= 2)
    });
    drop((clients, idle));
    cluster.wait_slave_live(0, true, STARTUP);
}

/// Run `cmd` (stdin closed, stdout dropped) for at most 5 s; its exit status and stderr.
/// Panics, after killing it, if it is still running then.
fn run_briefly(cmd: &mut Command, what: &str) -> (std::process::ExitStatus, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stderr = dsm_tests::process::drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let Some(status) = dsm_tests::process::wait_child(&mut child, deadline) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} was still running after 5 s");
    };
    let err = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
    (status, err)
}

fn hello() -> Vec<u8> {
    frame_bytes(
        1,
        Body::Hello {
            role: Role::Client,
            epoch: 0,
            id: String::new(),
            boot: 0,
            nonce: None,
            limits: None,
        },
    )
}

/// A master bound to a non-loopback address without a secret refuses to start (it exits
/// before binding anything), and a `--secret-file` that is a FIFO is refused at once by every
/// program instead of hanging. Before: the master started with a warning; the FIFO hung.
#[test]
fn insecure_start_ups_are_refused_at_once() {
    let t = Instant::now();
    let (status, err) = run_briefly(
        Command::new(bin("dsm-master")).args([
            "--listen",
            "0.0.0.0:0",
            "--heartbeat",
            "127.0.0.1:0",
        ]),
        "dsm-master on 0.0.0.0 without a secret",
    );
    println!("non-loopback without a secret: {status:?} {err}");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("refusing to start") && err.contains("--insecure"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));

    let dir = std::env::temp_dir().join(format!("dsm-bounds-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("secret");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    for (prog, args) in [
        (
            "dsm-master",
            vec!["--listen", "127.0.0.1:0", "--heartbeat", "127.0.0.1:0"],
        ),
        ("dsm-slave", vec!["--master", "127.0.0.1:9", "--id", "s"]),
        ("dsm-client", vec!["--master", "127.0.0.1:9", "ping"]),
    ] {
        let (status, err) = run_briefly(
            Command::new(bin(prog))
                .args(&args)
                .arg("--secret-file")
                .arg(&fifo),
            prog,
        );
        println!("{prog} with a FIFO secret: {status:?} {err}");
        assert_eq!(status.code(), Some(2), "{prog}: {err}");
        assert!(err.contains("FIFO"), "{prog}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fake master answers a READ with a 40 MB frame. Before: dsm-client read all of it (and
/// grew to 808 MB); now the frame's length is over what a client expects and it hangs up
/// after the header, saying so.
#[test]
fn the_client_refuses_a_frame_larger_than_it_can_expect() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake master");
    let addr: SocketAddr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || -> (usize, bool) {
        // HELLO, then the READ. A client that gave up waiting for the WELCOME (this thread not
        // scheduled for its probe interval on a loaded machine) connects again: served again.
        let deadline = Instant::now() + STARTUP;
        let (mut s, read) = loop {
            assert!(Instant::now() < deadline, "no READ from the client");
            let (mut s, _) = listener.accept().expect("accept");
            let mut rbuf = Vec::new();
            let Heard::Frame(hello) = next_frame(&mut s, &mut rbuf, deadline) else {
                continue;
            };
            let welcome = Body::Welcome {
                epoch: 1,
                inventory: false,
                standby: false,
                lease_ms: 0,
                proof: None,
            };
            if s.write_all(&frame_bytes(hello.req_id, welcome)).is_err() {
                continue;
            }
            if let Heard::Frame(read) = next_frame(&mut s, &mut rbuf, deadline) {
                break (s, read);
            }
        };
        const LEN: usize = 40_000_000;
        let mut head = Vec::new();
        head.extend_from_slice(&(LEN as u32).to_be_bytes());
        head.push(dsm_wire::Opcode::Value as u8);
        head.extend_from_slice(&read.req_id.to_be_bytes());
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sent = 0;
        if s.write_all(&head).is_err() {
            return (0, false);
        }
        let chunk = vec![0u8; 64 * 1024];
        while sent < LEN {
            match s.write(&chunk[..chunk.len().min(LEN - sent)]) {
                Ok(n) => sent += n,
                Err(_) => return (sent, false),
            }
        }
        (sent, true)
    });
    let out = Command::new(bin("dsm-client"))
        .args([
            "--master",
            &addr.to_string(),
            "--timeout-ms",
            "10000",
            "read",
            "k",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run dsm-client");
    let (sent, all) = fake.join().expect("the fake master");
    let err = String::from_utf8_lossy(&out.stderr);
    println!(
        "dsm-client: {:?} {err}; the fake master got {sent} bytes out (all: {all})",
        out.status
    );
    assert_ne!(out.status.code(), Some(0), "{err}");
    // Said at once, as what it is (it used to try again until its deadline, then say
    // TIMEOUT "after 0 ms").
    assert!(
        err.contains("TOO_LARGE") && err.contains("--max-value"),
        "{err}"
    );
    assert!(!all, "dsm-client read all 40 MB of an oversize frame");
    // Loopback socket buffers hold a few MB at most; the rest could not be sent.
    assert!(sent < 20_000_000, "{sent} bytes taken by the client");
}

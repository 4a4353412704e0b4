//! `bench --redis` end to end against a fake Redis server on loopback: commands arrive as RESP,
//! replies are parsed from the bench's own connections, and every GET answer is checked
//! against what was SET, in closed and open loop.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use dsm_bench::{BenchConfig, Summary, Workload};

const CLIENTS: usize = 3;
const REQUESTS: u64 = 300;
const KEYS: usize = 10;

/// How the fake server answers a GET of a key it holds.
#[derive(Clone, Copy)]
enum Fake {
    Honest,
    /// The value, its first byte flipped.
    Corrupt,
    /// Nil, as for a missing key.
    Forgetful,
    /// `-ERR` to every GET.
    Failing,
    /// Honest, but reads nothing for [`STALL`] after the first command arrives.
    Stalling,
}

/// How long a [`Fake::Stalling`] server stalls.
const STALL: Duration = Duration::from_millis(200);

type Store = Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>;

fn fake_redis(mode: Fake) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let store = Store::default();
    thread::spawn(move || {
        for _ in 0..CLIENTS {
            let (s, _) = listener.accept().unwrap();
            let store = store.clone();
            thread::spawn(move || serve(s, mode, &store));
        }
    });
    addr
}

/// A whole command (`*n` then n bulk strings) at the front of `buf`: its arguments and length.
fn command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(usize, usize)> {
        let end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
        Some((n, end + 2))
    }
    assert_eq!(buf.first().copied().unwrap_or(b'*'), b'*', "not an array");
    let (n, mut at) = line(buf, 0)?;
    let mut args = Vec::new();
    for _ in 0..n {
        assert_eq!(*buf.get(at)?, b'$');
        let (len, start) = line(buf, at)?;
        if buf.len() < start + len + 2 {
            return None;
        }
        args.push(buf[start..start + len].to_vec());
        at = start + len + 2;
    }
    Some((args, at))
}

fn serve(mut s: TcpStream, mode: Fake, store: &Store) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut buf, mut out, mut chunk) = (Vec::new(), Vec::new(), [0u8; 4096]);
    let mut stall = matches!(mode, Fake::Stalling);
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if std::mem::take(&mut stall) {
            thread::sleep(STALL);
        }
        let mut used = 0;
        while let Some((args, n)) = command(&buf[used..]) {
            used += n;
            match (args[0].as_slice(), mode) {
                (b"PING", _) => out.extend_from_slice(b"+PONG\r\n"),
                (b"SET", _) => {
                    store
                        .lock()
                        .unwrap()
                        .insert(args[1].clone(), args[2].clone());
                    out.extend_from_slice(b"+OK\r\n");
                }
                (b"GET", Fake::Failing) => out.extend_from_slice(b"-ERR no reads today\r\n"),
                (b"GET", _) => match store.lock().unwrap().get(&args[1]).cloned() {
                    Some(_) if matches!(mode, Fake::Forgetful) => out.extend_from_slice(b"$-1\r\n"),
                    None => out.extend_from_slice(b"$-1\r\n"),
                    Some(mut v) => {
                        if matches!(mode, Fake::Corrupt) {
                            v[0] ^= 1;
                        }
                        out.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
                        out.extend_from_slice(&v);
                        out.extend_from_slice(b"\r\n");
                    }
                },
                (other, _) => panic!("the bench sent {}", String::from_utf8_lossy(other)),
            }
        }
        buf.drain(..used);
        if s.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

fn bench(workload: Workload, mode: Fake, value_size: usize, rate: Option<f64>) -> Summary {
    let cfg = BenchConfig {
        workload,
        clients: CLIENTS,
        pipeline: 8,
        requests: REQUESTS,
        value_size,
        keys: KEYS,
        key_size: None,
        rate,
        burst: false,
        json: false,
        hist: None,
        slow_log: None,
        redis: Some(fake_redis(mode)),
    };
    dsm_bench::run(&cfg, &[], None).expect("the run completes")
}

/// (mismatches, NOT_FOUNDs, error replies, latencies recorded) of a summary.
fn counts(s: &Summary) -> (u64, u64, u64, u64) {
    (s.mismatches, s.not_found, s.error_replies, s.hist.len())
}

#[test]
fn gets_of_what_was_set_pass_in_closed_and_open_loop() {
    assert_eq!(
        counts(&bench(Workload::Read, Fake::Honest, 64, None)),
        (0, 0, 0, REQUESTS)
    );
    // Values that span many reads, and a CRLF-free check of their bytes.
    assert_eq!(
        counts(&bench(Workload::Read, Fake::Honest, 100_000, None)),
        (0, 0, 0, REQUESTS)
    );
    let open = bench(Workload::Read, Fake::Honest, 64, Some(3000.0));
    assert_eq!(counts(&open), (0, 0, 0, REQUESTS));
    // 300 requests at 3,000/s are paced over about 0.1 s, not sent at once.
    assert!(
        open.elapsed >= Duration::from_millis(90),
        "{:?}",
        open.elapsed
    );
    assert_eq!(
        counts(&bench(Workload::Ping, Fake::Honest, 64, None)),
        (0, 0, 0, REQUESTS)
    );
    assert_eq!(
        counts(&bench(Workload::Mixed, Fake::Honest, 64, None)),
        (0, 0, 0, REQUESTS)
    );
}

/// No coordinated omission: in open loop a request's latency runs from its due time, also
/// while the server stalls and while the request waits for a free slot, so a 200 ms stall at
/// the start shows in the median (timed from each send, only the 24 requests in flight would
/// show it).
#[test]
fn a_stall_shows_in_open_loop_latencies() {
    let ms = |d: u64| d / 1_000_000;
    // 300 requests at 1,000/s: two thirds are due during the stall, and only 3 x 8 of them
    // have a slot to wait in; request i (due at i ms) cannot be answered before 200 ms.
    let open = bench(Workload::Write, Fake::Stalling, 64, Some(1000.0));
    assert_eq!(counts(&open), (0, 0, 0, REQUESTS));
    let p50 = ms(open.hist.value_at_quantile(0.5));
    assert!(
        p50 >= 45,
        "open-loop p50 {p50} ms: the stall was not counted"
    );
    assert!(ms(open.hist.max()) >= 190, "{} ms", ms(open.hist.max()));
}

#[test]
fn wrong_missing_and_failed_gets_are_counted() {
    assert_eq!(
        counts(&bench(Workload::Read, Fake::Corrupt, 64, None)),
        (REQUESTS, 0, 0, REQUESTS)
    );
    assert_eq!(
        counts(&bench(Workload::Read, Fake::Forgetful, 64, None)),
        (0, REQUESTS, 0, REQUESTS)
    );
    assert_eq!(
        counts(&bench(Workload::Read, Fake::Failing, 64, None)),
        (0, 0, REQUESTS, REQUESTS)
    );
}

#[test]
fn nobody_listening_is_a_connect_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = BenchConfig {
        workload: Workload::Ping,
        clients: 1,
        pipeline: 1,
        requests: 1,
        value_size: 1,
        keys: 1,
        key_size: None,
        rate: None,
        burst: false,
        json: false,
        hist: None,
        slow_log: None,
        redis: Some(addr),
    };
    let e = dsm_bench::run(&cfg, &[], None).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
}

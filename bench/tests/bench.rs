//! The bench's reply checking end to end, against a fake master on loopback: every READ answer
//! arrives through the bench's own connections (VALUE borrowed from the read buffer) and is
//! checked against what was written.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use dsm_bench::{BenchConfig, Summary, Workload};
use dsm_wire::{decode, encode, Body, Frame};

/// Connections, requests and keys of every run here.
const CLIENTS: usize = 2;
const REQUESTS: u64 = 300;
const KEYS: usize = 10;

/// How the fake master answers a READ of a key it holds.
#[derive(Clone, Copy)]
enum Fake {
    /// With the value written.
    Honest,
    /// With the value written, its last byte flipped.
    Corrupt,
    /// With NOT_FOUND.
    Forgetful,
}

/// Keys and values the fake master was sent, shared by its connections.
type Store = Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>;

/// A fake master on port 0 that serves `CLIENTS` connections, one thread each.
fn fake_master(mode: Fake) -> SocketAddr {
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

/// Answer every whole frame of each read in one write, so replies arrive pipelined.
fn serve(mut s: TcpStream, mode: Fake, store: &Store) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut used = 0;
        while let Ok(Some((frame, n))) = decode(&buf[used..]) {
            used += n;
            let reply = answer(frame.body, mode, store);
            encode(&Frame::new(frame.req_id, reply), &mut out);
        }
        buf.drain(..used);
        if s.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

fn answer(request: Body, mode: Fake, store: &Store) -> Body {
    match request {
        Body::Hello { .. } => Body::Welcome {
            epoch: 1,
            inventory: false,
            standby: false,
            lease_ms: 0,
            proof: None,
        },
        Body::Write { key, value } => {
            store.lock().unwrap().insert(key, value);
            Body::Ok
        }
        Body::Read { key } => match (store.lock().unwrap().get(&key).cloned(), mode) {
            (None, _) | (_, Fake::Forgetful) => Body::NotFound,
            (Some(value), Fake::Honest) => Body::Value { value },
            (Some(mut value), Fake::Corrupt) => {
                *value.last_mut().unwrap() ^= 1;
                Body::Value { value }
            }
        },
        other => panic!("the bench sent {other:?}"),
    }
}

fn read_bench(mode: Fake) -> Summary {
    read_bench_with(mode, None)
}

fn read_bench_with(mode: Fake, slow_log: Option<(std::path::PathBuf, u64)>) -> Summary {
    let cfg = BenchConfig {
        workload: Workload::Read,
        clients: CLIENTS,
        pipeline: 8,
        requests: REQUESTS,
        value_size: 64,
        keys: KEYS,
        key_size: None,
        rate: None,
        burst: false,
        json: false,
        hist: None,
        slow_log,
        redis: None,
    };
    dsm_bench::run(&cfg, &[fake_master(mode)], None).expect("the run completes")
}

/// (mismatches, NOT_FOUNDs, error replies, latencies recorded) of a summary.
fn counts(s: &Summary) -> (u64, u64, u64, u64) {
    (s.mismatches, s.not_found, s.error_replies, s.hist.len())
}

#[test]
fn values_read_back_as_written_pass() {
    assert_eq!(counts(&read_bench(Fake::Honest)), (0, 0, 0, REQUESTS));
}

#[test]
fn every_corrupted_value_is_a_mismatch() {
    assert_eq!(
        counts(&read_bench(Fake::Corrupt)),
        (REQUESTS, 0, 0, REQUESTS)
    );
}

#[test]
fn every_not_found_is_counted() {
    assert_eq!(
        counts(&read_bench(Fake::Forgetful)),
        (0, REQUESTS, 0, REQUESTS)
    );
}

/// `--slow-log` notes the timed requests over its threshold, in the order answered: over 1 µs
/// (every request on a real socket), all of them; over an hour, none.
#[test]
fn the_slow_log_notes_the_requests_over_its_threshold() {
    let all = read_bench_with(Fake::Honest, Some(("unused".into(), 1)));
    assert_eq!(all.slow.len() as u64, REQUESTS);
    assert!(all.slow.iter().all(|&(_, latency)| latency > 1000));
    assert!(
        all.slow.windows(2).all(|w| w[0].0 <= w[1].0),
        "in the order answered"
    );
    let text = dsm_bench::report::slow_log(&all.slow, 1);
    assert_eq!(
        text.lines().count() as u64,
        REQUESTS + 1,
        "a comment line, then one each"
    );
    assert!(text.starts_with("# requests slower than 1 us"), "{text}");
    let none = read_bench_with(Fake::Honest, Some(("unused".into(), 3_600_000_000)));
    assert!(none.slow.is_empty());
}

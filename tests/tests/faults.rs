//! Slave failures against real processes: kill -9 and SIGSTOP while keys are read and written.
//! No acknowledged write may be lost and no request may hang while R-1 copies survive. And a
//! master address that never answers a connect does not hold a slave up.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use dsm_client::{Client, Error};
use dsm_tests::{wait_until, Cluster, ClusterOpts, STARTUP};
use dsm_wire::ErrorCode;

const KEYS: usize = 200;

fn cluster(slaves: usize, replicas: usize) -> Cluster {
    Cluster::start(ClusterOpts {
        slaves,
        replicas,
        master_args: vec!["--ack-timeout-ms".into(), "200".into()],
        ..Default::default()
    })
}

fn key(i: usize) -> Vec<u8> {
    format!("fault-key-{i}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value of {i}").into_bytes()
}

fn write_keys(c: &mut Client, n: usize) {
    for i in 0..n {
        c.write(&key(i), &value(i))
            .unwrap_or_else(|e| panic!("WRITE key {i}: {e}"));
    }
}

fn check_keys(c: &mut Client, n: usize, when: &str) {
    for i in 0..n {
        match c.read(&key(i)) {
            Ok(got) => assert_eq!(got, Some(value(i)), "key {i} {when}"),
            Err(e) => panic!("READ key {i} {when}: {e}"),
        }
    }
}

#[test]
fn reads_fail_over_when_a_holder_is_killed() {
    let mut cluster = cluster(4, 2);
    let mut c = cluster.client();
    write_keys(&mut c, KEYS);
    cluster.kill_slave(0);
    // No waiting for the master to notice: each read must find the surviving copy.
    check_keys(&mut c, KEYS, "right after kill -9 of s0");
}

#[test]
fn no_acknowledged_write_is_lost_when_a_slave_dies_under_load() {
    const PER_THREAD: usize = 300;
    let mut cluster = cluster(4, 2);
    let acked = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let acked_after_kill = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let kept: Vec<(Vec<u8>, Vec<u8>)> = thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|t| {
                let mut c = cluster.client();
                let (acked, killed) = (&acked, &killed);
                let (acked_after_kill, failures) = (&acked_after_kill, &failures);
                s.spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..PER_THREAD {
                        let k = format!("load-{t}-{i}").into_bytes();
                        let v = format!("written by {t} as {i}").into_bytes();
                        match c.write(&k, &v) {
                            Ok(_) => {
                                if killed.load(Ordering::SeqCst) {
                                    acked_after_kill.fetch_add(1, Ordering::SeqCst);
                                }
                                acked.fetch_add(1, Ordering::SeqCst);
                                kept.push((k, v));
                            }
                            // The outcome is unknown: nothing to check for this key.
                            Err(e) => failures.lock().unwrap().push(format!("load-{t}-{i}: {e}")),
                        }
                    }
                    kept
                })
            })
            .collect();
        wait_until(
            Duration::from_secs(60),
            "150 acknowledged writes before the kill",
            || acked.load(Ordering::SeqCst) >= 150,
        );
        killed.store(true, Ordering::SeqCst);
        cluster.kill_slave(1);
        writers
            .into_iter()
            .flat_map(|w| w.join().expect("writer thread"))
            .collect()
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        acked_after_kill.load(Ordering::SeqCst) > 0,
        "no write was acknowledged after the kill; failures: {failures:?}"
    );
    let mut c = cluster.client();
    for (k, v) in &kept {
        let key = String::from_utf8_lossy(k);
        match c.read(k) {
            Ok(got) => assert_eq!(got.as_ref(), Some(v), "acknowledged write of {key} lost"),
            Err(e) => panic!("READ {key} after the kill: {e}"),
        }
    }
    eprintln!(
        "{} writes acknowledged and read back; {} failed: {failures:?}",
        kept.len(),
        failures.len()
    );
}

#[test]
fn a_stopped_slave_neither_stalls_writes_nor_stays_live() {
    let mut cluster = cluster(4, 2);
    let mut c = cluster.client();
    cluster.stop_slave(2);
    for i in 0..50 {
        let start = Instant::now();
        c.write(&key(i), &value(i))
            .unwrap_or_else(|e| panic!("WRITE key {i} with s2 stopped: {e}"));
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "WRITE key {i} took {took:?} with s2 stopped (ack timeout 200 ms)"
        );
    }
    check_keys(&mut c, 50, "with s2 stopped");
    cluster.wait_slave_live(2, false, Duration::from_secs(5));
}

/// Every holder out of reach is not every copy gone: a READ waits for one to come back until
/// the master's request deadline, then answers UNAVAILABLE (retry), never NOT_FOUND. Once the
/// operator says the slaves are gone for good (`forget-slave`), their keys read NOT_FOUND, at
/// once.
#[test]
fn reads_answer_unavailable_while_every_holder_is_down_and_not_found_once_forgotten() {
    let mut cluster = cluster(3, 3);
    let mut c = cluster.client();
    write_keys(&mut c, 20);
    check_keys(&mut c, 20, "before the kills");
    for i in 0..3 {
        cluster.kill_slave(i);
    }
    for i in 0..3 {
        let start = Instant::now();
        match c.read(&key(i)) {
            Err(Error::Server {
                code: ErrorCode::Unavailable,
                ..
            }) => {}
            other => panic!("READ key {i} with every holder down: {other:?}"),
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
            "READ key {i} answered after {took:?}, not at the 2 s request deadline"
        );
    }
    for i in 0..3 {
        c.forget_slave(&format!("s{i}"))
            .unwrap_or_else(|e| panic!("forget-slave s{i}: {e}"));
    }
    for i in 0..20 {
        let start = Instant::now();
        let got = c
            .read(&key(i))
            .unwrap_or_else(|e| panic!("READ key {i} with every slave forgotten: {e}"));
        let took = start.elapsed();
        assert_eq!(got, None, "key {i} with every holder forgotten");
        assert!(
            took < Duration::from_secs(1),
            "READ key {i} with every holder forgotten took {took:?}"
        );
    }
}

#[test]
fn two_slaves_killed_in_turn_lose_nothing() {
    // Copies start at once after a drop, not after the default 10 s of patience.
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 4,
        replicas: 2,
        master_args: ["--ack-timeout-ms", "200", "--repair-after-ms", "0"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    let mut c = cluster.client();
    write_keys(&mut c, KEYS);
    cluster.kill_slave(0);
    // Re-replication must restore R copies before the next failure; the issue allows 3 s
    // between the kills, the wait allows more for a noisy machine.
    let start = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "re-replication after the first kill (STATUS under_replicated == 0)",
        || {
            cluster
                .try_status()
                .is_ok_and(|s| s.under_replicated == 0 && dsm_tests::live_count(&s) == 3)
        },
    );
    eprintln!(
        "R copies restored {:?} after the first kill",
        start.elapsed()
    );
    cluster.kill_slave(1);
    check_keys(&mut c, KEYS, "after s0 and s1 were killed in turn");
    let s = cluster.status();
    assert_eq!(s.keys, KEYS as u64, "STATUS keys: {s:?}");
}

/// An address where a connect neither completes nor fails, as to a host that is down: a
/// listener whose accept queue is full (the kernel then drops further SYNs). It lasts as long
/// as the listener and the connections returned.
fn unanswering_address() -> (TcpListener, Vec<TcpStream>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => queued.push(stream),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return (listener, queued, addr),
            Err(e) => panic!("connect {addr} after {} connections: {e}", queued.len()),
        }
        assert!(
            queued.len() < 10_000,
            "the accept queue of {addr} never fills"
        );
    }
}

#[test]
fn a_master_address_that_never_answers_is_given_up_at_the_connect_deadline() {
    let mut cluster = cluster(1, 1);
    let (_listener, _queued, dead) = unanswering_address();
    let mut masters = vec![dead];
    masters.extend(cluster.masters());
    cluster.spawn_stranger_slave("patient", &masters, None);
    let log = cluster.wait_log("patient", "registered with master", 1, STARTUP);
    let gave_up = format!("cannot reach master {dead}: no connection after 1000 ms");
    assert!(log.contains(&gave_up), "{log}");
    wait_until(STARTUP, "the slave listed by the master", || {
        cluster.status().slaves.iter().any(|s| s.id == "patient")
    });
}

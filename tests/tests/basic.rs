//! Acceptance of the foundation: a master and 3 slaves at R=2 as real processes, driven through
//! the client library, the `dsm-client` binary and raw frames.

use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use dsm_client::{Client, Error, Op, Reply};
use dsm_tests::raw::{next_frame, send_frame, Heard};
use dsm_tests::{bin, live_count, run, Cluster, ClusterOpts};
use dsm_wire::{Body, ErrorCode, Role};

const KEYS: usize = 1000;
const THREADS: usize = 4;
/// A one-shot `dsm-client` run is generously bounded: the CI machine is small and noisy.
const CLI_DEADLINE: Duration = Duration::from_secs(30);

fn cluster() -> Cluster {
    cluster_with(Vec::new())
}

fn cluster_with(master_args: Vec<String>) -> Cluster {
    Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        master_args,
        ..Default::default()
    })
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

/// Run `work(thread, client)` on [`THREADS`] threads, each with its own client.
fn on_threads(cluster: &Cluster, work: impl Fn(usize, &mut Client) + Sync) {
    thread::scope(|s| {
        for t in 0..THREADS {
            let mut c = cluster.client();
            let work = &work;
            s.spawn(move || work(t, &mut c));
        }
    });
}

fn check_all(cluster: &Cluster, expected: &[Vec<u8>]) {
    // Read each key from a different thread than the one that wrote it.
    on_threads(cluster, |t, c| {
        for i in (0..KEYS).filter(|i| (i + 1) % THREADS == t) {
            let got = c
                .read(&key(i))
                .unwrap_or_else(|e| panic!("READ key {i}: {e}"));
            assert_eq!(
                got.as_deref(),
                Some(&expected[i][..]),
                "key {i} does not read back its newest value"
            );
        }
    });
}

#[test]
fn thousand_keys_from_four_threads_read_back_and_spread_over_slaves() {
    let cluster = cluster();
    let mut expected: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("first value of {i}").into_bytes())
        .collect();
    on_threads(&cluster, |t, c| {
        for i in (0..KEYS).filter(|i| i % THREADS == t) {
            c.write(&key(i), &expected[i])
                .unwrap_or_else(|e| panic!("WRITE key {i}: {e}"));
        }
    });
    check_all(&cluster, &expected);

    // Overwrite a third, each from a thread other than the first writer.
    for i in (0..KEYS).step_by(3) {
        expected[i] = format!("second value of {i}").into_bytes();
    }
    on_threads(&cluster, |t, c| {
        for i in (0..KEYS).step_by(3).filter(|i| (i + 2) % THREADS == t) {
            c.write(&key(i), &expected[i])
                .unwrap_or_else(|e| panic!("overwrite of key {i}: {e}"));
        }
    });
    check_all(&cluster, &expected);

    let s = cluster.status();
    assert_eq!(s.keys, KEYS as u64, "STATUS keys: {s:?}");
    assert_eq!(s.replicas, 2, "STATUS replicas: {s:?}");
    assert_eq!(live_count(&s), 3, "live slaves: {s:?}");
    let copies: u64 = s.slaves.iter().map(|x| x.keys).sum();
    assert_eq!(copies, 2 * KEYS as u64, "copies over all slaves: {s:?}");
    let fair_floor = (2 * KEYS) as f64 / 3.0 * 0.6;
    for x in &s.slaves {
        assert!(
            x.keys as f64 >= fair_floor,
            "slave {} holds {} keys, under 60% of an even share ({fair_floor:.0}): {s:?}",
            x.id,
            x.keys
        );
        assert!(
            x.keys <= s.keys,
            "slave {} holds more keys than exist: {s:?}",
            x.id
        );
    }
}

#[test]
fn never_written_key_reads_none() {
    let cluster = cluster();
    let mut c = cluster.client();
    assert_eq!(c.read(b"never-written").unwrap(), None);
    c.write(b"written", b"x").unwrap();
    assert_eq!(c.read(b"never-written-either").unwrap(), None);
}

#[test]
fn piped_repls_write_then_read_values_with_spaces() {
    const LINES: usize = 150;
    let cluster = cluster();
    let value = |p: usize, i: usize| format!("value with  spaces {p} {i} end");
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|p| {
                let mut input = String::new();
                for i in 0..LINES {
                    input.push_str(&format!("WRITE repl-{p}-{i} {}\n", value(p, i)));
                }
                for i in 0..LINES {
                    input.push_str(&format!("READ repl-{p}-{i}\n"));
                }
                let mut cmd = cluster.client_command();
                s.spawn(move || run(&mut cmd, input.as_bytes(), CLI_DEADLINE))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (p, done) in results.iter().enumerate() {
        assert_eq!(
            done.code(),
            Some(0),
            "REPL {p} exit; stderr:\n{}",
            done.stderr()
        );
        let stdout = done.stdout();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2 * LINES, "REPL {p} answered:\n{stdout}");
        for (i, line) in lines[..LINES].iter().enumerate() {
            assert_eq!(*line, "OK", "REPL {p} answer to WRITE {i}");
        }
        for (i, line) in lines[LINES..].iter().enumerate() {
            assert_eq!(*line, value(p, i), "REPL {p} answer to READ {i}");
        }
    }
}

#[test]
fn cli_read_and_write_exit_codes() {
    let cluster = cluster();
    let done = run(
        cluster.client_command().args(["read", "missing"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(
        done.code(),
        Some(1),
        "read missing; stderr: {}",
        done.stderr()
    );
    // Raw output (stdout is a pipe): stdout holds only stored bytes, NOT_FOUND is on stderr.
    assert_eq!(done.stdout(), "");
    assert_eq!(done.stderr().trim_end(), "NOT_FOUND");

    let done = run(
        cluster.client_command().args(["write", "k", "v", "w"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "write; stderr: {}", done.stderr());
    assert_eq!(done.stdout().trim_end(), "OK");

    let done = run(
        cluster.client_command().args(["read", "k"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "read k; stderr: {}", done.stderr());
    assert_eq!(done.stdout().trim_end(), "v w");
}

#[test]
fn cli_bogus_flag_is_a_usage_error() {
    let done = run(
        Command::new(bin("dsm-client")).arg("--bogus"),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(2), "stdout: {}", done.stdout());
    assert!(
        done.stderr().contains("bogus"),
        "stderr should name the bad flag: {:?}",
        done.stderr()
    );
}

fn unreachable_master(timeout_ms: &str) -> dsm_tests::Finished {
    let mut cmd = Command::new(bin("dsm-client"));
    cmd.args([
        "--master",
        "127.0.0.1:1",
        "--timeout-ms",
        timeout_ms,
        "read",
        "k",
    ]);
    let done = run(&mut cmd, b"", CLI_DEADLINE);
    assert_eq!(done.code(), Some(2), "stdout: {}", done.stdout());
    assert!(!done.stderr().is_empty(), "no message on stderr");
    done
}

#[test]
fn cli_unreachable_master_exits_2() {
    let done = unreachable_master("300");
    assert!(
        done.elapsed < Duration::from_secs(10),
        "exit 2 took {:?}",
        done.elapsed
    );
}

#[test]
fn cli_unreachable_master_honours_timeout_ms() {
    let done = unreachable_master("300");
    // `--timeout-ms` is the "deadline of each request, reconnects included"; 3 s leaves room
    // for a noisy machine and is still well under the 5 s default.
    assert!(
        done.elapsed < Duration::from_secs(3),
        "exit 2 took {:?} with --timeout-ms 300",
        done.elapsed
    );
}

#[test]
fn help_exits_0_and_names_the_main_flags() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "dsm-master",
            &["--listen", "--heartbeat", "--replicas", "--ack-timeout-ms"],
        ),
        ("dsm-slave", &["--master", "--id"]),
        ("dsm-client", &["--master", "--timeout-ms"]),
    ];
    for (name, flags) in cases {
        let done = run(Command::new(bin(name)).arg("--help"), b"", CLI_DEADLINE);
        assert_eq!(
            done.code(),
            Some(0),
            "{name} --help; stderr: {}",
            done.stderr()
        );
        let help = done.stdout();
        for flag in flags {
            assert!(
                help.contains(flag),
                "{name} --help does not mention {flag}:\n{help}"
            );
        }
    }
}

#[test]
fn pipelined_batch_reads_see_the_write_before_them() {
    let cluster = cluster();
    let mut c = cluster.client();
    // Per key: WRITE a, READ, WRITE b, READ, READ; 100 keys make 500 ops.
    let mut ops = Vec::new();
    let mut want = Vec::new();
    for k in 0..100 {
        let key = format!("batch-{k}").into_bytes();
        let (a, b) = (format!("a{k}").into_bytes(), format!("b{k}").into_bytes());
        for (op, reply) in [
            (
                Op::Write {
                    key: key.clone(),
                    value: a.clone(),
                },
                Reply::Ok,
            ),
            (Op::Read { key: key.clone() }, Reply::Value(a)),
            (
                Op::Write {
                    key: key.clone(),
                    value: b.clone(),
                },
                Reply::Ok,
            ),
            (Op::Read { key: key.clone() }, Reply::Value(b.clone())),
            (Op::Read { key }, Reply::Value(b)),
        ] {
            ops.push(op);
            want.push(reply);
        }
    }
    assert_eq!(ops.len(), 500);
    let answers = c.batch(&ops).expect("the batch as a whole");
    assert_eq!(answers.len(), ops.len());
    for (n, (got, want)) in answers.iter().zip(&want).enumerate() {
        match got {
            Ok(got) => assert_eq!(got, want, "answer {n} to {:?}", ops[n]),
            Err(e) => panic!("answer {n} to {:?}: {e}", ops[n]),
        }
    }
}

#[test]
fn oversize_value_is_too_large_and_the_connection_keeps_working() {
    let cluster = cluster_with(vec!["--max-value".into(), "1000".into()]);
    let mut c = cluster.client();
    match c.write(b"big", &[b'x'; 1001]) {
        Err(Error::Server {
            code: ErrorCode::TooLarge,
            ..
        }) => {}
        other => panic!("a 1001-byte value with --max-value 1000 gave {other:?}"),
    }
    c.write(b"fits", &[b'y'; 1000]).unwrap();
    assert_eq!(c.read(b"fits").unwrap(), Some(vec![b'y'; 1000]));
    assert_eq!(c.read(b"big").unwrap(), None);

    // The client library would reconnect silently; raw frames show the master keeps the
    // very same connection open after the ERROR.
    let mut raw = TcpStream::connect(cluster.master_addr()).unwrap();
    let hello = Body::Hello {
        role: Role::Client,
        epoch: 0,
        id: String::new(),
        boot: 0,
        nonce: None,
        limits: None,
    };
    assert!(matches!(exchange(&mut raw, 1, hello), Body::Welcome { .. }));
    let big = Body::Write {
        key: b"big".to_vec(),
        value: vec![b'x'; 5000],
    };
    match exchange(&mut raw, 2, big) {
        Body::Error {
            code: ErrorCode::TooLarge,
            ..
        } => {}
        other => panic!("a 5000-byte value with --max-value 1000 gave {other:?}"),
    }
    let small = Body::Write {
        key: b"after".to_vec(),
        value: b"still here".to_vec(),
    };
    assert_eq!(exchange(&mut raw, 3, small), Body::Ok);
    let read = Body::Read {
        key: b"after".to_vec(),
    };
    assert_eq!(
        exchange(&mut raw, 4, read),
        Body::Value {
            value: b"still here".to_vec()
        }
    );
}

/// Send one frame on `conn` and return the body of the answer with the same request id.
fn exchange(conn: &mut TcpStream, req_id: u64, body: Body) -> Body {
    send_frame(conn, req_id, body);
    match next_frame(
        conn,
        &mut Vec::new(),
        Instant::now() + Duration::from_secs(10),
    ) {
        Heard::Frame(frame) => {
            assert_eq!(frame.req_id, req_id, "answer to another request: {frame:?}");
            frame.body
        }
        other => panic!("no answer to request {req_id}: {other:?}"),
    }
}

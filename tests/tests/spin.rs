//! The spins stay bounded. The master (`--spin-us`, while requests wait on slaves, and
//! `--client-spin-us`, after a client's request) and the slaves (`--spin-us`, after each frame
//! from the master) poll without sleeping for a while before they block. A spin that never ends would burn a CPU per process and still pass every
//! functional test: the first test measures the CPU time the processes use while nothing
//! happens. A spin that runs past a timer would delay it: the second gives the master a spin
//! far longer than a request's deadline.

use std::thread::sleep;
use std::time::{Duration, Instant};

use dsm_tests::raw::{next_frame, send_frame as send, stuck_slaves, Heard};
use dsm_tests::{Cluster, ClusterOpts};
use dsm_wire::{Body, ErrorCode};

/// How long the cluster sits idle while its CPU time is measured.
const IDLE: Duration = Duration::from_secs(2);
/// The most CPU time a process may use in `IDLE`, as a share of it. A sleeping process uses
/// well under 1% (a PING a second, a few timer ticks); one that spins uses most of a CPU, and
/// even on a machine busy with other tests, with `sched_yield` between polls, far above this.
const MAX_SHARE: f64 = 0.15;

/// User + system CPU time of a process so far (from `/proc/PID/stat`).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')').expect("a stat line has the name in ()") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64)
}

/// The unit of `/proc/PID/stat` times (`getconf CLK_TCK`, 100 on every common Linux).
fn clock_ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK is a number")
}

#[test]
fn an_idle_cluster_sleeps_after_serving_requests() {
    let cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        ..Default::default()
    });
    // Work first, so every spin has had a reason to start.
    let mut c = cluster.client();
    for i in 0..200 {
        let key = format!("k{}", i % 20);
        c.write(key.as_bytes(), b"value").unwrap();
        assert_eq!(c.read(key.as_bytes()).unwrap(), Some(b"value".to_vec()));
    }
    drop(c);
    let mut pids = vec![("master".to_string(), cluster.master_pid())];
    for i in 0..cluster.slave_count() {
        pids.push((cluster.slave_id(i), cluster.slave_pid(i)));
    }
    let before: Vec<Duration> = pids.iter().map(|&(_, pid)| cpu_time(pid)).collect();
    sleep(IDLE);
    for ((name, pid), before) in pids.iter().zip(before) {
        let used = cpu_time(*pid) - before;
        let share = used.as_secs_f64() / IDLE.as_secs_f64();
        assert!(
            share <= MAX_SHARE,
            "{name} used {used:?} of CPU in {IDLE:?} idle ({:.0}%): it spins instead of sleeping",
            share * 100.0
        );
    }
}

#[test]
fn a_long_spin_still_answers_a_request_at_its_deadline() {
    const SPIN_US: &str = "30000000"; // 30 s
    const REQUEST_TIMEOUT_MS: u64 = 1000;
    // Far below the spin, far above the deadline on a loaded machine.
    const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
    // Nothing but the request's deadline may end the wait.
    let timeout = REQUEST_TIMEOUT_MS.to_string();
    let (mut cluster, mut raw, mut buf) = stuck_slaves(
        &["--spin-us", SPIN_US, "--request-timeout-ms", &timeout],
        Instant::now() + ANSWER_DEADLINE,
    );
    // The STOREs reach stopped slaves, so the master spins for their ACKs; only the request
    // deadline, a timer, can answer the write.
    let sent = Instant::now();
    let write = Body::Write {
        key: b"stuck".to_vec(),
        value: b"v".to_vec(),
    };
    send(&mut raw, 2, write);
    let frame = match next_frame(&mut raw, &mut buf, sent + ANSWER_DEADLINE) {
        Heard::Frame(frame) => frame,
        other => panic!(
            "no answer within {ANSWER_DEADLINE:?} (the spin ran past the deadline?): {other:?}"
        ),
    };
    let took = sent.elapsed();
    assert_eq!(frame.req_id, 2);
    assert!(
        matches!(
            frame.body,
            Body::Error {
                code: ErrorCode::Timeout,
                ..
            }
        ),
        "expected TIMEOUT, got {:?}",
        frame.body
    );
    assert!(
        took >= Duration::from_millis(REQUEST_TIMEOUT_MS),
        "answered after {took:?}, before the {REQUEST_TIMEOUT_MS} ms deadline"
    );
    for i in 0..cluster.slave_count() {
        cluster.cont_slave(i);
    }
}

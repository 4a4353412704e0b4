//! A write the client library sends again after a failover must not take effect twice: once
//! through the old primary and once more, later, through the new one, with another client's
//! write in between (a, b, a for one write of a). The torture checker judges the history.

use std::thread;
use std::time::{Duration, Instant};

use dsm_client::Client;
use dsm_tests::torture::checker::{self, KeyVerdict};
use dsm_tests::torture::history::{Kind, Op, Outcome};
use dsm_tests::torture::report::witness_table;
use dsm_tests::torture::workload::{classify_write, recorded_read, Clock};
use dsm_tests::{Cluster, ClusterOpts, MasterId};
use dsm_wire::ServerRole;

const KEY: &str = "k";

fn recorded_write(c: &mut Client, process: u32, value: &str, clock: Clock) -> Op {
    let invoke_ns = clock.now_ns();
    let r = c.write(KEY.as_bytes(), value.as_bytes());
    let complete_ns = clock.now_ns();
    let (outcome, error) = classify_write(&r);
    Op {
        process,
        key: KEY.into(),
        kind: Kind::Write,
        value: Some(value.into()),
        invoke_ns,
        complete_ns,
        outcome,
        error,
        ..Op::default()
    }
}

/// The old primary takes a write and stores it on one slave; the other slave is frozen, so the
/// write waits for its ACK, and the primary is frozen too. The slaves elect the backup, and another
/// client reads that write (the new primary asks every slave for a key with an unconfirmed
/// write), overwrites it and reads its own value back. Then the old primary resumes, learns of
/// the new epoch, steps down, and answers the waiting write NOT_PRIMARY ("outcome unknown").
/// Sending the write again would apply it a second time, after the overwrite.
#[test]
fn a_write_taken_before_a_failover_is_not_applied_again_after_it() {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        backup: true,
        ..Default::default()
    });
    let clock = Clock::start();
    let mut history = Vec::new();
    let mut c1 = cluster.ha_client();
    c1.set_timeout(Duration::from_secs(20));
    history.push(recorded_write(&mut c1, 1, "1-0", clock));

    // s0 holds every key (R=2 of 2 slaves): frozen, it leaves the write waiting for its ACK
    // (200 ms) after s1 has stored it; the primary is frozen within that time.
    cluster.stop_slave(0);
    let writer = thread::spawn(move || recorded_write(&mut c1, 1, "1-1", clock));
    thread::sleep(Duration::from_millis(50));
    cluster.stop_primary();
    // The slaves give up on the silent primary and elect the backup: both of them are needed
    // (with the backup, 3 of the 4 voters), so s0 resumes first.
    cluster.cont_slave(0);
    cluster.wait_role(
        MasterId::BACKUP,
        ServerRole::Primary,
        Duration::from_secs(10),
    );

    let mut c2 = Client::connect_with_timeout(&[cluster.backup_addr()], Duration::from_secs(20))
        .expect("connect to the new primary");
    history.push(read_until_ok(&mut c2, clock));
    history.push(recorded_write(&mut c2, 2, "2-0", clock));
    history.push(read_until_ok(&mut c2, clock));

    // The old primary resumes, hears of the new epoch and steps down.
    cluster.cont_primary();
    let w = writer.join().expect("writer thread");
    eprintln!(
        "the first client's write: {} ({:?})",
        w.outcome.name(),
        w.error
    );
    history.push(w);
    history.push(read_until_ok(&mut c2, clock));
    thread::sleep(Duration::from_millis(200));
    history.push(read_until_ok(&mut c2, clock));

    eprint!("{}", witness_table(&history));
    // The case arose: the write was stored once, seen, and overwritten before the old primary
    // answered it.
    assert_eq!(
        history[1].value.as_deref(),
        Some("1-1"),
        "first read after the takeover"
    );
    assert_eq!(
        history[3].value.as_deref(),
        Some("2-0"),
        "read after the overwrite"
    );
    match checker::check_key(&history, checker::DEFAULT_MAX_STEPS) {
        KeyVerdict::Linearizable => {}
        other => panic!("not linearizable: {other:?}"),
    }
}

/// A READ by process 2, tried again while it fails (a new primary may still wait for slaves).
fn read_until_ok(c: &mut Client, clock: Clock) -> Op {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let op = recorded_read(c, 2, KEY, clock);
        if op.outcome == Outcome::Ok || Instant::now() >= deadline {
            return op;
        }
    }
}

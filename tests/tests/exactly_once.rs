//! Exactly-once writes across a failover, against real processes: the primary is killed -9
//! under a load of writes and reads on a few shared keys (twice: the killed master comes back
//! as the standby and is elected again), and every write still gets a definite
//! answer (the client library sends the ones in flight again, as WRITE_ONCE, and the new
//! primary learns from the slaves whether each was applied) and none is applied twice (the
//! history of every key is linearizable, and no acknowledged write is lost).

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use dsm_tests::torture::checker::{self, DEFAULT_MAX_STEPS};
use dsm_tests::torture::history::{Kind, Outcome};
use dsm_tests::torture::rng::Rng;
use dsm_tests::torture::workload::{key_name, recorded_read, ChangeMix, Clock, Tally, Worker};
use dsm_tests::{Cluster, ClusterOpts, MasterId};
use dsm_wire::ServerRole;

const WORKERS: u32 = 6;
const KEYS: usize = 4;
/// The client's deadline per call: a failover (about a lease, 400 ms, plus the slaves'
/// patience) finishes well inside it, even on a loaded machine.
const CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// The process number of the final reads.
const FINAL: u32 = 1000;

#[test]
fn a_primary_killed_under_load_leaves_no_write_without_a_definite_answer_nor_applied_twice() {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        backup: true,
        ..Default::default()
    });
    cluster.wait_backup_synced(MasterId::BACKUP, Duration::from_secs(10));
    let masters = cluster.masters();
    let clock = Clock::start();
    let (stop, tally) = (AtomicBool::new(false), Tally::default());
    let mut ops = thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|p| {
                let w = Worker {
                    process: p,
                    masters: masters.clone(),
                    keys: KEYS,
                    read_percent: 25,
                    // WRITEs only: they are what is sent exactly once (a lost master leaves a
                    // DELETE, CAS or INCR unknown).
                    changes: ChangeMix::WRITES,
                    timeout: CALL_TIMEOUT,
                    think_ms: 0,
                };
                let (stop, tally) = (&stop, &tally);
                s.spawn(move || w.run(Rng::stream(17, p.into()), clock, stop, tally))
            })
            .collect();
        // Steady load first (the slaves have been up for longer than any write's age by the
        // time it is sent again), then kill -9 with writes in flight.
        thread::sleep(Duration::from_millis(1500));
        let before = tally.total();
        let (mut dying, mut next) = (MasterId::PRIMARY, MasterId::BACKUP);
        for round in 0..2 {
            if round > 0 {
                // The killed master comes back as the standby of the new primary.
                let hb = cluster.master_heartbeat(next);
                cluster.restart_master_as_backup_of(dying, hb);
                (dying, next) = (next, dying);
            }
            cluster.kill_master(dying);
            cluster.wait_role(next, ServerRole::Primary, Duration::from_secs(10));
            // Load through the new primary.
            let after = tally.total();
            dsm_tests::wait_until(Duration::from_secs(20), "load after the failover", || {
                tally.total() >= after + 300
            });
        }
        stop.store(true, Ordering::SeqCst);
        let ops: Vec<_> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("a worker panicked"))
            .collect();
        assert!(before > 100, "only {before} operations before the kill");
        ops
    });
    let mut c = cluster.ha_client();
    for k in 0..KEYS {
        ops.push(recorded_read(&mut c, FINAL, &key_name(k), clock));
    }

    let writes = ops.iter().filter(|o| o.kind == Kind::Write).count();
    let unknown: Vec<String> = ops
        .iter()
        .filter(|o| o.kind == Kind::Write && o.outcome == Outcome::Unknown)
        .map(|o| format!("{} {:?}: {:?}", o.key, o.value, o.error))
        .collect();
    eprintln!(
        "{} operations ({writes} writes): {} ok, {} failed, {} unknown",
        ops.len(),
        tally.ok.load(Ordering::Relaxed),
        tally.fail.load(Ordering::Relaxed),
        tally.unknown.load(Ordering::Relaxed)
    );
    assert!(
        unknown.is_empty(),
        "{} writes without a definite answer: {unknown:#?}",
        unknown.len()
    );
    let failed: Vec<_> = ops.iter().filter(|o| o.outcome != Outcome::Ok).collect();
    assert!(failed.is_empty(), "operations that failed: {failed:#?}");
    let verdict = checker::check(&ops, Some(FINAL), DEFAULT_MAX_STEPS);
    assert!(
        verdict.passed(),
        "lost: {:?}; not linearizable: {:?}",
        verdict.lost,
        verdict.violations()
    );
}

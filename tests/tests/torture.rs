//! The short torture run of `make test`: 20 s of seeded faults (every kind at least once, the
//! kill -9 of every node at once and the restart of a slave on its data included) against a
//! primary, a backup and 4 slaves at R=2, every node with a data dir (the slaves with the
//! default `--fsync interval`), while 4 clients read, write, delete, compare-and-set and
//! increment 8 keys; the history must be linearizable key by key and lose no acknowledged
//! change. The seed is printed;
//! `DSM_TORTURE_SEED=N` replays a schedule. `make torture` is the long version.

use std::time::Duration;

use dsm_tests::torture::history::{Kind, Outcome};
use dsm_tests::torture::nemesis::Fault;
use dsm_tests::torture::{report, rng, run};

#[test]
fn twenty_seconds_of_faults_leave_a_linearizable_history_and_no_lost_write() {
    let seed = match std::env::var("DSM_TORTURE_SEED") {
        Ok(s) => s.parse().expect("DSM_TORTURE_SEED must be a number"),
        Err(_) => rng::clock_seed(),
    };
    eprintln!("torture seed {seed} (replay: DSM_TORTURE_SEED={seed} cargo test --test torture)");
    let history =
        std::env::temp_dir().join(format!("dsm-torture-{seed}-{}.jsonl", std::process::id()));
    let r = run::run(run::Config {
        seed,
        duration: Duration::from_secs(20),
        clients: 4,
        keys: 8,
        slaves: 4,
        history: Some(history.clone()),
        ..run::Config::default()
    });
    let summary = report::summary(&r);
    eprint!("{summary}");
    assert!(
        r.passed(),
        "seed {seed}: {summary}history kept in {}",
        history.display()
    );
    let _ = std::fs::remove_file(&history);
    // A run that injected nothing or did nothing proves nothing.
    for kind in [
        Fault::KillSlave,
        Fault::StopSlave,
        Fault::StopPrimary,
        Fault::KillPrimary,
        Fault::StopSlaveRepeatedly,
        Fault::RestartSlave,
        Fault::KillAll,
    ] {
        assert!(
            r.faults.counts.get(&kind).is_some_and(|&n| n > 0),
            "seed {seed}: no {} fault in 20 s: {summary}",
            kind.name()
        );
    }
    let acked = r
        .ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && o.process != r.final_process)
        .count();
    assert!(
        acked >= 1000,
        "seed {seed}: only {acked} operations succeeded: {summary}"
    );
    // The workload's DELETEs, CASes and INCRs took effect, and CASes were refused, or the
    // model's rules for them were never put to the test.
    for kind in [Kind::Delete, Kind::Cas, Kind::Incr] {
        let ok = r
            .ops
            .iter()
            .filter(|o| o.kind == kind && o.outcome == Outcome::Ok)
            .count();
        assert!(
            ok > 0,
            "seed {seed}: no {} succeeded: {summary}",
            kind.name()
        );
    }
    assert!(
        r.ops
            .iter()
            .any(|o| o.kind == Kind::Cas && o.refusal().is_some()),
        "seed {seed}: no CAS conflicted: {summary}"
    );
}

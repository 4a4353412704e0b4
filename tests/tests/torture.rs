//! The short torture run of `make test`: 20 s of seeded faults (every kind at least once: the
//! kill -9 of every node at once and the restart of a slave on its data, and the ones that cut
//! links, for which every node runs in a network namespace of its own) against a primary, a
//! backup and 4 slaves at R=2, every node with a data dir (the slaves with the default
//! `--fsync interval`), while 4 clients read, write, delete, compare-and-set and increment 8
//! keys; the history must be linearizable key by key and lose no acknowledged change. Namespaces need root and `ip netns`: where the
//! machine refuses them the faults that cut links are left out, saying so, and the others run.
//! The seed is printed; `DSM_TORTURE_SEED=N` replays a schedule. `make torture` is the long
//! version.

use std::time::Duration;

use dsm_tests::torture::history::{Kind, Outcome};
use dsm_tests::torture::nemesis::{Fault, FaultMix, Needs};
use dsm_tests::torture::{netns, report, rng, run};

#[test]
fn twenty_seconds_of_faults_leave_a_linearizable_history_and_no_lost_write() {
    let seed = match std::env::var("DSM_TORTURE_SEED") {
        Ok(s) => s.parse().expect("DSM_TORTURE_SEED must be a number"),
        Err(_) => rng::clock_seed(),
    };
    eprintln!("torture seed {seed} (replay: DSM_TORTURE_SEED={seed} cargo test --test torture)");
    let netns = match netns::available() {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "SKIPPED: the faults that cut links (partition, isolate-backup, cut-primary, \
                 isolate-slave) need network namespaces (root with CAP_NET_ADMIN, and `ip \
                 netns`), which this machine refused: {e}"
            );
            false
        }
    };
    let history =
        std::env::temp_dir().join(format!("dsm-torture-{seed}-{}.jsonl", std::process::id()));
    let r = run::run(run::Config {
        seed,
        duration: Duration::from_secs(20),
        clients: 4,
        keys: 8,
        slaves: 4,
        history: Some(history.clone()),
        netns,
        // Every kind comes once whatever the duration (the 12 kinds take about 30 s with their
        // healing): the long ones and the pauses between faults are kept shorter here.
        mix: FaultMix {
            quiet_ms: (100, 600),
            backup_out_ms: (800, 1500),
            primary_cut_ms: (200, 1200),
            slave_isolate_ms: (200, 1200),
            partition_ms: (100, 1500),
            ..FaultMix::default()
        },
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
    for kind in Fault::ALL {
        if kind.needs() == Needs::Partitions && !netns {
            continue;
        }
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

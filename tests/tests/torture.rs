//! The short torture run of `make test`: 20 s of seeded faults (every kind at least once, the
//! ones that cut links too: every node runs in a network namespace of its own, which needs
//! root and `ip netns`; without them the test fails and says so) against a primary, a backup
//! and 4 slaves at R=2 while 4 clients read and write 8 keys; the history must be linearizable
//! key by key and lose no acknowledged write. The seed is printed; `DSM_TORTURE_SEED=N`
//! replays a schedule. `make torture` is the long version.

use std::time::Duration;

use dsm_tests::torture::history::Outcome;
use dsm_tests::torture::nemesis::{Fault, FaultMix};
use dsm_tests::torture::{netns, report, rng, run};

#[test]
fn twenty_seconds_of_faults_leave_a_linearizable_history_and_no_lost_write() {
    let seed = match std::env::var("DSM_TORTURE_SEED") {
        Ok(s) => s.parse().expect("DSM_TORTURE_SEED must be a number"),
        Err(_) => rng::clock_seed(),
    };
    eprintln!("torture seed {seed} (replay: DSM_TORTURE_SEED={seed} cargo test --test torture)");
    if let Err(e) = netns::available() {
        panic!(
            "the torture run cuts links between nodes in network namespaces (root with \
             CAP_NET_ADMIN, and `ip netns`), which this machine refused: {e}"
        );
    }
    let history =
        std::env::temp_dir().join(format!("dsm-torture-{seed}-{}.jsonl", std::process::id()));
    let r = run::run(run::Config {
        seed,
        duration: Duration::from_secs(20),
        clients: 4,
        keys: 8,
        slaves: 4,
        history: Some(history.clone()),
        netns: true,
        // Every kind comes once whatever the duration (10 kinds take about 25 s with their
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
}

//! `dsm-client bench --op incr|delete|cas|mix-all` against a real cluster: each run briefly,
//! exit status 0, every timed answer as predicted and every key read back as predicted.

use std::time::Duration;

use dsm_tests::{bench_count as field, run, Cluster, ClusterOpts};

const BENCH_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn new_ops_bench_with_every_answer_and_key_checked() {
    // Two slaves at R=2: one dropped for a late ACK (this test shares a loaded 2-core machine
    // with the others) and every write is DEGRADED, which the checks count as an error. Not
    // what this test is about: generous timeouts.
    let cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        master_args: vec!["--ack-timeout-ms".into(), "2000".into()],
        slave_args: vec!["--master-timeout-ms".into(), "3000".into()],
        ..Default::default()
    });
    // (op, clients, pipeline, requests, keys): delete sends more requests than keys, so both
    // its answers (WRITTEN for a live key, NOT_FOUND for a deleted one) are checked.
    let runs = [
        ("incr", 2, 8, 600, 5),
        ("delete", 2, 8, 300, 100),
        ("cas", 3, 4, 600, 12),
        ("mix-all", 2, 8, 1000, 20),
    ];
    for (op, clients, pipeline, requests, keys) in runs {
        let args = [
            "bench",
            "--op",
            op,
            "--clients",
            &clients.to_string(),
            "--pipeline",
            &pipeline.to_string(),
            "--requests",
            &requests.to_string(),
            "--keys",
            &keys.to_string(),
            "--json",
        ];
        let done = run(cluster.client_command().args(args), b"", BENCH_DEADLINE);
        assert_eq!(done.code(), Some(0), "{op}: {done:?}");
        let json = done.stdout();
        eprintln!("{op}: {json}");
        assert!(json.contains(&format!("\"op\":\"{op}\"")), "{json}");
        assert_eq!(field(&json, "errors"), 0, "{op}: {json}");
        assert_eq!(field(&json, "checked"), requests, "{op}: {json}");
        assert_eq!(field(&json, "verified"), keys, "{op}: {json}");
    }
    // The keys hold what the last run left: mix-all's decimal numbers or nothing.
    let done = run(
        cluster.client_command().args(["incr", "bench:0", "0"]),
        b"",
        BENCH_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "{done:?}");
    assert!(done.stdout().trim().parse::<i64>().is_ok(), "{done:?}");

    // A CONFLICT is an error: a second bench writing the same keys all through a cas run (4 s
    // at 1000 writes/s, the cas run well under that) makes its compare-and-sets fail, and the
    // run says so with exit status 1.
    let cas = [
        "bench",
        "--op",
        "cas",
        "--clients",
        "1",
        "--pipeline",
        "4",
        "--requests",
        "2000",
        "--keys",
        "4",
        "--json",
    ];
    let write = [
        "bench",
        "--op",
        "write",
        "--clients",
        "1",
        "--requests",
        "4000",
        "--rate",
        "1000",
        "--keys",
        "4",
    ];
    let mut cas_cmd = cluster.client_command();
    cas_cmd.args(cas);
    let mut write_cmd = cluster.client_command();
    write_cmd.args(write);
    let (cas_done, write_done) = std::thread::scope(|s| {
        let c = s.spawn(|| run(&mut cas_cmd, b"", BENCH_DEADLINE));
        let w = s.spawn(|| run(&mut write_cmd, b"", BENCH_DEADLINE));
        (c.join().unwrap(), w.join().unwrap())
    });
    assert_eq!(write_done.code(), Some(0), "{write_done:?}");
    assert_eq!(cas_done.code(), Some(1), "{cas_done:?}");
    assert!(
        cas_done.stderr().contains("CONFLICT"),
        "{}",
        cas_done.stderr()
    );
    assert!(field(&cas_done.stdout(), "errors") > 0, "{cas_done:?}");
}

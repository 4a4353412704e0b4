//! `--metrics`: a cluster's counters rise by exactly what was done, its histograms are
//! consistent, `promtool check metrics` accepts the text, and the HTTP endpoint refuses what
//! it does not serve without troubling anyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use dsm_tests::metrics::{exchange, get, Samples};
use dsm_tests::{Cluster, ClusterOpts, MasterId};

const WRITES: usize = 20;
const READS: usize = 30;
const MISSING: usize = 5;

fn metrics_args() -> Vec<String> {
    vec!["--metrics".into(), "127.0.0.1:0".into()]
}

fn cluster() -> Cluster {
    Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        master_args: metrics_args(),
        slave_args: metrics_args(),
        data: true,
        ..Default::default()
    })
}

fn scrape(addr: std::net::SocketAddr) -> (String, Samples) {
    let r = get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    let ct = r.headers.iter().find(|(k, _)| k == "content-type");
    assert!(
        ct.is_some_and(|(_, v)| v.starts_with("text/plain; version=0.0.4")),
        "{ct:?}"
    );
    let samples = Samples::parse(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body));
    (r.body, samples)
}

/// `promtool check metrics` on `text`; `false` (with a message) when promtool is not
/// installed (`make test` installs Debian's `prometheus` package first where it can).
fn promtool_check(text: &str, name: &str) -> bool {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/metrics-test");
    std::fs::create_dir_all(&dir).expect("target/metrics-test");
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write the scrape");
    let out = match Command::new("promtool")
        .arg("check")
        .arg("metrics")
        .stdin(std::fs::File::open(&file).expect("open the scrape"))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "SKIPPED promtool check of {}: promtool not runnable ({e}); install Debian's \
                 'prometheus' package (make test does so with apt-get where it can)",
                file.display()
            );
            return false;
        }
    };
    assert!(
        out.status.success(),
        "promtool check metrics {} failed:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

fn delta(before: &Samples, after: &Samples, series: &str) -> f64 {
    after.value(series) - before.get(series).unwrap_or(0.0)
}

#[test]
fn counters_rise_by_what_was_done_and_promtool_accepts_them() {
    let cluster = cluster();
    let master = cluster.master_metrics(MasterId::PRIMARY);
    let slaves = [cluster.slave_metrics(0), cluster.slave_metrics(1)];
    let (_, before) = scrape(master);
    let slaves_before: Vec<Samples> = slaves.iter().map(|&a| scrape(a).1).collect();

    let mut c = cluster.client();
    for i in 0..WRITES {
        c.write(format!("k{i}").as_bytes(), &[b'v'; 100])
            .expect("write");
    }
    for i in 0..READS {
        let v = c.read(format!("k{}", i % WRITES).as_bytes()).expect("read");
        assert!(v.is_some());
    }
    for i in 0..MISSING {
        assert_eq!(
            c.read(format!("missing{i}").as_bytes()).expect("read"),
            None
        );
    }

    let (text, after) = scrape(master);
    let d = |s: &str| delta(&before, &after, s);
    assert_eq!(
        d(r#"dsm_master_requests_total{op="write",result="ok"}"#),
        WRITES as f64
    );
    assert_eq!(
        d(r#"dsm_master_requests_total{op="read",result="ok"}"#),
        READS as f64
    );
    assert_eq!(
        after.value(r#"dsm_master_requests_total{op="read",result="not_found"}"#),
        MISSING as f64
    );
    assert_eq!(
        d(r#"dsm_master_request_duration_seconds_count{op="write"}"#),
        WRITES as f64
    );
    assert_eq!(
        d(r#"dsm_master_request_duration_seconds_count{op="read"}"#),
        (READS + MISSING) as f64
    );
    // Each write: one replication stage, two STOREs (R=2) answered. Each found read is
    // answered from the primary's read cache (the values are small): no FETCH at all.
    assert_eq!(
        d(r#"dsm_master_stage_duration_seconds_count{stage="replication"}"#),
        WRITES as f64
    );
    assert!(d(r#"dsm_master_slave_service_seconds_count{request="store"}"#) >= 2.0 * WRITES as f64);
    assert_eq!(
        d(r#"dsm_master_slave_service_seconds_count{request="fetch"}"#),
        0.0
    );
    assert_eq!(d("dsm_master_read_cache_hits_total"), READS as f64);
    assert_eq!(d("dsm_master_read_cache_misses_total"), 0.0);
    assert_eq!(after.value("dsm_master_read_cache_entries"), WRITES as f64);
    assert!(after.value("dsm_master_read_cache_bytes") >= (WRITES * 100) as f64);
    // Latencies are positive and below the request timeout.
    let sum = after.value(r#"dsm_master_request_duration_seconds_sum{op="write"}"#);
    assert!(
        sum > 0.0 && sum < WRITES as f64 * 2.0,
        "write latency sum {sum}"
    );
    assert_eq!(after.value("dsm_master_keys"), WRITES as f64);
    assert_eq!(after.value("dsm_master_under_replicated_keys"), 0.0);
    assert_eq!(after.value(r#"dsm_master_slaves{state="live"}"#), 2.0);
    assert_eq!(after.value(r#"dsm_master_role{role="primary"}"#), 1.0);
    assert_eq!(after.value(r#"dsm_master_connections{kind="slave"}"#), 2.0);
    assert!(after.value(r#"dsm_master_connections{kind="client"}"#) >= 1.0);
    assert_eq!(
        after.value(r#"dsm_master_slave_keys{slave="s0"}"#),
        WRITES as f64
    );

    let mut stores = 0.0;
    let mut fetches = 0.0;
    for (i, &addr) in slaves.iter().enumerate() {
        let (slave_text, s) = scrape(addr);
        stores += delta(
            &slaves_before[i],
            &s,
            r#"dsm_slave_requests_total{request="store"}"#,
        );
        fetches += delta(
            &slaves_before[i],
            &s,
            r#"dsm_slave_requests_total{request="fetch"}"#,
        );
        assert_eq!(s.value("dsm_slave_keys"), WRITES as f64, "slave s{i}");
        assert!(s.value("dsm_slave_bytes") >= (WRITES * 100) as f64);
        assert!(s.value("dsm_slave_log_bytes") > (WRITES * 100) as f64);
        let ratio = s.value("dsm_slave_memory_cap_ratio");
        assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
        assert!(s.value("dsm_slave_fsync_duration_seconds_count") >= 0.0);
        promtool_check(&slave_text, &format!("slave-s{i}.prom"));
    }
    assert!(stores >= 2.0 * WRITES as f64, "{stores} STOREs");
    assert_eq!(
        fetches, 0.0,
        "{fetches} FETCHes: every read was a cache hit"
    );
    promtool_check(&text, "master.prom");
}

#[test]
fn the_endpoint_refuses_what_it_does_not_serve_and_serves_on() {
    let cluster = cluster();
    let addr = cluster.master_metrics(MasterId::PRIMARY);
    assert_eq!(get(addr, "/nowhere").unwrap().status, 404);
    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!(post.status, 405);
    assert!(post
        .headers
        .iter()
        .any(|(k, v)| k == "allow" && v.contains("GET")));
    // Garbage gets a 400 and the connection closed (exchange reads to the end).
    let junk = exchange(addr, b"\x16\x03\x01\x02\x00 hello\r\n\r\n").unwrap();
    assert_eq!(junk.status, 400);
    // A body is refused.
    let body = exchange(addr, b"GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd").unwrap();
    assert_eq!(body.status, 413);
    // An endless head is cut off at 8 KiB with a 431.
    let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 16 * 1024));
    let long = exchange(addr, &long).unwrap();
    assert_eq!(long.status, 431);
    // HEAD: the length of the page, no body.
    let head = exchange(addr, b"HEAD /metrics HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    // A connection that sends half a head and waits, and 20 more that say nothing (over the
    // 16 the endpoint keeps: the oldest are closed), do not stop anyone else.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metrics HT").unwrap();
    let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (_, s) = scrape(addr);
    assert!(s.value(r#"dsm_master_connections{kind="http"}"#) <= 16.0);
    let mut c = cluster.client();
    c.write(b"still", b"serving").unwrap();
    assert_eq!(c.read(b"still").unwrap().as_deref(), Some(&b"serving"[..]));
    // The half-sent connection was the oldest: it has been closed.
    half.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    assert_eq!(half.read_to_end(&mut rest).unwrap_or(0), 0, "{rest:?}");
    drop(idle);

    // Keep-alive: two requests on one connection, answered in order.
    let two = b"GET /metrics HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\nConnection: close\r\n\r\n";
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(two).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(
        all.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        &all[..60.min(all.len())]
    );
    assert!(all.contains("HTTP/1.1 404 Not Found\r\n"));
}

#[test]
fn top_prints_the_masters_numbers() {
    let cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        master_args: metrics_args(),
        ..Default::default()
    });
    let addr = cluster.master_metrics(MasterId::PRIMARY);
    let mut c = cluster.client();
    for i in 0..7 {
        c.write(format!("top{i}").as_bytes(), b"v").unwrap();
    }
    // Writes go on until top is done (not for a fixed time: a loaded machine may start top
    // late), so its second line has a rate and percentiles.
    let masters = [cluster.master_addr()];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut c = dsm_client::Client::connect(&masters).unwrap();
        while !writing.load(std::sync::atomic::Ordering::Relaxed) {
            c.write(b"top0", b"again").unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut cmd = Command::new(dsm_tests::bin("dsm-client"));
    cmd.args([
        "top",
        "--metrics",
        &addr.to_string(),
        "--interval-ms",
        "300",
        "--count",
        "2",
    ]);
    let done = dsm_tests::run(&mut cmd, b"", Duration::from_secs(30));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(done.code(), Some(0), "{}", done.stderr());
    let out = done.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("role") && lines[0].contains("wr p99"),
        "{out}"
    );
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&first[..5], ["primary", "1", "2/2", "7", "0"], "{out}");
    let second: Vec<&str> = lines[2].split_whitespace().collect();
    // role epoch slaves keys under | rd/s err/s p50 p99 | wr/s err/s p50 p99
    let wr_rate: f64 = second[11].parse().unwrap_or_else(|_| panic!("{out}"));
    assert!(wr_rate > 0.0, "no write rate: {out}");
    assert!(
        second[13].ends_with("us") || second[13].ends_with("ms"),
        "wr p50: {out}"
    );

    // No endpoint there: a clear error and status 2.
    let mut cmd = Command::new(dsm_tests::bin("dsm-client"));
    cmd.args([
        "top",
        "--metrics",
        &cluster.master_addr().to_string(),
        "--count",
        "1",
    ]);
    let bad = dsm_tests::run(&mut cmd, b"", Duration::from_secs(30));
    assert_eq!(bad.code(), Some(2));
    assert!(
        bad.stderr().contains("cannot read http://"),
        "{}",
        bad.stderr()
    );
}

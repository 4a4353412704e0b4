//! DELETE, versions, compare-and-set, INCR and SCAN against real processes (a master and
//! slaves on loopback), through the client library.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use dsm_client::{Client, Error};
use dsm_tests::{live_count, wait_until, Cluster, ClusterOpts};
use dsm_wire::ErrorCode;

const BACK: Duration = Duration::from_secs(30);

fn cluster(slaves: usize, data: bool) -> Cluster {
    Cluster::start(ClusterOpts {
        slaves,
        replicas: 2,
        data,
        ..Default::default()
    })
}

/// Read `key` until the master answers (slaves may still be coming back), then return it.
fn read_settled(c: &mut Client, key: &[u8]) -> Option<Vec<u8>> {
    let mut last = None;
    for _ in 0..100 {
        match c.read(key) {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("READ never settled: {last:?}");
}

#[test]
fn delete_then_read_versions_cas_and_scan_as_a_user_meets_them() {
    let cluster = cluster(3, false);
    let mut c = cluster.client();
    // A delete of a key that never existed writes nothing.
    assert_eq!(c.delete(b"nothing", None).unwrap(), None);

    let v1 = c.set(b"k", b"one", None).unwrap();
    assert_eq!(c.read_versioned(b"k").unwrap(), Some((v1, b"one".to_vec())));
    let v2 = c.set(b"k", b"two", Some(v1)).unwrap();
    assert!(v2 > v1, "versions grow: {v1} then {v2}");
    // A stale expectation writes nothing and says what the version is.
    match c.set(b"k", b"three", Some(v1)) {
        Err(Error::Conflict { current }) => assert_eq!(current, v2),
        other => panic!("CAS at an old version answered {other:?}"),
    }
    match c.set(b"k", b"three", Some(0)) {
        Err(Error::Conflict { current }) => assert_eq!(current, v2),
        other => panic!("CAS of a missing key answered {other:?}"),
    }
    assert_eq!(c.read(b"k").unwrap(), Some(b"two".to_vec()));
    // A plain WRITE moves the version on too.
    c.write(b"k", b"plain").unwrap();
    let (v3, _) = c.read_versioned(b"k").unwrap().unwrap();
    assert!(v3 > v2);

    match c.delete(b"k", Some(v2)) {
        Err(Error::Conflict { current }) => assert_eq!(current, v3),
        other => panic!("DELETE at an old version answered {other:?}"),
    }
    let tomb = c.delete(b"k", Some(v3)).unwrap().expect("the key existed");
    assert!(tomb > v3);
    assert_eq!(c.read(b"k").unwrap(), None);
    assert_eq!(c.read_versioned(b"k").unwrap(), None);
    assert_eq!(c.delete(b"k", None).unwrap(), None, "deleted already");
    // Only if absent: expected version 0.
    let v4 = c.set(b"k", b"again", Some(0)).unwrap();
    assert!(
        v4 > tomb,
        "a key written after its delete outranks the tombstone"
    );
    assert_eq!(c.read(b"k").unwrap(), Some(b"again".to_vec()));

    // INCR: missing counts as 0, signed deltas, non-integers and overflow refused.
    assert_eq!(c.incr(b"n", 5).unwrap().0, 5);
    assert_eq!(c.incr(b"n", -7).unwrap().0, -2);
    assert_eq!(c.read(b"n").unwrap(), Some(b"-2".to_vec()));
    match c.incr(b"k", 1) {
        Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::NotAnInteger),
        other => panic!("INCR of text answered {other:?}"),
    }
    c.write(b"big", i64::MAX.to_string().as_bytes()).unwrap();
    match c.incr(b"big", 1) {
        Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::Overflow),
        other => panic!("INCR past i64::MAX answered {other:?}"),
    }
    assert_eq!(
        c.read(b"big").unwrap(),
        Some(i64::MAX.to_string().into_bytes())
    );

    // SCAN: every key under the prefix, none deleted, none outside it, over several pages.
    let mut want = BTreeSet::new();
    for i in 0..300 {
        let key = format!("user:{i:03}").into_bytes();
        c.write(&key, b"x").unwrap();
        want.insert(key);
        c.write(format!("other:{i}").as_bytes(), b"y").unwrap();
    }
    for i in (0..300).step_by(7) {
        let key = format!("user:{i:03}").into_bytes();
        c.delete(&key, None).unwrap().expect("it existed");
        want.remove(&key);
    }
    let got: BTreeSet<Vec<u8>> = c.scan(b"user:").unwrap().into_iter().collect();
    assert_eq!(got, want);
    let (mut paged, mut cursor, mut pages) = (BTreeSet::new(), 0, 0);
    loop {
        let (keys, next) = c.scan_page(b"user:", cursor, 50).unwrap();
        assert!(keys.len() <= 50);
        for k in keys {
            assert!(paged.insert(k), "a key listed twice");
        }
        pages += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(paged, want);
    assert!(
        pages >= 6,
        "{pages} pages of at most 50 for {} keys",
        want.len()
    );
    let all = c.scan(b"").unwrap();
    assert!(all.len() >= 600 - 43, "scan of everything: {}", all.len());
}

#[test]
fn concurrent_cas_has_exactly_one_winner_per_version() {
    let cluster = cluster(3, false);
    // (expected, the version a win produced or None for a conflict), from every client.
    let tries: Mutex<Vec<(u64, Option<u64>)>> = Mutex::new(Vec::new());
    thread::scope(|s| {
        for t in 0..4 {
            let mut c = cluster.client();
            let tries = &tries;
            s.spawn(move || {
                for i in 0..60 {
                    let expected = c.read_versioned(b"cas").unwrap().map_or(0, |(v, _)| v);
                    let value = format!("{t}-{i}");
                    let got = match c.set(b"cas", value.as_bytes(), Some(expected)) {
                        Ok(v) => Some(v),
                        Err(Error::Conflict { current }) => {
                            assert_ne!(current, expected, "a conflict names another version");
                            None
                        }
                        Err(e) => panic!("CAS: {e}"),
                    };
                    tries.lock().unwrap().push((expected, got));
                }
            });
        }
    });
    let tries = tries.into_inner().unwrap();
    let mut winners: BTreeMap<u64, usize> = BTreeMap::new();
    let mut produced = BTreeSet::new();
    for &(expected, got) in &tries {
        if let Some(v) = got {
            *winners.entry(expected).or_default() += 1;
            assert!(produced.insert(v), "version {v} produced twice");
        }
    }
    assert!(
        winners.values().all(|&n| n == 1),
        "winners per version: {winners:?}"
    );
    // Every version a win produced, but the last, was the expectation of exactly one winner:
    // the wins form one chain from the missing key.
    let last = *produced.iter().max().expect("someone won");
    assert!(winners.contains_key(&0), "nobody created the key");
    for v in &produced {
        if *v != last {
            assert_eq!(
                winners.get(v),
                Some(&1),
                "no single winner after version {v}"
            );
        }
    }
    let mut c = cluster.client();
    assert_eq!(c.read_versioned(b"cas").unwrap().unwrap().0, last);
    eprintln!("{} CAS tries, {} wins", tries.len(), produced.len());
}

#[test]
fn incr_from_several_clients_sums_exactly() {
    let cluster = cluster(3, false);
    let seen: Mutex<Vec<i64>> = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..4 {
            let mut c = cluster.client();
            let seen = &seen;
            s.spawn(move || {
                for _ in 0..100 {
                    let (n, _) = c.incr(b"counter", 1).unwrap();
                    seen.lock().unwrap().push(n);
                }
            });
        }
    });
    let mut seen = seen.into_inner().unwrap();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=400).collect::<Vec<i64>>(),
        "every INCR saw its own value"
    );
    let mut c = cluster.client();
    assert_eq!(c.read(b"counter").unwrap(), Some(b"400".to_vec()));
}

#[test]
fn a_delete_survives_slave_kills_and_restarts_on_their_data_dirs() {
    let mut cluster = cluster(2, true);
    let mut c = cluster.client();
    // Collected at once (both slaves in service): gone from the logs too.
    c.write(b"gone", b"old").unwrap();
    c.delete(b"gone", None).unwrap().expect("it existed");
    // s1 misses the second delete: it keeps the old value in its log.
    c.write(b"missed", b"old").unwrap();
    cluster.kill_slave(1);
    c.delete(b"missed", None).unwrap().expect("it existed");
    assert_eq!(c.read(b"missed").unwrap(), None);
    cluster.restart_slave(1);
    wait_until(BACK, "s1 back in service", || {
        cluster.try_status().is_ok_and(|s| live_count(&s) == 2)
    });
    assert_eq!(
        read_settled(&mut c, b"missed"),
        None,
        "s1's old copy came back"
    );
    // Both slaves killed and restarted from their logs: neither key comes back.
    for i in 0..2 {
        cluster.kill_slave(i);
    }
    for i in 0..2 {
        cluster.restart_slave(i);
    }
    wait_until(BACK, "both slaves back in service", || {
        cluster.try_status().is_ok_and(|s| live_count(&s) == 2)
    });
    let mut c = cluster.client();
    assert_eq!(read_settled(&mut c, b"gone"), None);
    assert_eq!(read_settled(&mut c, b"missed"), None);
    assert!(!c.scan(b"").unwrap().contains(&b"missed".to_vec()));
    // And the key can live again.
    c.set(b"missed", b"new", Some(0)).unwrap();
    assert_eq!(c.read(b"missed").unwrap(), Some(b"new".to_vec()));
}

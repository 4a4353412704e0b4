//! Slaves under a memory limit they were not told about (issue 16's last two rows, scaled down
//! to run in seconds): no `--max-memory` flag, only the limit an operator's shell or container
//! would set, from which each slave derives its default cap. Large values are written until
//! the cluster refuses them; no slave may die, a write that could not be placed is answered
//! OUT_OF_MEMORY and did not happen (its key reads NOT_FOUND), and every acknowledged write
//! reads back.
//!
//! - Every slave at a limit (the issue: "all three slaves at a 1 GB memory limit, 1 MiB
//!   writes: all three aborted"): 1 MiB values, each slave under `ulimit -v` 112 MiB (a failed
//!   allocation is what aborted them) or in a memory cgroup of 48 MiB of its own (the kernel's
//!   OOM killer is what would kill it there); then one of them is killed and restarted on its
//!   data under the same limit, and loads it back.
//! - One slave at a limit (the issue: "one slave at a 2 GB limit: it aborted; its keys were
//!   copied to the others, which grew to 3.1 GB each"): 256 KiB values, one slave in a memory
//!   cgroup of 40 MiB, the others unlimited. It refuses once full and stays in service; what
//!   it holds is not copied anywhere (copies made: 0), and the others hold one copy of each
//!   key they were given, no more.
//!
//! The cgroups are made under this test's own memory cgroup (root, and cgroup v1's memory
//! controller or v2 with memory delegated) and removed afterwards, also when a test fails;
//! without them those tests fail and say why.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use dsm_client::{Client, Error, Written};
use dsm_tests::limits::{ulimit_v_wrapper, MemCgroup};
use dsm_tests::load::retryable;
use dsm_tests::{live_count, wait_until, Cluster, ClusterOpts, SlaveLaunch, STARTUP};
use dsm_wire::ErrorCode;

const MIB: u64 = 1 << 20;
/// A deadline for "eventually" on a loaded 2-core machine, not a target.
const EVENTUALLY: Duration = Duration::from_secs(60);
const WRITERS: usize = 4;

/// A value of `len` bytes that says which key it belongs to, all the way through.
fn value_of(key: &str, len: usize) -> Vec<u8> {
    format!("{key};").bytes().cycle().take(len).collect()
}

/// What the writers got.
#[derive(Debug, Default)]
struct Writes {
    /// Acknowledged: key and how many copies.
    acked: Vec<(String, Written)>,
    /// Answered OUT_OF_MEMORY: the write did not happen.
    refused: Vec<String>,
    /// Any other error (outcome unknown), by kind.
    other: BTreeMap<String, usize>,
}

/// `WRITERS` threads, each writing new keys `<prefix>-<t>-<i>` with values of `len` bytes,
/// one at a time, until `enough` says so (or 2,000 writes in all).
fn write_until(
    cluster: &Cluster,
    prefix: &str,
    len: usize,
    enough: impl Fn(&Writes) -> bool + Sync,
) -> Writes {
    let writes = Mutex::new(Writes::default());
    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..WRITERS {
            let mut c = cluster.client();
            let (writes, stop, sent, enough) = (&writes, &stop, &sent, &enough);
            s.spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) || sent.fetch_add(1, Ordering::SeqCst) >= 2000 {
                        break;
                    }
                    let key = format!("{prefix}-{t}-{i}");
                    let r = c.write(key.as_bytes(), &value_of(&key, len));
                    let mut w = writes.lock().unwrap();
                    match r {
                        Ok(written) => w.acked.push((key, written)),
                        Err(Error::Server {
                            code: ErrorCode::OutOfMemory,
                            ..
                        }) => w.refused.push(key),
                        Err(e) => *w.other.entry(e.to_string()).or_default() += 1,
                    }
                    if enough(&w) {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    writes.into_inner().unwrap()
}

/// Read each key until it answers (retrying what the cluster says "not now" to, up to a
/// deadline) and hand the answer to `check`. One READ at a time: the values are large.
fn read_each(cluster: &Cluster, keys: &[String], mut check: impl FnMut(&str, Option<Vec<u8>>)) {
    let deadline = Instant::now() + EVENTUALLY;
    let mut c: Client = cluster.client();
    for key in keys {
        loop {
            match c.read(key.as_bytes()) {
                Ok(got) => {
                    check(key, got);
                    break;
                }
                Err(e) if retryable(&e) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                    if !matches!(e, Error::Server { .. }) {
                        c = cluster.client();
                    }
                }
                Err(e) => panic!("READ {key}: {e}"),
            }
        }
    }
}

/// Every acknowledged write reads back with its value; every refused one reads NOT_FOUND.
fn acked_read_back_and_refused_did_not_happen(cluster: &Cluster, w: &Writes, len: usize) {
    let acked: Vec<String> = w.acked.iter().map(|(k, _)| k.clone()).collect();
    read_each(cluster, &acked, |key, got| match got {
        Some(v) => assert!(
            v == value_of(key, len),
            "{key} reads {} bytes that are not its value",
            v.len()
        ),
        None => panic!("acknowledged write of {key} lost (NOT_FOUND)"),
    });
    read_each(cluster, &w.refused, |key, got| {
        assert!(
            got.is_none(),
            "{key} was refused OUT_OF_MEMORY, yet reads {} bytes",
            got.map_or(0, |v| v.len())
        )
    });
}

/// Each slave's cap came from the limit it runs under, with no `--max-memory` given.
fn default_cap_from(cluster: &Cluster, slave: usize, source: &str) {
    let id = cluster.slave_id(slave);
    let log = cluster.wait_log(&id, "by default", 1, STARTUP);
    let line = log
        .lines()
        .find(|l| l.contains("--max-memory") && l.contains("by default"))
        .expect("waited for");
    assert!(
        line.contains(source),
        "{id} did not take its cap from {source}: {line}"
    );
}

/// No slave died on its own, and every one is live at the master.
fn every_slave_lives(cluster: &mut Cluster) {
    let gone = cluster.exited_on_their_own();
    assert!(gone.is_empty(), "{gone:?}");
    let n = cluster.slave_count();
    wait_until(EVENTUALLY, &format!("{n} live slaves"), || {
        cluster.try_status().is_ok_and(|s| live_count(&s) == n)
    });
}

fn keys_of(cluster: &Cluster, slave: usize) -> u64 {
    let id = cluster.slave_id(slave);
    let s = cluster.status();
    s.slaves.iter().find(|x| x.id == id).map_or(0, |x| x.keys)
}

/// How the slaves of the first test are limited.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// `ulimit -v` of 112 MiB.
    AddressSpace,
    /// A memory cgroup of 48 MiB each.
    Cgroup,
}

/// Every slave at a memory limit, 1 MiB values written by 4 clients until the cluster has
/// refused 8 of them; then slave s0 killed and restarted on its data under the same limit.
fn every_slave_at_a_memory_limit(limit: Limit) {
    const SLAVES: usize = 3;
    const VALUE: usize = MIB as usize;
    let cgroups: Vec<MemCgroup> = match limit {
        Limit::AddressSpace => Vec::new(),
        Limit::Cgroup => (0..SLAVES)
            .map(|i| {
                MemCgroup::create(&format!("s{i}"), 48 * MIB).unwrap_or_else(|e| {
                    panic!(
                        "this test needs a memory cgroup of its own for each slave (root, and \
                         cgroup v1's memory controller or v2 with memory delegated), which this \
                         machine refused: {e}"
                    )
                })
            })
            .collect(),
    };
    let wrapper = |i: usize| match limit {
        Limit::AddressSpace => ulimit_v_wrapper(112 * MIB),
        Limit::Cgroup => cgroups[i].wrapper(),
    };
    let source = match limit {
        Limit::AddressSpace => "3/4 of 112 MiB (ulimit -v",
        Limit::Cgroup => "3/4 of 48 MiB (the cgroup limit",
    };
    // Declared after the cgroups, so dropped (its processes killed) before them.
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: SLAVES,
        replicas: 2,
        data: true,
        slave_launches: (0..SLAVES)
            .map(|i| SlaveLaunch {
                wrapper: wrapper(i),
                ..SlaveLaunch::default()
            })
            .collect(),
        ..Default::default()
    });
    for i in 0..SLAVES {
        default_cap_from(&cluster, i, source);
    }
    let w = write_until(&cluster, "big", VALUE, |w| w.refused.len() >= 8);
    let short = w.acked.iter().filter(|(_, x)| *x != Written::Full).count();
    eprintln!(
        "{limit:?}: {} writes of 1 MiB acknowledged ({short} on fewer than 2 copies), {} refused \
         OUT_OF_MEMORY, others: {:?}",
        w.acked.len(),
        w.refused.len(),
        w.other
    );
    every_slave_lives(&mut cluster);
    assert!(w.refused.len() >= 8, "{w:?}");
    // Each slave holds 22 such values under its cap of 3/4 of (the limit less 82 MiB with
    // ulimit -v, 18 MiB in a cgroup): a cluster of three, about 33 keys.
    assert!(w.acked.len() >= 20, "only {} writes placed", w.acked.len());
    for i in 0..SLAVES {
        let id = cluster.slave_id(i);
        assert!(
            cluster.log(&id).contains("memory cap reached"),
            "{id} never reached its cap"
        );
    }
    acked_read_back_and_refused_did_not_happen(&cluster, &w, VALUE);

    // A slave full to its cap, killed and started again on its data under the same limit,
    // loads it all back and is a holder of all of it again. (It may hold more than the master
    // counted: a STORE that a slow slave ACKed after the write had moved on lands but does
    // not count, until the slave reports it.)
    let before = keys_of(&cluster, 0);
    cluster.kill_slave(0);
    cluster.restart_slave(0);
    let log = cluster.log("s0");
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("data dir") && l.contains(": loaded "))
        .unwrap_or_else(|| panic!("s0 logged no load of its data dir: {log}"));
    let loaded: u64 = line
        .split(": loaded ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no key count in {line:?}"));
    eprintln!("s0 held {before} keys as the master counted, restarted: {line}");
    assert!(loaded >= before, "s0 held {before} keys, loaded {loaded}");
    let mut now = None;
    let back = dsm_tests::poll_until(EVENTUALLY, || {
        now = cluster
            .try_status()
            .ok()
            .and_then(|s| s.slaves.iter().find(|x| x.id == "s0").map(|x| x.keys));
        now == Some(loaded)
    });
    assert!(
        back,
        "s0 loaded {loaded} keys, the master counts {now:?} on it after {EVENTUALLY:?}"
    );
    every_slave_lives(&mut cluster);
    acked_read_back_and_refused_did_not_happen(&cluster, &w, VALUE);
    for cg in &cgroups {
        assert_eq!(
            cg.oom_kills(),
            0,
            "the OOM killer ran in {}",
            cg.dir().display()
        );
        eprintln!(
            "{}: peak {} MiB of {} MiB",
            cg.dir().display(),
            cg.peak().unwrap_or(0) / MIB,
            cg.limit() / MIB
        );
    }
}

#[test]
fn every_slave_under_ulimit_v_refuses_1_mib_writes_when_full_and_lives_on() {
    every_slave_at_a_memory_limit(Limit::AddressSpace);
}

#[test]
fn every_slave_in_a_memory_cgroup_refuses_1_mib_writes_when_full_and_lives_on() {
    every_slave_at_a_memory_limit(Limit::Cgroup);
}

/// VmRSS of a process, from `/proc`.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// One slave (s0) in a memory cgroup of 40 MiB, the two others unlimited, 256 KiB values: s0
/// fills up and refuses, and every write goes to the others instead; nothing s0 holds is
/// copied anywhere, and each other slave holds one copy of each key placed on it, no more.
#[test]
fn one_slave_at_a_memory_limit_refuses_and_its_keys_are_not_copied_elsewhere() {
    const VALUE: usize = 256 * 1024;
    const WRITES: usize = 160;
    let cgroup = MemCgroup::create("s0", 40 * MIB).unwrap_or_else(|e| {
        panic!(
            "this test needs a memory cgroup of its own for a slave (root, and cgroup v1's \
             memory controller or v2 with memory delegated), which this machine refused: {e}"
        )
    });
    // Declared after the cgroup, so dropped (its processes killed) before it.
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        data: true,
        slave_launches: vec![SlaveLaunch {
            wrapper: cgroup.wrapper(),
            ..SlaveLaunch::default()
        }],
        ..Default::default()
    });
    default_cap_from(&cluster, 0, "3/4 of 40 MiB (the cgroup limit");
    let w = write_until(&cluster, "quarter", VALUE, |w| {
        w.acked.len() + w.refused.len() >= WRITES
    });
    let full = w.acked.iter().filter(|(_, x)| *x == Written::Full).count();
    eprintln!(
        "{} writes of 256 KiB acknowledged ({full} on both copies), {} refused, others: {:?}",
        w.acked.len(),
        w.refused.len(),
        w.other
    );
    every_slave_lives(&mut cluster);
    // Two slaves have room: every write is placed, on two copies.
    assert!(
        w.refused.is_empty() && w.other.is_empty(),
        "writes failed with room on two slaves: {w:?}"
    );
    assert!(w.acked.len() >= WRITES, "{w:?}");
    assert_eq!(full, w.acked.len(), "writes on fewer than 2 copies: {w:?}");
    assert!(
        cluster.log("s0").contains("memory cap reached"),
        "s0 never reached its cap"
    );
    acked_read_back_and_refused_did_not_happen(&cluster, &w, VALUE);

    let s = cluster.status();
    let held: Vec<(String, u64)> = s.slaves.iter().map(|x| (x.id.clone(), x.keys)).collect();
    let keys = w.acked.len() as u64;
    let on = |id: &str| held.iter().find(|(x, _)| x == id).map_or(0, |(_, k)| *k);
    eprintln!(
        "keys {}, held {held:?}, under-replicated {}, copies made {}",
        s.keys, s.under_replicated, s.copies_made
    );
    assert_eq!(s.keys, keys);
    assert_eq!(s.under_replicated, 0, "{s:?}");
    assert_eq!(
        s.copies_made, 0,
        "re-replication copied keys although no slave was lost: {s:?}"
    );
    // Exactly two copies of each key, and s0 holds what it had room for: about 65 values
    // under a cap of 3/4 of (40 MiB - 18 MiB).
    assert_eq!(on("s0") + on("s1") + on("s2"), 2 * keys, "{held:?}");
    assert!(on("s0") >= 40 && on("s0") < 80, "{held:?}");
    for i in 1..3 {
        let id = cluster.slave_id(i);
        let pid = cluster.slave_pid(i);
        let (rss, held) = (rss(pid), on(&id) * VALUE as u64);
        eprintln!(
            "{id}: RSS {} MiB for {} MiB of values",
            rss / MIB,
            held / MIB
        );
        assert!(
            on(&id) <= keys && rss <= held + 64 * MIB,
            "{id} holds {} keys of {keys}, RSS {rss} bytes for {held} bytes of values",
            on(&id)
        );
    }
    assert_eq!(cgroup.oom_kills(), 0, "the OOM killer ran in s0's cgroup");
    eprintln!(
        "s0's cgroup: peak {} MiB of {} MiB",
        cgroup.peak().unwrap_or(0) / MIB,
        cgroup.limit() / MIB
    );
}

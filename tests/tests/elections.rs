//! Issue 17's table against real processes: a primary, a standby and 3 slaves (R=2; five
//! voters, three make a majority), each fault injected once under a steady write load, with
//! 200 sentinel keys written first. Every test then requires that writes are acknowledged
//! again, that every sentinel and every acknowledged write of the load reads back (and that
//! no READ of a sentinel answered NOT_FOUND or a wrong value on the way), and measures the
//! longest time without an acknowledged write.
//!
//! Two kinds of writer run through each fault. The *measured* writers (2) give up a call at
//! its 2 s deadline and connect a new client (which tries the masters in order), as an
//! application that leaves a silent master does; their longest gap is asserted against
//! [`GAP_BOUND`], which is generous on purpose (a shared, noisy 2-core machine): it catches a
//! cluster that does not recover, not one that is slow. The *long-lived* writer (1) keeps its
//! client whatever happens, as the client library alone does today: a frozen or vanished
//! primary holds it until the primary answers again (clients leaving such a primary quickly
//! is item 5 of the issue), so its gap is printed, not asserted. The tight figures (≤ 1 s for
//! a single failure, ≤ 0.5 s from kill -9 to the first acknowledged write) are measured on
//! release builds by `make failover-bench` (`scripts/failover-bench.sh`), which runs these
//! tests and collects the `failover-measure` line each prints. What every test does assert
//! tightly is the cluster's own bound, issue 17's "serves reads and writes again within 1 s":
//! the longest time during which no master acknowledged any write, of every writer and of one
//! probe per master that writes through that master alone with a 300 ms deadline
//! ([`CLUSTER_GAP_BOUND`]).
//!
//! Writes whose outcome the client could not know (`unknown`: TIMEOUT, NO_SLAVES after the
//! write went out, or a connection that broke after sending) are counted, printed (`unknown=`
//! in the `failover-measure` line) and asserted to be 0 (issue 17 item 6): every failover here
//! ends well inside the call deadline, and the writers send exactly-once writes, which the
//! client library sends again across it. The primary cut from its slaves was the last to
//! leave some (NO_SLAVES once every slave was dropped): a master that lost every slave now
//! lets writes wait a lease for them and sends an exactly-once write it cannot finish on to
//! the next primary (`master/src/members.rs`, `ops::finish`).
//!
//! Faults that need a partition run every node in a network namespace of its own
//! (`netns.rs`: blackhole routes, or a node's port on the bridge taken down for a silent
//! vanish); they need root and `ip netns`, and are skipped where the machine refuses them,
//! saying so on stderr (`SKIPPED ...`). The namespaces go with the test, also when it fails.
//!
//! `make test` runs the short variants; `make elections` adds the long ones (`long_*`: the
//! backup stopped for 20 s, the primary stopped for 15 s, partitions held for 10 s).

use std::time::{Duration, Instant};

use dsm_client::Client;
use dsm_tests::load::{longest_gap, Load, LoadOpts, LoadReport, Sentinels, Watcher};
use dsm_tests::raw::{self, Heard};
use dsm_tests::torture::netns::{Node, Testbed};
use dsm_tests::{live_count, wait_until, Cluster, ClusterOpts, Health, MasterId};
use dsm_wire::{Body, ErrorCode, Frame, ServerRole};

const SENTINELS: usize = 200;
/// How long the cluster may take to become whole again and read everything back after a
/// fault: a deadline for "eventually" on a loaded 2-core machine, not a target.
const EVENTUALLY: Duration = Duration::from_secs(30);
/// The longest time without an acknowledged write of the measured writers that a test
/// accepts. The goal is 1 s (`make failover-bench` measures it); this bound only catches a
/// cluster that stops serving.
const GAP_BOUND: Duration = Duration::from_secs(5);
/// The longest time no master acknowledges a write (every writer and probe together) that a
/// test accepts: issue 17's "serves reads and writes again within 1 s of the fault".
const CLUSTER_GAP_BOUND: Duration = Duration::from_secs(1);
/// Each writer's call deadline: the masters' request deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// A probe's call deadline.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// A fault's scene: what must not be lost, the loads running through it, and what the cluster
/// looked like before it.
struct Scene {
    name: &'static str,
    sentinels: Sentinels,
    /// Writers that connect a new client after a call runs out its deadline (asserted).
    load: Load,
    /// A writer that keeps its client (printed).
    sticky: Load,
    /// One writer per master, writing through that master alone with a short deadline: when
    /// any master acknowledges writes, whatever the clients' failover does (printed).
    probes: Vec<Load>,
    watcher: Watcher,
    /// Keys the primary counted on each slave before the load (the sentinels).
    before: Vec<(String, u64)>,
    /// The primary's epoch before the fault.
    epoch: u64,
}

/// What a test measured, printed as one `failover-measure` line for `make failover-bench`.
#[derive(Debug, Default)]
struct Measured {
    /// Longest time without an acknowledged write of the measured writers, from the fault on.
    gap: Duration,
    /// The same for the long-lived writer.
    sticky_gap: Duration,
    /// The same for every writer and probe together: how long no master acknowledged a write.
    cluster_gap: Duration,
    /// From the fault to the first acknowledged write of the measured writers.
    first_ack: Option<Duration>,
    /// From the fault to when the other master said it is primary (takeovers only).
    takeover: Option<Duration>,
    /// Writes whose outcome the client could not know, of the writers (not the probes).
    unknown: usize,
    acked: usize,
}

impl Scene {
    /// Sentinels written, the loads running with some of it acknowledged, the watcher started.
    fn start(cluster: &Cluster, name: &'static str) -> Scene {
        let sentinels = Sentinels::write(cluster, SENTINELS);
        let before = cluster.keys_per_slave();
        let epoch = cluster
            .try_status()
            .unwrap_or_else(|e| panic!("STATUS before the fault: {e}"))
            .epoch;
        let load = Load::start_with(
            cluster,
            LoadOpts {
                writers: 2,
                call_timeout: CALL_TIMEOUT,
                fresh_client_after_timeout: true,
                only: None,
            },
        );
        let sticky = Load::start_numbered(
            cluster,
            LoadOpts {
                writers: 1,
                call_timeout: CALL_TIMEOUT,
                fresh_client_after_timeout: false,
                only: None,
            },
            2,
        );
        let probes = cluster
            .master_ids()
            .into_iter()
            .filter(|&id| cluster.master_running(id))
            .enumerate()
            .map(|(n, id)| {
                let opts = LoadOpts {
                    writers: 1,
                    call_timeout: PROBE_TIMEOUT,
                    fresh_client_after_timeout: true,
                    only: Some(cluster.master_listen(id)),
                };
                Load::start_numbered(cluster, opts, 3 + n)
            })
            .collect();
        load.wait_progress(50, EVENTUALLY)
            .unwrap_or_else(|e| panic!("before the fault: {e}"));
        // A second of steady load before the fault. A slave cannot vouch for an exactly-once
        // write that may have been first sent before it started (less 100 ms for frames on
        // their way: `slave/src/writers.rs`); with the fault a moment after the cluster came up,
        // a resend after the failover met only such "young" slaves and its outcome was
        // unknown (a test artifact: no cluster in service is that young).
        std::thread::sleep(Duration::from_secs(1));
        let watcher = Watcher::start(cluster, &sentinels);
        Scene {
            name,
            sentinels,
            load,
            sticky,
            probes,
            watcher,
            before,
            epoch,
        }
    }

    /// After the fault (injected at `fault`): every writer gets writes acknowledged again,
    /// then the loads stop; every sentinel and acknowledged write reads back; no READ lied on
    /// the way; no slave lost the keys it held; the measured writers' longest gap since the
    /// fault is under [`GAP_BOUND`]. Prints and returns what was measured.
    fn finish(self, cluster: &Cluster, fault: Instant, takeover: Option<Duration>) -> Measured {
        self.load
            .wait_progress(20, EVENTUALLY)
            .unwrap_or_else(|e| panic!("after the fault, writes are not acknowledged again: {e}"));
        self.sticky
            .wait_progress(5, EVENTUALLY)
            .unwrap_or_else(|e| {
                panic!("after the fault, the long-lived writer's writes are not acknowledged: {e}")
            });
        let end = Instant::now();
        let report = self.load.stop();
        let sticky = self.sticky.stop();
        let probes: Vec<LoadReport> = self.probes.into_iter().map(Load::stop).collect();
        let watched = self.watcher.stop();
        let deadline = Instant::now() + EVENTUALLY;
        let s = self.sentinels.check(cluster, deadline);
        let l = report.check(cluster, deadline);
        let k = sticky.check(cluster, deadline);
        let p: Vec<_> = probes.iter().map(|p| p.check(cluster, deadline)).collect();
        let mut every: Vec<&LoadReport> = vec![&report, &sticky];
        every.extend(probes.iter());
        let m = Measured {
            gap: report.longest_gap(fault, end),
            sticky_gap: sticky.longest_gap(fault, end),
            cluster_gap: longest_gap(&every, fault, end),
            first_ack: every.iter().filter_map(|l| l.first_ack_after(fault)).min(),
            takeover,
            unknown: report.unknown() + sticky.unknown(),
            acked: every.iter().map(|l| l.acked).sum(),
        };
        eprintln!(
            "{}: load: {} writes acknowledged ({} on fewer than R copies), failed: {:?}, \
             long-lived writer failed: {:?}; watcher: {} reads, refused {:?}",
            self.name,
            m.acked,
            report.short + sticky.short,
            report.errors,
            sticky.errors,
            watched.reads,
            watched.refused,
        );
        print_failures(self.name, fault, &[&report, &sticky]);
        eprintln!(
            "failover-measure fault={} gap_ms={} writer_gap_ms={} sticky_gap_ms={} \
             cluster_gap_ms={} first_ack_ms={} takeover_ms={} unknown={} acked={}",
            self.name,
            m.gap.as_millis(),
            report.longest_writer_gap(fault, end).as_millis(),
            m.sticky_gap.as_millis(),
            m.cluster_gap.as_millis(),
            ms_or_dash(m.first_ack),
            ms_or_dash(m.takeover),
            m.unknown,
            m.acked
        );
        let problems: Vec<String> = [
            s.ok("sentinels"),
            l.ok("load keys"),
            k.ok("long-lived writer's keys"),
        ]
        .into_iter()
        .chain(p.iter().map(|p| p.ok("probe keys")))
        .chain([watched.ok("the fault")])
        .filter_map(Result::err)
        .collect();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        cluster.assert_no_slave_wiped(&self.before);
        assert!(
            m.cluster_gap < CLUSTER_GAP_BOUND,
            "{}: no master acknowledged a write for {:?} (bound {CLUSTER_GAP_BOUND:?})",
            self.name,
            m.cluster_gap
        );
        assert!(
            m.gap < GAP_BOUND,
            "{}: no write acknowledged for {:?} (bound {GAP_BOUND:?})",
            self.name,
            m.gap
        );
        assert_eq!(
            m.unknown, 0,
            "{}: writes with an unknown outcome across a failover inside the deadline (above)",
            self.name
        );
        m
    }
}

fn ms_or_dash(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| d.as_millis().to_string())
}

/// The failed writes, when they were sent relative to the fault, and why.
fn print_failures(name: &str, fault: Instant, loads: &[&LoadReport]) {
    let rel = |t: Instant| {
        t.saturating_duration_since(fault).as_millis() as i128
            - fault.saturating_duration_since(t).as_millis() as i128
    };
    for (n, moves) in loads.iter().flat_map(|l| l.moves()).enumerate() {
        let seen: Vec<String> = moves
            .iter()
            .map(|&(t, m)| format!("{m} from {} ms", rel(t)))
            .collect();
        eprintln!("{name}: writer {n} wrote through {}", seen.join(", then "));
    }
    for f in loads.iter().flat_map(|l| l.failed()).take(20) {
        eprintln!(
            "{name}: writer {} failed, sent {} ms after the fault, answered {} ms after: {}{}",
            f.writer,
            rel(f.sent),
            rel(f.answered),
            f.kind,
            if f.unknown { " (outcome unknown)" } else { "" }
        );
    }
}

/// A primary, a standby and 3 slaves at R=2, on loopback or on `testbed`'s hosts.
fn ha_cluster(testbed: Option<&Testbed>) -> Cluster {
    Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        backup: true,
        hosts: testbed.map(|t| t.hosts.clone()),
        ..Default::default()
    })
}

/// Network namespaces for 2 masters and 3 slaves, or `None` where the machine refuses them:
/// the test is then skipped, saying so on stderr (`cargo test -- --nocapture` shows it).
fn testbed(test: &str) -> Option<Testbed> {
    match Testbed::create(3) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!(
                "SKIPPED {test}: it needs network namespaces (root with CAP_NET_ADMIN, and `ip \
                 netns`), which this machine refused: {e}"
            );
            None
        }
    }
}

/// Wait until master `id` says primary at an epoch above `epoch`; how long after `since`.
fn wait_elected(cluster: &Cluster, id: MasterId, epoch: u64, since: Instant) -> Duration {
    wait_until(EVENTUALLY, &format!("{id:?} to be elected"), || {
        cluster
            .quick_status(id)
            .is_ok_and(|s| s.role == ServerRole::Primary && s.epoch > epoch)
    });
    since.elapsed()
}

/// The cluster is whole again with `primary` as its primary: every slave live, every key at R
/// copies, and the other master its standby at the same epoch with the same keys.
fn wait_whole(cluster: &mut Cluster, primary: MasterId, when: &str) {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        match cluster.health(primary) {
            Health::Whole => return,
            Health::Not(why) if Instant::now() >= deadline => {
                panic!("the cluster is not whole {EVENTUALLY:?} {when}: {why}")
            }
            Health::Not(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// How often `name`'s log says `needle`.
fn count_log(cluster: &Cluster, name: &str, needle: &str) -> usize {
    cluster.log(name).matches(needle).count()
}

/// The slaves' logs say no slave voted for anyone.
fn no_slave_voted(cluster: &Cluster) {
    for i in 0..cluster.slave_count() {
        let id = cluster.slave_id(i);
        assert_eq!(
            count_log(cluster, &id, "voted for"),
            0,
            "slave {id} voted in an election: {}",
            cluster.log(&id)
        );
    }
}

/// Every slave was taken back as the same process, never registered anew (which would mean
/// its copies were reported and reconciled, or dropped).
fn every_slave_registered_once(cluster: &Cluster) {
    for i in 0..cluster.slave_count() {
        let id = cluster.slave_id(i);
        let n = count_log(cluster, "master", &format!("slave '{id}' registered from"))
            + count_log(cluster, "backup", &format!("slave '{id}' registered from"));
        assert_eq!(n, 1, "slave {id} registered {n} times as a new process");
    }
}

/// A WRITE sent to master `id` alone, straight on the wire (the client library would follow
/// a NOT_PRIMARY that names the new primary, and rightly store it there), is refused with
/// NOT_PRIMARY: never acknowledged.
fn refuses_writes(cluster: &Cluster, id: MasterId) -> Result<(), String> {
    let addr = cluster.master_listen(id);
    let (mut c, mut rbuf) = raw::welcomed_client(addr, Instant::now() + EVENTUALLY);
    let probe = Body::Write {
        key: b"fence-probe".to_vec(),
        value: b"must not be stored".to_vec(),
    };
    raw::send_frame(&mut c, 7, probe);
    match raw::next_frame(&mut c, &mut rbuf, Instant::now() + Duration::from_secs(2)) {
        Heard::Frame(Frame {
            body:
                Body::Error {
                    code: ErrorCode::NotPrimary,
                    ..
                },
            ..
        }) => Ok(()),
        other => Err(format!("{id:?} answered a WRITE with {other:?}")),
    }
}

/// `fence-probe` was never stored.
fn probe_not_stored(cluster: &Cluster) {
    let mut c: Client = dsm_tests::load::client_until(cluster, Instant::now() + EVENTUALLY)
        .unwrap_or_else(|e| panic!("{e}"));
    let got = c.read(b"fence-probe");
    assert!(
        matches!(got, Ok(None)),
        "a WRITE refused by an old primary reads {got:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The standby fails: the primary keeps serving.

/// The standby SIGSTOPped for good: the primary stops waiting for its confirmations once a
/// majority of the voters (itself and the slaves) knows it is out of step, and serves on. The
/// standby stays frozen to the end.
fn a_backup_stopped_for_good(stopped_for: Duration) {
    let mut cluster = ha_cluster(None);
    let scene = Scene::start(&cluster, "backup-sigstop");
    let fault = Instant::now();
    cluster.stop_master(MasterId::BACKUP);
    std::thread::sleep(stopped_for);
    let s = cluster.status_of(cluster.master_listen(MasterId::PRIMARY));
    assert_eq!(
        (s.role, s.epoch),
        (ServerRole::Primary, scene.epoch),
        "the primary with its standby frozen: {s:?}"
    );
    scene.finish(&cluster, fault, None);
    // The standby stays frozen: none of this may involve it.
    every_slave_registered_once(&cluster);
    no_slave_voted(&cluster);
}

#[test]
fn a_backup_stopped_for_good_never_stops_the_primary() {
    a_backup_stopped_for_good(Duration::from_secs(2));
}

/// The "≥ 20 s, never ends": 20 s of a frozen standby.
#[test]
#[ignore = "long variant (20 s): make elections"]
fn long_a_backup_stopped_for_20_s_never_stops_the_primary() {
    a_backup_stopped_for_good(Duration::from_secs(20));
}

/// The standby cut from every other node by dropped packets (clients still reach it), then
/// the network heals: it takes nothing over (no slave reaches it, so none supports it), no
/// slave is reset or votes, the primary serves throughout, and the standby follows the
/// primary again.
fn an_isolated_backup(isolated_for: Duration) {
    let Some(mut testbed) = testbed("an_isolated_backup") else {
        return;
    };
    let mut cluster = ha_cluster(Some(&testbed));
    let scene = Scene::start(&cluster, "backup-isolated");
    let fault = Instant::now();
    testbed
        .isolate(Node::Master(1), true)
        .unwrap_or_else(|e| panic!("cannot isolate the standby: {e}"));
    std::thread::sleep(isolated_for);
    let b = cluster.status_of(cluster.master_listen(MasterId::BACKUP));
    assert_eq!(
        b.role,
        ServerRole::Backup,
        "the isolated standby after {isolated_for:?}: {b:?}"
    );
    assert_eq!(
        count_log(&cluster, "backup", "taking over"),
        0,
        "the isolated standby took over"
    );
    testbed
        .isolate(Node::Master(1), false)
        .unwrap_or_else(|e| panic!("cannot heal the partition: {e}"));
    let healed = Instant::now();
    wait_whole(
        &mut cluster,
        MasterId::PRIMARY,
        "after the standby's partition healed",
    );
    eprintln!(
        "standby isolated for {} ms; following the primary again {} ms after healing",
        isolated_for.as_millis(),
        healed.elapsed().as_millis()
    );
    let epoch = scene.epoch;
    scene.finish(&cluster, fault, None);
    let s = cluster.status_of(cluster.master_listen(MasterId::PRIMARY));
    assert_eq!(
        (s.role, s.epoch),
        (ServerRole::Primary, epoch),
        "the primary after its standby's isolation: {s:?}"
    );
    every_slave_registered_once(&cluster);
    no_slave_voted(&cluster);
}

#[test]
fn an_isolated_backup_takes_nothing_over_and_follows_again_once_healed() {
    an_isolated_backup(Duration::from_secs(2));
}

#[test]
#[ignore = "long variant (10 s): make elections"]
fn long_a_backup_isolated_for_10_s_takes_nothing_over() {
    an_isolated_backup(Duration::from_secs(10));
}

/// A standby started with a `--backup-of` that names no master (a typo: nothing listens
/// there), while the slaves know its address: it can never link to a primary, and no slave
/// comes to it while the primary serves, so it stays a standby and the primary serves on.
#[test]
fn a_backup_whose_primary_is_unreachable_never_becomes_a_second_primary() {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        reserve_backup: true,
        ..Default::default()
    });
    let scene = Scene::start(&cluster, "backup-typo");
    // A port nothing listens on: connections to it are refused.
    let typo = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let fault = Instant::now();
    cluster.start_backup_following(typo);
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        let b = cluster.quick_status(MasterId::BACKUP);
        if let Ok(b) = &b {
            assert_ne!(
                b.role,
                ServerRole::Primary,
                "a standby of no master became primary {} ms after it started: {b:?}",
                watch.elapsed().as_millis()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let epoch = scene.epoch;
    scene.finish(&cluster, fault, None);
    let s = cluster.status_of(cluster.master_listen(MasterId::PRIMARY));
    assert_eq!((s.role, s.epoch), (ServerRole::Primary, epoch), "{s:?}");
    let b = cluster.status_of(cluster.backup_addr());
    assert_eq!(b.role, ServerRole::Backup, "the standby of a typo: {b:?}");
    no_slave_voted(&cluster);
}

/// The same standby of a typo, and the primary cut from two of the three slaves (the third
/// still reaches it). The two leave the silent primary for the next address, the standby, and
/// elect it: they are a majority of the five voters the primary told them of (itself, a master
/// it does not know, three slaves). The primary, whose slaves dial two masters, holds a lease
/// from two of its three slaves; with one left it must stop acknowledging writes before the
/// standby acknowledges any: never two primaries. Before the lease of a lone primary, it
/// went on acknowledging writes through the third slave beside the new primary.
#[test]
fn a_backup_of_a_typo_elected_by_most_slaves_never_serves_beside_the_primary() {
    let Some(mut testbed) = testbed("a_backup_of_a_typo_elected_by_most_slaves") else {
        return;
    };
    let cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        reserve_backup: true,
        hosts: Some(testbed.hosts.clone()),
        ..Default::default()
    });
    let mut cluster = cluster;
    let sentinels = Sentinels::write(&cluster, SENTINELS);
    let epoch = cluster
        .status_of(cluster.master_listen(MasterId::PRIMARY))
        .epoch;
    // A port nothing listens on (in the standby's namespace nothing listens at all).
    let typo = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    cluster.start_backup_following(typo);
    let probe = |master| {
        let opts = LoadOpts {
            writers: 1,
            call_timeout: PROBE_TIMEOUT,
            fresh_client_after_timeout: true,
            only: Some(master),
        };
        Load::start_with(&cluster, opts)
    };
    let (on_primary, on_standby) = (
        probe(cluster.master_listen(MasterId::PRIMARY)),
        probe(cluster.backup_addr()),
    );
    std::thread::sleep(Duration::from_millis(500));
    let fault = Instant::now();
    for s in [0, 1] {
        testbed
            .cut(Node::Master(0), Node::Slave(s))
            .unwrap_or_else(|e| panic!("cannot cut the primary from slave {s}: {e}"));
    }
    let elected = wait_elected(&cluster, MasterId::BACKUP, epoch, fault);
    wait_until(
        EVENTUALLY,
        "a write acknowledged by the new primary",
        || on_standby.acked() > 0,
    );
    refuses_writes(&cluster, MasterId::PRIMARY).unwrap_or_else(|e| panic!("{e}"));
    let (p, b) = (on_primary.stop(), on_standby.stop());
    let first_b = b.acks().map(|(_, answered)| answered).min().expect("acked");
    let late: Vec<Duration> = p
        .acks()
        .filter(|&(sent, _)| sent >= first_b)
        .map(|(sent, _)| sent - first_b)
        .collect();
    eprintln!(
        "typo standby elected by 2 of 3 slaves after {} ms; its first acknowledged write {} ms \
         after the cut; the primary's writes acknowledged after that: {}",
        elected.as_millis(),
        (first_b - fault).as_millis(),
        late.len()
    );
    assert!(
        late.is_empty(),
        "two primaries: the old primary acknowledged {} writes sent after the standby's first \
         (the first {:?} after it)",
        late.len(),
        late.first()
    );
    sentinels
        .check(&cluster, Instant::now() + EVENTUALLY)
        .ok("through the new primary")
        .unwrap_or_else(|e| panic!("{e}"));
    testbed
        .heal()
        .unwrap_or_else(|e| panic!("cannot heal the partition: {e}"));
}

// ---------------------------------------------------------------------------------------
// The primary fails: the standby is elected, and the old primary rejoins by itself.

/// The primary cut from every slave while the clients and the standby still reach it: it
/// loses its lease and answers NOT_PRIMARY, the slaves elect the standby, and the old primary
/// steps down and follows the new one by itself (its link to it is not cut), all while the
/// partition holds. Then the network heals and the cluster is whole again.
fn the_primary_cut_from_the_slaves(cut_for: Duration) {
    let Some(mut testbed) = testbed("the_primary_cut_from_the_slaves") else {
        return;
    };
    let mut cluster = ha_cluster(Some(&testbed));
    let scene = Scene::start(&cluster, "primary-cut-from-slaves");
    // The slaves leave the silent primary after their patience (500 ms; their promises to it
    // ran out before that) and come to the standby, which withdraws its own promise. The
    // primary, its lease gone with the slaves' promises, releases the standby from that
    // promise when asked (RELEASE), so the standby is elected within a heartbeat or two of the
    // slaves' coming rather than a lease later: issue 17's 1 s, like every other fault here.
    let fault = Instant::now();
    testbed
        .isolate_from_slaves(0, true)
        .unwrap_or_else(|e| panic!("cannot cut the primary from the slaves: {e}"));
    let takeover = wait_elected(&cluster, MasterId::BACKUP, scene.epoch, fault);
    let s = cluster.wait_role(MasterId::PRIMARY, ServerRole::Backup, EVENTUALLY);
    let rejoined = fault.elapsed();
    refuses_writes(&cluster, MasterId::PRIMARY).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "primary cut from the slaves: standby elected after {} ms; the old primary a standby \
         (epoch {}) after {} ms",
        takeover.as_millis(),
        s.epoch,
        rejoined.as_millis()
    );
    std::thread::sleep(cut_for.saturating_sub(fault.elapsed()));
    testbed
        .isolate_from_slaves(0, false)
        .unwrap_or_else(|e| panic!("cannot heal the partition: {e}"));
    wait_whole(&mut cluster, MasterId::BACKUP, "after the partition healed");
    scene.finish(&cluster, fault, Some(takeover));
    probe_not_stored(&cluster);
}

#[test]
fn the_primary_cut_from_the_slaves_is_replaced_and_rejoins_as_a_standby() {
    the_primary_cut_from_the_slaves(Duration::from_secs(2));
}

#[test]
#[ignore = "long variant (10 s): make elections"]
fn long_the_primary_cut_from_the_slaves_for_10_s() {
    the_primary_cut_from_the_slaves(Duration::from_secs(10));
}

/// The primary SIGSTOPped for `stopped_for`: the slaves elect the standby; after SIGCONT the
/// old primary (its lease long gone) learns of the new epoch and follows the new primary by
/// itself. The long-lived writer stays on the frozen connection until SIGCONT (item 5).
fn a_frozen_primary(stopped_for: Duration) {
    let mut cluster = ha_cluster(None);
    let scene = Scene::start(&cluster, "primary-sigstop");
    let fault = Instant::now();
    cluster.stop_master(MasterId::PRIMARY);
    let takeover = wait_elected(&cluster, MasterId::BACKUP, scene.epoch, fault);
    std::thread::sleep(stopped_for.saturating_sub(fault.elapsed()));
    cluster.cont_master(MasterId::PRIMARY);
    let resumed = Instant::now();
    refuses_writes(&cluster, MasterId::PRIMARY).unwrap_or_else(|e| panic!("{e}"));
    wait_whole(
        &mut cluster,
        MasterId::BACKUP,
        "after SIGCONT of the old primary",
    );
    eprintln!(
        "primary stopped for {} ms: standby elected after {} ms; the old primary follows it \
         {} ms after SIGCONT",
        stopped_for.as_millis(),
        takeover.as_millis(),
        resumed.elapsed().as_millis()
    );
    scene.finish(&cluster, fault, Some(takeover));
    probe_not_stored(&cluster);
}

#[test]
fn a_frozen_primary_is_replaced_and_follows_after_sigcont() {
    a_frozen_primary(Duration::from_secs(2));
}

/// The 15 s.
#[test]
#[ignore = "long variant (15 s): make elections"]
fn long_a_primary_frozen_for_15_s_is_replaced_and_follows_after_sigcont() {
    a_frozen_primary(Duration::from_secs(15));
}

/// kill -9 of the primary under load: the standby is elected and a write is acknowledged
/// soon after (the goal is 0.5 s: `make failover-bench`).
#[test]
fn kill_9_of_the_primary_is_followed_by_an_acknowledged_write() {
    let mut cluster = ha_cluster(None);
    let scene = Scene::start(&cluster, "primary-kill-9");
    let fault = Instant::now();
    cluster.kill_master(MasterId::PRIMARY);
    let takeover = wait_elected(&cluster, MasterId::BACKUP, scene.epoch, fault);
    let m = scene.finish(&cluster, fault, Some(takeover));
    let first = m
        .first_ack
        .expect("writes were acknowledged after the kill");
    eprintln!(
        "kill -9: standby elected after {} ms, first write acknowledged after {} ms",
        takeover.as_millis(),
        first.as_millis()
    );
    assert!(
        first < GAP_BOUND,
        "the first write after kill -9 was acknowledged after {first:?}"
    );
}

/// The primary vanishes without a word (its port on the bridge goes down: no FIN, no RST,
/// nothing reaches it or leaves it, the clients' packets included): the slaves elect the
/// standby; when it comes back, the old primary learns of the new epoch and follows.
fn a_primary_that_vanishes(gone_for: Duration) {
    let Some(mut testbed) = testbed("a_primary_that_vanishes") else {
        return;
    };
    let mut cluster = ha_cluster(Some(&testbed));
    let scene = Scene::start(&cluster, "primary-vanish");
    let fault = Instant::now();
    testbed
        .vanish(Node::Master(0), true)
        .unwrap_or_else(|e| panic!("cannot make the primary vanish: {e}"));
    let takeover = wait_elected(&cluster, MasterId::BACKUP, scene.epoch, fault);
    std::thread::sleep(gone_for.saturating_sub(fault.elapsed()));
    testbed
        .vanish(Node::Master(0), false)
        .unwrap_or_else(|e| panic!("cannot bring the primary back: {e}"));
    let back = Instant::now();
    wait_whole(
        &mut cluster,
        MasterId::BACKUP,
        "after the old primary came back",
    );
    eprintln!(
        "primary vanished for {} ms: standby elected after {} ms; the old primary follows it \
         {} ms after it came back",
        gone_for.as_millis(),
        takeover.as_millis(),
        back.elapsed().as_millis()
    );
    scene.finish(&cluster, fault, Some(takeover));
}

#[test]
fn a_primary_that_vanishes_silently_is_replaced_and_follows_once_back() {
    a_primary_that_vanishes(Duration::from_secs(2));
}

#[test]
#[ignore = "long variant (10 s): make elections"]
fn long_a_primary_vanished_for_10_s() {
    a_primary_that_vanishes(Duration::from_secs(10));
}

/// A primary that stepped down rejoins with no operator step, and is a standby like any
/// other: frozen 1.5 s, it is replaced and follows the new primary after SIGCONT (the same
/// process, never restarted); then the new primary is killed and the old one is elected
/// again, at a third epoch, with nothing lost.
#[test]
fn a_stepped_down_primary_rejoins_by_itself_and_can_be_elected_again() {
    let mut cluster = ha_cluster(None);
    let pid = cluster.master_pid();
    cluster.stop_master(MasterId::PRIMARY);
    let stopped = Instant::now();
    wait_elected(&cluster, MasterId::BACKUP, 1, stopped);
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(stopped.elapsed()));
    cluster.cont_master(MasterId::PRIMARY);
    wait_whole(
        &mut cluster,
        MasterId::BACKUP,
        "after SIGCONT of the old primary",
    );
    assert_eq!(cluster.master_pid(), pid, "the old primary was restarted");
    let log = cluster.log("master");
    assert!(
        log.contains("stepping down") && log.contains("following"),
        "the old primary's log says nothing of stepping down and following: {log}"
    );
    let scene = Scene::start(&cluster, "rejoined-standby-elected");
    let epoch = scene.epoch;
    let fault = Instant::now();
    cluster.kill_master(MasterId::BACKUP);
    let takeover = wait_elected(&cluster, MasterId::PRIMARY, epoch, fault);
    scene.finish(&cluster, fault, Some(takeover));
    let s = cluster.status_of(cluster.master_listen(MasterId::PRIMARY));
    assert!(s.epoch >= 3, "the rejoined master elected again: {s:?}");
}

// ---------------------------------------------------------------------------------------
// A slave fails.

/// One slave cut from both masters by dropped packets: the primary drops it (its writes go
/// to other slaves) and keeps its lease (four voters of five still support it); no election
/// is won by anyone; when the network heals the slave is taken back as the same process, with
/// its copies.
fn an_isolated_slave(isolated_for: Duration) {
    const VICTIM: usize = 1;
    let Some(mut testbed) = testbed("an_isolated_slave") else {
        return;
    };
    let mut cluster = ha_cluster(Some(&testbed));
    let scene = Scene::start(&cluster, "slave-isolated");
    let fault = Instant::now();
    testbed
        .isolate(Node::Slave(VICTIM), true)
        .unwrap_or_else(|e| panic!("cannot isolate slave s{VICTIM}: {e}"));
    cluster.wait_slave_live(VICTIM, false, EVENTUALLY);
    std::thread::sleep(isolated_for.saturating_sub(fault.elapsed()));
    let s = cluster.status_of(cluster.master_listen(MasterId::PRIMARY));
    assert_eq!(
        (s.role, s.epoch, live_count(&s)),
        (ServerRole::Primary, scene.epoch, 2),
        "the primary with slave s{VICTIM} isolated: {s:?}"
    );
    testbed
        .isolate(Node::Slave(VICTIM), false)
        .unwrap_or_else(|e| panic!("cannot heal the partition: {e}"));
    wait_whole(
        &mut cluster,
        MasterId::PRIMARY,
        "after the slave's partition healed",
    );
    scene.finish(&cluster, fault, None);
    every_slave_registered_once(&cluster);
    no_slave_voted(&cluster);
}

#[test]
fn an_isolated_slave_is_dropped_and_taken_back_without_an_election() {
    an_isolated_slave(Duration::from_secs(2));
}

#[test]
#[ignore = "long variant (10 s): make elections"]
fn long_a_slave_isolated_for_10_s() {
    an_isolated_slave(Duration::from_secs(10));
}

/// The same standby of a typo, and one slave that blinks: SIGSTOPped past the ACK timeout
/// and the lease, so that the primary drops it, and resumed. The slave looks for a master at
/// the next address, the standby's. The standby must not be elected by it: it never had the
/// primary's roster (it would count 2 masters and its 1 supporter, 3 voters). This primary has
/// no `--peers` and no standby ever attached to it; it tells its slaves (STALE) it counts
/// itself, a master it may not know of and its 3 slaves, 5, and since its slaves dial two
/// masters it holds a lease from 2 of them; the slave refuses its vote to a standby that counts
/// 3 and says 5; one slave is no majority of them, and the primary serves on with the two
/// others. (It was ignored while the lone primary told 1: the standby was elected, a second
/// primary. `master/tests/standbys_sim.rs` has the same, and the majority's case.)
#[test]
fn a_backup_of_a_typo_is_not_elected_by_one_slave_that_blinked() {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        reserve_backup: true,
        ..Default::default()
    });
    let scene = Scene::start(&cluster, "backup-typo-slave-blink");
    let typo = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    cluster.start_backup_following(typo);
    // Its link has failed a few times: it no longer promises anything to anyone.
    std::thread::sleep(Duration::from_millis(500));
    let fault = Instant::now();
    cluster.stop_slave(0);
    cluster.wait_slave_live(0, false, EVENTUALLY);
    std::thread::sleep(Duration::from_millis(600).saturating_sub(fault.elapsed()));
    cluster.cont_slave(0);
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(4) {
        if let Ok(b) = cluster.quick_status(MasterId::BACKUP) {
            assert_ne!(
                b.role,
                ServerRole::Primary,
                "a standby of no master was elected {} ms after a slave blinked, while the \
                 primary served (primary: {:?}); s0: {}",
                watch.elapsed().as_millis(),
                cluster.quick_status(MasterId::PRIMARY),
                cluster.log("s0")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.wait_slave_live(0, true, EVENTUALLY);
    scene.finish(&cluster, fault, None);
    no_slave_voted(&cluster);
}

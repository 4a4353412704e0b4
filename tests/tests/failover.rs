//! Master failover against real processes: the backup takes over when the primary is killed or
//! frozen, the old primary is fenced, a restarted one becomes the backup, and no acknowledged
//! write is lost on the way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use dsm_client::{Client, Op, Reply};
use dsm_tests::raw::{self, Heard};
use dsm_tests::{wait_until, Cluster, ClusterOpts, MasterId};
use dsm_wire::{Body, ErrorCode, Frame, ServerRole};

/// The backup takes over within ~0.3 s of silence; this allows for a loaded machine.
const TAKEOVER: Duration = Duration::from_secs(10);
/// Keys per pipelined batch: small enough that none waits out the master's request deadline.
const BATCH: usize = 500;

fn ha_cluster() -> Cluster {
    Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        backup: true,
        ..Default::default()
    })
}

fn key(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}-{i}").into_bytes()
}

fn value(prefix: &str, i: usize) -> Vec<u8> {
    format!("value of {prefix}-{i}").into_bytes()
}

fn write_keys(c: &mut Client, prefix: &str, n: usize) {
    for i in 0..n {
        c.write(&key(prefix, i), &value(prefix, i))
            .unwrap_or_else(|e| panic!("WRITE {prefix}-{i} through {}: {e}", c.master()));
    }
}

fn check_keys(c: &mut Client, prefix: &str, n: usize, when: &str) {
    for i in 0..n {
        match c.read(&key(prefix, i)) {
            Ok(got) => assert_eq!(
                got.as_deref().map(String::from_utf8_lossy),
                Some(String::from_utf8_lossy(&value(prefix, i))),
                "{prefix}-{i} {when}"
            ),
            Err(e) => panic!("READ {prefix}-{i} {when} through {}: {e}", c.master()),
        }
    }
}

/// Write keys `prefix-0..n` pipelined, [`BATCH`] at a time; every one must be acknowledged.
fn batch_write(c: &mut Client, prefix: &str, n: usize) {
    for start in (0..n).step_by(BATCH) {
        let ops: Vec<Op> = (start..n.min(start + BATCH))
            .map(|i| Op::Write {
                key: key(prefix, i),
                value: value(prefix, i),
            })
            .collect();
        let answers = c
            .batch(&ops)
            .unwrap_or_else(|e| panic!("batch of WRITEs from {prefix}-{start}: {e}"));
        for (i, a) in (start..).zip(answers) {
            match a {
                Ok(Reply::Ok) => {}
                other => panic!("WRITE {prefix}-{i}: {other:?}"),
            }
        }
    }
}

fn batch_check(c: &mut Client, prefix: &str, n: usize, when: &str) {
    for start in (0..n).step_by(BATCH) {
        let ops: Vec<Op> = (start..n.min(start + BATCH))
            .map(|i| Op::Read {
                key: key(prefix, i),
            })
            .collect();
        let answers = c
            .batch(&ops)
            .unwrap_or_else(|e| panic!("batch of READs from {prefix}-{start} {when}: {e}"));
        for (i, a) in (start..).zip(answers) {
            match a {
                Ok(Reply::Value(v)) if v == value(prefix, i) => {}
                other => panic!("READ {prefix}-{i} {when}: {other:?}"),
            }
        }
    }
}

/// Key slots each writer of the load test overwrites, round and round.
const SLOTS: usize = 20;

/// What the load test's writers and the thread that kills the primary share.
struct Load {
    acked: AtomicUsize,
    killed_at: Mutex<Option<Instant>>,
    /// Per writer: acknowledged writes sent after the kill.
    after_kill: Vec<AtomicUsize>,
    stop: AtomicBool,
}

/// What one writer of the load test did.
struct Writer {
    /// Per slot: the last sequence number acknowledged, and the last one sent.
    acked: Vec<Option<u64>>,
    sent: Vec<Option<u64>>,
    /// Failed writes: when they started and ended, and why.
    errors: Vec<(Instant, Instant, String)>,
}

impl Writer {
    /// Write `t:seq` to slot `seq % SLOTS` of writer `t`, seq = 0, 1, ..., until told to stop.
    fn run(t: usize, c: &mut Client, load: &Load) -> Writer {
        let mut w = Writer {
            acked: vec![None; SLOTS],
            sent: vec![None; SLOTS],
            errors: Vec::new(),
        };
        let mut seq = 0u64;
        while !load.stop.load(Ordering::SeqCst) {
            let slot = seq as usize % SLOTS;
            let k = format!("load-{t}-{slot}");
            let start = Instant::now();
            let result = c.write(k.as_bytes(), format!("{t}:{seq}").as_bytes());
            w.sent[slot] = Some(seq);
            match result {
                Ok(_) => {
                    w.acked[slot] = Some(seq);
                    load.acked.fetch_add(1, Ordering::SeqCst);
                    if load.killed_at.lock().unwrap().is_some_and(|k| start >= k) {
                        load.after_kill[t].fetch_add(1, Ordering::SeqCst);
                    }
                }
                Err(e) => w.errors.push((start, Instant::now(), format!("{k}: {e}"))),
            }
            seq += 1;
        }
        w
    }

    /// Every slot reads its last acknowledged value or a later one this writer sent; returns
    /// how many slots had an acknowledged value.
    fn check(&self, t: usize, c: &mut Client) -> usize {
        let mut checked = 0;
        for slot in 0..SLOTS {
            let k = format!("load-{t}-{slot}");
            let got = c
                .read(k.as_bytes())
                .unwrap_or_else(|e| panic!("READ {k} through the new primary: {e}"));
            let seq = got.map(|v| {
                let v = String::from_utf8_lossy(&v).into_owned();
                match v
                    .split_once(':')
                    .map(|(w, s)| (w.parse::<usize>(), s.parse::<u64>()))
                {
                    Some((Ok(writer), Ok(seq))) if writer == t => seq,
                    _ => panic!("{k} reads {v:?}: not written by writer {t}"),
                }
            });
            if let Some(acked) = self.acked[slot] {
                let seq =
                    seq.unwrap_or_else(|| panic!("{k} acknowledged as {t}:{acked}, now gone"));
                assert!(
                    seq >= acked,
                    "{k} acknowledged as {t}:{acked}, reads {t}:{seq}"
                );
                checked += 1;
            }
            if let (Some(seq), Some(sent)) = (seq, self.sent[slot]) {
                assert!(seq <= sent, "{k} reads {t}:{seq}, last sent {t}:{sent}");
            }
        }
        checked
    }
}

/// Milliseconds from `from` to `t`, negative when `t` is earlier.
fn ms_after(t: Instant, from: Instant) -> i128 {
    t.saturating_duration_since(from).as_millis() as i128
        - from.saturating_duration_since(t).as_millis() as i128
}

#[test]
fn acknowledged_writes_survive_the_primary_killed_under_load() {
    const THREADS: usize = 3;
    /// Writes each writer must have acknowledged after the kill.
    const AFTER_KILL: usize = 30;
    /// How long after the backup is seen as primary a write may still fail.
    const SLACK: Duration = Duration::from_secs(2);
    let mut cluster = ha_cluster();
    let load = Load {
        acked: AtomicUsize::new(0),
        killed_at: Mutex::new(None),
        after_kill: (0..THREADS).map(|_| AtomicUsize::new(0)).collect(),
        stop: AtomicBool::new(false),
    };
    let after_kill = || -> Vec<usize> {
        load.after_kill
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect()
    };
    let (writers, killed, took_over) = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut c = cluster.ha_client();
                let load = &load;
                s.spawn(move || Writer::run(t, &mut c, load))
            })
            .collect();
        wait_until(
            Duration::from_secs(60),
            "100 acknowledged writes before the kill",
            || load.acked.load(Ordering::SeqCst) >= 100,
        );
        let killed = Instant::now();
        *load.killed_at.lock().unwrap() = Some(killed);
        cluster.kill_primary();
        cluster.wait_role(MasterId::BACKUP, ServerRole::Primary, TAKEOVER);
        let took_over = Instant::now();
        let carried_on = dsm_tests::poll_until(Duration::from_secs(60), || {
            after_kill().iter().all(|&n| n >= AFTER_KILL)
        });
        load.stop.store(true, Ordering::SeqCst);
        let writers: Vec<Writer> = handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect();
        assert!(
            carried_on,
            "not every writer got {AFTER_KILL} writes acknowledged after the kill: {:?}",
            after_kill()
        );
        (writers, killed, took_over)
    });
    eprintln!(
        "backup seen as primary {} ms after kill -9",
        ms_after(took_over, killed)
    );

    // A write may fail only if it overlaps the failover window.
    let window_end = took_over + SLACK;
    let mut in_window = 0;
    for (t, w) in writers.iter().enumerate() {
        for &(start, end, ref why) in &w.errors {
            assert!(
                start <= window_end && end >= killed,
                "writer {t} failed outside the failover window (sent {} ms after the kill, \
                 the window ends at {} ms): {why}",
                ms_after(start, killed),
                ms_after(window_end, killed)
            );
            eprintln!(
                "failed within the failover window ({} to {} ms after the kill): {why}",
                ms_after(start, killed),
                ms_after(end, killed)
            );
            in_window += 1;
        }
    }

    let mut c = Client::connect(&[cluster.backup_addr()]).expect("connect to the new primary");
    let checked: usize = (0..THREADS).map(|t| writers[t].check(t, &mut c)).sum();
    let s = cluster.status_of(cluster.backup_addr());
    assert_eq!(s.role, ServerRole::Primary, "the backup's STATUS: {s:?}");
    assert_eq!(s.epoch, 2, "the backup's STATUS: {s:?}");
    eprintln!(
        "{checked} acknowledged keys read back; acknowledged after the kill per writer: {:?}; \
         {in_window} writes failed within the failover window",
        after_kill()
    );
}

#[test]
fn the_backup_accepts_writes_within_a_second_of_kill_9() {
    const KEYS: usize = 200;
    let mut cluster = ha_cluster();
    let mut c = cluster.ha_client();
    write_keys(&mut c, "accept", KEYS);
    let killed = Instant::now();
    cluster.kill_primary();
    c.write(b"first-after-kill", b"through the backup")
        .unwrap_or_else(|e| panic!("first WRITE after the kill: {e}"));
    let took = killed.elapsed();
    eprintln!(
        "failover: first WRITE acknowledged {} ms after kill -9 of the primary",
        took.as_millis()
    );
    assert_eq!(c.master(), cluster.backup_addr(), "answered by the backup");
    assert!(
        took < Duration::from_secs(1),
        "the first WRITE after kill -9 took {took:?}"
    );
    check_keys(&mut c, "accept", KEYS, "after the failover");
    assert_eq!(
        c.read(b"first-after-kill").expect("READ first-after-kill"),
        Some(b"through the backup".to_vec())
    );
    let s = cluster.status_of(cluster.backup_addr());
    assert_eq!(s.role, ServerRole::Primary, "the backup's STATUS: {s:?}");
    assert!(s.epoch > 1, "the backup's STATUS: {s:?}");
}

#[test]
fn a_frozen_primary_steps_down_and_follows_once_the_backup_has_taken_over() {
    const KEYS: usize = 100;
    let mut cluster = ha_cluster();
    let mut c = cluster.ha_client();
    write_keys(&mut c, "before", KEYS);
    let stopped = Instant::now();
    cluster.stop_primary();
    let s = cluster.wait_role(MasterId::BACKUP, ServerRole::Primary, TAKEOVER);
    eprintln!(
        "backup took over {} ms after SIGSTOP (epoch {})",
        stopped.elapsed().as_millis(),
        s.epoch
    );
    let mut new = Client::connect(&[cluster.backup_addr()]).expect("connect to the new primary");
    let first = Instant::now();
    write_keys(&mut new, "after", KEYS);
    eprintln!(
        "{KEYS} WRITEs through the new primary took {} ms",
        first.elapsed().as_millis()
    );

    cluster.cont_primary();
    let old = cluster.master_listen(MasterId::PRIMARY);
    // Asked straight (the client library would follow a NOT_PRIMARY that names the new
    // primary there), the old primary must not acknowledge a WRITE.
    let (mut direct, mut rbuf) = raw::welcomed_client(old, Instant::now() + TAKEOVER);
    let deadline = Instant::now() + Duration::from_secs(2);
    let probe = Body::Write {
        key: b"fence-probe".to_vec(),
        value: b"must not be stored".to_vec(),
    };
    raw::send_frame(&mut direct, 7, probe);
    match raw::next_frame(&mut direct, &mut rbuf, deadline) {
        Heard::Frame(Frame {
            body: Body::Ok | Body::Degraded { .. },
            ..
        }) => panic!("the old primary acknowledged a WRITE after the takeover"),
        heard => eprintln!("WRITE to the old primary after SIGCONT: {heard:?}"),
    }
    // It rejoins by itself, as the standby of the new primary, at its epoch.
    let s = cluster.wait_role(
        MasterId::PRIMARY,
        ServerRole::Backup,
        Duration::from_secs(5),
    );
    assert!(s.epoch >= 1, "the old primary's STATUS: {s:?}");

    check_keys(&mut new, "before", KEYS, "written before SIGSTOP");
    check_keys(&mut new, "after", KEYS, "written through the new primary");
    assert_eq!(
        new.read(b"fence-probe").expect("READ fence-probe"),
        None,
        "a WRITE sent to the fenced old primary was stored"
    );
    let s = cluster.status_of(cluster.backup_addr());
    assert_eq!(
        s.role,
        ServerRole::Primary,
        "the new primary's STATUS: {s:?}"
    );
    assert_eq!(s.epoch, 2, "the new primary's STATUS: {s:?}");
}

#[test]
fn a_late_backup_receives_the_snapshot_and_serves_it_after_kill_9() {
    const KEYS: usize = 2000;
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        reserve_backup: true,
        // About the snapshot, not ACK deadlines: on a starved 2-core machine a pipelined bulk
        // load can miss the default 200 ms and leave a write DEGRADED.
        master_args: vec!["--ack-timeout-ms".into(), "2000".into()],
        ..Default::default()
    });
    let mut c = cluster.client();
    batch_write(&mut c, "late", KEYS);
    let started = Instant::now();
    cluster.start_backup();
    eprintln!(
        "backup started and holds the snapshot of {KEYS} keys after {} ms",
        started.elapsed().as_millis()
    );
    let s = cluster.status_of(cluster.backup_addr());
    assert_eq!(s.role, ServerRole::Backup, "the backup's STATUS: {s:?}");
    assert_eq!(s.keys, KEYS as u64, "the backup's STATUS: {s:?}");

    cluster.kill_primary();
    let mut b = Client::connect(&[cluster.backup_addr()]).expect("connect to the backup");
    // Elected, the backup may first hear from the slaves that its primary had called it out
    // of step (it attached moments before the kill): it then serves once they have reported
    // what they hold, answering UNAVAILABLE (retryable) until then.
    wait_until(
        Duration::from_secs(10),
        "the backup to serve after kill -9",
        || {
            !matches!(
                b.read(&key("late", 0)),
                Err(dsm_client::Error::Server {
                    code: ErrorCode::Unavailable,
                    ..
                })
            )
        },
    );
    batch_check(&mut b, "late", KEYS, "through the backup after kill -9");
    let s = cluster.status_of(cluster.backup_addr());
    assert_eq!(s.role, ServerRole::Primary, "the backup's STATUS: {s:?}");
    assert_eq!(s.keys, KEYS as u64, "the backup's STATUS: {s:?}");
}

/// Catch-up speed: about 7 s in a debug build on 2 cores (15 s beside the other tests), of
/// which the snapshot of 100,000 keys takes 0.7 to 1.7 s.
#[test]
fn a_late_backup_catches_up_on_100k_keys() {
    const KEYS: usize = 100_000;
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        reserve_backup: true,
        // This test is about the snapshot, not ACK deadlines: on a starved 2-core machine the
        // tail of a pipelined bulk load can miss the default 200 ms and drop every slave.
        master_args: vec!["--ack-timeout-ms".into(), "2000".into()],
        ..Default::default()
    });
    let mut c = cluster.client();
    c.set_timeout(Duration::from_secs(30));
    let written = Instant::now();
    batch_write(&mut c, "bulk", KEYS);
    eprintln!(
        "{KEYS} keys written in {} ms",
        written.elapsed().as_millis()
    );
    let started = Instant::now();
    cluster.start_backup_within(Duration::from_secs(60));
    eprintln!(
        "snapshot: backup started and holds {KEYS} keys after {} ms",
        started.elapsed().as_millis()
    );
    cluster.kill_primary();
    let mut b = Client::connect(&[cluster.backup_addr()]).expect("connect to the backup");
    b.set_timeout(Duration::from_secs(30));
    // Elected by the slaves; if they had not yet heard that it is in step again, it first
    // recovers what they hold (UNAVAILABLE meanwhile).
    wait_until(
        Duration::from_secs(30),
        "the backup to serve after kill -9",
        || matches!(b.read(&key("bulk", 0)), Ok(Some(_))),
    );
    batch_check(&mut b, "bulk", KEYS, "through the backup after kill -9");
}

const RECOVERY_KEYS: usize = 200;

#[test]
fn a_restarted_old_primary_becomes_the_backup_and_takes_over_again() {
    let (mut cluster, mut c) = first_failover(true);
    second_failover(&mut cluster, &mut c);
}

/// The recovery scenario with the primary killed right after the last acknowledged
/// write, before the backup has heard that write's outcome (only its intent). That is a race:
/// a new cluster is tried until the new primary takes over with a key still to verify.
#[test]
fn a_key_unverified_at_the_first_takeover_survives_a_second_failover() {
    for attempt in 1..=10 {
        let (mut cluster, mut c) = first_failover(false);
        if cluster.status_of(cluster.backup_addr()).keys < RECOVERY_KEYS as u64 {
            eprintln!("attempt {attempt}: the new primary has a key to verify");
            return second_failover(&mut cluster, &mut c);
        }
    }
    eprintln!("the backup heard every outcome in 10 attempts: the case was not exercised");
}

/// Write keys, kill the primary and wait for the backup to take over. `settle`: before the
/// kill, wait until the backup has every write's outcome (so it has nothing to verify).
fn first_failover(settle: bool) -> (Cluster, Client) {
    let mut cluster = ha_cluster();
    let mut c = cluster.ha_client();
    write_keys(&mut c, "epoch1", RECOVERY_KEYS);
    if settle {
        cluster.wait_backup_synced(MasterId::BACKUP, Duration::from_secs(10));
    }
    cluster.kill_primary();
    let s = cluster.wait_role(MasterId::BACKUP, ServerRole::Primary, TAKEOVER);
    assert_eq!(s.epoch, 2, "the new primary's STATUS: {s:?}");
    eprintln!(
        "the new primary took over counting {} of {RECOVERY_KEYS} acknowledged keys",
        s.keys
    );
    (cluster, c)
}

/// After [`first_failover`]: write more, restart the old primary as the backup of the new one,
/// kill the new one, and read every acknowledged write back from the restarted master.
fn second_failover(cluster: &mut Cluster, c: &mut Client) {
    const KEYS: usize = RECOVERY_KEYS;
    write_keys(c, "epoch2", KEYS / 4);
    // Restart once the new primary has every slave back and R copies of every key, as an
    // operator would.
    let new_primary = cluster.backup_addr();
    wait_until(
        Duration::from_secs(15),
        "the new primary to have 3 live slaves and no under-replicated key",
        || {
            cluster
                .try_status_of(new_primary)
                .is_ok_and(|s| dsm_tests::live_count(&s) == 3 && s.under_replicated == 0)
        },
    );

    let restarted = Instant::now();
    cluster.restart_master_as_backup_of(MasterId::PRIMARY, cluster.backup_heartbeat());
    eprintln!(
        "old primary restarted and synced as the backup in {} ms",
        restarted.elapsed().as_millis()
    );
    let b = cluster.status_of(cluster.master_listen(MasterId::PRIMARY));
    let p = cluster.status_of(new_primary);
    assert_eq!(
        b.role,
        ServerRole::Backup,
        "the restarted master's STATUS: {b:?}"
    );
    assert_eq!(b.keys, p.keys, "restarted: {b:?}\nnew primary: {p:?}");

    cluster.kill_master(MasterId::BACKUP);
    let s = cluster.wait_role(MasterId::PRIMARY, ServerRole::Primary, TAKEOVER);
    assert_eq!(
        s.epoch, 3,
        "the restarted master's STATUS after taking over: {s:?}"
    );
    check_keys(c, "epoch1", KEYS, "after the second failover");
    check_keys(c, "epoch2", KEYS / 4, "after the second failover");
    write_keys(c, "epoch3", 10);
    check_keys(c, "epoch3", 10, "written in epoch 3");
    assert_eq!(c.master(), cluster.master_listen(MasterId::PRIMARY));
    let s = cluster.status_of(cluster.master_listen(MasterId::PRIMARY));
    assert_eq!(
        s.keys,
        (KEYS + KEYS / 4 + 10) as u64,
        "STATUS in epoch 3: {s:?}"
    );
}

/// Three masters (a primary and two standbys, each only `--backup-of` the primary) and 3
/// slaves: six voters. kill -9 of the primary: one standby is elected, and the other follows it
/// by itself (it learnt of it from the primary's stream). kill -9 of the new primary: the
/// third master is elected by the three slaves (four of six), and every acknowledged write
/// reads back through it.
#[test]
fn three_masters_survive_two_primaries_killed_one_after_the_other() {
    const KEYS: usize = 200;
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        backup: true,
        more_standbys: 1,
        ..Default::default()
    });
    let standbys = [MasterId::BACKUP, MasterId::standby(2)];
    let mut c = cluster.ha_client();
    batch_write(&mut c, "sentinel", KEYS);

    cluster.kill_primary();
    let (first, other) = wait_new_primary(&cluster, &standbys);
    write_keys(&mut c, "epoch2", 20);
    // A slave may have supported the standby that lost for a while: the reads wait for it.
    wait_whole(&cluster, first);
    check_keys(&mut c, "sentinel", KEYS, "after the first failover");
    // Only now: keys the new primary took over still to verify (their last commit had not
    // reached it) are not in its STATUS count until a READ has verified them, while the
    // other standby's snapshot names them all.
    wait_following(&cluster, other, first);

    cluster.kill_master(first);
    let (second, _) = wait_new_primary(&cluster, &[other]);
    assert_eq!(second, other);
    wait_whole(&cluster, second);
    batch_check(&mut c, "sentinel", KEYS, "after the second failover");
    check_keys(&mut c, "epoch2", 20, "after the second failover");
    write_keys(&mut c, "epoch3", 10);
    check_keys(&mut c, "epoch3", 10, "written through the third master");
    assert_eq!(c.master(), cluster.master_listen(second));
    let s = cluster.status_of(cluster.master_listen(second));
    assert!(s.epoch >= 3, "the third master's STATUS: {s:?}");
    assert_eq!(s.keys, (KEYS + 20 + 10) as u64, "STATUS: {s:?}");
}

/// Wait until one of `among` says it is primary; returns it and (if any) another of them.
fn wait_new_primary(cluster: &Cluster, among: &[MasterId]) -> (MasterId, MasterId) {
    let mut elected = None;
    wait_until(TAKEOVER, "a standby to take over", || {
        elected = among.iter().copied().find(|&m| {
            (cluster.try_status_of(cluster.master_listen(m)))
                .is_ok_and(|s| s.role == ServerRole::Primary)
        });
        elected.is_some()
    });
    let new = elected.expect("set when the wait ends");
    let other = among.iter().copied().find(|&m| m != new).unwrap_or(new);
    (new, other)
}

/// Wait until primary `id` has the 3 slaves live and no key under-replicated.
fn wait_whole(cluster: &Cluster, id: MasterId) {
    let addr = cluster.master_listen(id);
    let what = "the new primary to have 3 live slaves and no under-replicated key";
    wait_until(TAKEOVER, what, || {
        (cluster.try_status_of(addr))
            .is_ok_and(|s| dsm_tests::live_count(&s) == 3 && s.under_replicated == 0)
    });
}

/// Wait until master `id` is a standby of `primary`, in step with every key it has.
fn wait_following(cluster: &Cluster, id: MasterId, primary: MasterId) {
    let (addr, p) = (cluster.master_listen(id), cluster.master_listen(primary));
    let mut last = None;
    let followed = dsm_tests::poll_until(TAKEOVER, || {
        let (Ok(b), Ok(s)) = (cluster.try_status_of(addr), cluster.try_status_of(p)) else {
            return false;
        };
        let ok = b.role == ServerRole::Backup
            && b.epoch == s.epoch
            && b.keys == s.keys
            && b.backup == dsm_wire::BackupLink::InStep;
        last = Some((b, s));
        ok
    });
    assert!(
        followed,
        "the other standby does not follow the new primary in {TAKEOVER:?}: {last:#?}"
    );
}

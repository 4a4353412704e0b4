//! Slaves that keep their data on disk, against real processes: kill -9 of every slave, and of
//! every process at once, loses no acknowledged write; a corrupt byte in a log is cut off and
//! logged while the other replica serves; a crash in the middle of a compaction loses nothing;
//! a full disk turns writes away (ERROR DISK) to other slaves while reads go on; a slave at its
//! `--max-memory` refuses (OUT_OF_MEMORY) and does not die; and a slave without `--data-dir`
//! says it keeps its data in memory only.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use dsm_client::{Client, Error, Written};
use dsm_tests::{wait_until, Cluster, ClusterOpts, MasterId, SlaveLaunch, STARTUP};
use dsm_wire::ErrorCode;

/// A whole cluster back from a restart serves every key within this.
const RECOVERY: Duration = Duration::from_secs(30);

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn key(i: usize) -> Vec<u8> {
    format!("persist-{i}").into_bytes()
}

/// Write unique keys from one thread until `stop`, and return the acknowledged ones with
/// their values. Writes whose outcome is unknown are left out; once writes start failing
/// (every slave down) it waits a little and tries again until stopped.
fn write_until(c: &mut Client, stop: &AtomicBool, acked: &AtomicUsize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut kept = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let (k, v) = (
            key(i),
            format!("value {i} of the persist test").into_bytes(),
        );
        i += 1;
        match c.write(&k, &v) {
            Ok(_) => {
                kept.push((k, v));
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    kept
}

/// Read every key until it gives its value, within `limit` for all of them together.
/// UNAVAILABLE (a master recovering, holders not back yet) and connection errors are retried;
/// a wrong value or NOT_FOUND is a lost write.
fn read_back(cluster: &Cluster, kept: &[(Vec<u8>, Vec<u8>)], limit: Duration, when: &str) {
    let deadline = Instant::now() + limit;
    let mut client: Option<Client> = None;
    for (k, v) in kept {
        let name = String::from_utf8_lossy(k).into_owned();
        loop {
            let c = match client.as_mut() {
                Some(c) => c,
                None => match cluster.connect(&cluster.masters()) {
                    Ok(c) => client.insert(c),
                    Err(e) => {
                        assert!(Instant::now() < deadline, "{when}: no master: {e}");
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                },
            };
            match c.read(k) {
                Ok(Some(got)) => {
                    assert_eq!(&got, v, "{when}: {name} reads another value");
                    break;
                }
                Ok(None) => panic!("{when}: acknowledged write of {name} lost (NOT_FOUND)"),
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "{when}: {name} still unreadable after {limit:?}: {e}"
                    );
                    if !matches!(e, Error::Server { .. }) {
                        client = None;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// Run a writer until `min_acked` writes are acknowledged, then `fault`, then stop the writer
/// once it has had a moment more; the acknowledged writes.
fn under_load(
    cluster: &mut Cluster,
    min_acked: usize,
    fault: impl FnOnce(&mut Cluster),
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let stop = AtomicBool::new(false);
    let acked = AtomicUsize::new(0);
    let mut c = cluster.ha_client();
    thread::scope(|s| {
        let writer = s.spawn(|| write_until(&mut c, &stop, &acked));
        wait_until(
            Duration::from_secs(60),
            &format!("{min_acked} acknowledged writes"),
            || acked.load(Ordering::SeqCst) >= min_acked || writer.is_finished(),
        );
        fault(cluster);
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::SeqCst);
        writer.join().expect("writer thread")
    })
}

#[test]
fn every_acknowledged_write_survives_kill_9_of_every_slave() {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        data: true,
        slave_args: args(&["--fsync", "always"]),
        ..Default::default()
    });
    let kept = under_load(&mut cluster, 300, |cluster| {
        for i in 0..3 {
            cluster.kill_slave(i);
        }
    });
    for i in 0..3 {
        cluster.restart_slave(i);
    }
    read_back(&cluster, &kept, RECOVERY, "after kill -9 of every slave");
    eprintln!("{} acknowledged writes read back", kept.len());
}

#[test]
fn a_whole_cluster_killed_at_once_comes_back_with_every_acknowledged_write() {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        backup: true,
        data: true,
        slave_args: args(&["--fsync", "always"]),
        ..Default::default()
    });
    let kept = under_load(&mut cluster, 300, Cluster::kill_everything);
    cluster.restart_master_as_primary(MasterId::PRIMARY);
    for i in 0..3 {
        cluster.start_slave_again(i);
    }
    read_back(&cluster, &kept, RECOVERY, "after kill -9 of every process");
    let primary = cluster.primary_heartbeat();
    cluster.restart_master_as_backup_of(MasterId::BACKUP, primary);
    eprintln!("{} acknowledged writes read back", kept.len());
}

/// Flip one byte in the middle of `path`.
/// Flip the byte in the middle of what the log holds: under `--fsync always` the file ends in
/// zeros written ahead of the appends (`FsDisk::preallocate`), which are not records.
fn flip_middle_byte(path: &Path) -> u64 {
    let mut bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let written = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let at = written / 2;
    bytes[at] ^= 0x55;
    fs::write(path, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    at as u64
}

#[test]
fn a_corrupt_byte_in_a_slave_log_is_cut_and_logged_while_the_other_replica_serves() {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        data: true,
        slave_args: args(&["--fsync", "always"]),
        ..Default::default()
    });
    let mut c = cluster.client();
    let kept: Vec<(Vec<u8>, Vec<u8>)> = (0..300)
        .map(|i| (key(i), format!("value of {i}").into_bytes()))
        .collect();
    for (k, v) in &kept {
        c.write(k, v).expect("write");
    }
    cluster.kill_slave(0);
    let log = cluster.data_dir("s0").join("slave.log");
    let at = flip_middle_byte(&log);
    cluster.restart_slave(0);
    let line = cluster.wait_log("s0", "torn or corrupt tail: cut", 1, STARTUP);
    assert!(line.contains("checksum mismatch"), "{line}");
    eprintln!("flipped the byte at {at}");
    read_back(
        &cluster,
        &kept,
        RECOVERY,
        "after a corrupt byte in s0's log",
    );
    // s0 keeps serving, and takes new writes.
    cluster.wait_slave_live(0, true, STARTUP);
    c.write(b"after the cut", b"fine")
        .expect("write after the cut");
}

#[test]
fn a_crash_in_the_middle_of_a_compaction_loses_nothing() {
    // Every slave holds every key (R=3), so once the other two are killed every read must
    // come from s0, which crashed while compacting and was restarted.
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 3,
        data: true,
        slave_args: args(&["--fsync", "always", "--compact-min-bytes", "64K"]),
        ..Default::default()
    });
    let failpoint = SlaveLaunch {
        env: vec![("DSM_FAILPOINT".into(), "compact-midway".into())],
        ..SlaveLaunch::default()
    };
    cluster.set_slave_launch(0, failpoint);
    cluster.restart_slave(0);
    // Overwrite 100 keys round after round until s0 aborts; stop at the first write that is
    // not on all three slaves (the one under way when s0 died), and leave its key out.
    let mut c = cluster.client();
    let mut last: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut n = 0usize;
    loop {
        assert!(n < 20_000, "s0 never compacted");
        let i = n % 100;
        let v = format!("round {} of key {i} {}", n / 100, "x".repeat(400)).into_bytes();
        n += 1;
        match c.write(&key(i), &v) {
            Ok(Written::Full) => {
                last.insert(i, v);
            }
            Ok(Written::Short { .. }) | Err(_) => {
                last.remove(&i);
                break;
            }
        }
    }
    let status = cluster.wait_slave_exit(0, STARTUP);
    assert!(!status.success(), "s0 exited with {status}");
    assert!(cluster.log("s0").contains("failpoint compact-midway"));
    cluster.set_slave_launch(0, SlaveLaunch::default());
    cluster.restart_slave(0);
    let log = cluster.log("s0");
    assert!(
        log.contains("removed slave.log.compact, left by a compaction that did not finish"),
        "{log}"
    );
    // Without the failpoint the compaction runs to its end.
    let log = cluster.wait_log("s0", "bytes per key", 1, STARTUP);
    eprintln!(
        "{}",
        log.lines()
            .filter(|l| l.contains("compact"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    cluster.kill_slave(1);
    cluster.kill_slave(2);
    let kept: Vec<(Vec<u8>, Vec<u8>)> = last.into_iter().map(|(i, v)| (key(i), v)).collect();
    assert!(kept.len() >= 90, "{} keys", kept.len());
    read_back(&cluster, &kept, RECOVERY, "from s0 alone after its crash");
}

/// The way to give one process a small tmpfs of its own, found once: `unshare` of a mount
/// namespace (root), or of a user and a mount namespace (others). The mount lives as long as
/// the process, so nothing is left mounted whatever happens to the test.
fn private_tmpfs_wrapper(dir: &Path, size: &str) -> Vec<String> {
    let script = format!("mount -t tmpfs -o size={size} tmpfs \"$0\" && exec \"$@\"");
    let mut tried = Vec::new();
    for flags in [&["-m"][..], &["-U", "-r", "-m"][..]] {
        let mut wrapper: Vec<String> = std::iter::once("unshare".to_string())
            .chain(flags.iter().map(|f| f.to_string()))
            .chain(["sh".to_string(), "-c".to_string(), script.clone()])
            .chain([dir.display().to_string()])
            .collect();
        let probe = Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .args([
                "sh",
                "-c",
                "test \"$(stat -f -c %T \"$0\")\" = tmpfs",
                &dir.display().to_string(),
            ])
            .output();
        match probe {
            Ok(out) if out.status.success() => return wrapper,
            Ok(out) => tried.push(format!(
                "unshare {}: {}{}",
                flags.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => tried.push(format!("unshare {}: {e}", flags.join(" "))),
        }
        wrapper.clear();
    }
    panic!(
        "this test needs a small tmpfs for one slave and cannot mount one here (it needs root \
         or unprivileged user namespaces, and the unshare and mount commands): {}",
        tried.join("; ")
    );
}

#[test]
fn a_full_disk_turns_writes_to_other_slaves_while_reads_go_on() {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        data: true,
        slave_args: args(&["--fsync", "always"]),
        ..Default::default()
    });
    let dir = cluster.data_dir("s0");
    fs::create_dir_all(&dir).expect("data dir");
    let wrapper = private_tmpfs_wrapper(&dir, "96k");
    cluster.kill_slave(0);
    cluster.set_slave_launch(
        0,
        SlaveLaunch {
            wrapper,
            ..SlaveLaunch::default()
        },
    );
    cluster.restart_slave(0);
    let mut c = cluster.client();
    let mut kept = Vec::new();
    for i in 0..400 {
        let (k, v) = (key(i), format!("{i:04} {}", "v".repeat(1000)).into_bytes());
        match c.write(&k, &v) {
            Ok(Written::Full) => kept.push((k, v)),
            other => panic!("write {i} with s0's disk full: {other:?}"),
        }
    }
    let log = cluster.wait_log("s0", "ERROR DISK", 1, STARTUP);
    assert!(log.contains("No space left on device"), "{log}");
    assert_eq!(
        log.matches("ERROR DISK").count(),
        1,
        "logged once, not per STORE: {log}"
    );
    assert!(cluster.log("master").contains("DISK"));
    assert!(cluster.slave_live(0), "s0 still serves");
    read_back(&cluster, &kept, RECOVERY, "with s0's disk full");
    // What s0 ACKed before its disk filled is still there for it to serve: with the others
    // gone, some keys are readable from s0 alone, and every one that is reads right.
    cluster.kill_slave(1);
    cluster.kill_slave(2);
    let mut from_s0 = 0;
    for (k, v) in &kept {
        match c.read(k) {
            Ok(Some(got)) => {
                assert_eq!(&got, v);
                from_s0 += 1;
            }
            Err(Error::Server {
                code: ErrorCode::Unavailable,
                ..
            }) => {}
            other => panic!("{}: {other:?}", String::from_utf8_lossy(k)),
        }
        if from_s0 >= 20 {
            break;
        }
    }
    assert!(from_s0 >= 20, "s0 served {from_s0} keys");
}

#[test]
fn a_slave_at_its_memory_cap_refuses_and_lives_on() {
    let cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 1,
        slave_args: args(&["--max-memory", "2M"]),
        ..Default::default()
    });
    let mut c = cluster.client();
    let value = vec![b'm'; 64 * 1024];
    let mut kept = Vec::new();
    let mut refused = 0;
    for i in 0..100 {
        match c.write(&key(i), &value) {
            Ok(Written::Full) => kept.push((key(i), value.clone())),
            Err(Error::Server {
                code: ErrorCode::OutOfMemory,
                ..
            }) => refused += 1,
            other => panic!("write {i}: {other:?}"),
        }
    }
    // Each slave holds about 30 such values under 2 MiB: more than that were placed, on the
    // other slave when the first choice was full; then every slave was full.
    assert!(
        kept.len() > 40 && kept.len() < 64,
        "{} writes taken",
        kept.len()
    );
    assert_eq!(refused, 100 - kept.len());
    for i in 0..2 {
        assert!(cluster.slave_live(i), "s{i} died");
        assert!(
            cluster.log(&format!("s{i}")).contains("memory cap reached"),
            "s{i} did not log the cap"
        );
    }
    read_back(&cluster, &kept, RECOVERY, "at the memory cap");
    // A smaller value for a held key still fits.
    c.write(&key(0), b"small").expect("a smaller value");
}

#[test]
fn a_slave_without_a_data_dir_says_it_keeps_data_in_memory_only() {
    let cluster = Cluster::start(ClusterOpts {
        slaves: 1,
        replicas: 1,
        ..Default::default()
    });
    let log = cluster.log("s0");
    assert!(
        log.contains("no --data-dir: this slave keeps its data in memory only"),
        "{log}"
    );
}

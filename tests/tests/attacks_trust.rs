//! Issue 18's attacks on trust, as real processes on loopback: peers that lie about what they
//! hold, take other slaves' ids, cancel their neighbours' requests, disagree about limits, or
//! attach as a backup and say nothing. Each test fails on the code before issue 18's fixes
//! (the comment on each says how) and checks that the data reads back unchanged.
//!
//! The fake peers speak frames built with `dsm_wire`, over plain `TcpStream`s
//! (`dsm_tests::raw`); no cluster here has a secret, as in the table.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dsm_client::{Client, ConnectOptions};
use dsm_tests::raw::{next_frame, send_frame, Heard};
use dsm_tests::{poll_until, wait_until, Cluster, ClusterOpts, MasterId};
use dsm_wire::{Body, ErrorCode, Limits, Role, ServerRole, DEFAULT_MAX_KEY, DEFAULT_MAX_VALUE};

const EVIL: &[u8] = b"EVIL";
/// The highest version a value can have (the top bit marks a tombstone, a DELETE).
const TOP: u64 = u64::MAX >> 1;
const WAIT: Duration = Duration::from_secs(10);

fn start(opts: ClusterOpts) -> Cluster {
    Cluster::start(opts)
}

fn hello(role: Role, id: &str, boot: u64, limits: Option<Limits>) -> Body {
    Body::Hello {
        role,
        epoch: 0,
        id: id.to_string(),
        boot,
        nonce: None,
        limits,
    }
}

fn default_limits() -> Option<Limits> {
    Some(Limits {
        max_key: DEFAULT_MAX_KEY as u32,
        max_value: DEFAULT_MAX_VALUE as u32,
        masters: 1,
    })
}

/// How a fake slave answers the master.
#[derive(Clone, Copy)]
enum Lie {
    /// Every FETCH: FETCHED at the highest version (2^63 - 1) with the value EVIL.
    TopVersion,
    /// Every STORE: first ERROR with the request ids next to its own (its neighbours'
    /// STOREs of the same write), then ACK its own.
    CancelNeighbours,
}

/// A slave that is not one: registered over a raw connection, answering as `lie` says (PINGs
/// with PONG, so it stays in service), on a thread of its own until dropped.
struct FakeSlave {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSlave {
    /// Register as slave `id` with `master`; if asked, report `inventory` (key, version).
    fn join(master: SocketAddr, id: &str, inventory: Vec<(Vec<u8>, u64)>, lie: Lie) -> FakeSlave {
        let mut s = TcpStream::connect(master).expect("connect to the master");
        s.set_nodelay(true).ok();
        send_frame(&mut s, 1, hello(Role::Slave, id, 7, default_limits()));
        let mut rbuf = Vec::new();
        let ask = match next_frame(&mut s, &mut rbuf, Instant::now() + WAIT) {
            Heard::Frame(f) => match f.body {
                Body::Welcome { inventory, .. } => inventory,
                other => panic!("the master did not WELCOME the fake slave: {other:?}"),
            },
            other => panic!("the master did not WELCOME the fake slave: {other:?}"),
        };
        if ask {
            let body = Body::Inventory {
                done: true,
                entries: inventory,
            };
            send_frame(&mut s, 0, body);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || serve(s, rbuf, lie, flag));
        FakeSlave {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeSlave {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, mut rbuf: Vec<u8>, lie: Lie, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let f = match next_frame(
            &mut s,
            &mut rbuf,
            Instant::now() + Duration::from_millis(50),
        ) {
            Heard::Frame(f) => f,
            Heard::Nothing => continue,
            Heard::Closed => return,
        };
        match (f.body, lie) {
            (Body::Ping, _) => send_frame(&mut s, f.req_id, Body::Pong),
            (Body::Fetch { .. }, Lie::TopVersion) => {
                let body = Body::Fetched {
                    version: TOP,
                    value: EVIL.to_vec(),
                };
                send_frame(&mut s, f.req_id, body);
            }
            (
                Body::Store { version, .. } | Body::StoreOnce { version, .. },
                Lie::CancelNeighbours,
            ) => {
                for other in f.req_id.saturating_sub(3)..=f.req_id + 3 {
                    if other != f.req_id && other != 0 {
                        let text = "refused (a lie)";
                        send_frame(&mut s, other, Body::error(ErrorCode::Disk, text));
                    }
                }
                send_frame(&mut s, f.req_id, Body::Ack { version });
            }
            (Body::Store { version, .. } | Body::StoreOnce { version, .. }, _) => {
                send_frame(&mut s, f.req_id, Body::Ack { version })
            }
            (Body::Fetch { .. }, _) => send_frame(&mut s, f.req_id, Body::NotFound),
            _ => {}
        }
    }
}

fn live_ids(cluster: &Cluster) -> Vec<String> {
    let mut ids: Vec<String> = (cluster.status().slaves.iter())
        .filter(|s| s.live)
        .map(|s| s.id.clone())
        .collect();
    ids.sort();
    ids
}

/// Row 1: a registered slave answers FETCH with version 2^63 - 1 (the highest a value can
/// have) and the value EVIL, and reports a key at version 2^64 - 1 (a tombstone at 2^63 - 1:
/// a DELETE nobody made). Before: the master adopted it, served
/// EVIL, and every later READ still returned it (the version outranked every later write).
#[test]
fn a_slave_cannot_make_the_master_serve_a_version_no_master_handed_out() {
    // Every READ goes to a slave (no read cache), so the liar is asked.
    let cluster = start(ClusterOpts {
        slaves: 1,
        replicas: 2,
        master_args: ["--read-cache-mb", "0"].map(String::from).to_vec(),
        ..Default::default()
    });
    let mut c = cluster.client();
    c.write(b"inv", b"real-inv").expect("write inv");
    // It claims `inv` deleted at the top version in its report, and answers every FETCH with
    // EVIL at the top version.
    let _liar = FakeSlave::join(
        cluster.master_addr(),
        "liar",
        vec![(b"inv".to_vec(), u64::MAX)],
        Lie::TopVersion,
    );
    wait_until(WAIT, "the fake slave in service", || {
        live_ids(&cluster) == ["liar", "s0"]
    });
    // Written to both (R = 2): reads are spread over the two holders.
    c.write(b"k", b"real-k").expect("write k");
    for i in 0..20 {
        assert_eq!(
            c.read(b"inv").unwrap().as_deref(),
            Some(&b"real-inv"[..]),
            "read {i}"
        );
        assert_eq!(
            c.read(b"k").unwrap().as_deref(),
            Some(&b"real-k"[..]),
            "read {i}"
        );
    }
    let log = cluster.log("master");
    assert!(
        log.contains(&format!("answered a FETCH with version {TOP}")),
        "the liar was never asked, so this test showed nothing:\n{log}"
    );
    assert!(
        log.contains("reports keys at versions no master handed out"),
        "{log}"
    );
    // Later writes win, as they must.
    c.write(b"k", b"newer").expect("write k again");
    c.write(b"inv", b"newer-inv").expect("write inv again");
    for _ in 0..10 {
        assert_eq!(c.read(b"k").unwrap().as_deref(), Some(&b"newer"[..]));
        assert_eq!(c.read(b"inv").unwrap().as_deref(), Some(&b"newer-inv"[..]));
    }
}

/// Row 3: a slave sends ERROR with its neighbours' request ids. Before: those sub-requests
/// were cancelled, so acknowledged writes ended with the fake slave as their only holder, and
/// read NOT_FOUND once it was gone. Now only a sub-request sent to that slave can be refused
/// by it.
#[test]
fn a_slaves_error_cancels_only_its_own_sub_requests() {
    let cluster = start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        ..Default::default()
    });
    let fake = FakeSlave::join(
        cluster.master_addr(),
        "canceller",
        Vec::new(),
        Lie::CancelNeighbours,
    );
    wait_until(WAIT, "the fake slave in service", || {
        live_ids(&cluster) == ["canceller", "s0", "s1"]
    });
    let mut c = cluster.client();
    let keys: Vec<Vec<u8>> = (0..40).map(|i| format!("key-{i}").into_bytes()).collect();
    for k in &keys {
        c.write(k, k).expect("write");
    }
    let stored = cluster.status();
    let placed = |id: &str| stored.slaves.iter().find(|s| s.id == id).map(|s| s.keys);
    assert!(
        placed("canceller").unwrap_or(0) > 0,
        "no write went to the fake slave: {stored:?}"
    );
    // Gone for good: keys only it held would read NOT_FOUND.
    drop(fake);
    wait_until(WAIT, "the fake slave dropped", || {
        live_ids(&cluster) == ["s0", "s1"]
    });
    c.forget_slave("canceller").expect("forget the fake slave");
    for k in &keys {
        assert_eq!(c.read(k).unwrap().as_deref(), Some(&k[..]), "{k:?}");
    }
    assert!(
        cluster.log("master").contains("answered request"),
        "the fake slave's ERRORs never arrived"
    );
}

/// Row 2: HELLO as a slave with each real slave's id, from raw connections and from a real
/// `dsm-slave` process. Before: every real slave was dropped and told to start empty. Now the
/// HELLO is refused with a clear error, the second process exits non-zero, and the real
/// slaves serve on.
#[test]
fn a_second_slave_with_a_live_ones_id_is_refused_and_exits() {
    let mut cluster = start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        ..Default::default()
    });
    let mut c = cluster.client();
    for i in 0..30 {
        c.write(format!("k{i}").as_bytes(), b"v").expect("write");
    }
    for (n, id) in ["s0", "s1", "s2"].into_iter().enumerate() {
        let mut s = TcpStream::connect(cluster.master_addr()).expect("connect");
        send_frame(
            &mut s,
            1,
            hello(Role::Slave, id, 1000 + n as u64, default_limits()),
        );
        let mut rbuf = Vec::new();
        match next_frame(&mut s, &mut rbuf, Instant::now() + WAIT) {
            Heard::Frame(f) => match f.body {
                Body::Error {
                    code: ErrorCode::BadRequest,
                    text,
                } => assert!(text.contains("already connected"), "{text}"),
                other => panic!("a HELLO with {id}'s id got {other:?}"),
            },
            other => panic!("a HELLO with {id}'s id got {other:?}"),
        }
    }
    let master = cluster.master_addr().to_string();
    let n = cluster.spawn_stranger_slave_with("twin", &["--master", &master, "--id", "s1"]);
    let status = cluster
        .wait_stranger_exit(n, Duration::from_secs(20))
        .expect("the second s1 still runs: it must give up");
    assert!(!status.success(), "{status:?}");
    let log = cluster.log("twin");
    assert!(log.contains("already connected"), "{log}");
    assert!(log.contains("giving up"), "{log}");
    assert!(
        cluster.log("master").contains("refusing a slave HELLO"),
        "the master does not say why"
    );
    assert_eq!(live_ids(&cluster), ["s0", "s1", "s2"]);
    for i in 0..30 {
        let k = format!("k{i}");
        assert_eq!(
            c.read(k.as_bytes()).unwrap().as_deref(),
            Some(&b"v"[..]),
            "{k}"
        );
    }
}

/// Row 8: master `--max-value 2097152`, slaves at the default 1 MiB. Before: the slaves
/// registered, rejected the first 1.5 MB STORE (over their frame limit), were dropped and
/// emptied: every key read NOT_FOUND. Now the master refuses them at registration, both sides
/// say why, the slaves exit non-zero; slaves given the master's limits serve the write.
#[test]
fn slaves_with_limits_below_the_masters_are_refused_at_registration() {
    let mut cluster = start(ClusterOpts {
        slaves: 0,
        ..Default::default()
    });
    let big = cluster.spawn_stranger_master(
        "big",
        &[
            "--max-value",
            "2097152",
            "--replicas",
            "2",
            "--discover-ms",
            "0",
        ],
    );
    let at = big.to_string();
    let small: Vec<usize> = (0..2)
        .map(|i| {
            let id = format!("small{i}");
            cluster.spawn_stranger_slave_with(&id, &["--master", &at, "--id", &id])
        })
        .collect();
    for (i, n) in small.into_iter().enumerate() {
        let status = cluster
            .wait_stranger_exit(n, Duration::from_secs(20))
            .expect("a slave with smaller limits still runs: it must give up");
        assert!(!status.success(), "{status:?}");
        let log = cluster.log(&format!("small{i}"));
        assert!(log.contains("are below this master's"), "{log}");
    }
    let log = cluster.log("big");
    assert!(
        log.contains("refusing slave 'small0'") && log.contains("--max-value 1048576"),
        "{log}"
    );
    for i in 0..2 {
        let id = format!("large{i}");
        cluster.spawn_stranger_slave_with(
            &id,
            &["--master", &at, "--id", &id, "--max-value", "2097152"],
        );
    }
    // A client that expects values of up to 2 MiB (it caps frames at what it expects).
    let opts = ConnectOptions {
        max_value: 2 << 20,
        ..ConnectOptions::default()
    };
    let mut c = Client::connect_with_options(&[big], opts).expect("a client of the big master");
    wait_until(WAIT, "two slaves with the master's limits", || {
        c.status()
            .is_ok_and(|s| s.slaves.iter().filter(|s| s.live).count() == 2)
    });
    let value = vec![b'x'; 1_500_000];
    c.write(b"big", &value).expect("a 1.5 MB write");
    c.write(b"small", b"v").expect("a small write");
    assert_eq!(c.read(b"big").unwrap().as_deref(), Some(&value[..]));
    assert_eq!(c.read(b"small").unwrap().as_deref(), Some(&b"v"[..]));
}

/// A raw connection to a master's heartbeat socket that said HELLO as a backup with `id` and
/// got `answer`.
fn fake_backup(heartbeat: SocketAddr, id: &str) -> (TcpStream, Vec<u8>, Body) {
    let mut s = TcpStream::connect(heartbeat).expect("connect to the heartbeat socket");
    let mut hello = hello(Role::Backup, id, 0, None);
    if let Body::Hello { epoch, .. } = &mut hello {
        *epoch = 1;
    }
    send_frame(&mut s, 1, hello);
    let mut rbuf = Vec::new();
    let answer = match next_frame(&mut s, &mut rbuf, Instant::now() + WAIT) {
        Heard::Frame(f) => f.body,
        other => panic!("HELLO as backup got {other:?}"),
    };
    (s, rbuf, answer)
}

/// Writes and reads for `for_`, each of which must succeed.
fn keep_writing(cluster: &Cluster, for_: Duration) -> usize {
    let mut c = cluster.client();
    let end = Instant::now() + for_;
    let mut n = 0;
    while Instant::now() < end {
        let k = format!("w{n}");
        match c.write(k.as_bytes(), k.as_bytes()) {
            Ok(_) => {}
            Err(e) => panic!("write {n} failed: {e}"),
        }
        assert_eq!(c.read(k.as_bytes()).unwrap().as_deref(), Some(k.as_bytes()));
        n += 1;
    }
    n
}

/// Row 9, first half: HELLO as a backup at epoch 1, then silence, from several connections
/// with ids of their own. Before: the primary took each (pushing out its real, in-step
/// backup) and counted each as a voter for good, so it lost its majority and stepped down.
/// Now a standby counts as a voter only once it has confirmed a whole snapshot, the primary
/// streams to several standbys (up to 8; at the cap a newcomer replaces one still catching up,
/// never one in step, else BUSY), and one that never confirms holds no write up.
#[test]
fn silent_backups_without_the_secret_cannot_take_the_primary_down() {
    let cluster = start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        backup: true,
        ..Default::default()
    });
    let heartbeat = cluster.primary_heartbeat();
    let mut fakes = Vec::new();
    // Eight: with each counted as a voter, no majority is left to the primary, its backup
    // and its three slaves.
    for i in 0..8 {
        let id = format!("127.0.0.1:{} 127.0.0.1:{}", 1 + 2 * i, 2 + 2 * i);
        let (s, rbuf, answer) = fake_backup(heartbeat, &id);
        fakes.push((s, rbuf, answer));
    }
    // Several leases (400 ms): the primary keeps its majority and serves.
    let done = keep_writing(&cluster, Duration::from_secs(3));
    assert!(done > 0);
    let s = cluster.status_of(cluster.master_addr());
    assert_eq!(s.role, ServerRole::Primary);
    assert_eq!(s.epoch, 1, "an election happened");
    cluster.wait_backup_synced(MasterId::BACKUP, WAIT);
    assert!(!cluster.log("master").contains("stepped down"));
    // The real backup was never pushed out (it is in step, above); each fake was taken as a
    // standby out of step, or refused at the cap.
    let mut busy = 0;
    for (_, _, answer) in &fakes {
        match answer {
            Body::Welcome { standby: false, .. } => {}
            Body::Error {
                code: ErrorCode::Busy,
                text,
            } => {
                assert!(text.contains("in step"), "{text}");
                busy += 1;
            }
            other => panic!("a silent backup was answered {other:?}"),
        }
    }
    // At the cap a fake may replace another fake (never in step), not the real backup.
    let real = format!("replaces standby {}", cluster.backup_heartbeat());
    assert!(!cluster.log("master").contains(&real), "{real}");
    eprintln!("{busy} of 8 silent backups refused BUSY");
}

/// Row 9, second half: a backup that PINGs and answers PINGs but never confirms a SYNC.
/// Before: every WRITE waited for its SYNC_ACK and timed out. Now it is out of step from the
/// start: writes wait only until a majority knows (STALE), and it is never a voter.
#[test]
fn a_backup_that_never_confirms_does_not_hold_writes_up() {
    let cluster = start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        ..Default::default()
    });
    let (mut s, mut rbuf, answer) = fake_backup(cluster.primary_heartbeat(), "127.0.0.1:9 x");
    assert!(
        matches!(answer, Body::Welcome { .. }),
        "no standby is attached, so it is taken: {answer:?}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let pinger = std::thread::spawn(move || {
        let mut syncs = 0;
        let mut next_ping = Instant::now();
        while !flag.load(Ordering::SeqCst) {
            if Instant::now() >= next_ping {
                send_frame(&mut s, 0, Body::Ping);
                next_ping += Duration::from_millis(100);
            }
            match next_frame(
                &mut s,
                &mut rbuf,
                Instant::now() + Duration::from_millis(20),
            ) {
                Heard::Frame(f) => match f.body {
                    Body::Ping => send_frame(&mut s, f.req_id, Body::Pong),
                    Body::Sync { .. } => syncs += 1,
                    _ => {}
                },
                Heard::Nothing => {}
                Heard::Closed => return (syncs, true),
            }
        }
        (syncs, false)
    });
    let done = keep_writing(&cluster, Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let (syncs, closed) = pinger.join().expect("the fake backup's thread");
    assert!(syncs > 0, "the fake backup was never streamed to");
    assert!(done > 10, "only {done} writes in 3 s");
    let s = cluster.status_of(cluster.master_addr());
    assert_eq!(s.role, ServerRole::Primary);
    // Still attached (it PINGs) or let go for lagging: either way writes went on.
    let _ = closed;
}

/// STATUS with many slaves registered: one pass, and at most 1000 listed, connected first.
#[test]
fn status_lists_a_bounded_number_of_slaves_and_stays_quick() {
    let cluster = start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        ..Default::default()
    });
    // 1,200 slaves with 128-byte ids that report (nothing) and go away: absent, and
    // remembered until --slave-lost-after-ms.
    for i in 0..1200 {
        let id = format!("{i:0>128}");
        let mut s = TcpStream::connect(cluster.master_addr()).expect("connect");
        send_frame(&mut s, 1, hello(Role::Slave, &id, 1, default_limits()));
        let mut rbuf = Vec::new();
        match next_frame(&mut s, &mut rbuf, Instant::now() + WAIT) {
            Heard::Frame(f) if matches!(f.body, Body::Welcome { .. }) => {}
            other => panic!("registration {i}: {other:?}"),
        }
        let report = Body::Inventory {
            done: true,
            entries: Vec::new(),
        };
        send_frame(&mut s, 0, report);
    }
    let mut c = cluster.client();
    let mut listed = 0;
    assert!(poll_until(WAIT, || {
        let s = c.status().expect("status");
        listed = s.slaves.len();
        listed == 1000 && s.slaves.iter().filter(|s| s.live).count() == 2
    }));
    let s = c.status().unwrap();
    assert!(
        s.slaves[0].live && s.slaves[1].live,
        "connected slaves come first"
    );
    c.write(b"k", b"v").expect("write");
    assert_eq!(c.read(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// Slave registrations that leave before reporting what they hold (row 4's 1,000
/// registrations, here ten). Before: each was on the roster and counted as a voter for an
/// hour, so with a backup (voters: 2 masters, 3 slaves and 10 strangers) the primary lost its
/// majority and stepped down. Now only a slave that has been in service votes.
#[test]
fn slaves_that_never_reported_do_not_vote() {
    let cluster = start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        backup: true,
        ..Default::default()
    });
    for i in 0..10 {
        let mut s = TcpStream::connect(cluster.master_addr()).expect("connect");
        send_frame(
            &mut s,
            1,
            hello(Role::Slave, &format!("x{i}"), 1, default_limits()),
        );
        let mut rbuf = Vec::new();
        match next_frame(&mut s, &mut rbuf, Instant::now() + WAIT) {
            Heard::Frame(f) if matches!(f.body, Body::Welcome { .. }) => {}
            other => panic!("registration {i}: {other:?}"),
        }
    }
    let done = keep_writing(&cluster, Duration::from_secs(3));
    assert!(done > 0);
    let s = cluster.status_of(cluster.master_addr());
    assert_eq!((s.role, s.epoch), (ServerRole::Primary, 1));
    assert!(!cluster.log("master").contains("stepped down"));
    // And they are forgotten: not listed, not waited for.
    let listed: Vec<&str> = s.slaves.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(listed, ["s0", "s1", "s2"]);
    let log = cluster.log("master");
    assert_eq!(
        log.matches("finished reporting what it holds").count(),
        10,
        "{log}"
    );
}

//! The shared secret with real processes: slaves, backups and clients without it (or with
//! another) are refused with a logged reason on both sides, those with it work, a stranger
//! cannot fence the primary or pose as a master, and the secret never crosses the wire.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use dsm_auth::{Handshake, Step};
use dsm_client::{Client, Error, Secret};
use dsm_tests::{live_count, poll_until, run, Cluster, ClusterOpts, STARTUP};
use dsm_wire::{decode, encode, Body, ErrorCode, Frame, Role, ServerRole};

const SECRET: &[u8] = b"9f2c1e7a-auth-test-secret-5d04b3";
const OTHER: &[u8] = b"0c6b8d21-not-the-cluster-secret!";
/// How long a refused node is watched to be sure it never gets in.
const WATCH: Duration = Duration::from_millis(1500);
const CMD_TIMEOUT: Duration = Duration::from_secs(30);

fn secured(slaves: usize, master_args: &[&str]) -> Cluster {
    Cluster::start(ClusterOpts {
        slaves,
        replicas: 2,
        master_args: master_args.iter().map(|a| a.to_string()).collect(),
        secret: Some(SECRET.to_vec()),
        ..Default::default()
    })
}

fn listed(cluster: &Cluster, id: &str) -> bool {
    cluster.status().slaves.iter().any(|s| s.id == id)
}

/// Write `n` keys and read every one back.
fn data_flows(c: &mut Client, n: usize) {
    for i in 0..n {
        c.write(format!("k{i}").as_bytes(), format!("v{i}").as_bytes())
            .unwrap_or_else(|e| panic!("WRITE k{i}: {e}"));
    }
    for i in 0..n {
        let got = c.read(format!("k{i}").as_bytes()).expect("READ");
        assert_eq!(got, Some(format!("v{i}").into_bytes()));
    }
}

#[test]
fn a_slave_without_the_secret_is_refused_while_slaves_with_it_serve() {
    let mut cluster = secured(2, &[]);
    let masters = cluster.masters();
    cluster.spawn_stranger_slave("stranger", &masters, None);
    // It keeps retrying (with its backoff), and the master says why each time.
    let log = cluster.wait_log("master", "refusing slave 'stranger'", 2, STARTUP);
    assert!(
        log.contains("it sent no proof of the shared secret"),
        "{log}"
    );
    let slave_log = cluster.wait_log("stranger", "not registered", 1, STARTUP);
    assert!(
        slave_log.contains("UNAUTHORIZED: this master requires the shared secret"),
        "{slave_log}"
    );
    assert!(!listed(&cluster, "stranger"));
    assert_eq!(live_count(&cluster.status()), 2);

    let mut c = cluster.client();
    data_flows(&mut c, 50);
    let status = cluster.status();
    assert_eq!(status.keys, 50);
    assert_eq!(status.slaves.iter().map(|s| s.keys).sum::<u64>(), 100);
    assert!(!listed(&cluster, "stranger"), "{status:?}");
}

#[test]
fn a_slave_with_the_wrong_secret_is_refused() {
    let mut cluster = secured(2, &[]);
    let wrong = cluster.write_secret_file("wrong", OTHER);
    let masters = cluster.masters();
    cluster.spawn_stranger_slave("impostor", &masters, Some(&wrong));
    let log = cluster.wait_log("master", "refusing slave 'impostor'", 1, STARTUP);
    assert!(log.contains("wrong proof"), "{log}");
    let slave_log = cluster.wait_log("impostor", "wrong secret", 1, STARTUP);
    assert!(slave_log.contains("UNAUTHORIZED"), "{slave_log}");
    assert!(!poll_until(WATCH, || listed(&cluster, "impostor")));
    data_flows(&mut cluster.client(), 10);
}

#[test]
fn a_secret_on_one_side_only_is_an_error_on_both() {
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 1,
        replicas: 1,
        ..Default::default()
    });
    let file = cluster.write_secret_file("secret", SECRET);
    let masters = cluster.masters();
    cluster.spawn_stranger_slave("eager", &masters, Some(&file));
    let log = cluster.wait_log("master", "refusing slave 'eager'", 1, STARTUP);
    assert!(log.contains("this master has no --secret-file"), "{log}");
    let slave_log = cluster.wait_log("eager", "not registered", 1, STARTUP);
    assert!(slave_log.contains("has no secret"), "{slave_log}");
    assert!(!listed(&cluster, "eager"));
    // A client with a secret gets the same answer, at once rather than at its deadline.
    let start = Instant::now();
    let secret = Secret::from_bytes(SECRET);
    match Client::connect_with_secret(&masters, Duration::from_secs(5), secret) {
        Err(Error::Server {
            code: ErrorCode::Unauthorized,
            ..
        }) => {}
        Err(e) => panic!("expected UNAUTHORIZED, got {e}"),
        Ok(_) => panic!("a client with a secret was let in by a master without one"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_backup_without_the_secret_cannot_attach_or_fence_the_primary() {
    let mut cluster = secured(2, &[]);
    let hb = cluster.primary_heartbeat().to_string();
    let backup = cluster.spawn_stranger_master("stranger-backup", &["--backup-of", &hb]);
    let log = cluster.wait_log("master", "refusing backup", 2, STARTUP);
    assert!(log.contains("sent no proof"), "{log}");
    let backup_log = cluster.wait_log("stranger-backup", "refused this backup", 1, STARTUP);
    assert!(backup_log.contains("UNAUTHORIZED"), "{backup_log}");

    // A raw stranger on the heartbeat socket claiming a far higher epoch, first without a
    // nonce, then with one and a made-up proof: refused both times, and nothing changes.
    let heartbeat = cluster.primary_heartbeat();
    let mut raw = Raw::connect(heartbeat);
    raw.send(1, fencing_hello(None));
    raw.expect_unauthorized_and_close();
    let mut raw = Raw::connect(heartbeat);
    raw.send(1, fencing_hello(Some([7; 32])));
    assert!(matches!(raw.next(), Some(Body::Challenge { .. })));
    raw.send(1, Body::Auth { proof: [0; 32] });
    raw.expect_unauthorized_and_close();

    // Watch well past the backup's takeover time (3 missed 100 ms intervals).
    std::thread::sleep(WATCH);
    let status = cluster.status();
    assert_eq!((status.role, status.epoch), (ServerRole::Primary, 1));
    let b = Client::connect(&[backup])
        .and_then(|mut c| c.status())
        .expect("STATUS from the stranger backup");
    assert_eq!(b.role, ServerRole::Backup, "the refused backup took over");
    data_flows(&mut cluster.client(), 10);
}

fn fencing_hello(nonce: Option<[u8; 32]>) -> Body {
    Body::Hello {
        role: Role::Backup,
        epoch: 1000,
        id: String::new(),
        boot: 0,
        nonce: nonce.map(Box::new),
        limits: None,
    }
}

#[test]
fn with_require_client_auth_only_clients_with_the_secret_are_served() {
    let cluster = secured(2, &["--require-client-auth"]);
    let addr = cluster.master_addr();
    let start = Instant::now();
    match Client::connect(&[addr]) {
        Err(Error::Server {
            code: ErrorCode::Unauthorized,
            text,
        }) => assert!(text.contains("requires the shared secret"), "{text}"),
        Err(e) => panic!("expected UNAUTHORIZED, got {e}"),
        Ok(_) => panic!("a client without the secret was let in"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let wrong =
        Client::connect_with_secret(&[addr], Duration::from_secs(5), Secret::from_bytes(OTHER));
    assert!(
        matches!(
            wrong,
            Err(Error::Server {
                code: ErrorCode::Unauthorized,
                ..
            })
        ),
        "a client with the wrong secret: {:?}",
        wrong.map(|_| ())
    );
    // Requests with no HELLO at all, PING included: UNAUTHORIZED, then the connection closes.
    for body in [Body::Ping, Body::Read { key: b"k".to_vec() }] {
        let mut raw = Raw::connect(addr);
        raw.send(3, body);
        raw.expect_unauthorized_and_close();
    }

    // The binary: without --secret-file it fails with the reason; with it, it works.
    let mut plain = std::process::Command::new(dsm_tests::bin("dsm-client"));
    plain.args(["--master", &addr.to_string(), "write", "k", "v"]);
    let out = run(&mut plain, b"", CMD_TIMEOUT);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr().contains("UNAUTHORIZED"), "{}", out.stderr());
    let out = run(
        cluster.client_command().args(["write", "k", "v"]),
        b"",
        CMD_TIMEOUT,
    );
    assert_eq!(
        (out.code(), out.stdout().trim()),
        (Some(0), "OK"),
        "{out:?}"
    );
    let out = run(
        cluster.client_command().args(["read", "k"]),
        b"",
        CMD_TIMEOUT,
    );
    assert_eq!(out.stdout().trim(), "v", "{out:?}");
    // The bench authenticates every one of its connections.
    let bench = [
        "bench",
        "--op",
        "write",
        "--clients",
        "3",
        "--requests",
        "300",
    ];
    let out = run(cluster.client_command().args(bench), b"", CMD_TIMEOUT);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let mut plain = std::process::Command::new(dsm_tests::bin("dsm-client"));
    plain.args(["--master", &addr.to_string()]).args(bench);
    let out = run(&mut plain, b"", CMD_TIMEOUT);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr().contains("UNAUTHORIZED"), "{}", out.stderr());
}

/// Everything the master sends to an authenticating client, and everything the client sends,
/// is captured off a real socket: the secret is in none of it.
#[test]
fn the_secret_never_crosses_the_wire() {
    let cluster = secured(2, &["--require-client-auth"]);
    let secret = Secret::from_bytes(SECRET).unwrap();
    let mut raw = Raw::connect(cluster.master_addr());
    let (mut hs, hello) =
        Handshake::start(Some(&secret), 1, Role::Client, 0, String::new(), 0).expect("a nonce");
    raw.send(hello.req_id, hello.body);
    loop {
        let frame = raw.next_frame().expect("an answer during the handshake");
        match hs.on_frame(frame) {
            Step::Send(auth) => raw.send(auth.req_id, auth.body),
            Step::Welcomed { .. } => break,
            other => panic!("handshake failed: {other:?}"),
        }
    }
    let write = Body::Write {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
    };
    raw.send(2, write);
    assert_eq!(raw.next(), Some(Body::Ok));
    raw.send(3, Body::Status);
    assert!(matches!(raw.next(), Some(Body::StatusReply(_))));
    // And a peer with the wrong secret: the refusal does not leak it either.
    let mut wrong = Raw::connect(cluster.master_addr());
    let other = Secret::from_bytes(OTHER).unwrap();
    let (mut hs, hello) = Handshake::start(Some(&other), 1, Role::Slave, 0, "x".into(), 0).unwrap();
    wrong.send(hello.req_id, hello.body);
    let Some(Step::Send(auth)) = wrong.next_frame().map(|f| hs.on_frame(f)) else {
        panic!("no CHALLENGE");
    };
    wrong.send(auth.req_id, auth.body);
    wrong.expect_unauthorized_and_close();

    let heard = [raw.received.as_slice(), wrong.received.as_slice()].concat();
    let said = [raw.sent.as_slice(), wrong.sent.as_slice()].concat();
    assert!(
        heard.len() > 150 && said.len() > 150,
        "{} / {}",
        heard.len(),
        said.len()
    );
    assert!(
        secret.occurs_in(&[b"--".as_slice(), SECRET].concat()),
        "the check works"
    );
    assert!(!secret.occurs_in(&heard), "the master sent the secret");
    assert!(!secret.occurs_in(&said), "the client sent the secret");
    assert!(!other.occurs_in(&heard) && !other.occurs_in(&said));
}

/// A stranger listening where a slave looks for its master learns no secret from the slave,
/// and cannot make it accept a WELCOME (which could tell it to drop its data).
#[test]
fn a_slave_does_not_trust_a_master_that_cannot_prove_the_secret() {
    let mut cluster = secured(0, &[]);
    let fake = TcpListener::bind("127.0.0.1:0").expect("bind a fake master");
    let file = cluster.secret_file().expect("a secret").to_path_buf();
    let addr = fake.local_addr().unwrap();
    cluster.spawn_stranger_slave("trusting", &[addr], Some(&file));
    let (stream, _) = fake.accept().expect("the slave connects");
    let mut raw = Raw::from(stream);
    let Some(Body::Hello {
        role: Role::Slave,
        nonce: Some(_),
        ..
    }) = raw.next()
    else {
        panic!("no HELLO with a nonce");
    };
    raw.send(0, Body::Challenge { nonce: [3; 32] });
    assert!(matches!(raw.next(), Some(Body::Auth { .. })));
    let welcome = Body::Welcome {
        epoch: 7,
        inventory: true,
        standby: false,
        lease_ms: 0,
        proof: Some([0xee; 32]),
    };
    raw.send(0, welcome);
    raw.expect_unauthorized_and_close();
    let log = cluster.wait_log("trusting", "wrong proof", 1, STARTUP);
    assert!(!log.contains("registered with master"), "{log}");
    assert!(!log.contains("dsm-slave ready"), "{log}");
    let secret = Secret::from_bytes(SECRET).unwrap();
    assert!(raw.sent.len() > 40 && raw.received.len() > 100);
    assert!(
        !secret.occurs_in(&raw.received),
        "the slave sent the secret"
    );
}

/// A raw connection that keeps every byte it sends and receives.
struct Raw {
    stream: TcpStream,
    rbuf: Vec<u8>,
    received: Vec<u8>,
    sent: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        Raw::from(TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}")))
    }

    fn from(stream: TcpStream) -> Raw {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a read timeout");
        Raw {
            stream,
            rbuf: Vec::new(),
            received: Vec::new(),
            sent: Vec::new(),
        }
    }

    fn send(&mut self, req_id: u64, body: Body) {
        let mut out = Vec::new();
        encode(&Frame::new(req_id, body), &mut out);
        self.stream.write_all(&out).expect("send a frame");
        self.sent.extend_from_slice(&out);
    }

    /// The next frame, or `None` at EOF (or inventory).
    fn next_frame(&mut self) -> Option<Frame> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((frame, used)) = decode(&self.rbuf).expect("well-formed frames") {
                self.rbuf.drain(..used);
                return Some(frame);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    self.received.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("nothing heard for 10 s")
                }
                Err(_) => return None,
            }
        }
    }

    fn next(&mut self) -> Option<Body> {
        self.next_frame().map(|f| f.body)
    }

    /// ERROR UNAUTHORIZED, then the peer closes the connection.
    fn expect_unauthorized_and_close(&mut self) {
        match self.next() {
            Some(Body::Error {
                code: ErrorCode::Unauthorized,
                ..
            }) => {}
            other => panic!("expected ERROR UNAUTHORIZED, got {other:?}"),
        }
        assert_eq!(self.next(), None, "the connection stayed open");
    }
}

//! The slave's link to its masters as a state machine, on the simulated network of `common`:
//! registering and serving, refusals and their log, master silence, connect failures and
//! hangs with their backoff, and the rule that nothing reaches the store before a trusted
//! WELCOME.

use std::time::{Duration, Instant};

use dsm_auth::Secret;
use dsm_slave::{CONNECT_TIMEOUT, GIVE_UP_AFTER, MAX_BACKOFF, MIN_BACKOFF};
use dsm_wire::{Body, ErrorCode, Frame, Role};

mod common;
use common::{addr, config, logged, proving, refusing, silent, welcoming, Listener, Net};

const SECRET: &[u8] = b"the cluster's shared secret, 32B";
const OTHER: &[u8] = b"some other cluster's secret, 32B";
const MS: Duration = Duration::from_millis(1);

fn key(bytes: &[u8]) -> Secret {
    Secret::from_bytes(bytes).unwrap()
}

fn store(req: u64, epoch: u64, version: u64, key: &str, value: &str) -> Frame {
    let (key, value) = (key.into(), value.into());
    let body = Body::Store {
        epoch,
        version,
        key,
        value,
    };
    Frame::new(req, body)
}

fn fetch(req: u64, epoch: u64, key: &str) -> Frame {
    let key = key.into();
    Frame::new(req, Body::Fetch { epoch, key })
}

/// The waits between one connect and the next, each less `extra` (the round trips before the
/// attempt failed), in ms.
fn waits(net: &Net, extra: Duration) -> Vec<u128> {
    let times: Vec<Instant> = net.connects.iter().map(|c| c.0).collect();
    times
        .windows(2)
        .map(|w| (w[1] - w[0] - extra).as_millis())
        .collect()
}

/// The doubling backoff, `n` waits long.
fn backoff(n: usize) -> Vec<u128> {
    let mut wait = MIN_BACKOFF;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(wait.as_millis());
        wait = (wait * 2).min(MAX_BACKOFF);
    }
    out
}

#[test]
fn registers_with_hello_then_serves_store_and_fetch() {
    let a = addr(7000);
    let mut net = Net::new(config(&[a], None));
    net.listen(a, welcoming(1, false));
    net.run_for(10 * MS);
    assert_eq!(net.connects, [(net.connects[0].0, a)]);
    let Body::Hello {
        role: Role::Slave,
        epoch: 0,
        ref id,
        boot: 42,
        nonce: None,
        limits: Some(limits),
    } = net.sent[0].1.body
    else {
        panic!("not a HELLO: {:?}", net.sent[0]);
    };
    assert_eq!(id, "s1");
    let want = (dsm_wire::DEFAULT_MAX_KEY, dsm_wire::DEFAULT_MAX_VALUE);
    assert_eq!((limits.max_key as usize, limits.max_value as usize), want);
    assert!(net.slave.registered());
    assert_eq!(net.ready, 1);
    assert_eq!(
        logged("registered with master (epoch 1), 0 keys held").len(),
        1
    );

    let ack = net.ask(store(1, 1, 5, "k", "v"));
    assert_eq!(ack, Some(Frame::new(1, Body::Ack { version: 5 })));
    let value = b"v".to_vec();
    let fetched = Body::Fetched { version: 5, value };
    assert_eq!(net.ask(fetch(2, 1, "k")), Some(Frame::new(2, fetched)));
    assert_eq!(
        net.ask(fetch(3, 1, "no")),
        Some(Frame::new(3, Body::NotFound))
    );
    // A master that PINGs is kept as long as it does.
    for req in 10..20 {
        net.run_for(500 * MS);
        assert_eq!(
            net.ask(Frame::new(req, Body::Ping)),
            Some(Frame::new(req, Body::Pong))
        );
    }
    assert_eq!(net.connects.len(), 1);
    assert!(net.closes.is_empty());
    assert_eq!(net.ready, 1);
    assert_eq!(net.slave.store().version_of(b"k"), Some(5));
}

/// A HELLO refused BAD_REQUEST (another live slave has this id, or the slave's limits are
/// below the master's) is retried for `GIVE_UP_AFTER`, then the slave gives up (the process
/// exits non-zero); other refusals are retried for good (above), and a WELCOME in between
/// starts the count again.
#[test]
fn a_hello_refused_as_a_bad_request_is_given_up_after_a_while() {
    let a = addr(7000);
    let mut net = Net::new(config(&[a], None));
    let why = "a slave with id 's1' is already connected from 127.0.0.1:9 (another process)";
    net.listen(a, refusing(ErrorCode::BadRequest, why));
    let start = net.now;
    assert!(net.run_until(Duration::from_secs(10), |n| n.gave_up.is_some()));
    let (at, said) = net.gave_up.clone().unwrap();
    assert!(at - start >= GIVE_UP_AFTER, "{:?}", at - start);
    assert!(
        at - start <= GIVE_UP_AFTER + MAX_BACKOFF + 10 * MS,
        "{:?}",
        at - start
    );
    assert!(said.contains(why), "{said}");
    assert!(
        net.connects.len() > 2,
        "retried first: {}",
        net.connects.len()
    );
    assert_eq!(logged("giving up").len(), 1);

    // Refused for a while, then WELCOMEd: the count starts again at the next refusal.
    let mut net = Net::new(config(&[a], None));
    net.listen(a, refusing(ErrorCode::BadRequest, why));
    net.run_for(GIVE_UP_AFTER - Duration::from_millis(500));
    net.listen(a, welcoming(1, false));
    assert!(net.run_until(Duration::from_secs(2), |n| n.slave.registered()));
    net.listen(a, refusing(ErrorCode::BadRequest, why));
    net.cut();
    net.run_for(GIVE_UP_AFTER - Duration::from_millis(500));
    assert!(
        net.gave_up.is_none(),
        "gave up on a count that a WELCOME reset"
    );
    assert!(net.run_until(Duration::from_secs(5), |n| n.gave_up.is_some()));
}

#[test]
fn a_refused_registration_is_retried_with_backoff_and_logged_once() {
    let a = addr(7000);
    let mut net = Net::new(config(&[a], None));
    let why = "this master requires the shared secret";
    net.listen(a, refusing(ErrorCode::Unauthorized, why));
    net.run_for(Duration::from_secs(9));
    // Each attempt: connect (1 ms), HELLO (1 ms), ERROR (1 ms), then the wait.
    let tries = net.connects.len();
    assert!(tries > 10, "{tries} attempts");
    assert_eq!(waits(&net, 3 * MS), backoff(tries - 1));
    assert_eq!(net.closes.len(), tries);
    let lines = logged("not registered");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0],
        format!("WARN not registered: the master refused us: UNAUTHORIZED: {why}; retrying")
    );
    assert_eq!(logged("connected to master").len(), 1, "a line per attempt");
    // The same reason again after 10 s, with a count.
    net.run_for(Duration::from_secs(2));
    let lines = logged("not registered");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].contains("more times since the last such line"),
        "{lines:?}"
    );
    assert!(!net.slave.registered());
    assert_eq!(net.ready, 0);
    assert!(
        net.gave_up.is_none(),
        "an UNAUTHORIZED refusal is retried for good"
    );

    // Once the master takes it, a later refusal is news again.
    net.listen(a, welcoming(1, false));
    assert!(net.run_until(Duration::from_secs(2), |n| n.slave.registered()));
    assert_eq!(logged("connected to master").len(), 1);
    net.listen(a, refusing(ErrorCode::Unauthorized, why));
    net.cut();
    net.run_for(Duration::from_millis(100));
    assert_eq!(logged("not registered").len(), 3);
    assert_eq!(logged("connected to master").len(), 2);
}

#[test]
fn a_silent_master_is_left_for_the_next_address() {
    let (a, b) = (addr(7000), addr(7002));
    let mut net = Net::new(config(&[a, b], None));
    net.listen(a, welcoming(1, false));
    net.listen(b, welcoming(2, true));
    net.run_for(10 * MS);
    assert!(net.slave.registered());
    net.ask(store(1, 1, 1, "k", "v"));
    for req in 2..6 {
        net.run_for(1000 * MS);
        net.ask(Frame::new(req, Body::Ping));
    }
    let last_heard = net.now; // when the last PING arrived (and was answered)
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.closes, [last_heard + Duration::from_millis(1500)]);
    let lost = logged("lost the master");
    assert_eq!(
        lost,
        ["WARN lost the master: no word from the master for 1500 ms; trying the next address"]
    );
    // The backoff started over at the WELCOME.
    assert_eq!(net.connects[1], (net.closes[0] + MIN_BACKOFF, b));
    assert!(net.slave.registered());
    assert_eq!(net.peer(), Some(b));
    assert_eq!(
        logged("registered with master (epoch 2), 1 keys held").len(),
        1
    );
    // B asked what we hold: nothing is dropped, and it hears about "k".
    assert_eq!(net.slave.store().version_of(b"k"), Some(1));
    let reported = net.sent.iter().any(|(_, f)| {
        matches!(&f.body, Body::Inventory { done: true, entries } if entries == &[(b"k".to_vec(), 1)])
    });
    assert!(reported, "the INVENTORY of k: {:?}", net.sent);
    assert_eq!(net.slave.store().epoch(), 2);
    assert_eq!(net.ready, 1, "the ready line is printed once");

    // Silence before the WELCOME counts as much: a master that takes the connection and
    // never answers the HELLO is left too.
    net.listen(a, silent());
    net.cut();
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.connects[2].1, a);
    assert_eq!(
        net.closes[1],
        net.connects[2].0 + MS + Duration::from_millis(1500)
    );
    assert!(logged("not registered: no word from the master for 1500 ms").len() == 1);
}

#[test]
fn failed_connects_go_round_the_addresses_with_a_backoff_reset_by_a_welcome() {
    let addrs = [addr(7000), addr(7002), addr(7004)];
    let mut net = Net::new(config(&addrs, None)); // nothing listens anywhere
    net.run_for(Duration::from_secs(6));
    let tries = net.connects.len();
    assert!(tries >= 10, "{tries} attempts");
    // Each attempt fails after one latency, then waits.
    assert_eq!(waits(&net, MS), backoff(tries - 1));
    for (i, (_, to)) in net.connects.iter().enumerate() {
        assert_eq!(*to, addrs[i % 3]);
    }
    assert_eq!(logged("cannot reach master").len(), tries);
    assert!(net.closes.is_empty(), "a failed connect needs no close");

    for at in addrs {
        net.listen(at, welcoming(1, false));
    }
    assert!(net.run_until(MAX_BACKOFF + 10 * MS, |n| n.slave.registered()));
    let first = net.connects.len();
    for at in addrs {
        net.listen(at, Listener::Refuse);
    }
    let cut_at = net.now;
    net.cut();
    net.run_for(Duration::from_millis(200));
    // The backoff started over at the WELCOME: 20 ms after the loss (heard one latency after
    // the cut), then 40, then 80.
    let after: Vec<Instant> = net.connects[first..].iter().map(|c| c.0).collect();
    assert_eq!(after[0], cut_at + MS + MIN_BACKOFF);
    assert_eq!(after[1] - after[0] - MS, 2 * MIN_BACKOFF);
    assert_eq!(after[2] - after[1] - MS, 4 * MIN_BACKOFF);
}

#[test]
fn a_connect_that_hangs_is_given_up_at_the_connect_deadline() {
    let (a, b) = (addr(7000), addr(7002));
    let mut net = Net::new(config(&[a, b], None));
    net.listen(a, Listener::Hang);
    net.listen(b, welcoming(1, false));
    let start = net.now;
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.closes, [start + CONNECT_TIMEOUT]);
    assert_eq!(
        net.connects,
        [(start, a), (start + CONNECT_TIMEOUT + MIN_BACKOFF, b)]
    );
    assert_eq!(
        logged("cannot reach master"),
        ["WARN cannot reach master 127.0.0.1:7000: no connection after 1000 ms"]
    );
    assert!(net.slave.registered());
}

#[test]
fn nothing_reaches_the_store_before_a_welcome() {
    let (a, b) = (addr(7000), addr(7002));
    let mut net = Net::new(config(&[a, b], None));
    // A peer that sends a STORE instead of answering the HELLO.
    net.listen(
        a,
        Listener::Accept(Box::new(|f| match f.body {
            Body::Hello { .. } => vec![store(1, 9, 9, "k", "forged")],
            _ => vec![],
        })),
    );
    net.listen(b, welcoming(1, false));
    net.run_for(50 * MS);
    assert!(net.slave.store().is_empty());
    assert_eq!(net.slave.store().epoch(), 1, "epoch 9 was never seen");
    let (to, error) = &net.sent[1];
    assert_eq!(*to, a);
    assert!(
        matches!(&error.body, Body::Error { code: ErrorCode::BadRequest, text }
            if text.contains("before WELCOME")),
        "{error:?}"
    );
    assert_eq!(net.closes.len(), 1);
    assert_eq!(net.peer(), Some(b));
    assert!(net.slave.registered());
    assert_eq!(
        net.ask(fetch(2, 1, "k")),
        Some(Frame::new(2, Body::NotFound))
    );
}

/// A large STORE is taken out of the connection with its buffer, which becomes the record
/// (`Slave::on_taken`, as the event loop hands it over): it is ACKed and fetched whole, a newer
/// one replaces it and an older one does not, and before a WELCOME it reaches no store.
#[test]
fn large_stores_kept_as_their_frames_are_served_like_any_other() {
    let big = |seed: u8| -> String {
        (0..100_000u32)
            .map(|i| char::from(b'a' + ((i as u8) ^ seed) % 26))
            .collect()
    };
    let (a, b) = (addr(7000), addr(7002));
    let mut net = Net::new(config(&[a, b], None));
    let forged = big(0);
    net.listen(
        a,
        Listener::Accept(Box::new(move |f| match f.body {
            Body::Hello { .. } => vec![store(1, 9, 9, "k", &forged)],
            _ => vec![],
        })),
    );
    net.listen(b, welcoming(1, false));
    net.run_for(50 * MS);
    assert!(net.slave.store().is_empty(), "the STORE before WELCOME");
    assert_eq!(net.slave.store().epoch(), 1);
    assert_eq!(net.peer(), Some(b));

    let fetched = |net: &mut Net, req: u64| match net.ask(fetch(req, 1, "k")).map(|f| f.body) {
        Some(Body::Fetched { version, value }) => (version, String::from_utf8(value).unwrap()),
        other => panic!("{other:?}"),
    };
    for (req, version, seed, held) in [(2, 5, 1, 5), (4, 7, 2, 7), (6, 6, 3, 7)] {
        let ack = net.ask(store(req, 1, version, "k", &big(seed)));
        let want = Frame::new(req, Body::Ack { version: held });
        assert_eq!(ack, Some(want));
        assert_eq!(
            fetched(&mut net, req + 1),
            (held, big(if held == 7 { 2 } else { seed }))
        );
    }
    // An older epoch is fenced off, large or not.
    let stale = net.ask(store(8, 0, 9, "k", &big(4))).unwrap();
    assert!(matches!(stale.body, Body::Error { .. }), "{stale:?}");
    assert_eq!(fetched(&mut net, 9), (7, big(2)));
}

/// A large STORE's record keeps the bytes read before its frame; at `--max-memory` that must
/// not turn away a STORE that fits as a copy: one as long as the value held always fits.
#[test]
fn at_the_memory_cap_a_large_store_as_long_as_the_value_held_still_fits() {
    let value = |fill: char| fill.to_string().repeat(200_000);
    let a = addr(7000);
    let registered = |max_memory: u64| {
        let mut cfg = config(&[a], None);
        cfg.max_memory = max_memory;
        let mut net = Net::new(cfg);
        net.listen(a, welcoming(1, false));
        net.run_for(10 * MS);
        assert!(net.slave.registered());
        net
    };
    // How much one such key takes, read 16 bytes after the buffer's start.
    let mut probe = registered(u64::MAX);
    probe.read_before = 16;
    probe.ask(store(1, 1, 1, "k", &value('a')));
    let used = probe.slave.store().memory_used() as u64;

    let mut net = registered(used);
    net.read_before = 16;
    let ack = net.ask(store(1, 1, 1, "k", &value('a')));
    assert_eq!(ack, Some(Frame::new(1, Body::Ack { version: 1 })));
    assert_eq!(
        net.slave.store().memory_used() as u64,
        used,
        "at the cap exactly"
    );
    // The same length, its frame 20,000 bytes into the buffer: kept as its frame it would
    // need those bytes more; copied in place it needs none.
    net.read_before = 20_000;
    let ack = net.ask(store(2, 1, 2, "k", &value('b')));
    assert_eq!(ack, Some(Frame::new(2, Body::Ack { version: 2 })));
    assert!(net.slave.store().memory_used() as u64 <= used);
    match net.ask(fetch(3, 1, "k")).map(|f| f.body) {
        Some(Body::Fetched {
            version: 2,
            value: v,
        }) => assert_eq!(v, value('b').into_bytes()),
        other => panic!("{other:?}"),
    }
    // A new key does not fit.
    let refused = net.ask(store(4, 1, 3, "other", &value('c'))).unwrap();
    assert!(
        matches!(
            &refused.body,
            Body::Error {
                code: ErrorCode::OutOfMemory,
                ..
            }
        ),
        "{refused:?}"
    );
}

#[test]
fn with_a_secret_a_strangers_welcome_cannot_wipe_the_store() {
    let (a, b) = (addr(7000), addr(7002));
    let mut net = Net::new(config(&[a, b], Some(key(SECRET))));
    net.listen(a, proving(key(SECRET), 1, false));
    net.listen(b, welcoming(5, true)); // no CHALLENGE, no proof
    net.run_for(10 * MS);
    assert!(net.slave.registered());
    net.ask(store(1, 1, 1, "k", "v"));
    net.cut();
    // To B, which WELCOMEs with a inventory and no proof; then back to A.
    net.run_for(100 * MS);
    assert_eq!(net.connects[1].1, b);
    assert!(net.slave.registered(), "back with A");
    assert_eq!(net.connects.len(), 3);
    assert_eq!(net.slave.store().len(), 1);
    assert_eq!(net.slave.store().epoch(), 1);
    let lines = logged("not registered");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("without asking us to authenticate"),
        "{lines:?}"
    );
    assert_eq!(net.ready, 1);
}

#[test]
fn with_a_secret_a_master_that_fails_its_proof_is_distrusted() {
    let a = addr(7000);
    let mut net = Net::new(config(&[a], Some(key(SECRET))));
    net.listen(a, proving(key(OTHER), 3, true));
    net.run_for(10 * MS);
    let bodies: Vec<&Body> = net.sent.iter().map(|(_, f)| &f.body).collect();
    assert!(
        matches!(bodies[0], Body::Hello { nonce: Some(_), .. }),
        "{bodies:?}"
    );
    assert!(matches!(bodies[1], Body::Auth { .. }), "{bodies:?}");
    assert!(
        matches!(
            bodies[2],
            Body::Error {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{bodies:?}"
    );
    assert_eq!(net.closes.len(), 1);
    assert!(!net.slave.registered());
    assert_eq!(net.ready, 0);
    assert_eq!(
        net.slave.store().epoch(),
        0,
        "the WELCOME's epoch was not taken"
    );
    let lines = logged("not registered");
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("wrong proof"), "{lines:?}");
    assert!(logged("registered with master").is_empty());

    // The right master is taken at the next attempt.
    net.listen(a, proving(key(SECRET), 3, false));
    net.run_for(30 * MS);
    assert!(net.slave.registered());
    assert_eq!(net.ready, 1);
    assert_eq!(net.slave.store().epoch(), 3);
}

/// A standby master: WELCOMEs every HELLO as a standby (the slave becomes its supporter).
fn standby(epoch: u64) -> Listener {
    Listener::Accept(Box::new(move |f| match f.body {
        Body::Hello { .. } => {
            let mut w = common::welcome(f.req_id, epoch, false, None);
            if let Body::Welcome { standby, .. } = &mut w.body {
                *standby = true;
            }
            vec![w]
        }
        _ => vec![],
    }))
}

fn takeover(req: u64, epoch: u64, voters: u16) -> Frame {
    let body = Body::Takeover {
        epoch,
        inventory: false,
        lease_ms: 400,
        id: "127.0.0.1:7003 127.0.0.1:7002".into(),
        voters,
    };
    Frame::new(req, body)
}

/// Its primary's STALE told the slave the cluster has 5 voters; a standby that counts 3 (it
/// never had the roster) asks for its vote and is refused, told 5; one that counts 5 gets it.
#[test]
fn a_vote_is_refused_to_a_standby_that_counts_fewer_voters_than_the_primary_did() {
    let (a, b) = (addr(7000), addr(7002));
    let mut net = Net::new(config(&[a, b], None));
    net.listen(a, welcoming(1, false));
    net.listen(b, standby(1));
    net.run_for(10 * MS);
    assert!(net.slave.registered());
    let stale = Body::Stale {
        gen: 1,
        voters: 5,
        ids: vec![],
    };
    assert_eq!(
        net.ask(Frame::new(1 << 62, stale)),
        Some(Frame::new(1 << 62, Body::Pong))
    );
    net.cut();
    assert!(
        net.run_until(Duration::from_secs(5), |n| n.slave.supporting()
            && n.peer() == Some(b)),
        "the slave did not come to the standby"
    );
    let refused = Body::Vote {
        granted: false,
        stale: false,
        voters: 5,
    };
    assert_eq!(net.ask(takeover(1, 2, 3)), Some(Frame::new(1, refused)));
    assert!(net.slave.supporting(), "still only a supporter");
    assert_eq!(logged("it counts 3 voters, our primary counted 5").len(), 1);
    let granted = Body::Vote {
        granted: true,
        stale: false,
        voters: 5,
    };
    assert_eq!(net.ask(takeover(2, 2, 5)), Some(Frame::new(2, granted)));
    assert!(net.slave.registered(), "serving the standby it voted for");
}

/// A slave that has not yet served a primary (just started) tries every master address before
/// it supports a standby (`dialer.rs`, the round): the standby first in its list is passed
/// over, and the primary after it registers it. When every address has been tried (the
/// primary it served is gone), a standby is supported at once.
#[test]
fn a_standby_met_before_every_master_was_tried_is_passed_over() {
    let (a, b) = (addr(7000), addr(7002));
    let mut net = Net::new(config(&[a, b], None));
    net.listen(a, standby(1));
    net.listen(b, welcoming(1, false));
    assert!(
        net.run_until(Duration::from_secs(1), |n| n.slave.registered()),
        "not registered with the primary"
    );
    assert_eq!(net.peer(), Some(b));
    assert_eq!(
        logged("is a standby (epoch 1); trying the other masters for a primary first").len(),
        1
    );
    assert!(
        logged("supporting it").is_empty(),
        "{:?}",
        logged("supporting")
    );
    // The primary at b is lost: a is then the only master not tried, and a standby there is
    // supported at once.
    net.cut();
    assert!(
        net.run_until(Duration::from_secs(2), |n| n.slave.supporting()),
        "the standby was not supported once the primary was lost"
    );
    assert_eq!(net.peer(), Some(a));
}

/// A primary that drops the slave (an ACK or PING it did not answer in time) says so before it
/// closes (`dsm_wire::DROPPED`): the slave registers with it again at once instead of looking
/// for another master, where a standby would hold it as its supporter for seconds. A close
/// without that word (a master that died) still sends it to the next address.
#[test]
fn a_slave_dropped_by_its_primary_registers_with_it_again() {
    let (a, b) = (addr(7000), addr(7002));
    let mut net = Net::new(config(&[a, b], None));
    net.listen(a, welcoming(1, false));
    net.listen(b, standby(1));
    net.run_for(10 * MS);
    assert!(net.slave.registered());
    let text = format!("{}no ACK within 200 ms; register again", dsm_wire::DROPPED);
    net.send(Frame::new(0, Body::error(ErrorCode::Unavailable, text)));
    net.run_for(MS);
    net.cut();
    let cut = net.now;
    assert!(
        net.run_until(Duration::from_secs(1), |n| n.slave.registered()),
        "not registered again"
    );
    assert_eq!(net.peer(), Some(a), "back with the master that dropped it");
    assert_eq!(net.connects.last().map(|c| c.1), Some(a));
    assert!(net.connects.last().unwrap().0 <= cut + Duration::from_millis(50));
    assert_eq!(logged("the master dropped us").len(), 1);
    // Lost without a word: the next address (the standby, supported: a was tried).
    net.cut();
    assert!(
        net.run_until(Duration::from_secs(2), |n| n.slave.supporting()),
        "a master lost without a word sends the slave on"
    );
    assert_eq!(net.peer(), Some(b));
}

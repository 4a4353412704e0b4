//! What the client library resends after a broken connection, a silent master or a
//! NOT_PRIMARY, against fake masters on loopback: READs and exactly-once writes always (the
//! latter marked as sent again, with the same numbers), a plain WRITE only if no master can
//! have taken it.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::thread::{self, JoinHandle};
use std::time::Duration;

mod common;
use common::next_frame;

use dsm_client::{Client, ConnectOptions, Error};
use dsm_wire::{encode, naming_primary, Body, ErrorCode, Frame, RECOVERING};

/// How a fake master treats the connection after HELLO.
#[derive(Clone, Copy)]
enum Fake {
    /// Read one request, then close without answering (a master killed mid-request).
    TakeAndDie,
    /// Answer every WRITE OK and every READ with the value "v".
    Serve,
    /// Close right after answering HELLO (a master that died while the client was idle).
    WelcomeAndDie,
    /// Read requests (PINGs too) and never answer, keeping the connection (a frozen master).
    Freeze,
    /// Answer every request NOT_PRIMARY naming this address as the primary.
    NotPrimary(SocketAddr),
    /// Answer the first N writes UNAVAILABLE (a master still recovering, its text without
    /// the `dsm_wire::RECOVERING` mark), then OK.
    Recovering(usize),
    /// Answer the first N requests UNAVAILABLE saying `dsm_wire::RECOVERING`, then serve.
    Recovers(usize),
}

/// A fake master on port 0 serving one connection; the thread returns the requests it read.
fn fake_master(mode: Fake) -> (SocketAddr, JoinHandle<Vec<Body>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            let Some(frame) = next_frame(&mut s, &mut buf) else {
                return seen;
            };
            let reply = match (&frame.body, mode) {
                (Body::Hello { .. }, _) => Body::Welcome {
                    epoch: 1,
                    inventory: false,
                    standby: false,
                    lease_ms: 0,
                    proof: None,
                },
                (_, Fake::TakeAndDie | Fake::WelcomeAndDie) => {
                    seen.push(frame.body);
                    return seen;
                }
                (_, Fake::Freeze) => {
                    seen.push(frame.body);
                    continue;
                }
                (_, Fake::NotPrimary(addr)) => {
                    Body::error(ErrorCode::NotPrimary, naming_primary(addr, "a standby"))
                }
                (Body::Write { .. } | Body::WriteOnce { .. }, Fake::Recovering(n))
                    if seen.len() < n =>
                {
                    Body::error(ErrorCode::Unavailable, "recovering: 1 of 3 slaves reported")
                }
                (_, Fake::Recovers(n)) if seen.len() < n => Body::error(
                    ErrorCode::Unavailable,
                    format!("{RECOVERING}waiting for 1 slaves to report what they hold"),
                ),
                (
                    Body::Write { .. } | Body::WriteOnce { .. },
                    Fake::Serve | Fake::Recovering(_) | Fake::Recovers(_),
                ) => Body::Ok,
                (Body::Once { .. }, Fake::Serve | Fake::Recovering(_) | Fake::Recovers(_)) => {
                    Body::Versioned {
                        version: 7,
                        value: b"3".to_vec(),
                    }
                }
                (_, Fake::Serve | Fake::Recovering(_) | Fake::Recovers(_)) => Body::Value {
                    value: b"v".to_vec(),
                },
            };
            if !matches!(frame.body, Body::Hello { .. }) {
                seen.push(frame.body.clone());
            }
            let mut out = Vec::new();
            encode(&Frame::new(frame.req_id, reply), &mut out);
            if s.write_all(&out).is_err() || matches!(mode, Fake::WelcomeAndDie) {
                return seen;
            }
        }
    });
    (addr, handle)
}

fn plain_writes(masters: &[SocketAddr]) -> Client {
    let opts = ConnectOptions {
        exactly_once: false,
        ..ConnectOptions::default()
    };
    Client::connect_with_options(masters, opts).unwrap()
}

#[test]
fn a_plain_write_whose_connection_breaks_after_sending_is_not_sent_again() {
    let (first, first_seen) = fake_master(Fake::TakeAndDie);
    let (second, second_seen) = fake_master(Fake::Serve);
    let mut c = plain_writes(&[first, second]);
    match c.write(b"k", b"once") {
        Err(Error::Unknown(why)) => assert!(why.contains(&first.to_string()), "{why}"),
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
    assert_eq!(
        first_seen.join().unwrap().len(),
        1,
        "the first master took the write"
    );
    // The next call goes to the second master; it never saw the first write.
    assert_eq!(c.read(b"k").unwrap(), Some(b"v".to_vec()));
    drop(c);
    let seen = second_seen.join().unwrap();
    assert_eq!(seen, vec![Body::Read { key: b"k".to_vec() }]);
}

#[test]
fn a_read_whose_connection_breaks_is_sent_again() {
    let (first, _) = fake_master(Fake::TakeAndDie);
    let (second, _) = fake_master(Fake::Serve);
    let mut c = Client::connect_with_timeout(&[first, second], Duration::from_secs(5)).unwrap();
    assert_eq!(c.read(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(c.master(), second);
}

#[test]
fn a_plain_write_is_sent_to_the_next_master_when_the_connection_was_already_closed() {
    let (first, first_seen) = fake_master(Fake::WelcomeAndDie);
    let (second, second_seen) = fake_master(Fake::Serve);
    let mut c = plain_writes(&[first, second]);
    // The first master dies while the client is idle; its close arrives before the next call.
    assert!(first_seen.join().unwrap().is_empty());
    thread::sleep(Duration::from_millis(100));
    c.write(b"k", b"once").unwrap();
    assert_eq!(c.master(), second);
    drop(c);
    assert_eq!(
        second_seen.join().unwrap(),
        vec![Body::Write {
            key: b"k".to_vec(),
            value: b"once".to_vec()
        }]
    );
}

/// The write's numbers, and whether it says it was sent before.
fn once_of(body: &Body) -> (u64, u64, u64, bool) {
    match body {
        Body::WriteOnce { id, resent_ms, .. } | Body::Once { id, resent_ms, .. } => {
            (id.client, id.seq, id.acked, *resent_ms > 0)
        }
        other => panic!("expected a WRITE_ONCE, got {other:?}"),
    }
}

#[test]
fn an_exactly_once_write_whose_connection_breaks_is_sent_again_with_the_same_numbers() {
    let (first, first_seen) = fake_master(Fake::TakeAndDie);
    let (second, second_seen) = fake_master(Fake::Serve);
    let mut c = Client::connect_with_timeout(&[first, second], Duration::from_secs(5)).unwrap();
    c.write(b"k", b"once").unwrap();
    c.write(b"k", b"twice").unwrap();
    drop(c);
    let first_seen = first_seen.join().unwrap();
    let second_seen = second_seen.join().unwrap();
    assert_eq!(first_seen.len(), 1);
    assert_eq!(second_seen.len(), 2);
    let (client, seq, acked, resent) = once_of(&first_seen[0]);
    assert!(!resent, "the first send is not marked as sent again");
    assert_eq!((seq, acked), (1, 1));
    assert_eq!(once_of(&second_seen[0]), (client, 1, 1, true));
    // The next write has the next number, and says the first was answered.
    assert_eq!(once_of(&second_seen[1]), (client, 2, 2, false));
}

/// A resend refused UNAVAILABLE by a recovering master says nothing of the first send (the
/// master did not look at what the slaves recorded): the client asks again until it is
/// answered, rather than report a failure of a write that may have happened.
#[test]
fn a_resend_refused_by_a_recovering_master_is_asked_again_not_failed() {
    let (first, first_seen) = fake_master(Fake::TakeAndDie);
    let (second, second_seen) = fake_master(Fake::Recovering(3));
    let mut c = Client::connect_with_timeout(&[first, second], Duration::from_secs(5)).unwrap();
    c.write(b"k", b"once")
        .expect("answered OK once the master has recovered");
    drop(c);
    assert_eq!(first_seen.join().unwrap().len(), 1);
    let second_seen = second_seen.join().unwrap();
    assert_eq!(second_seen.len(), 4, "three refusals, then the answer");
    let (client, seq, _, _) = once_of(&second_seen[0]);
    for body in &second_seen {
        assert_eq!(
            once_of(body),
            (client, seq, 1, true),
            "the same write, marked resent"
        );
    }
}

/// A first send refused UNAVAILABLE (not saying the master recovers) did not happen: that
/// refusal is the answer.
#[test]
fn a_first_send_refused_unavailable_is_a_definite_failure() {
    let (addr, seen) = fake_master(Fake::Recovering(1));
    let mut c = Client::connect_with_timeout(&[addr], Duration::from_secs(5)).unwrap();
    match c.write(b"k", b"v") {
        Err(Error::Server {
            code: ErrorCode::Unavailable,
            ..
        }) => {}
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    drop(c);
    assert_eq!(seen.join().unwrap().len(), 1, "not sent again");
}

#[test]
fn an_exactly_once_incr_whose_connection_breaks_is_sent_again_in_once_with_the_same_numbers() {
    let (first, first_seen) = fake_master(Fake::TakeAndDie);
    let (second, second_seen) = fake_master(Fake::Serve);
    let mut c = Client::connect_with_timeout(&[first, second], Duration::from_secs(5)).unwrap();
    assert_eq!(c.incr(b"k", 3).unwrap(), (3, 7));
    drop(c);
    let first_seen = first_seen.join().unwrap();
    let second_seen = second_seen.join().unwrap();
    let (client, seq, acked, resent) = once_of(&first_seen[0]);
    assert!(!resent);
    assert_eq!(once_of(&second_seen[0]), (client, seq, acked, true));
    let incr = Body::Incr {
        key: b"k".to_vec(),
        delta: 3,
    };
    for body in [&first_seen[0], &second_seen[0]] {
        assert!(
            matches!(body, Body::Once { inner, .. } if **inner == incr),
            "{body:?}"
        );
    }
}

#[test]
fn a_silent_master_is_left_within_two_probe_intervals_not_the_deadline() {
    let (first, first_seen) = fake_master(Fake::Freeze);
    let (second, second_seen) = fake_master(Fake::Serve);
    let opts = ConnectOptions {
        timeout: Duration::from_secs(30),
        probe: Duration::from_millis(100),
        ..ConnectOptions::default()
    };
    let mut c = Client::connect_with_options(&[first, second], opts).unwrap();
    // Not a timing test: with a 30 s deadline, only leaving on the probe gets an answer at all
    // before the frozen master's fake gives up (10 s) and the test fails.
    c.write(b"k", b"v").unwrap();
    assert_eq!(c.master(), second);
    drop(c);
    let frozen = first_seen.join().unwrap();
    assert!(matches!(frozen[0], Body::WriteOnce { .. }), "{frozen:?}");
    assert!(
        frozen.contains(&Body::Ping),
        "the silent master was PINGed: {frozen:?}"
    );
    let seen = second_seen.join().unwrap();
    assert!(once_of(&seen[0]).3, "sent again, and marked so");
}

#[test]
fn a_not_primary_that_names_the_primary_sends_the_client_there() {
    let (primary, primary_seen) = fake_master(Fake::Serve);
    let (standby, _) = fake_master(Fake::NotPrimary(primary));
    // Only the standby is given: the primary's address comes from its answer.
    let mut c = Client::connect_with_timeout(&[standby], Duration::from_secs(5)).unwrap();
    assert_eq!(c.read(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(c.master(), primary);
    drop(c);
    assert_eq!(
        primary_seen.join().unwrap(),
        vec![Body::Read { key: b"k".to_vec() }]
    );
}

/// A master that says it is recovering took nothing: the client asks again (a READ and a
/// plain WRITE alike) and the caller sees the answer that comes once it serves.
#[test]
fn requests_refused_by_a_master_saying_it_recovers_are_asked_again() {
    let (addr, seen) = fake_master(Fake::Recovers(3));
    let mut c = plain_writes(&[addr]);
    c.write(b"k", b"v").expect("OK once the master serves");
    assert_eq!(c.read(b"k").unwrap(), Some(b"v".to_vec()));
    drop(c);
    let seen = seen.join().unwrap();
    assert_eq!(
        seen.len(),
        5,
        "three refusals, the write, the read: {seen:?}"
    );
    assert!(seen[..4].iter().all(|b| matches!(b, Body::Write { .. })));
}

/// Until the deadline: then the refusal is the answer (UNAVAILABLE, definite), not TIMEOUT.
#[test]
fn a_master_that_recovers_past_the_deadline_is_answered_unavailable_not_timeout() {
    let (addr, seen) = fake_master(Fake::Recovers(usize::MAX));
    let opts = ConnectOptions {
        exactly_once: false,
        timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    };
    let mut c = Client::connect_with_options(&[addr], opts).unwrap();
    match c.write(b"k", b"v") {
        Err(Error::Server {
            code: ErrorCode::Unavailable,
            text,
        }) => assert!(text.starts_with(RECOVERING), "{text}"),
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    drop(c);
    assert!(seen.join().unwrap().len() > 1, "asked again meanwhile");
}

/// A standby that has not yet heard its primary died names it in every NOT_PRIMARY. The
/// client, sent to the dead master (nothing listens), must not be sent back and forth between
/// the two until its deadline: it passes over a name it has just found dead and tries the
/// next master, where the new primary serves.
#[test]
fn a_not_primary_naming_a_dead_master_does_not_keep_the_client_from_the_next_one() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // A standby that answers NOT_PRIMARY naming the dead master, on every connection.
    let standby = TcpListener::bind("127.0.0.1:0").unwrap();
    let standby_addr = standby.local_addr().unwrap();
    thread::spawn(move || {
        for s in standby.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                let mut buf = Vec::new();
                while let Some(frame) = next_frame(&mut s, &mut buf) {
                    let reply = match frame.body {
                        Body::Hello { .. } => Body::Welcome {
                            epoch: 1,
                            inventory: false,
                            standby: false,
                            lease_ms: 0,
                            proof: None,
                        },
                        _ => Body::error(ErrorCode::NotPrimary, naming_primary(dead, "a standby")),
                    };
                    let mut out = Vec::new();
                    encode(&Frame::new(frame.req_id, reply), &mut out);
                    if s.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let (primary, _) = fake_master(Fake::Serve);
    let mut c =
        Client::connect_with_timeout(&[dead, standby_addr, primary], Duration::from_secs(3))
            .unwrap();
    c.write(b"k", b"v")
        .unwrap_or_else(|e| panic!("the WRITE never reached the primary: {e}"));
    assert_eq!(c.master(), primary);
}

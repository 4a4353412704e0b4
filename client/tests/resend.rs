//! What the client library resends after a broken connection, against fake masters on
//! loopback: READs always, a WRITE only if no master can have taken it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use dsm_client::{Client, Error};
use dsm_wire::{decode, encode, Body, Frame};

/// How a fake master treats the connection after HELLO.
#[derive(Clone, Copy)]
enum Fake {
    /// Read one request, then close without answering (a master killed mid-request).
    TakeAndDie,
    /// Answer every WRITE OK and every READ with the value "v".
    Serve,
    /// Close right after answering HELLO (a master that died while the client was idle).
    WelcomeAndDie,
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
                (Body::Write { .. }, Fake::Serve) => Body::Ok,
                (_, Fake::Serve) => Body::Value {
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

fn next_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Frame> {
    loop {
        if let Ok(Some((frame, used))) = decode(buf) {
            buf.drain(..used);
            return Some(frame);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn a_write_whose_connection_breaks_after_sending_is_not_sent_again() {
    let (first, first_seen) = fake_master(Fake::TakeAndDie);
    let (second, second_seen) = fake_master(Fake::Serve);
    let mut c = Client::connect_with_timeout(&[first, second], Duration::from_secs(5)).unwrap();
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
fn a_write_is_sent_to_the_next_master_when_the_connection_was_already_closed() {
    let (first, first_seen) = fake_master(Fake::WelcomeAndDie);
    let (second, second_seen) = fake_master(Fake::Serve);
    let mut c = Client::connect_with_timeout(&[first, second], Duration::from_secs(5)).unwrap();
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

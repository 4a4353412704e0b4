//! What a call answers when every master it reaches refuses with NOT_PRIMARY until its
//! deadline: the refusal, whichever step the deadline falls in (the request, or the HELLO
//! of the reconnect after a refusal), never a bare TIMEOUT that hides what the masters said.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

mod common;
use common::next_frame;

use dsm_client::{Client, Error};
use dsm_wire::{encode, Body, ErrorCode, Frame};

/// A standby that WELCOMEs each connection after `hello_delay` and refuses every request
/// with NOT_PRIMARY; it serves connections until the test ends.
fn refusing_master(hello_delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { return };
            thread::spawn(move || serve(s, hello_delay));
        }
    });
    addr
}

fn serve(mut s: TcpStream, hello_delay: Duration) {
    let mut buf = Vec::new();
    loop {
        let Some(frame) = next_frame(&mut s, &mut buf) else {
            return;
        };
        let reply = match frame.body {
            Body::Hello { .. } => {
                thread::sleep(hello_delay);
                Body::Welcome {
                    epoch: 1,
                    inventory: false,
                    standby: false,
                    lease_ms: 0,
                    proof: None,
                }
            }
            _ => Body::error(ErrorCode::NotPrimary, "this is a standby master"),
        };
        let mut out = Vec::new();
        encode(&Frame::new(frame.req_id, reply), &mut out);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// Each HELLO takes 300 ms and the call 500: the first refusal comes at once, the reconnect
/// after it is WELCOMEd at about 320 ms and refused again, and the deadline falls in the
/// next reconnect's HELLO.
#[test]
fn a_deadline_that_falls_in_a_reconnect_after_a_refusal_answers_the_refusal() {
    let master = refusing_master(Duration::from_millis(300));
    let mut c = Client::connect_with_timeout(&[master], Duration::from_millis(500)).unwrap();
    match c.write(b"k", b"v") {
        Err(Error::Server {
            code: ErrorCode::NotPrimary,
            text,
        }) => assert!(text.contains("standby"), "{text}"),
        other => panic!("expected the masters' NOT_PRIMARY, got {other:?}"),
    }
}

/// A master that refuses every HELLO as a master with a secret refuses one without it.
fn secret_refusing_master() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                let Some(frame) = next_frame(&mut s, &mut Vec::new()) else {
                    return;
                };
                let reply = Body::error(ErrorCode::Unauthorized, "this master requires the secret");
                let mut out = Vec::new();
                encode(&Frame::new(frame.req_id, reply), &mut out);
                let _ = s.write_all(&out);
            });
        }
    });
    addr
}

/// One master refuses the secret and the other cannot be reached: the refusal is not the
/// answer of every master (it used to be, naming the one master twice), and what each said
/// is in the error.
#[test]
fn a_refusal_by_one_master_of_two_is_not_taken_for_all_of_them() {
    let refusing = secret_refusing_master();
    let nobody = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    match Client::connect_with_timeout(&[refusing, nobody], Duration::from_millis(500)) {
        Err(Error::Unreachable(why)) => {
            assert!(
                why.contains(&format!("{refusing}: UNAUTHORIZED"))
                    && why.contains(&nobody.to_string()),
                "{why}"
            );
        }
        Err(e) => panic!("expected no master reachable, naming both, got {e}"),
        Ok(_) => panic!("connected to a master that refuses every HELLO"),
    }
}

//! Both sides of the handshake fed arbitrary frames: the connecting side
//! ([`dsm_auth::Handshake`], as slaves, standbys and clients run it) with and without a secret,
//! and the master's side, on connections that are new, or that a real peer has just
//! authenticated (so that what follows registration is reached too).

use std::time::Instant;

use dsm_auth::{Handshake, Step};
use dsm_master::Config;
use dsm_wire::{decode_borrowed, Body, Role, DEFAULT_MAX_FRAME};

use super::master_side::{secret, Driven};
use super::Input;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    if mode & 1 == 0 {
        connecting_side(mode, &mut input);
    } else {
        master_side(mode, &mut input);
    }
}

fn role(bits: u8) -> Role {
    match bits % 3 {
        0 => Role::Client,
        1 => Role::Slave,
        _ => Role::Backup,
    }
}

/// The peer's state machine takes the master's frames until it is welcomed, refused or
/// gives up. Without the secret's proofs (which a fuzzer cannot make) a peer with a secret
/// is never welcomed.
fn connecting_side(mode: u8, input: &mut Input<'_>) {
    let key = secret();
    let with_secret = mode & 2 != 0;
    let req = u64::from(input.byte());
    let Ok((mut hs, hello)) = Handshake::start(
        with_secret.then_some(&key),
        req,
        role(mode >> 2),
        u64::from(input.byte()),
        "s1".into(),
        9,
    ) else {
        return;
    };
    assert!(matches!(hello.body, Body::Hello { .. }), "{hello:?}");
    let mut rest = input.rest();
    while let Ok(Some((decoded, used))) = decode_borrowed(rest, DEFAULT_MAX_FRAME) {
        rest = &rest[used..];
        let frame = decoded.into_frame();
        let sent = frame.clone();
        match hs.on_frame(frame) {
            Step::Send(reply) => {
                assert!(with_secret, "AUTH without a secret, after {sent:?}");
                assert!(matches!(reply.body, Body::Auth { .. }), "{reply:?}");
                assert_eq!(reply.req_id, req);
            }
            Step::Welcomed(terms) => {
                assert!(!with_secret, "a peer with a secret welcomed by {sent:?}");
                assert!(
                    matches!(sent.body, Body::Welcome { epoch, .. } if epoch == terms.epoch),
                    "welcomed by {sent:?}"
                );
                return;
            }
            Step::Refused { .. } => {
                assert!(
                    matches!(sent.body, Body::Error { .. }),
                    "refused by {sent:?}"
                );
                return;
            }
            Step::Distrust { reply, .. } => {
                assert_eq!(reply.req_id, req);
                assert!(matches!(reply.body, Body::Error { .. }), "{reply:?}");
                return;
            }
        }
    }
}

/// A master, with or without a secret (and requiring clients to prove it or not), takes
/// bytes on up to four connections. Commands, one byte each then their arguments:
/// bytes on a connection, a real peer's handshake on one, a close, time passing.
fn master_side(mode: u8, input: &mut Input<'_>) {
    let cfg = Config {
        secret: (mode & 2 != 0).then(secret),
        require_client_auth: mode & 4 != 0,
        discover: std::time::Duration::ZERO,
        ..Config::default()
    };
    let mut d = Driven::new(cfg, Instant::now());
    while !input.is_empty() {
        let cmd = input.byte();
        let conn = (cmd & 3) as usize;
        match (cmd >> 2) & 3 {
            0 | 1 => {
                d.connect(conn);
                let bytes = input.long_chunk();
                d.receive(conn, bytes);
            }
            2 => {
                let with_secret = cmd & 0x10 != 0;
                let id = format!("s{}", cmd >> 6);
                d.authenticate(conn, role(cmd >> 5), &id, with_secret);
            }
            _ if cmd & 0x10 != 0 => d.close(conn),
            _ => d.advance(u64::from(input.u16())),
        }
    }
    d.quiesce();
}

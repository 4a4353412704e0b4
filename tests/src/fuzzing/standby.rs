//! The standby master's SYNC/snapshot apply path: a backup links to a real primary (the real
//! handshake, with or without the secret, and the real snapshot), then takes arbitrary frames
//! on that link as if the primary sent them, alongside bytes from strangers on its own
//! connections and time passing (so that a takeover on what the frames left is reached too).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_master::{Config, ConnId};

use super::master_side::{secret, Driven};
use super::Input;

/// The backup's link to the primary, and the primary's end of it.
const LINK: ConnId = 0;
const AT_PRIMARY: ConnId = 0;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let with_secret = mode & 1 != 0;
    let (mut primary, mut backup) = pair(with_secret, Instant::now());
    attach(&mut backup, &mut primary);
    while !input.is_empty() {
        let cmd = input.byte();
        match cmd & 3 {
            0 | 1 => {
                let bytes = input.long_chunk();
                backup.receive(LINK, bytes);
                backup.take_inbox(LINK);
            }
            2 => {
                let conn = 1 + (cmd >> 2) as usize % 3;
                backup.connect(conn);
                let bytes = input.long_chunk();
                backup.receive(conn, bytes);
            }
            _ if cmd & 4 != 0 => backup.close(LINK),
            _ => {
                let ms = u64::from(input.u16());
                primary.advance(ms);
                backup.advance(ms);
                if !backup.conns.contains_key(&LINK) {
                    attach(&mut backup, &mut primary);
                }
            }
        }
    }
    backup.quiesce();
}

/// A primary and its backup (the secret on both, or on neither), the link not open yet.
pub(super) fn pair(with_secret: bool, now: Instant) -> (Driven, Driven) {
    let base = Config {
        secret: with_secret.then(secret),
        discover: Duration::ZERO,
        ..Config::default()
    };
    let primary = Config {
        listen: addr(7000),
        heartbeat: addr(7001),
        ..base.clone()
    };
    let backup = Config {
        listen: addr(7002),
        heartbeat: addr(7003),
        backup_of: Some(addr(7001)),
        ..base
    };
    (Driven::new(primary, now), Driven::new(backup, now))
}

/// Open the backup's link if it wants one and relay the real exchange with the primary
/// (HELLO, any CHALLENGE and AUTH, WELCOME, the snapshot and its SYNC_ACK) until quiet.
pub(super) fn attach(backup: &mut Driven, primary: &mut Driven) {
    if !backup.open_link(LINK) {
        return;
    }
    primary.close(AT_PRIMARY);
    primary.connect(AT_PRIMARY);
    relay(backup, primary);
}

/// Carry frames both ways on the link until neither side has more.
pub(super) fn relay(backup: &mut Driven, primary: &mut Driven) {
    for _ in 0..8 {
        let up = backup.take_inbox(LINK);
        let down = primary.take_inbox(AT_PRIMARY);
        if up.is_empty() && down.is_empty() {
            return;
        }
        for f in &up {
            primary.send_frame(AT_PRIMARY, f);
        }
        for f in &down {
            backup.send_frame(LINK, f);
        }
    }
}

//! The master's connections and who is at the other end of each: not yet known (HELLO due),
//! mid-handshake, a client, a slave, the backup, or the link this master opened to a primary.
//! Closing a peer happens here and only here: it is forgotten first, then closed.

use dsm_wire::{Body, ErrorCode};
use log::warn;

use crate::idmap::ConnMap;
use crate::keymap::SlaveIdx;
use crate::outbox::{ConnId, Outbox};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Connected, HELLO not yet seen.
    New,
    /// Sent a HELLO with a nonce and got our CHALLENGE: its AUTH is due.
    Challenged,
    Client,
    Slave(SlaveIdx),
    /// A slave supporting this standby (`ha/election.rs`).
    Supporter,
    Backup,
    /// The link this master opened to the primary's heartbeat socket.
    Primary,
}

pub(crate) struct PeerState {
    pub kind: Peer,
    /// Distinguishes successive connections that reuse one `ConnId` (for HELLO deadlines).
    pub serial: u64,
    pub addr: String,
}

#[derive(Default)]
pub(crate) struct Peers {
    map: ConnMap<PeerState>,
    serial: u64,
    /// How many peers are [`Peer::Client`] (`--max-conns` caps them).
    clients: usize,
}

impl Peers {
    /// A new connection of `kind` from `addr`; returns its serial.
    pub fn add(&mut self, conn: ConnId, addr: String, kind: Peer) -> u64 {
        self.serial += 1;
        let serial = self.serial;
        let old = self.map.insert(conn, PeerState { kind, serial, addr });
        self.count(old.map(|p| p.kind), Some(kind));
        serial
    }

    /// Keep [`Peers::clients`] as a peer's kind goes from `was` to `now`.
    fn count(&mut self, was: Option<Peer>, now: Option<Peer>) {
        if was == Some(Peer::Client) {
            self.clients -= 1;
        }
        if now == Some(Peer::Client) {
            self.clients += 1;
        }
    }

    /// How many connections are admitted clients.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// The oldest connection that has not finished its HELLO (the first to give way when
    /// every connection slot is taken).
    pub fn oldest_unidentified(&self) -> Option<ConnId> {
        self.map
            .iter()
            .filter(|(_, p)| matches!(p.kind, Peer::New | Peer::Challenged))
            .min_by_key(|(_, p)| p.serial)
            .map(|(conn, _)| conn)
    }

    pub fn kind(&self, conn: ConnId) -> Option<Peer> {
        self.map.get(&conn).map(|p| p.kind)
    }

    pub fn set_kind(&mut self, conn: ConnId, kind: Peer) {
        let Some(p) = self.map.get_mut(&conn) else {
            return;
        };
        let was = std::mem::replace(&mut p.kind, kind);
        self.count(Some(was), Some(kind));
    }

    pub fn addr(&self, conn: ConnId) -> &str {
        self.map.get(&conn).map_or("", |p| p.addr.as_str())
    }

    /// Open connections by kind of peer, for `/metrics`.
    pub fn count_by_kind(&self) -> [(&'static str, u64); 5] {
        let mut n = [
            ("new", 0),
            ("client", 0),
            ("slave", 0),
            ("supporter", 0),
            ("master", 0),
        ];
        for p in self.map.values() {
            let i = match p.kind {
                Peer::New | Peer::Challenged => 0,
                Peer::Client => 1,
                Peer::Slave(_) => 2,
                Peer::Supporter => 3,
                Peer::Backup | Peer::Primary => 4,
            };
            n[i].1 += 1;
        }
        n
    }

    /// The event loop closed the connection: forget it, and say who it was.
    pub fn closed(&mut self, conn: ConnId) -> Option<Peer> {
        let kind = self.map.remove(&conn).map(|p| p.kind);
        self.count(kind, None);
        kind
    }

    /// Forget the peer and have the event loop close its connection. A connection already
    /// forgotten is left alone: its id may belong to a new connection by now.
    pub fn close(&mut self, conn: ConnId, out: &mut Outbox) -> Option<Peer> {
        let kind = self.closed(conn)?;
        out.close(conn);
        Some(kind)
    }

    /// Answer `req` with an ERROR saying why, then close.
    pub fn refuse(
        &mut self,
        conn: ConnId,
        req: u64,
        code: ErrorCode,
        text: String,
        out: &mut Outbox,
    ) {
        warn!("closing connection {conn}: {text}");
        out.send(conn, req, Body::error(code, text));
        self.close(conn, out);
    }

    /// The HELLO deadline of the connection that had `serial` passed: close it if it is still
    /// that connection and has not finished its HELLO.
    pub fn hello_deadline(&mut self, conn: ConnId, serial: u64, out: &mut Outbox) {
        let waiting = self
            .map
            .get(&conn)
            .is_some_and(|p| p.serial == serial && matches!(p.kind, Peer::New | Peer::Challenged));
        if waiting {
            warn!("connection {conn} did not finish its HELLO in time; closing it");
            self.close(conn, out);
        }
    }
}

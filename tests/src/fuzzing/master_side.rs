//! A master state machine driven as its event loop drives it, for the harnesses: bytes arrive
//! on connections and are decoded with `decode_borrowed` (a bad frame closes the connection,
//! as `server.rs` does), what the master sends is encoded, and its closes are obeyed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dsm_auth::{Handshake, Secret, Step};
use dsm_master::{Config, ConnId, Master, Out};
use dsm_wire::{decode_borrowed, Frame, Role};

/// The longest time one step of a harness lets pass: past every timeout but the ones counted
/// in minutes, which no harness waits for.
const MAX_STEP_MS: u64 = 8_000;

pub const SECRET: &[u8] = b"the fuzzed cluster's secret, 32B";

pub fn secret() -> Secret {
    Secret::from_bytes(SECRET).expect("not empty")
}

/// One connection as the master's event loop holds it.
#[derive(Default)]
pub struct Conn {
    /// Bytes read and not yet decoded.
    buf: Vec<u8>,
    /// Frames the master sent on it, kept when the harness speaks for the other end.
    pub inbox: Vec<Frame>,
}

pub struct Driven {
    pub m: Master,
    pub now: Instant,
    max_frame: usize,
    pub conns: BTreeMap<ConnId, Conn>,
    outs: Vec<Out>,
    bytes: Vec<u8>,
    /// Every frame either way, encoded, when kept (to make seed inputs of).
    pub capture: Option<Vec<Vec<u8>>>,
}

impl Driven {
    pub fn new(cfg: Config, now: Instant) -> Driven {
        let max_frame = cfg.max_frame();
        let mut d = Driven {
            m: Master::new(cfg, now),
            now,
            max_frame,
            conns: BTreeMap::new(),
            outs: Vec::new(),
            bytes: Vec::new(),
            capture: None,
        };
        d.pump();
        d
    }

    /// An accepted connection (if `conn` is not open already).
    pub fn connect(&mut self, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            return;
        }
        self.conns.insert(conn, Conn::default());
        self.m
            .on_connect(conn, format!("127.0.0.1:{}", 40000 + conn), self.now);
        self.pump();
    }

    /// Bytes read on `conn`: every whole frame goes to the master; a bad one closes it.
    pub fn receive(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.buf.extend_from_slice(bytes);
        let mut buf = std::mem::take(&mut c.buf);
        let mut at = 0;
        loop {
            match decode_borrowed(&buf[at..], self.max_frame) {
                Ok(Some((decoded, used))) => {
                    at += used;
                    self.m.on_decoded(conn, decoded, self.now);
                    self.pump();
                    if !self.conns.contains_key(&conn) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => return self.close(conn),
            }
        }
        buf.drain(..at);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.buf = buf;
        }
    }

    /// Open the link the master asks for (to its primary), as `conn`, if it wants one now.
    pub fn open_link(&mut self, conn: ConnId) -> bool {
        let Some(addr) = self.m.link_target(self.now) else {
            return false;
        };
        self.conns.insert(conn, Conn::default());
        self.m.on_link_up(conn, addr.to_string(), self.now);
        self.pump();
        true
    }

    /// The other end closed `conn`.
    pub fn close(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_some() {
            self.m.on_close(conn, self.now);
            self.pump();
        }
    }

    /// `ms` milliseconds pass.
    pub fn advance(&mut self, ms: u64) {
        let ms = ms.min(MAX_STEP_MS);
        self.now += Duration::from_millis(ms);
        self.m.on_tick(self.now);
        self.pump();
    }

    /// Carry out what the master asked for: encode each frame (as the event loop does, into
    /// the connection's buffer), keep it for the harness, close what it closed.
    pub fn pump(&mut self) {
        self.m.drain_out(&mut self.outs);
        for out in std::mem::take(&mut self.outs) {
            self.bytes.clear();
            out.encode(&mut self.bytes);
            if let (Some(kept), false) = (&mut self.capture, self.bytes.is_empty()) {
                kept.push(self.bytes.clone());
            }
            match &out {
                Out::Send(conn, _) | Out::SendShared(conn, _) => {
                    if let Some(c) = self.conns.get_mut(conn) {
                        let (frame, used) = dsm_wire::decode(&self.bytes)
                            .expect("the master sent a frame that does not decode")
                            .expect("the master sent part of a frame");
                        assert_eq!(used, self.bytes.len(), "one frame per entry");
                        c.inbox.push(frame);
                    }
                }
                Out::Close(conn) => {
                    self.conns.remove(conn);
                }
                Out::Persist(_) => {}
            }
            self.m.recycle(out);
        }
        self.m.end_turn();
    }

    /// The master's frames on `conn` so far, taken.
    pub fn take_inbox(&mut self, conn: ConnId) -> Vec<Frame> {
        self.conns
            .get_mut(&conn)
            .map(|c| std::mem::take(&mut c.inbox))
            .unwrap_or_default()
    }

    /// Run the real connecting side of the handshake on `conn` as a `role` named `id`, with
    /// the secret if `with_secret`. Whether the master WELCOMEd it.
    pub fn authenticate(&mut self, conn: ConnId, role: Role, id: &str, with_secret: bool) -> bool {
        self.connect(conn);
        let key = secret();
        let secret = with_secret.then_some(&key);
        let Ok((mut hs, hello)) = Handshake::start(secret, 1, role, 0, id.to_string(), 7) else {
            return false;
        };
        self.send_frame(conn, &hello);
        for _ in 0..4 {
            for frame in self.take_inbox(conn) {
                match hs.on_frame(frame) {
                    Step::Send(reply) => self.send_frame(conn, &reply),
                    Step::Welcomed(_) => return true,
                    Step::Refused { .. } | Step::Distrust { .. } => return false,
                }
            }
        }
        false
    }

    /// Send `frame` on `conn`, encoded.
    pub fn send_frame(&mut self, conn: ConnId, frame: &Frame) {
        let mut bytes = Vec::new();
        dsm_wire::encode(frame, &mut bytes);
        if let Some(kept) = &mut self.capture {
            kept.push(bytes.clone());
        }
        self.receive(conn, &bytes);
    }

    /// Close every connection, let every deadline pass (the request timeout, 2 s; the HELLO
    /// timeout, 5 s): nothing may stay in flight. (Not a minute: a tick walks the timer wheel
    /// slot by slot, and the fuzzer's executions would pay for every one.)
    pub fn quiesce(&mut self) {
        let open: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in open {
            self.close(conn);
        }
        for _ in 0..3 {
            self.advance(6_000);
        }
        assert_eq!(
            self.m.in_flight(),
            (0, 0),
            "operations or sub-requests left in flight with every connection closed"
        );
        let _ = self.m.status();
    }
}

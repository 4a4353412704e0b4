//! The link this master opens to a primary's heartbeat socket (as its backup, or as a new
//! primary that must fence the old one): when to open it, the handshake as the connecting side,
//! and reopening it after a failure or a refusal, without hammering a primary that refuses us.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_auth::{Handshake, RefusalLog, Step};
use dsm_wire::{Body, Frame, Role, ServerRole};
use log::{debug, info, warn};

use crate::core::{ConnId, Master, Out, Peer, PeerState};

impl Master {
    /// Where the event loop should open a link now, if anywhere: the primary (on a backup), or
    /// the old primary (on a new primary, to fence it).
    pub fn link_target(&self, now: Instant) -> Option<SocketAddr> {
        let addr = self.cfg.backup_of?;
        let wanted = self.role == ServerRole::Backup
            || (self.role == ServerRole::Primary && self.ha.fence_old);
        let due = self.ha.link_attempt_at.is_some_and(|t| now >= t);
        (wanted && due && self.ha.primary_conn.is_none()).then_some(addr)
    }

    /// The link opened by the event loop is connected.
    pub fn on_link_up(&mut self, conn: ConnId, addr: String, now: Instant) {
        self.conn_serial += 1;
        self.peers.insert(
            conn,
            PeerState {
                kind: Peer::Primary,
                serial: self.conn_serial,
                addr: addr.clone(),
                auth: None,
            },
        );
        self.ha.primary_conn = Some(conn);
        self.ha.link_attempt_at = None;
        self.ha.link_failures = 0;
        if self.ha.primary_last_heard.is_none() {
            self.ha.primary_last_heard = Some(now);
        }
        let role = if self.role == ServerRole::Backup {
            "backup"
        } else {
            "new primary"
        };
        if self.ha.link_refusals.failing() {
            debug!("heartbeat link to {addr} up again; saying HELLO");
        } else {
            info!(
                "heartbeat link to {addr} up; saying HELLO as {role}, epoch {}",
                self.epoch
            );
        }
        self.ha.link_ready = false;
        let secret = self.cfg.secret.as_ref();
        match Handshake::start(secret, 0, Role::Backup, self.epoch, String::new()) {
            Ok((hs, hello)) => {
                self.ha.link_handshake = Some(hs);
                self.out.push(Out::Send(conn, hello));
            }
            Err(e) => {
                warn!("cannot read a nonce from /dev/urandom: {e}; dropping the link");
                self.close_link(conn, now);
            }
        }
    }

    /// Close the link we opened; the next attempt waits a second so that a primary which
    /// refuses us is not asked again in a tight loop.
    pub(crate) fn close_link(&mut self, conn: ConnId, now: Instant) {
        self.peers.remove(&conn);
        self.out.push(Out::Close(conn));
        self.ha.primary_conn = None;
        self.ha.link_handshake = None;
        self.ha.link_attempt_at = Some(now + Duration::from_secs(1));
    }

    /// While our HELLO on the link is unanswered: run the handshake. Returns the body to handle
    /// as before authentication existed (WELCOME or ERROR), or `None` when nothing is left.
    pub(crate) fn link_handshake(
        &mut self,
        conn: ConnId,
        req: u64,
        body: Body,
        now: Instant,
    ) -> Option<Body> {
        let Some(hs) = self.ha.link_handshake.as_mut() else {
            return Some(body);
        };
        match hs.on_frame(Frame::new(req, body)) {
            Step::Send(auth) => {
                self.out.push(Out::Send(conn, auth));
                None
            }
            Step::Welcomed { epoch, reset } => {
                self.ha.link_handshake = None;
                self.ha.link_ready = true;
                self.ha.link_refusals = RefusalLog::default();
                Some(Body::Welcome {
                    epoch,
                    reset,
                    proof: None,
                })
            }
            Step::Refused { code, text } => {
                self.ha.link_handshake = None;
                Some(Body::Error { code, text })
            }
            Step::Distrust { why, reply } => {
                self.note_link_refusal(&format!("heartbeat link: {why}"), now);
                self.out.push(Out::Send(conn, reply));
                self.close_link(conn, now);
                None
            }
        }
    }

    /// Opening the link failed (refused, unreachable, or reset while connecting).
    pub fn on_link_failed(&mut self, why: &str, now: Instant) {
        self.ha.link_failures += 1;
        if self.role == ServerRole::Backup {
            if self.ha.ever_linked {
                return self.take_over(
                    &format!("heartbeat link closed and cannot be reopened ({why})"),
                    now,
                );
            }
            if self.ha.link_failures >= self.cfg.heartbeat_misses.max(1) {
                return self.take_over(&format!("primary unreachable since start ({why})"), now);
            }
            self.ha.link_attempt_at = Some(now + self.cfg.heartbeat_interval);
        } else {
            self.ha.link_attempt_at = Some(now + Duration::from_secs(1));
        }
    }

    pub(crate) fn on_link_closed(&mut self, now: Instant) {
        self.ha.primary_conn = None;
        self.ha.link_handshake = None;
        // A link closed before its WELCOME was most likely refused: do not hammer the primary.
        let pause = match self.ha.link_ready {
            true => Duration::ZERO,
            false => Duration::from_secs(1),
        };
        self.ha.link_attempt_at = Some(now + pause);
        if self.role == ServerRole::Backup && self.ha.link_ready {
            warn!("heartbeat link to the primary closed; reopening it");
        } else {
            debug!("heartbeat link closed before it was WELCOMEd; retrying in {pause:?}");
        }
    }

    pub(crate) fn note_link_refusal(&mut self, why: &str, now: Instant) {
        if let Some(line) = self.ha.link_refusals.note(why, now) {
            warn!("{line}");
        }
    }
}

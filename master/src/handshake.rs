//! The master's side of the connection handshake: who must authenticate, the CHALLENGE, the
//! check of the peer's proof, and the master's own proof in WELCOME. A peer reaches
//! `on_hello` (registration, backup attach, fencing by a higher epoch) only through here.
//!
//! Every mismatch of configuration is answered, never left to the HELLO deadline: a peer that
//! offers a nonce to a master without a secret, or sends none to a master that requires one,
//! or proves the wrong secret, gets ERROR UNAUTHORIZED saying which, and is closed; the master
//! logs the same reason. The whole exchange must finish within `--hello-timeout-ms`.

use std::time::Instant;

use dsm_auth::{fresh_nonce, Transcript};
use dsm_wire::{AuthBytes, Body, ErrorCode, Frame, Role};
use log::warn;

use crate::core::{ConnId, Master, Out, Peer};

/// A peer that offered to authenticate and was sent a CHALLENGE.
pub(crate) struct Pending {
    role: Role,
    epoch: u64,
    id: String,
    peer_nonce: AuthBytes,
    master_nonce: AuthBytes,
    /// The peer's proof checked out: the WELCOME must carry the master's.
    proven: bool,
}

impl Pending {
    fn transcript(&self) -> Transcript<'_> {
        Transcript {
            role: self.role,
            epoch: self.epoch,
            id: &self.id,
            peer_nonce: &self.peer_nonce,
            master_nonce: &self.master_nonce,
        }
    }
}

impl Master {
    /// The first frame of a connection: it must be HELLO, and the HELLO must match what this
    /// master requires of the sender's role.
    pub(crate) fn on_first_frame(&mut self, conn: ConnId, frame: Frame, now: Instant) {
        let req = frame.req_id;
        let Body::Hello {
            role,
            epoch,
            id,
            nonce,
        } = frame.body
        else {
            let got = frame.body.opcode();
            if self.cfg.require_client_auth {
                let text =
                    format!("authenticate first: the first frame must be HELLO, got {got:?}");
                return self.refuse_auth(conn, req, text.clone(), text);
            }
            let text = format!("the first frame must be HELLO, got {got:?}");
            return self.refuse_conn(conn, req, ErrorCode::BadRequest, text);
        };
        let who = self.describe(conn, role, &id);
        let must_prove = role != Role::Client || self.cfg.require_client_auth;
        match (self.cfg.secret.is_some(), nonce) {
            (false, None) => self.on_hello(conn, req, role, epoch, id, now),
            (true, None) if !must_prove => self.on_hello(conn, req, role, epoch, id, now),
            (false, Some(_)) => self.refuse_auth(
                conn,
                req,
                format!(
                    "refusing {who}: it offers to authenticate, but this master has no \
                     --secret-file (give the same secret to every master, slave and backup, \
                     or to none)"
                ),
                "this master has no secret (--secret-file) and will not pretend to check \
                 yours: configure the same secret on every node, or on none"
                    .into(),
            ),
            (true, None) => self.refuse_auth(
                conn,
                req,
                format!(
                    "refusing {who}: it sent no proof of the shared secret (start it with \
                     --secret-file)"
                ),
                format!(
                    "this master requires the shared secret: start the {} with --secret-file",
                    role.name()
                ),
            ),
            (true, Some(peer_nonce)) => {
                let master_nonce = match fresh_nonce() {
                    Ok(n) => n,
                    Err(e) => {
                        let text = format!("cannot read a nonce from /dev/urandom: {e}");
                        return self.refuse_conn(conn, req, ErrorCode::Busy, text);
                    }
                };
                if let Some(p) = self.peers.get_mut(&conn) {
                    p.kind = Peer::Challenged;
                    p.auth = Some(Box::new(Pending {
                        role,
                        epoch,
                        id,
                        peer_nonce,
                        master_nonce,
                        proven: false,
                    }));
                }
                self.send(
                    conn,
                    req,
                    Body::Challenge {
                        nonce: master_nonce,
                    },
                );
            }
        }
    }

    /// The frame after our CHALLENGE: it must be AUTH with the right proof.
    pub(crate) fn on_auth(&mut self, conn: ConnId, frame: Frame, now: Instant) {
        let req = frame.req_id;
        let (Some(secret), Some(pending)) = (
            self.cfg.secret.as_ref(),
            self.peers.get(&conn).and_then(|p| p.auth.as_ref()),
        ) else {
            return;
        };
        let who = self.describe(conn, pending.role, &pending.id);
        match frame.body {
            Body::Auth { proof } if secret.check_peer_proof(&pending.transcript(), &proof) => {
                let Some(p) = self.peers.get_mut(&conn) else {
                    return;
                };
                p.kind = Peer::New;
                let pending = p.auth.as_mut().expect("checked above");
                pending.proven = true;
                let (role, epoch, id) = (pending.role, pending.epoch, pending.id.clone());
                self.on_hello(conn, req, role, epoch, id, now);
            }
            Body::Auth { .. } => self.refuse_auth(
                conn,
                req,
                format!("refusing {who}: wrong proof (it does not hold this master's secret)"),
                "authentication failed: wrong secret".into(),
            ),
            Body::Error { code, text } => {
                warn!("{who} gave up the handshake: {}: {text}", code.name());
                self.peers.remove(&conn);
                self.out.push(Out::Close(conn));
            }
            other => {
                let text = format!("expected AUTH after CHALLENGE, got {:?}", other.opcode());
                self.refuse_auth(conn, req, format!("refusing {who}: {text}"), text);
            }
        }
    }

    /// Answer a HELLO that was accepted; after an authenticated HELLO the WELCOME carries the
    /// master's proof, which covers `epoch` and `reset`.
    pub(crate) fn welcome(&mut self, conn: ConnId, req: u64, reset: bool) {
        let epoch = self.epoch;
        let pending = self.peers.get_mut(&conn).and_then(|p| p.auth.take());
        let proof = match (&self.cfg.secret, pending) {
            (Some(secret), Some(p)) if p.proven => {
                Some(secret.master_proof(&p.transcript(), epoch, reset))
            }
            _ => None,
        };
        self.send(
            conn,
            req,
            Body::Welcome {
                epoch,
                reset,
                proof,
            },
        );
    }

    /// Log `log_line`, answer ERROR UNAUTHORIZED with `text`, and close.
    fn refuse_auth(&mut self, conn: ConnId, req: u64, log_line: String, text: String) {
        warn!("{log_line}");
        self.send(conn, req, Body::error(ErrorCode::Unauthorized, text));
        self.peers.remove(&conn);
        self.out.push(Out::Close(conn));
    }

    /// "slave 's1' from 127.0.0.1:4242", for the log.
    fn describe(&self, conn: ConnId, role: Role, id: &str) -> String {
        let addr = self.peers.get(&conn).map_or("?", |p| p.addr.as_str());
        match id {
            "" => format!("{} from {addr}", role.name()),
            id => format!("{} '{id}' from {addr}", role.name()),
        }
    }
}

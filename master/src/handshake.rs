//! The master's side of the connection handshake: who must authenticate, the CHALLENGE, the
//! check of the peer's proof, and the master's own proof in WELCOME. A peer is registered
//! (a client, a slave, a backup) only with the [`Hello`] this module returns.
//!
//! Every mismatch of configuration is answered, never left to the HELLO deadline: a peer that
//! offers a nonce to a master without a secret, or sends none to a master that requires one,
//! or proves the wrong secret, gets ERROR UNAUTHORIZED saying which, and is closed; the master
//! logs the same reason. The whole exchange must finish within `--hello-timeout-ms`.

use dsm_auth::{fresh_nonce, Terms, Transcript};
use dsm_wire::{AuthBytes, Body, ErrorCode, Frame, Limits, Role};
use log::warn;

use crate::config::Config;
use crate::idmap::ConnMap;
use crate::outbox::{ConnId, Outbox};
use crate::peers::{Peer, Peers};

/// A peer that offered to authenticate and was sent a CHALLENGE.
pub(crate) struct Pending {
    role: Role,
    epoch: u64,
    id: String,
    boot: u64,
    limits: Option<Limits>,
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
            boot: self.boot,
            peer_nonce: &self.peer_nonce,
            master_nonce: &self.master_nonce,
        }
    }
}

/// The handshakes under way, by connection, until their WELCOME is sent.
#[derive(Default)]
pub(crate) struct Handshakes {
    pending: ConnMap<Box<Pending>>,
}

impl Handshakes {
    /// A new connection: whatever an earlier one with its id left is void.
    pub fn forget(&mut self, conn: ConnId) {
        self.pending.remove(&conn);
    }
}

/// A HELLO that passed the handshake: the sender may be registered.
pub(crate) struct Hello {
    pub req: u64,
    pub role: Role,
    pub epoch: u64,
    pub id: String,
    /// The sender process's boot id.
    pub boot: u64,
    /// A slave's key and value limits.
    pub limits: Option<Limits>,
}

/// The handshake's view of the master: its settings, its connections and its outbox.
pub(crate) struct Gate<'a> {
    pub cfg: &'a Config,
    pub peers: &'a mut Peers,
    pub out: &'a mut Outbox,
    pub handshakes: &'a mut Handshakes,
}

impl Gate<'_> {
    /// The first frame of a connection: it must be HELLO, and the HELLO must match what this
    /// master requires of the sender's role.
    pub fn first_frame(&mut self, conn: ConnId, frame: Frame) -> Option<Hello> {
        let req = frame.req_id;
        let Body::Hello {
            role,
            epoch,
            id,
            boot,
            nonce,
            limits,
        } = frame.body
        else {
            let got = frame.body.opcode();
            if self.cfg.require_client_auth {
                let text =
                    format!("authenticate first: the first frame must be HELLO, got {got:?}");
                self.refuse(conn, req, text.clone(), text);
                return None;
            }
            let text = format!("the first frame must be HELLO, got {got:?}");
            self.peers
                .refuse(conn, req, ErrorCode::BadRequest, text, self.out);
            return None;
        };
        if let Some(why) = dsm_wire::check_peer_id(role, &id) {
            let text = format!("refused: {why}");
            warn!(
                "refusing a {} HELLO from {}: {why}",
                role.name(),
                self.peers.addr(conn)
            );
            self.peers
                .refuse(conn, req, ErrorCode::BadRequest, text, self.out);
            return None;
        }
        let hello = Hello {
            req,
            role,
            epoch,
            id,
            boot,
            limits,
        };
        let must_prove = role != Role::Client || self.cfg.require_client_auth;
        match (self.cfg.secret.is_some(), nonce) {
            (false, None) => Some(hello),
            (true, None) if !must_prove => Some(hello),
            (false, Some(_)) => {
                let who = self.describe(conn, role, &hello.id);
                self.refuse(
                    conn,
                    req,
                    format!(
                        "refusing {who}: it offers to authenticate, but this master has no \
                         --secret-file (give the same secret to every master, slave and \
                         backup, or to none)"
                    ),
                    "this master has no secret (--secret-file) and will not pretend to check \
                     yours: configure the same secret on every node, or on none"
                        .into(),
                );
                None
            }
            (true, None) => {
                let who = self.describe(conn, role, &hello.id);
                self.refuse(
                    conn,
                    req,
                    format!(
                        "refusing {who}: it sent no proof of the shared secret (start it with \
                         --secret-file)"
                    ),
                    format!(
                        "this master requires the shared secret: start the {} with \
                         --secret-file",
                        role.name()
                    ),
                );
                None
            }
            (true, Some(peer_nonce)) => {
                self.challenge(conn, hello, *peer_nonce);
                None
            }
        }
    }

    fn challenge(&mut self, conn: ConnId, hello: Hello, peer_nonce: AuthBytes) {
        let master_nonce = match fresh_nonce() {
            Ok(n) => n,
            Err(e) => {
                let text = format!("cannot read a nonce from /dev/urandom: {e}");
                return self
                    .peers
                    .refuse(conn, hello.req, ErrorCode::Busy, text, self.out);
            }
        };
        self.peers.set_kind(conn, Peer::Challenged);
        let pending = Pending {
            role: hello.role,
            epoch: hello.epoch,
            id: hello.id,
            boot: hello.boot,
            limits: hello.limits,
            peer_nonce,
            master_nonce,
            proven: false,
        };
        self.handshakes.pending.insert(conn, Box::new(pending));
        self.out.send(
            conn,
            hello.req,
            Body::Challenge {
                nonce: master_nonce,
            },
        );
    }

    /// The frame after our CHALLENGE: it must be AUTH with the right proof.
    pub fn auth(&mut self, conn: ConnId, frame: Frame) -> Option<Hello> {
        let req = frame.req_id;
        let secret = self.cfg.secret.as_ref()?;
        let pending = self.handshakes.pending.get(&conn)?;
        let who = self.describe(conn, pending.role, &pending.id);
        match frame.body {
            Body::Auth { proof } if secret.check_peer_proof(&pending.transcript(), &proof) => {
                self.peers.set_kind(conn, Peer::New);
                let pending = self.handshakes.pending.get_mut(&conn)?;
                pending.proven = true;
                Some(Hello {
                    req,
                    role: pending.role,
                    epoch: pending.epoch,
                    id: pending.id.clone(),
                    boot: pending.boot,
                    limits: pending.limits,
                })
            }
            Body::Auth { .. } => {
                self.refuse(
                    conn,
                    req,
                    format!("refusing {who}: wrong proof (it does not hold this master's secret)"),
                    "authentication failed: wrong secret".into(),
                );
                None
            }
            Body::Error { code, text } => {
                warn!("{who} gave up the handshake: {}: {text}", code.name());
                self.peers.close(conn, self.out);
                None
            }
            other => {
                let text = format!("expected AUTH after CHALLENGE, got {:?}", other.opcode());
                self.refuse(conn, req, format!("refusing {who}: {text}"), text);
                None
            }
        }
    }

    /// Answer a HELLO that was accepted with `terms`; after an authenticated HELLO the WELCOME
    /// carries the master's proof, which covers them.
    pub fn welcome(&mut self, conn: ConnId, req: u64, terms: Terms) {
        let pending = self.handshakes.pending.remove(&conn);
        let proof = match (&self.cfg.secret, pending) {
            (Some(secret), Some(p)) if p.proven => {
                Some(secret.master_proof(&p.transcript(), &terms))
            }
            _ => None,
        };
        self.out.send(conn, req, terms.welcome(proof));
    }

    /// Log `log_line`, answer ERROR UNAUTHORIZED with `text`, and close.
    fn refuse(&mut self, conn: ConnId, req: u64, log_line: String, text: String) {
        warn!("{log_line}");
        self.out
            .send(conn, req, Body::error(ErrorCode::Unauthorized, text));
        self.peers.close(conn, self.out);
    }

    /// "slave 's1' from 127.0.0.1:4242", for the log.
    fn describe(&self, conn: ConnId, role: Role, id: &str) -> String {
        let addr = match self.peers.addr(conn) {
            "" => "?",
            a => a,
        };
        match id {
            "" => format!("{} from {addr}", role.name()),
            id => format!("{} '{}' from {addr}", role.name(), id.escape_debug()),
        }
    }
}

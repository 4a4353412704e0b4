//! A peer of the masters played by the test: a slave (a real `dsm_slave::Store`), a client, or
//! a raw stranger. Slaves and clients register with the real connecting side of the handshake
//! (`dsm_auth::Handshake`), as dsm-slave and dsm-client do.

use dsm_auth::{Handshake, Secret, Step};
use dsm_slave::store::Reply;
use dsm_slave::Store;
use dsm_wire::{decode_borrowed, encode, encode_ref, Body, Frame, Opcode, Role, DEFAULT_MAX_FRAME};

use super::conns::Conn;

pub struct Peer {
    role: Role,
    id: String,
    secret: Option<Secret>,
    /// Plays the handshake (none for a raw peer): until it ends, only it sees the master's
    /// frames.
    hs: Option<Handshake>,
    /// A slave's store: it answers once WELCOMEd, as dsm-slave's does.
    pub store: Option<Store>,
    /// `(epoch, reset)` of the WELCOME that ended the handshake.
    pub welcome: Option<(u64, bool)>,
    /// How the handshake failed, from this side.
    pub failed: Option<Step>,
    /// What a peer without a store received after its handshake (or all of it, for a raw one).
    pub inbox: Vec<Frame>,
    /// It has seen its connection close.
    pub closed: bool,
    received: Vec<usize>,
    pub(super) conn: Option<Conn>,
}

impl Peer {
    /// A slave (with a store) or a client; `raw`: one that says nothing unless the test does.
    pub(super) fn new(role: Role, id: &str, secret: Option<&[u8]>, raw: bool) -> Peer {
        Peer {
            role,
            id: id.into(),
            secret: secret.map(|s| Secret::from_bytes(s).expect("a usable secret")),
            hs: None,
            store: (role == Role::Slave && !raw).then(Store::default),
            welcome: None,
            failed: None,
            inbox: Vec::new(),
            closed: false,
            received: vec![0; 256],
            conn: None,
        }
    }

    /// Frames of this opcode that reached this peer.
    pub fn received(&self, op: Opcode) -> usize {
        self.received[op as usize]
    }

    /// On a new connection: start the handshake; the HELLO to send. A slave's HELLO carries
    /// the highest epoch its store has seen.
    pub(super) fn start(&mut self, conn: Conn) -> Frame {
        self.conn = Some(conn);
        self.closed = false;
        self.welcome = None;
        self.failed = None;
        let epoch = self.store.as_ref().map_or(0, Store::epoch);
        let secret = self.secret.as_ref();
        let (hs, hello) = Handshake::start(secret, 0, self.role, epoch, self.id.clone())
            .expect("a nonce from the kernel");
        self.hs = Some(hs);
        hello
    }

    /// One frame arrives; the encoded answer, if any.
    pub(super) fn receive(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let (decoded, used) = decode_borrowed(bytes, DEFAULT_MAX_FRAME)
            .expect("a master sends valid frames")
            .expect("a packet holds a whole frame");
        assert_eq!(used, bytes.len(), "one frame per packet");
        self.received[decoded.opcode() as usize] += 1;
        let mut out = Vec::new();
        if self.hs.is_some() {
            encode(&self.handshake(decoded.into_frame())?, &mut out);
            return Some(out);
        }
        let Some(store) = self.store.as_mut() else {
            self.inbox.push(decoded.into_frame());
            return None;
        };
        match store.respond_decoded(decoded)? {
            Reply::Frame(frame) => encode(&frame, &mut out),
            Reply::Borrowed(req_id, body) => encode_ref(req_id, &body, &mut out),
        }
        Some(out)
    }

    fn handshake(&mut self, frame: Frame) -> Option<Frame> {
        let op = frame.body.opcode();
        assert!(
            matches!(op, Opcode::Challenge | Opcode::Welcome | Opcode::Error),
            "the master sent {op:?} to {:?} '{}' before its WELCOME",
            self.role,
            self.id
        );
        let step = self.hs.as_mut().expect("in a handshake").on_frame(frame);
        if !matches!(step, Step::Send(_)) {
            self.hs = None;
        }
        match step {
            Step::Send(auth) => Some(auth),
            Step::Welcomed { epoch, reset } => {
                self.welcome = Some((epoch, reset));
                // What dsm-slave does: the store learns the epoch, and a reset empties it.
                if let Some(store) = self.store.as_mut() {
                    let welcome = Body::Welcome {
                        epoch,
                        reset,
                        proof: None,
                    };
                    store.on_frame(Frame::new(0, welcome));
                }
                None
            }
            Step::Refused { .. } => {
                self.failed = Some(step);
                None
            }
            Step::Distrust { ref reply, .. } => {
                let reply = reply.clone();
                self.failed = Some(step);
                Some(reply)
            }
        }
    }
}

//! A peer of the masters played by the test: a slave (a real `dsm_slave::Store`), a client, or
//! a raw stranger. Slaves and clients register with the real connecting side of the handshake
//! (`dsm_auth::Handshake`), as dsm-slave and dsm-client do.

use std::sync::atomic::{AtomicU64, Ordering};

use dsm_auth::{Handshake, Secret, Step};
use dsm_slave::store::Reply;
use dsm_slave::Store;
use std::time::{Duration, Instant};

use dsm_wire::{
    decode_borrowed, encode, encode_ref, Body, Decoded, Frame, Opcode, Role, DEFAULT_MAX_FRAME,
};

use super::conns::Conn;

/// Boot ids of the peers' processes: every process (a new peer, or a restart) gets a new one.
static BOOTS: AtomicU64 = AtomicU64::new(1);

pub struct Peer {
    role: Role,
    id: String,
    /// This process's boot id: the same until [`Peer::restart`].
    pub boot: u64,
    secret: Option<Secret>,
    /// Plays the handshake (none for a raw peer): until it ends, only it sees the master's
    /// frames.
    hs: Option<Handshake>,
    /// A slave's store: it answers once WELCOMEd, as dsm-slave's does.
    pub store: Option<Store>,
    /// `(epoch, inventory)` of the WELCOME that ended the handshake.
    pub welcome: Option<(u64, bool)>,
    /// How the handshake failed, from this side.
    pub failed: Option<Step>,
    /// What a peer without a store received after its handshake (or all of it, for a raw one).
    pub inbox: Vec<Frame>,
    /// A slave WELCOMEd by a standby: its supporter, as dsm-slave is (`slave/src/slave.rs`).
    pub supporting: bool,
    /// A slave's lease from its primary's WELCOME, and until when it promised its support.
    lease: Duration,
    promised_until: Option<Instant>,
    /// The standbys (ids) its primary said are out of step.
    pub stale: Vec<String>,
    /// The cluster's voters as its primary counted them (STALE).
    pub voters: u16,
    /// The VOTEs this slave gave: (epoch asked, granted).
    pub votes: Vec<(u64, bool)>,
    /// When its master last sent it anything.
    pub last_heard: Option<Instant>,
    /// It has seen its connection close.
    pub closed: bool,
    /// The master addresses a slave says it dials (HELLO's `limits`).
    pub masters: u16,
    received: Vec<usize>,
    pub(super) conn: Option<Conn>,
}

impl Peer {
    /// A slave (with a store) or a client; `raw`: one that says nothing unless the test does.
    pub(super) fn new(role: Role, id: &str, secret: Option<&[u8]>, raw: bool) -> Peer {
        Peer {
            role,
            id: id.into(),
            boot: BOOTS.fetch_add(1, Ordering::Relaxed),
            secret: secret.map(|s| Secret::from_bytes(s).expect("a usable secret")),
            hs: None,
            store: (role == Role::Slave && !raw).then(Store::default),
            welcome: None,
            failed: None,
            inbox: Vec::new(),
            supporting: false,
            lease: Duration::ZERO,
            promised_until: None,
            stale: Vec::new(),
            voters: 0,
            votes: Vec::new(),
            last_heard: None,
            closed: false,
            masters: 1,
            received: vec![0; 256],
            conn: None,
        }
    }

    /// The process restarts: a new boot id, and a slave keeps its store only with
    /// `keep_data` (a data dir), as dsm-slave does.
    pub fn restart(&mut self, keep_data: bool) {
        self.boot = BOOTS.fetch_add(1, Ordering::Relaxed);
        if let Some(store) = self.store.as_mut() {
            if !keep_data {
                *store = Store::default();
            }
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
        self.supporting = false;
        self.last_heard = None;
        let epoch = self.store.as_ref().map_or(0, Store::epoch);
        let secret = self.secret.as_ref();
        let (hs, mut hello) =
            Handshake::start(secret, 0, self.role, epoch, self.id.clone(), self.boot)
                .expect("a nonce from the kernel");
        self.hs = Some(hs);
        // A slave tells its limits, as dsm-slave does: the defaults, the master's too.
        if let (Role::Slave, Body::Hello { limits, .. }) = (self.role, &mut hello.body) {
            *limits = Some(dsm_wire::Limits {
                max_key: dsm_wire::DEFAULT_MAX_KEY as u32,
                max_value: dsm_wire::DEFAULT_MAX_VALUE as u32,
                masters: self.masters,
            });
        }
        hello
    }

    /// One frame arrives; the encoded answers, a frame each (after a WELCOME that asks for
    /// it, a slave's whole report of what it holds).
    pub(super) fn receive(&mut self, bytes: &[u8], now: Instant) -> Vec<Vec<u8>> {
        self.last_heard = Some(now);
        let (decoded, used) = decode_borrowed(bytes, DEFAULT_MAX_FRAME)
            .expect("a master sends valid frames")
            .expect("a packet holds a whole frame");
        assert_eq!(used, bytes.len(), "one frame per packet");
        self.received[decoded.opcode() as usize] += 1;
        let encoded = |frame: &Frame| {
            let mut out = Vec::new();
            encode(frame, &mut out);
            out
        };
        if self.hs.is_some() {
            let mut packets: Vec<Vec<u8>> = self
                .handshake(decoded.into_frame(), now)
                .iter()
                .map(encoded)
                .collect();
            if let Some(store) = self.store.as_mut() {
                while let Some(frame) = store.next_inventory() {
                    packets.push(encoded(&frame));
                }
            }
            return packets;
        }
        if self.store.is_none() {
            self.inbox.push(decoded.into_frame());
            return Vec::new();
        }
        if self.supporting {
            return self.support(decoded.into_frame(), now);
        }
        // Answers to the primary's PING and STALE are promises (as dsm-slave's).
        match &decoded {
            Decoded::Owned(Frame {
                body: Body::Ping, ..
            }) => self.promised_until = Some(now + self.lease),
            Decoded::Owned(Frame {
                req_id,
                body: Body::Stale { ids, voters, .. },
            }) => {
                self.promised_until = Some(now + self.lease);
                self.voters = *voters;
                self.stale = ids.clone();
                return vec![encoded(&Frame::new(*req_id, Body::Pong))];
            }
            _ => {}
        }
        let store = self.store.as_mut().expect("checked above");
        // The slave's clock is the network's, as dsm-slave sets it from each read.
        store.set_now(now);
        let mut out = Vec::new();
        match store.respond_decoded(decoded) {
            Some(Reply::Frame(frame)) => encode(&frame, &mut out),
            Some(Reply::Borrowed(req_id, body)) => encode_ref(req_id, &body, &mut out),
            None => return Vec::new(),
        }
        vec![out]
    }

    /// A supporter's frame from its standby: a TAKEOVER asks for its vote (dsm-slave's rule:
    /// an epoch above every one seen, a standby that counts at least the voters the primary
    /// counted, and the promise to the old primary run out).
    fn support(&mut self, frame: Frame, now: Instant) -> Vec<Vec<u8>> {
        let encoded = |frame: &Frame| {
            let mut out = Vec::new();
            encode(frame, &mut out);
            out
        };
        let store = self.store.as_mut().expect("a slave");
        let reply = match frame.body {
            Body::Takeover {
                epoch,
                inventory,
                lease_ms,
                id,
                voters,
            } => {
                let stale = self.stale.contains(&id);
                let granted = epoch > store.epoch()
                    && voters >= self.voters
                    && self.promised_until.is_none_or(|u| now >= u);
                self.votes.push((epoch, granted));
                let mut packets = vec![encoded(&Frame::new(
                    frame.req_id,
                    Body::Vote {
                        granted,
                        stale,
                        voters: self.voters,
                    },
                ))];
                if granted {
                    self.supporting = false;
                    self.lease = Duration::from_millis(lease_ms.into());
                    self.promised_until = Some(now + self.lease);
                    let welcome = Body::Welcome {
                        epoch,
                        inventory: inventory || stale,
                        standby: false,
                        lease_ms,
                        proof: None,
                    };
                    store.on_frame(Frame::new(0, welcome));
                    while let Some(f) = store.next_inventory() {
                        packets.push(encoded(&f));
                    }
                }
                return packets;
            }
            Body::Ping => Body::Pong,
            _ => return Vec::new(),
        };
        vec![encoded(&Frame::new(frame.req_id, reply))]
    }

    fn handshake(&mut self, frame: Frame, now: Instant) -> Option<Frame> {
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
            Step::Welcomed(terms) => {
                self.welcome = Some((terms.epoch, terms.inventory));
                if terms.standby {
                    // A standby: the slave supports it until its TAKEOVER.
                    self.supporting = self.store.is_some();
                    return None;
                }
                self.lease = Duration::from_millis(terms.lease_ms.into());
                self.promised_until = Some(now);
                // What dsm-slave does: the store learns the epoch, and reports what it holds
                // if the master asks (the frames go out with this answer).
                if let Some(store) = self.store.as_mut() {
                    store.on_frame(Frame::new(0, terms.welcome(None)));
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

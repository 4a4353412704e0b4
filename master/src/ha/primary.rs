//! The primary's side of high availability: attaching a backup (and replacing one), its
//! frames on the heartbeat socket, and, after a takeover, the link that tells the old primary
//! the new epoch.

use std::time::{Duration, Instant};

use dsm_wire::{Body, ErrorCode};
use log::{info, warn};

use crate::doubts::Doubts;
use crate::keymap::KeyIndex;
use crate::outbox::{ConnId, Outbox};
use crate::peers::Peers;
use crate::slaves::SlaveTable;
use crate::term::Term;

use super::lease::{Lease, Voter};
use super::link::Link;
use super::stream::Stream;

#[derive(Default)]
pub(crate) struct Primary {
    /// The backup attached to this primary, if any.
    pub stream: Option<Stream>,
    /// After a takeover: the link that tells the old primary our epoch, until it has heard.
    pub fencing: Option<Link>,
    /// The majority's promises this primary serves under, and the word on stale standbys.
    pub lease: Lease,
    /// The last SYNC number any stream used.
    pub seq: u64,
    /// Every standby that ever attached, by heartbeat address: voters from then on, attached
    /// or not (a standby that is gone may come back and vote).
    /// (Only standbys that confirmed a whole snapshot: see `on_backup_frame`.)
    pub standbys: Vec<std::net::SocketAddr>,
}

/// What a backup's frame asks of the rest of the master.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BackupSays {
    Nothing,
    /// It confirmed SYNCs: writes waiting for it may commit.
    Synced,
    /// Master `id` took over with a higher epoch: step down.
    TookOver(u64, String),
    /// It asks for STATUS (answer request `req`).
    Status(u64),
}

impl Primary {
    /// A backup `id` said HELLO (its WELCOME is sent): stream it everything, replacing any
    /// backup attached before (which is out of step from then on). `doubts`: this master's
    /// own, and the keys of the changes under way (see [`Stream::snapshot`]).
    #[allow(clippy::too_many_arguments)]
    pub fn attach(
        &mut self,
        conn: ConnId,
        id: String,
        now: Instant,
        term: &Term,
        slaves: &SlaveTable,
        keys: &KeyIndex,
        doubts: (&Doubts, &[Box<[u8]>]),
        peers: &mut Peers,
        out: &mut Outbox,
    ) {
        if let Some(old) = self.stream.take() {
            warn!("a new backup replaces the one on connection {}", old.conn);
            self.seq = old.seq();
            self.lease.set_stale(&old.id, true);
            peers.close(old.conn, out);
        }
        info!(
            "backup {id} attached on connection {conn}: streaming {} slaves and {} keys",
            slaves.live_count(),
            keys.len()
        );
        // Out of step until it has confirmed the whole snapshot: writes do not wait for it
        // meanwhile (once a majority knows).
        self.lease.set_stale(&id, true);
        let stream = self.stream.insert(Stream::new(conn, id, self.seq, now));
        stream.snapshot(term, slaves, keys, doubts, out);
    }

    /// PING every voter it reaches: its slaves, also those still reporting what they hold (a
    /// STALE instead, to one that has not confirmed the latest word on stale standbys), and its
    /// standby. A slave that hears nothing leaves (and its promise lapses).
    pub fn ping_voters(&mut self, slaves: &SlaveTable, out: &mut Outbox, now: Instant) {
        let (gen, stale) = (self.lease.gen, self.lease.stale.clone());
        let voters = self.lease.voters().min(u16::MAX as usize) as u16;
        for (idx, s) in slaves.connected() {
            let (req, body) = match self.lease.confirmed(Voter::Slave(idx)) {
                true => (self.lease.ping(now), Body::Ping),
                false => (
                    self.lease.stale_word(now),
                    Body::Stale {
                        gen,
                        voters,
                        ids: stale.clone(),
                    },
                ),
            };
            out.send(s.conn, req, body);
        }
        if let Some(s) = &self.stream {
            let req = self.lease.ping(now);
            out.send(s.conn, req, Body::Ping);
        }
    }

    /// The backup stopped confirming the stream (frozen, or cut off): it is out of step from
    /// now on. Say so to the voters (writes wait until a majority knows) and let it go; it
    /// comes back through a new snapshot.
    pub fn detach_lagging(&mut self, peers: &mut Peers, out: &mut Outbox, lag: Duration) {
        let Some(s) = self.stream.take() else {
            return;
        };
        warn!(
            "backup {} has not confirmed the stream for {} ms: it is out of step; letting it go",
            s.id,
            lag.as_millis()
        );
        self.seq = s.seq();
        self.lease.set_stale(&s.id, true);
        peers.close(s.conn, out);
    }

    /// A frame from a backup on our heartbeat socket.
    #[allow(clippy::too_many_arguments)]
    pub fn on_backup_frame(
        &mut self,
        conn: ConnId,
        req: u64,
        body: Body,
        epoch: u64,
        lease: Duration,
        out: &mut Outbox,
        now: Instant,
    ) -> BackupSays {
        let ours = self.stream.as_mut().filter(|s| s.conn == conn);
        if let Some(s) = ours {
            s.heard(now);
        }
        match body {
            Body::Ping => out.send(conn, req, Body::Pong),
            // Its promise, in answer to our PING (`lease.rs`).
            Body::Pong if Lease::owns(req) => {
                if self.stream.as_ref().is_some_and(|s| s.conn == conn) {
                    self.lease.pong(Voter::Standby(conn), req, lease);
                    return BackupSays::Synced;
                }
            }
            Body::Pong => {}
            Body::SyncAck => {
                if let Some(s) = self.stream.as_mut().filter(|s| s.conn == conn) {
                    let was = s.in_step();
                    s.acked(req);
                    if !was && s.in_step() {
                        // A voter from now on: a standby counts only once it has proved it
                        // follows us (a stranger that attaches and stays silent never does,
                        // so it cannot tilt the majority).
                        if let Some(hb) = super::heartbeat_of(&s.id) {
                            if !self.standbys.contains(&hb) {
                                self.standbys.push(hb);
                            }
                        }
                        if self.lease.set_stale(&s.id.clone(), false) {
                            info!("backup {} is in step again", s.id);
                        }
                    }
                }
                return BackupSays::Synced;
            }
            Body::Hello {
                epoch: theirs, id, ..
            } if theirs > epoch => {
                // Answered before stepping down closes this link: the answer tells the new
                // primary that we know.
                out.send(
                    conn,
                    req,
                    Body::error(ErrorCode::NotPrimary, "stepped down"),
                );
                return BackupSays::TookOver(theirs, id);
            }
            Body::Status => return BackupSays::Status(req),
            other => {
                let text = format!("a backup may not send {:?}", other.opcode());
                out.send(conn, req, Body::error(ErrorCode::BadRequest, text));
            }
        }
        BackupSays::Nothing
    }

    /// A backup's connection closed; returns whether it was the attached one (which is out
    /// of step from now on).
    pub fn backup_closed(&mut self, conn: ConnId) -> bool {
        if let Some(s) = self.stream.take_if(|s| s.conn == conn) {
            warn!("backup {} went away; going on without one", s.id);
            self.seq = s.seq();
            self.lease.set_stale(&s.id, true);
            return true;
        }
        false
    }

    /// A frame on the link to the old primary. Once it answers our HELLO it knows our epoch:
    /// it stepped down if ours is higher (NOT_PRIMARY; also the answer of a master that is
    /// not primary at all), or it refused our credentials (then only the slaves' epochs fence
    /// it). Any other answer (a WELCOME as our backup, a refusal of our HELLO) comes from a
    /// master that is primary at our epoch or above and did not step down: returns why this
    /// master must step down instead, or two primaries would serve at one epoch. Frames the
    /// old primary sent us as its backup before it read our HELLO (SYNC, PONG) are no answer.
    #[allow(clippy::too_many_arguments)]
    pub fn on_fencing_frame(
        &mut self,
        conn: ConnId,
        req: u64,
        body: Body,
        epoch: u64,
        peers: &mut Peers,
        out: &mut Outbox,
        now: Instant,
    ) -> Option<String> {
        let Some(link) = self.fencing.as_mut().filter(|l| l.conn == Some(conn)) else {
            peers.close(conn, out);
            return None;
        };
        let body = link.handshake(req, body, peers, out, now)?;
        let outranked = match &body {
            Body::Error {
                code: ErrorCode::Unauthorized,
                text,
            } => {
                warn!(
                    "the old primary refused our credentials ({text}); it was not told of epoch \
                     {epoch}"
                );
                None
            }
            Body::Error {
                code: ErrorCode::NotPrimary,
                ..
            } => {
                info!("the old primary has heard of epoch {epoch}; closing the link");
                None
            }
            Body::Welcome { epoch: theirs, .. } => Some(format!(
                "the other master is primary at epoch {theirs} and took our epoch {epoch} for \
                 a backup's"
            )),
            Body::Error { code, text } => Some(format!(
                "the other master did not step down for our epoch {epoch}: {}: {text}",
                code.name()
            )),
            // What the old primary sent its backup (us) before it read our HELLO: not the
            // answer yet.
            _ => return None,
        };
        self.fencing = None;
        peers.close(conn, out);
        outranked
    }
}

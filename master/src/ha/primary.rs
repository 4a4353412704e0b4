//! The primary's side of high availability: attaching standbys (any number up to
//! [`MAX_STANDBYS`]; one that attaches again replaces its old link), their frames on the
//! heartbeat socket, and, after a takeover, the link that tells the old primary the new epoch.

use std::time::{Duration, Instant};

use dsm_wire::{Body, ErrorCode, SyncEvent};
use log::{info, warn};

use crate::doubts::Doubts;
use crate::keymap::KeyIndex;
use crate::outbox::{ConnId, Outbox};
use crate::peers::Peers;
use crate::slaves::SlaveTable;
use crate::term::Term;

use super::lease::{Lease, Voter};
use super::link::Link;
use super::stream::Streams;

/// Standbys streamed to at once: each costs a copy of every SYNC, and a stranger with the
/// secret could otherwise attach without end.
pub(crate) const MAX_STANDBYS: usize = 8;

#[derive(Default)]
pub(crate) struct Primary {
    /// The standbys attached to this primary.
    pub streams: Streams,
    /// After a takeover: the link that tells the old primary our epoch, until it has heard.
    pub fencing: Option<Link>,
    /// The majority's promises this primary serves under, and the word on stale standbys.
    pub lease: Lease,
    /// Every standby that ever attached, by heartbeat address: voters from then on, attached
    /// or not (a standby that is gone may come back and vote).
    /// (Only standbys that confirmed a whole snapshot: see `on_backup_frame`.)
    pub standbys: Vec<std::net::SocketAddr>,
    /// A lone primary said that it lost its lease (it waits for its slaves, see `renew`).
    pub said_lost: bool,
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
    /// A standby `id` said HELLO (its WELCOME is sent): stream it everything, replacing its
    /// own link of before if it had one (out of step from then on). `doubts`: this master's
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
        let old = self.streams.by_id(&id).map(|s| s.conn);
        if let Some(old) = old.and_then(|c| self.streams.remove(c)) {
            warn!(
                "standby {id} attached again: its link on connection {} is given up",
                old.conn
            );
            peers.close(old.conn, out);
        }
        // At the cap: one still catching up makes room (`Ha::attach_refusal`).
        if self.streams.len() >= MAX_STANDBYS {
            let catching_up = self.streams.iter().find(|s| !s.in_step()).map(|s| s.conn);
            if let Some(old) = catching_up.and_then(|c| self.streams.remove(c)) {
                warn!(
                    "standby {id} replaces standby {}, still catching up",
                    old.id
                );
                peers.close(old.conn, out);
            }
        }
        info!(
            "backup {id} attached on connection {conn}: streaming {} slaves and {} keys",
            slaves.live_count(),
            keys.len()
        );
        // Out of step until it has confirmed the whole snapshot: writes do not wait for it
        // meanwhile (once a majority knows).
        self.lease.set_stale(&stale_key(&id), true);
        // The other standbys, for it to vote for them (and they for it) once we are gone.
        let others: Vec<String> = (self.streams.iter().map(|s| s.id.clone()))
            .chain(self.standbys.iter().map(|hb| hb.to_string()))
            .collect();
        let stream = self.streams.add(conn, id, now);
        stream.snapshot(term, slaves, keys, doubts, out);
        for id in others {
            stream.tell(SyncEvent::Standby { id });
        }
    }

    /// PING every voter it reaches: its slaves, also those still reporting what they hold,
    /// and its standbys (a STALE instead, to one that has not confirmed the latest word on
    /// stale standbys and the voter count: a standby votes too, and tells a stale candidate
    /// so). A slave that hears nothing leaves (and its promise lapses).
    /// `epoch`: this primary's; the word's generation on the wire is scoped by it, so that a
    /// new primary's word replaces an older primary's at every voter.
    pub fn ping_voters(&mut self, slaves: &SlaveTable, out: &mut Outbox, epoch: u64, now: Instant) {
        let voters = slaves
            .connected()
            .map(|(idx, s)| (Voter::Slave(idx), s.conn))
            .chain(
                self.streams
                    .iter()
                    .map(|s| (Voter::Standby(s.conn), s.conn)),
            )
            .collect::<Vec<_>>();
        for (voter, conn) in voters {
            let (req, body) = self.lease_request(voter, epoch, now);
            out.send(conn, req, body);
        }
    }

    /// What `voter` gets from the lease: a PING, or a STALE if it has not confirmed the word.
    fn lease_request(&mut self, voter: Voter, epoch: u64, now: Instant) -> (u64, Body) {
        if self.lease.confirmed(voter) {
            return (self.lease.ping(now), Body::Ping);
        }
        let body = Body::Stale {
            gen: (epoch << 32) | (self.lease.gen & 0xffff_ffff),
            voters: self.lease.told().min(u16::MAX as usize) as u16,
            ids: self.lease.stale.clone(),
        };
        (self.lease.stale_word(now), body)
    }

    /// A standby in step stopped confirming the stream for longer than `limit` (frozen, or cut
    /// off): it is out of step from now on. Say so to the voters (writes wait until a majority
    /// knows) and let it go; it comes back through a new snapshot.
    pub fn detach_lagging(
        &mut self,
        peers: &mut Peers,
        out: &mut Outbox,
        now: Instant,
        limit: Duration,
    ) {
        let lagging: Vec<(ConnId, Duration)> = (self.streams.iter_mut())
            .filter(|s| s.in_step())
            .map(|s| (s.conn, s.lag(now)))
            .filter(|(_, lag)| *lag > limit)
            .collect();
        for (conn, lag) in lagging {
            let Some(s) = self.streams.remove(conn) else {
                continue;
            };
            warn!(
                "standby {} has not confirmed the stream for {} ms: it is out of step; letting \
                 it go",
                s.id,
                lag.as_millis()
            );
            self.lease.set_stale(&stale_key(&s.id), true);
            peers.close(s.conn, out);
        }
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
        if let Some(s) = self.streams.get_mut(conn) {
            s.heard(now);
        }
        match body {
            Body::Ping => out.send(conn, req, Body::Pong),
            // Its promise, in answer to our PING (`lease.rs`).
            Body::Pong if Lease::owns(req) => {
                if self.streams.get_mut(conn).is_some() {
                    self.lease.pong(Voter::Standby(conn), req, lease);
                    return BackupSays::Synced;
                }
            }
            Body::Pong => {}
            // A standby that withdrew asks to be released from its promises: only if this
            // primary has lost its lease (`Lease::release`).
            Body::Release => {
                let below = self.lease.release(Voter::Standby(conn), now);
                if below > 0 {
                    let id = self.streams.get_mut(conn).map(|s| s.id.clone());
                    info!(
                        "released standby {} from its promises: this primary has no majority",
                        id.as_deref().unwrap_or("(detached)")
                    );
                }
                out.send(conn, req, Body::Released { below });
            }
            Body::SyncAck => {
                if let Some(s) = self.streams.get_mut(conn) {
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
                        let id = s.id.clone();
                        if self.lease.set_stale(&stale_key(&id), false) {
                            info!("standby {id} is in step");
                        }
                        self.streams.push(SyncEvent::Standby { id });
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

    /// A standby's connection closed; returns whether it was attached (it is out of step
    /// from now on).
    pub fn backup_closed(&mut self, conn: ConnId) -> bool {
        if let Some(s) = self.streams.remove(conn) {
            warn!(
                "standby {} went away; {} standbys attached",
                s.id,
                self.streams.len()
            );
            self.lease.set_stale(&stale_key(&s.id), true);
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
            // A standby that took us for one that lost the primary: nobody to fence there.
            Body::Welcome { standby: true, .. } => {
                info!("the master the link reached is a standby; nothing to fence");
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

/// How the word on stale standbys (STALE, and a TAKEOVER's id) names a master: its heartbeat
/// address, which every master knows of every other (the full id only for a parseable one).
pub(crate) fn stale_key(id: &str) -> String {
    super::heartbeat_of(id).map_or_else(|| id.to_string(), |hb| hb.to_string())
}

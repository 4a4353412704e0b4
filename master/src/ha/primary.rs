//! The primary's side of high availability: attaching a backup (and replacing one), its
//! frames on the heartbeat socket, and, after a takeover, the link that tells the old primary
//! the new epoch.

use std::time::Instant;

use dsm_wire::{Body, ErrorCode};
use log::{info, warn};

use crate::doubts::Doubts;
use crate::keymap::KeyIndex;
use crate::outbox::{ConnId, Outbox};
use crate::peers::Peers;
use crate::slaves::SlaveTable;
use crate::term::Term;

use super::link::Link;
use super::stream::Stream;

#[derive(Default)]
pub(crate) struct Primary {
    /// The backup attached to this primary, if any.
    pub stream: Option<Stream>,
    /// After a takeover: the link that tells the old primary our epoch, until it has heard.
    pub fencing: Option<Link>,
}

/// What a backup's frame asks of the rest of the master.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BackupSays {
    Nothing,
    /// It confirmed SYNCs: writes waiting for it may commit.
    Synced,
    /// It took over with a higher epoch: step down.
    TookOver(u64),
    /// It asks for STATUS (answer request `req`).
    Status(u64),
}

impl Primary {
    /// A backup said HELLO (its WELCOME is sent): stream it everything, replacing any backup
    /// attached before.
    #[allow(clippy::too_many_arguments)]
    pub fn attach(
        &mut self,
        conn: ConnId,
        now: Instant,
        term: &Term,
        slaves: &SlaveTable,
        keys: &KeyIndex,
        doubts: &Doubts,
        peers: &mut Peers,
        out: &mut Outbox,
    ) {
        if let Some(old) = self.stream.take() {
            warn!("a new backup replaces the one on connection {}", old.conn);
            peers.close(old.conn, out);
        }
        info!(
            "backup attached on connection {conn}: streaming {} slaves and {} keys",
            slaves.live_count(),
            keys.len()
        );
        let stream = self.stream.insert(Stream::new(conn, now));
        stream.snapshot(term, slaves, keys, doubts, out);
    }

    /// A frame from a backup on our heartbeat socket.
    pub fn on_backup_frame(
        &mut self,
        conn: ConnId,
        req: u64,
        body: Body,
        epoch: u64,
        out: &mut Outbox,
        now: Instant,
    ) -> BackupSays {
        let ours = self.stream.as_mut().filter(|s| s.conn == conn);
        if let Some(s) = ours {
            s.heard(now);
        }
        match body {
            Body::Ping => out.send(conn, req, Body::Pong),
            Body::SyncAck => {
                if let Some(s) = self.stream.as_mut().filter(|s| s.conn == conn) {
                    s.acked(req);
                }
                return BackupSays::Synced;
            }
            Body::Hello { epoch: theirs, .. } if theirs > epoch => {
                // Answered before stepping down closes this link: the answer tells the new
                // primary that we know.
                out.send(
                    conn,
                    req,
                    Body::error(ErrorCode::NotPrimary, "stepped down"),
                );
                return BackupSays::TookOver(theirs);
            }
            Body::Status => return BackupSays::Status(req),
            other => {
                let text = format!("a backup may not send {:?}", other.opcode());
                out.send(conn, req, Body::error(ErrorCode::BadRequest, text));
            }
        }
        BackupSays::Nothing
    }

    /// A backup's connection closed; returns whether it was the attached one.
    pub fn backup_closed(&mut self, conn: ConnId) -> bool {
        if self.stream.as_ref().is_some_and(|s| s.conn == conn) {
            warn!("the backup master went away; going on without one");
            self.stream = None;
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

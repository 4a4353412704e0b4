//! High availability. The primary streams its state to one backup master over the heartbeat
//! link (a snapshot, then every change) and holds a lease that the backup's polls renew; the
//! backup applies the stream, polls the primary, and takes over with a higher epoch when the
//! primary falls silent. Why it is safe:
//! - versions carry the epoch in their top bits, so a new primary's writes outrank the old's;
//! - the primary answers nothing while it has not heard the backup for 2 intervals, and the
//!   backup waits for at least 3, so a frozen or cut-off primary stops before the backup starts;
//! - a write's key reaches the backup (an *intent*) before the client hears OK, so after a
//!   takeover the backup knows which keys may be newer than its map says, and asks the slaves.

use std::collections::HashSet;
use std::time::Instant;

use dsm_auth::{Handshake, RefusalLog};
use dsm_wire::{Body, ErrorCode, Role, ServerRole, SyncEvent};
use log::{info, warn};

use crate::core::{ConnId, Master, OpId, Out, Peer, Timer};
use crate::ops::OpKind;

/// Bits of a version below the epoch.
pub(crate) const EPOCH_SHIFT: u32 = 40;
/// Encoded bytes of events per SYNC frame: far below any frame limit the backup may have, so
/// a snapshot of large keys is never refused as one oversize frame.
const SYNC_FRAME_BYTES: usize = 256 * 1024;

/// Roughly what an event takes on the wire (an upper bound is all that matters).
fn event_size(e: &SyncEvent) -> usize {
    match e {
        SyncEvent::SlaveUp { id } | SyncEvent::SlaveDown { id } => 3 + id.len(),
        SyncEvent::Key { key, holders, .. } => {
            18 + key.len() + holders.iter().map(|h| 2 + h.len()).sum::<usize>()
        }
        SyncEvent::Intent { key } => 5 + key.len(),
    }
}

/// The first version a primary of `epoch` hands out.
pub(crate) fn first_version(epoch: u64) -> u64 {
    (epoch << EPOCH_SHIFT) | 1
}

/// The primary's view of its backup.
pub(crate) struct BackupLink {
    pub conn: ConnId,
    pub last_heard: Instant,
    pub seq_sent: u64,
    pub seq_acked: u64,
}

#[derive(Default)]
pub(crate) struct Ha {
    // Primary side.
    pub backup: Option<BackupLink>,
    pub events: Vec<SyncEvent>,
    /// Writes whose slaves have all ACKed but whose intent the backup has not yet confirmed.
    pub sync_waiters: Vec<OpId>,
    // Backup side (and a new primary fencing the old one).
    pub primary_conn: Option<ConnId>,
    pub primary_last_heard: Option<Instant>,
    pub link_attempt_at: Option<Instant>,
    pub link_failures: u32,
    /// Our HELLO on the link, until the primary's WELCOME (or refusal) ends it.
    pub link_handshake: Option<Handshake>,
    /// The link in use was WELCOMEd (authenticated, with a secret).
    pub link_ready: bool,
    /// Why the primary keeps refusing our link, logged without a line per attempt.
    pub link_refusals: RefusalLog,
    /// The primary has answered our HELLO at least once.
    pub ever_linked: bool,
    /// Whether this master's key map holds every key there is (false on a backup until the
    /// snapshot is complete, and after a takeover without one).
    pub incomplete: bool,
    /// Keys with an intent and no later state: after a takeover, read them from every slave.
    pub suspect: HashSet<Box<[u8]>>,
    pub grace_until: Option<Instant>,
    /// After a takeover: the old primary has not yet been told of the new epoch.
    pub fence_old: bool,
    /// Writes waiting for slaves to re-register after a takeover.
    pub deferred: Vec<OpId>,
}

impl Master {
    pub(crate) fn init_ha(&mut self, now: Instant) {
        if self.cfg.backup_of.is_some() {
            self.role = ServerRole::Backup;
            self.ha.incomplete = true;
            self.ha.link_attempt_at = Some(now);
            self.timers
                .insert(now + self.cfg.heartbeat_interval, Timer::Heartbeat);
        }
    }

    pub fn role(&self) -> ServerRole {
        self.role
    }

    pub(crate) fn on_heartbeat_timer(&mut self, now: Instant) {
        if self.role != ServerRole::Backup {
            return;
        }
        let interval = self.cfg.heartbeat_interval;
        if let (true, Some(heard)) = (self.ha.ever_linked, self.ha.primary_last_heard) {
            let silent = now.saturating_duration_since(heard);
            if silent > interval * self.cfg.heartbeat_misses.max(3) {
                return self.take_over(
                    &format!("no heartbeat answer for {} ms", silent.as_millis()),
                    now,
                );
            }
        }
        if let Some(conn) = self.ha.primary_conn {
            self.send(conn, 0, Body::Ping);
        }
        self.timers.insert(now + interval, Timer::Heartbeat);
    }

    /// A frame on the link we opened to the primary.
    pub(crate) fn on_primary_frame(&mut self, conn: ConnId, req: u64, body: Body, now: Instant) {
        self.ha.primary_last_heard = Some(now);
        let Some(body) = self.link_handshake(conn, req, body, now) else {
            return;
        };
        if self.role != ServerRole::Backup {
            // We are the new primary and the old one answered our HELLO: it knows our epoch,
            // unless it refused our credentials (then only the slaves' epochs fence it).
            match &body {
                Body::Error {
                    code: ErrorCode::Unauthorized,
                    text,
                } => warn!(
                    "the old primary refused our credentials ({text}); it was not told of                      epoch {}",
                    self.epoch
                ),
                _ => info!(
                    "the old primary has heard of epoch {}; closing the link",
                    self.epoch
                ),
            }
            self.ha.fence_old = false;
            self.ha.primary_conn = None;
            self.peers.remove(&conn);
            self.out.push(Out::Close(conn));
            return;
        }
        match body {
            Body::Welcome { epoch, .. } => {
                self.ha.ever_linked = true;
                self.epoch = self.epoch.max(epoch);
                info!("following the primary (epoch {epoch})");
            }
            Body::Sync {
                epoch,
                next_version,
                complete,
                events,
            } => {
                self.epoch = self.epoch.max(epoch);
                self.next_version = self.next_version.max(next_version);
                self.apply_sync(events, now);
                if complete && self.ha.incomplete {
                    self.ha.incomplete = false;
                    info!("snapshot complete: {} keys", self.keys.len());
                }
                self.send(conn, req, Body::SyncAck);
            }
            Body::Pong => {}
            // A primary that stepped down (it lost us for too long: we were frozen or cut off)
            // serves nobody; following it would leave no primary at all.
            Body::Error {
                code: ErrorCode::NotPrimary,
                text,
            } => self.take_over(&format!("the primary refuses this backup: {text}"), now),
            Body::Error { code, text } => {
                let why = format!("the primary refused this backup: {}: {text}", code.name());
                self.note_link_refusal(&why, now);
            }
            other => warn!("unexpected {:?} from the primary", other.opcode()),
        }
    }

    fn apply_sync(&mut self, events: Vec<SyncEvent>, now: Instant) {
        for e in events {
            match e {
                SyncEvent::SlaveUp { id } => {
                    // A fresh registration: any earlier incarnation's data no longer counts.
                    if let Some(old) = self.slaves.awaiting_by_id(&id) {
                        self.slaves.get_mut(old).awaiting = false;
                    }
                    self.slaves.register_awaiting(&id, now);
                }
                SyncEvent::SlaveDown { id } => {
                    if let Some(idx) = self.slaves.awaiting_by_id(&id) {
                        self.slaves.get_mut(idx).awaiting = false;
                    }
                }
                SyncEvent::Key {
                    key,
                    version,
                    holders,
                } => {
                    let idx = holders
                        .iter()
                        .map(|h| self.slaves.register_awaiting(h, now))
                        .collect::<Vec<_>>();
                    self.ha.suspect.remove(&key[..]);
                    self.record(&key, version, idx);
                }
                SyncEvent::Intent { key } => {
                    self.ha.suspect.insert(key.into_boxed_slice());
                }
            }
        }
    }

    /// Become the primary: a new epoch, versions above any the old primary gave, and a grace
    /// period for the slaves to re-register before their keys count as lost.
    pub(crate) fn take_over(&mut self, why: &str, now: Instant) {
        if self.role != ServerRole::Backup {
            return;
        }
        self.role = ServerRole::Primary;
        self.epoch += 1;
        self.next_version = self.next_version.max(first_version(self.epoch));
        self.ha.grace_until = Some(now + self.cfg.takeover_grace);
        self.timers
            .insert(now + self.cfg.takeover_grace, Timer::GraceEnd);
        self.ha.fence_old = true;
        warn!(
            "taking over as primary with epoch {} ({why}); {} keys known, {} to verify{}",
            self.epoch,
            self.keys.len(),
            self.ha.suspect.len(),
            if self.ha.incomplete {
                ", snapshot incomplete"
            } else {
                ""
            }
        );
        match self.ha.primary_conn {
            // If the old primary is only frozen, this HELLO is the first thing it reads. The
            // link was authenticated when it opened, so the HELLO needs no proof of its own.
            Some(conn) if self.ha.link_ready => self.send(
                conn,
                0,
                Body::Hello {
                    role: Role::Backup,
                    epoch: self.epoch,
                    id: String::new(),
                    nonce: None,
                },
            ),
            // A link still in (or refused at) its handshake: start a new one with our epoch.
            Some(conn) => {
                self.close_link(conn, now);
                self.ha.link_attempt_at = Some(now);
            }
            None => self.ha.link_attempt_at = Some(now),
        }
    }

    /// Start again the writes that waited for slaves (one registered, or the grace ended).
    pub(crate) fn restart_deferred(&mut self, now: Instant) {
        for id in std::mem::take(&mut self.ha.deferred) {
            // The slot may have been reused: only a started write without a version is ours.
            let waiting = self.ops.get(id).is_some_and(|op| {
                op.started
                    && op.reply.is_none()
                    && matches!(&op.kind, OpKind::Write(w) if w.version == 0)
            });
            if waiting {
                self.start_write(id, now);
            }
        }
    }

    pub(crate) fn on_grace_end(&mut self, now: Instant) {
        self.ha.grace_until = None;
        self.restart_deferred(now);
        let n = self.slaves.forget_awaiting();
        if n > 0 {
            warn!("{n} slaves known from the old primary did not come back; their copies are gone");
        }
        self.schedule_repairs();
    }

    pub(crate) fn in_grace(&self, now: Instant) -> bool {
        self.ha.grace_until.is_some_and(|t| now < t)
    }

    // ---- primary side ----

    /// A backup said HELLO on our heartbeat socket.
    pub(crate) fn attach_backup(&mut self, conn: ConnId, req: u64, epoch: u64, now: Instant) {
        if epoch > self.epoch {
            self.fence_self(&format!("a master with epoch {epoch} exists"), now);
        }
        if self.role != ServerRole::Primary {
            let text = format!("this master is {}, not a primary", self.role.name());
            return self.refuse_conn(conn, req, ErrorCode::NotPrimary, text);
        }
        if let Some(old) = self.ha.backup.take() {
            warn!("a new backup replaces the one on connection {}", old.conn);
            self.peers.remove(&old.conn);
            self.out.push(Out::Close(old.conn));
        }
        self.set_peer_kind(conn, Peer::Backup);
        self.welcome(conn, req, false);
        self.ha.backup = Some(BackupLink {
            conn,
            last_heard: now,
            seq_sent: 0,
            seq_acked: 0,
        });
        self.ha.events.clear();
        let mut events: Vec<SyncEvent> = self
            .slaves
            .live()
            .map(|(_, s)| SyncEvent::SlaveUp { id: s.id.clone() })
            .collect();
        let keys: Vec<Box<[u8]>> = self.keys.iter().map(|(k, _)| k.into()).collect();
        for key in &keys {
            events.push(self.key_event(key));
        }
        // Keys this master has not verified since its own takeover stay unverified on the
        // backup: without this, a second failover would trust a stale version (or none).
        events.extend(
            self.ha
                .suspect
                .iter()
                .map(|k| SyncEvent::Intent { key: k.to_vec() }),
        );
        // Likewise a map that is itself incomplete must not look complete to the backup.
        let complete = !self.ha.incomplete;
        info!(
            "backup attached on connection {conn}: streaming {} slaves and {} keys",
            self.slaves.live_count(),
            keys.len()
        );
        self.send_sync_chunked(events, complete);
    }

    fn key_event(&self, key: &[u8]) -> SyncEvent {
        let e = self.keys.get(key).expect("key listed");
        SyncEvent::Key {
            key: key.to_vec(),
            version: e.version,
            holders: e
                .holders
                .iter()
                .filter(|&&h| self.slaves.is_live(h))
                .map(|&h| self.slaves.get(h).id.clone())
                .collect(),
        }
    }

    /// Send `events` in as many SYNC frames as their size needs; only the last may say
    /// `complete`.
    fn send_sync_chunked(&mut self, events: Vec<SyncEvent>, complete: bool) {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for e in events {
            let size = event_size(&e);
            if !chunk.is_empty() && bytes + size > SYNC_FRAME_BYTES {
                self.send_sync(std::mem::take(&mut chunk), false);
                bytes = 0;
            }
            bytes += size;
            chunk.push(e);
        }
        self.send_sync(chunk, complete);
    }

    fn send_sync(&mut self, events: Vec<SyncEvent>, complete: bool) {
        let Some(b) = self.ha.backup.as_mut() else {
            return;
        };
        b.seq_sent += 1;
        let (conn, seq) = (b.conn, b.seq_sent);
        self.send(
            conn,
            seq,
            Body::Sync {
                epoch: self.epoch,
                next_version: self.next_version,
                complete,
                events,
            },
        );
    }

    /// Queue a change for the backup (sent, coalesced, at the end of the loop turn).
    pub(crate) fn sync_event(&mut self, e: SyncEvent) {
        if self.ha.backup.is_some() {
            self.ha.events.push(e);
        }
    }

    pub(crate) fn sync_key(&mut self, key: &[u8]) {
        if self.ha.backup.is_some() && self.keys.get(key).is_some() {
            let e = self.key_event(key);
            self.ha.events.push(e);
        }
    }

    /// The SYNC sequence number the next flushed events will carry (0: no backup).
    pub(crate) fn intent(&mut self, key: &[u8]) -> u64 {
        match &self.ha.backup {
            Some(b) => {
                let seq = b.seq_sent + 1;
                self.ha.events.push(SyncEvent::Intent { key: key.to_vec() });
                seq
            }
            None => 0,
        }
    }

    pub(crate) fn flush_sync(&mut self) {
        if !self.ha.events.is_empty() {
            let events = std::mem::take(&mut self.ha.events);
            let complete = !self.ha.incomplete;
            self.send_sync_chunked(events, complete);
        }
    }

    pub(crate) fn ha_synced(&self, seq: u64) -> bool {
        seq == 0 || self.ha.backup.as_ref().is_none_or(|b| b.seq_acked >= seq)
    }

    /// Whether this master may answer clients now.
    pub(crate) fn lease_ok(&self, now: Instant) -> bool {
        self.role == ServerRole::Primary
            && self
                .ha
                .backup
                .as_ref()
                .is_none_or(|b| now.saturating_duration_since(b.last_heard) <= self.cfg.lease())
    }

    /// On the primary, every tick: step down once the backup has been silent for longer than it
    /// waits before taking over (plus two intervals of margin). If it is alive and merely cut
    /// off from us, it is primary by now; our slaves, which we would otherwise keep PINGing,
    /// must go to it before its grace for them ends, or it gives their copies up. If it is
    /// frozen, it takes over when it resumes and finds us refusing it.
    pub(crate) fn check_backup_silence(&mut self, now: Instant) {
        let Some(b) = &self.ha.backup else {
            return;
        };
        let limit = self.cfg.heartbeat_interval * (self.cfg.heartbeat_misses.max(3) + 2);
        let silent = now.saturating_duration_since(b.last_heard);
        if self.role == ServerRole::Primary && silent > limit {
            let why = format!(
                "the backup has not been heard for {} ms: it has taken over, or will",
                silent.as_millis()
            );
            self.fence_self(&why, now);
        }
    }

    pub(crate) fn on_backup_frame(&mut self, conn: ConnId, req: u64, body: Body, now: Instant) {
        if let Some(b) = self.ha.backup.as_mut().filter(|b| b.conn == conn) {
            b.last_heard = now;
        }
        match body {
            Body::Ping => self.send(conn, req, Body::Pong),
            Body::SyncAck => {
                if let Some(b) = self.ha.backup.as_mut().filter(|b| b.conn == conn) {
                    b.seq_acked = b.seq_acked.max(req);
                }
                self.release_sync_waiters(now);
            }
            Body::Hello { epoch, .. } if epoch > self.epoch => {
                // Answered before stepping down closes this link: the answer tells the new
                // primary that we know.
                self.send(
                    conn,
                    req,
                    Body::error(ErrorCode::NotPrimary, "stepped down"),
                );
                self.fence_self(&format!("the backup took over with epoch {epoch}"), now);
            }
            Body::Status => {
                let status = self.status();
                self.send(conn, req, Body::StatusReply(status));
            }
            other => {
                let text = format!("a backup may not send {:?}", other.opcode());
                self.send(conn, req, Body::error(ErrorCode::BadRequest, text));
            }
        }
    }

    pub(crate) fn on_backup_closed(&mut self, conn: ConnId, now: Instant) {
        if self.ha.backup.as_ref().is_some_and(|b| b.conn == conn) {
            warn!("the backup master went away; going on without one");
            self.ha.backup = None;
            self.ha.events.clear();
            self.release_sync_waiters(now);
        }
    }

    fn release_sync_waiters(&mut self, now: Instant) {
        for id in std::mem::take(&mut self.ha.sync_waiters) {
            if self.ops.contains(id) && self.ops[id].reply.is_none() {
                if let OpKind::Write(w) = &self.ops[id].kind {
                    if w.pending.is_empty() {
                        self.commit_write(id, now);
                    }
                }
            }
        }
    }

    /// Stop being primary: answer no client, keep no slave.
    pub(crate) fn fence_self(&mut self, why: &str, now: Instant) {
        if self.role == ServerRole::Fenced {
            return;
        }
        warn!("stepping down, answering no more requests: {why}");
        self.role = ServerRole::Fenced;
        // A backup still attached must learn that it follows nobody (see on_primary_frame).
        if let Some(b) = self.ha.backup.take() {
            self.ha.events.clear();
            self.peers.remove(&b.conn);
            self.out.push(Out::Close(b.conn));
        }
        let conns: Vec<ConnId> = self.slaves.live().map(|(_, s)| s.conn).collect();
        for (_, s) in self.slaves.live_mut() {
            s.live = false;
        }
        for conn in conns {
            self.peers.remove(&conn);
            self.out.push(Out::Close(conn));
        }
        let open: Vec<OpId> = self
            .ops
            .iter()
            .filter(|(_, op)| op.reply.is_none())
            .map(|(id, _)| id)
            .collect();
        for id in open {
            let reply =
                crate::ops::cannot_vouch(&self.ops[id].kind, format!("stepped down ({why})"));
            self.complete(id, reply);
        }
        let keys: Vec<crate::ops::QueueKey> = self.queues.keys().cloned().collect();
        for key in keys {
            self.advance(&key, now);
        }
    }

    /// The error a non-primary gives a client request.
    pub(crate) fn not_primary_text(&self) -> String {
        match (self.role, self.cfg.backup_of) {
            (ServerRole::Backup, Some(p)) => {
                format!("this is the backup master; the primary's heartbeat is at {p}")
            }
            (ServerRole::Fenced, _) => "this master stepped down; use the other master".into(),
            _ => "lease lost: the backup has not been heard; try again".into(),
        }
    }
}

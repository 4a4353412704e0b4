//! High availability: what this master is (primary, backup, or fenced), as an enum that carries
//! the state of that role. The primary streams its state to one backup over the heartbeat link
//! (`stream.rs`, `primary.rs`) and holds a lease that the backup's polls renew; the backup
//! applies the stream, polls the primary (`follow.rs`, over the link of `link.rs`), and takes
//! over with a higher epoch when the primary falls silent. Why it is safe:
//! - versions carry the epoch in their top bits, so a new primary's writes outrank the old's;
//! - the primary answers nothing while it has not heard the backup for 2 intervals, and the
//!   backup waits for at least 3, so a frozen or cut-off primary stops before the backup starts;
//! - a write's key reaches the backup (an *intent*) before the client hears OK, so after a
//!   takeover the backup knows which keys may be newer than its map says, and asks the slaves.

mod follow;
mod link;
mod primary;
mod roles;
pub(crate) mod stream;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_wire::{BackupLink, Body, Role, ServerRole};
use log::warn;

use crate::config::Config;
use crate::doubts::Doubts;
use crate::effect::Effect;
use crate::idmap::ConnId;
use crate::peers::Peer;
use crate::timer::{Timer, Timers};

use follow::Follow;
use link::Link;
use primary::{BackupSays, Primary};
pub(crate) use roles::Roles;
use stream::Stream;

pub(crate) enum Ha {
    Primary(Primary),
    Backup(Follow),
    /// A former primary that learnt of a higher epoch: serves nothing.
    Fenced,
}

impl Ha {
    /// A backup of `--backup-of` if configured (its map incomplete until the snapshot is in,
    /// the first poll one interval from now), else a primary.
    pub fn new(cfg: &Config, timers: &mut Timers, doubts: &mut Doubts, now: Instant) -> Ha {
        if cfg.backup_of.is_none() {
            return Ha::Primary(Primary::default());
        }
        doubts.incomplete = true;
        timers.insert(now + cfg.heartbeat_interval, Timer::Heartbeat);
        Ha::Backup(Follow::new(now))
    }

    pub fn role(&self) -> ServerRole {
        match self {
            Ha::Primary(_) => ServerRole::Primary,
            Ha::Backup(_) => ServerRole::Backup,
            Ha::Fenced => ServerRole::Fenced,
        }
    }

    /// The primary–backup link for STATUS: on a primary its backup, on a backup its own link.
    pub fn backup_link(&self, doubts: &Doubts) -> BackupLink {
        match self {
            Ha::Primary(Primary {
                stream: Some(s), ..
            }) if s.in_step() => BackupLink::InStep,
            Ha::Primary(Primary {
                stream: Some(_), ..
            }) => BackupLink::CatchingUp,
            Ha::Backup(f) if f.link.ready && doubts.incomplete => BackupLink::CatchingUp,
            Ha::Backup(f) if f.link.ready => BackupLink::InStep,
            _ => BackupLink::None,
        }
    }

    /// On a backup whose link to the primary is WELCOMEd: that connection.
    pub fn following(&self) -> Option<ConnId> {
        match self {
            Ha::Backup(f) if f.link.ready => f.link.conn,
            _ => None,
        }
    }

    pub fn is_primary(&self) -> bool {
        matches!(self, Ha::Primary(_))
    }

    pub fn stream_mut(&mut self) -> Option<&mut Stream> {
        match self {
            Ha::Primary(p) => p.stream.as_mut(),
            _ => None,
        }
    }

    /// The outbound link in use: the backup's to its primary, or a new primary's to the old.
    fn link_mut(&mut self) -> Option<&mut Link> {
        match self {
            Ha::Backup(f) => Some(&mut f.link),
            Ha::Primary(p) => p.fencing.as_mut(),
            Ha::Fenced => None,
        }
    }

    /// Where the event loop should open the link now, if anywhere.
    pub fn link_target(&self, cfg: &Config, now: Instant) -> Option<SocketAddr> {
        let link = match self {
            Ha::Backup(f) => &f.link,
            Ha::Primary(p) => p.fencing.as_ref()?,
            Ha::Fenced => return None,
        };
        link.due(now).then_some(cfg.backup_of?)
    }

    /// Whether this master may answer clients now: a primary whose backup (if any) was heard
    /// within the lease.
    pub fn lease_ok(&self, cfg: &Config, now: Instant) -> bool {
        match self {
            Ha::Primary(p) => p
                .stream
                .as_ref()
                .is_none_or(|s| s.silent_for(now) <= cfg.lease()),
            _ => false,
        }
    }

    /// `None` while this master may answer clients, else why not (the text of NOT_PRIMARY).
    pub fn refusal(&self, cfg: &Config, now: Instant) -> Option<String> {
        (!self.lease_ok(cfg, now)).then(|| self.not_primary_text(cfg))
    }

    /// The error a non-primary gives a client request.
    pub fn not_primary_text(&self, cfg: &Config) -> String {
        match (self, cfg.backup_of) {
            (Ha::Backup(_), Some(p)) => {
                format!("this is the backup master; the primary's heartbeat is at {p}")
            }
            (Ha::Fenced, _) => "this master stepped down; use the other master".into(),
            _ => "lease lost: the backup has not been heard; try again".into(),
        }
    }

    /// The event loop connected the link.
    pub fn link_up(&mut self, conn: ConnId, addr: String, r: Roles<'_>) {
        r.peers.add(conn, addr.clone(), Peer::Primary);
        let role = match self {
            Ha::Backup(f) => {
                f.link_up(r.now);
                "backup"
            }
            _ => "new primary",
        };
        let (epoch, secret) = (r.term.epoch, r.cfg.secret.as_ref());
        if let Some(link) = self.link_mut() {
            link.up(conn, &addr, role, epoch, secret, r.peers, r.out, r.now);
        }
    }

    /// Opening the link failed (refused, unreachable, or reset while connecting).
    pub fn link_failed(&mut self, why: &str, r: Roles<'_>) {
        match self {
            Ha::Backup(f) => {
                if let Some(why) = f.link_failed(why, r.cfg, r.now) {
                    self.take_over(&why, r);
                }
            }
            Ha::Primary(p) => {
                if let Some(link) = p.fencing.as_mut() {
                    link.failed();
                    link.retry_at(r.now + Duration::from_secs(1));
                }
            }
            Ha::Fenced => {}
        }
    }

    /// A frame on the link this master opened to a primary's heartbeat socket.
    pub fn link_frame(&mut self, conn: ConnId, req: u64, body: Body, mut r: Roles<'_>) {
        let epoch = r.term.epoch;
        match self {
            Ha::Backup(f) => {
                if let Some(why) = f.on_frame(conn, req, body, &mut r) {
                    self.take_over(&why, r);
                }
            }
            Ha::Primary(p) => {
                let outranked = p.on_fencing_frame(conn, req, body, epoch, r.peers, r.out, r.now);
                if let Some(why) = outranked {
                    self.step_down(&why, r);
                }
            }
            Ha::Fenced => {
                r.peers.close(conn, r.out);
            }
        }
    }

    /// The link's connection closed.
    pub fn link_closed(&mut self, now: Instant) {
        let following = matches!(self, Ha::Backup(_));
        if let Some(link) = self.link_mut() {
            link.closed(following, now);
        }
    }

    /// The heartbeat timer, on a backup: poll the primary, or take over.
    pub fn heartbeat(&mut self, r: Roles<'_>) {
        let Ha::Backup(f) = self else {
            return;
        };
        if let Some(why) = f.on_heartbeat(r.cfg, r.timers, r.out, r.now) {
            self.take_over(&why, r);
        }
    }

    /// A backup said HELLO and was WELCOMEd: stream it everything.
    pub fn attach(&mut self, conn: ConnId, r: Roles<'_>) {
        if let Ha::Primary(p) = self {
            r.peers.set_kind(conn, Peer::Backup);
            let (term, slaves, keys, doubts) = (&*r.term, &*r.slaves, &*r.keys, &*r.doubts);
            p.attach(conn, r.now, term, slaves, keys, doubts, r.peers, r.out);
        }
    }

    /// A frame from the backup on our heartbeat socket.
    pub fn backup_frame(&mut self, conn: ConnId, req: u64, body: Body, r: Roles<'_>) {
        let Ha::Primary(p) = self else {
            return;
        };
        match p.on_backup_frame(conn, req, body, r.term.epoch, r.out, r.now) {
            BackupSays::Nothing => {}
            BackupSays::Synced => r.effects.push(Effect::Synced),
            BackupSays::Status(req) => r.effects.push(Effect::Status { conn, req }),
            BackupSays::TookOver(epoch) => {
                let why = format!("the backup took over with epoch {epoch}");
                self.step_down(&why, r);
            }
        }
    }

    /// A backup's connection closed.
    pub fn backup_closed(&mut self, conn: ConnId, effects: &mut Vec<Effect>) {
        if let Ha::Primary(p) = self {
            if p.backup_closed(conn) {
                effects.push(Effect::Synced);
            }
        }
    }

    /// On a primary, every tick: step down once the backup has been silent for longer than it
    /// waits before taking over (plus two intervals of margin). If it is alive and merely cut
    /// off from us, it is primary by now; our slaves, which we would otherwise keep PINGing,
    /// must go to it before its grace for them ends, or it gives their copies up. If it is
    /// frozen, it takes over when it resumes and finds us refusing it.
    pub fn check_backup_silence(&mut self, r: Roles<'_>) {
        let Some(silent) = self.stream_mut().map(|s| s.silent_for(r.now)) else {
            return;
        };
        let limit = r.cfg.heartbeat_interval * (r.cfg.heartbeat_misses.max(3) + 2);
        if silent > limit {
            let why = format!(
                "the backup has not been heard for {} ms: it has taken over, or will",
                silent.as_millis()
            );
            self.step_down(&why, r);
        }
    }

    /// Become the primary: a new epoch, versions above any the old primary gave, a grace
    /// period for the slaves to re-register before their keys count as lost, and the old
    /// primary told of the new epoch over the link.
    fn take_over(&mut self, why: &str, r: Roles<'_>) {
        if !matches!(self, Ha::Backup(_)) {
            return;
        }
        let Ha::Backup(follow) = std::mem::replace(self, Ha::Fenced) else {
            unreachable!("checked above")
        };
        r.term.advance();
        r.slaves.start_grace(r.now + r.cfg.takeover_grace);
        r.timers
            .insert(r.now + r.cfg.takeover_grace, Timer::GraceEnd);
        warn!(
            "taking over as primary with epoch {} ({why}); {} keys known, {} to verify{}",
            r.term.epoch,
            r.keys.len(),
            r.doubts.suspect_count(),
            if r.doubts.incomplete {
                ", snapshot incomplete"
            } else {
                ""
            }
        );
        let mut link = follow.link;
        match link.conn {
            // If the old primary is only frozen, this HELLO is the first thing it reads. The
            // link was authenticated when it opened, so the HELLO needs no proof of its own.
            Some(conn) if link.ready => r.out.send(
                conn,
                0,
                Body::Hello {
                    role: Role::Backup,
                    epoch: r.term.epoch,
                    id: String::new(),
                    boot: dsm_auth::boot_id(),
                    nonce: None,
                },
            ),
            // A link still in (or refused at) its handshake: start a new one with our epoch.
            Some(_) => {
                link.close(r.peers, r.out, r.now);
                link.retry_at(r.now);
            }
            None => link.retry_at(r.now),
        }
        *self = Ha::Primary(Primary {
            stream: None,
            fencing: Some(link),
        });
        r.effects.push(Effect::TookOver);
    }

    /// Stop being primary (or backup): answer no client. Closes the backup's stream and the
    /// link, and leaves the slaves and the open operations to `Master` (an effect). Nothing if
    /// this master had already stepped down.
    pub fn step_down(&mut self, why: &str, r: Roles<'_>) {
        let (stream, link) = match std::mem::replace(self, Ha::Fenced) {
            Ha::Fenced => return,
            Ha::Primary(p) => (p.stream, p.fencing),
            Ha::Backup(f) => (None, Some(f.link)),
        };
        warn!("stepping down, answering no more requests: {why}");
        // A backup still attached must learn that it follows nobody (see `follow.rs`).
        if let Some(s) = stream {
            r.peers.close(s.conn, r.out);
        }
        if let Some(conn) = link.and_then(|l| l.conn) {
            r.peers.close(conn, r.out);
        }
        r.effects.push(Effect::SteppedDown(why.to_string()));
    }
}

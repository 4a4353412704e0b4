//! High availability: what this master is (primary, standby, or fenced), as an enum that
//! carries the state of that role. The primary streams its state to every standby attached
//! over the heartbeat socket (`stream.rs`, `primary.rs`) and holds a lease that a majority of
//! the voters renews (`lease.rs`); a standby applies the stream, polls the primary (`follow.rs`,
//! over the link of `link.rs`), and takes over at a higher epoch once a majority votes for it
//! (`election.rs`). The voters are the masters and the slaves of the roster; a standby counts
//! once it has confirmed a snapshot. Why it is safe, with any number of standbys:
//! - **One primary at a time.** A voter that answers the primary's PING (or STALE) promises to
//!   vote for no other master for the lease, counted from when it got the PING (the primary
//!   counts from when it sent it, so its count ends first). A standby withdraws its promise (it
//!   stops answering) before it campaigns or votes, and votes only once its last promise has
//!   run out. The primary serves only while a majority's promises hold; a candidate takes over
//!   only with a majority's votes; the two majorities share a voter, who cannot have done both
//!   at once. Slaves and standbys vote under the same rules: an epoch above every one they
//!   have seen (a standby: also campaigned at or voted for, so one vote per epoch), a
//!   candidate that counts at least the voters their primary counted, their promise run out.
//! - **A release ends a promise early, for both sides, the primary's side first.** A standby
//!   that withdrew while its promise still holds may ask the primary (RELEASE) to release it;
//!   a primary that has lost its lease answers with the number of its next request and from
//!   then on counts none of that standby's answers to earlier requests, however late they
//!   come (`lease.rs`). The standby reads the answer after every request sent before it (one
//!   connection, in order) and drops exactly the promises it gave on that connection to
//!   those requests (`election.rs`). So each promise still ends for the primary no later than
//!   for the voter, and the argument above holds as it stands: a voter whose promise the
//!   primary counts at some instant still holds that promise then by its own count, so it
//!   has not voted or campaigned. A release cannot be abused: a primary whose
//!   lease holds releases nothing (it answers 0), and a release concerns only its own
//!   connection and requests below its number, so an old one (duplicated, late, from an
//!   earlier link or another primary) cannot void a promise given since, which the primary
//!   that regained its lease may count. Releasing changes nothing the standby knows or
//!   confirmed (the stream, the word on stale standbys), so the argument about acknowledged
//!   writes below is untouched.
//! - **New writes outrank old ones**: versions carry the epoch in their top bits, and every
//!   STORE and FETCH carries it; a slave that voted refuses older epochs.
//! - **No acknowledged write is lost, whichever standby wins.** A write's key goes to every
//!   standby first (an *intent*), and the client hears OK only once every standby *in step*
//!   has confirmed it (one that attached after the intent went out gets it again), and a
//!   majority has confirmed the current word on the masters *out of step* (STALE: standbys
//!   let go, still catching up, and on a new primary every other standby until it has attached;
//!   not the primary it replaced, which empties its map when it steps down).
//!   So a candidate either knows of every acknowledged write (it can distrust its map for those
//!   keys and ask the slaves), or it is out of step and one of its voters (the majorities meet)
//!   tells it so, or its map is incomplete: then it recovers from what the slaves hold before
//!   it serves.
//! - **Split votes end**: a campaign not won in time gives up and tries a higher epoch after a
//!   delay drawn per master; a standby that voted for another waits as long before a campaign
//!   of its own; a standby that finds a primary lets its supporters go to it.

mod election;
mod follow;
mod lease;
mod link;
mod primary;
mod roles;
pub(crate) mod stream;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_wire::{BackupLink, Body, Role, ServerRole};
use log::{info, warn};

use crate::config::Config;
use crate::doubts::Doubts;
use crate::effect::Effect;
use crate::idmap::ConnId;
use crate::peers::Peer;
use crate::timer::{Timer, Timers};

use election::Next;
use follow::Follow;
use link::Link;
use primary::{BackupSays, Primary};
pub(crate) use roles::Roles;
use stream::Streams;

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
        let others = cfg.other_masters();
        if others.is_empty() {
            return Ha::Primary(Primary::default());
        }
        Ha::follow(others, seed_of(cfg), timers, doubts, now)
    }

    /// A standby that looks for the primary among `targets` (not empty).
    fn follow(
        targets: Vec<SocketAddr>,
        seed: u64,
        timers: &mut Timers,
        doubts: &mut Doubts,
        now: Instant,
    ) -> Ha {
        doubts.incomplete = true;
        timers.insert(now, Timer::Heartbeat);
        Ha::Backup(Follow::new(targets, seed, now))
    }

    pub fn role(&self) -> ServerRole {
        match self {
            Ha::Primary(_) => ServerRole::Primary,
            Ha::Backup(_) => ServerRole::Backup,
            Ha::Fenced => ServerRole::Fenced,
        }
    }

    /// A standby that still supports the primary it follows (it has not lost it): only such
    /// a one names that primary to clients.
    pub fn follows_a_live_primary(&self) -> bool {
        matches!(self, Ha::Backup(f) if !f.election.withdrawn)
    }

    /// The primary–backup link for STATUS: on a primary its backup, on a backup its own link.
    pub fn backup_link(&self, doubts: &Doubts) -> BackupLink {
        match self {
            Ha::Primary(p) if p.streams.iter().any(|s| !s.in_step()) => BackupLink::CatchingUp,
            Ha::Primary(p) if !p.streams.is_empty() => BackupLink::InStep,
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

    /// The streams to the standbys, on a primary (with none attached, still the place that
    /// numbers writes' intents).
    pub fn stream_mut(&mut self) -> Option<&mut Streams> {
        match self {
            Ha::Primary(p) => Some(&mut p.streams),
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
    pub fn link_target(&self, now: Instant) -> Option<SocketAddr> {
        let link = match self {
            Ha::Backup(f) => &f.link,
            Ha::Primary(p) => p.fencing.as_ref()?,
            Ha::Fenced => return None,
        };
        link.due(now).then_some(link.target)
    }

    /// Whether this master may answer clients now: a primary whose lease holds (a majority
    /// of the voters promised it their support; see `lease.rs`).
    pub fn lease_ok(&self, now: Instant) -> bool {
        match self {
            Ha::Primary(p) => p.lease.holds(now),
            _ => false,
        }
    }

    /// Whether a write may be acknowledged without the standbys the primary last said were
    /// out of step: a majority knows they are.
    pub fn stale_settled(&self) -> bool {
        match self {
            Ha::Primary(p) => p.lease.stale_settled(),
            _ => true,
        }
    }

    /// A slave answered one of the lease's PINGs (or STALEs); returns whether writes that
    /// wait for the word on stale standbys may go on.
    pub fn slave_pong(&mut self, idx: crate::keymap::SlaveIdx, req: u64, lease: Duration) -> bool {
        match self {
            Ha::Primary(p) if lease::Lease::owns(req) => {
                let before = p.lease.stale_settled();
                p.lease.pong(lease::Voter::Slave(idx), req, lease);
                !before && p.lease.stale_settled()
            }
            _ => false,
        }
    }

    /// Every `lease / 4`, on a primary: count the voters (`voters`: the masters and the slaves
    /// of the roster), let go of a standby that stopped confirming the stream, PING every voter
    /// it reaches (a STALE instead, to a slave that has not confirmed the latest word on
    /// stale standbys), and step down once it has been without a majority for two leases;
    /// unless it is a lone primary (no other master known): it has no one to follow, and
    /// waits, answering no request, until its slaves promise it their support again (or a
    /// slave that saw a higher epoch registers: then it steps down, see `Master`).
    pub fn renew(&mut self, voters: usize, told: usize, r: Roles<'_>) {
        let Ha::Primary(p) = self else {
            return;
        };
        let now = r.now;
        p.lease.set_voters(voters);
        p.lease.set_told(told);
        // A standby in step that stops confirming the stream holds every write up; one still
        // taking its snapshot is out of step already and holds nothing up.
        p.detach_lagging(r.peers, r.out, now, r.cfg.lease);
        p.ping_voters(r.slaves, r.out, r.term.epoch, now);
        let lost = p.lease.check(now);
        let lone = r.cfg.other_masters().is_empty() && p.standbys.is_empty();
        if lost.is_some_and(|l| l >= r.cfg.lease * 2) {
            let why = format!(
                "no majority of the {} voters has promised support for {} ms",
                p.lease.voters(),
                lost.unwrap_or_default().as_millis()
            );
            if !lone {
                return self.step_down(&why, None, r);
            }
            if !std::mem::replace(&mut p.said_lost, true) {
                warn!(
                    "{why}: answering no request until a majority of the slaves supports this \
                     master again (it knows no other master to follow)"
                );
            }
        } else if lost.is_none() && std::mem::take(&mut p.said_lost) {
            info!("a majority of the slaves supports this master again: serving");
        }
    }

    /// `None` while this master may answer clients, else why not (the text of NOT_PRIMARY).
    pub fn refusal(&self, cfg: &Config, now: Instant) -> Option<String> {
        (!self.lease_ok(now)).then(|| self.not_primary_text(cfg))
    }

    /// The error a non-primary gives a client request.
    pub fn not_primary_text(&self, _cfg: &Config) -> String {
        match self {
            Ha::Backup(f) => format!(
                "this is a standby master; it follows the master whose heartbeat is at {}",
                f.link.target
            ),
            Ha::Fenced => "this master stepped down; use the other master".into(),
            Ha::Primary(_) => {
                "lease lost: no majority of the cluster's voters supports this master now; try \
                  again"
                    .into()
            }
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
        let (epoch, secret, me) = (r.term.epoch, r.cfg.secret.as_ref(), r.cfg.master_id());
        if let Some(link) = self.link_mut() {
            link.up(conn, &addr, role, epoch, me, secret, r.peers, r.out, r.now);
        }
    }

    /// Opening the link failed (refused, unreachable, or reset while connecting).
    pub fn link_failed(&mut self, why: &str, r: Roles<'_>) {
        match self {
            Ha::Backup(f) => f.link_failed(why, r.cfg, r.now),
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
                // Released by a primary that lost its lease: campaign now, not at the next
                // heartbeat.
                if f.on_frame(conn, req, body, &mut r) {
                    self.campaign(r);
                }
            }
            Ha::Primary(p) => {
                let outranked = p.on_fencing_frame(conn, req, body, epoch, r.peers, r.out, r.now);
                if let Some(why) = outranked {
                    self.step_down(&why, None, r);
                }
            }
            Ha::Fenced => {
                r.peers.close(conn, r.out);
            }
        }
    }

    /// The link's connection closed.
    pub fn link_closed(&mut self, now: Instant) {
        match self {
            Ha::Backup(f) => {
                let ready = f.link.ready;
                f.link_closed(ready, now);
            }
            Ha::Primary(Primary {
                fencing: Some(link),
                ..
            }) => link.closed(false, now),
            _ => {}
        }
    }

    /// The heartbeat timer, on a backup: poll the primary, withdraw from it if it is gone,
    /// and campaign with a majority of supporters.
    pub fn heartbeat(&mut self, r: Roles<'_>) {
        let Ha::Backup(f) = self else {
            return;
        };
        let counted = Ha::standby_voters(r.cfg, f, r.slaves);
        let voters = f.election.voters(counted);
        f.on_heartbeat(r.cfg, voters, r.timers, r.out, r.now);
        if f.stuck(r.cfg, r.now) {
            f.move_on(r.peers, r.out, r.now);
        }
        self.campaign(r);
    }

    /// The cluster's voters as a standby counts them: the masters it knows of (itself, the
    /// others it was told of, and standbys supporting it), and the slaves of the roster the
    /// primary streamed, or, with none yet (a new cluster), the slaves supporting it.
    fn standby_voters(cfg: &Config, follow: &Follow, slaves: &crate::slaves::SlaveTable) -> usize {
        // Every master this one knows of: those it was told of, and those it follows or looks
        // for (a stepped-down primary follows masters it was never told of).
        let mut masters = cfg.other_masters();
        let supporting = follow.election.supporters.values();
        let (standbys, supporters): (Vec<_>, Vec<_>) = supporting.partition(|s| s.master);
        let standbys = standbys.iter().filter_map(|s| heartbeat_of(&s.id));
        for t in follow.targets().iter().copied().chain(standbys) {
            if !masters.contains(&t) && t != cfg.heartbeat {
                masters.push(t);
            }
        }
        let supporters = supporters.len();
        let masters = 1 + masters.len();
        let mut ids: Vec<&str> = slaves.known().map(|(_, s)| s.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        masters + ids.len().max(supporters)
    }

    /// A standby's campaign: ask the supporters for their votes, or take over once elected.
    fn campaign(&mut self, r: Roles<'_>) {
        let Ha::Backup(f) = self else {
            return;
        };
        let counted = Ha::standby_voters(r.cfg, f, r.slaves);
        let retry = r.cfg.heartbeat_interval;
        match f.election.tick(r.now, counted, r.term.epoch, retry) {
            Next::Nothing => {}
            Next::Release(conns) => {
                for conn in conns {
                    r.peers.close(conn, r.out);
                }
            }
            Next::Ask(epoch, conns) => {
                // Named as STALE names masters: by heartbeat address.
                let (lease_ms, id) = (r.cfg.lease.as_millis() as u32, r.cfg.heartbeat.to_string());
                let voters = f.election.voters(counted).min(u16::MAX as usize) as u16;
                for conn in conns {
                    let Some(s) = f.election.supporters.get_mut(&conn) else {
                        continue;
                    };
                    // The same process of a slave the primary streamed to us: its copies are
                    // known; any other reports what it holds.
                    s.inventory =
                        r.doubts.incomplete || r.slaves.returning(&s.id, s.boot).is_none();
                    let body = Body::Takeover {
                        epoch,
                        inventory: s.inventory,
                        lease_ms,
                        id: id.clone(),
                        voters,
                    };
                    r.out.send(conn, 0, body);
                }
            }
            Next::Elected(epoch) => self.take_over("elected by a majority", epoch, r),
        }
    }

    /// A slave's HELLO on a standby: it lost its primary and supports us (its WELCOME says
    /// we are a standby). Returns whether it was taken.
    pub fn support(&mut self, conn: ConnId, id: &str, boot: u64, seen: u64) -> bool {
        let Ha::Backup(f) = self else {
            return false;
        };
        f.election.support(conn, id.to_string(), boot, seen, false);
        true
    }

    /// Another standby's HELLO (as a backup, at `seen`, an epoch no higher than ours) on our
    /// heartbeat socket: taken as a supporter only if this standby has withdrawn its own
    /// promise (it lost the primary too); one that still follows a primary sends it on (it
    /// would wait here for a vote that never comes). Returns whether it was taken.
    pub fn support_standby(&mut self, conn: ConnId, id: &str, boot: u64, seen: u64) -> bool {
        match self {
            Ha::Backup(f) if f.election.withdrawn && !f.supporting() => {
                f.election.support(conn, id.to_string(), boot, seen, true);
                true
            }
            _ => false,
        }
    }

    /// A frame from a supporter: its VOTE, or what it sent after voting (kept).
    pub fn supporter_frame(&mut self, conn: ConnId, body: Body, r: Roles<'_>) {
        let Ha::Backup(f) = self else {
            // Elected already: a late answer from one that had not voted; it redials.
            r.peers.close(conn, r.out);
            return;
        };
        match body {
            Body::Vote {
                granted,
                stale,
                voters: told,
            } => {
                let counted = Ha::standby_voters(r.cfg, f, r.slaves);
                if let Next::Elected(epoch) = f.election.vote(conn, granted, stale, told, counted) {
                    self.take_over("elected by a majority", epoch, r);
                }
            }
            Body::Pong | Body::Ping | Body::Status => {}
            other => {
                if !f.election.hold(conn, other) {
                    warn!("a supporter sent a frame before its vote; closing it");
                    r.peers.close(conn, r.out);
                }
            }
        }
    }

    /// A supporter's connection closed.
    pub fn supporter_closed(&mut self, conn: ConnId) {
        if let Ha::Backup(f) = self {
            f.election.gone(conn);
        }
    }

    /// A backup `id` said HELLO and was WELCOMEd: stream it everything (`changing`: the keys
    /// of the changes under way, see [`crate::ops::Ops::changing_keys`]).
    pub fn attach(&mut self, conn: ConnId, id: String, changing: &[Box<[u8]>], r: Roles<'_>) {
        if let Ha::Primary(p) = self {
            r.peers.set_kind(conn, Peer::Backup);
            let (term, slaves, keys) = (&*r.term, &*r.slaves, &*r.keys);
            let doubts = (&*r.doubts, changing);
            p.attach(conn, id, r.now, term, slaves, keys, doubts, r.peers, r.out);
        }
    }

    /// The cluster has `voters` voters now (a standby attached): the lease counts them, and
    /// every slave that has not confirmed the count gets it in a STALE at once.
    pub fn announce_voters(&mut self, voters: usize, told: usize, r: Roles<'_>) {
        if let Ha::Primary(p) = self {
            p.lease.set_voters(voters);
            p.lease.set_told(told);
            p.ping_voters(r.slaves, r.out, r.term.epoch, r.now);
        }
    }

    /// Slave `idx` registered on a new connection: tell it the voter count again (STALE).
    pub fn untold(&mut self, idx: crate::keymap::SlaveIdx) {
        if let Ha::Primary(p) = self {
            p.lease.untold(lease::Voter::Slave(idx));
        }
    }

    /// A slave that voted for this master (asked at `asked`) promised it support from then.
    pub fn voted(&mut self, idx: crate::keymap::SlaveIdx, asked: Instant, lease: Duration) {
        if let Ha::Primary(p) = self {
            p.lease.seed(lease::Voter::Slave(idx), asked + lease);
        }
    }

    /// Why a standby `id` may not attach now: [`primary::MAX_STANDBYS`] others are attached
    /// and in step (the same id, a restarted or reconnected standby, replaces its old link; at
    /// the cap a newcomer replaces one still catching up, never one that has proved it follows).
    pub fn attach_refusal(&self, id: &str) -> Option<String> {
        match self {
            Ha::Primary(p)
                if p.streams.len() >= primary::MAX_STANDBYS
                    && p.streams.by_id(id).is_none()
                    && p.streams.iter().all(|s| s.in_step()) =>
            {
                Some(format!(
                    "{} standbys are attached and in step, the most one primary streams to: try \
                     again once one is gone",
                    p.streams.len()
                ))
            }
            _ => None,
        }
    }

    /// The standbys (heartbeat addresses) that ever confirmed a whole snapshot from this
    /// primary.
    pub fn standbys(&self) -> &[SocketAddr] {
        match self {
            Ha::Primary(p) => &p.standbys,
            _ => &[],
        }
    }

    /// A frame from the backup on our heartbeat socket.
    pub fn backup_frame(&mut self, conn: ConnId, req: u64, body: Body, r: Roles<'_>) {
        let Ha::Primary(p) = self else {
            return;
        };
        let gen = p.lease.gen;
        let says = p.on_backup_frame(conn, req, body, r.term.epoch, r.cfg.lease, r.out, r.now);
        // A standby in step again: the voters hear it at once, not at the next renewal.
        if p.lease.gen != gen {
            p.ping_voters(r.slaves, r.out, r.term.epoch, r.now);
        }
        match says {
            BackupSays::Nothing => {}
            BackupSays::Synced => r.effects.push(Effect::Synced),
            BackupSays::Status(req) => r.effects.push(Effect::Status { conn, req }),
            BackupSays::TookOver(epoch, id) => {
                let why = format!("master {id} took over with epoch {epoch}");
                self.step_down(&why, heartbeat_of(&id), r);
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

    /// Become the primary at `epoch` (elected): versions above any the old primary gave, a
    /// grace period for the slaves to re-register before their keys count as lost, the
    /// supporters that voted for us taken as slaves, and the old primary told of the new
    /// epoch over the link.
    fn take_over(&mut self, why: &str, epoch: u64, r: Roles<'_>) {
        if !matches!(self, Ha::Backup(_)) {
            return;
        }
        let Ha::Backup(follow) = std::mem::replace(self, Ha::Fenced) else {
            unreachable!("checked above")
        };
        r.term.restart_at(epoch);
        // Its own connections say which slaves are live from now on.
        r.slaves.forget_primary_view();
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
        let stale = follow.election.stale();
        // The masters it knew as a standby are voters still (they may come back and vote).
        let standbys: Vec<SocketAddr> = (follow.targets().iter())
            .filter(|t| **t != r.cfg.heartbeat)
            .copied()
            .collect();
        let supporters = follow.election.supporters.into_iter().collect();
        let mut link = follow.link;
        // The link fences the primary we followed; it may be with another standby now.
        if follow.primary.is_some_and(|p| p != link.target) {
            link.close(r.peers, r.out, r.now);
            link = Link::new(follow.primary.unwrap_or(link.target), r.now);
        }
        match link.conn {
            // If the old primary is only frozen, this HELLO is the first thing it reads. The
            // link was authenticated when it opened, so the HELLO needs no proof of its own.
            Some(conn) if link.ready => r.out.send(
                conn,
                0,
                Body::Hello {
                    role: Role::Backup,
                    epoch: r.term.epoch,
                    id: r.cfg.master_id(),
                    boot: dsm_auth::boot_id(),
                    nonce: None,
                    limits: None,
                },
            ),
            // A link still in (or refused at) its handshake: start a new one with our epoch.
            Some(_) => {
                link.close(r.peers, r.out, r.now);
                link.retry_at(r.now);
            }
            None => link.retry_at(r.now),
        }
        // Every other standby is out of step with this new primary until it has attached and
        // confirmed a snapshot: one may hold a whole map from an older primary and miss what
        // we acknowledge. A majority hears so before our first write is acknowledged, and
        // tells such a master if it ever campaigns (it then recovers from the slaves). Not the
        // primary we followed: it can only campaign once it has stepped down, which empties
        // its map (or restarted, with none), and then it takes our snapshot first.
        let mut lease = lease::Lease::default();
        let old = follow.primary;
        for m in standbys.iter().chain(r.cfg.other_masters().iter()) {
            if Some(*m) != old {
                lease.set_stale(&m.to_string(), true);
            }
        }
        *self = Ha::Primary(Primary {
            fencing: Some(link),
            standbys,
            lease,
            ..Primary::default()
        });
        r.effects.push(Effect::TookOver { supporters, stale });
    }

    /// Stop being primary: answer no client, and become a standby of `to` (the master that
    /// took over, by heartbeat address, if known) or of the other masters this one knows, so
    /// that it rejoins by itself; with none, it stays fenced. Closes the backup's stream and
    /// the link, and leaves the slaves and the open operations to `Master` (an effect).
    /// Nothing if this master is not primary.
    pub fn step_down(&mut self, why: &str, to: Option<SocketAddr>, r: Roles<'_>) {
        let (streams, link, standbys) = match std::mem::replace(self, Ha::Fenced) {
            Ha::Primary(mut p) => (p.streams.take_all(), p.fencing, p.standbys),
            other => {
                *self = other;
                return;
            }
        };
        // Whom to follow: the master that took over, if known; the standbys we had (one is
        // likely elected); the masters we were told of.
        let attached = streams.iter().filter_map(|s| heartbeat_of(&s.id));
        let mut targets: Vec<SocketAddr> = to.into_iter().collect();
        let others = attached.chain(standbys).chain(r.cfg.other_masters());
        for m in others {
            if !targets.contains(&m) && m != r.cfg.heartbeat {
                targets.push(m);
            }
        }
        match targets.is_empty() {
            true => warn!("stepping down, answering no more requests: {why}"),
            false => warn!(
                "stepping down, answering no more requests: {why}; following {} as a standby",
                targets[0]
            ),
        }
        // Standbys still attached must learn that they follow nobody (see `follow.rs`).
        for s in streams {
            r.peers.close(s.conn, r.out);
        }
        if let Some(conn) = link.and_then(|l| l.conn) {
            r.peers.close(conn, r.out);
        }
        if !targets.is_empty() {
            // The new primary streams us its whole map: ours may be behind it.
            r.keys.reset();
            *self = Ha::follow(targets, seed_of(r.cfg), r.timers, r.doubts, r.now);
            if let Ha::Backup(f) = self {
                f.election.hold_back(r.now, r.cfg.lease * 2);
            }
        }
        r.effects.push(Effect::SteppedDown(why.to_string()));
    }
}

/// The heartbeat address in a master's id (`Config::master_id`: heartbeat, then client
/// address).
pub(crate) fn heartbeat_of(id: &str) -> Option<SocketAddr> {
    id.split(' ').next()?.parse().ok()
}

/// What makes this master's random draws differ from other masters' (its heartbeat address,
/// and the process).
fn seed_of(cfg: &Config) -> u64 {
    let addr = cfg.heartbeat;
    let port = u64::from(addr.port());
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => u128::from(v6) as u64,
    };
    dsm_auth::boot_id() ^ (ip << 16) ^ port.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

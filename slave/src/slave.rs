//! The slave as a state machine: its link to a master (which address, backoff, the connect
//! deadline, the handshake, master silence, the refusal log) and the [`Store`] it serves once
//! registered. No sockets and no clock (only the handshake's nonce comes from the kernel): the
//! event loop reports what happened with the time, sends the replies [`Slave::on_decoded`]
//! returns and carries out the [`Out`]s it drains.
//!
//! A slave is also a voter in the masters' elections (`master/src/ha/mod.rs`). Serving a
//! primary, it answers the primary's PINGs, and each answer is a promise: for the lease the
//! primary's WELCOME named, counted from that PING, it supports no other master. A slave that
//! loses its primary (silence, a closed connection) looks for another master; a standby WELCOMEs
//! it as a *supporter*, and asks for its vote with TAKEOVER when it has a majority of them. The
//! vote is granted only for an epoch above every one the slave has seen and once its promise
//! has run out; granted, the slave serves that master from then on, and refuses the old one
//! (its epoch is lower). Its primary's STALE says how many voters the cluster has; the vote
//! is refused to a standby that counts fewer (it could call a minority a majority), and every
//! VOTE says the count, so that the standby counts them all.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_auth::{Handshake, RefusalLog, Secret, Step, Terms};
use dsm_wire::{Body, Decoded, ErrorCode, Frame, Role};
use log::{debug, error, info, warn};

use crate::config::Config;
use crate::dialer::Dialer;
use crate::store::{Reply, Store, StoreParts};

/// A connect that has not completed in this long is given up, and the next address tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A slave supports a standby this long without being asked for its vote, then looks for a
/// primary again (from the first address).
pub const SUPPORT_FOR: Duration = Duration::from_secs(3);

/// While STOREs wait for a sync (`--fsync always`) that has taken this long, the slave says
/// it is alive this often, with a PONG nobody asked for (request id 0): the master drops a
/// slave that has neither ACKed in `--ack-timeout-ms` (200 by default) nor said anything
/// since, and under a write-only load it sends a busy slave nothing else to answer. Heard,
/// the slave is slow, not gone: suspected, its late writes moved to other slaves, and kept.
pub const STILL_HERE: Duration = Duration::from_millis(50);

/// What the event loop must do for the slave, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Start a connect to this master address (without blocking), then report it with
    /// [`Slave::on_connected`] or [`Slave::on_connect_failed`]. There is no connection now.
    Connect(SocketAddr),
    /// Queue this frame on the connection to the master.
    Send(Frame),
    /// Close the connection, or give up the connect under way, after writing what is queued
    /// (best effort). Nothing more is reported about it: no `on_closed` follows.
    Close,
    /// Registered for the first time: print the ready line (`dsm-slave ready: id=ID`).
    Ready,
    /// Stop the process with this error (exit status 1): the masters refuse this slave's
    /// HELLO for a reason only the operator can fix (see [`GIVE_UP_AFTER`]).
    GiveUp(String),
}

/// A slave whose HELLO every master it tries answers BAD_REQUEST (its id is another live
/// slave's, its limits are below the master's) for this long gives up: retrying cannot help.
/// Not at the first refusal: a slave restarted at once may say HELLO before the master has
/// read the close of its previous process's connection.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3);

/// Where the link to the master stands.
enum Phase {
    /// No connection; try the dialer's address at `at`.
    Waiting { at: Instant },
    /// A connect to `addr` is under way; give it up at `deadline`.
    Connecting { addr: SocketAddr, deadline: Instant },
    /// Connected to `addr`, not yet registered: every frame goes to the handshake and none to
    /// the store, so a stranger (or, with a secret, a master that cannot prove it) cannot
    /// reset it.
    Handshaking { hs: Handshake, addr: SocketAddr },
    /// Registered with a primary: frames go to the store.
    Registered,
    /// WELCOMEd by the standby at `addr`: its supporter until its TAKEOVER, or until `until`.
    Supporting { addr: SocketAddr, until: Instant },
}

pub struct Slave {
    id: String,
    /// This process's boot id (the HELLO's `boot`).
    boot: u64,
    secret: Option<Secret>,
    master_timeout: Duration,
    dialer: Dialer,
    phase: Phase,
    /// When the master last sent a frame; meaningful while connected.
    last_heard: Instant,
    /// The lease of the primary served (its WELCOME's, or its TAKEOVER's).
    lease: Duration,
    /// Until then this slave supports no master but its primary: the lease from the last
    /// PING (or STALE) of the primary.
    promised_until: Instant,
    /// The standby masters (their ids) the primary said are out of step with it, and the
    /// generation of that word.
    stale: (u64, Vec<String>),
    /// The cluster's voters as the last primary served counted them (its STALE); 0: not told.
    voters: u16,
    store: Store,
    /// Why registering keeps failing, said once rather than at every retry.
    refusals: RefusalLog,
    /// Told in HELLO.
    limits: dsm_wire::Limits,
    /// Since when every HELLO has been refused BAD_REQUEST (reset by a WELCOME as a slave).
    refused_since: Option<Instant>,
    /// The primary said it drops us (`dsm_wire::DROPPED`): when the connection closes, we
    /// register with it again rather than look for another master.
    dropped: bool,
    /// The ready line has been asked for (it is printed once, at the first registration).
    announced: bool,
    /// Draws of [`Slave::jitter`] so far.
    draws: u64,
    /// When the last unasked PONG went out ([`STILL_HERE`]).
    still_here: Instant,
    /// The last tick at which ACKs waited for a sync: until then the master's silence is
    /// ours (it sends nothing new while every write it has waits for our ACKs), so it counts
    /// only from here.
    excused: Instant,
    out: Vec<Out>,
}

impl Slave {
    /// A slave with an empty store in memory that will try its first master at the first
    /// [`Slave::on_tick`]. Panics if `cfg.masters` is empty.
    pub fn new(cfg: &Config, now: Instant) -> Slave {
        Slave::with_store(cfg, Store::in_memory(cfg.max_memory), now)
    }

    /// [`Slave::new`] serving `store` (loaded from its log, say).
    pub fn with_store(cfg: &Config, store: Store, now: Instant) -> Slave {
        Slave {
            id: cfg.id.clone(),
            boot: cfg.boot,
            secret: cfg.secret.clone(),
            master_timeout: cfg.master_timeout,
            dialer: Dialer::new(cfg.masters.clone()),
            phase: Phase::Waiting { at: now },
            last_heard: now,
            lease: Duration::ZERO,
            promised_until: now,
            stale: (0, Vec::new()),
            voters: 0,
            store,
            refusals: RefusalLog::default(),
            limits: dsm_wire::Limits {
                masters: distinct(&cfg.masters),
                ..cfg.limits
            },
            refused_since: None,
            dropped: false,
            announced: false,
            draws: 0,
            still_here: now,
            excused: now,
            out: Vec::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether a primary has registered us on the current connection.
    pub fn registered(&self) -> bool {
        matches!(self.phase, Phase::Registered)
    }

    /// Whether a standby holds us as its supporter.
    pub fn supporting(&self) -> bool {
        matches!(self.phase, Phase::Supporting { .. })
    }

    /// How long a master may be silent before this slave leaves it: `--master-timeout-ms`,
    /// and never less than the lease it promised (and a margin for clocks that run apart).
    fn patience(&self) -> Duration {
        self.master_timeout.max(self.lease + self.lease / 4)
    }

    /// When [`Slave::on_tick`] has something to do: the next attempt, the connect deadline,
    /// or the moment the master will have been silent too long; or when
    /// [`Slave::end_turn`] must sync the log.
    pub fn next_deadline(&self) -> Instant {
        let link = match &self.phase {
            Phase::Waiting { at } => *at,
            Phase::Connecting { deadline, .. } => *deadline,
            Phase::Handshaking { .. } | Phase::Registered => self.silent_from() + self.patience(),
            Phase::Supporting { until, .. } => (*until).min(self.silent_from() + self.patience()),
        };
        let link = self.still_here_due().map_or(link, |at| at.min(link));
        self.store
            .next_deadline()
            .map_or(link, |sync| sync.min(link))
    }

    /// Since when the master has been silent for nothing: its last frame, or the end of a
    /// sync that our ACKs waited for.
    fn silent_from(&self) -> Instant {
        self.last_heard.max(self.excused)
    }

    /// When to say PONG unasked: a sync the ACKs wait for has run [`STILL_HERE`], and so
    /// long since the last such PONG.
    fn still_here_due(&self) -> Option<Instant> {
        if !self.registered() {
            return None;
        }
        let started = self.store.sync_started()?;
        Some((started + STILL_HERE).max(self.still_here + STILL_HERE))
    }

    /// Whether the next turn has work whatever happens (a compaction under way): the event
    /// loop should look at its socket and come straight back.
    pub fn busy(&self) -> bool {
        self.store.busy()
    }

    pub fn has_out(&self) -> bool {
        !self.out.is_empty() || self.store.has_answers()
    }

    /// Move what the event loop must do into `out`, oldest first.
    pub fn drain_out(&mut self, out: &mut Vec<Out>) {
        self.forward_answers();
        out.append(&mut self.out);
    }

    /// The answers of STOREs the log has settled go to the master; to no one if the
    /// connection they came on is gone (the master counts them as unanswered).
    fn forward_answers(&mut self) {
        if !self.store.has_answers() {
            return;
        }
        let mut frames = Vec::new();
        self.store.take_answers(&mut frames);
        if self.registered() {
            self.out.extend(frames.into_iter().map(Out::Send));
        }
    }

    /// The frames of one read are handled: without `--fsync always`, write the STOREs they
    /// brought to the log now, so their ACKs go out with the other answers; with it, they
    /// wait for [`Slave::end_turn`], which writes the whole turn's in one `write` and hands
    /// the sync to the syncer thread.
    pub fn after_read(&mut self) {
        if !self.store.groups_commits() {
            self.store.commit();
        }
    }

    /// The end of a loop turn: write what the turn staged (with `--fsync always`, ACK what
    /// the last sync covered and start the next); sync if the interval is up; move a
    /// compaction along.
    pub fn end_turn(&mut self, now: Instant) {
        self.store.end_turn(now);
    }

    /// The master read our replies off a full socket: it is alive even if its own frames wait
    /// unread behind our cap on unsent replies, so its silence counts from now.
    pub fn on_progress(&mut self, now: Instant) {
        self.excused = self.excused.max(now);
    }

    /// Bytes of the master's frames arrived (part of a large STORE, say): it is alive and
    /// sending, so its silence counts from now even before a whole frame is in. Only once
    /// registered: a peer still proving who it is gets no time for a trickle.
    pub fn on_receiving(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Registered | Phase::Supporting { .. }) {
            self.excused = self.excused.max(now);
        }
    }

    /// Time has passed: connect when the wait is over, give up a connect that takes too long,
    /// and leave a master that has been silent for `master_timeout`.
    pub fn on_tick(&mut self, now: Instant) {
        if self.store.sync_started().is_some() {
            self.excused = now;
        }
        if self.still_here_due().is_some_and(|at| now >= at) {
            self.still_here = now;
            self.out.push(Out::Send(Frame::new(0, Body::Pong)));
        }
        match &self.phase {
            Phase::Waiting { at } if now >= *at => self.connect(now),
            Phase::Connecting { addr, deadline } if now >= *deadline => {
                let ms = CONNECT_TIMEOUT.as_millis();
                warn!("cannot reach master {addr}: no connection after {ms} ms");
                self.out.push(Out::Close);
                self.retry(now);
            }
            Phase::Handshaking { .. } | Phase::Registered | Phase::Supporting { .. }
                if now >= self.silent_from() + self.patience() =>
            {
                let silent = now.saturating_duration_since(self.last_heard);
                self.out.push(Out::Close);
                let why = format!("no word from the master for {} ms", silent.as_millis());
                self.lost(&why, now);
            }
            Phase::Supporting { addr, until } if now >= *until => {
                info!("standby {addr} has not asked for our vote in time; looking for a primary");
                self.out.push(Out::Close);
                self.next_master(now);
            }
            _ => {}
        }
    }

    /// The connect asked for by the last [`Out::Connect`] completed: say HELLO.
    pub fn on_connected(&mut self, now: Instant) {
        let Phase::Connecting { addr, .. } = self.phase else {
            debug!("a connection completed that was not asked for");
            return;
        };
        // While refused, the refusal log says enough: no line per retry.
        if !self.refusals.failing() {
            info!("connected to master {addr}; registering as '{}'", self.id);
        }
        let (secret, epoch, id) = (self.secret.as_ref(), self.store.epoch(), self.id.clone());
        match Handshake::start(secret, 0, Role::Slave, epoch, id, self.boot) {
            Ok((hs, mut hello)) => {
                if let Body::Hello { limits, .. } = &mut hello.body {
                    *limits = Some(self.limits);
                }
                self.out.push(Out::Send(hello));
                self.phase = Phase::Handshaking { hs, addr };
                self.last_heard = now;
            }
            Err(e) => {
                warn!("cannot read a nonce from /dev/urandom: {e}");
                self.out.push(Out::Close);
                self.retry(now);
            }
        }
    }

    /// The connect asked for by the last [`Out::Connect`] failed (the event loop has let go
    /// of it): try the next address after the backoff.
    pub fn on_connect_failed(&mut self, why: &str, now: Instant) {
        let Phase::Connecting { addr, .. } = self.phase else {
            return;
        };
        warn!("cannot reach master {addr}: {why}");
        self.retry(now);
    }

    /// A buffer for the connection to read the next large frame into, if the store has one
    /// free ([`Store::spare_buffer`]).
    pub fn spare_buffer(&mut self) -> Option<Vec<u8>> {
        self.store.spare_buffer()
    }

    /// A whole frame taken out of the connection with the buffer it was read into
    /// (`buf[range]`; the event loop takes large STOREs so: `node.rs`): a STORE from the
    /// primary becomes its record without a copy ([`Store::store_taken`]); any other frame,
    /// or a STORE in any other phase, is handled as [`Slave::on_decoded`] handles it.
    pub fn on_taken(
        &mut self,
        buf: Vec<u8>,
        range: std::ops::Range<usize>,
        now: Instant,
    ) -> Result<Option<Reply<'_>>, dsm_wire::WireError> {
        let Some((decoded, _)) = dsm_wire::decode_borrowed(&buf[range], usize::MAX)? else {
            return Ok(None);
        };
        let at = |part: &[u8]| {
            let start = part.as_ptr() as usize - buf.as_ptr() as usize;
            start..start + part.len()
        };
        let parts = match self.phase {
            Phase::Registered => StoreParts::of(&decoded),
            _ => None,
        };
        let Some(s) = parts else {
            return Ok(self.on_decoded(decoded, now));
        };
        let (key, value) = (at(s.key), at(s.value));
        let (req, epoch, version, id) = (s.req, s.epoch, s.version, s.id);
        self.last_heard = now;
        self.store.set_now(now);
        Ok(self
            .store
            .store_taken(req, epoch, version, id, buf, key, value))
    }

    /// One frame from the master; the answer to queue on the connection at once, if one is
    /// owed. A FETCHED borrows its value from the store, so it is copied once, into the
    /// socket buffer. Anything else to do (during the handshake) is in the outbox.
    #[inline]
    pub fn on_decoded(&mut self, decoded: Decoded<'_>, now: Instant) -> Option<Reply<'_>> {
        match self.phase {
            Phase::Registered => {
                self.last_heard = now;
                self.store.set_now(now);
                match &decoded {
                    // Each answer to the primary's PING (or STALE) is a promise (module docs).
                    Decoded::Owned(Frame {
                        body: Body::Ping, ..
                    }) => self.promised_until = now + self.lease,
                    Decoded::Owned(Frame {
                        req_id,
                        body: Body::Stale { gen, voters, ids },
                    }) => {
                        self.promised_until = now + self.lease;
                        self.voters = *voters;
                        if *gen > self.stale.0 {
                            self.stale = (*gen, ids.clone());
                        }
                        return Some(Reply::Frame(Frame::new(*req_id, Body::Pong)));
                    }
                    // The primary drops us and closes: it is alive, so we come straight back.
                    Decoded::Owned(Frame {
                        body:
                            Body::Error {
                                code: ErrorCode::Unavailable,
                                text,
                            },
                        ..
                    }) if dsm_wire::says_dropped(text) => {
                        warn!("the master dropped us: {text}");
                        self.dropped = true;
                        return None;
                    }
                    _ => {}
                }
                self.store.respond_decoded(decoded)
            }
            Phase::Supporting { addr, .. } => {
                self.last_heard = now;
                let frame = decoded.into_frame();
                let reply = match frame.body {
                    Body::Takeover {
                        epoch,
                        inventory,
                        lease_ms,
                        id,
                        voters,
                    } => self.vote(addr, &id, epoch, inventory, lease_ms, voters, now),
                    Body::Ping => Body::Pong,
                    other => {
                        let op = other.opcode();
                        debug!("standby {addr} sent {op:?} to a supporter; ignored");
                        return None;
                    }
                };
                Some(Reply::Frame(Frame::new(frame.req_id, reply)))
            }
            Phase::Handshaking { .. } => {
                self.last_heard = now;
                self.handshake(decoded.into_frame(), now);
                None
            }
            // From a connection already given up.
            Phase::Waiting { .. } | Phase::Connecting { .. } => None,
        }
    }

    /// The standby `id` at `addr`, counting `voters` voters, asks our vote to take over at
    /// `epoch`. Granted only for an epoch above every one seen, by a standby that counts at
    /// least the voters our primary counted, and once the promise to the old primary has run out; then this slave serves the new primary (and reports what it holds if asked).
    #[allow(clippy::too_many_arguments)]
    fn vote(
        &mut self,
        addr: SocketAddr,
        id: &str,
        epoch: u64,
        inventory: bool,
        lease_ms: u32,
        voters: u16,
        now: Instant,
    ) -> Body {
        let stale = self.stale.1.iter().any(|s| s == id);
        let refused = Body::Vote {
            granted: false,
            stale,
            voters: self.voters,
        };
        if epoch <= self.store.epoch() {
            let seen = self.store.epoch();
            info!("vote refused to {addr}: epoch {epoch} is not above {seen}, already seen");
            return refused;
        }
        if voters < self.voters {
            info!(
                "vote refused to {addr}: it counts {voters} voters, our primary counted {}",
                self.voters
            );
            return refused;
        }
        if now < self.promised_until {
            let left = self.promised_until.duration_since(now).as_millis();
            info!("vote refused to {addr}: still promised to the primary for {left} ms");
            return refused;
        }
        info!(
            "voted for {addr} to take over at epoch {epoch}{}; serving it, {} keys held",
            if stale {
                " (it was said to be out of step)"
            } else {
                ""
            },
            self.store.len()
        );
        self.phase = Phase::Registered;
        self.dialer.registered();
        // The vote is our first promise to the new primary: it counts it from when it asked.
        self.lease = Duration::from_millis(lease_ms.into());
        self.promised_until = now + self.lease;
        // A master out of step cannot trust its map: it needs our report whatever it asked.
        self.store.on_welcome(epoch, inventory || stale);
        if !self.announced {
            self.announced = true;
            self.out.push(Out::Ready);
        }
        Body::Vote {
            granted: true,
            stale,
            voters: self.voters,
        }
    }

    /// The connection to the master is gone, or unusable (a bad frame, a failed write); the
    /// event loop has closed it.
    pub fn on_closed(&mut self, why: &str, now: Instant) {
        match self.phase {
            Phase::Connecting { .. } => self.on_connect_failed(why, now),
            Phase::Handshaking { .. } | Phase::Registered | Phase::Supporting { .. } => {
                self.lost(why, now)
            }
            Phase::Waiting { .. } => {}
        }
    }

    fn connect(&mut self, now: Instant) {
        let addr = self.dialer.target();
        self.phase = Phase::Connecting {
            addr,
            deadline: now + CONNECT_TIMEOUT,
        };
        self.out.push(Out::Connect(addr));
    }

    fn handshake(&mut self, frame: Frame, now: Instant) {
        let Phase::Handshaking { hs, addr } = &mut self.phase else {
            return;
        };
        let addr = *addr;
        match hs.on_frame(frame) {
            Step::Send(auth) => self.out.push(Out::Send(auth)),
            Step::Welcomed(terms) if terms.standby && self.dialer.untried_remain() => {
                // A primary may be at another address (the dialer's module docs): try them
                // all before supporting a standby.
                info!(
                    "master {addr} is a standby (epoch {}); trying the other masters for a \
                     primary first",
                    terms.epoch
                );
                self.refusals = RefusalLog::default();
                self.out.push(Out::Close);
                self.dialer.pass_over();
                self.phase = Phase::Waiting { at: now };
            }
            Step::Welcomed(terms) if terms.standby => {
                // How long to wait for its TAKEOVER: SUPPORT_FOR and up to as much again, drawn
                // per slave, so that slaves moving between standbys do not move in step.
                let wait = SUPPORT_FOR + SUPPORT_FOR.mul_f64(self.jitter());
                info!(
                    "master {addr} is a standby: supporting it (epoch {}) until it takes over \
                     or {} ms pass",
                    terms.epoch,
                    wait.as_millis()
                );
                self.refusals = RefusalLog::default();
                self.phase = Phase::Supporting {
                    addr,
                    until: now + wait,
                };
                // Up, and in the cluster: the ready line (a standby counts; an election follows).
                if !self.announced {
                    self.announced = true;
                    self.out.push(Out::Ready);
                }
            }
            Step::Welcomed(terms) => self.welcomed(terms, now),
            Step::Refused { code, text } => {
                self.out.push(Out::Close);
                let why = format!("the master refused us: {}: {text}", code.name());
                if code == ErrorCode::BadRequest {
                    let since = *self.refused_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= GIVE_UP_AFTER {
                        error!("not registered: {why}; giving up");
                        self.out
                            .push(Out::GiveUp(format!("master {addr} refused us: {text}")));
                        return;
                    }
                }
                self.refused(&why, now);
            }
            Step::Distrust { why, reply } => {
                self.out.push(Out::Send(reply));
                self.out.push(Out::Close);
                self.refused(&why, now);
            }
        }
    }

    fn welcomed(&mut self, terms: Terms, now: Instant) {
        self.phase = Phase::Registered;
        self.dropped = false;
        self.refused_since = None;
        self.dialer.registered();
        self.refusals = RefusalLog::default();
        self.lease = Duration::from_millis(terms.lease_ms.into());
        self.promised_until = now;
        info!(
            "registered with master (epoch {}), {} keys held",
            terms.epoch,
            self.store.len()
        );
        if !self.announced {
            self.announced = true;
            self.out.push(Out::Ready);
        }
        self.store.on_welcome(terms.epoch, terms.inventory);
    }

    /// Whether a report of what is held is under way, so the event loop should call
    /// [`Slave::pump_inventory`] again as soon as the connection has room.
    pub fn reporting(&self) -> bool {
        self.registered() && self.store.reporting()
    }

    /// Queue up to `frames` more INVENTORY frames of the report under way. A bounded amount
    /// per turn, so the slave answers PINGs and FETCHes while a large report goes out.
    pub fn pump_inventory(&mut self, frames: usize) {
        if !self.registered() {
            return;
        }
        for _ in 0..frames {
            let Some(frame) = self.store.next_inventory() else {
                return;
            };
            self.out.push(Out::Send(frame));
        }
    }

    /// Registering failed: say why (without repeating ourselves every retry), try again.
    fn refused(&mut self, why: &str, now: Instant) {
        if let Some(line) = self.refusals.note(why, now) {
            warn!("not registered: {line}; retrying");
        }
        self.retry(now);
    }

    /// The connection ended (the caller has closed it or asked for it to be closed).
    fn lost(&mut self, why: &str, now: Instant) {
        // What it staged is written and applied (under `--fsync always`, once synced); its
        // answers have no one to go to (the master counts those STOREs as unanswered).
        self.store.forget_answers();
        if let Phase::Handshaking { .. } = self.phase {
            // Closed before any WELCOME: a master that refuses without a word, or one that died.
            return self.refused(why, now);
        }
        if let Phase::Supporting { addr, .. } = self.phase {
            info!("no longer supporting standby {addr}: {why}; looking for a primary");
            self.next_master(now);
            return;
        }
        if std::mem::take(&mut self.dropped) {
            // The master said it dropped us and is alive: the same address again, at once.
            info!("registering with the master that dropped us again");
            self.dialer.registered();
            self.phase = Phase::Waiting {
                at: now + crate::dialer::MIN_BACKOFF,
            };
            return;
        }
        warn!("lost the master: {why}; trying the next address");
        debug!("{} keys held", self.store.len());
        self.retry(now);
    }

    /// A fraction in [0, 1) that differs between slaves and between calls: the boot id and
    /// a counter, mixed (no clock, no kernel call).
    fn jitter(&mut self) -> f64 {
        self.draws = self.draws.wrapping_add(1);
        let mut x = self.boot ^ self.draws.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Leave a standby that did not take over: try the next master at once (in turn, so a
    /// standby first in the list does not keep us from the primary).
    fn next_master(&mut self, now: Instant) {
        self.dialer.new_round();
        self.phase = Phase::Waiting { at: now };
    }

    fn retry(&mut self, now: Instant) {
        let wait = self.dialer.failed();
        self.phase = Phase::Waiting { at: now + wait };
    }
}

/// How many different master addresses `masters` holds (told in HELLO: see
/// [`dsm_wire::Limits`]).
fn distinct(masters: &[std::net::SocketAddr]) -> u16 {
    let mut m = masters.to_vec();
    m.sort_unstable();
    m.dedup();
    u16::try_from(m.len()).unwrap_or(u16::MAX)
}

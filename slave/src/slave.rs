//! The slave as a state machine: its link to a master (which address, backoff, the connect
//! deadline, the handshake, master silence, the refusal log) and the [`Store`] it serves once
//! registered. No sockets and no clock (only the handshake's nonce comes from the kernel): the
//! event loop reports what happened with the time, sends the replies [`Slave::on_decoded`]
//! returns and carries out the [`Out`]s it drains.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_auth::{Handshake, RefusalLog, Secret, Step};
use dsm_wire::{Body, Decoded, Frame, Role};
use log::{debug, info, warn};

use crate::config::Config;
use crate::dialer::Dialer;
use crate::store::{Reply, Store};

/// A connect that has not completed in this long is given up, and the next address tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

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
}

/// Where the link to the master stands.
enum Phase {
    /// No connection; try the dialer's address at `at`.
    Waiting { at: Instant },
    /// A connect to `addr` is under way; give it up at `deadline`.
    Connecting { addr: SocketAddr, deadline: Instant },
    /// Connected, not yet registered: every frame goes to the handshake and none to the
    /// store, so a stranger (or, with a secret, a master that cannot prove it) cannot reset it.
    Handshaking { hs: Handshake },
    /// Registered: frames go to the store.
    Registered,
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
    store: Store,
    /// Why registering keeps failing, said once rather than at every retry.
    refusals: RefusalLog,
    /// The ready line has been asked for (it is printed once, at the first registration).
    announced: bool,
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
            store,
            refusals: RefusalLog::default(),
            announced: false,
            still_here: now,
            excused: now,
            out: Vec::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether a master has registered us on the current connection.
    pub fn registered(&self) -> bool {
        matches!(self.phase, Phase::Registered)
    }

    /// When [`Slave::on_tick`] has something to do: the next attempt, the connect deadline,
    /// or the moment the master will have been silent too long; or when
    /// [`Slave::end_turn`] must sync the log.
    pub fn next_deadline(&self) -> Instant {
        let link = match &self.phase {
            Phase::Waiting { at } => *at,
            Phase::Connecting { deadline, .. } => *deadline,
            Phase::Handshaking { .. } | Phase::Registered => {
                self.silent_from() + self.master_timeout
            }
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
            Phase::Handshaking { .. } | Phase::Registered
                if now >= self.silent_from() + self.master_timeout =>
            {
                let silent = now.saturating_duration_since(self.last_heard);
                self.out.push(Out::Close);
                let why = format!("no word from the master for {} ms", silent.as_millis());
                self.lost(&why, now);
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
            Ok((hs, hello)) => {
                self.out.push(Out::Send(hello));
                self.phase = Phase::Handshaking { hs };
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

    /// One frame from the master; the answer to queue on the connection at once, if one is
    /// owed. A FETCHED borrows its value from the store, so it is copied once, into the
    /// socket buffer. Anything else to do (during the handshake) is in the outbox.
    #[inline]
    pub fn on_decoded(&mut self, decoded: Decoded<'_>, now: Instant) -> Option<Reply<'_>> {
        match self.phase {
            Phase::Registered => {
                self.last_heard = now;
                self.store.set_now(now);
                self.store.respond_decoded(decoded)
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

    /// The connection to the master is gone, or unusable (a bad frame, a failed write); the
    /// event loop has closed it.
    pub fn on_closed(&mut self, why: &str, now: Instant) {
        match self.phase {
            Phase::Connecting { .. } => self.on_connect_failed(why, now),
            Phase::Handshaking { .. } | Phase::Registered => self.lost(why, now),
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
        let Phase::Handshaking { hs } = &mut self.phase else {
            return;
        };
        match hs.on_frame(frame) {
            Step::Send(auth) => self.out.push(Out::Send(auth)),
            Step::Welcomed { epoch, inventory } => self.welcomed(epoch, inventory),
            Step::Refused { code, text } => {
                self.out.push(Out::Close);
                let why = format!("the master refused us: {}: {text}", code.name());
                self.refused(&why, now);
            }
            Step::Distrust { why, reply } => {
                self.out.push(Out::Send(reply));
                self.out.push(Out::Close);
                self.refused(&why, now);
            }
        }
    }

    fn welcomed(&mut self, epoch: u64, inventory: bool) {
        self.phase = Phase::Registered;
        self.dialer.registered();
        self.refusals = RefusalLog::default();
        info!(
            "registered with master (epoch {epoch}), {} keys held",
            self.store.len()
        );
        if !self.announced {
            self.announced = true;
            self.out.push(Out::Ready);
        }
        self.store.on_welcome(epoch, inventory);
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
        warn!("lost the master: {why}; trying the next address");
        debug!("{} keys held", self.store.len());
        self.retry(now);
    }

    fn retry(&mut self, now: Instant) {
        let wait = self.dialer.failed();
        self.phase = Phase::Waiting { at: now + wait };
    }
}

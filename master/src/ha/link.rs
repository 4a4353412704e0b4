//! The link this master opens to a primary's heartbeat socket (as its backup, or as a new
//! primary that must fence the old one): when to open it, the handshake as the connecting side,
//! and reopening it after a failure or a refusal, without hammering a primary that refuses us.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_auth::{boot_id, Handshake, RefusalLog, Secret, Step};
use dsm_wire::{Body, Frame, Role};
use log::{debug, info, warn};

use crate::outbox::{ConnId, Outbox};
use crate::peers::Peers;

/// How long to wait before asking a primary that refused us (or a lost link) again.
const REFUSED_PAUSE: Duration = Duration::from_secs(1);

pub(crate) struct Link {
    /// The heartbeat socket it opens to.
    pub target: SocketAddr,
    /// The connection, once the event loop has opened it.
    pub conn: Option<ConnId>,
    /// When to open it next (None: not wanted until something sets it).
    attempt_at: Option<Instant>,
    /// Opening it failed this many times in a row.
    pub failures: u32,
    /// Our HELLO on the link, until the primary's WELCOME (or refusal) ends it.
    handshake: Option<Handshake>,
    /// The link in use was WELCOMEd (authenticated, with a secret).
    pub ready: bool,
    /// Connections opened so far: the number of the one in use (a promise given on one is
    /// released only by an answer on the same).
    pub session: u64,
    /// Why the primary keeps refusing our link, logged without a line per attempt.
    refusals: RefusalLog,
}

impl Link {
    /// A link to `target`, to open at `at`.
    pub fn new(target: SocketAddr, at: Instant) -> Link {
        Link {
            target,
            conn: None,
            attempt_at: Some(at),
            failures: 0,
            handshake: None,
            ready: false,
            session: 0,
            refusals: RefusalLog::default(),
        }
    }

    /// Whether the event loop should open the link now.
    pub fn due(&self, now: Instant) -> bool {
        self.conn.is_none() && self.attempt_at.is_some_and(|t| now >= t)
    }

    /// Open it again at `at`.
    pub fn retry_at(&mut self, at: Instant) {
        self.attempt_at = Some(at);
    }

    /// The event loop connected the link: say HELLO as a backup at `epoch`, with this
    /// master's id `me` (`role` for the log).
    #[allow(clippy::too_many_arguments)]
    pub fn up(
        &mut self,
        conn: ConnId,
        addr: &str,
        role: &str,
        epoch: u64,
        me: String,
        secret: Option<&Secret>,
        peers: &mut Peers,
        out: &mut Outbox,
        now: Instant,
    ) {
        self.conn = Some(conn);
        self.session += 1;
        self.attempt_at = None;
        self.failures = 0;
        if self.refusals.failing() {
            debug!("heartbeat link to {addr} up again; saying HELLO");
        } else {
            info!("heartbeat link to {addr} up; saying HELLO as {role}, epoch {epoch}");
        }
        self.ready = false;
        match Handshake::start(secret, 0, Role::Backup, epoch, me, boot_id()) {
            Ok((hs, hello)) => {
                self.handshake = Some(hs);
                out.frame(conn, hello);
            }
            Err(e) => {
                warn!("cannot read a nonce from /dev/urandom: {e}; dropping the link");
                self.close(peers, out, now);
            }
        }
    }

    /// Close the link; the next attempt waits a second so that a primary which refuses us is
    /// not asked again in a tight loop.
    pub fn close(&mut self, peers: &mut Peers, out: &mut Outbox, now: Instant) {
        if let Some(conn) = self.conn.take() {
            peers.close(conn, out);
        }
        self.handshake = None;
        self.attempt_at = Some(now + REFUSED_PAUSE);
    }

    /// The link's connection closed.
    pub fn closed(&mut self, following: bool, now: Instant) {
        self.conn = None;
        self.handshake = None;
        // A link closed before its WELCOME was most likely refused: do not hammer the primary.
        let pause = match self.ready {
            true => Duration::ZERO,
            false => REFUSED_PAUSE,
        };
        self.attempt_at = Some(now + pause);
        if following && self.ready {
            warn!("heartbeat link to the primary closed; reopening it");
        } else {
            debug!("heartbeat link closed before it was WELCOMEd; retrying in {pause:?}");
        }
    }

    /// Opening the link failed; returns how many times in a row.
    pub fn failed(&mut self) -> u32 {
        self.failures += 1;
        self.failures
    }

    /// While our HELLO on the link is unanswered: run the handshake. Returns the body to handle
    /// as before authentication existed (WELCOME or ERROR), or `None` when nothing is left.
    pub fn handshake(
        &mut self,
        req: u64,
        body: Body,
        peers: &mut Peers,
        out: &mut Outbox,
        now: Instant,
    ) -> Option<Body> {
        let Some(hs) = self.handshake.as_mut() else {
            return Some(body);
        };
        match hs.on_frame(Frame::new(req, body)) {
            Step::Send(auth) => {
                out.frame(self.conn?, auth);
                None
            }
            Step::Welcomed(terms) => {
                self.handshake = None;
                self.ready = true;
                self.refusals = RefusalLog::default();
                Some(terms.welcome(None))
            }
            Step::Refused { code, text } => {
                self.handshake = None;
                Some(Body::Error { code, text })
            }
            Step::Distrust { why, reply } => {
                self.note_refusal(&format!("heartbeat link: {why}"), now);
                out.frame(self.conn?, reply);
                self.close(peers, out, now);
                None
            }
        }
    }

    /// The primary refused us: log it, without a line per attempt.
    pub fn note_refusal(&mut self, why: &str, now: Instant) {
        if let Some(line) = self.refusals.note(why, now) {
            warn!("{line}");
        }
    }
}

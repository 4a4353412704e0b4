//! The master's mio event loop: the slab key is the token, frames go into [`Master`], its outbox
//! comes back out as coalesced writes (one `write` per connection per loop turn at most).
//!
//! Replies to a client that still has requests in progress may wait a little longer: while the
//! master has more work at hand (a non-blocking poll finds events), and while it spins for
//! answers due from slaves (`--spin-us`, see [`Server::wait`]), they are held, to go out
//! together with the rest of that client's replies, for at most `--coalesce-us`. A master
//! with nothing else to do writes them at once, so an idle or lightly loaded master adds no
//! delay, and a connection with one request in flight never waits. Under pipelined load this
//! cuts the master's `send` calls, and the wake-ups they cost the clients, by about half
//! (see `bench-results/hot-path-2026-11-23.md`).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_net::dial::{self, Progress};
use dsm_net::{spin, Conn, Io, Oversize};
use dsm_wire::{Body, BodyRef, ErrorCode, Frame, Opcode, WireError};
use log::{debug, info, warn};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::config::{Config, UNAUTHENTICATED_MAX_FRAME};
use crate::frames::Frames;
use crate::hold::Held;
use crate::listen::{Listeners, HEARTBEAT, LISTENER};
use crate::master::Master;
use crate::outbox::Out;
use crate::share::Share;
use crate::stalls::Stalls;
use crate::web::{Web, METRICS};

/// Reads (of up to 64 KiB each, or the rest of a large frame) from one connection per turn,
/// and bytes: a peer that sends faster than the master handles its frames (a slave answering
/// a burst of large FETCHes) must not keep the loop from every other connection, and from its
/// timers, until it pauses.
const READS_PER_TURN: usize = 16;
const READ_BYTES_PER_TURN: usize = 1 << 20;

/// Bytes asked per `read` of a client while the buffer budget is spent, before its next
/// frame's header is judged: a client then paused keeps at most this much of it (or of
/// requests it pipelined), not a 64 KiB chunk.
const SPENT_READ: usize = UNAUTHENTICATED_MAX_FRAME;

/// The write buffer an idle client keeps (see [`Server::flush`]): a few small replies'
/// worth, so a client asking one thing at a time does not allocate per reply.
const IDLE_WRITE_BUFFER: usize = 4096;

/// Bind, say where on stdout, and serve until an I/O error on the poller itself.
pub fn run(cfg: Config) -> io::Result<()> {
    let mut server = Server::bind(cfg)?;
    // A closed stdout only loses the line: the master serves on.
    let metrics = match server.metrics_addr() {
        Some(addr) => format!(" metrics={addr}"),
        None => String::new(),
    };
    let _ = writeln!(
        io::stdout(),
        "dsm-master ready: listen={} heartbeat={}{metrics}",
        server.local_addr()?,
        server.heartbeat_addr()?
    );
    info!(
        "master listening on {} (heartbeat {}), R={}",
        server.local_addr()?,
        server.heartbeat_addr()?,
        server.cfg.replicas
    );
    loop {
        server.turn()?;
    }
}

pub struct Server {
    poll: Poll,
    events: Events,
    listeners: Listeners,
    conns: Slab<Conn>,
    core: Master,
    out: Vec<Out>,
    /// Connections with bytes queued since their last flush.
    dirty: Vec<usize>,
    /// This turn's events, copied out of `events` (kept to reuse its allocation): token,
    /// readable, writable, hung up (see `Conn::hung_up`).
    ready: Vec<(Token, bool, bool, bool)>,
    /// Clients we stopped reading because they are over their share of the buffer budget, or
    /// the budget is spent (see [`Server::over_budget`]), in the order they were paused. An
    /// entry whose flag in `is_paused` is down is stale (its connection closed), skipped when
    /// it comes up.
    paused: Vec<usize>,
    /// By slab key: whether the connection is in `paused` (membership without a scan, so ten
    /// thousand paused clients cost a turn no more than their number).
    is_paused: Vec<bool>,
    /// Bytes queued on every connection and not yet written.
    queued: usize,
    /// Connections left with bytes unread when their budget ran out: edge-triggered polling
    /// will not report them again, so the next turn reads them without waiting.
    unread: Vec<usize>,
    /// The outbound link to a primary's heartbeat socket (slab key), and whether it connected.
    link: Option<(usize, bool)>,
    /// Clients whose replies wait in a full socket, and since when (`--stalled-client-ms`).
    stalls: Stalls,
    /// By slab key: the length of the frame a client has begun to send and the budgets let in
    /// (`Server::admit_frame`), until it is decoded; 0 for none.
    receiving: Vec<usize>,
    /// Their sum, counted in the budget with what is queued and in flight.
    receiving_total: usize,
    /// Clients with such a frame half arrived, and since when no byte of it has.
    half_sent: Stalls,
    /// Client connections whose queued replies are held back (see the module doc).
    held: Held,
    /// Scratch list of held connections due to be written.
    due: Vec<usize>,
    /// `--metrics`: the HTTP endpoint, whose connections are in `conns` too (`web.rs`).
    web: Option<Web>,
    /// The buffer budgets (`share.rs`).
    share: Share,
    /// The one buffer every connection reads into (`Conn::lend`): a connection keeps only
    /// the bytes of a frame not yet whole when its event is handled, none once idle.
    scratch: Vec<u8>,
    /// Buffers of large WRITEs taken with their frames (`take_large_write`), to read into
    /// again once free.
    frames: Frames,
    /// When a client's request was last decoded, until the spin after it (`--client-spin-us`)
    /// is over.
    client_seen: Option<Instant>,
    cfg: Config,
}

impl Server {
    pub fn bind(cfg: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let (listen, heartbeat) = (cfg.listen, cfg.heartbeat);
        let listeners = Listeners::bind(listen, heartbeat, poll.registry())?;
        let web = match cfg.metrics {
            Some(addr) => Some(Web::bind(addr, poll.registry())?),
            None => None,
        };
        // The addresses bound (port 0 picks one): this master's id among masters and STATUS
        // name them.
        let cfg = Config {
            listen: listeners.local_addr()?,
            heartbeat: listeners.heartbeat_addr()?,
            ..cfg
        };
        Ok(Server {
            poll,
            events: Events::with_capacity(1024),
            listeners,
            conns: Slab::new(),
            core: Master::new(cfg.clone(), Instant::now()),
            out: Vec::new(),
            dirty: Vec::new(),
            ready: Vec::new(),
            paused: Vec::new(),
            is_paused: Vec::new(),
            queued: 0,
            unread: Vec::new(),
            link: None,
            stalls: Stalls::new(cfg.stalled_client),
            receiving: Vec::new(),
            receiving_total: 0,
            half_sent: Stalls::new(cfg.stalled_client),
            held: Held::new(cfg.coalesce),
            due: Vec::new(),
            web,
            share: Share {
                client: cfg.max_client_memory,
                total: cfg.max_buffer_memory,
                frame: cfg.max_frame(),
                small: crate::ops::SMALL_RESERVE as usize,
            },
            scratch: Vec::new(),
            frames: Frames::default(),
            client_seen: None,
            cfg,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners.local_addr()
    }

    pub fn heartbeat_addr(&self) -> io::Result<SocketAddr> {
        self.listeners.heartbeat_addr()
    }

    /// Where `/metrics` is served, with `--metrics`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.web.as_ref().and_then(|w| w.local_addr().ok())
    }

    /// One loop iteration: wait for events or the next timer, handle them, flush.
    pub fn turn(&mut self) -> io::Result<()> {
        self.maybe_open_link(Instant::now());
        self.apply_out();
        self.flush_dirty();
        if let Err(e) = self.wait() {
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        // Timers fire as of this moment, not as of the end of the turn: a turn that took long
        // (a key index growing at a million keys) must not expire an ACK whose answer is
        // already in the socket, unread. Those timers fire next turn, after the read.
        let polled_at = Instant::now();
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| {
            let hung_up = dsm_net::conn::hangs_up(e);
            (
                e.token(),
                e.is_readable() || hung_up,
                e.is_writable(),
                hung_up,
            )
        }));
        for &(token, readable, writable, hung_up) in &ready {
            match token {
                LISTENER | HEARTBEAT => self.accept(token),
                METRICS => self.accept_http(),
                Token(key) if self.link == Some((key, false)) => {
                    if readable || writable {
                        self.link_progress(key)
                    }
                }
                Token(key) if self.web.as_ref().is_some_and(|w| w.owns(key)) => {
                    self.serve_http(key)
                }
                Token(key) => {
                    if hung_up {
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.hung_up();
                        }
                    }
                    if writable && self.conns.contains(key) {
                        self.flush(key);
                    }
                    if readable && self.conns.contains(key) {
                        self.read(key);
                    }
                }
            }
        }
        self.ready = ready;
        self.read_unread();
        self.core.on_tick(polled_at);
        self.census_step();
        self.apply_out();
        self.flush_dirty();
        self.cut_stalled(Instant::now());
        self.resume_paused();
        self.core.end_turn();
        Ok(())
    }

    /// Walk a slice of the key map for the census (`census.rs`) when a pass is wanted; when
    /// it ends, the core answers the STATUS requests that waited (through the outbox) and
    /// the HTTP requests that waited are served.
    fn census_step(&mut self) {
        if !self.core.census_busy() || !self.core.census_step() {
            return;
        }
        let Some(web) = self.web.as_ref() else {
            return;
        };
        for key in web.census_done(&self.core) {
            self.serve_http(key);
        }
    }

    /// Wait for events. With `--spin-us` and requests waiting on slaves, first poll without
    /// sleeping (yielding the CPU between polls) for that long: a reply that comes back
    /// within it is picked up without the cost of waking a sleeping process, which on a VM
    /// can be tens of microseconds per hop. Replies held for clients stay held through that
    /// spin, so the answers it picks up go out in the same write; they are written before the
    /// loop blocks. The spin ends at the next timer at the latest, and the blocking poll
    /// waits until that timer.
    fn wait(&mut self) -> io::Result<()> {
        if !self.unread.is_empty() || self.core.census_busy() {
            // Bytes wait in some sockets already, or a census pass is under way: look for
            // other events, do not sleep.
            self.release_held();
            return self.poll.poll(&mut self.events, Some(Duration::ZERO));
        }
        let spin = !self.cfg.spin.is_zero() && self.core.in_flight().1 > 0;
        let mut until = Instant::now() + self.cfg.spin;
        if let Some(timer) = self.next_deadline() {
            until = until.min(timer);
        }
        if !self.held.is_empty() {
            // More work at hand, or slave answers due within the spin: handle them first.
            // None: write what was held, then wait.
            let held_until = if spin { until } else { Instant::now() };
            if spin::poll_until(&mut self.poll, &mut self.events, held_until)? {
                return Ok(());
            }
            self.release_held();
        }
        if spin && spin::poll_until(&mut self.poll, &mut self.events, until)? {
            return Ok(());
        }
        // A client that sent a request lately likely sends its next soon (one in flight at a
        // time: as soon as it has read the reply): awake, the master takes it without the
        // wake-up a send to a process asleep in epoll_wait costs the client, as the slaves
        // spin after the master's frames. Up to `--client-spin-us` after the last request,
        // never past the next timer; idle, the master sleeps.
        if let Some(seen) = self.client_seen.filter(|_| !self.cfg.client_spin.is_zero()) {
            let mut client_until = seen + self.cfg.client_spin;
            if let Some(timer) = self.next_deadline() {
                client_until = client_until.min(timer);
            }
            if Instant::now() < client_until
                && spin::poll_until(&mut self.poll, &mut self.events, client_until)?
            {
                return Ok(());
            }
            self.client_seen = None;
        }
        let timeout = self
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()) + Duration::from_micros(500));
        self.poll.poll(&mut self.events, timeout)
    }

    /// The core's next timer, or, while the buffer budget is spent, when the client stalled
    /// longest is to be cut off.
    fn next_deadline(&mut self) -> Option<Instant> {
        let core = self.core.next_deadline();
        if !self.spent() {
            return core;
        }
        [self.stalls.next_deadline(), self.half_sent.next_deadline()]
            .into_iter()
            .flatten()
            .chain(core)
            .min()
    }

    /// Take every connection waiting. Clients are capped when they say HELLO (`--max-conns`);
    /// here only the total is, at `--max-conns` + `--peer-slots`: at it, the oldest
    /// connection still in its HELLO gives way, and with none such the newcomer is told ERROR
    /// BUSY and closed (never left waiting in the backlog).
    fn accept(&mut self, token: Token) {
        while let Some((mut stream, addr)) = self.listeners.next(token) {
            if self.conns.len() >= self.cfg.max_conns + self.cfg.peer_slots {
                if self.core.evict_unidentified() {
                    self.apply_out();
                } else {
                    refuse_full(&mut stream, addr, self.conns.len());
                    continue;
                }
            }
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            let registry = self.poll.registry();
            if let Err(e) = registry.register(&mut stream, Token(key), Interest::READABLE) {
                warn!("cannot register connection from {addr}: {e}");
                continue;
            }
            // A few KiB until it has said HELLO (and proved the secret, if asked to).
            entry.insert(Conn::new(stream, UNAUTHENTICATED_MAX_FRAME));
            debug!("connection {key} from {addr}");
            self.core.on_connect(key, addr.to_string(), Instant::now());
        }
    }

    /// Start a non-blocking connect to the primary's heartbeat socket when the core wants one.
    fn maybe_open_link(&mut self, now: Instant) {
        if self.link.is_some() {
            return;
        }
        let Some(addr) = self.core.link_target(now) else {
            return;
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        match dial::connect(addr, self.poll.registry(), Token(key)) {
            Ok(stream) => {
                let mut conn = Conn::new(stream, self.cfg.max_frame());
                conn.write_interest = true;
                entry.insert(conn);
                self.link = Some((key, false));
            }
            Err(e) => self.core.on_link_failed(&e.to_string(), now),
        }
    }

    /// The pending link connect made progress: connected, failed, or not yet.
    fn link_progress(&mut self, key: usize) {
        let now = Instant::now();
        match dial::progress(self.conns[key].stream()) {
            Progress::Pending => {}
            Progress::Up(addr) => {
                self.link = Some((key, true));
                self.core.on_link_up(key, addr.to_string(), now);
                self.dirty.push(key);
                self.apply_out();
            }
            Progress::Failed(why) => {
                let mut conn = self.conns.remove(key);
                let _ = self.poll.registry().deregister(conn.stream_mut());
                self.link = None;
                self.core.on_link_failed(&why, now);
                self.apply_out();
            }
        }
    }

    /// Read and handle what a connection sent, in the loop's scratch buffer: what is left of
    /// it afterwards (a partial frame, frames a paused client may not have handled yet) is
    /// all the connection keeps.
    fn read(&mut self, key: usize) {
        // The scratch buffer went with a large frame (still arriving on another connection,
        // or taken with its WRITE): a free frame buffer, already the size of a large frame,
        // takes its place, so the next large frame is not read into memory zeroed anew.
        if self.scratch.len() < TAKE_WRITE_MIN {
            if let Some(spare) = self.frames.spare() {
                self.scratch = spare;
            }
        }
        self.conns[key].lend(&mut self.scratch);
        self.read_lent(key);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.give_back(&mut self.scratch);
        }
    }

    fn read_lent(&mut self, key: usize) {
        // Frames left undecoded when the client went over its budget come first.
        if !self.decode(key) {
            return;
        }
        let mut got = 0;
        for _ in 0..READS_PER_TURN {
            if !self.admit_frame(key) {
                return;
            }
            // Over the budget a client is read a few KiB at a time, until a frame's header
            // has been judged (`admit_frame`): what it is left holding when paused is small.
            let limit = match self.core.is_client(key) && self.spent() {
                true => SPENT_READ,
                false => usize::MAX,
            };
            match self.conns[key].read_upto(limit) {
                Io::Done(n) => {
                    got += n;
                    self.half_sent.moved(key);
                }
                Io::WouldBlock => return,
                Io::Closed => return self.close(key, "peer closed the connection", true),
            }
            if !self.decode(key) {
                return;
            }
            if self.receiving(key) > 0 {
                // Part of an admitted frame is in, the rest still to come.
                self.half_sent.blocked(key, Instant::now());
            }
            self.apply_out();
            // Gone, or the socket is empty (see `Conn::drained`): this event is handled.
            if self.conns.get(key).is_none_or(|c| c.drained()) {
                return;
            }
            if got >= READ_BYTES_PER_TURN {
                break;
            }
        }
        if !self.unread.contains(&key) {
            self.unread.push(key);
        }
    }

    /// Before more of a client's bytes are read: a frame it has begun to send (its header is
    /// in, the rest is not) is let in whole if the budgets allow its length as they would its
    /// request (`share.rs`), and counted until it is decoded; otherwise the client is paused,
    /// its bytes left in its socket. So a frame's bytes are in the budget from its header on,
    /// and clients that each send most of a large frame and stop hold no more than the slack
    /// (they are cut off after `--stalled-client-ms`). Without a header in, or for a frame let
    /// in already, reading goes on (at most one chunk of 64 KiB). `false`: paused.
    fn admit_frame(&mut self, key: usize) -> bool {
        if self.receiving(key) > 0 || !self.core.is_client(key) {
            return true;
        }
        let Some((_, len)) = self.conns[key].peek_header() else {
            return true;
        };
        // Over the frame limit: skipped as it arrives, never buffered (`decode`).
        if len > self.cfg.max_frame() {
            return true;
        }
        if self.over_budget(key) {
            if !self.paused(key) {
                debug!(
                    "connection {key}: a frame of {len} bytes begun over the budget, pausing reads"
                );
                self.pause(key);
            }
            return false;
        }
        if self.receiving.len() <= key {
            self.receiving.resize(key + 1, 0);
        }
        self.receiving[key] = len;
        self.receiving_total += len;
        true
    }

    /// The length of the frame let in for `key` and not yet decoded (0: none).
    fn receiving(&self, key: usize) -> usize {
        self.receiving.get(key).copied().unwrap_or(0)
    }

    /// Hand the whole frames buffered to the core. `false`: the connection is gone, or it is
    /// a client over its budget (paused: the rest stays buffered, and no more is read).
    fn decode(&mut self, key: usize) -> bool {
        let now = Instant::now();
        loop {
            // A frame let in from its header on is taken without asking again.
            if self.receiving(key) == 0 && self.over_budget(key) {
                if !self.paused(key) {
                    debug!("connection {key}: over its share of the buffer budget, pausing reads");
                    self.pause(key);
                }
                return false;
            }
            let conn = &mut self.conns[key];
            let limited = conn.max_frame() < self.cfg.max_frame();
            if !limited && self.core.is_client(key) {
                if let Some((frame, range)) = take_large_write(conn, &mut self.frames) {
                    if !self.decode_taken(key, &frame, range, now) {
                        return false;
                    }
                    continue;
                }
            }
            let conn = &mut self.conns[key];
            match conn.next_decoded() {
                Ok(Some(decoded)) => {
                    // The frame let in, if any, is this one: its bytes are now the request's
                    // (as in `frame_taken`, written out: `decoded` borrows the connection).
                    if let Some(len) = self.receiving.get_mut(key).filter(|n| **n > 0) {
                        self.receiving_total -= std::mem::take(len);
                        self.half_sent.moved(key);
                    }
                    if self.core.is_client(key) {
                        self.client_seen = Some(now);
                    }
                    self.core.on_decoded(key, decoded, now);
                    if limited && self.core.identified(key) {
                        self.conns[key].set_max_frame(self.cfg.max_frame());
                    }
                    // A large value answered from the read cache waits in the outbox, where
                    // the budget does not see it: queue it on its connection before the next
                    // request is read, as a FETCH's reservation is seen from its start.
                    // Without this a client pipelining 30 such READs had 30 MiB queued in one
                    // turn (`attacks_bounds.rs`).
                    if self.core.cached_replies() > 0 {
                        self.apply_out();
                        if !self.conns.contains(key) {
                            return false;
                        }
                    }
                }
                Ok(None) => return true,
                // A client's READ, WRITE or WRITE_ONCE too large to take as a frame is
                // answered TOO_LARGE, as one within the frame limit is, and its bytes skipped.
                Err(e @ WireError::TooLarge { .. }) if self.core.is_client(key) => {
                    match self.conns[key].oversize() {
                        Oversize::Partial => return true,
                        Oversize::Header { op, req_id, len }
                            if op == Opcode::Write as u8
                                || op == Opcode::WriteOnce as u8
                                || op == Opcode::Read as u8 =>
                        {
                            self.conns[key].skip_frame(len);
                            self.core.refuse_oversize(key, req_id, op, len);
                        }
                        Oversize::Header { .. } => {
                            self.close(key, &format!("bad frame: {e}"), true);
                            return false;
                        }
                    }
                }
                Err(e) => {
                    let why = match limited {
                        true => format!("bad frame before HELLO was done: {e}"),
                        false => format!("bad frame: {e}"),
                    };
                    self.close(key, &why, true);
                    return false;
                }
            }
        }
    }

    /// The frame let in for `key` from its header on, if any, is the one just decoded: its
    /// bytes are now the request's (`admit_frame`).
    fn frame_taken(&mut self, key: usize) {
        if let Some(len) = self.receiving.get_mut(key).filter(|n| **n > 0) {
            self.receiving_total -= std::mem::take(len);
            self.half_sent.moved(key);
        }
    }

    /// Hand the core a large WRITE taken out of the connection with its buffer
    /// ([`take_large_write`]), so its value is written to the slaves from there. `false`: a
    /// bad frame, and the connection is closed.
    fn decode_taken(
        &mut self,
        key: usize,
        frame: &std::rc::Rc<Vec<u8>>,
        range: std::ops::Range<usize>,
        now: Instant,
    ) -> bool {
        let len = range.len();
        match dsm_wire::decode_borrowed(&frame[range], self.cfg.max_frame()) {
            Ok(Some((decoded, used))) if used == len => {
                self.frame_taken(key);
                // Only clients' frames are taken: the spin after a client's request applies.
                self.client_seen = Some(now);
                self.core.on_decoded_in(key, decoded, frame, now);
                true
            }
            Ok(_) => {
                self.close(key, "bad frame: its contents are not its length", true);
                false
            }
            Err(e) => {
                self.close(key, &format!("bad frame: {e}"), true);
                false
            }
        }
    }

    /// Whether a client may not have another request read now, by the budgets (`share.rs`):
    /// what it holds (replies queued for it, what its requests in flight may bring back) and
    /// what everyone's do, and, over the global budget, what its next request would reserve.
    fn over_budget(&self, key: usize) -> bool {
        if !self.core.is_client(key) {
            return false;
        }
        let total = self.total();
        let conn = &self.conns[key];
        let cost = || {
            let (op, len) = conn.peek_header()?;
            let read_key = match op == Opcode::Read as u8 {
                true => conn.peek_read_key(),
                false => None,
            };
            Some(self.core.request_cost(op, len, read_key))
        };
        !self.share.may_read(self.holds(key), total, cost)
    }

    /// Whether everything queued and in flight is at or over `--max-buffer-memory`.
    fn spent(&self) -> bool {
        self.total() >= self.cfg.max_buffer_memory
    }

    /// What the budget counts: bytes queued on every connection, what clients' requests in
    /// flight may bring back, and the frames clients have begun to send and were let in.
    fn total(&self) -> usize {
        self.queued + self.core.reserved_total() + self.receiving_total
    }

    /// While the buffer budget is spent, cut off every client whose replies have not moved for
    /// `--stalled-client-ms` (its socket full, nothing read off it). Only clients are ever
    /// stalled (`Server::flush`): slaves and backups never are. A client cut off is closed as
    /// if it had hung up: its WRITEs in flight go on without it.
    fn cut_stalled(&mut self, now: Instant) {
        if !self.spent() {
            return;
        }
        while let Some(key) = self.stalls.due(now) {
            let why = format!(
                "{} bytes of replies unread for {} ms while the master's buffers are spent \
                 (--max-buffer-memory {}, --stalled-client-ms {})",
                self.conns.get(key).map_or(0, |c| c.pending()),
                self.stalls.stalled_for(key, now).as_millis(),
                self.cfg.max_buffer_memory,
                self.cfg.stalled_client.as_millis()
            );
            warn!(
                "closing client connection {key} from {}: {why}",
                self.core.peer_addr(key)
            );
            self.close(key, &why, true);
        }
        while let Some(key) = self.half_sent.due(now) {
            let why = format!(
                "{} bytes of a {}-byte frame received, none for {} ms while the master's buffers \
                 are spent (--max-buffer-memory {}, --stalled-client-ms {})",
                self.conns.get(key).map_or(0, |c| c.unread()),
                self.receiving(key),
                self.half_sent.stalled_for(key, now).as_millis(),
                self.cfg.max_buffer_memory,
                self.cfg.stalled_client.as_millis()
            );
            warn!(
                "closing client connection {key} from {}: {why}",
                self.core.peer_addr(key)
            );
            self.close(key, &why, true);
        }
    }

    /// Go on reading the connections whose budget ran out last turn.
    fn read_unread(&mut self) {
        for key in std::mem::take(&mut self.unread) {
            let connecting = self.link == Some((key, false));
            if self.conns.contains(key) && !self.paused(key) && !connecting {
                self.read(key);
            }
        }
    }

    /// Carry out the core's outbox: queue frames, close what it closed.
    fn apply_out(&mut self) {
        self.core.drain_out(&mut self.out);
        // Swapped out and back so the outbox keeps its capacity from turn to turn.
        let mut outs = std::mem::take(&mut self.out);
        for out in outs.drain(..) {
            let key = match &out {
                Out::Send(key, _) | Out::SendShared(key, _) => *key,
                Out::Close(key) => {
                    if let Some(conn) = self.conns.get_mut(*key) {
                        // Best effort: let the ERROR that explains the close go out first.
                        let before = conn.pending();
                        let _ = conn.flush();
                        self.queued -= before - conn.pending();
                    }
                    self.close(*key, "closed by the master", false);
                    continue;
                }
                Out::Persist(state) => {
                    self.persist(state);
                    continue;
                }
            };
            if let Some(conn) = self.conns.get_mut(key) {
                let before = conn.pending();
                if before == 0 && !conn.write_interest {
                    self.dirty.push(key);
                }
                match out {
                    // A READ's large value is written from the buffer it came in, not copied.
                    Out::Send(
                        _,
                        Frame {
                            req_id,
                            body: Body::Value { value },
                        },
                    ) if value.len() >= dsm_net::conn::SHARED_MIN => {
                        conn.send_owned(req_id, &BodyRef::Value { value: &[] }, value);
                    }
                    out => {
                        match &out {
                            Out::Send(_, frame) => conn.send(frame),
                            Out::SendShared(_, shared) => {
                                let (req_id, body) = shared.as_ref();
                                match shared.value() {
                                    Some(value) => conn.send_shared(req_id, &body, value),
                                    None => conn.send_ref(req_id, &body),
                                }
                            }
                            Out::Close(_) | Out::Persist(_) => unreachable!("handled above"),
                        }
                        self.core.recycle(out);
                    }
                }
                self.queued += conn.pending() - before;
                // The socket is already full (a flush blocked): a peer that does not read its
                // replies is cut off here, not only when a flush is tried.
                if conn.write_interest && conn.pending() > self.cfg.max_write_buffer {
                    let why = format!(
                        "{} bytes of replies unread (over --max-write-buffer)",
                        conn.pending()
                    );
                    warn!("closing connection {key}: {why}");
                    self.close(key, &why, true);
                }
            }
        }
        self.out = outs;
    }

    /// Write every connection with bytes queued, except replies held back for a client that
    /// is owed more (while the hold is younger than `--coalesce-us`).
    fn flush_dirty(&mut self) {
        let may_hold = self.held.may_hold();
        for key in std::mem::take(&mut self.dirty) {
            if !self.conns.contains(key) {
                continue;
            }
            if may_hold && self.core.owes(key) {
                self.held.hold(key);
            } else {
                self.flush(key);
            }
        }
        if !may_hold {
            return self.release_held();
        }
        // Held connections whose last reply came this turn go out now. (Their new replies do
        // not make them dirty again: their bytes were already waiting.)
        let mut due = std::mem::take(&mut self.due);
        let (conns, core) = (&self.conns, &self.core);
        self.held
            .release_some(|key| conns.contains(key) && core.owes(key), &mut due);
        for key in due.drain(..) {
            if self.conns.contains(key) {
                self.flush(key);
            }
        }
        self.due = due;
    }

    fn release_held(&mut self) {
        for key in self.held.release_all() {
            if self.conns.contains(key) {
                self.flush(key);
            }
        }
    }

    /// Keep the master's state in `--data-dir` before anything after it goes out. A failure
    /// is logged and the state kept again at its next change: the slaves' reports let a
    /// restarted master recover in any case, but it would wait for fewer of them.
    fn persist(&mut self, state: &crate::disk::MasterState) {
        let Some(dir) = &self.cfg.data_dir else {
            return;
        };
        match state.save(dir) {
            Ok(()) => debug!(
                "kept epoch {} and {} slaves in {}",
                state.epoch,
                state.roster.len(),
                dir.display()
            ),
            Err(e) => warn!("cannot write the master's state in {}: {e}", dir.display()),
        }
    }

    fn flush(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let before = conn.pending();
        let result = conn.flush_and_rearm(self.poll.registry(), Token(key));
        self.queued -= before - conn.pending();
        let moved = conn.take_progress();
        if moved {
            self.core.on_progress(key, Instant::now());
        }
        if moved || conn.pending() == 0 {
            self.stalls.moved(key);
        }
        if result == Io::WouldBlock && conn.pending() > 0 && self.core.is_client(key) {
            self.stalls.blocked(key, Instant::now());
        }
        // A client with every reply written and none owed is idle: the write buffer its
        // replies went through (pipelined, it may have grown to many KiB) is not kept.
        if conn.pending() == 0 && self.core.is_client(key) && !self.core.owes(key) {
            conn.release_write_buffer(IDLE_WRITE_BUFFER);
        }
        match result {
            Io::Closed => self.close(key, "write failed", true),
            Io::WouldBlock if conn.pending() > self.cfg.max_write_buffer => {
                let why = format!(
                    "{} bytes of replies unread (over --max-write-buffer)",
                    conn.pending()
                );
                self.close(key, &why, true)
            }
            _ => {}
        }
    }

    fn paused(&self, key: usize) -> bool {
        self.is_paused.get(key).copied().unwrap_or(false)
    }

    fn pause(&mut self, key: usize) {
        if self.is_paused.len() <= key {
            self.is_paused.resize(key + 1, false);
        }
        self.is_paused[key] = true;
        self.paused.push(key);
    }

    /// Read the paused clients that may go on, in the order they were paused, except that
    /// those with nothing queued or in flight come first: room freed by cutting off a client
    /// that does not read goes to clients that read their replies before it goes back to
    /// clients that hold some unread.
    fn resume_paused(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        let (mut ready, mut again) = (Vec::new(), Vec::new());
        for key in std::mem::take(&mut self.paused) {
            // Stale (closed), or a second entry for one key (a slab key reused).
            if !self.paused(key) {
                continue;
            }
            self.is_paused[key] = false;
            if !self.conns.contains(key) {
                continue;
            }
            match self.over_budget(key) {
                true => again.push(key),
                false => ready.push(key),
            }
        }
        for key in again {
            self.pause(key);
        }
        ready.sort_by_key(|&k| self.holds(k) > 0);
        for key in ready {
            if self.conns.contains(key) && !self.paused(key) {
                self.read(key);
            }
        }
        self.apply_out();
        self.flush_dirty();
    }

    /// What a client has queued, in flight, and on its way in.
    fn holds(&self, key: usize) -> usize {
        self.conns.get(key).map_or(0, |c| c.pending())
            + self.core.reserved(key).0
            + self.receiving(key)
    }

    /// Take waiting `--metrics` connections into the slab (closing the oldest at the cap).
    fn accept_http(&mut self) {
        let Some(web) = self.web.as_mut() else {
            return;
        };
        let mut evicted = Vec::new();
        crate::web::accept_all(web, &mut self.conns, self.poll.registry(), &mut evicted);
        for key in evicted {
            self.drop_http(key);
        }
    }

    /// An event on a `--metrics` connection: answer what it asked, close it when done.
    fn serve_http(&mut self, key: usize) {
        let Some(web) = self.web.as_mut() else {
            return;
        };
        // A walk over every connection, at most every 100 ms however many HTTP events come
        // (a scraper sending a byte at a time must not make the loop walk them per byte).
        let conns = &self.conns;
        let buffered = web.buffered(|| conns.iter().map(|(_, c)| c.pending() as u64).sum());
        let conn = &mut self.conns[key];
        let registry = self.poll.registry();
        let verdict = web.on_event(key, conn, registry, &mut self.core, buffered);
        if verdict == dsm_net::http::Verdict::Close {
            web.forget(key);
            self.drop_http(key);
        }
    }

    /// Remove a `--metrics` connection (the core never knew of it).
    fn drop_http(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(conn.stream_mut());
        }
    }

    /// Forget a connection. `tell_core`: the loop decided (the core did not ask for it).
    fn close(&mut self, key: usize, why: &str, tell_core: bool) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        debug!("connection {key} closed: {why}");
        if self.link.is_some_and(|(k, _)| k == key) {
            self.link = None;
        }
        let _ = self.poll.registry().deregister(conn.stream_mut());
        // Closed in the middle of its read: the scratch buffer comes back to the loop.
        conn.give_back(&mut self.scratch);
        self.queued -= conn.pending();
        self.stalls.moved(key);
        self.half_sent.moved(key);
        if let Some(len) = self.receiving.get_mut(key) {
            self.receiving_total -= std::mem::take(len);
        }
        if let Some(flag) = self.is_paused.get_mut(key) {
            *flag = false;
        }
        self.unread.retain(|&k| k != key);
        // Frames the core queued for this peer earlier in the turn (a STORE for a slave whose
        // EOF came later in the same batch of events) must not reach whoever gets this slab
        // key next.
        self.core.forget_out(key);
        if tell_core {
            self.core.on_close(key, Instant::now());
            // Nor what the core says to it on hearing it closed (a dropped slave's DROPPED
            // ERROR): the next connection accepted may get this key.
            self.core.forget_out(key);
        }
    }
}

/// Every connection slot is taken by identified peers: tell the newcomer (one small frame
/// into an empty socket buffer) and close it.
/// A WRITE or WRITE_ONCE frame at least this long is taken out of its connection with the
/// buffer it was read into, and its value written to the slaves from there: a copy of it
/// cost more than the buffer the connection then needs anew (`Conn::take_frame`).
const TAKE_WRITE_MIN: usize = 64 * 1024;

/// The large WRITE at the front of `conn`, all of it buffered, with its buffer; the
/// connection reads on into a buffer of an earlier one that is free again, if any.
fn take_large_write(
    conn: &mut Conn,
    frames: &mut Frames,
) -> Option<(std::rc::Rc<Vec<u8>>, std::ops::Range<usize>)> {
    let (op, len) = conn.peek_header()?;
    if (op != Opcode::Write as u8 && op != Opcode::WriteOnce as u8)
        || len < TAKE_WRITE_MIN
        || conn.unread() < len
    {
        return None;
    }
    let taken = conn.take_frame(TAKE_WRITE_MIN, frames.spare())?;
    frames.track(&taken.0);
    Some(taken)
}

fn refuse_full(stream: &mut mio::net::TcpStream, addr: SocketAddr, open: usize) {
    warn!("{open} connections, every slot taken (--max-conns + --peer-slots): refusing {addr}");
    let text = format!(
        "this master has {open} connections, every slot taken (--max-conns and --peer-slots): \
         try again later"
    );
    let mut buf = Vec::new();
    dsm_wire::encode(&Frame::new(0, Body::error(ErrorCode::Busy, text)), &mut buf);
    let _ = stream.write(&buf);
}

//! The slave's mio event loop, and only its I/O: the connect the [`Slave`] asks for (never
//! blocking), reading and decoding the master's frames into it, writing its replies, and a
//! poll timeout from its next deadline.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_net::dial::{self, Progress};
use dsm_net::{spin, Conn, Io};
use dsm_wire::Opcode;
use mio::{Events, Poll, Token, Waker};

use crate::config::Config;
use crate::slave::{Out, Slave};
use crate::store::{Reply, Store};

const MASTER: Token = Token(0);
/// A sync on the syncer thread is done (under `--fsync always`, the ACKs it covered can go).
const WAKE: Token = Token(1);
/// INVENTORY frames queued per loop turn (64 KiB of keys each).
const INVENTORY_FRAMES_PER_TURN: usize = 4;
/// No more INVENTORY frames are queued while this many bytes wait to be written.
const REPORT_BUFFER: usize = 1024 * 1024;
/// Over this many unsent reply bytes, no more of the master's frames are read or decoded
/// until the master has read enough of them: a burst of FETCHes of large values costs the
/// slave this much memory, not a copy of every value asked for. The master's frames wait in
/// the socket (and then in the master's buffer), so it sees a slow slave, not a dead one.
pub const MAX_UNSENT: usize = 4 * 1024 * 1024;

pub struct Node {
    cfg: Config,
    poll: Poll,
    events: Events,
    slave: Slave,
    /// The connection to the master, from the start of a connect on.
    conn: Option<Conn>,
    /// `conn` is a connect that has not completed yet.
    connecting: bool,
    /// The slave's outbox, drained; kept for its capacity.
    out: Vec<Out>,
    /// `--metrics`: the HTTP endpoint (`web.rs`).
    web: Option<crate::web::Web>,
    /// Set by `Out::GiveUp`: the loop ends with this error.
    give_up: Option<String>,
    /// Reading stopped at [`MAX_UNSENT`]: serve again once the replies drain (the socket may
    /// hold frames no new edge will announce).
    held_back: bool,
}

/// Load the data directory (if any), then serve the master until the poller itself fails.
pub fn run(cfg: Config) -> io::Result<()> {
    let poll = Poll::new()?;
    // The syncer thread's way to say a sync is done: the loop then takes the outcome.
    let waker = Waker::new(poll.registry(), WAKE)?;
    let store = crate::open::open_store(&cfg, Box::new(move || drop(waker.wake())))?;
    let mut node = Node::new(cfg, store, poll)?;
    loop {
        node.turn()?;
    }
}

impl Node {
    /// A node serving `store` with `poll` that has already started connecting to its first
    /// master.
    pub fn new(cfg: Config, store: Store, poll: Poll) -> io::Result<Node> {
        let now = Instant::now();
        let web = match cfg.metrics {
            Some(addr) => Some(crate::web::Web::bind(addr, poll.registry())?),
            None => None,
        };
        let mut node = Node {
            web,
            slave: Slave::with_store(&cfg, store, now),
            cfg,
            poll,
            events: Events::with_capacity(256),
            conn: None,
            connecting: false,
            out: Vec::new(),
            give_up: None,
            held_back: false,
        };
        node.slave.on_tick(now);
        node.apply_out(now);
        node.given_up()?;
        Ok(node)
    }

    /// Wait for the connection or the slave's next deadline, then handle what happened. The
    /// deadlines are checked after the socket is read, so a slave that was stopped (SIGSTOP)
    /// sees the frames that came meanwhile before it judges the master silent. A wait that a
    /// signal interrupted reported no events, though some may be ready (`epoll_wait` fails
    /// with EINTR when a stopped process is continued, even with no handler): nothing is
    /// judged that turn; the next wait reports them.
    pub fn turn(&mut self) -> io::Result<()> {
        match self.wait() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if self.events.iter().any(|e| e.token() == MASTER) {
            let hung_up =
                (self.events.iter()).any(|e| e.token() == MASTER && dsm_net::conn::hangs_up(e));
            if let Some(conn) = self.conn.as_mut().filter(|_| hung_up) {
                conn.hung_up();
            }
            if self.connecting {
                self.connect_progress(now);
            } else {
                self.serve(now);
            }
        }
        if let Some(web) = self.web.as_mut() {
            for event in self.events.iter() {
                web.on_event(event, self.poll.registry(), &self.slave);
            }
        }
        self.slave.on_tick(now);
        // Every STORE this turn read is written before the ACKs go out below; with --fsync
        // always, those ACKs are of the STOREs the last sync covered, and the next sync is
        // handed to the syncer thread (whose waker ends the wait when it is done).
        self.slave.end_turn(now);
        if self.may_report() {
            self.slave.pump_inventory(INVENTORY_FRAMES_PER_TURN);
        }
        self.apply_out(now);
        if self.held_back
            && self
                .conn
                .as_ref()
                .is_some_and(|c| c.pending() <= MAX_UNSENT)
        {
            self.serve(now);
        }
        self.given_up()
    }

    /// The slave gave up (`Out::GiveUp`): the error that ends the process.
    fn given_up(&mut self) -> io::Result<()> {
        match self.give_up.take() {
            Some(why) => Err(io::Error::other(why)),
            None => Ok(()),
        }
    }

    /// Whether to send more of a report of what is held now: one is under way and the
    /// connection's write buffer has room (the master reads it as fast as it reconciles).
    fn may_report(&self) -> bool {
        self.slave.reporting()
            && self
                .conn
                .as_ref()
                .is_some_and(|c| c.pending() < REPORT_BUFFER)
    }

    /// Wait for events or the slave's next deadline. While registered with a master and with
    /// `--spin-us` set, first poll without sleeping (yielding the CPU between polls) for that
    /// long, or until the deadline. The master's next frames then find this process awake: a
    /// `send` to a process asleep in `epoll_wait` makes the sender pay for waking it, several
    /// µs on a VM, and the sender is the master, the busiest process of the cluster. An idle
    /// slave spins once per frame it gets (a PING every second or so), then sleeps.
    fn wait(&mut self) -> io::Result<()> {
        let deadline = self.slave.next_deadline();
        if !self.cfg.spin.is_zero() && self.slave.registered() {
            let until = (Instant::now() + self.cfg.spin).min(deadline);
            if spin::poll_until(&mut self.poll, &mut self.events, until)? {
                return Ok(());
            }
        }
        let timeout = match self.may_report() || self.slave.busy() {
            // More of the report to send, or of a compaction to do: look at the socket and
            // come straight back.
            true => Duration::ZERO,
            false => {
                deadline.saturating_duration_since(Instant::now()) + Duration::from_micros(200)
            }
        };
        self.poll.poll(&mut self.events, Some(timeout))
    }

    /// Carry out what the slave asked for, including what it asks in answer to a connect that
    /// fails at once.
    fn apply_out(&mut self, now: Instant) {
        while self.slave.has_out() {
            self.slave.drain_out(&mut self.out);
            let mut outs = std::mem::take(&mut self.out);
            for out in outs.drain(..) {
                match out {
                    Out::Connect(addr) => self.connect(addr, now),
                    Out::Send(frame) => {
                        if let Some(conn) = self.conn.as_mut() {
                            conn.send(&frame);
                        }
                    }
                    Out::Close => {
                        if let Some(conn) = self.conn.as_mut() {
                            // Best effort: let the ERROR that explains the close go out first.
                            let _ = conn.flush();
                        }
                        self.drop_conn();
                    }
                    Out::Ready => {
                        let metrics = match self.web.as_ref().and_then(|w| w.local_addr().ok()) {
                            Some(addr) => format!(" metrics={addr}"),
                            None => String::new(),
                        };
                        // A closed stdout only loses the line: the slave serves on.
                        let _ = writeln!(
                            std::io::stdout(),
                            "dsm-slave ready: id={}{metrics}",
                            self.cfg.id
                        );
                    }
                    Out::GiveUp(why) => self.give_up = Some(why),
                }
            }
            self.out = outs;
        }
        self.flush(now);
    }

    /// Start a non-blocking connect; WRITABLE (or an error) says when it is done.
    fn connect(&mut self, addr: SocketAddr, now: Instant) {
        self.drop_conn();
        let stream = match dial::connect(addr, self.poll.registry(), MASTER) {
            Ok(stream) => stream,
            Err(e) => return self.slave.on_connect_failed(&e.to_string(), now),
        };
        let mut conn = Conn::new(stream, self.cfg.max_frame);
        // The slave's one link: large STOREs and FETCHED answers reuse its buffers.
        conn.keep_buffers(true);
        conn.write_interest = true;
        self.conn = Some(conn);
        self.connecting = true;
    }

    /// The pending connect made progress: connected, failed, or not yet (a spurious event).
    fn connect_progress(&mut self, now: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match dial::progress(conn.stream()) {
            Progress::Pending => {}
            Progress::Failed(why) => {
                self.drop_conn();
                self.slave.on_connect_failed(&why, now);
                self.apply_out(now);
            }
            Progress::Up(_) => {
                self.connecting = false;
                self.slave.on_connected(now);
                self.apply_out(now);
                self.serve(now);
            }
        }
    }

    /// Read everything available, answer it, flush; on any transport failure, tell the slave.
    /// Over [`MAX_UNSENT`] bytes of replies, stop reading until the master drains them (the
    /// next WRITABLE event comes back here).
    fn serve(&mut self, now: Instant) {
        self.held_back = false;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            if conn.pending() > MAX_UNSENT {
                if conn.flush() == Io::Closed {
                    return self.closed("write to the master failed", now);
                }
                self.note_progress(now);
                let Some(conn) = self.conn.as_mut() else {
                    return;
                };
                if conn.pending() > MAX_UNSENT {
                    self.held_back = true;
                    break;
                }
                // Frames left undecoded when the cap was reached come first.
                if let Err(why) = self.handle_buffered(now) {
                    return self.closed(&why, now);
                }
                continue;
            }
            match conn.read_some() {
                Io::Done(_) => self.slave.on_receiving(Instant::now()),
                Io::WouldBlock => break,
                Io::Closed => return self.closed("the master closed the connection", now),
            }
            if let Err(why) = self.handle_buffered(now) {
                return self.closed(&why, now);
            }
            // The slave may have closed the connection over what it read.
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            if conn.drained() && conn.pending() <= MAX_UNSENT {
                break;
            }
            // Answer each chunk as it is handled, so a PONG or the first FETCHED does not wait
            // behind a whole burst (the master retries and PINGs on deadlines).
            if conn.flush() == Io::Closed {
                return self.closed("write to the master failed", now);
            }
            self.note_progress(now);
        }
        self.flush(now);
    }

    /// Decode and answer the whole frames buffered (up to [`MAX_UNSENT`]), write their STOREs.
    fn handle_buffered(&mut self, now: Instant) -> Result<(), String> {
        self.feed(now)?;
        self.slave.after_read();
        if self.slave.has_out() {
            self.apply_out(now);
        }
        Ok(())
    }

    /// The master read replies off a full socket: it is alive, however long its own frames
    /// wait unread behind our cap.
    fn note_progress(&mut self, now: Instant) {
        if self.conn.as_mut().is_some_and(|c| c.take_progress()) {
            self.slave.on_progress(now);
        }
    }

    /// Hand every whole frame buffered to the slave; its answers go straight into the write
    /// buffer. `Err` says why the connection is unusable.
    fn feed(&mut self, now: Instant) -> Result<(), String> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(());
            };
            if conn.pending() > MAX_UNSENT {
                return Ok(());
            }
            // The block of a record replaced since (a large STORE's, applied at once or from
            // the log) is the buffer the next large frame is read into: handed over now, so
            // it is never held beside the connection's own.
            if let Some(spare) = self.slave.spare_buffer() {
                conn.offer_buffer(spare);
            }
            if let Some((buf, range)) = take_large_store(conn) {
                match self.slave.on_taken(buf, range, now) {
                    Ok(Some(Reply::Frame(reply))) => conn.send(&reply),
                    Ok(Some(Reply::Borrowed(req, body))) => conn.send_ref(req, &body),
                    Ok(None) => {}
                    Err(e) => return Err(format!("bad frame from the master: {e}")),
                }
                if let Some(spare) = self.slave.spare_buffer() {
                    conn.offer_buffer(spare);
                }
                if self.slave.has_out() {
                    self.apply_out(now);
                }
                continue;
            }
            match conn.next_decoded() {
                Ok(Some(decoded)) => match self.slave.on_decoded(decoded, now) {
                    Some(Reply::Frame(reply)) => conn.send(&reply),
                    Some(Reply::Borrowed(req, body)) => conn.send_ref(req, &body),
                    None => {}
                },
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("bad frame from the master: {e}")),
            }
            if self.slave.has_out() {
                self.apply_out(now);
            }
        }
    }

    /// Write what is queued; ask for WRITABLE only while bytes wait.
    fn flush(&mut self, now: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if self.connecting || (conn.pending() == 0 && !conn.write_interest) {
            return;
        }
        if conn.flush_and_rearm(self.poll.registry(), MASTER) == Io::Closed {
            return self.closed("write to the master failed", now);
        }
        self.note_progress(now);
    }

    fn closed(&mut self, why: &str, now: Instant) {
        self.drop_conn();
        self.slave.on_closed(why, now);
        self.apply_out(now);
    }

    fn drop_conn(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = self.poll.registry().deregister(conn.stream_mut());
        }
        self.connecting = false;
    }
}

/// A STORE frame at least this long is taken out of the connection with the buffer it was
/// read into, and that buffer kept as the key's record: a copy of the value would cost more
/// than the buffer the connection then needs anew (`Conn::take_frame`; the master takes
/// large WRITEs so, `master/src/server.rs`).
pub const TAKE_STORE_MIN: usize = 64 * 1024;

/// Whether the event loop takes a frame of opcode `op` and `len` bytes out of its connection
/// whole and hands it to [`Slave::on_taken`] (rather than decoding it in the read buffer).
pub fn takes_frame(op: u8, len: usize) -> bool {
    let store = [Opcode::Store, Opcode::StoreOnce, Opcode::StoreKeep].map(|o| o as u8);
    store.contains(&op) && len >= TAKE_STORE_MIN
}

/// The large STORE at the front of `conn`, all of it buffered, with its buffer (the
/// connection keeps the bytes after it in a buffer of their own, until it is offered the block
/// of the record the STORE replaces: `Conn::offer_buffer`).
fn take_large_store(conn: &mut Conn) -> Option<(Vec<u8>, std::ops::Range<usize>)> {
    let (op, len) = conn.peek_header()?;
    if !takes_frame(op, len) || conn.unread() < len {
        return None;
    }
    let (buf, range) = conn.take_frame(TAKE_STORE_MIN, None)?;
    // Fresh from `take_frame`, so never shared; a copy rather than a lost frame if it were.
    let buf = std::rc::Rc::try_unwrap(buf).unwrap_or_else(|shared| (*shared).clone());
    Some((buf, range))
}

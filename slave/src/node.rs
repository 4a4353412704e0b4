//! The slave's mio event loop: one connection to the master (the first address that answers,
//! then the next on failure, with backoff), frames in to the [`Store`], replies out.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_auth::{Handshake, RefusalLog, Secret, Step};
use dsm_net::{spin, Conn, Io, TimerWheel};
use dsm_wire::{Body, Frame, Role};
use log::{debug, info, warn};
use mio::{Events, Interest, Poll, Token};

use crate::store::{Reply, Store};

const MASTER: Token = Token(0);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Config {
    /// The primary first, then fallbacks (the backup master).
    pub masters: Vec<SocketAddr>,
    pub id: String,
    pub max_frame: usize,
    /// A master that sends nothing for this long (it PINGs idle slaves) is taken for dead.
    pub master_timeout: Duration,
    /// Prove this secret to the master, and accept only a master that proves it back.
    pub secret: Option<Secret>,
    /// After each turn, poll this long without sleeping before blocking (zero: never). See
    /// [`Node::wait`].
    pub spin: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tick {
    Reconnect,
    SilenceCheck,
}

pub struct Node {
    cfg: Config,
    poll: Poll,
    events: Events,
    conn: Option<Conn>,
    store: Store,
    /// Index into `cfg.masters` of the address to use next.
    next_master: usize,
    backoff: Duration,
    timers: TimerWheel<Tick>,
    last_heard: Instant,
    announced: bool,
    /// Until the master's WELCOME: the handshake, which frames go to instead of the store.
    handshake: Option<Handshake>,
    refusals: RefusalLog,
}

/// Serve the master until the poller itself fails.
pub fn run(cfg: Config) -> io::Result<()> {
    let mut node = Node::new(cfg)?;
    loop {
        node.turn()?;
    }
}

impl Node {
    pub fn new(cfg: Config) -> io::Result<Node> {
        let now = Instant::now();
        let mut timers = TimerWheel::new(now, Duration::from_millis(1), 1024);
        timers.insert(now, Tick::Reconnect);
        timers.insert(now + cfg.master_timeout / 4, Tick::SilenceCheck);
        Ok(Node {
            cfg,
            poll: Poll::new()?,
            events: Events::with_capacity(256),
            conn: None,
            store: Store::default(),
            next_master: 0,
            backoff: MIN_BACKOFF,
            timers,
            last_heard: now,
            announced: false,
            handshake: None,
            refusals: RefusalLog::default(),
        })
    }

    pub fn turn(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let mut fired = Vec::new();
        self.timers.expired(now, &mut fired);
        for tick in fired {
            match tick {
                Tick::Reconnect if self.conn.is_none() => self.connect(),
                Tick::Reconnect => {}
                Tick::SilenceCheck => {
                    let silent = now.saturating_duration_since(self.last_heard);
                    if self.conn.is_some() && silent > self.cfg.master_timeout {
                        let why = format!("no word from the master for {} ms", silent.as_millis());
                        self.lost(&why);
                    }
                    self.timers
                        .insert(now + self.cfg.master_timeout / 4, Tick::SilenceCheck);
                }
            }
        }
        if let Err(e) = self.wait() {
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        let mut readable = false;
        let mut writable = false;
        for e in self.events.iter() {
            readable |= e.is_readable() || e.is_read_closed() || e.is_error();
            writable |= e.is_writable();
        }
        if writable || readable {
            self.serve();
        }
        Ok(())
    }

    /// Wait for events or the next timer. While registered with a master and with `--spin-us`
    /// set, first poll without sleeping (yielding the CPU between polls) for that long, or
    /// until the next timer. The master's next frames then find this process awake: a `send` to a process
    /// asleep in `epoll_wait` makes the sender pay for waking it, several µs on a VM, and the
    /// sender is the master, the busiest process of the cluster. An idle slave spins once per
    /// frame it gets (a PING every second or so), then sleeps.
    fn wait(&mut self) -> io::Result<()> {
        if !self.cfg.spin.is_zero() && self.conn.is_some() && self.handshake.is_none() {
            let mut until = Instant::now() + self.cfg.spin;
            if let Some(timer) = self.timers.next_deadline() {
                until = until.min(timer);
            }
            if spin::poll_until(&mut self.poll, &mut self.events, until)? {
                return Ok(());
            }
        }
        let timeout = self
            .timers
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()) + Duration::from_micros(200));
        self.poll.poll(&mut self.events, timeout)
    }

    fn connect(&mut self) {
        let addr = self.cfg.masters[self.next_master % self.cfg.masters.len()];
        match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(std_stream) => {
                let _ = std_stream.set_nodelay(true);
                if let Err(e) = std_stream.set_nonblocking(true) {
                    warn!("cannot make the socket to {addr} non-blocking: {e}");
                    return self.schedule_reconnect();
                }
                let mut stream = mio::net::TcpStream::from_std(std_stream);
                if let Err(e) =
                    self.poll
                        .registry()
                        .register(&mut stream, MASTER, Interest::READABLE)
                {
                    warn!("cannot register the connection to {addr}: {e}");
                    return self.schedule_reconnect();
                }
                // While refused, the refusal log says enough: no line per retry.
                if !self.refusals.failing() {
                    info!(
                        "connected to master {addr}; registering as '{}'",
                        self.cfg.id
                    );
                }
                let secret = self.cfg.secret.as_ref();
                let id = self.cfg.id.clone();
                let (hs, hello) =
                    match Handshake::start(secret, 0, Role::Slave, self.store.epoch(), id) {
                        Ok(pair) => pair,
                        Err(e) => {
                            warn!("cannot read a nonce from /dev/urandom: {e}");
                            return self.schedule_reconnect();
                        }
                    };
                let mut conn = Conn::new(stream, self.cfg.max_frame);
                conn.send(&hello);
                self.handshake = Some(hs);
                self.conn = Some(conn);
                self.last_heard = Instant::now();
                self.serve();
            }
            Err(e) => {
                warn!("cannot reach master {addr}: {e}");
                self.schedule_reconnect();
            }
        }
    }

    fn schedule_reconnect(&mut self) {
        self.conn = None;
        self.next_master += 1;
        self.timers
            .insert(Instant::now() + self.backoff, Tick::Reconnect);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Read everything available, answer it, flush; on any transport failure, move on.
    fn serve(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        loop {
            match conn.read_some() {
                Io::Done(_) => self.last_heard = Instant::now(),
                Io::WouldBlock => break,
                Io::Closed => return self.lost("the master closed the connection"),
            }
            loop {
                match conn.next_decoded() {
                    // Nothing reaches the store before the master is WELCOMEd (and, with a
                    // secret, has proved it holds it): a stranger cannot reset us.
                    Ok(Some(decoded)) if self.handshake.is_some() => {
                        let hs = self.handshake.as_mut().expect("checked");
                        match hs.on_frame(decoded.into_frame()) {
                            Step::Send(auth) => conn.send(&auth),
                            Step::Welcomed { epoch, reset } => {
                                self.handshake = None;
                                self.backoff = MIN_BACKOFF;
                                self.refusals = RefusalLog::default();
                                info!(
                                    "registered with master (epoch {epoch}), {} keys held",
                                    self.store.len()
                                );
                                if !self.announced {
                                    self.announced = true;
                                    println!("dsm-slave ready: id={}", self.cfg.id);
                                }
                                let welcome = Body::Welcome {
                                    epoch,
                                    reset,
                                    proof: None,
                                };
                                self.store.on_frame(Frame::new(0, welcome));
                            }
                            Step::Refused { code, text } => {
                                let why = format!("the master refused us: {}: {text}", code.name());
                                return self.refused(&why);
                            }
                            Step::Distrust { why, reply } => {
                                conn.send(&reply);
                                let _ = conn.flush();
                                return self.refused(&why);
                            }
                        }
                    }
                    Ok(Some(decoded)) => match self.store.respond_decoded(decoded) {
                        Some(Reply::Frame(reply)) => conn.send(&reply),
                        Some(Reply::Borrowed(req, body)) => conn.send_ref(req, &body),
                        None => {}
                    },
                    Ok(None) => break,
                    Err(e) => return self.lost(&format!("bad frame from the master: {e}")),
                }
            }
            if conn.drained() {
                break;
            }
            // Answer each chunk as it is handled, so a PONG or the first FETCHED does not wait
            // behind a whole burst (the master retries and PINGs on deadlines).
            if conn.flush() == Io::Closed {
                return self.lost("write to the master failed");
            }
        }
        if conn.flush_and_rearm(self.poll.registry(), MASTER) == Io::Closed {
            self.lost("write to the master failed");
        }
    }

    /// The handshake failed: say why (without repeating ourselves every retry), try again.
    fn refused(&mut self, why: &str) {
        if let Some(mut conn) = self.conn.take() {
            let _ = self.poll.registry().deregister(conn.stream_mut());
        }
        self.handshake = None;
        if let Some(line) = self.refusals.note(why, Instant::now()) {
            warn!("not registered: {line}; retrying");
        }
        self.schedule_reconnect();
    }

    fn lost(&mut self, why: &str) {
        if self.handshake.is_some() {
            // Closed before any WELCOME: a master that refuses without a word, or one that died.
            return self.refused(why);
        }
        if let Some(mut conn) = self.conn.take() {
            let _ = self.poll.registry().deregister(conn.stream_mut());
        }
        warn!("lost the master: {why}; trying the next address");
        debug!("{} keys held", self.store.len());
        self.schedule_reconnect();
    }
}

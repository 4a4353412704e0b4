//! The slave's mio event loop: one connection to the master (the first address that answers,
//! then the next on failure, with backoff), frames in to the [`Store`], replies out.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_net::{Conn, Io};
use dsm_wire::{Body, Frame, Role};
use log::{debug, info, warn};
use mio::{Events, Interest, Poll, Token};

use crate::store::Store;

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
    reconnect_at: Option<Instant>,
    announced: bool,
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
        Ok(Node {
            cfg,
            poll: Poll::new()?,
            events: Events::with_capacity(256),
            conn: None,
            store: Store::default(),
            next_master: 0,
            backoff: MIN_BACKOFF,
            reconnect_at: Some(Instant::now()),
            announced: false,
        })
    }

    pub fn turn(&mut self) -> io::Result<()> {
        if self.conn.is_none() {
            if let Some(at) = self.reconnect_at {
                if Instant::now() >= at {
                    self.connect();
                }
            }
        }
        let timeout = match (&self.conn, self.reconnect_at) {
            (None, Some(at)) => Some(at.saturating_duration_since(Instant::now())),
            _ => None,
        };
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
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
                info!(
                    "connected to master {addr}; registering as '{}'",
                    self.cfg.id
                );
                let mut conn = Conn::new(stream, self.cfg.max_frame);
                conn.send(&Frame::new(
                    0,
                    Body::Hello {
                        role: Role::Slave,
                        epoch: self.store.epoch(),
                        id: self.cfg.id.clone(),
                    },
                ));
                self.conn = Some(conn);
                self.reconnect_at = None;
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
        self.reconnect_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Read everything available, answer it, flush; on any transport failure, move on.
    fn serve(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        loop {
            match conn.read_some() {
                Io::Done(_) => {}
                Io::WouldBlock => break,
                Io::Closed => return self.lost("the master closed the connection"),
            }
            loop {
                match conn.next_frame() {
                    Ok(Some(frame)) => {
                        if let Body::Welcome { epoch, .. } = frame.body {
                            self.backoff = MIN_BACKOFF;
                            info!(
                                "registered with master (epoch {epoch}), {} keys held",
                                self.store.len()
                            );
                            if !self.announced {
                                self.announced = true;
                                println!("dsm-slave ready: id={}", self.cfg.id);
                            }
                        }
                        if let Some(reply) = self.store.on_frame(frame) {
                            conn.send(&reply);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return self.lost(&format!("bad frame from the master: {e}")),
                }
            }
        }
        if conn.flush_and_rearm(self.poll.registry(), MASTER) == Io::Closed {
            self.lost("write to the master failed");
        }
    }

    fn lost(&mut self, why: &str) {
        if let Some(mut conn) = self.conn.take() {
            let _ = self.poll.registry().deregister(conn.stream_mut());
        }
        warn!("lost the master: {why}; trying the next address");
        debug!("{} keys held", self.store.len());
        self.schedule_reconnect();
    }
}

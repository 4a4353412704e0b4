//! The master's two listening sockets (clients and slaves on `--listen`, backups on
//! `--heartbeat`) and the connection cap: accepting stops at `--max-conns` and resumes below
//! 90% of it.

use std::io;
use std::net::SocketAddr;

use log::{info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const HEARTBEAT: Token = Token(usize::MAX - 2);

pub(crate) struct Listeners {
    listener: TcpListener,
    heartbeat: TcpListener,
    max_conns: usize,
    accepting: bool,
}

impl Listeners {
    pub fn bind(
        listen: SocketAddr,
        heartbeat: SocketAddr,
        max_conns: usize,
        registry: &Registry,
    ) -> io::Result<Listeners> {
        let mut listener = bind(listen, "--listen")?;
        let mut heartbeat = bind(heartbeat, "--heartbeat")?;
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        registry.register(&mut heartbeat, HEARTBEAT, Interest::READABLE)?;
        Ok(Listeners {
            listener,
            heartbeat,
            max_conns,
            accepting: true,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn heartbeat_addr(&self) -> io::Result<SocketAddr> {
        self.heartbeat.local_addr()
    }

    /// The next connection waiting on the socket of `token`, while fewer than `--max-conns`
    /// are `open`; `None` when none waits or accepting has paused at the cap.
    pub fn next(&mut self, token: Token, open: usize) -> Option<(TcpStream, SocketAddr)> {
        while self.accepting {
            let listener = if token == LISTENER {
                &self.listener
            } else {
                &self.heartbeat
            };
            let (stream, addr) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog and go on serving.
                    warn!("accept failed: {e}");
                    return None;
                }
            };
            if open >= self.max_conns {
                warn!("{open} connections: at --max-conns, refusing {addr} and pausing accept");
                self.accepting = false;
                return None;
            }
            let _ = stream.set_nodelay(true);
            return Some((stream, addr));
        }
        None
    }

    /// A connection closed and `open` remain: whether accepting resumes (below 90% of the cap).
    pub fn resume(&mut self, open: usize) -> bool {
        if self.accepting || open >= self.max_conns * 9 / 10 {
            return false;
        }
        info!("below 90% of --max-conns again; accepting");
        self.accepting = true;
        true
    }
}

/// Bind `addr`; an error names the address and the flag that gave it.
fn bind(addr: SocketAddr, flag: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr} ({flag}): {e}")))
}

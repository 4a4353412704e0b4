//! The master's two listening sockets (clients and slaves on `--listen`, backups on
//! `--heartbeat`). Accepting never pauses: the caps are applied to what is accepted (see
//! `Server::accept`), so nobody is left waiting in the backlog.

use std::io;
use std::net::SocketAddr;

use log::warn;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const HEARTBEAT: Token = Token(usize::MAX - 2);

pub(crate) struct Listeners {
    listener: TcpListener,
    heartbeat: TcpListener,
}

impl Listeners {
    pub fn bind(
        listen: SocketAddr,
        heartbeat: SocketAddr,
        registry: &Registry,
    ) -> io::Result<Listeners> {
        let mut listener = bind(listen, "--listen")?;
        let mut heartbeat = bind(heartbeat, "--heartbeat")?;
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        registry.register(&mut heartbeat, HEARTBEAT, Interest::READABLE)?;
        Ok(Listeners {
            listener,
            heartbeat,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn heartbeat_addr(&self) -> io::Result<SocketAddr> {
        self.heartbeat.local_addr()
    }

    /// The next connection waiting on the socket of `token`; `None` when none waits.
    pub fn next(&mut self, token: Token) -> Option<(TcpStream, SocketAddr)> {
        loop {
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
            let _ = stream.set_nodelay(true);
            return Some((stream, addr));
        }
    }
}

/// Bind `addr`; an error names the address and the flag that gave it.
fn bind(addr: SocketAddr, flag: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr} ({flag}): {e}")))
}

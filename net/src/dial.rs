//! An outgoing connection that never blocks the event loop: `connect` starts it and registers
//! it for both readiness kinds; [`progress`] tells, on each event, whether it is up, failed,
//! or still under way (mio's "non-blocking connect" recipe: `take_error`, then `peer_addr`).

use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// How far a connect has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Connected to this address.
    Up(SocketAddr),
    /// It failed, and why.
    Failed(String),
    /// Not yet: wait for the next event.
    Pending,
}

/// Start connecting to `addr`, registered under `token` for reading and writing (a connect
/// completes as writable).
pub fn connect(addr: SocketAddr, registry: &Registry, token: Token) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Where the connect of `stream` stands, after a readiness event for it.
pub fn progress(stream: &TcpStream) -> Progress {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => Progress::Failed(e.to_string()),
        Ok(None) => match stream.peer_addr() {
            Ok(addr) => Progress::Up(addr),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Progress::Pending,
            Err(e) => Progress::Failed(e.to_string()),
        },
    }
}

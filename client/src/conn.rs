//! One blocking connection to one master: connect, the handshake, and frames written and read
//! against a deadline. Choosing the master and resending belong to [`crate::Client`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use dsm_auth::{Handshake, Secret, Step};
use dsm_wire::{decode_with_max, encode, Frame, Role, WireError};

use crate::error::Error;

pub(crate) struct MasterConn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    max_frame: usize,
}

impl MasterConn {
    /// Open a TCP connection to `addr`, waiting at most `wait`; nothing is sent yet.
    pub(crate) fn connect(
        addr: SocketAddr,
        wait: Duration,
        max_frame: usize,
    ) -> Result<MasterConn, Error> {
        let stream = TcpStream::connect_timeout(&addr, wait)?;
        stream.set_nodelay(true)?;
        Ok(MasterConn {
            stream,
            rbuf: Vec::new(),
            max_frame,
        })
    }

    /// HELLO, and with a secret the rest of the exchange, until WELCOME or a refusal.
    /// `timeout` is the call's, for the error when `until` passes.
    pub(crate) fn handshake(
        &mut self,
        secret: Option<&Secret>,
        req: u64,
        until: Instant,
        timeout: Duration,
    ) -> Result<(), Error> {
        let (mut hs, hello) = Handshake::start(secret, req, Role::Client, 0, String::new(), 0)?;
        self.send_frame(&hello, until)?;
        loop {
            match hs.on_frame(self.next_frame(until, timeout)?) {
                Step::Send(auth) => self.send_frame(&auth, until)?,
                Step::Welcomed { .. } => return Ok(()),
                Step::Refused { code, text } => return Err(Error::Server { code, text }),
                Step::Distrust { why, reply } => {
                    let _ = self.send_frame(&reply, until);
                    return Err(Error::Untrusted(why));
                }
            }
        }
    }

    pub(crate) fn send_frame(&mut self, frame: &Frame, until: Instant) -> Result<(), Error> {
        let mut out = Vec::new();
        encode(frame, &mut out);
        self.send(&out, until)
    }

    /// Write all of `bytes` (encoded frames) by `until`.
    pub(crate) fn send(&mut self, bytes: &[u8], until: Instant) -> Result<(), Error> {
        self.stream.set_write_timeout(Some(remaining(until)?))?;
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// The next frame from the master, reading as needed until `deadline`; `timeout` is the
    /// call's, for the error when the deadline passes.
    pub(crate) fn next_frame(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Frame, Error> {
        loop {
            match decode_with_max(&self.rbuf, self.max_frame) {
                Ok(Some((frame, used))) => {
                    self.rbuf.drain(..used);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(WireError::TooLarge { len, max }) => {
                    return Err(Error::ReplyTooLarge { len, max })
                }
                Err(e) => return Err(Error::Protocol(e.to_string())),
            }
            let wait = remaining(deadline)?;
            self.stream.set_read_timeout(Some(wait))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "master closed the connection",
                    )))
                }
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Err(Error::Timeout {
                        waited_ms: timeout.as_millis() as u64,
                    })
                }
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }

    /// Whether the master has closed the connection (or it failed), looking without blocking
    /// or consuming.
    pub(crate) fn peer_closed(&self) -> bool {
        let stream = &self.stream;
        if stream.set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match stream.peek(&mut [0u8; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted
            }
        };
        stream.set_nonblocking(false).is_err() || closed
    }
}

/// The time left before `deadline`; a deadline already past is a timeout.
pub(crate) fn remaining(deadline: Instant) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Timeout { waited_ms: 0 });
    }
    Ok(left)
}

//! A framed, buffered non-blocking TCP connection: reads into a bounded buffer, decodes frames,
//! queues encoded replies and flushes them in as few `write` calls as it can.

use std::io::{self, Read, Write};

use dsm_wire::{decode_with_max, encode, Frame, WireError};
use mio::net::TcpStream;

/// How far a read or write got. Reset, broken pipe and EOF all count as `Closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Some bytes moved (for a flush: everything queued was written).
    Done(usize),
    /// The socket would block; wait for the next readiness event.
    WouldBlock,
    /// The peer is gone.
    Closed,
}

/// Bytes asked of the kernel per `read` call.
const READ_CHUNK: usize = 64 * 1024;

pub struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    /// Start of the undecoded bytes in `rbuf`; compacted lazily so decoding is not O(n^2).
    rpos: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    max_frame: usize,
    /// Whether WRITABLE interest is registered (only while bytes wait).
    pub write_interest: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, max_frame: usize) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            wpos: 0,
            max_frame,
            write_interest: false,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// One `read` call into the buffer. Call [`Conn::next_frame`] until `Ok(None)` after each
    /// `Done`, so the buffer holds at most one partial frame plus one chunk.
    pub fn read_some(&mut self) -> Io {
        if self.rpos > 0 && self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        } else if self.rpos > READ_CHUNK {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let filled = self.rbuf.len();
        self.rbuf.resize(filled + READ_CHUNK, 0);
        let result = loop {
            match self.stream.read(&mut self.rbuf[filled..]) {
                Ok(0) => break Io::Closed,
                Ok(n) => break Io::Done(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Io::WouldBlock,
                Err(_) => break Io::Closed,
            }
        };
        let kept = match result {
            Io::Done(n) => filled + n,
            _ => filled,
        };
        self.rbuf.truncate(kept);
        // A 1 MiB frame grows the buffer; give the memory back once it is consumed.
        if self.rbuf.capacity() > 4 * READ_CHUNK && self.rbuf.len() - self.rpos < READ_CHUNK {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
            self.rbuf.shrink_to(2 * READ_CHUNK);
        }
        result
    }

    /// The next whole frame already buffered, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        match decode_with_max(&self.rbuf[self.rpos..], self.max_frame)? {
            Some((frame, used)) => {
                self.rpos += used;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// Bytes received but not yet decoded (a half-sent frame).
    pub fn unread(&self) -> usize {
        self.rbuf.len() - self.rpos
    }

    /// Queue a frame; nothing is written until [`Conn::flush`].
    pub fn send(&mut self, frame: &Frame) {
        encode(frame, &mut self.wbuf);
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Write queued bytes until done or the socket would block.
    pub fn flush(&mut self) -> Io {
        let mut written = 0;
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Io::Closed,
                Ok(n) => {
                    self.wpos += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Io::WouldBlock,
                Err(_) => return Io::Closed,
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        if self.wbuf.capacity() > 4 * READ_CHUNK {
            self.wbuf.shrink_to(READ_CHUNK);
        }
        Io::Done(written)
    }
}

impl Conn {
    /// Flush, then ask for WRITABLE only while bytes still wait (and drop it once they are gone).
    /// Returns what the flush did; `Closed` means the peer is gone.
    pub fn flush_and_rearm(&mut self, registry: &mio::Registry, token: mio::Token) -> Io {
        let result = self.flush();
        if result == Io::Closed {
            return result;
        }
        let want = self.pending() > 0;
        if want != self.write_interest {
            let interest = if want {
                mio::Interest::READABLE | mio::Interest::WRITABLE
            } else {
                mio::Interest::READABLE
            };
            if registry
                .reregister(&mut self.stream, token, interest)
                .is_err()
            {
                return Io::Closed;
            }
            self.write_interest = want;
        }
        result
    }
}

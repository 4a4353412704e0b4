//! A framed, buffered non-blocking TCP connection: reads into a bounded buffer, decodes frames,
//! queues encoded replies and flushes them in as few `write` calls as it can.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::rc::Rc;

use crate::bytes::SharedBytes;

use dsm_wire::{
    decode_borrowed, decode_with_max, encode, encode_ref, encode_ref_head, BodyRef, Decoded, Frame,
    WireError,
};
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

/// What is buffered of a frame whose length is over the maximum (see [`Conn::oversize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// Fewer than the 13 header bytes have arrived.
    Partial,
    /// Its header: the receiver may answer it and [`Conn::skip_frame`] its bytes.
    Header { op: u8, req_id: u64, len: usize },
}

/// Bytes asked of the kernel per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// A STORE value at least this large is queued as a reference to its shared buffer
/// ([`Conn::send_shared`]) and written with `writev`, not copied into the queue: below it
/// the copy costs less than the extra slice.
pub const SHARED_MIN: usize = 16 * 1024;

/// Slices handed to one `writev`.
const MAX_SLICES: usize = 64;

/// The read size for a connection whose frames are at most `max_frame` bytes.
fn chunk_for(max_frame: usize) -> usize {
    READ_CHUNK
        .min(max_frame.next_power_of_two())
        .max(dsm_wire::HEADER_LEN)
}

/// A value queued by reference ([`Conn::send_shared`], [`Conn::send_owned`]).
enum Seg {
    Shared(SharedBytes),
    Owned(Vec<u8>),
}

impl Seg {
    fn bytes(&self) -> &[u8] {
        match self {
            Seg::Shared(v) => v,
            Seg::Owned(v) => v,
        }
    }
}

pub struct Conn {
    stream: TcpStream,
    /// Read buffer. Its length is how much is allocated and zeroed (once, when it grows);
    /// the received bytes not yet decoded are `rbuf[rpos..rend]`.
    rbuf: Vec<u8>,
    /// Start of the undecoded bytes; compacted lazily so decoding is not O(n^2).
    rpos: usize,
    rend: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Shared values queued between the bytes of `wbuf`: each goes out right after
    /// `wbuf[..at]`, in order (`at` never decreases). `seg_done` bytes of the first are written.
    segs: VecDeque<(usize, Seg)>,
    seg_done: usize,
    /// Bytes of `segs` not yet written.
    seg_bytes: usize,
    max_frame: usize,
    /// Bytes asked of the kernel per `read`: [`READ_CHUNK`], or less for a small `max_frame`
    /// (a peer that has not authenticated gets a few KiB of buffer, not 64).
    chunk: usize,
    /// The last read returned less than it asked for: the socket had nothing more then.
    drained: bool,
    /// The poll said the peer hung up (or the socket failed): a short read is then no proof
    /// that nothing is left, as the end of the stream may wait behind the data just read.
    hung_up: bool,
    /// `rbuf` is the event loop's scratch buffer, lent by [`Conn::lend`] until
    /// [`Conn::give_back`].
    lent: bool,
    /// Bytes of a refused oversize frame still to be discarded as they arrive.
    skip: usize,
    /// Whether WRITABLE interest is registered (only while bytes wait).
    pub write_interest: bool,
    /// The last flush could not write everything (the socket was full).
    blocked: bool,
    /// Since [`Conn::take_progress`] last looked, a flush wrote bytes into a socket that had
    /// been full: the peer has read some. (A write into a socket with room proves nothing: the
    /// kernel takes it for a stopped process too.)
    progress: bool,
    /// Keep buffers a large frame grew ([`Conn::keep_buffers`]) instead of freeing them.
    keep: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, max_frame: usize) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            rpos: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            segs: VecDeque::new(),
            seg_done: 0,
            seg_bytes: 0,
            max_frame,
            chunk: chunk_for(max_frame),
            drained: false,
            hung_up: false,
            lent: false,
            skip: 0,
            write_interest: false,
            blocked: false,
            progress: false,
            keep: false,
        }
    }

    /// Keep the read and write buffers a large frame grew, for the next one, instead of
    /// freeing them once drained. For a connection that is one of a few and carries large
    /// frames one after another (a slave's link to its master, a load generator's
    /// connections): freed, every 1 MiB frame was read into, or written from, memory the
    /// kernel had to fault in and zero afresh (with 1 MiB STOREs, 35% of a slave's CPU in
    /// `clear_page_erms`). The cost is a buffer of up to a frame and a read chunk per
    /// direction, held while the connection lasts. Not for a server's many client
    /// connections (the master's reads use one scratch buffer for all, [`Conn::lend`]).
    pub fn keep_buffers(&mut self, keep: bool) {
        self.keep = keep;
    }

    /// Change the largest frame this connection accepts (a peer that has not authenticated
    /// yet gets a small one; see the master).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
        self.chunk = chunk_for(max_frame);
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whether the peer has read bytes off a full socket since the last call (see
    /// [`Conn`]'s `progress`): it is alive and draining, however slowly.
    pub fn take_progress(&mut self) -> bool {
        std::mem::take(&mut self.progress)
    }

    /// Bytes this connection holds in its buffers (allocated, not only in use).
    pub fn buffered(&self) -> usize {
        self.rbuf.capacity() + self.wbuf.capacity() + self.seg_bytes
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
        self.read_upto(self.chunk)
    }

    /// [`Conn::read_some`], asking the kernel for at most `limit` bytes (and never more than
    /// a chunk), except for the rest of a frame whose header is in: a loop that cannot judge
    /// a frame before its header is read keeps what it reads of one it then refuses small.
    pub fn read_upto(&mut self, limit: usize) -> Io {
        let chunk = limit.clamp(dsm_wire::HEADER_LEN, self.chunk);
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        } else if self.rpos > self.chunk {
            self.compact();
        }
        let rest = self.rest_of_frame();
        let mut chunk = chunk.max(rest);
        let filled = self.rend;
        if self.rbuf.len() < filled + chunk && rest > 0 && self.rbuf.len() >= filled + rest {
            // The frame under way fits the buffer: read up to its end rather than grow the
            // buffer by a chunk past it. A large frame read into a spare buffer of its size
            // (`Conn::take_frame`) otherwise grew it, which moved the whole frame read so far.
            chunk = self.rbuf.len() - filled;
        }
        // Grows (and zeroes) only the part never used before: a per-call zero-fill of the
        // whole chunk cost the master 5-7% of its CPU under load.
        if self.rbuf.len() < filled + chunk {
            // Exactly what is needed, not the doubling `resize` alone would give: a large
            // frame's buffer may be kept whole as its value (the master's read cache, which
            // counts it by its capacity), and a 1 MiB frame read into a reused 1 MiB buffer
            // grew it to 2 MiB, half of it never used.
            self.rbuf.reserve_exact(filled + chunk - self.rbuf.len());
            self.rbuf.resize(filled + chunk, 0);
        }
        let result = loop {
            match self.stream.read(&mut self.rbuf[filled..filled + chunk]) {
                Ok(0) => break Io::Closed,
                Ok(n) => break Io::Done(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Io::WouldBlock,
                Err(_) => break Io::Closed,
            }
        };
        self.drained = !matches!(result, Io::Done(n) if n == chunk);
        if let Io::Done(n) = result {
            self.rend += n;
        }
        // A 1 MiB frame grows the buffer; give the memory back once it is consumed. (A lent
        // buffer is the loop's one scratch buffer: it keeps its size, see [`Conn::give_back`].)
        if !self.lent
            && !self.keep
            && self.rbuf.len() > 4 * READ_CHUNK
            && self.rend - self.rpos < READ_CHUNK
        {
            let mut fresh = vec![0; 2 * READ_CHUNK];
            fresh[..self.rend - self.rpos].copy_from_slice(&self.rbuf[self.rpos..self.rend]);
            self.rend -= self.rpos;
            self.rpos = 0;
            // Freed, not shrunk in place (see [`Conn::flush`]).
            self.rbuf = fresh;
        }
        result
    }

    /// Before the reads of one readable event: read into `scratch`, a buffer the event loop
    /// keeps for all its connections, instead of a buffer of this connection's own. The bytes
    /// this connection holds (a partial frame from an earlier read, at most a chunk) are
    /// copied to its front. Not lent while this connection holds more, the start of a large
    /// frame: that goes on in its own buffer (already of the frame's size), not copied again.
    /// Every `lend` is to be followed by [`Conn::give_back`] with the same `scratch`.
    pub fn lend(&mut self, scratch: &mut Vec<u8>) {
        let held = self.rend - self.rpos;
        if self.lent || held > self.chunk {
            return;
        }
        if scratch.len() < held + self.chunk {
            scratch.resize(held + self.chunk, 0);
        }
        scratch[..held].copy_from_slice(&self.rbuf[self.rpos..self.rend]);
        // This connection's own buffer, a partial frame's bytes at most, is freed.
        self.rbuf = std::mem::take(scratch);
        self.rpos = 0;
        self.rend = held;
        self.lent = true;
    }

    /// After the reads of one event, whether or not [`Conn::lend`] lent anything: the
    /// connection keeps a buffer of exactly the bytes it holds (none for one whose frames
    /// were all handled, so an idle connection costs no read buffer), and `scratch` is the
    /// loop's again. Bytes held past a chunk (a large frame part-way in) keep the buffer
    /// they are in, sized for the frame by [`Conn::read_upto`], and the loop's scratch buffer
    /// is made anew at its next lend.
    pub fn give_back(&mut self, scratch: &mut Vec<u8>) {
        let held = self.rend - self.rpos;
        if held > self.chunk {
            self.lent = false;
            return;
        }
        if !self.lent && self.rbuf.len() <= held {
            return;
        }
        let own = self.rbuf[self.rpos..self.rend].to_vec();
        let big = std::mem::replace(&mut self.rbuf, own);
        self.rpos = 0;
        self.rend = held;
        // The loop's buffer back (or, not lent, this connection's large one: kept as the
        // loop's if it has none, so the next large frame does not allocate again).
        if self.lent || scratch.capacity() == 0 {
            *scratch = big;
        }
        self.lent = false;
    }

    /// Bytes still to come of the frame at the front, when its header is in and announces
    /// more than one read chunk: the next `read` asks for all of it, so a 1 MiB frame takes
    /// one call (or as many as the socket holds parts of), not sixteen. 0 otherwise.
    fn rest_of_frame(&self) -> usize {
        let buf = &self.rbuf[self.rpos..self.rend];
        if self.skip > 0 || buf.len() < 4 {
            return 0;
        }
        let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len > self.max_frame || len <= buf.len() {
            return 0;
        }
        len - buf.len()
    }

    /// Whether the last [`Conn::read_some`] emptied the socket (it got less than it asked
    /// for, or nothing). Then another read would only return `WouldBlock`: on Linux an
    /// edge-triggered poll reports every later arrival of data again, so a loop may stop here
    /// and save one `recvfrom` per readable event.
    ///
    /// Not once [`Conn::hung_up`] was called: a FIN that came with the last data raises no
    /// further event, so the loop must read on to see the end of the stream.
    pub fn drained(&self) -> bool {
        self.drained && !self.hung_up
    }

    /// The poll reported that the peer hung up or the socket failed ([`hangs_up`]): from now
    /// on [`Conn::drained`] says false, so a read loop reads until the end of the stream or
    /// an error instead of stopping at a short read.
    pub fn hung_up(&mut self) {
        self.hung_up = true;
    }

    /// Move the undecoded bytes to the front of the buffer.
    fn compact(&mut self) {
        self.rbuf.copy_within(self.rpos..self.rend, 0);
        self.rend -= self.rpos;
        self.rpos = 0;
    }

    /// Discard what has arrived of a skipped frame; whether more of it is still to come.
    #[inline]
    fn skipping(&mut self) -> bool {
        if self.skip > 0 {
            let n = self.skip.min(self.rend - self.rpos);
            self.rpos += n;
            self.skip -= n;
        }
        self.skip > 0
    }

    /// After a [`WireError::TooLarge`]: the header of the frame at the front, if it is in.
    pub fn oversize(&self) -> Oversize {
        let buf = &self.rbuf[self.rpos..self.rend];
        if buf.len() < dsm_wire::HEADER_LEN {
            return Oversize::Partial;
        }
        Oversize::Header {
            op: buf[4],
            req_id: u64::from_be_bytes(buf[5..13].try_into().expect("8 bytes")),
            len: u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize,
        }
    }

    /// Drop the frame of `len` bytes at the front without buffering it: what has arrived now
    /// and the rest as it comes. Decoding resumes at the frame after it, so one frame that is
    /// too large need not cost the connection.
    pub fn skip_frame(&mut self, len: usize) {
        self.skip = len;
        self.skipping();
    }

    /// The next whole frame already buffered, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        if self.skipping() {
            return Ok(None);
        }
        match decode_with_max(&self.rbuf[self.rpos..self.rend], self.max_frame)? {
            Some((frame, used)) => {
                self.rpos += used;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// [`Conn::next_frame`], with the keys and values of the hot opcodes borrowed from the read
    /// buffer (see [`dsm_wire::decode_borrowed`]) until the next call.
    pub fn next_decoded(&mut self) -> Result<Option<Decoded<'_>>, WireError> {
        if self.skipping() {
            return Ok(None);
        }
        let Conn {
            rbuf,
            rpos,
            rend,
            max_frame,
            ..
        } = self;
        match decode_borrowed(&rbuf[*rpos..*rend], *max_frame)? {
            Some((decoded, used)) => {
                *rpos += used;
                Ok(Some(decoded))
            }
            None => Ok(None),
        }
    }

    /// The frame at the front, if it is all buffered, within the limit and at least `min`
    /// bytes long, taken out with the buffer it was read into (no copy): the caller decodes
    /// `buf[range]` and may keep parts of it ([`SharedBytes::within`]), the value of a large
    /// WRITE say. The connection keeps the bytes after the frame in a buffer of their own
    /// (a lent buffer goes with the frame, and [`Conn::give_back`] hands the loop this one).
    /// That buffer is `spare` when given: one taken before and no longer used, whose bytes are
    /// already allocated and initialized, so the next large frame is read into it without
    /// the kernel faulting pages in or [`Conn::read_upto`] zeroing them.
    pub fn take_frame(
        &mut self,
        min: usize,
        spare: Option<Vec<u8>>,
    ) -> Option<(Rc<Vec<u8>>, std::ops::Range<usize>)> {
        let (_, len) = self.peek_header()?;
        if len < min || len > self.max_frame || self.rend - self.rpos < len {
            return None;
        }
        let end = self.rpos + len;
        let left = self.rend - end;
        let mut rest = spare.unwrap_or_default();
        if rest.len() < left {
            rest.resize(left, 0);
        }
        rest[..left].copy_from_slice(&self.rbuf[end..self.rend]);
        let mut buf = std::mem::replace(&mut self.rbuf, rest);
        buf.truncate(end);
        let range = self.rpos..end;
        self.rend -= end;
        self.rpos = 0;
        Some((Rc::new(buf), range))
    }

    /// Read into `buf` from now on, if it is longer than this connection's own buffer (the
    /// bytes received and not taken yet move to its front); else drop it. For a buffer freed
    /// elsewhere whose bytes are already in memory (the slave's replaced record): the next
    /// large frame is read into it without the kernel faulting pages in or
    /// [`Conn::read_upto`] zeroing them. Not while the loop's scratch buffer is lent.
    pub fn offer_buffer(&mut self, mut buf: Vec<u8>) {
        let held = self.rend - self.rpos;
        if self.lent || buf.len() <= self.rbuf.len() || buf.len() < held {
            return;
        }
        buf[..held].copy_from_slice(&self.rbuf[self.rpos..self.rend]);
        self.rbuf = buf;
        self.rpos = 0;
        self.rend = held;
    }

    /// The opcode and length of the next frame, without taking it, once its header is in
    /// (not while a refused frame is being skipped).
    pub fn peek_header(&self) -> Option<(u8, usize)> {
        match self.oversize() {
            Oversize::Header { op, len, .. } if self.skip == 0 => Some((op, len)),
            _ => None,
        }
    }

    /// The key of the next frame, without taking it, if it is a whole READ.
    pub fn peek_read_key(&self) -> Option<&[u8]> {
        if self.skip > 0 {
            return None;
        }
        match decode_borrowed(&self.rbuf[self.rpos..self.rend], self.max_frame) {
            Ok(Some((Decoded::Ref(_, BodyRef::Read { key }), _))) => Some(key),
            _ => None,
        }
    }

    /// The bytes received and not yet taken, for a protocol other than frames (`http.rs`).
    pub fn received(&self) -> &[u8] {
        &self.rbuf[self.rpos..self.rend]
    }

    /// Take the first `n` of [`Conn::received`].
    pub fn consume(&mut self, n: usize) {
        self.rpos = (self.rpos + n).min(self.rend);
    }

    /// Drop everything received and not yet taken.
    pub fn discard_buffered(&mut self) {
        self.rpos = self.rend;
    }

    /// Queue raw bytes (not a frame); nothing is written until [`Conn::flush`].
    pub fn queue_bytes(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet decoded (a half-sent frame).
    pub fn unread(&self) -> usize {
        self.rend - self.rpos
    }

    /// Queue a frame; nothing is written until [`Conn::flush`].
    pub fn send(&mut self, frame: &Frame) {
        encode(frame, &mut self.wbuf);
    }

    /// Queue a frame encoded straight from borrowed key and value bytes.
    pub fn send_ref(&mut self, req_id: u64, body: &BodyRef<'_>) {
        encode_ref(req_id, body, &mut self.wbuf);
    }

    /// Queue a STORE whose value is `value`, the buffer `body` borrows it from: the frame's
    /// head is copied into the queue, the value itself only referenced (so a write to R slaves
    /// keeps one copy of it, written to each socket from there). A small value, or another
    /// body, is copied as by [`Conn::send_ref`].
    pub fn send_shared(&mut self, req_id: u64, body: &BodyRef<'_>, value: &SharedBytes) {
        if value.len() < SHARED_MIN {
            return self.send_ref(req_id, body);
        }
        match encode_ref_head(req_id, body, &mut self.wbuf) {
            Some(tail) => {
                debug_assert!(std::ptr::eq(tail, &value[..]), "the body borrows `value`");
                self.seg_bytes += value.len();
                self.segs
                    .push_back((self.wbuf.len(), Seg::Shared(value.clone())));
            }
            None => self.send_ref(req_id, body),
        }
    }

    /// Queue a frame whose last field is `value` (a VALUE reply, say), given `body` with that
    /// field empty: the head is copied, `value` kept as it is and written from there. A small
    /// value is copied, as by [`Conn::send_ref`].
    pub fn send_owned(&mut self, req_id: u64, body: &BodyRef<'_>, value: Vec<u8>) {
        let with = |v| match *body {
            BodyRef::Value { .. } => BodyRef::Value { value: v },
            BodyRef::Versioned { version, .. } => BodyRef::Versioned { version, value: v },
            BodyRef::Fetched { version, .. } => BodyRef::Fetched { version, value: v },
            other => other,
        };
        if value.len() < SHARED_MIN {
            return self.send_ref(req_id, &with(&value));
        }
        let full = with(&value);
        match encode_ref_head(req_id, &full, &mut self.wbuf) {
            Some(_) => {
                self.seg_bytes += value.len();
                self.segs.push_back((self.wbuf.len(), Seg::Owned(value)));
            }
            None => self.send_ref(req_id, &full),
        }
    }

    /// With nothing queued, free a write buffer larger than `keep` bytes (for a peer with
    /// nothing more coming its way: it then costs no write buffer while idle).
    pub fn release_write_buffer(&mut self, keep: usize) {
        if self.pending() == 0 && self.wbuf.capacity() > keep {
            self.wbuf = Vec::new();
            self.wpos = 0;
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos + self.seg_bytes
    }

    /// One `write` (or `writev`, with shared values queued) of what is queued.
    fn write_some(&mut self) -> io::Result<usize> {
        if self.segs.is_empty() {
            return self.stream.write(&self.wbuf[self.wpos..]);
        }
        let mut slices: [IoSlice<'_>; MAX_SLICES] = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = 0;
        let mut from = self.wpos;
        for (i, (at, value)) in self.segs.iter().enumerate() {
            if n + 2 > MAX_SLICES {
                break;
            }
            if *at > from {
                slices[n] = IoSlice::new(&self.wbuf[from..*at]);
                n += 1;
            }
            let skip = if i == 0 { self.seg_done } else { 0 };
            slices[n] = IoSlice::new(&value.bytes()[skip..]);
            n += 1;
            from = *at;
        }
        if n < MAX_SLICES && from < self.wbuf.len() {
            slices[n] = IoSlice::new(&self.wbuf[from..]);
            n += 1;
        }
        self.stream.write_vectored(&slices[..n])
    }

    /// Count `n` bytes written, through the queue's bytes and shared values in order.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some((at, value)) = self.segs.front() else {
                self.wpos += n;
                return;
            };
            let before = (at - self.wpos).min(n);
            self.wpos += before;
            n -= before;
            let len = value.bytes().len();
            let took = (len - self.seg_done).min(n);
            self.seg_done += took;
            self.seg_bytes -= took;
            n -= took;
            if self.seg_done == len {
                self.segs.pop_front();
                self.seg_done = 0;
            }
        }
    }

    /// Write queued bytes until done or the socket would block.
    pub fn flush(&mut self) -> Io {
        let mut written = 0;
        while self.pending() > 0 {
            match self.write_some() {
                Ok(0) => return Io::Closed,
                Ok(n) => {
                    self.advance(n);
                    written += n;
                    self.progress |= self.blocked;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    // Consumed bytes are dropped so a long-blocked buffer does not keep them.
                    if self.wpos > READ_CHUNK && self.wpos * 2 > self.wbuf.len() {
                        self.wbuf.drain(..self.wpos);
                        for (at, _) in self.segs.iter_mut() {
                            *at -= self.wpos;
                        }
                        self.wpos = 0;
                    }
                    return Io::WouldBlock;
                }
                Err(_) => return Io::Closed,
            }
        }
        self.blocked = false;
        self.wbuf.clear();
        self.wpos = 0;
        // A buffer a large reply grew is given back whole: shrunk in place, it would leave a
        // hole the next large reply does not fit in, and a master serving many connections
        // large values would keep a hole per connection (300 clients that each asked one 1 MiB
        // value, the kernel taking all of each reply, grew a debug master by 72-90 MB that way;
        // given back whole, by 22-26 MB, mostly their 64 KiB read buffers).
        if !self.keep && self.wbuf.capacity() > 4 * READ_CHUNK {
            // (And freed, not shrunk with `realloc`: glibc serves a block this large with mmap,
            // and a shrink and regrow is an `mremap` that faults fresh zeroed pages in for each
            // large frame: with 1 MB values, 500 page faults per WRITE on the master. A `free`
            // raises glibc's mmap threshold past it, so the next one comes from the heap.)
            self.wbuf = Vec::new();
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

/// Whether a poll event says the peer hung up or the socket failed: tell its connection
/// ([`Conn::hung_up`]), and read it even if it is not readable.
pub fn hangs_up(event: &mio::event::Event) -> bool {
    event.is_read_closed() || event.is_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair: our non-blocking `Conn` and the peer's blocking end.
    fn pair(max_frame: usize) -> (Conn, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        stream.set_nonblocking(true).unwrap();
        let (peer, _) = listener.accept().unwrap();
        (Conn::new(TcpStream::from_std(stream), max_frame), peer)
    }

    /// A WRITE frame of `n` value bytes, encoded.
    fn write_frame(n: usize) -> Vec<u8> {
        let mut b = Vec::new();
        let body = dsm_wire::Body::Write {
            key: b"k".to_vec(),
            value: vec![5u8; n],
        };
        encode(&Frame::new(1, body), &mut b);
        b
    }

    /// Read (into the connection's own buffer) until `n` bytes are in; fails after 5 s.
    fn read_in(conn: &mut Conn, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while conn.unread() < n {
            assert!(std::time::Instant::now() < deadline, "{} in", conn.unread());
            let _ = conn.read_some();
        }
    }

    /// Read with `scratch` lent until the socket has nothing more, taking every whole frame;
    /// returns how many were taken.
    fn read_lent(conn: &mut Conn, scratch: &mut Vec<u8>) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut frames = 0;
        conn.lend(scratch);
        loop {
            match conn.read_some() {
                Io::Done(_) => {}
                Io::WouldBlock if frames > 0 || std::time::Instant::now() > deadline => break,
                Io::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(5)),
                Io::Closed => panic!("closed"),
            }
            while conn.next_frame().unwrap().is_some() {
                frames += 1;
            }
        }
        conn.give_back(scratch);
        frames
    }

    /// A peer that sends its last frame and hangs up at once: the FIN is in the socket behind
    /// the data, the poll reports both in one event, and a short read is then not the end of
    /// what the socket holds. Told of the hang-up, `drained` says so, and the next read sees
    /// the close (a backup refused by its primary waited for a close that no event reported).
    #[test]
    fn a_hang_up_behind_the_last_data_is_read_once_the_poll_reported_it() {
        let (mut conn, mut peer) = pair(4 << 20);
        let mut poll = mio::Poll::new().unwrap();
        poll.registry()
            .register(&mut conn.stream, mio::Token(0), mio::Interest::READABLE)
            .unwrap();
        peer.write_all(&write_frame(10)).unwrap();
        drop(peer);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut events = mio::Events::with_capacity(4);
        let mut hung_up = false;
        while !hung_up {
            assert!(std::time::Instant::now() < deadline, "no hang-up reported");
            poll.poll(&mut events, Some(std::time::Duration::from_millis(100)))
                .unwrap();
            hung_up = events.iter().any(|e| e.is_read_closed());
        }
        assert!(matches!(conn.read_some(), Io::Done(_)));
        assert!(conn.next_frame().unwrap().is_some());
        assert!(conn.drained(), "a short read");
        conn.hung_up();
        assert!(!conn.drained(), "the end may wait behind it");
        assert_eq!(conn.read_some(), Io::Closed);
    }

    /// With the loop's scratch buffer lent for its reads, a connection keeps exactly the bytes
    /// of the frame not yet whole, and nothing once every frame is handled.
    #[test]
    fn a_lent_buffer_leaves_a_connection_only_what_it_holds() {
        let (mut conn, mut peer) = pair(4 << 20);
        let mut scratch = Vec::new();
        let mut bytes = Vec::new();
        for i in 0..3 {
            encode(&Frame::new(i, dsm_wire::Body::Ping), &mut bytes);
        }
        let mut last = Vec::new();
        encode(
            &Frame::new(
                9,
                dsm_wire::Body::Read {
                    key: b"a key".to_vec(),
                },
            ),
            &mut last,
        );
        bytes.extend_from_slice(&last[..7]);
        peer.write_all(&bytes).unwrap();
        assert_eq!(read_lent(&mut conn, &mut scratch), 3);
        assert_eq!(conn.buffered(), 7, "a partial frame's bytes, and no more");
        assert!(
            scratch.len() >= READ_CHUNK,
            "the scratch buffer is the loop's again"
        );
        peer.write_all(&last[7..]).unwrap();
        assert_eq!(read_lent(&mut conn, &mut scratch), 1);
        assert_eq!(
            conn.buffered(),
            0,
            "an idle connection holds no read buffer"
        );
    }

    /// A large frame that has not all come by the end of an event keeps the buffer it is in
    /// (not copied again), and gives it back to the loop once it is taken.
    #[test]
    fn a_large_frame_part_way_in_keeps_its_buffer_until_taken() {
        let (mut conn, mut peer) = pair(4 << 20);
        let mut scratch = Vec::new();
        let mut bytes = Vec::new();
        let value = vec![7u8; 300_000];
        encode(
            &Frame::new(
                1,
                dsm_wire::Body::Write {
                    key: b"k".to_vec(),
                    value,
                },
            ),
            &mut bytes,
        );
        peer.write_all(&bytes[..200_000]).unwrap();
        // Until the 200 KB are in (loopback may hand them over in parts).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while conn.unread() < 200_000 {
            assert!(std::time::Instant::now() < deadline, "{} in", conn.unread());
            conn.lend(&mut scratch);
            let _ = conn.read_some();
            assert!(conn.next_frame().unwrap().is_none());
            conn.give_back(&mut scratch);
        }
        assert_eq!(
            scratch.capacity(),
            0,
            "the loop's buffer stays with the frame"
        );
        assert!(conn.buffered() >= bytes.len(), "sized for the whole frame");
        peer.write_all(&bytes[200_000..]).unwrap();
        assert_eq!(read_lent(&mut conn, &mut scratch), 1);
        assert_eq!(conn.buffered(), 0);
        assert!(scratch.len() >= READ_CHUNK, "the loop has a buffer again");
    }

    /// A large frame taken out with its buffer is exactly the frame's bytes (decodable, its
    /// value a slice of that buffer), only once it is whole, and the frames after it stay
    /// with the connection.
    #[test]
    fn a_whole_large_frame_is_taken_with_its_buffer() {
        let (mut conn, mut peer) = pair(4 << 20);
        let mut scratch = Vec::new();
        let value: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let mut bytes = Vec::new();
        let write = Frame::new(
            1,
            dsm_wire::Body::Write {
                key: b"k".to_vec(),
                value: value.clone(),
            },
        );
        encode(&write, &mut bytes);
        let big = bytes.len();
        encode(&Frame::new(2, dsm_wire::Body::Ping), &mut bytes);
        peer.write_all(&bytes[..big - 10]).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while conn.unread() < big - 10 {
            assert!(std::time::Instant::now() < deadline, "{} in", conn.unread());
            conn.lend(&mut scratch);
            let _ = conn.read_some();
            assert!(conn.take_frame(1000, None).is_none(), "not whole yet");
            conn.give_back(&mut scratch);
        }
        peer.write_all(&bytes[big - 10..]).unwrap();
        while conn.unread() < bytes.len() {
            assert!(std::time::Instant::now() < deadline, "{} in", conn.unread());
            conn.lend(&mut scratch);
            let _ = conn.read_some();
            conn.give_back(&mut scratch);
        }
        conn.lend(&mut scratch);
        assert!(
            conn.take_frame(big + 1, None).is_none(),
            "under the minimum: left alone"
        );
        let (buf, range) = conn.take_frame(1000, Some(vec![9; 5])).expect("whole");
        assert_eq!(range.len(), big);
        assert_eq!(&buf[range.clone()], &bytes[..big]);
        match decode_borrowed(&buf[range], 4 << 20).unwrap() {
            Some((Decoded::Ref(1, BodyRef::Write { value: v, .. }), used)) => {
                assert_eq!(used, big);
                let shared = SharedBytes::within(&buf, v).expect("a slice of the buffer");
                assert_eq!(&shared[..], &value[..]);
            }
            other => panic!("{:?}", other.map(|(d, _)| d.into_frame())),
        }
        assert_eq!(
            conn.next_frame().unwrap(),
            Some(Frame::new(2, dsm_wire::Body::Ping))
        );
        conn.give_back(&mut scratch);
        assert_eq!(conn.buffered(), 0);
    }

    /// A large frame read into a reused buffer a little smaller than itself grows that buffer
    /// to what the frame needs, not to twice its old size: the master's read cache keeps such
    /// a buffer whole as a value and counts it by its capacity.
    #[test]
    fn a_reused_buffer_grows_to_the_frame_not_to_double() {
        let (mut conn, mut peer) = pair(4 << 20);
        let mut scratch = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let read_lending = |conn: &mut Conn, scratch: &mut Vec<u8>, n: usize| {
            while conn.unread() < n {
                assert!(std::time::Instant::now() < deadline, "{} in", conn.unread());
                conn.lend(scratch);
                let _ = conn.read_some();
                conn.give_back(scratch);
            }
        };
        let first = write_frame(300_000);
        peer.write_all(&first).unwrap();
        read_lending(&mut conn, &mut scratch, first.len());
        conn.lend(&mut scratch);
        // The next frame is read into a spare of the first one's size.
        let spare = vec![0u8; first.len()];
        assert!(conn.take_frame(1000, Some(spare)).is_some());
        conn.give_back(&mut scratch);
        let second = write_frame(310_000);
        peer.write_all(&second).unwrap();
        read_lending(&mut conn, &mut scratch, second.len());
        conn.lend(&mut scratch);
        let (buf, range) = conn.take_frame(1000, None).expect("whole");
        conn.give_back(&mut scratch);
        assert_eq!(&buf[range], &second[..]);
        assert!(
            buf.capacity() < second.len() + (128 << 10),
            "a {}-byte buffer for a {}-byte frame",
            buf.capacity(),
            second.len()
        );
    }

    /// A frame read into a spare buffer of its own size stays in that buffer: the last read
    /// stops at the frame's end instead of growing the buffer by a chunk past it, which
    /// moved (copied) the whole frame read so far. The slave reads each large STORE into the
    /// block of the record it replaced so.
    #[test]
    fn a_frame_read_into_a_spare_of_its_size_stays_there() {
        let (mut conn, mut peer) = pair(4 << 20);
        conn.keep_buffers(true);
        let first = write_frame(300_000);
        peer.write_all(&first).unwrap();
        read_in(&mut conn, first.len());
        let spare = vec![0u8; first.len()];
        let at = spare.as_ptr();
        assert!(conn.take_frame(1000, Some(spare)).is_some());
        let second = write_frame(300_000);
        // In pieces, so that the last read is of less than a chunk.
        for part in second.chunks(100_003) {
            peer.write_all(part).unwrap();
            peer.flush().unwrap();
            read_in(
                &mut conn,
                part.as_ptr() as usize - second.as_ptr() as usize + part.len(),
            );
        }
        let (buf, range) = conn.take_frame(1000, None).expect("whole");
        assert_eq!(&buf[range], &second[..]);
        assert_eq!(buf.as_ptr(), at, "read into the spare, not moved");
        assert_eq!(buf.capacity(), first.len(), "not grown");
    }

    /// A buffer offered to a connection is read into from then on if it is longer than the
    /// connection's own (the bytes received so far move to its front), and dropped if not.
    #[test]
    fn an_offered_buffer_is_read_into_if_it_is_longer() {
        let (mut conn, mut peer) = pair(4 << 20);
        conn.keep_buffers(true);
        let frame = write_frame(200_000);
        // The first 100 bytes arrive before the offer, the rest after.
        peer.write_all(&frame[..100]).unwrap();
        read_in(&mut conn, 100);
        conn.offer_buffer(vec![0u8; 10]);
        let offered = vec![0u8; frame.len()];
        let at = offered.as_ptr();
        conn.offer_buffer(offered);
        assert_eq!(conn.unread(), 100, "the bytes received are kept");
        peer.write_all(&frame[100..]).unwrap();
        read_in(&mut conn, frame.len());
        let (buf, range) = conn.take_frame(1000, None).expect("whole");
        assert_eq!(&buf[range], &frame[..]);
        assert_eq!(buf.as_ptr(), at, "read into the buffer offered");
    }

    /// Frames queued with shared and owned values between copied ones reach the peer byte for
    /// byte as if every frame had been copied, also when the socket takes them a part at a
    /// time.
    #[test]
    fn shared_values_go_out_in_order_through_partial_writes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        stream.set_nonblocking(true).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_nonblocking(true).unwrap();
        let mut conn = Conn::new(TcpStream::from_std(stream), 4 << 20);
        let values: Vec<SharedBytes> = (0..3u8)
            .map(|i| {
                (0..1_000_000 + i as usize)
                    .map(|b| (b % 251) as u8 ^ i)
                    .collect::<Vec<u8>>()
                    .into()
            })
            .collect();
        let mut expected = Vec::new();
        // 24 MB in all: more than loopback's socket buffers take at once.
        for (i, value) in values.iter().cycle().take(24).enumerate() {
            let small = BodyRef::Fetch {
                epoch: 1,
                key: b"small",
            };
            conn.send_ref(i as u64, &small);
            encode_ref(i as u64, &small, &mut expected);
            let store = BodyRef::Store {
                epoch: 1,
                version: i as u64 + 1,
                key: b"key",
                value,
            };
            conn.send_shared(100 + i as u64, &store, value);
            encode_ref(100 + i as u64, &store, &mut expected);
        }
        let owned: Vec<u8> = values[1].to_vec();
        conn.send_owned(
            5,
            &BodyRef::Versioned {
                version: 3,
                value: &[],
            },
            owned.clone(),
        );
        encode_ref(
            5,
            &BodyRef::Versioned {
                version: 3,
                value: &owned,
            },
            &mut expected,
        );
        conn.send_owned(6, &BodyRef::Value { value: &[] }, b"small".to_vec());
        encode_ref(6, &BodyRef::Value { value: b"small" }, &mut expected);
        let tiny = SharedBytes::from(&b"tiny"[..]);
        let store = BodyRef::Store {
            epoch: 1,
            version: 9,
            key: b"k",
            value: &tiny,
        };
        conn.send_shared(7, &store, &tiny);
        encode_ref(7, &store, &mut expected);
        assert_eq!(conn.pending(), expected.len());
        let mut got = Vec::new();
        let mut buf = vec![0; 100_000];
        let mut blocked = false;
        while got.len() < expected.len() {
            match conn.flush() {
                Io::Closed => panic!("closed"),
                Io::WouldBlock => blocked = true,
                Io::Done(_) => assert_eq!(conn.pending(), 0),
            }
            match peer.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(blocked, "the socket should have taken the 24 MB in parts");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes differ from the copied frames");
    }
}

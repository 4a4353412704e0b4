//! Encoding and decoding of frames to and from byte buffers; no I/O.

use byteorder::{BigEndian, ByteOrder};

use crate::error::WireError;
use crate::frame::{
    AuthBytes, Body, ErrorCode, Frame, Opcode, Role, ServerRole, SlaveStatus, Status, SyncEvent,
    AUTH_LEN,
};
use crate::{DEFAULT_MAX_FRAME, HEADER_LEN};

/// Decode one frame from the front of `buf` with the default frame maximum.
///
/// `Ok(None)`: `buf` holds only a prefix of a frame; read more bytes and call again.
/// `Ok(Some((frame, used)))`: the first `used` bytes were one frame.
/// `Err(_)`: the stream is not a valid dsm stream; close the connection.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
    decode_with_max(buf, DEFAULT_MAX_FRAME)
}

/// [`decode`] with an explicit largest frame length. The length prefix and the opcode are checked
/// as soon as they arrive, so a bogus 4 GiB prefix fails after 4 bytes, not after buffering.
pub fn decode_with_max(buf: &[u8], max_frame: usize) -> Result<Option<(Frame, usize)>, WireError> {
    let Some((op, req_id, len)) = header(buf, max_frame)? else {
        return Ok(None);
    };
    let mut r = Reader {
        buf: &buf[HEADER_LEN..len],
        op: op as u8,
    };
    let body = decode_body(op, &mut r)?;
    r.end()?;
    Ok(Some((Frame { req_id, body }, len)))
}

/// One decoded frame: borrowed from the input buffer for the opcodes [`BodyRef`] covers,
/// owned for the rest.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<'a> {
    Ref(u64, BodyRef<'a>),
    Owned(Frame),
}

impl Decoded<'_> {
    pub fn req_id(&self) -> u64 {
        match self {
            Decoded::Ref(req_id, _) => *req_id,
            Decoded::Owned(frame) => frame.req_id,
        }
    }

    /// The opcode of the frame, borrowed or owned.
    pub fn opcode(&self) -> Opcode {
        match self {
            Decoded::Ref(_, body) => body.opcode(),
            Decoded::Owned(frame) => frame.body.opcode(),
        }
    }

    /// The owned frame (copies a borrowed key and value).
    pub fn into_frame(self) -> Frame {
        match self {
            Decoded::Ref(req_id, body) => Frame::new(req_id, body.to_body()),
            Decoded::Owned(frame) => frame,
        }
    }
}

/// [`decode_with_max`] without copying keys and values out of `buf` for the opcodes
/// [`BodyRef`] covers: a server that keeps a key in its own form (an `Rc<[u8]>`, a slot in its
/// store) copies it once, from here, instead of twice. Same checks, same errors, same `used`.
pub fn decode_borrowed(
    buf: &[u8],
    max_frame: usize,
) -> Result<Option<(Decoded<'_>, usize)>, WireError> {
    let Some((op, req_id, len)) = header(buf, max_frame)? else {
        return Ok(None);
    };
    let mut r = Reader {
        buf: &buf[HEADER_LEN..len],
        op: op as u8,
    };
    let body = match op {
        Opcode::Read => BodyRef::Read { key: r.slice()? },
        Opcode::Write => BodyRef::Write {
            key: r.slice()?,
            value: r.slice()?,
        },
        Opcode::Store => BodyRef::Store {
            epoch: r.u64()?,
            version: r.u64()?,
            key: r.slice()?,
            value: r.slice()?,
        },
        Opcode::Fetch => BodyRef::Fetch {
            epoch: r.u64()?,
            key: r.slice()?,
        },
        Opcode::Fetched => BodyRef::Fetched {
            version: r.u64()?,
            value: r.slice()?,
        },
        Opcode::Value => BodyRef::Value { value: r.slice()? },
        _ => {
            let body = decode_body(op, &mut r)?;
            r.end()?;
            return Ok(Some((Decoded::Owned(Frame { req_id, body }), len)));
        }
    };
    r.end()?;
    Ok(Some((Decoded::Ref(req_id, body), len)))
}

/// The opcode, request id and length of the frame at the front of `buf`, once it is all there.
/// The length prefix and the opcode are checked as soon as they arrive.
fn header(buf: &[u8], max_frame: usize) -> Result<Option<(Opcode, u64, usize)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = BigEndian::read_u32(&buf[..4]) as usize;
    if len < HEADER_LEN {
        return Err(WireError::TooShort {
            len,
            min: HEADER_LEN,
        });
    }
    if len > max_frame {
        return Err(WireError::TooLarge {
            len,
            max: max_frame,
        });
    }
    if buf.len() < 5 {
        return Ok(None);
    }
    let op = Opcode::from_u8(buf[4]).ok_or(WireError::UnknownOpcode(buf[4]))?;
    if buf.len() < len {
        return Ok(None);
    }
    let req_id = BigEndian::read_u64(&buf[5..HEADER_LEN]);
    Ok(Some((op, req_id, len)))
}

fn decode_body(op: Opcode, r: &mut Reader<'_>) -> Result<Body, WireError> {
    Ok(match op {
        Opcode::Hello => {
            let role = Role::from_u8(r.u8()?).ok_or(r.malformed("unknown role"))?;
            let epoch = r.u64()?;
            let id = r.string()?;
            let nonce = r.opt_auth()?;
            Body::Hello {
                role,
                epoch,
                id,
                nonce,
            }
        }
        Opcode::Welcome => Body::Welcome {
            epoch: r.u64()?,
            reset: r.flag()?,
            proof: r.opt_auth()?,
        },
        Opcode::Challenge => Body::Challenge { nonce: r.auth()? },
        Opcode::Auth => Body::Auth { proof: r.auth()? },
        Opcode::Write => Body::Write {
            key: r.bytes()?,
            value: r.bytes()?,
        },
        Opcode::Read => Body::Read { key: r.bytes()? },
        Opcode::Ok => Body::Ok,
        Opcode::Value => Body::Value { value: r.bytes()? },
        Opcode::NotFound => Body::NotFound,
        Opcode::Error => Body::Error {
            code: ErrorCode::from_u16(r.u16()?),
            text: r.string()?,
        },
        Opcode::Store => Body::Store {
            epoch: r.u64()?,
            version: r.u64()?,
            key: r.bytes()?,
            value: r.bytes()?,
        },
        Opcode::Ack => Body::Ack { version: r.u64()? },
        Opcode::Fetch => Body::Fetch {
            epoch: r.u64()?,
            key: r.bytes()?,
        },
        Opcode::Fetched => Body::Fetched {
            version: r.u64()?,
            value: r.bytes()?,
        },
        Opcode::Ping => Body::Ping,
        Opcode::Pong => Body::Pong,
        Opcode::Status => Body::Status,
        Opcode::SyncAck => Body::SyncAck,
        Opcode::Sync => {
            let epoch = r.u64()?;
            let next_version = r.u64()?;
            let complete = r.flag()?;
            let n = r.u32()? as usize;
            // Every event takes at least 3 bytes: refuse a count the body cannot hold.
            if n > r.buf.len() / 3 {
                return Err(r.malformed("event count larger than the body"));
            }
            // The count is checked against the body, but an event can be 3 bytes and a
            // SyncEvent is far larger: reserve a bounded amount and let the Vec grow.
            let mut events = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                events.push(match r.u8()? {
                    1 => SyncEvent::SlaveUp { id: r.string()? },
                    2 => SyncEvent::SlaveDown { id: r.string()? },
                    3 => {
                        let key = r.bytes()?;
                        let version = r.u64()?;
                        let count = r.u8()? as usize;
                        let mut holders = Vec::with_capacity(count);
                        for _ in 0..count {
                            holders.push(r.string()?);
                        }
                        SyncEvent::Key {
                            key,
                            version,
                            holders,
                        }
                    }
                    4 => SyncEvent::Intent { key: r.bytes()? },
                    _ => return Err(r.malformed("unknown sync event")),
                });
            }
            Body::Sync {
                epoch,
                next_version,
                complete,
                events,
            }
        }
        Opcode::StatusReply => {
            let role = ServerRole::from_u8(r.u8()?).ok_or(r.malformed("unknown server role"))?;
            let epoch = r.u64()?;
            let replicas = r.u16()?;
            let keys = r.u64()?;
            let under_replicated = r.u64()?;
            let n = r.u16()? as usize;
            // Each slave entry is at least 2+2+1+8 bytes: refuse a count the body cannot hold
            // before reserving room for it.
            if n > r.buf.len() / 13 {
                return Err(r.malformed("slave count larger than the body"));
            }
            let mut slaves = Vec::with_capacity(n);
            for _ in 0..n {
                slaves.push(SlaveStatus {
                    id: r.string()?,
                    addr: r.string()?,
                    live: r.flag()?,
                    keys: r.u64()?,
                });
            }
            Body::StatusReply(Status {
                role,
                epoch,
                replicas,
                keys,
                under_replicated,
                slaves,
            })
        }
    })
}

/// A cursor over one frame's body; every read checks the bytes are there.
struct Reader<'a> {
    buf: &'a [u8],
    op: u8,
}

impl<'a> Reader<'a> {
    fn malformed(&self, reason: &'static str) -> WireError {
        WireError::Malformed {
            op: self.op,
            reason,
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(self.malformed("body shorter than its fields"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn flag(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.malformed("flag byte is neither 0 nor 1")),
        }
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(BigEndian::read_u16(self.take(2)?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(BigEndian::read_u32(self.take(4)?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(BigEndian::read_u64(self.take(8)?))
    }
    /// A nonce or proof: exactly [`AUTH_LEN`] bytes.
    fn auth(&mut self) -> Result<AuthBytes, WireError> {
        let mut out = [0; AUTH_LEN];
        out.copy_from_slice(self.take(AUTH_LEN)?);
        Ok(out)
    }
    /// A flag, then a nonce or proof only when the flag is 1.
    fn opt_auth(&mut self) -> Result<Option<AuthBytes>, WireError> {
        Ok(match self.flag()? {
            true => Some(self.auth()?),
            false => None,
        })
    }
    /// A u32 length then that many bytes (keys and values).
    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        Ok(self.slice()?.to_vec())
    }
    /// [`Reader::bytes`], borrowed.
    fn slice(&mut self) -> Result<&'a [u8], WireError> {
        let n = BigEndian::read_u32(self.take(4)?) as usize;
        self.take(n)
    }
    /// The body must end here.
    fn end(&self) -> Result<(), WireError> {
        if !self.buf.is_empty() {
            return Err(self.malformed("trailing bytes after the body"));
        }
        Ok(())
    }
    /// A u16 length then that many bytes of UTF-8 (ids, addresses, error text).
    fn string(&mut self) -> Result<String, WireError> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.malformed("string is not UTF-8"))
    }
}

/// Append the encoding of `frame` to `out`. Strings longer than 65,535 bytes are cut at a
/// character boundary (they are ids and messages); keys and values are never cut.
///
/// # Panics
///
/// If a key, a value or the whole frame is over `u32::MAX` bytes: its length field cannot say
/// so, and a wrapped length would make the receiver read the rest of the bytes as other frames.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    match BodyRef::of(&frame.body) {
        Some(body) => encode_ref(frame.req_id, &body, out),
        None => {
            let start = begin(frame.body.opcode(), frame.req_id, out);
            encode_body(&frame.body, out);
            finish(start, out);
        }
    }
}

/// A borrowed view of the frames that carry keys and values on the hot path. Encoding one
/// writes the same bytes as the owned [`Body`], without first copying the key and value into
/// a `Body` (the master sends one STORE per replica from a single shared copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRef<'a> {
    Read {
        key: &'a [u8],
    },
    Write {
        key: &'a [u8],
        value: &'a [u8],
    },
    Store {
        epoch: u64,
        version: u64,
        key: &'a [u8],
        value: &'a [u8],
    },
    Fetch {
        epoch: u64,
        key: &'a [u8],
    },
    Fetched {
        version: u64,
        value: &'a [u8],
    },
    Value {
        value: &'a [u8],
    },
}

impl<'a> BodyRef<'a> {
    /// The borrowed view of `body`, for the opcodes that have one.
    pub fn of(body: &'a Body) -> Option<BodyRef<'a>> {
        Some(match body {
            Body::Read { key } => BodyRef::Read { key },
            Body::Write { key, value } => BodyRef::Write { key, value },
            Body::Store {
                epoch,
                version,
                key,
                value,
            } => BodyRef::Store {
                epoch: *epoch,
                version: *version,
                key,
                value,
            },
            Body::Fetch { epoch, key } => BodyRef::Fetch { epoch: *epoch, key },
            Body::Fetched { version, value } => BodyRef::Fetched {
                version: *version,
                value,
            },
            Body::Value { value } => BodyRef::Value { value },
            _ => return None,
        })
    }

    /// The owned body with the same encoding (copies the key and value).
    pub fn to_body(&self) -> Body {
        match *self {
            BodyRef::Read { key } => Body::Read { key: key.to_vec() },
            BodyRef::Write { key, value } => Body::Write {
                key: key.to_vec(),
                value: value.to_vec(),
            },
            BodyRef::Store {
                epoch,
                version,
                key,
                value,
            } => Body::Store {
                epoch,
                version,
                key: key.to_vec(),
                value: value.to_vec(),
            },
            BodyRef::Fetch { epoch, key } => Body::Fetch {
                epoch,
                key: key.to_vec(),
            },
            BodyRef::Fetched { version, value } => Body::Fetched {
                version,
                value: value.to_vec(),
            },
            BodyRef::Value { value } => Body::Value {
                value: value.to_vec(),
            },
        }
    }

    pub fn opcode(&self) -> Opcode {
        match self {
            BodyRef::Read { .. } => Opcode::Read,
            BodyRef::Write { .. } => Opcode::Write,
            BodyRef::Store { .. } => Opcode::Store,
            BodyRef::Fetch { .. } => Opcode::Fetch,
            BodyRef::Fetched { .. } => Opcode::Fetched,
            BodyRef::Value { .. } => Opcode::Value,
        }
    }
}

/// Append the frame of a borrowed body to `out` (see [`BodyRef`]).
pub fn encode_ref(req_id: u64, body: &BodyRef<'_>, out: &mut Vec<u8>) {
    let start = begin(body.opcode(), req_id, out);
    match *body {
        BodyRef::Read { key } => put_bytes(out, key),
        BodyRef::Write { key, value } => {
            out.reserve(8 + key.len() + value.len());
            put_bytes(out, key);
            put_bytes(out, value);
        }
        BodyRef::Store {
            epoch,
            version,
            key,
            value,
        } => {
            out.reserve(16 + 8 + key.len() + value.len());
            put_u64(out, epoch);
            put_u64(out, version);
            put_bytes(out, key);
            put_bytes(out, value);
        }
        BodyRef::Fetch { epoch, key } => {
            put_u64(out, epoch);
            put_bytes(out, key);
        }
        BodyRef::Fetched { version, value } => {
            put_u64(out, version);
            put_bytes(out, value);
        }
        BodyRef::Value { value } => put_bytes(out, value),
    }
    finish(start, out);
}

/// Reserve the header (length filled in by [`finish`]); returns where the frame starts.
fn begin(op: Opcode, req_id: u64, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    let mut header = [0; HEADER_LEN];
    header[4] = op as u8;
    BigEndian::write_u64(&mut header[5..], req_id);
    out.extend_from_slice(&header);
    start
}

fn finish(start: usize, out: &mut [u8]) {
    let len = u32::try_from(out.len() - start).expect("frame over u32::MAX bytes");
    BigEndian::write_u32(&mut out[start..start + 4], len);
}

fn encode_body(body: &Body, out: &mut Vec<u8>) {
    match body {
        Body::Hello {
            role,
            epoch,
            id,
            nonce,
        } => {
            out.push(*role as u8);
            put_u64(out, *epoch);
            put_string(out, id);
            put_opt_auth(out, nonce);
        }
        Body::Welcome {
            epoch,
            reset,
            proof,
        } => {
            put_u64(out, *epoch);
            out.push(*reset as u8);
            put_opt_auth(out, proof);
        }
        Body::Challenge { nonce } => out.extend_from_slice(nonce),
        Body::Auth { proof } => out.extend_from_slice(proof),
        Body::Ok | Body::NotFound | Body::Ping | Body::Pong | Body::Status | Body::SyncAck => {}
        Body::Sync {
            epoch,
            next_version,
            complete,
            events,
        } => {
            put_u64(out, *epoch);
            put_u64(out, *next_version);
            out.push(*complete as u8);
            put_u32(out, events.len() as u32);
            for e in events {
                match e {
                    SyncEvent::SlaveUp { id } => {
                        out.push(1);
                        put_string(out, id);
                    }
                    SyncEvent::SlaveDown { id } => {
                        out.push(2);
                        put_string(out, id);
                    }
                    SyncEvent::Key {
                        key,
                        version,
                        holders,
                    } => {
                        out.push(3);
                        put_bytes(out, key);
                        put_u64(out, *version);
                        let n = holders.len().min(u8::MAX as usize);
                        out.push(n as u8);
                        for h in &holders[..n] {
                            put_string(out, h);
                        }
                    }
                    SyncEvent::Intent { key } => {
                        out.push(4);
                        put_bytes(out, key);
                    }
                }
            }
        }
        Body::Error { code, text } => {
            put_u16(out, code.to_u16());
            put_string(out, text);
        }
        Body::Ack { version } => put_u64(out, *version),
        Body::Read { .. }
        | Body::Write { .. }
        | Body::Store { .. }
        | Body::Fetch { .. }
        | Body::Fetched { .. }
        | Body::Value { .. } => {
            unreachable!("encoded through BodyRef")
        }
        Body::StatusReply(s) => {
            out.push(s.role as u8);
            put_u64(out, s.epoch);
            put_u16(out, s.replicas);
            put_u64(out, s.keys);
            put_u64(out, s.under_replicated);
            let n = s.slaves.len().min(u16::MAX as usize);
            put_u16(out, n as u16);
            for slave in &s.slaves[..n] {
                put_string(out, &slave.id);
                put_string(out, &slave.addr);
                out.push(slave.live as u8);
                put_u64(out, slave.keys);
            }
        }
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    let mut b = [0; 2];
    BigEndian::write_u16(&mut b, v);
    out.extend_from_slice(&b);
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    let mut b = [0; 4];
    BigEndian::write_u32(&mut b, v);
    out.extend_from_slice(&b);
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    let mut b = [0; 8];
    BigEndian::write_u64(&mut b, v);
    out.extend_from_slice(&b);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(
        out,
        u32::try_from(b.len()).expect("key or value over u32::MAX bytes"),
    );
    out.extend_from_slice(b);
}

fn put_opt_auth(out: &mut Vec<u8>, v: &Option<AuthBytes>) {
    match v {
        Some(b) => {
            out.push(1);
            out.extend_from_slice(b);
        }
        None => out.push(0),
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    put_u16(out, end as u16);
    out.extend_from_slice(&s.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_and_owned_bodies_encode_alike_and_convert_both_ways() {
        let bodies = [
            BodyRef::Store {
                epoch: 3,
                version: 1 << 40 | 7,
                key: b"key",
                value: b"value",
            },
            BodyRef::Fetch { epoch: 2, key: b"" },
            BodyRef::Fetched {
                version: 9,
                value: &[0, 255, 1],
            },
            BodyRef::Value { value: b"v" },
        ];
        for b in bodies {
            let owned = b.to_body();
            assert_eq!(BodyRef::of(&owned), Some(b));
            assert_eq!(owned.opcode(), b.opcode());
            let mut by_ref = Vec::new();
            encode_ref(42, &b, &mut by_ref);
            let mut by_owned = Vec::new();
            encode(&Frame::new(42, owned.clone()), &mut by_owned);
            assert_eq!(by_ref, by_owned);
            assert_eq!(
                decode(&by_ref).unwrap(),
                Some((Frame::new(42, owned), by_ref.len()))
            );
        }
        assert_eq!(BodyRef::of(&Body::Ping), None);
    }
}

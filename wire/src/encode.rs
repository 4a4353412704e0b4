//! Encoding frames into a byte buffer: the header, then each body's fields big-endian; no I/O.

use byteorder::{BigEndian, ByteOrder};

use crate::body_ref::BodyRef;
use crate::frame::{AuthBytes, Body, Frame, Opcode, Status, SyncEvent, WriteId};
use crate::HEADER_LEN;

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
        BodyRef::WriteOnce {
            id,
            resent_ms,
            key,
            value,
        } => {
            out.reserve(24 + 4 + 8 + key.len() + value.len());
            put_write_id(out, id);
            put_u32(out, resent_ms);
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
        BodyRef::StoreOnce {
            epoch,
            version,
            id,
            key,
            value,
            keep: _,
        } => {
            out.reserve(16 + 24 + 8 + key.len() + value.len());
            put_u64(out, epoch);
            put_u64(out, version);
            put_write_id(out, id);
            put_bytes(out, key);
            put_bytes(out, value);
        }
        BodyRef::Recall {
            epoch,
            client,
            seq,
            age_ms,
            key,
        } => {
            put_u64(out, epoch);
            put_u64(out, client);
            put_u64(out, seq);
            put_u32(out, age_ms);
            put_bytes(out, key);
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
        BodyRef::Versioned { version, value } => {
            put_u64(out, version);
            put_bytes(out, value);
        }
        BodyRef::Set {
            key,
            expected,
            value,
        } => {
            out.reserve(8 + 9 + key.len() + value.len());
            put_bytes(out, key);
            put_opt_u64(out, expected);
            put_bytes(out, value);
        }
        BodyRef::Delete { key, expected } => {
            put_bytes(out, key);
            put_opt_u64(out, expected);
        }
        BodyRef::Incr { key, delta } => {
            put_bytes(out, key);
            put_u64(out, delta as u64);
        }
        BodyRef::VRead { key } => put_bytes(out, key),
    }
    finish(start, out);
}

/// [`encode_ref`] of a body whose last field is a value (STORE, STORE_ONCE, FETCHED, VALUE,
/// VERSIONED) without the value's bytes: everything up to and including the value's length,
/// with the frame's length counting the value, so that the value can follow from a buffer of
/// its own (the master writes one buffer, shared by every slave a write goes to, with
/// `writev`, instead of copying it into each slave's queue; and a READ's value as it came from
/// the slave). Returns the value, or `None` with nothing written for any other body.
pub fn encode_ref_head<'a>(req_id: u64, body: &BodyRef<'a>, out: &mut Vec<u8>) -> Option<&'a [u8]> {
    let value = match *body {
        BodyRef::Store {
            epoch,
            version,
            key,
            value,
        } => {
            let start = begin(body.opcode(), req_id, out);
            put_u64(out, epoch);
            put_u64(out, version);
            put_bytes(out, key);
            (start, value)
        }
        BodyRef::StoreOnce {
            epoch,
            version,
            id,
            key,
            value,
            keep: _,
        } => {
            let start = begin(body.opcode(), req_id, out);
            put_u64(out, epoch);
            put_u64(out, version);
            put_write_id(out, id);
            put_bytes(out, key);
            (start, value)
        }
        BodyRef::Fetched { version, value } | BodyRef::Versioned { version, value } => {
            let start = begin(body.opcode(), req_id, out);
            put_u64(out, version);
            (start, value)
        }
        BodyRef::Value { value } => (begin(body.opcode(), req_id, out), value),
        _ => return None,
    };
    let (start, value) = value;
    put_u32(
        out,
        u32::try_from(value.len()).expect("value over u32::MAX bytes"),
    );
    let len = u32::try_from(out.len() - start + value.len()).expect("frame over u32::MAX bytes");
    BigEndian::write_u32(&mut out[start..start + 4], len);
    Some(value)
}

// `#[inline]` on the helpers below: encode_ref runs for every frame on the hot path, and
// without the hint a release build called put_bytes out of line (23% more instructions per
// WRITE frame under callgrind).

/// Reserve the header (length filled in by [`finish`]); returns where the frame starts.
#[inline]
fn begin(op: Opcode, req_id: u64, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    let mut header = [0; HEADER_LEN];
    header[4] = op as u8;
    BigEndian::write_u64(&mut header[5..], req_id);
    out.extend_from_slice(&header);
    start
}

#[inline]
fn finish(start: usize, out: &mut [u8]) {
    let len = u32::try_from(out.len() - start).expect("frame over u32::MAX bytes");
    BigEndian::write_u32(&mut out[start..start + 4], len);
}

/// The bodies [`BodyRef`] does not cover.
fn encode_body(body: &Body, out: &mut Vec<u8>) {
    match body {
        Body::Hello {
            role,
            epoch,
            id,
            boot,
            nonce,
            limits,
        } => {
            out.push(*role as u8);
            put_u64(out, *epoch);
            put_string(out, id);
            put_u64(out, *boot);
            put_opt_auth(out, nonce.as_deref());
            match limits {
                Some(l) => {
                    out.push(1);
                    put_u32(out, l.max_key);
                    put_u32(out, l.max_value);
                    put_u16(out, l.masters);
                }
                None => out.push(0),
            }
        }
        Body::Welcome {
            epoch,
            inventory,
            standby,
            lease_ms,
            proof,
        } => {
            put_u64(out, *epoch);
            out.push(*inventory as u8);
            out.push(*standby as u8);
            put_u32(out, *lease_ms);
            put_opt_auth(out, proof.as_ref());
        }
        Body::Takeover {
            epoch,
            inventory,
            lease_ms,
            id,
            voters,
        } => {
            put_u64(out, *epoch);
            out.push(*inventory as u8);
            put_u32(out, *lease_ms);
            put_string(out, id);
            put_u16(out, *voters);
        }
        Body::Vote {
            granted,
            stale,
            voters,
        } => {
            out.push(*granted as u8);
            out.push(*stale as u8);
            put_u16(out, *voters);
        }
        Body::Stale { gen, voters, ids } => {
            put_u64(out, *gen);
            put_u16(out, *voters);
            let n = ids.len().min(u16::MAX as usize);
            put_u16(out, n as u16);
            for id in &ids[..n] {
                put_string(out, id);
            }
        }
        Body::Challenge { nonce } => out.extend_from_slice(nonce),
        Body::Auth { proof } => out.extend_from_slice(proof),
        Body::Ok
        | Body::NotFound
        | Body::Ping
        | Body::Pong
        | Body::Status
        | Body::SyncAck
        | Body::Release => {}
        Body::Released { below } => put_u64(out, *below),
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
                put_sync_event(out, e);
            }
        }
        Body::Error { code, text } => {
            put_u16(out, code.to_u16());
            put_string(out, text);
        }
        Body::Ack { version } => put_u64(out, *version),
        Body::Recalled { held, stored, kept } => {
            put_u64(out, *held);
            put_u64(out, *stored);
            if let Some(kept) = kept {
                put_bytes(out, kept);
            }
        }
        Body::Once {
            id,
            resent_ms,
            inner,
        } => {
            assert!(
                matches!(inner.opcode(), Opcode::Set | Opcode::Delete | Opcode::Incr),
                "ONCE carries a SET, DELETE or INCR"
            );
            put_write_id(out, *id);
            put_u32(out, *resent_ms);
            out.push(inner.opcode() as u8);
            encode_body(inner, out);
        }
        Body::Degraded { copies, wanted } => {
            put_u16(out, *copies);
            put_u16(out, *wanted);
        }
        Body::Inventory { done, entries } => {
            out.push(*done as u8);
            put_u32(out, entries.len() as u32);
            for (key, version) in entries {
                put_bytes(out, key);
                put_u64(out, *version);
            }
        }
        Body::Drop { version, key } => {
            put_u64(out, *version);
            put_bytes(out, key);
        }
        Body::Forget { id } => put_string(out, id),
        Body::Set {
            key,
            expected,
            value,
        } => {
            put_bytes(out, key);
            put_opt_u64(out, *expected);
            put_bytes(out, value);
        }
        Body::Delete { key, expected } => {
            put_bytes(out, key);
            put_opt_u64(out, *expected);
        }
        Body::Incr { key, delta } => {
            put_bytes(out, key);
            put_u64(out, *delta as u64);
        }
        Body::VRead { key } => put_bytes(out, key),
        Body::Scan {
            prefix,
            cursor,
            limit,
        } => {
            put_bytes(out, prefix);
            put_u64(out, *cursor);
            put_u32(out, *limit);
        }
        Body::Written { version } | Body::Conflict { version } => put_u64(out, *version),
        Body::Versioned { version, value } => {
            put_u64(out, *version);
            put_bytes(out, value);
        }
        Body::Keys { next, keys } => {
            put_u64(out, *next);
            put_u32(out, u32::try_from(keys.len()).expect("over u32::MAX keys"));
            for k in keys {
                put_bytes(out, k);
            }
        }
        Body::Purge {
            epoch,
            version,
            key,
        } => {
            put_u64(out, *epoch);
            put_u64(out, *version);
            put_bytes(out, key);
        }
        Body::Read { .. }
        | Body::Write { .. }
        | Body::WriteOnce { .. }
        | Body::Store { .. }
        | Body::StoreOnce { .. }
        | Body::Fetch { .. }
        | Body::Fetched { .. }
        | Body::Value { .. }
        | Body::Recall { .. } => {
            unreachable!("encoded through BodyRef")
        }
        Body::StatusReply(s) => put_status(out, s),
    }
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            put_u64(out, v);
        }
        None => out.push(0),
    }
}

fn put_sync_event(out: &mut Vec<u8>, e: &SyncEvent) {
    match e {
        SyncEvent::SlaveUp { id, boot } => {
            out.push(1);
            put_string(out, id);
            put_u64(out, *boot);
        }
        SyncEvent::SlaveDown { id } => {
            out.push(2);
            put_string(out, id);
        }
        SyncEvent::SlaveLost { id } => {
            out.push(5);
            put_string(out, id);
        }
        SyncEvent::Standby { id } => {
            out.push(7);
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
        SyncEvent::Gone { key } => {
            out.push(6);
            put_bytes(out, key);
        }
    }
}

fn put_status(out: &mut Vec<u8>, s: &Status) {
    out.push(s.role as u8);
    put_u64(out, s.epoch);
    put_u16(out, s.replicas);
    put_u64(out, s.keys);
    put_u64(out, s.under_replicated);
    put_u64(out, s.copies_made);
    put_string(out, &s.addr);
    put_string(out, &s.primary);
    out.push(s.backup as u8);
    let n = s.slaves.len().min(u16::MAX as usize);
    put_u16(out, n as u16);
    for slave in &s.slaves[..n] {
        put_string(out, &slave.id);
        put_string(out, &slave.addr);
        out.push(slave.live as u8);
        put_u64(out, slave.keys);
    }
}

#[inline]
fn put_u16(out: &mut Vec<u8>, v: u16) {
    let mut b = [0; 2];
    BigEndian::write_u16(&mut b, v);
    out.extend_from_slice(&b);
}

#[inline]
fn put_u32(out: &mut Vec<u8>, v: u32) {
    let mut b = [0; 4];
    BigEndian::write_u32(&mut b, v);
    out.extend_from_slice(&b);
}

#[inline]
fn put_u64(out: &mut Vec<u8>, v: u64) {
    let mut b = [0; 8];
    BigEndian::write_u64(&mut b, v);
    out.extend_from_slice(&b);
}

#[inline]
fn put_write_id(out: &mut Vec<u8>, id: WriteId) {
    put_u64(out, id.client);
    put_u64(out, id.seq);
    put_u64(out, id.acked);
}

#[inline]
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(
        out,
        u32::try_from(b.len()).expect("key or value over u32::MAX bytes"),
    );
    out.extend_from_slice(b);
}

fn put_opt_auth(out: &mut Vec<u8>, v: Option<&AuthBytes>) {
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

//! What the master hands the event loop: frames to send and connections to close ([`Out`]),
//! collected in an [`Outbox`]; and the pool of reply buffers the event loop gives back.

use dsm_net::SharedBytes;

use dsm_wire::{Body, BodyRef, Frame, WriteId};

pub use crate::idmap::ConnId;
use crate::key::Key;

/// What the event loop must do on the master's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Send(ConnId, Frame),
    /// A STORE or FETCH whose key and value are shared with its operation (see [`Shared`]).
    SendShared(ConnId, Shared),
    /// Close the connection; the master has already forgotten it (no `on_close` follows).
    Close(ConnId),
    /// Keep this state in the master's `--data-dir` (the event loop writes it, durably, before
    /// it goes on).
    Persist(crate::disk::MasterState),
}

impl Out {
    /// Append the bytes the event loop writes for this entry (nothing for a close).
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            Out::Send(_, frame) => dsm_wire::encode(frame, buf),
            Out::SendShared(_, shared) => {
                let (req_id, body) = shared.as_ref();
                dsm_wire::encode_ref(req_id, &body, buf);
            }
            Out::Close(_) | Out::Persist(_) => {}
        }
    }
}

/// A STORE, FETCH or RECALL that borrows its key and value from the operation that sends it, so a
/// write to R replicas keeps one copy of each instead of R, and the event loop encodes it
/// straight into the connection's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    Store {
        req_id: u64,
        epoch: u64,
        version: u64,
        key: Key,
        value: SharedBytes,
    },
    Fetch {
        req_id: u64,
        epoch: u64,
        key: Key,
    },
    /// A STORE of an exactly-once write: the slave remembers its writer (`id`), for RECALL.
    StoreOnce {
        req_id: u64,
        epoch: u64,
        version: u64,
        id: WriteId,
        key: Key,
        value: SharedBytes,
        /// STORE_KEEP: the slave keeps the value with its record (an INCR's answer).
        keep: bool,
    },
    /// Was the write (`client`, `seq`) to `key` stored? Sent before applying a write sent again.
    Recall {
        req_id: u64,
        epoch: u64,
        client: u64,
        seq: u64,
        age_ms: u32,
        key: Key,
    },
    /// A READ's answer from the read cache: a large value written from the buffer the cache
    /// keeps it in (`cache.rs`), not copied. `version`: VERSIONED (a VREAD) rather than VALUE.
    Value {
        req_id: u64,
        version: Option<u64>,
        value: SharedBytes,
    },
}

impl Shared {
    /// The value a STORE carries, to be written from this one buffer to each slave.
    pub fn value(&self) -> Option<&SharedBytes> {
        match self {
            Shared::Store { value, .. }
            | Shared::StoreOnce { value, .. }
            | Shared::Value { value, .. } => Some(value),
            Shared::Fetch { .. } | Shared::Recall { .. } => None,
        }
    }

    /// Bytes of key and value it carries (what makes a slave take long over it).
    pub fn payload_len(&self) -> usize {
        match self {
            Shared::Store { key, value, .. } | Shared::StoreOnce { key, value, .. } => {
                key.len() + value.len()
            }
            Shared::Fetch { key, .. } | Shared::Recall { key, .. } => key.len(),
            Shared::Value { value, .. } => value.len(),
        }
    }

    /// The request id and the borrowed body to encode.
    pub fn as_ref(&self) -> (u64, BodyRef<'_>) {
        match self {
            Shared::Store {
                req_id,
                epoch,
                version,
                key,
                value,
            } => (
                *req_id,
                BodyRef::Store {
                    epoch: *epoch,
                    version: *version,
                    key,
                    value,
                },
            ),
            Shared::Fetch { req_id, epoch, key } => {
                (*req_id, BodyRef::Fetch { epoch: *epoch, key })
            }
            Shared::StoreOnce {
                req_id,
                epoch,
                version,
                id,
                key,
                value,
                keep,
            } => (
                *req_id,
                BodyRef::StoreOnce {
                    epoch: *epoch,
                    version: *version,
                    id: *id,
                    key,
                    value,
                    keep: *keep,
                },
            ),
            Shared::Recall {
                req_id,
                epoch,
                client,
                seq,
                age_ms,
                key,
            } => (
                *req_id,
                BodyRef::Recall {
                    epoch: *epoch,
                    client: *client,
                    seq: *seq,
                    age_ms: *age_ms,
                    key,
                },
            ),
            Shared::Value {
                req_id,
                version: Some(version),
                value,
            } => (
                *req_id,
                BodyRef::Versioned {
                    version: *version,
                    value,
                },
            ),
            Shared::Value {
                req_id,
                version: None,
                value,
            } => (*req_id, BodyRef::Value { value }),
        }
    }
}

/// Everything the master wants sent or closed since the event loop last drained it.
#[derive(Default)]
pub(crate) struct Outbox {
    items: Vec<Out>,
    /// Bytes of large values answered from the read cache ([`Shared::Value`]) queued since the
    /// last drain: the event loop moves them to their connections before it reads the next
    /// request, so the buffer budget sees them (a FETCH reserves its answer when it starts).
    pub cached_replies: usize,
}

impl Outbox {
    pub fn send(&mut self, conn: ConnId, req_id: u64, body: Body) {
        self.items.push(Out::Send(conn, Frame::new(req_id, body)));
    }

    pub fn frame(&mut self, conn: ConnId, frame: Frame) {
        self.items.push(Out::Send(conn, frame));
    }

    pub fn shared(&mut self, conn: ConnId, shared: Shared) {
        if let Shared::Value { value, .. } = &shared {
            self.cached_replies += value.len();
        }
        self.items.push(Out::SendShared(conn, shared));
    }

    /// Only [`crate::peers::Peers::close`] closes: it forgets the peer first.
    pub(crate) fn close(&mut self, conn: ConnId) {
        self.items.push(Out::Close(conn));
    }

    pub fn persist(&mut self, state: crate::disk::MasterState) {
        self.items.push(Out::Persist(state));
    }

    /// Drop everything still queued for `conn`: its connection is gone, and its slab key may
    /// soon name another peer, which must not receive what was meant for this one.
    pub fn forget(&mut self, conn: ConnId) {
        self.items.retain(|o| match o {
            Out::Send(c, _) | Out::SendShared(c, _) | Out::Close(c) => *c != conn,
            Out::Persist(_) => true,
        });
    }

    pub fn drain_into(&mut self, into: &mut Vec<Out>) {
        self.cached_replies = 0;
        into.append(&mut self.items);
    }
}

/// Buffers of VALUE replies already written, for the next FETCHED answers to reuse. In a
/// burst of reads the allocator's per-size cache overflows, and an allocation and a free per
/// READ cost the master more than the copy into a reused buffer.
#[derive(Default)]
pub(crate) struct ValuePool {
    bufs: Vec<Vec<u8>>,
}

impl ValuePool {
    const MAX_POOLED: usize = 1024;
    const MAX_POOLED_BYTES: usize = 4096;

    /// A buffer holding a copy of `value`.
    pub fn copy_of(&mut self, value: &[u8]) -> Vec<u8> {
        let mut buf = self.bufs.pop().unwrap_or_default();
        buf.extend_from_slice(value);
        buf
    }

    /// Keep the buffer of a VALUE reply the event loop has written.
    pub fn give_back(&mut self, out: Out) {
        if let Out::Send(
            _,
            Frame {
                body: Body::Value { mut value },
                ..
            },
        ) = out
        {
            if self.bufs.len() < Self::MAX_POOLED && value.capacity() <= Self::MAX_POOLED_BYTES {
                value.clear();
                self.bufs.push(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsm_wire::Body;

    /// A connection closed mid-turn: what was queued for it is dropped, everything else
    /// stays in order (its slab key may be reused by the next accept in the same turn).
    #[test]
    fn forget_drops_only_the_closed_connection() {
        let mut out = Outbox::default();
        out.send(3, 1, Body::Ping);
        out.send(4, 2, Body::Ping);
        out.close(3);
        out.send(4, 3, Body::Ping);
        out.forget(3);
        let mut items = Vec::new();
        out.drain_into(&mut items);
        let conns: Vec<(ConnId, u64)> = items
            .iter()
            .map(|o| match o {
                Out::Send(c, f) => (*c, f.req_id),
                _ => panic!("only sends should be left, not {o:?}"),
            })
            .collect();
        assert_eq!(conns, vec![(4, 2), (4, 3)]);
    }
}

//! A borrowed view of the bodies that carry keys and values (READ, WRITE, WRITE_ONCE, STORE,
//! STORE_ONCE, STORE_KEEP, FETCH, FETCHED, VALUE, RECALL, VERSIONED), so the hot path decodes
//! and encodes them without copying; no I/O. SET, DELETE, INCR and VREAD have a borrowed form
//! for encoding only (a load generator sends them from its caches); they are always decoded
//! owned.

use crate::frame::{Body, Opcode, WriteId};

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
    WriteOnce {
        id: WriteId,
        resent_ms: u32,
        key: &'a [u8],
        value: &'a [u8],
    },
    Store {
        epoch: u64,
        version: u64,
        key: &'a [u8],
        value: &'a [u8],
    },
    StoreOnce {
        epoch: u64,
        version: u64,
        id: WriteId,
        key: &'a [u8],
        value: &'a [u8],
        /// STORE_KEEP: the slave keeps the value with its record.
        keep: bool,
    },
    Recall {
        epoch: u64,
        client: u64,
        seq: u64,
        age_ms: u32,
        key: &'a [u8],
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
    Versioned {
        version: u64,
        value: &'a [u8],
    },
    /// Encoded only: decoding gives the owned [`Body::Set`].
    Set {
        key: &'a [u8],
        expected: Option<u64>,
        value: &'a [u8],
    },
    /// Encoded only: decoding gives the owned [`Body::Delete`].
    Delete {
        key: &'a [u8],
        expected: Option<u64>,
    },
    /// Encoded only: decoding gives the owned [`Body::Incr`].
    Incr {
        key: &'a [u8],
        delta: i64,
    },
    /// Encoded only: decoding gives the owned [`Body::VRead`].
    VRead {
        key: &'a [u8],
    },
}

impl<'a> BodyRef<'a> {
    /// The borrowed view of `body`, for the opcodes that have one.
    pub fn of(body: &'a Body) -> Option<BodyRef<'a>> {
        Some(match body {
            Body::Read { key } => BodyRef::Read { key },
            Body::Write { key, value } => BodyRef::Write { key, value },
            Body::WriteOnce {
                id,
                resent_ms,
                key,
                value,
            } => BodyRef::WriteOnce {
                id: *id,
                resent_ms: *resent_ms,
                key,
                value,
            },
            Body::StoreOnce {
                epoch,
                version,
                id,
                key,
                value,
                keep,
            } => BodyRef::StoreOnce {
                epoch: *epoch,
                version: *version,
                id: *id,
                key,
                value,
                keep: *keep,
            },
            Body::Recall {
                epoch,
                client,
                seq,
                age_ms,
                key,
            } => BodyRef::Recall {
                epoch: *epoch,
                client: *client,
                seq: *seq,
                age_ms: *age_ms,
                key,
            },
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
            Body::Versioned { version, value } => BodyRef::Versioned {
                version: *version,
                value,
            },
            Body::Set {
                key,
                expected,
                value,
            } => BodyRef::Set {
                key,
                expected: *expected,
                value,
            },
            Body::Delete { key, expected } => BodyRef::Delete {
                key,
                expected: *expected,
            },
            Body::Incr { key, delta } => BodyRef::Incr { key, delta: *delta },
            Body::VRead { key } => BodyRef::VRead { key },
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
            BodyRef::WriteOnce {
                id,
                resent_ms,
                key,
                value,
            } => Body::WriteOnce {
                id,
                resent_ms,
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
            BodyRef::StoreOnce {
                epoch,
                version,
                id,
                key,
                value,
                keep,
            } => Body::StoreOnce {
                epoch,
                version,
                id,
                key: key.to_vec(),
                value: value.to_vec(),
                keep,
            },
            BodyRef::Recall {
                epoch,
                client,
                seq,
                age_ms,
                key,
            } => Body::Recall {
                epoch,
                client,
                seq,
                age_ms,
                key: key.to_vec(),
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
            BodyRef::Versioned { version, value } => Body::Versioned {
                version,
                value: value.to_vec(),
            },
            BodyRef::Set {
                key,
                expected,
                value,
            } => Body::Set {
                key: key.to_vec(),
                expected,
                value: value.to_vec(),
            },
            BodyRef::Delete { key, expected } => Body::Delete {
                key: key.to_vec(),
                expected,
            },
            BodyRef::Incr { key, delta } => Body::Incr {
                key: key.to_vec(),
                delta,
            },
            BodyRef::VRead { key } => Body::VRead { key: key.to_vec() },
        }
    }

    pub fn opcode(&self) -> Opcode {
        match self {
            BodyRef::Read { .. } => Opcode::Read,
            BodyRef::Write { .. } => Opcode::Write,
            BodyRef::WriteOnce { .. } => Opcode::WriteOnce,
            BodyRef::Store { .. } => Opcode::Store,
            BodyRef::StoreOnce { keep: false, .. } => Opcode::StoreOnce,
            BodyRef::StoreOnce { keep: true, .. } => Opcode::StoreKeep,
            BodyRef::Recall { .. } => Opcode::Recall,
            BodyRef::Fetch { .. } => Opcode::Fetch,
            BodyRef::Fetched { .. } => Opcode::Fetched,
            BodyRef::Value { .. } => Opcode::Value,
            BodyRef::Versioned { .. } => Opcode::Versioned,
            BodyRef::Set { .. } => Opcode::Set,
            BodyRef::Delete { .. } => Opcode::Delete,
            BodyRef::Incr { .. } => Opcode::Incr,
            BodyRef::VRead { .. } => Opcode::VRead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode, encode_ref, Frame};

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
            BodyRef::WriteOnce {
                id: WriteId {
                    client: 1 << 63 | 5,
                    seq: 9,
                    acked: 7,
                },
                resent_ms: 12,
                key: b"k",
                value: b"v",
            },
            BodyRef::StoreOnce {
                epoch: 2,
                version: 3 << 40,
                id: WriteId {
                    client: 4,
                    seq: 5,
                    acked: 6,
                },
                key: b"k",
                value: b"",
                keep: false,
            },
            BodyRef::StoreOnce {
                epoch: 2,
                version: 3 << 40 | 1,
                id: WriteId {
                    client: 4,
                    seq: 6,
                    acked: 6,
                },
                key: b"counter",
                value: b"-12",
                keep: true,
            },
            BodyRef::Recall {
                epoch: 2,
                client: 4,
                seq: 5,
                age_ms: 300,
                key: b"key",
            },
            BodyRef::Fetched {
                version: 9,
                value: &[0, 255, 1],
            },
            BodyRef::Value { value: b"v" },
            BodyRef::Versioned {
                version: 1 << 63 | 4,
                value: b"42",
            },
            BodyRef::Set {
                key: b"k",
                expected: Some(0),
                value: b"v",
            },
            BodyRef::Set {
                key: b"k",
                expected: None,
                value: b"",
            },
            BodyRef::Delete {
                key: b"k",
                expected: Some(7),
            },
            BodyRef::Delete {
                key: b"k",
                expected: None,
            },
            BodyRef::Incr {
                key: b"n",
                delta: -3,
            },
            BodyRef::VRead { key: b"k" },
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

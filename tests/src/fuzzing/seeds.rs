//! Seed inputs for the fuzz targets, made from a real exchange rather than written by hand, so
//! they follow the wire format wherever it goes: a primary and its backup authenticate and
//! sync, slaves and a client register, the client writes and reads; every frame either way
//! is kept and wrapped in each harness's input format.

use std::time::Instant;

use dsm_slave::disk::record;
use dsm_wire::{BodyRef, Frame, Role};

use super::standby::{attach, pair, relay};

/// Every frame of the scenario, encoded, once each.
fn frames() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for with_secret in [true, false] {
        let (mut primary, mut backup) = pair(with_secret, Instant::now());
        primary.capture = Some(Vec::new());
        attach(&mut backup, &mut primary);
        primary.authenticate(1, Role::Slave, "s1", with_secret);
        primary.authenticate(2, Role::Slave, "s2", with_secret);
        primary.authenticate(3, Role::Client, "", with_secret);
        let ops = [
            BodyRef::Write {
                key: b"k",
                value: b"v",
            },
            BodyRef::Read { key: b"k" },
        ];
        for (req, op) in ops.iter().enumerate() {
            primary.send_frame(3, &Frame::new(10 + req as u64, op.to_body()));
        }
        primary.advance(50);
        relay(&mut backup, &mut primary);
        primary.advance(1000);
        relay(&mut backup, &mut primary);
        all.extend(primary.capture.take().unwrap_or_default());
    }
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|f| seen.insert(f.clone()));
    all
}

fn framed(cmd: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![cmd];
    out.extend_from_slice(&(bytes.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

fn log_record(kind: u8, body: &[u8]) -> Vec<u8> {
    framed(0, &[&[kind][..], body].concat())[1..].to_vec()
}

/// The seeds of each target, by target name.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let frames = frames();
    let mut out = Vec::new();
    out.push(("decode", [&[0u8][..], &frames.concat()].concat()));
    for f in &frames {
        out.push(("decode", [&[0u8][..], f].concat()));
        // The connecting side of the handshake, with and without the secret.
        out.push(("handshake", [&[2u8, 0, 0][..], f].concat()));
        out.push(("handshake", [&[0u8, 0, 0][..], f].concat()));
        // The master's side: as a new connection, then after a slave's real handshake.
        out.push(("handshake", [&[3u8][..], &framed(0, f)].concat()));
        out.push(("handshake", [&[3u8, 0x39][..], &framed(1, f)].concat()));
        // From the primary on the backup's link, with and without the secret.
        out.push(("standby_sync", [&[1u8][..], &framed(0, f)].concat()));
        out.push(("standby_sync", [&[0u8][..], &framed(0, f)].concat()));
    }
    let every: Vec<u8> = frames.iter().flat_map(|f| framed(0, f)).collect();
    out.push((
        "standby_sync",
        [&[1u8][..], &every, &[3, 0x01, 0xf4]].concat(),
    ));
    out.push(("handshake", [&[3u8, 0x39][..], &every].concat()));

    let store = [&1u64.to_be_bytes()[..], &1u32.to_be_bytes(), b"k", b"v"].concat();
    let drop = [&2u64.to_be_bytes()[..], b"k"].concat();
    let records = [
        log_record(3, &4u64.to_be_bytes()),
        log_record(1, &store),
        log_record(2, &drop),
    ]
    .concat();
    for damage in [[0u8, 0, 0], [1, 0, 20], [2, 0, 30], [3, 0, 17]] {
        out.push(("slave_replay", [&[2u8][..], &damage, &records].concat()));
    }
    let mut log = record::MAGIC.to_vec();
    record::encode_epoch(&mut log, 3);
    record::encode_store(&mut log, 5, b"key", b"value");
    record::encode_drop(&mut log, 6, b"key");
    out.push(("slave_replay", [&[0u8][..], &log].concat()));
    out
}

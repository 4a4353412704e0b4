//! The primary's stream to its backup: a snapshot when the backup attaches (slaves, keys,
//! versions, holders, and the keys this master itself doubts), then every change as it happens,
//! coalesced into one SYNC per event-loop turn. The backup answers each SYNC with SYNC_ACK; a
//! write is acknowledged only once the SYNC carrying its intent is.

use std::time::{Duration, Instant};

use dsm_wire::{Body, SyncEvent};

use crate::doubts::Doubts;
use crate::keymap::KeyIndex;
use crate::outbox::{ConnId, Outbox};
use crate::slaves::SlaveTable;
use crate::term::Term;

/// Encoded bytes of events per SYNC frame: far below any frame limit the backup may have, so
/// a snapshot of large keys is never refused as one oversize frame.
const SYNC_FRAME_BYTES: usize = 256 * 1024;

/// Roughly what an event takes on the wire (an upper bound is all that matters).
fn event_size(e: &SyncEvent) -> usize {
    match e {
        SyncEvent::SlaveUp { id, .. } => 11 + id.len(),
        SyncEvent::SlaveDown { id } | SyncEvent::SlaveLost { id } => 3 + id.len(),
        SyncEvent::Key { key, holders, .. } => {
            18 + key.len() + holders.iter().map(|h| 2 + h.len()).sum::<usize>()
        }
        SyncEvent::Intent { key } | SyncEvent::Gone { key } => 5 + key.len(),
    }
}

/// The state of `key` as the backup gets it: its version and the ids of its holders that
/// are not lost.
fn key_event(key: &[u8], keys: &KeyIndex, slaves: &SlaveTable) -> Option<SyncEvent> {
    let e = keys.get(key)?;
    Some(SyncEvent::Key {
        key: key.to_vec(),
        version: e.version,
        holders: e
            .holders
            .iter()
            .filter(|&&h| slaves.is_live(h) || slaves.may_come_back(h))
            .map(|&h| slaves.get(h).id.clone())
            .collect(),
    })
}

pub(crate) struct Stream {
    pub conn: ConnId,
    /// The standby's id (its HELLO's: heartbeat address, then client address).
    pub id: String,
    last_heard: Instant,
    seq_sent: u64,
    seq_acked: u64,
    /// When the oldest SYNC not yet confirmed was sent (None: all are).
    unacked_since: Option<Instant>,
    /// The last SYNC of the snapshot; once it is confirmed the standby is in step.
    snapshot_seq: u64,
    /// Changes not yet sent (they go out when the event loop drains the outbox).
    events: Vec<SyncEvent>,
}

impl Stream {
    /// A stream to standby `id` on `conn`, numbering its SYNCs after `seq` (the last number
    /// of any stream before, so that a write waiting for an old one is not released by a
    /// confirmation on the new one).
    pub fn new(conn: ConnId, id: String, seq: u64, now: Instant) -> Stream {
        Stream {
            conn,
            id,
            last_heard: now,
            seq_sent: seq,
            seq_acked: seq,
            unacked_since: None,
            snapshot_seq: u64::MAX,
            events: Vec::new(),
        }
    }

    /// The last SYNC number used.
    pub fn seq(&self) -> u64 {
        self.seq_sent
    }

    /// The standby has confirmed the whole snapshot (and so is in step with this primary).
    pub fn in_step(&self) -> bool {
        self.seq_acked >= self.snapshot_seq
    }

    /// How long SYNCs have waited unconfirmed, as seen at these calls (the primary's renewal
    /// ticks): from the first call that found one waiting.
    pub fn lag(&mut self, now: Instant) -> Duration {
        if self.seq_acked >= self.seq_sent {
            self.unacked_since = None;
            return Duration::ZERO;
        }
        let since = *self.unacked_since.get_or_insert(now);
        now.saturating_duration_since(since)
    }

    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// The backup confirmed every SYNC up to `seq`.
    pub fn acked(&mut self, seq: u64) {
        let before = self.seq_acked;
        self.seq_acked = self.seq_acked.max(seq);
        if self.seq_acked > before {
            // Progress: what waits now is counted from the next look.
            self.unacked_since = None;
        }
    }

    /// Whether a write whose intent went in SYNC `seq` may be acknowledged as far as this
    /// standby goes: it confirmed that SYNC, or it is not in step yet (still taking its
    /// snapshot: the primary has said it is out of step, and does not wait for it).
    pub fn synced(&self, seq: u64) -> bool {
        self.seq_acked >= seq || !self.in_step()
    }

    pub fn push(&mut self, e: SyncEvent) {
        self.events.push(e);
    }

    /// The key's version or holders changed.
    pub fn key_changed(&mut self, key: &[u8], keys: &KeyIndex, slaves: &SlaveTable) {
        if let Some(e) = key_event(key, keys, slaves) {
            self.events.push(e);
        }
    }

    /// A write to `key` starts; returns the sequence number of the SYNC that will carry it.
    pub fn intent(&mut self, key: &[u8]) -> u64 {
        self.events.push(SyncEvent::Intent { key: key.to_vec() });
        self.seq_sent + 1
    }

    /// Everything the backup needs to take over from here: every slave that is not lost (and
    /// which are out of service), every key, and the keys this master has not verified since
    /// its own takeover (left unverified on the backup, or a second failover would trust a
    /// stale version). A map that is itself incomplete must not look complete to the backup
    /// either. `changing`: the keys of the changes under way, as intents: theirs went to no
    /// standby or to an earlier one, and a change may commit (and be acknowledged) once this
    /// backup is in step, with its Key event still to come.
    pub fn snapshot(
        &mut self,
        term: &Term,
        slaves: &SlaveTable,
        keys: &KeyIndex,
        (doubts, changing): (&Doubts, &[Box<[u8]>]),
        out: &mut Outbox,
    ) {
        self.events.clear();
        let mut events = Vec::new();
        for (_, s) in slaves.known() {
            let id = s.id.clone();
            events.push(SyncEvent::SlaveUp {
                id: id.clone(),
                boot: s.boot,
            });
            if !s.live() {
                events.push(SyncEvent::SlaveDown { id });
            }
        }
        events.extend(keys.iter().filter_map(|(k, _)| key_event(k, keys, slaves)));
        events.extend(
            doubts
                .suspects()
                .chain(changing.iter().map(|k| &k[..]))
                .map(|k| SyncEvent::Intent { key: k.to_vec() }),
        );
        self.send_chunked(events, !doubts.incomplete, term, out);
        self.snapshot_seq = self.seq_sent;
    }

    /// Send the changes queued since the last flush.
    pub fn flush(&mut self, term: &Term, complete: bool, out: &mut Outbox) {
        if !self.events.is_empty() {
            let events = std::mem::take(&mut self.events);
            self.send_chunked(events, complete, term, out);
        }
    }

    /// Send `events` in as many SYNC frames as their size needs; only the last may say
    /// `complete`.
    fn send_chunked(
        &mut self,
        events: Vec<SyncEvent>,
        complete: bool,
        term: &Term,
        out: &mut Outbox,
    ) {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for e in events {
            let size = event_size(&e);
            if !chunk.is_empty() && bytes + size > SYNC_FRAME_BYTES {
                self.send(std::mem::take(&mut chunk), false, term, out);
                bytes = 0;
            }
            bytes += size;
            chunk.push(e);
        }
        self.send(chunk, complete, term, out);
    }

    fn send(&mut self, events: Vec<SyncEvent>, complete: bool, term: &Term, out: &mut Outbox) {
        self.seq_sent += 1;
        out.send(
            self.conn,
            self.seq_sent,
            Body::Sync {
                epoch: term.epoch,
                next_version: term.next_version(),
                complete,
                events,
            },
        );
    }
}

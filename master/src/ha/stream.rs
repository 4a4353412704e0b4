//! The primary's streams to its standbys: a snapshot when a standby attaches (slaves, keys,
//! versions, holders, and the keys this master itself doubts), then every change as it happens,
//! coalesced into one SYNC per event-loop turn and sent to every standby attached
//! ([`Streams`]). Each standby answers each SYNC with SYNC_ACK; a write is acknowledged only
//! once every standby in step has confirmed the SYNC carrying its intent.
//!
//! A write's intent is numbered by the *flush* (one per turn that had changes) that carries
//! it, a ticket shared by every stream; each stream maps its own SYNC numbers to tickets. A
//! standby that attached after a write's intent went out never got it: once in step it would be
//! trusted without knowing the write, so the write sends its intent again ([`Streams::missed`]).

use std::collections::VecDeque;
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
        SyncEvent::Standby { id } => 3 + id.len(),
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
    /// Flush tickets sent and not yet confirmed, with the last SYNC number that carried each.
    marks: VecDeque<(u64, u64)>,
    /// Every ticket up to this one is confirmed.
    ticket_acked: u64,
    /// Tickets up to this one went out (or were queued) before this standby attached: their
    /// intents never reached it.
    joined: u64,
    /// When the oldest SYNC not yet confirmed was sent (None: all are).
    unacked_since: Option<Instant>,
    /// The last SYNC of the snapshot; once it is confirmed the standby is in step.
    snapshot_seq: u64,
    /// Changes not yet sent (they go out when the event loop drains the outbox).
    events: Vec<SyncEvent>,
}

impl Stream {
    /// A stream to standby `id` on `conn`, attached while ticket `joined` was the newest
    /// (sent or queued).
    pub fn new(conn: ConnId, id: String, joined: u64, now: Instant) -> Stream {
        Stream {
            conn,
            id,
            last_heard: now,
            seq_sent: 0,
            seq_acked: 0,
            marks: VecDeque::new(),
            ticket_acked: joined,
            joined,
            unacked_since: None,
            snapshot_seq: u64::MAX,
            events: Vec::new(),
        }
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
        while let Some(&(ticket, last)) = self.marks.front() {
            if last > self.seq_acked {
                break;
            }
            self.ticket_acked = self.ticket_acked.max(ticket);
            self.marks.pop_front();
        }
    }

    /// Whether a write whose intent went out with flush `ticket` may be acknowledged as far
    /// as this standby goes: it confirmed that flush, or it is not in step yet (still taking
    /// its snapshot: the primary has said it is out of step, and does not wait for it). Never
    /// for a ticket from before it attached (see [`Streams::missed`]).
    fn synced(&self, ticket: u64) -> bool {
        !self.in_step() || (self.joined < ticket && self.ticket_acked >= ticket)
    }

    /// Queue `e` for this standby alone.
    pub fn tell(&mut self, e: SyncEvent) {
        self.events.push(e);
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

    /// Send the changes queued since the last flush, as flush `ticket`.
    fn flush(&mut self, ticket: u64, term: &Term, complete: bool, out: &mut Outbox) {
        if !self.events.is_empty() {
            let events = std::mem::take(&mut self.events);
            self.send_chunked(events, complete, term, out);
            self.marks.push_back((ticket, self.seq_sent));
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

/// Every standby attached to the primary, and the flush tickets they share.
#[derive(Default)]
pub(crate) struct Streams {
    list: Vec<Stream>,
    /// The last flush ticket used (a turn whose changes went to the standbys).
    flushes: u64,
    /// Changes were queued for the next ticket (also with no standby attached).
    queued: bool,
}

impl Streams {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Stream> {
        self.list.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.list.iter_mut()
    }

    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut Stream> {
        self.list.iter_mut().find(|s| s.conn == conn)
    }

    pub fn by_id(&self, id: &str) -> Option<&Stream> {
        self.list.iter().find(|s| s.id == id)
    }

    /// Add a stream to standby `id` on `conn` (not sending anything yet).
    pub fn add(&mut self, conn: ConnId, id: String, now: Instant) -> &mut Stream {
        // The ticket being filled now (not flushed yet), if anything went in, is missed too:
        // its intents were queued on the other streams only.
        let joined = self.flushes + u64::from(self.queued);
        self.list.push(Stream::new(conn, id, joined, now));
        self.list.last_mut().expect("just pushed")
    }

    /// Take out the stream on `conn`.
    pub fn remove(&mut self, conn: ConnId) -> Option<Stream> {
        let at = self.list.iter().position(|s| s.conn == conn)?;
        Some(self.list.remove(at))
    }

    /// Take out every stream.
    pub fn take_all(&mut self) -> Vec<Stream> {
        std::mem::take(&mut self.list)
    }

    pub fn push(&mut self, e: SyncEvent) {
        self.queued = true;
        if let Some((last, rest)) = self.list.split_last_mut() {
            for s in rest {
                s.events.push(e.clone());
            }
            last.events.push(e);
        }
    }

    /// The key's version or holders changed.
    pub fn key_changed(&mut self, key: &[u8], keys: &KeyIndex, slaves: &SlaveTable) {
        // With no standby, nothing to build (the hot path of a lone primary); only intents
        // count for the tickets.
        if self.list.is_empty() {
            return;
        }
        if let Some(e) = key_event(key, keys, slaves) {
            self.push(e);
        }
    }

    /// A write to `key` starts; returns the ticket of the flush that will carry its intent
    /// (never 0: a standby that attaches before the write ends did not get it).
    pub fn intent(&mut self, key: &[u8]) -> u64 {
        self.push(SyncEvent::Intent { key: key.to_vec() });
        self.flushes + 1
    }

    /// Whether the write whose intent went out with flush `ticket` may be acknowledged as far
    /// as the standbys go: every standby in step has confirmed it.
    pub fn synced(&self, ticket: u64) -> bool {
        self.list.iter().all(|s| s.synced(ticket))
    }

    /// Whether a standby in step attached after the write's intent went out with `ticket`:
    /// it does not know of the write, which must send its intent again before it is
    /// acknowledged.
    pub fn missed(&self, ticket: u64) -> bool {
        (self.list.iter()).any(|s| s.in_step() && s.joined >= ticket)
    }

    /// Send the changes queued since the last flush to every standby, as one new ticket.
    pub fn flush(&mut self, term: &Term, complete: bool, out: &mut Outbox) {
        if !std::mem::take(&mut self.queued) {
            return;
        }
        self.flushes += 1;
        for s in &mut self.list {
            s.flush(self.flushes, term, complete, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked_snapshot(s: &mut Streams, conn: ConnId) {
        let st = s.get_mut(conn).unwrap();
        // An empty snapshot is one SYNC.
        st.seq_sent += 1;
        st.snapshot_seq = st.seq_sent;
        st.acked(st.seq_sent);
    }

    /// Two standbys: a write waits for both once they are in step; one that attached after
    /// its intent went out makes it send the intent again.
    #[test]
    fn a_write_waits_for_every_standby_in_step_and_resends_to_a_late_one() {
        let now = Instant::now();
        let (term, mut out) = (Term::default(), Outbox::default());
        let mut s = Streams::default();
        s.add(1, "a".into(), now);
        acked_snapshot(&mut s, 1);
        let t = s.intent(b"k");
        assert!(!s.synced(t), "a has not confirmed");
        s.add(2, "b".into(), now);
        assert!(!s.missed(t), "b is not in step yet");
        s.flush(&term, true, &mut out);
        let a_seq = s.get_mut(1).unwrap().seq_sent;
        s.get_mut(1).unwrap().acked(a_seq);
        assert!(s.synced(t), "b taking its snapshot holds nothing up");
        acked_snapshot(&mut s, 2);
        assert!(!s.synced(t), "b is in step and never got the intent");
        assert!(s.missed(t));
        let t2 = s.intent(b"k");
        assert!(t2 > t);
        s.flush(&term, true, &mut out);
        assert!(!s.synced(t2));
        for conn in [1, 2] {
            let st = s.get_mut(conn).unwrap();
            let seq = st.seq_sent;
            st.acked(seq);
        }
        assert!(s.synced(t2) && !s.missed(t2));
        s.remove(2);
        assert_eq!(s.len(), 1);
    }
}

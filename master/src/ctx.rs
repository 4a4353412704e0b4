//! The borrowed context through which the request-path components (operations, sub-requests,
//! re-replication) act: the clock, the settings, the outbox and timers, the slave table, the
//! key map and what it may be wrong about, the streams to the standbys, and the effects they
//! leave for `Master` to route. Components take it; none of them holds `Master`.

use std::rc::Rc;
use std::time::Instant;

use dsm_net::SharedBytes;

use crate::config::Config;
use crate::doubts::Doubts;
use crate::effect::Effect;
use crate::ha::stream::Streams;
use crate::keymap::{KeyIndex, SlaveIdx};
use crate::outbox::Outbox;
use crate::repair::Repairs;
use crate::slaves::SlaveTable;
use crate::term::Term;
use crate::timer::Timers;

pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub cfg: &'a Config,
    pub term: &'a mut Term,
    pub out: &'a mut Outbox,
    pub timers: &'a mut Timers,
    pub slaves: &'a SlaveTable,
    pub keys: &'a mut KeyIndex,
    pub doubts: &'a mut Doubts,
    /// The standbys' streams, on a primary.
    pub stream: Option<&'a mut Streams>,
    /// A majority knows of every standby the primary last said was out of step, so a write
    /// may be acknowledged without them (`ha/lease.rs`).
    pub settled: bool,
    pub repairs: &'a mut Repairs,
    pub effects: &'a mut Vec<Effect>,
    /// The buffer the frame being handled was read into, when the event loop took it out of
    /// its connection whole (a large WRITE: `Master::on_decoded_in`).
    pub frame: Option<&'a Rc<Vec<u8>>>,
    /// Buffers of VALUE replies written, for the next ones (a cache hit's copy of its value).
    pub pool: &'a mut crate::outbox::ValuePool,
}

impl Ctx<'_> {
    /// A request's value to keep: shared with the frame it arrived in when that frame's
    /// buffer is the operation's to keep (no copy of a large WRITE's value), else copied.
    pub fn shared(&self, value: &[u8]) -> SharedBytes {
        self.frame
            .and_then(|frame| SharedBytes::within(frame, value))
            .unwrap_or_else(|| value.into())
    }

    /// Make `version` on `holders` the latest acknowledged state of `key` (`hash` is
    /// `keys.hash(key)`), and tell the backup.
    pub fn record(&mut self, hash: u64, key: &[u8], version: u64, holders: &[SlaveIdx]) {
        self.record_value(hash, key, version, holders, None);
    }

    /// [`Ctx::record`], with `value` the value `version` wrote, when known: the read cache
    /// keeps it (`cache.rs`); without one, a value cached for the key is dropped.
    pub fn record_value(
        &mut self,
        hash: u64,
        key: &[u8],
        version: u64,
        holders: &[SlaveIdx],
        value: Option<crate::cache::NewValue<'_>>,
    ) {
        self.keys.commit_valued(hash, key, version, holders, value);
        self.doubts.settled(key);
        self.key_changed(key);
    }

    /// No slave holds `key` any more (its tombstone was collected, or a probe found it
    /// nowhere): forget it, and tell the backup.
    pub fn forget(&mut self, key: &[u8]) {
        self.keys.remove(key);
        self.doubts.settled(key);
        if let Some(stream) = self.stream.as_deref_mut() {
            stream.push(dsm_wire::SyncEvent::Gone { key: key.to_vec() });
        }
    }

    /// The key's holders changed: tell the backup.
    pub fn key_changed(&mut self, key: &[u8]) {
        if let Some(stream) = self.stream.as_deref_mut() {
            stream.key_changed(key, self.keys, self.slaves);
        }
    }

    /// A write to `key` starts: tell the backup first. Returns the SYNC sequence number that
    /// carries it (0: no backup).
    pub fn intent(&mut self, key: &[u8]) -> u64 {
        self.stream.as_deref_mut().map_or(0, |s| s.intent(key))
    }

    /// Whether the write whose intent went out with the flush ticket `seq` may be
    /// acknowledged: every standby in step has confirmed it (or there was none to wait for),
    /// and a majority knows of every standby let go as out of step.
    pub fn synced(&self, seq: u64) -> bool {
        self.settled && (seq == 0 || self.stream.as_deref().is_none_or(|s| s.synced(seq)))
    }

    /// Whether a standby in step attached after the intent with ticket `seq` went out: the
    /// write must send its intent again (see `ha/stream.rs`).
    pub fn missed(&self, seq: u64) -> bool {
        seq != 0 && self.stream.as_deref().is_some_and(|s| s.missed(seq))
    }
}

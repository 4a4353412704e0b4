//! The changes of one loop turn, waiting for the log: their records, encoded back to back so
//! that one `write` (and, with `--fsync always`, one `fdatasync`) covers them all, and what to
//! apply and answer once they are on disk. A STORE's record in the table is built here, before
//! the write, so that applying it afterwards allocates nothing and cannot fail: a STORE that
//! reached the log is always applied, and one that did not never is.

use std::ops::Range;

use super::record;
use crate::table::Record;

/// One change waiting for the log.
pub enum Staged {
    /// Answer request `req` once `record` is applied.
    Store { req: u64, record: Record },
    /// Drop the key at `key` in the batch's bytes if held at `version` or older; a PURGE
    /// (`req`) is answered once that is on disk.
    Drop {
        version: u64,
        key: Range<usize>,
        req: Option<u64>,
    },
}

#[derive(Default)]
pub struct Batch {
    bytes: Vec<u8>,
    ops: Vec<Staged>,
    /// STOREs of keys the table did not hold when they were staged.
    new_keys: usize,
    /// How much the staged STOREs will grow the table by, at most.
    growth: usize,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The encoded records.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn new_keys(&self) -> usize {
        self.new_keys
    }

    pub fn growth(&self) -> usize {
        self.growth
    }

    /// Stage a STORE whose table record is `record`; `growth` is what it may add to the
    /// table, `new_key` whether the key was absent; `writer`: a STORE_ONCE's, logged in the
    /// same record.
    pub fn store(
        &mut self,
        req: u64,
        record: Record,
        writer: Option<&record::Writer<'_>>,
        growth: usize,
        new_key: bool,
    ) {
        record::encode_store_of(
            &mut self.bytes,
            writer,
            record.version(),
            record.key(),
            record.value(),
        );
        self.new_keys += usize::from(new_key);
        self.growth += growth;
        self.ops.push(Staged::Store { req, record });
    }

    pub fn drop_key(&mut self, version: u64, key: &[u8], req: Option<u64>) {
        let key = record::encode_drop(&mut self.bytes, version, key);
        self.ops.push(Staged::Drop { version, key, req });
    }

    pub fn epoch(&mut self, epoch: u64) {
        record::encode_epoch(&mut self.bytes, epoch);
    }

    /// The staged changes in order, and the bytes their `Drop` ranges point into; the
    /// batch is empty again afterwards (its buffers kept, up to a point).
    pub fn take(&mut self) -> (Vec<Staged>, Vec<u8>) {
        self.new_keys = 0;
        self.growth = 0;
        let ops = std::mem::take(&mut self.ops);
        let bytes = std::mem::take(&mut self.bytes);
        (ops, bytes)
    }

    /// Give back the buffers [`Batch::take`] handed out, for their capacity, unless large
    /// or the batch has buffers of its own already.
    pub fn recycle(&mut self, mut ops: Vec<Staged>, mut bytes: Vec<u8>) {
        const KEEP: usize = 1 << 20;
        ops.clear();
        bytes.clear();
        if bytes.capacity() <= KEEP
            && self.bytes.capacity() < bytes.capacity()
            && self.bytes.is_empty()
        {
            self.bytes = bytes;
        }
        if ops.capacity() <= KEEP / 64
            && self.ops.capacity() < ops.capacity()
            && self.ops.is_empty()
        {
            self.ops = ops;
        }
    }
}

//! A directory in memory for tests: the [`Disk`] the sims and unit tests give the log. It
//! fails appends past a capacity (as a full disk does: what fits is written, then ENOSPC),
//! fails syncs or truncates on demand, holds background syncs back on demand (they complete
//! when next asked about otherwise), records every call in order, and can be "crashed":
//! [`MemDisk::after_process_crash`] keeps everything written (the page cache survives a
//! kill -9), [`MemDisk::after_power_cut`] keeps only what was synced, and only the names a
//! directory sync made durable.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Cursor, Read};
use std::rc::Rc;

use super::file::{Disk, LogFile};

/// One call the log made, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Append(usize),
    Sync,
    /// A background sync started.
    StartSync,
    Truncate(u64),
    Create(String),
    Rename(String, String),
    Remove(String),
    SyncDir,
}

/// A handle on one in-memory directory; clones share it.
#[derive(Clone, Default)]
pub struct MemDisk(Rc<RefCell<State>>);

#[derive(Default, Clone)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<String, usize>,
    /// The names as of the last directory sync: what a power cut leaves.
    durable_names: BTreeMap<String, usize>,
    /// Total bytes the files may hold.
    capacity: Option<u64>,
    fail_sync: bool,
    /// The next sync fails (in place or in the background), then syncs work again.
    fail_once: bool,
    fail_truncate: bool,
    /// Background syncs do not complete while set.
    hold_syncs: bool,
    /// The inode whose background sync is under way: one at a time, as the syncer thread.
    lane: Option<usize>,
    ops: Vec<Op>,
}

#[derive(Default, Clone)]
struct Inode {
    data: Vec<u8>,
    /// The contents as of the last sync.
    synced: Vec<u8>,
}

impl State {
    fn used(&self) -> u64 {
        self.names
            .values()
            .map(|&i| self.inodes[i].data.len() as u64)
            .sum()
    }

    fn new_inode(&mut self) -> usize {
        self.inodes.push(Inode::default());
        self.inodes.len() - 1
    }
}

struct MemFile {
    disk: MemDisk,
    inode: usize,
    /// The contents when a background sync started: what it makes durable.
    syncing: Option<Vec<u8>>,
    /// A second background sync is queued behind that one (it begins when that one ends).
    queued: bool,
}

fn enospc() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "No space left on device (MemDisk)",
    )
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("Input/output error ({what}, MemDisk)"))
}

impl LogFile for MemFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.disk.0.borrow_mut();
        s.ops.push(Op::Append(bytes.len()));
        let room = match s.capacity {
            Some(cap) => cap.saturating_sub(s.used()) as usize,
            None => usize::MAX,
        };
        let n = bytes.len().min(room);
        s.inodes[self.inode].data.extend_from_slice(&bytes[..n]);
        if n < bytes.len() {
            return Err(enospc());
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.disk.0.borrow_mut();
        s.ops.push(Op::Sync);
        if s.fail_sync || std::mem::take(&mut s.fail_once) {
            return Err(eio("fsync"));
        }
        let inode = &mut s.inodes[self.inode];
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.disk.0.borrow_mut();
        s.ops.push(Op::Truncate(len));
        if s.fail_truncate {
            return Err(eio("ftruncate"));
        }
        s.inodes[self.inode].data.resize(len as usize, 0);
        Ok(())
    }

    fn start_sync(&mut self) -> io::Result<bool> {
        let mut s = self.disk.0.borrow_mut();
        match (s.lane, &self.syncing, &self.queued) {
            (None, _, _) => {
                s.lane = Some(self.inode);
                self.syncing = Some(s.inodes[self.inode].data.clone());
            }
            // Queued behind this file's sync, as the syncer thread does.
            (Some(lane), Some(_), false) if lane == self.inode => self.queued = true,
            _ => return Ok(false),
        }
        s.ops.push(Op::StartSync);
        Ok(true)
    }

    fn sync_not_started(&mut self) -> bool {
        self.queued
    }

    fn sync_outcome(&mut self) -> Option<io::Result<()>> {
        let mut s = self.disk.0.borrow_mut();
        if s.hold_syncs || s.lane != Some(self.inode) {
            return None;
        }
        let snapshot = self.syncing.take()?;
        if s.fail_sync || std::mem::take(&mut s.fail_once) {
            // The syncer drops what was queued behind a failed sync.
            self.queued = false;
            s.lane = None;
            return Some(Err(eio("background fsync")));
        }
        s.inodes[self.inode].synced = snapshot;
        if std::mem::take(&mut self.queued) {
            // The queued sync begins the moment this one ends: it covers what is written now.
            self.syncing = Some(s.inodes[self.inode].data.clone());
        } else {
            s.lane = None;
        }
        Some(Ok(()))
    }

    fn abandon_sync(&mut self) {
        self.queued = false;
        if self.syncing.take().is_some() {
            self.disk.0.borrow_mut().lane = None;
        }
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        self.abandon_sync();
    }
}

impl MemDisk {
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// From now on the files may hold `bytes` in all (`None`: no limit).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.0.borrow_mut().capacity = bytes;
    }

    pub fn fail_sync(&self, fail: bool) {
        self.0.borrow_mut().fail_sync = fail;
    }

    /// The next sync fails, in place or in the background; later ones work.
    pub fn fail_next_sync(&self) {
        self.0.borrow_mut().fail_once = true;
    }

    /// How many bytes of `name` are synced: what a power cut would leave of it.
    pub fn synced_len(&self, name: &str) -> usize {
        let s = self.0.borrow();
        s.names.get(name).map_or(0, |&i| s.inodes[i].synced.len())
    }

    pub fn fail_truncate(&self, fail: bool) {
        self.0.borrow_mut().fail_truncate = fail;
    }

    /// While set, background syncs do not complete.
    pub fn hold_syncs(&self, hold: bool) {
        self.0.borrow_mut().hold_syncs = hold;
    }

    /// Every call made so far.
    pub fn ops(&self) -> Vec<Op> {
        self.0.borrow().ops.clone()
    }

    pub fn clear_ops(&self) {
        self.0.borrow_mut().ops.clear();
    }

    /// How many syncs were asked for, in place or in the background (failed ones included).
    pub fn syncs(&self) -> usize {
        self.0
            .borrow()
            .ops
            .iter()
            .filter(|o| matches!(o, Op::Sync | Op::StartSync))
            .count()
    }

    /// The contents of `name`, if it exists.
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        let s = self.0.borrow();
        s.names.get(name).map(|&i| s.inodes[i].data.clone())
    }

    /// Replace the contents of `name` (created if missing), synced and durable: a test's
    /// hand-made file.
    pub fn put_file(&self, name: &str, bytes: &[u8]) {
        let mut s = self.0.borrow_mut();
        let i = match s.names.get(name) {
            Some(&i) => i,
            None => s.new_inode(),
        };
        s.inodes[i].data = bytes.to_vec();
        s.inodes[i].synced = bytes.to_vec();
        s.names.insert(name.to_string(), i);
        s.durable_names.insert(name.to_string(), i);
    }

    /// The file names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0.borrow().names.keys().cloned().collect()
    }

    /// The directory as a restarted process finds it after a kill -9: everything written is
    /// there. A separate copy; faults and the call record start afresh.
    pub fn after_process_crash(&self) -> MemDisk {
        let s = self.0.borrow();
        MemDisk::from_parts(&s.inodes, &s.names, &s.durable_names, |i| i.data.clone())
    }

    /// The directory as it is after a power cut: only synced contents, only durable names.
    pub fn after_power_cut(&self) -> MemDisk {
        let s = self.0.borrow();
        let names = &s.durable_names;
        MemDisk::from_parts(&s.inodes, names, names, |i| i.synced.clone())
    }

    /// A new directory holding the files `names` points to, with the contents `keep` says
    /// (synced too); `durable` must name a subset of those files.
    fn from_parts(
        inodes: &[Inode],
        names: &BTreeMap<String, usize>,
        durable: &BTreeMap<String, usize>,
        keep: impl Fn(&Inode) -> Vec<u8>,
    ) -> MemDisk {
        let mut state = State::default();
        let mut renumbered = BTreeMap::new();
        for (name, &i) in names {
            let n = *renumbered.entry(i).or_insert_with(|| {
                let data = keep(&inodes[i]);
                state.inodes.push(Inode {
                    synced: data.clone(),
                    data,
                });
                state.inodes.len() - 1
            });
            state.names.insert(name.clone(), n);
        }
        for (name, i) in durable {
            if let Some(&n) = renumbered.get(i) {
                state.durable_names.insert(name.clone(), n);
            }
        }
        MemDisk(Rc::new(RefCell::new(state)))
    }
}

impl Disk for MemDisk {
    fn open_append(&mut self, name: &str) -> io::Result<(Box<dyn LogFile>, u64)> {
        let mut s = self.0.borrow_mut();
        let inode = match s.names.get(name) {
            Some(&i) => i,
            None => {
                s.ops.push(Op::Create(name.to_string()));
                let i = s.new_inode();
                s.names.insert(name.to_string(), i);
                i
            }
        };
        let len = s.inodes[inode].data.len() as u64;
        drop(s);
        let file = MemFile {
            disk: self.clone(),
            inode,
            syncing: None,
            queued: false,
        };
        Ok((Box::new(file), len))
    }

    fn create(&mut self, name: &str) -> io::Result<Box<dyn LogFile>> {
        let mut s = self.0.borrow_mut();
        s.ops.push(Op::Create(name.to_string()));
        let inode = s.new_inode();
        s.names.insert(name.to_string(), inode);
        drop(s);
        Ok(Box::new(MemFile {
            disk: self.clone(),
            inode,
            syncing: None,
            queued: false,
        }))
    }

    fn open_read(&mut self, name: &str) -> io::Result<Option<(Box<dyn Read>, u64)>> {
        Ok(self.file(name).map(|data| {
            let len = data.len() as u64;
            (Box::new(Cursor::new(data)) as Box<dyn Read>, len)
        }))
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        s.ops.push(Op::Rename(from.to_string(), to.to_string()));
        let inode = s.names.remove(from).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no file {from} (MemDisk)"))
        })?;
        s.names.insert(to.to_string(), inode);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        s.ops.push(Op::Remove(name.to_string()));
        s.names.remove(name);
        Ok(())
    }

    fn exists(&mut self, name: &str) -> bool {
        self.0.borrow().names.contains_key(name)
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        s.ops.push(Op::SyncDir);
        s.durable_names = s.names.clone();
        Ok(())
    }

    fn path_of(&self, name: &str) -> String {
        format!("mem:{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_writes_what_fits_then_fails() {
        let mut d = MemDisk::new();
        d.set_capacity(Some(10));
        let (mut f, len) = d.open_append("log").unwrap();
        assert_eq!(len, 0);
        f.append(b"12345678").unwrap();
        let e = f.append(b"abcd").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(d.file("log").unwrap(), b"12345678ab");
        f.truncate(8).unwrap();
        f.append(b"xy").unwrap();
        assert_eq!(d.file("log").unwrap(), b"12345678xy");
    }

    #[test]
    fn a_power_cut_keeps_only_what_was_synced_and_durable_names() {
        let mut d = MemDisk::new();
        let (mut f, _) = d.open_append("log").unwrap();
        f.append(b"synced").unwrap();
        f.sync().unwrap();
        d.sync_dir().unwrap();
        f.append(b" and not").unwrap();
        let mut t = d.create("tmp").unwrap();
        t.append(b"new").unwrap();
        t.sync().unwrap();
        d.rename("tmp", "other").unwrap();
        let crashed = d.after_process_crash();
        assert_eq!(crashed.file("log").unwrap(), b"synced and not");
        assert_eq!(crashed.names(), ["log", "other"]);
        let cut = d.after_power_cut();
        assert_eq!(cut.file("log").unwrap(), b"synced");
        assert_eq!(cut.names(), ["log"], "the rename was never made durable");
    }
}

//! The one thread a slave runs besides its event loop: it calls `fdatasync` so that the loop
//! serves on while the disk takes its time: the `--fsync interval` sync, a compacted log's
//! before it replaces the old one, and under `--fsync always` the sync that the ACKs of the
//! batches written before it wait for (the loop writes the next batches meanwhile: see
//! `flight.rs`). One at a time; the loop is woken when one is done. Measured against the same
//! syncs on the loop in `bench-results/persist-2026-12-03.md` (an interval sync of a second of
//! writes stalled the loop for 10–40 ms) and in `bench-results/persist-bench-2026-12-03.md` (`always`).
//!
//! The thread allocates nothing (a slot behind a mutex, a condvar, an eventfd for the waker),
//! so glibc gives it no malloc arena of its own: no 64 MiB of address space under `ulimit -v`.

use std::fs::File;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// Wakes the event loop (a `mio::Waker` in the slave; nothing in tests).
pub type Wake = Box<dyn Fn() + Send + Sync>;

pub struct Syncer {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

struct Shared {
    slot: Mutex<Slot>,
    work: Condvar,
    wake: Wake,
}

#[derive(Default)]
struct Slot {
    /// Submitted, not yet taken by the thread.
    job: Option<(u64, Arc<File>)>,
    /// Done, the outcome not yet taken by the loop.
    done: Option<(u64, io::Result<()>)>,
    /// The job submitted last, until its outcome is taken or it is abandoned.
    current: Option<u64>,
    /// The job the thread is syncing was abandoned: drop its outcome.
    abandoned: bool,
    stop: bool,
}

impl Syncer {
    pub fn start(wake: Wake) -> io::Result<Syncer> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::default()),
            work: Condvar::new(),
            wake,
        });
        let worker = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("dsm-sync".into())
            .stack_size(64 * 1024)
            .spawn(move || run(&worker))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Start syncing `file` as job `id`; false (and nothing done) if a sync is under way or
    /// its outcome not yet taken.
    pub fn submit(&self, id: u64, file: Arc<File>) -> bool {
        let mut slot = lock(&self.shared.slot);
        if slot.current.is_some() {
            return false;
        }
        slot.current = Some(id);
        slot.job = Some((id, file));
        self.shared.work.notify_one();
        true
    }

    /// The outcome of job `id`, once it is done (taking it frees the syncer for the next).
    pub fn outcome(&self, id: u64) -> Option<io::Result<()>> {
        let mut slot = lock(&self.shared.slot);
        if slot.current != Some(id) {
            return None;
        }
        let (_, result) = slot.done.take()?;
        slot.current = None;
        Some(result)
    }

    /// Forget job `id`, done or not (its file was replaced): the syncer takes the next job
    /// once the thread is through with this one.
    pub fn abandon(&self, id: u64) {
        let mut slot = lock(&self.shared.slot);
        if slot.current != Some(id) {
            return;
        }
        if slot.done.take().is_some() || slot.job.take().is_some() {
            slot.current = None;
        } else {
            slot.abandoned = true;
        }
    }
}

fn lock(m: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    // The thread only syncs: a poisoned lock still holds a consistent slot.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(shared: &Shared) {
    loop {
        let (id, file) = {
            let mut slot = lock(&shared.slot);
            loop {
                if slot.stop {
                    return;
                }
                if let Some(job) = slot.job.take() {
                    break job;
                }
                slot = shared.work.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = file.sync_data();
        drop(file);
        let mut slot = lock(&shared.slot);
        if slot.abandoned {
            slot.abandoned = false;
            slot.current = None;
        } else {
            slot.done = Some((id, result));
        }
        drop(slot);
        (shared.wake)();
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        lock(&self.shared.slot).stop = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn syncs_one_file_at_a_time_and_wakes_the_loop() {
        let dir = std::env::temp_dir().join(format!("dsm-syncer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = Arc::new(File::create(dir.join("f")).unwrap());
        let wakes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&wakes);
        let s = Syncer::start(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
        assert!(s.submit(1, Arc::clone(&file)));
        assert!(!s.submit(2, Arc::clone(&file)), "one at a time");
        let deadline = Instant::now() + Duration::from_secs(10);
        let result = loop {
            if let Some(r) = s.outcome(1) {
                break r;
            }
            assert!(Instant::now() < deadline, "no outcome");
            thread::sleep(Duration::from_millis(1));
        };
        result.unwrap();
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert!(s.submit(3, Arc::clone(&file)), "free again");
        s.abandon(3);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.submit(4, Arc::clone(&file)) {
            assert!(
                Instant::now() < deadline,
                "an abandoned job frees the syncer too"
            );
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(s.outcome(3).map(|r| r.is_ok()), None, "not 3's outcome");
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

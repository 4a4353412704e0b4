//! The one thread a slave runs besides its event loop: it calls `fdatasync` so that the loop
//! serves on while the disk takes its time: the `--fsync interval` sync, a compacted log's
//! before it replaces the old one, and under `--fsync always` the syncs that the ACKs of the
//! batches written before them wait for (the loop writes the next batches meanwhile: see
//! `flight.rs`). One sync at a time; the loop is woken when one is done. Measured against the
//! same syncs on the loop in `bench-results/persist-2026-12-03.md` (an interval sync of a
//! second of writes stalled the loop for 10–40 ms).
//!
//! A file's sync may be queued behind the one under way: the thread starts it the moment the
//! first ends, without waiting for the loop to be scheduled, take the outcome and ask again
//! (`bench-results/fsync-2026-12-03.md`). Until it starts, the loop may let it cover what it
//! wrote since ([`Syncer::not_started`]). A sync that fails drops the one queued behind it,
//! so nothing is ever reported synced after a failure the loop has not yet handled.
//!
//! The thread allocates nothing (two slots behind a mutex, a condvar, an eventfd for the
//! waker), so glibc gives it no malloc arena of its own: no 64 MiB of address space under
//! `ulimit -v`.

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

struct Job {
    id: u64,
    file: Arc<File>,
    /// The thread has begun syncing it.
    started: bool,
    /// Done: the outcome, not yet taken by the loop.
    outcome: Option<io::Result<()>>,
    /// Forgotten by the loop while the thread synced it: drop it when done.
    abandoned: bool,
}

#[derive(Default)]
struct Slot {
    /// The jobs submitted and not yet taken or abandoned, oldest first: the one synced (or
    /// done), and one of the same file queued behind it.
    jobs: [Option<Job>; 2],
    stop: bool,
}

impl Slot {
    /// The index of the job `id`.
    fn find(&self, id: u64) -> Option<usize> {
        self.jobs
            .iter()
            .position(|j| j.as_ref().is_some_and(|j| j.id == id))
    }

    /// Take out job `i`, the later one moving up.
    fn remove(&mut self, i: usize) {
        self.jobs[i] = None;
        if i == 0 {
            self.jobs[0] = self.jobs[1].take();
        }
    }

    /// Job `id` is done: keep its outcome for the loop (or drop it, abandoned).
    fn finish(&mut self, id: u64, result: io::Result<()>) {
        let Some(i) = self.find(id) else {
            return;
        };
        let job = self.jobs[i].as_mut().expect("found");
        if job.abandoned {
            return self.remove(i);
        }
        let failed = result.is_err();
        job.outcome = Some(result);
        // A sync queued behind a failed one would report as synced bytes that the loop is
        // about to cut out and write again: it is dropped (the loop learns it from the
        // failure).
        if failed && i == 0 {
            self.jobs[1] = None;
        }
    }

    /// The next job for the thread: the oldest not started, once those before it are done
    /// and succeeded.
    fn next(&mut self) -> Option<(u64, Arc<File>)> {
        for job in self.jobs.iter_mut().flatten() {
            if !job.started {
                job.started = true;
                return Some((job.id, Arc::clone(&job.file)));
            }
            if !matches!(job.outcome, Some(Ok(()))) {
                // Under way, or failed.
                return None;
            }
        }
        None
    }
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

    /// Sync `file` as job `id`: at once if the syncer is free, or queued behind a sync of the
    /// same file that has not failed. False (and nothing done) otherwise: another file's sync
    /// is under way or its outcome not yet taken, or two of this file's are.
    pub fn submit(&self, id: u64, file: Arc<File>) -> bool {
        let mut slot = lock(&self.shared.slot);
        let free = match &slot.jobs {
            [None, _] => 0,
            [Some(first), None]
                if Arc::ptr_eq(&first.file, &file)
                    && !first.abandoned
                    && !matches!(first.outcome, Some(Err(_))) =>
            {
                1
            }
            _ => return false,
        };
        slot.jobs[free] = Some(Job {
            id,
            file,
            started: false,
            outcome: None,
            abandoned: false,
        });
        self.shared.work.notify_one();
        true
    }

    /// Whether job `id` is queued and the thread has not begun it: it will cover whatever is
    /// written to its file before it does.
    pub fn not_started(&self, id: u64) -> bool {
        let slot = lock(&self.shared.slot);
        slot.find(id)
            .and_then(|i| slot.jobs[i].as_ref())
            .is_some_and(|j| !j.started)
    }

    /// The outcome of job `id`, once it is done and the jobs before it taken (taking it frees
    /// its place for the next).
    pub fn outcome(&self, id: u64) -> Option<io::Result<()>> {
        let mut slot = lock(&self.shared.slot);
        let first = slot.jobs[0].as_mut()?;
        if first.id != id {
            return None;
        }
        let result = first.outcome.take()?;
        slot.remove(0);
        Some(result)
    }

    /// Forget job `id`, done or not (its file was replaced, or a sync before it failed): its
    /// place is free once the thread is through with it.
    pub fn abandon(&self, id: u64) {
        let mut slot = lock(&self.shared.slot);
        let Some(i) = slot.find(id) else {
            return;
        };
        let job = slot.jobs[i].as_mut().expect("found");
        if job.started && job.outcome.is_none() {
            job.abandoned = true;
        } else {
            slot.remove(i);
        }
    }
}

fn lock(m: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    // The thread only syncs: a poisoned lock still holds a consistent slot.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(shared: &Shared) {
    let mut slot = lock(&shared.slot);
    loop {
        if slot.stop {
            return;
        }
        let Some((id, file)) = slot.next() else {
            slot = shared.work.wait(slot).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        drop(slot);
        let result = file.sync_data();
        drop(file);
        slot = lock(&shared.slot);
        slot.finish(id, result);
        drop(slot);
        (shared.wake)();
        // A sync queued meanwhile starts now, whenever the loop gets to run.
        slot = lock(&shared.slot);
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

    fn counting() -> (Syncer, Arc<AtomicUsize>) {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&wakes);
        let s = Syncer::start(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
        (s, wakes)
    }

    fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(t) = f() {
                return t;
            }
            assert!(Instant::now() < deadline, "{what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn syncs_one_file_at_a_time_and_wakes_the_loop() {
        let dir = std::env::temp_dir().join(format!("dsm-syncer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = Arc::new(File::create(dir.join("f")).unwrap());
        let other = Arc::new(File::create(dir.join("g")).unwrap());
        let (s, wakes) = counting();
        assert!(s.submit(1, Arc::clone(&file)));
        assert!(!s.submit(2, Arc::clone(&other)), "another file's waits");
        assert!(s.submit(3, Arc::clone(&file)), "queued behind the first");
        assert!(!s.submit(4, Arc::clone(&file)), "two at most");
        // The queued sync runs without the loop taking the first outcome.
        wait_for("the queued sync did not run by itself", || {
            (wakes.load(Ordering::SeqCst) == 2).then_some(())
        });
        assert!(!s.not_started(3));
        assert_eq!(s.outcome(3).map(|r| r.is_ok()), None, "oldest first");
        s.outcome(1).expect("done").unwrap();
        s.outcome(3).expect("done").unwrap();
        assert!(s.submit(5, Arc::clone(&other)), "free again");
        s.abandon(5);
        wait_for("an abandoned job frees the syncer too", || {
            s.submit(6, Arc::clone(&file)).then_some(())
        });
        assert_eq!(s.outcome(5).map(|r| r.is_ok()), None, "not 5's outcome");
        wait_for("no outcome", || s.outcome(6)).unwrap();
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_sync_drops_the_one_queued_behind_it() {
        // fdatasync of /dev/null fails (EINVAL), as a failing disk's would.
        let null = Arc::new(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .unwrap(),
        );
        let (s, _) = counting();
        assert!(s.submit(1, Arc::clone(&null)));
        // Refused if the first has failed already, else queued and then dropped.
        let queued = s.submit(2, Arc::clone(&null));
        let first = wait_for("no outcome", || s.outcome(1));
        assert!(first.is_err());
        if queued {
            assert!(!s.not_started(2), "dropped, not waiting");
        }
        assert_eq!(s.outcome(2).map(|r| r.is_ok()), None, "never reported");
        assert!(s.submit(3, Arc::clone(&null)), "the syncer is free");
        assert!(wait_for("no outcome", || s.outcome(3)).is_err());
    }
}

//! Open-loop pacing: one helper thread sleeps until each due time and wakes the event loop.
//!
//! mio's poll timeout is whole milliseconds (rounded up), so pacing by it alone would send
//! requests up to 1 ms late, and spinning instead would take a core from the servers on a
//! small machine. A sleeping thread is accurate to the kernel's timer slack (~50 µs). It never
//! touches a connection: all I/O stays on the event loop's thread.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::Waker;

use crate::schedule::Schedule;

/// Longest single sleep, so a stop request is noticed promptly.
const MAX_NAP: Duration = Duration::from_millis(10);

pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Held here as well as by the thread: a waker's eventfd must outlive the thread's last
    /// wake-up. Closed the moment the thread ends, it took that wake-up with it whenever the
    /// loop had not collected it yet (epoll drops the readiness of a closed fd), and the loop
    /// slept on to its poll timeout.
    _waker: Arc<Waker>,
}

impl Ticker {
    /// Wake `waker` at every due time of `schedule` until the last one has passed.
    pub fn start(schedule: Schedule, waker: Waker) -> io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let waker = Arc::new(waker);
        let kept = Arc::clone(&waker);
        let thread = thread::Builder::new()
            .name("bench-ticker".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let Some(due) = schedule.next_due(now) else {
                        let _ = waker.wake();
                        return;
                    };
                    thread::sleep(due.saturating_duration_since(now).min(MAX_NAP));
                    if Instant::now() >= due && waker.wake().is_err() {
                        return;
                    }
                }
            })?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
            _waker: kept,
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};

    #[test]
    fn wakes_the_loop_until_the_last_request_is_due() {
        let mut poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), Token(0)).unwrap();
        let start = Instant::now();
        // 10 requests 50 ms apart: long gaps, so a busy machine that runs the ticker thread
        // late still wakes the loop more than once (at 0.5 ms apart it sometimes did not), and
        // the last wake-up comes right before the thread ends.
        let schedule = Schedule::new(start, 20.0, 10);
        let _ticker = Ticker::start(schedule, waker).unwrap();
        let mut events = Events::with_capacity(8);
        let mut wakeups = 0;
        while schedule.due_by(Instant::now()) < 10 {
            // The poll timeout is longer than the whole schedule: only the ticker ends a poll
            // in time, and a quiet ticker fails here.
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the ticker went quiet"
            );
            poll.poll(&mut events, Some(Duration::from_secs(6)))
                .unwrap();
            wakeups += events.iter().count();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the last wake-up was lost: the loop slept to its poll timeout"
        );
        assert!(wakeups >= 2, "{wakeups} wake-ups");
    }

    #[test]
    fn dropping_stops_the_thread_promptly() {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), Token(0)).unwrap();
        let schedule = Schedule::new(Instant::now(), 0.01, 10);
        let t = Instant::now();
        drop(Ticker::start(schedule, waker).unwrap());
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}

//! Busy polling: wait for events without sleeping, for a bounded time. A `send` to a process
//! asleep in `epoll_wait` makes the sender pay for waking it (several µs on a VM), so the
//! servers poll like this for a short while before they block (`--spin-us` on the master and
//! the slaves).

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

/// Poll without sleeping, yielding the CPU between polls, until events arrive or `until` has
/// passed; always polls at least once. `true` when `events` holds events.
pub fn poll_until(poll: &mut Poll, events: &mut Events, until: Instant) -> io::Result<bool> {
    loop {
        poll.poll(events, Some(Duration::ZERO))?;
        if !events.is_empty() {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        std::thread::yield_now();
    }
}

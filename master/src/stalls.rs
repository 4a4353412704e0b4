//! Which clients have stopped reading their replies, and since when: the event loop's grounds
//! for cutting one off while the buffer budget is spent (`--stalled-client-ms`, `server.rs`).
//!
//! A client is stalled from the first flush that leaves its replies queued because its socket
//! is full, until a flush writes into that socket again (it read some) or leaves nothing
//! queued, or it closes. A client that reads, however slowly, starts a new stall each time it
//! reads, so only one that reads nothing at all for the whole grace is ever due.
//!
//! Stalls start in time order, so a queue holds the oldest at its front; an entry whose
//! connection has moved since (or closed) is dropped when it reaches the front, and the queue
//! is compacted when such entries outnumber the live ones (so a front stalled for long, with
//! nobody due to cut it, cannot make it grow without bound behind it).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub struct Stalls {
    /// Per slab key: when its current stall started.
    since: Vec<Option<Instant>>,
    /// Stalls in the order they started; some no longer current.
    queue: VecDeque<(usize, Instant)>,
    /// Connections stalled now.
    live: usize,
    grace: Duration,
}

impl Stalls {
    pub fn new(grace: Duration) -> Stalls {
        Stalls {
            since: Vec::new(),
            queue: VecDeque::new(),
            live: 0,
            grace,
        }
    }

    /// A flush left `key`'s replies queued in a full socket at `now` (a stall already under
    /// way goes on from when it started).
    pub fn blocked(&mut self, key: usize, now: Instant) {
        if self.since.len() <= key {
            self.since.resize(key + 1, None);
        }
        if self.since[key].is_some() {
            return;
        }
        self.since[key] = Some(now);
        self.live += 1;
        self.queue.push_back((key, now));
        if self.queue.len() > 2 * self.live + 64 {
            let since = &self.since;
            self.queue.retain(|&(k, at)| since[k] == Some(at));
        }
    }

    /// `key`'s peer read some of its replies, it has none queued any more, or it closed.
    pub fn moved(&mut self, key: usize) {
        if let Some(since) = self.since.get_mut(key) {
            if since.take().is_some() {
                self.live -= 1;
            }
        }
    }

    /// The client stalled longest, if it has been for the whole grace by `now`.
    pub fn due(&mut self, now: Instant) -> Option<usize> {
        let (key, at) = self.front()?;
        (now >= at + self.grace).then_some(key)
    }

    /// When the client stalled longest will be due.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.front().map(|(_, at)| at + self.grace)
    }

    /// How long `key` has been stalled by `now`.
    pub fn stalled_for(&self, key: usize, now: Instant) -> Duration {
        match self.since.get(key).copied().flatten() {
            Some(at) => now.saturating_duration_since(at),
            None => Duration::ZERO,
        }
    }

    /// The oldest current stall, dropping entries that are no longer current.
    fn front(&mut self) -> Option<(usize, Instant)> {
        while let Some(&(key, at)) = self.queue.front() {
            if self.since[key] == Some(at) {
                return Some((key, at));
            }
            self.queue.pop_front();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(100);

    #[test]
    fn only_a_client_that_reads_nothing_for_the_whole_grace_is_due() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Stalls::new(GRACE);
        s.blocked(3, ms(0));
        s.blocked(5, ms(10));
        // Blocked again without reading: the stall goes on from its start.
        s.blocked(3, ms(50));
        assert_eq!(s.next_deadline(), Some(ms(100)));
        assert_eq!(s.due(ms(99)), None);
        assert_eq!(s.due(ms(100)), Some(3));
        // 3 reads a little, then blocks again: a new stall, behind 5's.
        s.moved(3);
        s.blocked(3, ms(100));
        assert_eq!(s.due(ms(105)), None);
        assert_eq!(s.next_deadline(), Some(ms(110)));
        assert_eq!(s.due(ms(110)), Some(5));
        assert_eq!(s.stalled_for(5, ms(110)), GRACE);
        s.moved(5);
        assert_eq!(s.stalled_for(5, ms(110)), Duration::ZERO);
        assert_eq!(s.due(ms(199)), None);
        assert_eq!(s.due(ms(200)), Some(3));
        s.moved(3);
        assert_eq!(s.due(ms(10_000)), None);
        assert_eq!(s.next_deadline(), None);
        // Moving a connection never stalled is a no-op.
        s.moved(99);
        assert_eq!(s.live, 0);
    }

    #[test]
    fn the_queue_stays_bounded_behind_a_long_stall() {
        let t0 = Instant::now();
        let mut s = Stalls::new(GRACE);
        s.blocked(0, t0);
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(i);
            s.blocked(1, now);
            s.moved(1);
        }
        assert!(
            s.queue.len() <= 2 * s.live + 65,
            "{} entries",
            s.queue.len()
        );
        assert_eq!(s.due(t0 + GRACE), Some(0));
    }
}

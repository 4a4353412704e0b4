//! Hashed timer wheel for single-threaded event loops: owns pending deadlines, never reads the clock.

use slab::Slab;
use std::time::{Duration, Instant};

/// Handle to a scheduled timer; cancelling a fired or already-cancelled timer is a harmless no-op
/// even if the slab slot has been reused (the generation tells the two apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: usize,
    generation: u64,
}

struct Entry<T> {
    value: T,
    deadline: Instant,
    generation: u64,
    slot: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Timers hashed by tick into a power-of-two ring of intrusive lists threaded through a slab,
/// so insert and cancel are O(1) and `expired` only walks the slots whose ticks have come.
pub struct TimerWheel<T> {
    start: Instant,
    tick_nanos: u64,
    mask: usize,
    heads: Vec<Option<usize>>,
    entries: Slab<Entry<T>>,
    /// Every tick below this has been drained, so no pending entry hashes to an earlier tick;
    /// inserts with older deadlines are parked here so the next `expired` sees them.
    cursor: u64,
    next_generation: u64,
    /// Never later than the earliest pending deadline. Cancelling the earliest timer leaves it early
    /// (recomputing there would make cancel O(slots) on the hot ACK path); that costs at most one
    /// spurious wake-up, whose `expired` call recomputes it exactly.
    earliest: Option<Instant>,
    /// Reused between calls so `expired` can hand timers out in deadline order without allocating.
    fired: Vec<(Instant, u64, T)>,
    /// The last deadline inserted and its tick, rounded up: an event loop turn inserts many
    /// timers at the same `now + timeout`, and turning an `Instant` into ticks is most of the
    /// cost of an insert.
    last_tick: Option<(Instant, u64)>,
}

impl<T> TimerWheel<T> {
    /// `tick`: granularity (e.g. 1 ms); `slots`: rounded up to a power of two. Panics if `tick` is 0.
    pub fn new(start: Instant, tick: Duration, slots: usize) -> Self {
        assert!(!tick.is_zero(), "timer wheel tick must be non-zero");
        let slots = slots.max(1).next_power_of_two();
        TimerWheel {
            start,
            tick_nanos: u64::try_from(tick.as_nanos()).expect("timer wheel tick over 584 years"),
            mask: slots - 1,
            heads: vec![None; slots],
            entries: Slab::new(),
            cursor: 0,
            next_generation: 0,
            earliest: None,
            fired: Vec::new(),
            last_tick: None,
        }
    }

    /// Schedule `value` to fire at `deadline` (a deadline in the past fires on the next `expired`).
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        // Rounding up keeps every deadline hashed to tick t within (t - 1, t], so once `now` reaches
        // tick t that tick holds nothing pending and the cursor may pass it.
        let ceil = match self.last_tick {
            Some((at, tick)) if at == deadline => tick,
            _ => {
                let tick = self.ticks(deadline).1;
                self.last_tick = Some((deadline, tick));
                tick
            }
        };
        let tick = ceil.max(self.cursor);
        let slot = tick as usize & self.mask;
        let generation = self.next_generation;
        self.next_generation += 1;
        let head = self.heads[slot];
        let index = self.entries.insert(Entry {
            value,
            deadline,
            generation,
            slot,
            prev: None,
            next: head,
        });
        if let Some(head) = head {
            self.entries[head].prev = Some(index);
        }
        self.heads[slot] = Some(index);
        self.earliest = Some(self.earliest.map_or(deadline, |e| e.min(deadline)));
        TimerId { index, generation }
    }

    /// Remove a pending timer, returning its value; None if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        match self.entries.get(id.index) {
            Some(entry) if entry.generation == id.generation => {}
            _ => return None,
        }
        self.unlink(id.index);
        let entry = self.entries.remove(id.index);
        if self.entries.is_empty() {
            self.earliest = None;
        }
        Some(entry.value)
    }

    /// Move every timer whose deadline is <= `now` into `out`, in deadline order (ties in insertion
    /// order). Timers more than one rotation ahead stay in their slot until their own round.
    pub fn expired(&mut self, now: Instant, out: &mut Vec<T>) {
        self.collect_expired(now);
        out.extend(self.fired.drain(..).map(|(_, _, value)| value));
    }

    /// [`TimerWheel::expired`], each timer with its deadline: for a caller that merges them
    /// with deadlines it keeps elsewhere.
    pub fn expired_at(&mut self, now: Instant, out: &mut Vec<(Instant, T)>) {
        self.collect_expired(now);
        out.extend(self.fired.drain(..).map(|(at, _, value)| (at, value)));
    }

    /// Move the timers due by `now` into `fired`, sorted by deadline, ties in insertion order.
    fn collect_expired(&mut self, now: Instant) {
        // The cached bound makes the common "nothing due yet" call O(1), however far `now` jumped.
        let due = matches!(self.earliest, Some(earliest) if earliest <= now);
        if due {
            // The slot of the partial tick `ceil(now)` is walked too: a deadline inside the current
            // tick is due now, and the exact `deadline <= now` test keeps the rest from firing early.
            let last = self.ticks(now).1.max(self.cursor);
            let count = (last - self.cursor)
                .saturating_add(1)
                .min(self.heads.len() as u64);
            for step in 0..count {
                let slot = self.cursor.wrapping_add(step) as usize & self.mask;
                self.drain_slot(slot, now);
            }
        }
        // Ticks up to floor(now) are fully drained; a clock that went backwards leaves the cursor.
        self.cursor = self.cursor.max(self.ticks(now).0.saturating_add(1));
        if due {
            self.earliest = self.scan_earliest();
            self.fired
                .sort_by_key(|&(deadline, generation, _)| (deadline, generation));
        }
    }

    /// The earliest pending deadline (to compute the mio poll timeout), None when empty.
    /// Never later than the real earliest deadline; may be early right after a `cancel`.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.earliest
    }

    /// Whether `id` is still pending (not fired, not cancelled).
    pub fn contains(&self, id: TimerId) -> bool {
        matches!(self.entries.get(id.index), Some(entry) if entry.generation == id.generation)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `at` as (floor, ceil) ticks since the start; instants before the start count as tick 0.
    fn ticks(&self, at: Instant) -> (u64, u64) {
        // u64 nanoseconds cover 584 years; 128-bit division was a visible cost per insert.
        let nanos =
            u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        (nanos / self.tick_nanos, nanos.div_ceil(self.tick_nanos))
    }

    fn unlink(&mut self, index: usize) {
        let entry = &self.entries[index];
        let (slot, prev, next) = (entry.slot, entry.prev, entry.next);
        match prev {
            Some(prev) => self.entries[prev].next = next,
            None => self.heads[slot] = next,
        }
        if let Some(next) = next {
            self.entries[next].prev = prev;
        }
    }

    fn drain_slot(&mut self, slot: usize, now: Instant) {
        let mut next = self.heads[slot];
        while let Some(index) = next {
            let entry = &self.entries[index];
            next = entry.next;
            if entry.deadline <= now {
                self.unlink(index);
                let entry = self.entries.remove(index);
                self.fired
                    .push((entry.deadline, entry.generation, entry.value));
            }
        }
    }

    /// Exact earliest deadline, walking slots in tick order from the cursor. Once the best deadline
    /// so far rounds up to the tick just walked, no later slot can beat it: their entries all round
    /// up to later ticks. Only when every timer is a round or more away does it walk every slot.
    fn scan_earliest(&self) -> Option<Instant> {
        if self.entries.is_empty() {
            return None;
        }
        let mut best: Option<Instant> = None;
        for step in 0..self.heads.len() as u64 {
            let tick = self.cursor.saturating_add(step);
            let mut next = self.heads[self.cursor.wrapping_add(step) as usize & self.mask];
            while let Some(index) = next {
                let entry = &self.entries[index];
                best = Some(best.map_or(entry.deadline, |b| b.min(entry.deadline)));
                next = entry.next;
            }
            if matches!(best, Some(b) if self.ticks(b).1 <= tick) {
                break;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn wheel(slots: usize) -> (Instant, TimerWheel<u64>) {
        // Start well after `base` so tests can also place deadlines before the wheel's start.
        let base = Instant::now();
        let start = base + Duration::from_secs(10);
        (start, TimerWheel::new(start, MS, slots))
    }

    fn fire(w: &mut TimerWheel<u64>, now: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        w.expired(now, &mut out);
        out
    }

    #[test]
    fn slots_round_up_to_power_of_two() {
        let (start, w) = wheel(100);
        assert_eq!(w.heads.len(), 128);
        assert_eq!(TimerWheel::<u8>::new(start, MS, 0).heads.len(), 1);
    }

    #[test]
    fn expired_at_gives_each_timer_its_deadline_in_order() {
        let (start, mut w) = wheel(16);
        w.insert(start + 3 * MS, 3);
        w.insert(start + MS, 1);
        w.insert(start + 40 * MS, 40);
        let mut out = Vec::new();
        w.expired_at(start + 5 * MS, &mut out);
        assert_eq!(out, vec![(start + MS, 1), (start + 3 * MS, 3)]);
    }

    #[test]
    fn fires_at_deadline_never_before() {
        let (start, mut w) = wheel(16);
        let deadline = start + Duration::from_micros(5_500);
        w.insert(deadline, 7);
        assert!(fire(&mut w, start + 5 * MS).is_empty());
        assert!(fire(&mut w, deadline - Duration::from_nanos(1)).is_empty());
        assert_eq!(fire(&mut w, deadline), vec![7]);
        assert!(fire(&mut w, deadline + 100 * MS).is_empty());
        assert!(w.is_empty());
    }

    #[test]
    fn many_timers_across_rotations_fire_exactly_when_due() {
        let (start, mut w) = wheel(8);
        let deadline = |i: u64| start + Duration::from_micros(i * 370);
        for i in 0..1000 {
            w.insert(deadline(i), i);
        }
        let mut fired = Vec::new();
        let mut previous = start - MS;
        for step in 0..=400u32 {
            let now = start + MS * step;
            let out = fire(&mut w, now);
            for &i in &out {
                assert!(
                    deadline(i) <= now && deadline(i) > previous,
                    "timer {i} at {step} ms"
                );
            }
            fired.extend(out);
            previous = now;
        }
        assert_eq!(fired, (0..1000).collect::<Vec<_>>());
        assert!(w.is_empty() && w.next_deadline().is_none());
    }

    #[test]
    fn far_future_timer_waits_for_its_round() {
        let (start, mut w) = wheel(4);
        let deadline = start + 41 * MS;
        w.insert(deadline, 1);
        for step in 0..41u32 {
            assert!(
                fire(&mut w, start + MS * step).is_empty(),
                "fired at {step} ms"
            );
        }
        assert_eq!(fire(&mut w, deadline), vec![1]);
    }

    #[test]
    fn big_jump_fires_everything_due_in_deadline_order() {
        let (start, mut w) = wheel(4);
        for (value, ms) in [(3, 30u32), (1, 2), (4, 1000), (2, 9)] {
            w.insert(start + MS * ms, value);
        }
        assert_eq!(fire(&mut w, start + 999 * MS), vec![1, 2, 3]);
        assert_eq!(w.next_deadline(), Some(start + 1000 * MS));
        assert_eq!(fire(&mut w, start + 1000 * MS), vec![4]);
    }

    #[test]
    fn cancel_before_firing_returns_value_and_it_never_fires() {
        let (start, mut w) = wheel(8);
        let id = w.insert(start + 3 * MS, 1);
        w.insert(start + 3 * MS, 2);
        assert!(w.contains(id));
        assert_eq!(w.cancel(id), Some(1));
        assert!(!w.contains(id));
        assert_eq!(w.cancel(id), None);
        assert_eq!(fire(&mut w, start + 100 * MS), vec![2]);
    }

    #[test]
    fn cancel_after_firing_returns_none() {
        let (start, mut w) = wheel(8);
        let id = w.insert(start + MS, 1);
        assert_eq!(fire(&mut w, start + MS), vec![1]);
        assert_eq!(w.cancel(id), None);
    }

    #[test]
    fn stale_id_does_not_cancel_timer_in_reused_slot() {
        let (start, mut w) = wheel(8);
        let old = w.insert(start + MS, 1);
        assert_eq!(w.cancel(old), Some(1));
        let new = w.insert(start + 2 * MS, 2);
        assert_eq!(
            old.index, new.index,
            "test needs the slab slot to be reused"
        );
        assert_eq!(w.cancel(old), None);
        assert_eq!(w.len(), 1);
        assert_eq!(fire(&mut w, start + 2 * MS), vec![2]);
    }

    #[test]
    fn past_deadlines_fire_on_next_call() {
        let (start, mut w) = wheel(8);
        assert!(fire(&mut w, start + 100 * MS).is_empty());
        w.insert(start + 50 * MS, 1);
        w.insert(start - Duration::from_secs(5), 2);
        assert!(w.next_deadline().unwrap() <= start + 100 * MS);
        assert_eq!(fire(&mut w, start + 100 * MS), vec![2, 1]);
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let (start, mut w) = wheel(8);
        w.insert(start + 20 * MS, 1);
        assert!(fire(&mut w, start + 10 * MS).is_empty());
        assert!(fire(&mut w, start).is_empty());
        assert!(fire(&mut w, start - Duration::from_secs(1)).is_empty());
        w.insert(start + 5 * MS, 2);
        assert!(fire(&mut w, start + 2 * MS).is_empty());
        assert_eq!(fire(&mut w, start + 20 * MS), vec![2, 1]);
    }

    #[test]
    fn len_tracks_inserts_cancels_and_fires() {
        let (start, mut w) = wheel(8);
        let ids: Vec<_> = (0..10u32)
            .map(|i| w.insert(start + MS * i, u64::from(i)))
            .collect();
        assert_eq!(w.len(), 10);
        w.cancel(ids[9]);
        w.cancel(ids[9]);
        assert_eq!(w.len(), 9);
        assert_eq!(fire(&mut w, start + 4 * MS).len(), 5);
        assert_eq!(w.len(), 4);
        w.cancel(ids[0]);
        assert_eq!(w.len(), 4);
    }

    /// Random inserts, cancels (live and stale) and clock moves, checked against a plain list.
    #[test]
    fn matches_brute_force_model() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let (start, mut w) = wheel(16);
        let mut model: Vec<(TimerId, Instant, u64)> = Vec::new();
        let mut dead: Vec<TimerId> = Vec::new();
        let mut now = start;
        let mut last: Option<Instant> = None;
        for value in 0..5000u64 {
            match rand(10) {
                0..=3 => {
                    // Up to ~5 rotations ahead, sometimes in the past, often off the tick grid;
                    // often the deadline inserted last (as a turn's timers share `now + timeout`),
                    // even once the clock has moved past it.
                    let ahead = Duration::from_micros(rand(80_000));
                    let deadline = match last {
                        Some(last) if rand(3) == 0 => last,
                        _ if rand(8) == 0 => now - ahead / 4,
                        _ => now + ahead,
                    };
                    last = Some(deadline);
                    model.push((w.insert(deadline, value), deadline, value));
                }
                4 | 5 if !model.is_empty() => {
                    let (id, _, v) = model.swap_remove(rand(model.len() as u64) as usize);
                    assert_eq!(w.cancel(id), Some(v));
                    dead.push(id);
                }
                6 if !dead.is_empty() => {
                    assert_eq!(w.cancel(dead[rand(dead.len() as u64) as usize]), None);
                }
                _ => {
                    now = if rand(20) == 0 {
                        now - Duration::from_micros(rand(3_000))
                    } else {
                        now + Duration::from_micros(rand(4_000))
                    };
                    let mut want: Vec<_> = model.iter().filter(|m| m.1 <= now).copied().collect();
                    want.sort_by_key(|m| (m.1, m.2));
                    model.retain(|m| m.1 > now);
                    dead.extend(want.iter().map(|m| m.0));
                    assert_eq!(
                        fire(&mut w, now),
                        want.iter().map(|m| m.2).collect::<Vec<_>>()
                    );
                    if !want.is_empty() {
                        // A call that fired something recomputes the cache exactly.
                        assert_eq!(w.next_deadline(), model.iter().map(|m| m.1).min());
                    }
                }
            }
            assert_eq!(w.len(), model.len());
            match model.iter().map(|m| m.1).min() {
                Some(earliest) => assert!(w.next_deadline().unwrap() <= earliest),
                None => assert_eq!(w.next_deadline(), None),
            }
        }
    }
}

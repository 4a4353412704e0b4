//! The key map counted a slice at a time for STATUS, `/metrics` and the status page: keys per
//! live slave and keys short of R live copies. At a million keys one pass takes the loop
//! 100 ms and more, so a STATUS or a scrape counted at once would stall every client that
//! long; here each loop turn walks at most [`SLICE`] positions, and a request is answered when
//! a pass that started after it asked is over (its connection waits meanwhile; requests that
//! come during one pass share the next).
//! Keys written or moved while a pass runs may be counted as before or after the change.

use crate::keymap::KeyIndex;
use crate::slaves::SlaveTable;
use crate::status::Counts;

/// Key map positions walked per loop turn: a few hundred microseconds at ~100 ns a key.
pub(crate) const SLICE: usize = 4096;

/// Passes are numbered from 1 in the order they start.
#[derive(Default)]
pub(crate) struct Census {
    /// Passes started so far (the id of the running or last one).
    started: u64,
    /// The pass under way: where its next slice starts, and what it counted so far.
    running: Option<(usize, Counts)>,
    /// Someone waits for a pass that has not started yet.
    wanted: bool,
    /// The last pass that ended, and its counts.
    done: Option<(u64, Counts)>,
}

impl Census {
    /// The id of a pass that starts from now on: its counts answer whoever asks now.
    pub fn ask(&mut self) -> u64 {
        self.wanted = true;
        self.started + 1
    }

    /// The counts of pass `id` or a later one, once it is over.
    pub fn result(&self, id: u64) -> Option<&Counts> {
        (self.done.as_ref())
            .filter(|(done, _)| *done >= id)
            .map(|(_, c)| c)
    }

    /// Whether the loop should walk a slice this turn (and not sleep).
    pub fn busy(&self) -> bool {
        self.wanted || self.running.is_some()
    }

    /// Walk one slice, starting a pass if one is wanted; true when a pass ended.
    pub fn step(&mut self, keys: &KeyIndex, slaves: &SlaveTable, replicas: usize) -> bool {
        if self.running.is_none() {
            if !self.wanted {
                return false;
            }
            self.wanted = false;
            self.started += 1;
            self.running = Some((0, Counts::default()));
        }
        let (from, counts) = self.running.as_mut().expect("a pass runs");
        match keys.walk(*from, SLICE, |holders| {
            counts.add(holders, slaves, replicas)
        }) {
            Some(next) => {
                *from = next;
                false
            }
            None => {
                let (_, counts) = self.running.take().expect("a pass runs");
                self.done = Some((self.started, counts));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize, holders: &[u32]) -> KeyIndex {
        let mut k = KeyIndex::default();
        for i in 0..n {
            k.commit(format!("k{i}").as_bytes(), 1, holders);
        }
        k
    }

    #[test]
    fn a_pass_takes_a_slice_per_step_and_counts_what_one_walk_would() {
        let k = keys(2 * SLICE + 5, &[0, 1]);
        let slaves = SlaveTable::default();
        let mut c = Census::default();
        assert!(!c.busy());
        assert!(!c.step(&k, &slaves, 2), "nobody asked: no pass");
        let id = c.ask();
        assert!(c.result(id).is_none());
        assert!(!c.step(&k, &slaves, 2));
        assert!(!c.step(&k, &slaves, 2));
        assert!(c.result(id).is_none(), "two slices are not the whole map");
        assert!(c.step(&k, &slaves, 2));
        assert!(!c.busy());
        let mut whole = Counts::default();
        for (_, e) in k.iter() {
            whole.add(e.holders, &slaves, 2);
        }
        assert_eq!(c.result(id), Some(&whole));
        // No slave is live in an empty table: every key is short.
        assert_eq!(whole.under, 2 * SLICE as u64 + 5);
    }

    #[test]
    fn who_asks_during_a_pass_waits_for_the_next() {
        let k = keys(SLICE + 1, &[0]);
        let slaves = SlaveTable::default();
        let mut c = Census::default();
        let first = c.ask();
        c.step(&k, &slaves, 1);
        let second = c.ask();
        assert_eq!(second, first + 1);
        assert!(c.step(&k, &slaves, 1));
        assert!(c.result(first).is_some());
        assert!(c.result(second).is_none());
        assert!(c.busy());
        assert!(!c.step(&k, &slaves, 1));
        assert!(c.step(&k, &slaves, 1));
        assert!(c.result(second).is_some());
    }
}

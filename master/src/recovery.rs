//! A master restarted over a cluster it served (its `--data-dir` names the slaves) knows no
//! key until the slaves report what they hold. Until every slave of the roster has reported
//! (or been given up: `forget-slave`, or out of reach past `--slave-lost-after-ms`), it answers
//! every request UNAVAILABLE: a key not reported yet may be on a slave still to come, so
//! NOT_FOUND would not be true, and an older version than one a missing slave holds could be.
//! Then it takes an epoch above any a slave has seen, so no restart order reuses one.

use std::collections::BTreeSet;

pub(crate) struct Recovery {
    /// Roster slaves that have not reported yet.
    waiting: BTreeSet<String>,
    roster: usize,
    /// The highest epoch a reporting slave said it had seen.
    epoch_seen: u64,
}

impl Recovery {
    pub fn new(roster: &[String]) -> Recovery {
        Recovery {
            waiting: roster.iter().cloned().collect(),
            roster: roster.len(),
            epoch_seen: 0,
        }
    }

    /// A slave said HELLO having seen `epoch`.
    pub fn saw_epoch(&mut self, epoch: u64) {
        self.epoch_seen = self.epoch_seen.max(epoch);
    }

    pub fn epoch_seen(&self) -> u64 {
        self.epoch_seen
    }

    /// Slave `id` has reported everything, or is given up; returns whether none is left.
    pub fn done_with(&mut self, id: &str) -> bool {
        self.waiting.remove(id);
        self.waiting.is_empty()
    }

    /// Why requests are refused, for the ERROR UNAVAILABLE.
    pub fn why(&self) -> String {
        let names: Vec<&str> = self.waiting.iter().take(8).map(String::as_str).collect();
        let more = self.waiting.len().saturating_sub(names.len());
        format!(
            "recovering after a restart: waiting for {} of {} slaves to report what they hold \
             ({}{}); `dsm-client forget-slave ID` gives one up",
            self.waiting.len(),
            self.roster,
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    }
}

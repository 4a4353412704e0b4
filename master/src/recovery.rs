//! A master that starts over a cluster it may not know answers nothing until it has heard
//! what the slaves hold, and then serves at an epoch above any a slave has seen, so no
//! restart order reuses one (or fences itself on a slave that saw a higher one).
//!
//! - Restarted with a roster (`--data-dir` names the slaves): it waits until every slave of
//!   the roster has reported what it holds, or been given up (`forget-slave`, or out of
//!   reach past `--slave-lost-after-ms`).
//! - Started with no state (a new cluster, or a master that lost its disk or ran memory
//!   only): it cannot know which slaves exist, so it *discovers* for `--discover-ms`: every
//!   slave that registers reports what it holds (its keys are adopted), and service starts
//!   once the window has passed and every slave that came has finished its report.
//!
//! Meanwhile every READ and WRITE is answered UNAVAILABLE (retryable): a key not reported yet
//! may be on a slave still to come, so NOT_FOUND would not be true, and an older version
//! than one a missing slave holds could be.

use std::collections::BTreeSet;
use std::time::Instant;

pub(crate) struct Recovery {
    /// Slaves (of the roster, or any that registered meanwhile) that have not reported yet.
    waiting: BTreeSet<String>,
    /// Slaves that have finished their report.
    reported: usize,
    /// The end of the discovery window (no roster), if there is one.
    until: Option<Instant>,
    /// The highest epoch a slave said it had seen.
    epoch_seen: u64,
}

impl Recovery {
    /// Wait for the slaves of `roster`; `kept` is the epoch the data dir kept.
    pub fn new(roster: &[String], kept: u64) -> Recovery {
        Recovery {
            waiting: roster.iter().cloned().collect(),
            reported: 0,
            until: None,
            epoch_seen: kept,
        }
    }

    /// Also take every slave that registers until `until` (no roster, or one that may miss
    /// some).
    pub fn discover_until(&mut self, until: Instant) {
        self.until = Some(until);
    }

    /// A slave said HELLO having seen `epoch`, and reports what it holds before the
    /// recovery ends.
    pub fn joined(&mut self, id: &str, epoch: u64) {
        self.epoch_seen = self.epoch_seen.max(epoch);
        self.waiting.insert(id.to_string());
    }

    /// A slave that was in service before (the same process) came back: only its epoch.
    pub fn saw_epoch(&mut self, epoch: u64) {
        self.epoch_seen = self.epoch_seen.max(epoch);
    }

    /// The highest epoch kept or seen: service starts at the next.
    pub fn epoch_seen(&self) -> u64 {
        self.epoch_seen
    }

    /// Slave `id` has reported everything, or is given up.
    pub fn done_with(&mut self, id: &str) {
        if self.waiting.remove(id) {
            self.reported += 1;
        }
    }

    /// Whether service may start at `now`.
    pub fn is_over(&self, now: Instant) -> bool {
        self.waiting.is_empty() && self.until.is_none_or(|u| now >= u)
    }

    /// Why requests are refused, for the ERROR UNAVAILABLE (beginning
    /// [`dsm_wire::RECOVERING`], so clients ask again).
    pub fn why(&self, now: Instant) -> String {
        format!("{}{}", dsm_wire::RECOVERING, self.reason(now))
    }

    fn reason(&self, now: Instant) -> String {
        let names: Vec<&str> = self.waiting.iter().take(8).map(String::as_str).collect();
        let more = self.waiting.len().saturating_sub(names.len());
        let listed = format!(
            "{}{}",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        match self.until {
            Some(until) if now < until => format!(
                "starting without a roster of slaves: taking what registering slaves hold for \
                 {} ms more ({} reported{})",
                until.duration_since(now).as_millis(),
                self.reported,
                if self.waiting.is_empty() {
                    String::new()
                } else {
                    format!("; reporting: {listed}")
                }
            ),
            _ => format!(
                "recovering after a restart: waiting for {} slaves to report what they hold \
                 ({listed}; {} reported); `dsm-client forget-slave ID` gives one up",
                self.waiting.len(),
                self.reported,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_roster_recovery_ends_when_the_last_slave_has_reported() {
        let now = Instant::now();
        let mut r = Recovery::new(&["a".into(), "b".into()], 3);
        r.done_with("a");
        assert!(!r.is_over(now));
        assert!(
            r.why(now).contains("waiting for 1 slaves"),
            "{}",
            r.why(now)
        );
        r.done_with("b");
        assert!(r.is_over(now));
    }

    #[test]
    fn discovery_ends_after_its_window_and_the_reports_of_those_who_came() {
        let start = Instant::now();
        let end = start + Duration::from_millis(100);
        let mut r = Recovery::new(&[], 0);
        r.discover_until(end);
        r.joined("s1", 4);
        r.joined("s2", 7);
        assert_eq!(r.epoch_seen(), 7);
        r.done_with("s1");
        assert!(!r.is_over(start));
        assert!(r.why(start).contains("reporting: s2"), "{}", r.why(start));
        assert!(!r.is_over(end), "s2 has not reported");
        r.done_with("s2");
        assert!(!r.is_over(start), "the window is still open");
        assert!(r.is_over(end));
    }
}

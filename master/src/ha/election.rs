//! A standby's side of an election (the design is in `mod.rs`). Slaves that lost their
//! primary come to a standby, which WELCOMEs them as *supporters*. The standby *withdraws* its
//! own promise to the primary (it stops answering the primary's PINGs) once the primary is
//! silent or it and its supporters are a majority; once its last promise has run out, it counts itself. With
//! a majority of the voters (itself and its supporters), it *campaigns*: TAKEOVER at an epoch
//! above any it or a supporter has seen, to every supporter. A slave grants its VOTE only for
//! such an epoch and once its own promise to the old primary has run out; a majority of
//! granted votes (with the standby's own) elects it.
//!
//! The voters are counted as the standby knows them (`Ha::standby_voters`), and never fewer
//! than any slave's VOTE says its primary counted: a standby that never had the roster (its
//! primary unreachable since it started) learns the cluster's size from the first refusal
//! (each slave refuses a TAKEOVER that counts fewer voters than its primary told it), and
//! needs a majority of that.
//!
//! No state here outlives the standby's role: an elected standby hands its supporters over
//! (those that voted become its slaves), and one that steps down has none.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dsm_wire::Body;
use log::{info, warn};

use crate::outbox::ConnId;
use crate::supporter::Supporter;

/// A campaign under way.
#[derive(Debug)]
struct Campaign {
    epoch: u64,
    /// When TAKEOVER was last sent to the supporters that have not granted their vote.
    asked_at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Election {
    pub supporters: BTreeMap<ConnId, Supporter>,
    /// This standby no longer answers the primary's PINGs.
    pub withdrawn: bool,
    /// Its last promise to the primary holds until then.
    promised_until: Option<Instant>,
    campaign: Option<Campaign>,
    /// The most voters any supporter's VOTE said its primary counted.
    learned: usize,
}

/// What the standby must do after a tick or a VOTE.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Nothing,
    /// Send TAKEOVER at this epoch to these supporters (each with its inventory flag).
    Ask(u64, Vec<ConnId>),
    /// Elected at this epoch.
    Elected(u64),
}

impl Election {
    /// The primary PINGed us: promise it our support for `lease` (answer the PING), unless
    /// withdrawn.
    pub fn promise(&mut self, now: Instant, lease: Duration) -> bool {
        if self.withdrawn {
            return false;
        }
        self.promised_until = Some(now + lease);
        true
    }

    /// Stop promising the primary (`why`, for the log).
    pub fn withdraw(&mut self, why: &str) {
        if !self.withdrawn {
            info!("withdrawing support from the primary: {why}");
            self.withdrawn = true;
        }
    }

    /// The primary is back and nobody needs us: promise it again.
    pub fn rejoin(&mut self) {
        if self.withdrawn && self.supporters.is_empty() && self.campaign.is_none() {
            info!("the primary is heard again: supporting it again");
            self.withdrawn = false;
        }
    }

    /// A slave came to us.
    pub fn support(&mut self, conn: ConnId, id: String, boot: u64, seen: u64) {
        info!(
            "slave '{id}' supports this standby ({} supporters)",
            self.supporters.len() + 1
        );
        self.supporters.insert(
            conn,
            Supporter {
                id,
                boot,
                seen,
                asked: None,
                voted: None,
                stale: false,
                inventory: false,
                held: Vec::new(),
            },
        );
    }

    /// A supporter's connection closed.
    pub fn gone(&mut self, conn: ConnId) {
        if let Some(s) = self.supporters.remove(&conn) {
            info!("slave '{}' no longer supports this standby", s.id);
        }
    }

    /// Whether this standby may count itself: it has withdrawn, and its last promise to the
    /// primary has run out.
    fn counts_itself(&self, now: Instant) -> bool {
        self.withdrawn && self.promised_until.is_none_or(|u| now >= u)
    }

    /// The voters: `counted` by this standby, or more if a supporter said so.
    pub fn voters(&self, counted: usize) -> usize {
        counted.max(self.learned)
    }

    /// The tick: with a majority of the voters (`counted`, or more: [`Election::voters`]) on
    /// our side, campaign (or ask again those that have not voted yet); `epoch` is the
    /// highest this standby has seen.
    pub fn tick(&mut self, now: Instant, counted: usize, epoch: u64, retry: Duration) -> Next {
        if !self.counts_itself(now) || self.supporters.is_empty() {
            return Next::Nothing;
        }
        let voters = self.voters(counted);
        let needed = voters / 2 + 1;
        if 1 + self.supporters.len() < needed {
            return Next::Nothing;
        }
        match &mut self.campaign {
            None => {
                let seen = self.supporters.values().map(|s| s.seen).max().unwrap_or(0);
                let epoch = epoch.max(seen) + 1;
                info!(
                    "campaigning at epoch {epoch}: {} supporters of {voters} voters",
                    self.supporters.len()
                );
                self.campaign = Some(Campaign {
                    epoch,
                    asked_at: now,
                });
                for s in self.supporters.values_mut() {
                    s.asked = Some(now);
                }
                Next::Ask(epoch, self.supporters.keys().copied().collect())
            }
            Some(c) if now >= c.asked_at + retry => {
                c.asked_at = now;
                // Those that came since, and those that refused (their promise had not run
                // out yet): ask again.
                let mut again = Vec::new();
                for (&conn, s) in self.supporters.iter_mut() {
                    if s.asked.is_none() || s.voted == Some(false) {
                        s.asked = Some(now);
                        s.voted = None;
                        again.push(conn);
                    }
                }
                if again.is_empty() {
                    return Next::Nothing;
                }
                Next::Ask(c.epoch, again)
            }
            Some(_) => Next::Nothing,
        }
    }

    /// Supporter `conn` answered our TAKEOVER; its primary counted `told` voters (0: it was
    /// not told). `counted`: the voters as this standby counts them.
    pub fn vote(
        &mut self,
        conn: ConnId,
        granted: bool,
        stale: bool,
        told: u16,
        counted: usize,
    ) -> Next {
        if self.campaign.is_some() && self.supporters.contains_key(&conn) {
            let told = usize::from(told);
            if told > self.voters(counted) {
                warn!(
                    "a supporter's primary counted {told} voters, this standby {}: counting {told}",
                    self.voters(counted)
                );
            }
            self.learned = self.learned.max(told);
        }
        let voters = self.voters(counted);
        let Some(c) = &self.campaign else {
            return Next::Nothing;
        };
        let Some(s) = self.supporters.get_mut(&conn) else {
            return Next::Nothing;
        };
        s.voted = Some(granted);
        s.stale |= stale;
        if !granted {
            info!("slave '{}' refused its vote for epoch {}", s.id, c.epoch);
            return Next::Nothing;
        }
        if stale {
            warn!(
                "slave '{}' says this standby is out of step with the primary it followed",
                s.id
            );
        }
        let granted = self.granted().count();
        if 1 + granted > voters / 2 {
            info!(
                "elected at epoch {}: {granted} votes of {voters} voters",
                c.epoch
            );
            return Next::Elected(c.epoch);
        }
        Next::Nothing
    }

    /// The supporters that voted for us.
    pub fn granted(&self) -> impl Iterator<Item = (&ConnId, &Supporter)> {
        self.supporters
            .iter()
            .filter(|(_, s)| s.voted == Some(true))
    }

    /// Whether any supporter that voted for us said we are out of step.
    pub fn stale(&self) -> bool {
        self.granted().any(|(_, s)| s.stale)
    }

    /// A frame from supporter `conn` after its vote: keep it for when we take it as a slave.
    pub fn hold(&mut self, conn: ConnId, body: Body) -> bool {
        match self.supporters.get_mut(&conn) {
            Some(s) if s.voted == Some(true) => {
                s.held.push(body);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(400);
    const RETRY: Duration = Duration::from_millis(100);

    /// Two masters and three slaves: five voters, three make a majority.
    #[test]
    fn a_standby_campaigns_only_with_a_majority_and_once_its_promise_has_run_out() {
        let t0 = Instant::now();
        let mut e = Election::default();
        assert!(e.promise(t0, LEASE));
        e.support(1, "s1".into(), 11, 3);
        assert_eq!(e.tick(t0, 5, 3, RETRY), Next::Nothing, "still promised");
        e.withdraw("a supporter came");
        assert!(!e.promise(t0, LEASE), "withdrawn: no more promises");
        assert_eq!(
            e.tick(t0 + LEASE, 5, 3, RETRY),
            Next::Nothing,
            "two of five"
        );
        e.support(2, "s2".into(), 12, 4);
        assert_eq!(
            e.tick(t0 + LEASE - Duration::from_millis(1), 5, 3, RETRY),
            Next::Nothing,
            "its own promise still holds"
        );
        assert_eq!(
            e.tick(t0 + LEASE, 5, 3, RETRY),
            Next::Ask(5, vec![1, 2]),
            "above every epoch seen"
        );
        assert_eq!(e.vote(1, false, false, 5, 5), Next::Nothing);
        // Asked again, at the same epoch, after the retry interval.
        assert_eq!(
            e.tick(t0 + LEASE + RETRY, 5, 3, RETRY),
            Next::Ask(5, vec![1])
        );
        assert_eq!(
            e.vote(2, true, false, 0, 5),
            Next::Nothing,
            "two votes of five"
        );
        assert_eq!(e.vote(1, true, true, 5, 5), Next::Elected(5));
        assert!(e.stale());
        assert!(e.hold(1, Body::Pong));
    }

    #[test]
    fn a_standby_that_withdrew_supports_the_primary_again_when_nobody_needs_it() {
        let t0 = Instant::now();
        let mut e = Election::default();
        e.withdraw("silence");
        e.support(1, "s1".into(), 1, 1);
        e.rejoin();
        assert!(e.withdrawn, "a supporter still counts on it");
        e.gone(1);
        e.rejoin();
        assert!(!e.withdrawn);
        assert!(e.promise(t0, LEASE));
    }

    /// A standby that never had the roster counts 2 masters and its 1 supporter: 3 voters, of
    /// which it and the supporter are a majority. The supporter's primary counted 5: its
    /// refusal says so, and the standby needs 3 of 5 from then on.
    #[test]
    fn a_standby_counts_the_voters_a_supporters_primary_counted() {
        let t0 = Instant::now();
        let mut e = Election::default();
        e.withdraw("no primary");
        e.support(1, "s0".into(), 10, 1);
        assert_eq!(e.tick(t0, 3, 1, RETRY), Next::Ask(2, vec![1]));
        assert_eq!(e.vote(1, false, false, 5, 3), Next::Nothing);
        assert_eq!(e.voters(3), 5);
        assert_eq!(
            e.tick(t0 + RETRY, 3, 1, RETRY),
            Next::Nothing,
            "two of five"
        );
        // A grant from a slave that was never told a count cannot elect it either.
        e.support(2, "s9".into(), 11, 1);
        assert_eq!(
            e.tick(t0 + RETRY * 2, 3, 1, RETRY),
            Next::Ask(2, vec![1, 2])
        );
        assert_eq!(e.vote(2, true, false, 0, 3), Next::Nothing, "two of five");
        assert_eq!(
            e.vote(1, true, false, 5, 3),
            Next::Elected(2),
            "three of five"
        );
    }
}

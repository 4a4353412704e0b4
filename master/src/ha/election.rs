//! A standby's side of an election (the design is in `mod.rs`). Slaves that lost their
//! primary come to a standby, which WELCOMEs them as *supporters*; so do other standbys that
//! lost it (over their link, on our heartbeat socket), and they vote under the slaves' rules
//! ([`Election::grant`]). The standby *withdraws* its
//! own promise to the primary (it stops answering the primary's PINGs) once the primary is
//! silent or it and its supporters are a majority; once its last promise has run out, or the
//! primary, having lost its lease, released it from its promises (RELEASE, RELEASED: see
//! `lease.rs`), it counts itself. With a majority of the voters (itself and its supporters), it *campaigns*: TAKEOVER at an epoch
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

/// A promise to the primary: given on the standby's `link`th link, in answer to request `req`
/// (the highest answered on that link), until `until`.
#[derive(Debug, Clone, Copy)]
struct Promised {
    link: u64,
    req: u64,
    until: Instant,
}

/// A campaign under way.
#[derive(Debug)]
struct Campaign {
    epoch: u64,
    /// When TAKEOVER was last sent to the supporters that have not granted their vote.
    asked_at: Instant,
    /// Not elected by then (a split vote, say), it gives up and tries a higher epoch.
    give_up_at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Election {
    pub supporters: BTreeMap<ConnId, Supporter>,
    /// This standby no longer answers the primary's PINGs.
    pub withdrawn: bool,
    /// Its promises to the primary on the link it has now (or had last): the primary may
    /// release it from them (`Election::release`).
    promised: Option<Promised>,
    /// Until when the promises it gave on earlier links hold: no release reaches those.
    earlier: Option<Instant>,
    campaign: Option<Campaign>,
    /// The most voters any supporter's VOTE said its primary counted.
    learned: usize,
    /// The highest epoch this standby campaigned at or granted its vote for: it grants no
    /// other at or below it (one vote per epoch).
    pub voted: u64,
    /// The voters its primary counted, and the standbys it said are out of step (its STALE).
    pub told: usize,
    stale_gen: u64,
    stale_ids: Vec<String>,
    /// Having voted for another standby, this one starts no campaign of its own before then
    /// (or the two would outbid each other for ever).
    quiet_until: Option<Instant>,
    /// Draws of [`Election::jitter`] so far, and what makes them differ between masters.
    draws: u64,
    seed: u64,
}

/// What the standby must do after a tick or a VOTE.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Nothing,
    /// Send TAKEOVER at this epoch to these supporters (each with its inventory flag).
    Ask(u64, Vec<ConnId>),
    /// Elected at this epoch.
    Elected(u64),
    /// The campaign failed in time: these supporters voted and serve us at its epoch; let
    /// them go (they look for a master again, and may vote at a higher epoch).
    Release(Vec<ConnId>),
}

impl Election {
    /// With `seed` for its random draws (see [`Election::jitter`]).
    pub fn with_seed(seed: u64) -> Election {
        Election {
            seed,
            ..Election::default()
        }
    }

    /// For `pause` and up to as much again (drawn), start no campaign that counts on other
    /// standbys' votes: a primary that just stepped down leaves the election its departure
    /// starts to the standbys that followed it (a campaign of its own at a higher epoch would
    /// depose the winner once its voters reach it), unless slaves alone elect it.
    pub fn hold_back(&mut self, now: Instant, pause: Duration) {
        let quiet = pause.mul_f64(1.0 + self.jitter());
        self.quiet_until = Some(now + quiet);
    }

    /// The primary PINGed us (request `req` on our `link`th link): promise it our support for
    /// `lease` (answer the PING), unless withdrawn.
    pub fn promise(&mut self, now: Instant, lease: Duration, link: u64, req: u64) -> bool {
        if self.withdrawn {
            return false;
        }
        let until = now + lease;
        self.promised = Some(match self.promised {
            Some(p) if p.link == link => Promised {
                link,
                req: p.req.max(req),
                until: p.until.max(until),
            },
            other => {
                if let Some(p) = other {
                    self.earlier = Some(self.earlier.map_or(p.until, |e| e.max(p.until)));
                }
                Promised { link, req, until }
            }
        });
        true
    }

    /// Whether to ask the primary on our `link`th link to release us (RELEASE): withdrawn, and
    /// a promise given on that link still holds.
    pub fn wants_release(&self, now: Instant, link: u64) -> bool {
        self.withdrawn
            && self
                .promised
                .is_some_and(|p| p.link == link && now < p.until)
    }

    /// The primary on our `link`th link no longer counts our answers to its requests below
    /// `below` (RELEASED): the promises we gave there are void if every one answered a request
    /// below it. A release from another link (an earlier one, another primary), or one that
    /// predates a promise we gave since, releases nothing. Returns whether it did.
    pub fn release(&mut self, link: u64, below: u64) -> bool {
        match self.promised {
            Some(p) if p.link == link && p.req < below => {
                info!("the primary, without a majority, released this standby from its promise");
                self.promised = None;
                true
            }
            _ => false,
        }
    }

    /// Stop promising the primary (`why`, for the log).
    pub fn withdraw(&mut self, why: &str) {
        if !self.withdrawn {
            info!("withdrawing support from the primary: {why}");
            self.withdrawn = true;
        }
    }

    /// The primary is heard on a link open to it and we are not campaigning (the supporters
    /// we have, if any, are no majority: see `Follow::on_heartbeat`): promise it again.
    pub fn rejoin(&mut self) {
        if self.withdrawn && self.campaign.is_none() {
            info!("the primary is heard again: supporting it again");
            self.withdrawn = false;
        }
    }

    /// A slave (or with `master`, a standby) came to us.
    pub fn support(&mut self, conn: ConnId, id: String, boot: u64, seen: u64, master: bool) {
        info!(
            "{} '{id}' supports this standby ({} supporters)",
            if master { "standby" } else { "slave" },
            self.supporters.len() + 1
        );
        self.supporters.insert(
            conn,
            Supporter {
                id,
                master,
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
            info!("supporter '{}' no longer supports this standby", s.id);
        }
    }

    /// Whether this standby may count itself (or vote for another): it has withdrawn, and its
    /// last promise to the primary has run out.
    pub fn counts_itself(&self, now: Instant) -> bool {
        let ran_out = |u: Instant| now >= u;
        self.withdrawn
            && self.earlier.is_none_or(ran_out)
            && self.promised.is_none_or(|p| ran_out(p.until))
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
        // Held back (it voted for another standby, or stepped down as primary): no campaign
        // that counts on other standbys, which are most likely campaigning themselves; slaves
        // alone that make a majority with it may elect it at once.
        let slaves = self.supporters.values().filter(|s| !s.master).count();
        let quiet = self.quiet_until.is_some_and(|q| now < q);
        if self.campaign.is_none() && quiet && 1 + slaves < needed {
            return Next::Nothing;
        }
        let give_up = retry * 8 + retry.mul_f64(8.0 * self.jitter());
        match &mut self.campaign {
            None => {
                let seen = self.supporters.values().map(|s| s.seen).max().unwrap_or(0);
                let epoch = epoch.max(seen).max(self.voted) + 1;
                self.voted = epoch;
                info!(
                    "campaigning at epoch {epoch}: {} supporters of {voters} voters",
                    self.supporters.len()
                );
                self.campaign = Some(Campaign {
                    epoch,
                    asked_at: now,
                    give_up_at: now + give_up,
                });
                for s in self.supporters.values_mut() {
                    s.asked = Some(now);
                }
                Next::Ask(epoch, self.supporters.keys().copied().collect())
            }
            Some(c) if now >= c.give_up_at => {
                // Not elected in time (the votes split between candidates, or too few came):
                // a fresh campaign at a higher epoch, after a delay drawn per standby so that
                // rivals do not stay in step. Standbys that voted are asked again; slaves that
                // voted serve us at the old epoch and cannot be: they go.
                let (epoch, granted) = (c.epoch, self.granted().count());
                info!(
                    "not elected at epoch {epoch} (its own vote and {granted} more of {voters} \
                     voters): trying again at a higher epoch"
                );
                self.campaign = None;
                let gone = self.release_voters();
                for s in self.supporters.values_mut() {
                    (s.asked, s.voted) = (None, None);
                }
                Next::Release(gone)
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
            info!(
                "supporter '{}' refused its vote for epoch {}",
                s.id, c.epoch
            );
            return Next::Nothing;
        }
        if stale {
            warn!(
                "supporter '{}' says this standby is out of step with the primary it followed",
                s.id
            );
        }
        let granted = self.granted().count();
        if 1 + granted > voters / 2 {
            info!(
                "elected at epoch {}: its own vote and {granted} more of {voters} voters",
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

    /// The primary's word (STALE): it counts `voters` voters and says standbys `ids` are out
    /// of step (generation `gen`).
    pub fn told(&mut self, gen: u64, voters: u16, ids: &[String]) {
        self.told = usize::from(voters);
        if gen > self.stale_gen || self.stale_gen == 0 {
            (self.stale_gen, self.stale_ids) = (gen, ids.to_vec());
        }
    }

    /// Another standby, counting `voters` voters, asks our vote to take over at `epoch`
    /// (`seen`: the highest epoch this standby has seen). The slaves' rules: only for an epoch
    /// above every one seen, voted or campaigned at; only for a candidate that counts at least
    /// the voters our primary told us; only once our own promise to the primary has run out.
    /// Granted, a campaign of ours is over, and none that counts on other standbys starts for
    /// `pause` and up to as much again (drawn). Returns whether it is granted (or why not), and
    /// whether our primary said the candidate is out of step.
    pub fn grant(
        &mut self,
        epoch: u64,
        seen: u64,
        voters: usize,
        id: &str,
        pause: Duration,
        now: Instant,
    ) -> (Result<(), String>, bool) {
        let stale = self.stale_ids.iter().any(|s| s == id);
        let above = seen.max(self.voted);
        let refusal = if epoch <= above {
            Some(format!("epoch {epoch} is not above {above}"))
        } else if voters < self.told {
            Some(format!(
                "it counts {voters} voters, our primary counted {}",
                self.told
            ))
        } else if !self.counts_itself(now) {
            Some("our promise to the primary still holds".to_string())
        } else {
            None
        };
        if let Some(why) = refusal {
            return (Err(why), stale);
        }
        self.voted = epoch;
        let quiet = pause.mul_f64(1.0 + self.jitter());
        self.quiet_until = Some(now + quiet);
        if let Some(c) = self.campaign.take() {
            info!(
                "giving up our campaign at epoch {}: voted for epoch {epoch}",
                c.epoch
            );
        }
        (Ok(()), stale)
    }

    /// The slaves that voted for us (in a campaign now over): they serve us at its epoch, and
    /// must go look for a master again.
    pub fn release_voters(&mut self) -> Vec<ConnId> {
        let gone: Vec<ConnId> = (self.supporters.iter())
            .filter(|(_, s)| !s.master && s.voted == Some(true))
            .map(|(&c, _)| c)
            .collect();
        for c in &gone {
            self.supporters.remove(c);
        }
        gone
    }

    /// A primary took us as its standby: every supporter goes to look for it (or another
    /// master) too, and a campaign of ours is over. Returns the supporters' connections.
    pub fn release_all(&mut self) -> Vec<ConnId> {
        if let Some(c) = self.campaign.take() {
            info!(
                "a primary serves: giving up our campaign at epoch {}",
                c.epoch
            );
        }
        let gone: Vec<ConnId> = self.supporters.keys().copied().collect();
        if !gone.is_empty() {
            info!("a primary serves: letting our {} supporters go", gone.len());
        }
        self.supporters.clear();
        gone
    }

    /// A fraction in [0, 1) that differs between masters (`seed`) and between calls.
    pub fn jitter(&mut self) -> f64 {
        self.draws = self.draws.wrapping_add(1);
        let mut x = self.seed ^ self.draws.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        (x >> 11) as f64 / (1u64 << 53) as f64
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
        assert!(e.promise(t0, LEASE, 1, 7));
        e.support(1, "s1".into(), 11, 3, false);
        assert_eq!(e.tick(t0, 5, 3, RETRY), Next::Nothing, "still promised");
        e.withdraw("a supporter came");
        assert!(!e.promise(t0, LEASE, 1, 7), "withdrawn: no more promises");
        assert_eq!(
            e.tick(t0 + LEASE, 5, 3, RETRY),
            Next::Nothing,
            "two of five"
        );
        e.support(2, "s2".into(), 12, 4, false);
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
    fn a_standby_that_withdrew_supports_the_primary_again_unless_it_campaigns() {
        let t0 = Instant::now();
        let mut e = Election::default();
        e.withdraw("silence");
        e.support(1, "s1".into(), 1, 1, false);
        // Itself and one slave of three voters: a campaign.
        assert_eq!(e.tick(t0, 3, 1, RETRY), Next::Ask(2, vec![1]));
        e.rejoin();
        assert!(e.withdrawn, "a campaign counts on it");
        assert_eq!(e.release_all(), vec![1]);
        e.rejoin();
        assert!(!e.withdrawn);
        assert!(e.promise(t0, LEASE, 1, 7));
        // One vote per epoch: it campaigned at 2, so it grants only above.
        e.withdraw("silence");
        let later = t0 + LEASE;
        assert!(e.grant(2, 1, 3, "b", LEASE, later).0.is_err());
        e.told(1, 5, &["b".to_string()]);
        let (verdict, stale) = e.grant(3, 1, 3, "b", LEASE, later);
        assert!(verdict.is_err(), "counts 3 voters, the primary said 5");
        assert!(stale, "the primary said b is out of step");
        assert!(e.grant(3, 1, 5, "b", LEASE, later).0.is_ok());
        assert_eq!(e.voted, 3);
        assert!(
            e.grant(3, 1, 5, "c", LEASE, later).0.is_err(),
            "one vote per epoch"
        );
        // Three voters: it and one supporter are a majority.
        e.support(7, "127.0.0.1:9 x".into(), 1, 1, true);
        assert_eq!(
            e.tick(later, 3, 1, RETRY),
            Next::Nothing,
            "having voted, it counts on no other standby for a while"
        );
        e.gone(7);
        e.support(8, "s8".into(), 1, 1, false);
        assert_eq!(
            e.tick(later, 3, 1, RETRY),
            Next::Ask(4, vec![8]),
            "slaves alone may elect it, above the epoch it voted for"
        );
    }

    /// A standby that never had the roster counts 2 masters and its 1 supporter: 3 voters, of
    /// which it and the supporter are a majority. The supporter's primary counted 5: its
    /// refusal says so, and the standby needs 3 of 5 from then on.
    #[test]
    fn a_standby_counts_the_voters_a_supporters_primary_counted() {
        let t0 = Instant::now();
        let mut e = Election::default();
        e.withdraw("no primary");
        e.support(1, "s0".into(), 10, 1, false);
        assert_eq!(e.tick(t0, 3, 1, RETRY), Next::Ask(2, vec![1]));
        assert_eq!(e.vote(1, false, false, 5, 3), Next::Nothing);
        assert_eq!(e.voters(3), 5);
        assert_eq!(
            e.tick(t0 + RETRY, 3, 1, RETRY),
            Next::Nothing,
            "two of five"
        );
        // A grant from a slave that was never told a count cannot elect it either.
        e.support(2, "s9".into(), 11, 1, false);
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

    /// RELEASED voids the promises given on its own link to requests below its number, and
    /// nothing else: not from a primary that holds its lease (0), not one that predates the
    /// last promise, not one from another link.
    #[test]
    fn a_release_voids_only_the_promises_on_its_link_to_earlier_requests() {
        let t0 = Instant::now();
        let mut e = Election::default();
        assert!(e.promise(t0, LEASE, 1, 10));
        assert!(!e.wants_release(t0, 1), "not withdrawn: nothing to ask");
        e.withdraw("a majority of supporters");
        assert!(!e.counts_itself(t0));
        assert!(e.wants_release(t0, 1));
        assert!(!e.wants_release(t0, 2), "no promise on that link");
        assert!(
            !e.release(1, 0),
            "a primary that holds its lease releases nothing"
        );
        assert!(!e.release(1, 10), "request 10 is not below 10");
        assert!(!e.release(2, 100), "another link");
        assert!(!e.counts_itself(t0));
        assert!(e.release(1, 11));
        assert!(
            e.counts_itself(t0),
            "released: no need to wait for the lease"
        );
        assert!(!e.wants_release(t0, 1));
    }

    /// A standby released, that supports the primary again (it is heard, the supporters
    /// left), promises again; the old release, delivered twice or late, cannot void that.
    #[test]
    fn an_old_release_cannot_void_a_promise_given_since() {
        let t0 = Instant::now();
        let mut e = Election::default();
        assert!(e.promise(t0, LEASE, 1, 10));
        e.withdraw("a majority of supporters");
        assert!(e.release(1, 11));
        e.rejoin();
        let t1 = t0 + RETRY;
        assert!(e.promise(t1, LEASE, 1, 12));
        e.withdraw("a majority of supporters again");
        assert!(!e.release(1, 11), "the old release again");
        assert!(!e.counts_itself(t1 + LEASE - RETRY));
        assert!(e.counts_itself(t1 + LEASE));
    }

    /// Promises given on an earlier link (the primary counts them on a connection of its
    /// own) run out only with time, whatever a release on a later link says.
    #[test]
    fn a_release_on_a_new_link_leaves_the_promises_of_the_old_one() {
        let t0 = Instant::now();
        let mut e = Election::default();
        assert!(e.promise(t0, LEASE, 1, 10));
        let t1 = t0 + RETRY;
        assert!(
            e.promise(t1, LEASE, 2, 3),
            "a new link, its requests numbered anew"
        );
        e.withdraw("a majority of supporters");
        assert!(e.release(2, 4));
        assert!(
            !e.counts_itself(t1),
            "link 1's promise holds until t0 + LEASE"
        );
        assert!(e.counts_itself(t0 + LEASE));
    }
}

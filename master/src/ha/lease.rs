//! The primary's lease: it serves only while a majority of the cluster's voters (the masters
//! and the slaves of the roster) have promised to support no other master. Every
//! `lease / 4` the primary PINGs every voter it reaches (its slaves, its standbys); an answer
//! to a PING sent at `t` is a promise until `t + lease` (the voter counts from when it got the
//! PING, later than `t`, so the primary's count ends first). The primary counts itself.
//!
//! It also keeps the word it gives the slaves about standbys that are out of step (STALE): a
//! standby that stops confirming the stream (frozen, gone, cut off) can no longer be trusted to
//! know every write, so before any write is acknowledged without it, a majority of voters must
//! know it is stale (they then tell it so if it asks for their votes, and it recovers from the
//! slaves instead of trusting its map).
//!
//! A primary that has lost its lease may *release* a standby that asks (RELEASE: it withdrew,
//! and the slaves that left us are with it): from then on it counts none of that standby's
//! answers to the requests it sent before (their ids are below the number RELEASED gives), and
//! the standby may drop those promises at once instead of waiting for them to run out. The
//! primary's count of them ends when it releases, before the standby hears of it, as a promise
//! that runs out ends for the primary first. A primary that holds its lease releases nothing.
//!
//! STALE also carries the cluster's voter count, and a slave that has not confirmed the count
//! the primary has now gets a STALE instead of a PING: so every slave knows how many voters
//! its primary counts, and refuses its vote to a standby that counts fewer (one that never had
//! the roster, say, and would otherwise call two votes a majority of three).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::keymap::SlaveIdx;
use crate::outbox::ConnId;

/// Request ids of the lease's PINGs and STALEs: far above any sub-request's.
const FIRST_REQ: u64 = 1 << 62;
/// PINGs whose answers are still worth counting: the ones sent within the lease.
const MAX_SENT: usize = 4096;

/// A voter the primary reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Voter {
    Slave(SlaveIdx),
    /// A standby, by its connection to our heartbeat socket.
    Standby(ConnId),
}

#[derive(Debug, Clone, Copy)]
struct Promise {
    until: Instant,
    /// The STALE generation this voter has confirmed.
    gen: u64,
    /// The voter count the last STALE it answered carried (0: none yet).
    told: usize,
    /// Its answers to requests below this id promise nothing (it was released: see
    /// [`Lease::release`]); 0: none released.
    floor: u64,
}

pub(crate) struct Lease {
    /// Request id of each PING or STALE sent, with when it was sent, the generation it
    /// carried, and the voter count (a STALE's; 0 for a PING).
    sent: BTreeMap<u64, (Instant, u64, usize)>,
    next_req: u64,
    promises: HashMap<Voter, Promise>,
    /// The cluster's voters, this primary included.
    voters: usize,
    /// The count STALE tells the voters (0: `voters`); see [`Lease::set_told`].
    told: usize,
    /// Until when a majority's promises hold (None: they do not now).
    valid_until: Option<Instant>,
    /// No other voter counts (a lone master): the lease always holds.
    alone: bool,
    /// A majority has confirmed the current STALE generation.
    settled: bool,
    /// The standbys (ids) said to be out of step, and the generation of that word.
    pub stale: Vec<String>,
    pub gen: u64,
    /// Since when this primary has been without a majority (None: it has one).
    lost_since: Option<Instant>,
}

impl Default for Lease {
    /// A lone master's: it holds until voters are counted.
    fn default() -> Lease {
        Lease {
            sent: BTreeMap::new(),
            next_req: FIRST_REQ,
            promises: HashMap::new(),
            voters: 1,
            told: 0,
            valid_until: None,
            alone: true,
            settled: true,
            stale: Vec::new(),
            gen: 0,
            lost_since: None,
        }
    }
}

impl Lease {
    /// A request id for a PING to a voter, sent now.
    pub fn ping(&mut self, now: Instant) -> u64 {
        self.request(now, 0)
    }

    /// A request id for a STALE to a voter, sent now (it carries the voter count told).
    pub fn stale_word(&mut self, now: Instant) -> u64 {
        self.request(now, self.told())
    }

    /// The voter count STALE tells: the voters, or for a lone primary (which needs no lease)
    /// itself and the slaves of its roster. A slave refuses its vote to a standby that counts
    /// fewer: a standby of no master (a `--backup-of` typo) counting itself, the primary and
    /// the one slave that came to it cannot call that a majority while the primary serves the
    /// others; a standby that did attach counts two masters and the roster, more than that.
    pub fn told(&self) -> usize {
        match self.told {
            0 => self.voters,
            n => n,
        }
    }

    /// Tell `told` voters instead of the count of [`Lease::set_voters`] (0: that count).
    pub fn set_told(&mut self, told: usize) {
        self.told = if told == self.voters { 0 } else { told };
    }

    fn request(&mut self, now: Instant, voters: usize) -> u64 {
        self.next_req += 1;
        self.sent.insert(self.next_req, (now, self.gen, voters));
        if self.sent.len() > MAX_SENT {
            self.sent.pop_first();
        }
        self.next_req
    }

    /// Whether `req` is one of the lease's requests.
    pub fn owns(req: u64) -> bool {
        req > FIRST_REQ
    }

    /// The cluster has `voters` voters now (this primary included).
    pub fn set_voters(&mut self, voters: usize) {
        if self.voters != voters {
            self.voters = voters;
            self.recompute();
        }
    }

    pub fn voters(&self) -> usize {
        self.voters
    }

    /// `voter` answered request `req` (PONG).
    pub fn pong(&mut self, voter: Voter, req: u64, lease: Duration) {
        let Some(&(sent, gen, told)) = self.sent.get(&req) else {
            return;
        };
        let p = self.promises.entry(voter).or_insert(Promise {
            until: sent,
            gen,
            told: 0,
            floor: 0,
        });
        // An answer to a request sent before the voter was released still says what it
        // knows (the word, the count), but it is no promise.
        if req >= p.floor {
            p.until = p.until.max(sent + lease);
        }
        p.gen = p.gen.max(gen);
        if told != 0 {
            p.told = told;
        }
        self.recompute();
    }

    /// `voter` promised support until `until` (its vote in our election).
    pub fn seed(&mut self, voter: Voter, until: Instant) {
        let p = self.promises.entry(voter).or_insert(Promise {
            until,
            gen: 0,
            told: 0,
            floor: 0,
        });
        p.until = p.until.max(until);
        self.recompute();
    }

    /// Voters needed for a majority, this primary included.
    fn needed(&self) -> usize {
        self.voters / 2 + 1
    }

    fn recompute(&mut self) {
        let need = self.needed();
        self.alone = need <= 1;
        if self.alone {
            self.settled = true;
            return;
        }
        let mut untils: Vec<Instant> = self.promises.values().map(|p| p.until).collect();
        untils.sort_unstable_by(|a, b| b.cmp(a));
        // Counting itself, the primary needs `need - 1` promises: the lease holds until the
        // `need - 1`th latest runs out.
        self.valid_until = untils.get(need - 2).copied();
        let confirmed = 1 + self.promises.values().filter(|p| p.gen >= self.gen).count();
        self.settled = self.gen == 0 || confirmed >= need;
    }

    /// Whether a majority supports this primary at `now`.
    #[inline]
    pub fn holds(&self, now: Instant) -> bool {
        self.alone || self.valid_until.is_some_and(|u| now < u)
    }

    /// A standby asks to be released from its promises (RELEASE): unless the lease holds at
    /// `now`, stop counting `voter`'s promises, its answers to every request sent so far
    /// included. Returns the id below which its answers no longer count (RELEASED), 0 if
    /// nothing was released (the lease holds: its promises are part of it, or may be again).
    pub fn release(&mut self, voter: Voter, now: Instant) -> u64 {
        if self.holds(now) {
            return 0;
        }
        let below = self.next_req + 1;
        let p = self.promises.entry(voter).or_insert(Promise {
            until: now,
            gen: 0,
            told: 0,
            floor: 0,
        });
        p.until = p.until.min(now);
        p.floor = below;
        self.recompute();
        below
    }

    /// Record whether the lease holds now; returns for how long it has not.
    pub fn check(&mut self, now: Instant) -> Option<Duration> {
        if self.holds(now) {
            self.lost_since = None;
            return None;
        }
        let since = *self.lost_since.get_or_insert(now);
        Some(now.saturating_duration_since(since))
    }

    /// Say standby `id` is out of step (or, with `stale: false`, in step again): a new
    /// generation, to be sent to every voter. Returns whether anything changed.
    pub fn set_stale(&mut self, id: &str, stale: bool) -> bool {
        let has = self.stale.iter().any(|s| s == id);
        if has == stale {
            return false;
        }
        match stale {
            true => self.stale.push(id.to_string()),
            false => self.stale.retain(|s| s != id),
        }
        self.gen += 1;
        self.recompute();
        true
    }

    /// `voter` may not know the voter count any more (a new connection).
    pub fn untold(&mut self, voter: Voter) {
        if let Some(p) = self.promises.get_mut(&voter) {
            p.told = 0;
        }
    }

    /// Whether a voter has confirmed the current STALE generation and voter count (if not,
    /// it gets a STALE rather than a PING).
    pub fn confirmed(&self, voter: Voter) -> bool {
        let p = self.promises.get(&voter);
        let gen = self.gen == 0 || p.is_some_and(|p| p.gen >= self.gen);
        gen && p.is_some_and(|p| p.told == self.told())
    }

    /// Whether a majority has confirmed the current STALE generation (so a write may be
    /// acknowledged without the standbys it names).
    #[inline]
    pub fn stale_settled(&self) -> bool {
        self.settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(400);

    #[test]
    fn a_majority_of_fresh_promises_holds_the_lease_until_they_run_out() {
        let t0 = Instant::now();
        let mut l = Lease::default();
        // Five voters: this primary, a standby, three slaves.
        l.set_voters(5);
        assert!(!l.holds(t0));
        let a = l.ping(t0);
        let b = l.ping(t0);
        l.pong(Voter::Slave(0), a, LEASE);
        assert!(!l.holds(t0), "two of five");
        l.pong(Voter::Slave(1), b, LEASE);
        assert!(l.holds(t0), "three of five");
        // Promises run from when the PING was sent, however late the answer.
        assert!(l.holds(t0 + LEASE - Duration::from_millis(1)));
        assert!(!l.holds(t0 + LEASE));
        assert_eq!(l.check(t0 + LEASE), Some(Duration::ZERO));
        assert_eq!(l.check(t0 + LEASE * 2), Some(LEASE), "lost for a lease");
        // An answer to an unknown request counts for nothing.
        l.pong(Voter::Slave(2), 7, LEASE);
        assert!(!l.holds(t0 + LEASE));
        // More voters need more promises.
        let c = l.ping(t0 + LEASE);
        l.pong(Voter::Standby(9), c, LEASE);
        assert!(!l.holds(t0 + LEASE), "one of five, the others ran out");
        l.set_voters(1);
        assert!(l.holds(t0 + LEASE * 10), "alone, it needs nobody");
    }

    #[test]
    fn a_stale_word_settles_once_a_majority_has_confirmed_it() {
        let t0 = Instant::now();
        let mut l = Lease::default();
        l.set_voters(5);
        assert!(l.stale_settled());
        assert!(l.set_stale("b", true));
        assert!(!l.set_stale("b", true), "already said");
        assert!(!l.stale_settled());
        let r1 = l.stale_word(t0);
        let r2 = l.stale_word(t0);
        l.pong(Voter::Slave(0), r1, LEASE);
        assert!(!l.stale_settled());
        assert!(l.confirmed(Voter::Slave(0)));
        assert!(!l.confirmed(Voter::Slave(1)));
        l.pong(Voter::Slave(1), r2, LEASE);
        assert!(l.stale_settled());
        assert!(l.set_stale("b", false));
        assert_eq!(l.stale, Vec::<String>::new());
    }

    #[test]
    fn every_slave_is_told_the_voter_count_again_when_it_changes_or_reconnects() {
        let t0 = Instant::now();
        let mut l = Lease::default();
        l.set_voters(5);
        let s = Voter::Slave(0);
        assert!(!l.confirmed(s), "never told");
        let r = l.ping(t0);
        l.pong(s, r, LEASE);
        assert!(!l.confirmed(s), "a PING says no count");
        let r = l.stale_word(t0);
        l.pong(s, r, LEASE);
        assert!(l.confirmed(s));
        let r = l.ping(t0);
        l.pong(s, r, LEASE);
        assert!(l.confirmed(s), "a PING does not unsay it");
        l.set_voters(6);
        assert!(!l.confirmed(s), "a new slave in the roster");
        let r = l.stale_word(t0);
        l.pong(s, r, LEASE);
        assert!(l.confirmed(s));
        l.untold(s);
        assert!(!l.confirmed(s), "a new connection");
        // An answer to a STALE sent before the count changed tells the old count.
        let r = l.stale_word(t0);
        l.set_voters(5);
        l.pong(s, r, LEASE);
        assert!(!l.confirmed(s));
    }

    #[test]
    fn a_standby_is_released_only_without_the_lease_and_only_from_older_promises() {
        let t0 = Instant::now();
        let mut l = Lease::default();
        // Five voters: this primary, a standby, three slaves.
        l.set_voters(5);
        let b = Voter::Standby(9);
        let (a, r) = (l.ping(t0), l.ping(t0));
        l.pong(Voter::Slave(0), a, LEASE);
        l.pong(b, r, LEASE);
        assert!(l.holds(t0), "itself, a slave and the standby");
        assert_eq!(l.release(b, t0), 0, "the lease holds: nothing released");
        assert!(l.holds(t0), "and it still holds");
        // The slave's promise runs out; the standby's alone is no majority.
        let t1 = t0 + LEASE;
        let late = l.ping(t1);
        let answered = l.ping(t1);
        l.pong(b, answered, LEASE);
        assert!(!l.holds(t1));
        let below = l.release(b, t1);
        assert!(below > late, "every request sent so far is below it");
        // Answers to requests sent before the release promise nothing, however late.
        l.pong(b, late, LEASE);
        let s = l.ping(t1);
        assert!(s >= below);
        l.pong(Voter::Slave(1), s, LEASE);
        assert!(!l.holds(t1), "the standby's old promises do not count");
        // A promise given after the release does: the primary can get its lease back.
        let fresh = l.ping(t1);
        l.pong(b, fresh, LEASE);
        assert!(l.holds(t1));
        assert!(!l.holds(t1 + LEASE));
    }
}

//! Which master address the slave tries next, and how long it waits first: the addresses in
//! turn (the primary, then fallbacks such as the backup master), with a backoff that doubles
//! from 20 ms to 1 s on every failure and starts over once a master registers us.
//!
//! It also keeps the *round*: which addresses have been tried since the slave last served a
//! primary (or started, or gave up supporting a standby). A standby that would take the slave
//! as its supporter is only worth staying with once every address has been tried: until
//! then a primary may be one address on (a slave started with the standby first in its list,
//! or restarted with the whole cluster while another master is primary), and a slave that
//! stays with the standby helps elect a master nobody needed, or waits there for a vote.

use std::net::SocketAddr;
use std::time::Duration;

/// The first wait after a failure, and the wait again after a master registered us.
pub const MIN_BACKOFF: Duration = Duration::from_millis(20);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Dialer {
    masters: Vec<SocketAddr>,
    /// Index into `masters` of the address to try next.
    next: usize,
    /// The wait before the attempt after the next failure.
    backoff: Duration,
    /// Per address: tried (it failed, was lost, or was a standby) in the current round.
    tried: Vec<bool>,
}

impl Dialer {
    /// Panics if `masters` is empty: a slave with no master to try has nothing to do.
    pub fn new(masters: Vec<SocketAddr>) -> Dialer {
        assert!(
            !masters.is_empty(),
            "a slave needs at least one master address"
        );
        let tried = vec![false; masters.len()];
        Dialer {
            masters,
            next: 0,
            backoff: MIN_BACKOFF,
            tried,
        }
    }

    /// The address to try now.
    pub fn target(&self) -> SocketAddr {
        self.masters[self.next]
    }

    /// The attempt at [`Dialer::target`] failed, or a connection through it was lost: move on
    /// to the next address. Returns how long to wait before trying it.
    pub fn failed(&mut self) -> Duration {
        self.tried[self.next] = true;
        self.next = (self.next + 1) % self.masters.len();
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        wait
    }

    /// A master registered us: the next failure waits only [`MIN_BACKOFF`] again, and a new
    /// round begins.
    pub fn registered(&mut self) {
        self.backoff = MIN_BACKOFF;
        self.tried.fill(false);
    }

    /// Whether an address other than [`Dialer::target`] has not been tried in this round.
    pub fn untried_remain(&self) -> bool {
        self.tried
            .iter()
            .enumerate()
            .any(|(i, &t)| i != self.next && !t)
    }

    /// [`Dialer::target`] answered as a standby while other addresses remain untried: mark it
    /// tried and move on at once (no failure, so no longer wait).
    pub fn pass_over(&mut self) {
        self.tried[self.next] = true;
        self.next = (self.next + 1) % self.masters.len();
    }

    /// Begin a new round at the next address (after giving up a standby): the one given up
    /// counts as tried.
    pub fn new_round(&mut self) {
        self.tried.fill(false);
        self.backoff = MIN_BACKOFF;
        self.pass_over();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 7000 + i)))
            .collect()
    }

    #[test]
    fn addresses_in_turn_with_a_backoff_that_doubles_to_a_second() {
        let mut d = Dialer::new(addrs(2));
        assert_eq!(d.target().port(), 7000);
        let mut waits = Vec::new();
        for _ in 0..8 {
            waits.push(d.failed().as_millis());
        }
        assert_eq!(waits, [20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(d.target().port(), 7000, "8 failures over 2 addresses");
        d.failed();
        assert_eq!(d.target().port(), 7001);
        d.registered();
        assert_eq!(d.failed(), MIN_BACKOFF);
        assert_eq!(d.target().port(), 7000);
    }

    #[test]
    fn a_round_ends_when_every_address_was_tried() {
        let mut d = Dialer::new(addrs(3));
        assert!(d.untried_remain(), "nothing tried yet");
        d.pass_over(); // 7000 was a standby
        assert_eq!(d.target().port(), 7001);
        assert!(d.untried_remain(), "7002 not tried");
        d.failed(); // 7001 unreachable
        assert_eq!(d.target().port(), 7002);
        assert!(
            !d.untried_remain(),
            "7000 and 7001 tried: a standby at 7002 is kept"
        );
        d.registered();
        assert!(d.untried_remain(), "registered: a new round");
        // Lost the primary at 7002: it counts as tried, and so does 7000 once it is a standby.
        d.failed();
        assert_eq!(d.target().port(), 7000);
        assert!(d.untried_remain(), "7001 not tried in this round");
        d.pass_over();
        assert!(!d.untried_remain());
        // Giving a standby up begins a round that counts it tried.
        d.new_round();
        assert_eq!(d.target().port(), 7002);
        assert!(d.untried_remain());
        d.pass_over();
        assert!(!d.untried_remain(), "7001 was given up, 7002 passed over");
    }

    #[test]
    fn one_address_is_never_passed_over() {
        let d = Dialer::new(addrs(1));
        assert!(!d.untried_remain(), "no other address to try");
    }
}

//! Which master address the slave tries next, and how long it waits first: the addresses in
//! turn (the primary, then fallbacks such as the backup master), with a backoff that doubles
//! from 20 ms to 1 s on every failure and starts over once a master registers us.

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
}

impl Dialer {
    /// Panics if `masters` is empty: a slave with no master to try has nothing to do.
    pub fn new(masters: Vec<SocketAddr>) -> Dialer {
        assert!(
            !masters.is_empty(),
            "a slave needs at least one master address"
        );
        Dialer {
            masters,
            next: 0,
            backoff: MIN_BACKOFF,
        }
    }

    /// The address to try now.
    pub fn target(&self) -> SocketAddr {
        self.masters[self.next]
    }

    /// The attempt at [`Dialer::target`] failed, or a connection through it was lost: move on
    /// to the next address. Returns how long to wait before trying it.
    pub fn failed(&mut self) -> Duration {
        self.next = (self.next + 1) % self.masters.len();
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        wait
    }

    /// A master registered us: the next failure waits only [`MIN_BACKOFF`] again.
    pub fn registered(&mut self) {
        self.backoff = MIN_BACKOFF;
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
}

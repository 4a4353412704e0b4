//! Whether a client's next request may be read, by the buffer budgets (`--max-client-memory`,
//! `--max-buffer-memory`): the rule alone, with the figures the event loop counts handed in.
//!
//! Under the global budget, a client may have requests read while what it holds (replies
//! queued for it plus what its requests in flight may bring back) is under its share. Over the
//! budget, a client that holds nothing may still have one request read at a time, so clients
//! that sit on their share by not reading cannot starve the others; but only while that
//! request keeps the total within the slack of two largest frames: a request that may bring
//! back a large value within one, a small one within two, so clients sitting on large unread
//! replies leave room for small requests. However many clients there are, the total so never
//! passes the budget plus two largest frames (given that a request reserves what it brings
//! back; see the README's limits). Clients that fill the slack and do not read are cut off
//! after `--stalled-client-ms` (`stalls.rs`), which frees it.

/// The budgets, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    /// `--max-client-memory`.
    pub client: usize,
    /// `--max-buffer-memory`.
    pub total: usize,
    /// The largest frame (a value of `--max-value` with a key of `--max-key`).
    pub frame: usize,
    /// What a small request reserves (a READ of a small or unknown value).
    pub small: usize,
}

impl Share {
    /// Whether a client holding `own` bytes, when everyone's hold `total`, may have its next
    /// request read. `cost`: what that request would reserve, asked only when it matters
    /// (`None`: no header in yet, nothing to judge).
    pub fn may_read(&self, own: usize, total: usize, cost: impl FnOnce() -> Option<usize>) -> bool {
        if own > 0 {
            return own < self.client && total < self.total;
        }
        if total < self.total {
            return true;
        }
        let Some(cost) = cost() else {
            return true;
        };
        let room = match cost > self.small {
            true => self.frame,
            false => 2 * self.frame,
        };
        total + cost <= self.total + room
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;
    const SHARE: Share = Share {
        client: 4 * MIB,
        total: 16 * MIB,
        frame: MIB + 1024,
        small: 4096,
    };

    #[test]
    fn under_the_budget_a_client_has_its_share() {
        assert!(SHARE.may_read(0, 0, || panic!("not asked")));
        assert!(SHARE.may_read(4 * MIB - 1, 10 * MIB, || panic!("not asked")));
        assert!(!SHARE.may_read(4 * MIB, 10 * MIB, || panic!("not asked")));
        // Over the budget, a client that holds anything waits.
        assert!(!SHARE.may_read(1, 16 * MIB, || panic!("not asked")));
    }

    #[test]
    fn over_the_budget_one_request_at_a_time_within_the_slack() {
        let large = || Some(MIB);
        let small = || Some(4096);
        assert!(SHARE.may_read(0, 16 * MIB, large));
        assert!(SHARE.may_read(0, 16 * MIB + 1024, large));
        assert!(!SHARE.may_read(0, 16 * MIB + 1025, large));
        // Where large requests stop, small ones go on, up to the second frame.
        assert!(SHARE.may_read(0, 17 * MIB, small));
        assert!(SHARE.may_read(0, 18 * MIB + 2048 - 4096, small));
        assert!(!SHARE.may_read(0, 18 * MIB + 2048 - 4095, small));
        // Nothing to judge yet: read on (at most one frame is buffered).
        assert!(SHARE.may_read(0, 100 * MIB, || None));
    }

    #[test]
    fn however_many_clients_the_total_stays_within_two_frames_past_the_budget() {
        // Clients that never read, each asking a large or a small value in turn: each is read
        // only when it may be, and holds what it asked from then on.
        let mut total = 0;
        let mut holding = vec![0usize; 10_000];
        for (i, own) in holding.iter_mut().enumerate() {
            let cost = if i % 3 == 0 { 4096 } else { MIB };
            if SHARE.may_read(*own, total, || Some(cost)) {
                *own += cost;
                total += cost;
            }
            assert!(total <= SHARE.total + 2 * SHARE.frame, "{total} after {i}");
        }
        assert!(
            total > SHARE.total + SHARE.frame - MIB,
            "the slack was used: {total}"
        );
    }
}

//! Replies held back for clients that are still owed more, so that they go out together with
//! the rest of that client's replies, for at most `--coalesce-us` (see `server.rs`).

use std::time::{Duration, Instant};

pub(crate) struct Held {
    /// Connections (slab keys) whose queued replies wait.
    conns: Vec<usize>,
    /// When the oldest hold began.
    since: Option<Instant>,
    limit: Duration,
}

impl Held {
    /// Holds that last at most `limit` (zero: never hold).
    pub fn new(limit: Duration) -> Held {
        Held {
            conns: Vec::new(),
            since: None,
            limit,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Whether replies may be held now: holding is on and the oldest hold is young enough.
    pub fn may_hold(&self) -> bool {
        !self.limit.is_zero() && self.since.is_none_or(|since| since.elapsed() < self.limit)
    }

    pub fn hold(&mut self, conn: usize) {
        if self.conns.is_empty() {
            self.since = Some(Instant::now());
        }
        self.conns.push(conn);
    }

    /// Move into `due` the held connections for which `still_held` is false (their last
    /// reply came, or they are gone).
    pub fn release_some(&mut self, still_held: impl Fn(usize) -> bool, due: &mut Vec<usize>) {
        let mut i = 0;
        while i < self.conns.len() {
            if still_held(self.conns[i]) {
                i += 1;
            } else {
                due.push(self.conns.swap_remove(i));
            }
        }
        if self.conns.is_empty() {
            self.since = None;
        }
    }

    /// Every held connection, to write now.
    pub fn release_all(&mut self) -> Vec<usize> {
        self.since = None;
        std::mem::take(&mut self.conns)
    }
}

//! The primary's records of exactly-once writes (WRITE_ONCE, and SET, DELETE and INCR sent in
//! ONCE; `wire/PROTOCOL.md` section 6):
//! per client, the final answer of each of its recent writes, so that a write sent again gets
//! its first answer instead of taking effect twice. Only definite answers are kept (OK,
//! DEGRADED, and the refusals that mean the write did not happen); a write whose outcome this
//! master cannot vouch for has no record, and sent again it is looked up on the slaves
//! (RECALL) before it is applied. Collection: a record goes when the client's `acked` passes it,
//! beyond the [`PER_CLIENT`] highest numbers of one client, or with its client after [`IDLE`];
//! all of them when this master steps down. No I/O; the clock is passed in.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use dsm_wire::{Body, ErrorCode, WriteId};

/// Answers kept per client at most (the slaves keep as many: `slave/src/writers.rs`).
pub const PER_CLIENT: usize = 1024;
/// A client that sent no WRITE_ONCE for this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(60);
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// What the records say of a WRITE_ONCE that just arrived.
#[derive(Debug, PartialEq)]
pub(crate) enum Seen {
    /// Never answered here: apply it (after a RECALL, if it was sent before).
    New,
    /// Answered before: this is the answer, again.
    Answered(Body),
    /// Below the client's own `acked`: the client said it would never send it again.
    Stale,
}

#[derive(Default)]
pub(crate) struct Records {
    clients: HashMap<u64, Client>,
    next_sweep: Option<Instant>,
}

struct Client {
    acked: u64,
    last: Instant,
    answers: BTreeMap<u64, Body>,
}

impl Records {
    /// A WRITE_ONCE `id` arrived: note the client's `acked` (forgetting what it passes) and say
    /// what is known of the write.
    pub fn arrived(&mut self, id: WriteId, now: Instant) -> Seen {
        self.sweep(now);
        let c = self.clients.entry(id.client).or_insert_with(|| Client {
            acked: 0,
            last: now,
            answers: BTreeMap::new(),
        });
        c.last = now;
        if id.acked > c.acked {
            c.acked = id.acked;
            c.answers = c.answers.split_off(&id.acked);
        }
        if id.seq < c.acked {
            return Seen::Stale;
        }
        match c.answers.get(&id.seq) {
            Some(answer) => Seen::Answered(answer.clone()),
            None => Seen::New,
        }
    }

    /// What is known of `id` now (a copy queued behind the first one looks when its turn comes).
    pub fn answer(&self, id: WriteId) -> Option<Body> {
        self.clients.get(&id.client)?.answers.get(&id.seq).cloned()
    }

    /// The write `id` was answered `reply`: keep it if it is a definite outcome.
    pub fn answered(&mut self, id: WriteId, reply: &Body, now: Instant) {
        if !definite(reply) {
            return;
        }
        let c = self.clients.entry(id.client).or_insert_with(|| Client {
            acked: 0,
            last: now,
            answers: BTreeMap::new(),
        });
        if id.seq < c.acked {
            return;
        }
        c.answers.insert(id.seq, reply.clone());
        while c.answers.len() > PER_CLIENT {
            c.answers.pop_first();
        }
    }

    /// This master stepped down: a later term learns nothing from this one's records.
    pub fn clear(&mut self) {
        self.clients.clear();
    }

    /// Answers kept, and clients they belong to.
    pub fn len(&self) -> (usize, usize) {
        let answers = self.clients.values().map(|c| c.answers.len()).sum();
        (answers, self.clients.len())
    }

    fn sweep(&mut self, now: Instant) {
        let due = *self.next_sweep.get_or_insert(now + SWEEP_EVERY);
        if now < due {
            return;
        }
        self.next_sweep = Some(now + SWEEP_EVERY);
        self.clients
            .retain(|_, c| now.saturating_duration_since(c.last) < IDLE);
    }
}

/// Whether `reply` says for sure what became of a write: it happened (OK, DEGRADED; WRITTEN
/// and VERSIONED for a SET, DELETE or INCR) or it did not (refused before any STORE, or by
/// every slave tried; CONFLICT, NOT_FOUND, NOT_AN_INTEGER, OVERFLOW: decided without writing).
/// TIMEOUT, NOT_PRIMARY and NO_SLAVES (which may follow a STORE to a slave that died) are not.
fn definite(reply: &Body) -> bool {
    match reply {
        Body::Ok
        | Body::Degraded { .. }
        | Body::Written { .. }
        | Body::Versioned { .. }
        | Body::Conflict { .. }
        | Body::NotFound => true,
        Body::Error { code, .. } => matches!(
            code,
            ErrorCode::TooLarge
                | ErrorCode::BadRequest
                | ErrorCode::OutOfMemory
                | ErrorCode::Unavailable
                | ErrorCode::NotAnInteger
                | ErrorCode::Overflow
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64, acked: u64) -> WriteId {
        WriteId {
            client: 7,
            seq,
            acked,
        }
    }

    #[test]
    fn a_definite_answer_is_given_again_and_an_unknown_one_is_not_kept() {
        let now = Instant::now();
        let mut r = Records::default();
        assert_eq!(r.arrived(id(1, 1), now), Seen::New);
        r.answered(id(1, 1), &Body::Ok, now);
        assert_eq!(r.arrived(id(1, 1), now), Seen::Answered(Body::Ok));
        let timeout = Body::error(ErrorCode::Timeout, "x");
        assert_eq!(r.arrived(id(2, 1), now), Seen::New);
        r.answered(id(2, 1), &timeout, now);
        assert_eq!(r.arrived(id(2, 1), now), Seen::New);
    }

    #[test]
    fn acked_forgets_and_refuses_what_it_passed() {
        let now = Instant::now();
        let mut r = Records::default();
        for seq in 1..=3 {
            r.arrived(id(seq, 1), now);
            r.answered(id(seq, 1), &Body::Ok, now);
        }
        assert_eq!(r.len(), (3, 1));
        assert_eq!(r.arrived(id(4, 3), now), Seen::New);
        assert_eq!(r.len(), (1, 1));
        assert_eq!(r.arrived(id(2, 3), now), Seen::Stale);
        assert_eq!(r.arrived(id(3, 3), now), Seen::Answered(Body::Ok));
    }

    #[test]
    fn the_bound_per_client_and_idle_clients_are_collected() {
        let now = Instant::now();
        let mut r = Records::default();
        for seq in 1..=(PER_CLIENT as u64 + 10) {
            r.answered(id(seq, 1), &Body::Ok, now);
        }
        assert_eq!(r.len(), (PER_CLIENT, 1));
        assert_eq!(r.answer(id(1, 1)), None);
        let later = now + IDLE + SWEEP_EVERY;
        r.arrived(id(1, 0).with_client(9), now);
        r.arrived(id(1, 0).with_client(9), later);
        assert_eq!(r.len().1, 1, "client 7 was idle for longer than IDLE");
    }

    trait WithClient {
        fn with_client(self, c: u64) -> WriteId;
    }
    impl WithClient for WriteId {
        fn with_client(mut self, c: u64) -> WriteId {
            self.client = c;
            self
        }
    }
}

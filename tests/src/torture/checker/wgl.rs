//! The Wing & Gong linearizability search with Lowe's / Porcupine's memoisation, for one key
//! (the register of [`model`](super::model)): is there an order of the calls, each placed
//! between its invocation and its completion, in which every call's answer fits the state the
//! calls before it left?
//!
//! Porcupine's cache holds (set of linearized calls as a bitset, register value); cloning an
//! n-bit set at every step makes a key with 10^5 calls cost 10^10 word copies and gigabytes.
//! Here the set is a 128-bit Zobrist hash (the XOR of a random number per linearized call),
//! updated in O(1) as calls are linearized and undone. Two different (set, value) pairs
//! colliding (odds about steps^2 / 2^129) could only prune a branch wrongly, turning a
//! linearizable history into a reported violation; it can never hide one.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::torture::rng::Rng;

pub use super::model::{CallKind, State};

/// An operation ready for the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub kind: CallKind,
    pub invoke: u64,
    /// `u64::MAX` for a change whose outcome is unknown: it may take effect at any time after
    /// its invocation, or never (placed after everything else, it changes nothing anyone saw).
    pub complete: u64,
}

/// The result of one search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    Linearizable,
    NotLinearizable,
    /// The step budget ran out first.
    GaveUp,
}

/// End of the event list.
const NIL: usize = usize::MAX;

/// One call or return in the time-ordered, doubly linked event list.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: u32,
    is_call: bool,
    /// For a call: its return event.
    ret: usize,
    prev: usize,
    next: usize,
}

/// Search for a linearization of `calls`, giving up after `max_steps` steps.
///
/// The algorithm (Wing & Gong 1993, with the cache of Lowe 2017 as in Porcupine): walk the
/// events in time order; at a call, try to linearize that op now (apply it to the register;
/// if it fits and the pair (set of linearized ops, register value) is new, remove its call
/// and return from the list and start again from the front); at a return whose op is not yet
/// linearized, undo the last choice. The history is linearizable iff the list empties.
pub fn search(calls: &[Call], max_steps: u64) -> Search {
    let n = calls.len();
    if n == 0 {
        return Search::Linearizable;
    }
    assert!(n < u32::MAX as usize, "too many calls for one key");
    let mut events = build_events(calls);
    let head = events.len() - 1;
    let zobrist = Zobrist::new(n);
    let mut linearized: u128 = 0;
    let mut cache: HashSet<u128, BuildHasherDefault<PassThrough>> = HashSet::default();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = State::Absent;
    let mut entry = events[head].next;
    let mut steps = 0u64;
    while events[head].next != NIL {
        steps += 1;
        if steps > max_steps {
            return Search::GaveUp;
        }
        let e = events[entry];
        if e.is_call {
            let op = e.op as usize;
            if let Some(next_state) = calls[op].kind.apply(state) {
                let with_op = linearized ^ zobrist.call(op);
                if cache.insert(with_op ^ next_state.hash128()) {
                    stack.push((entry, state));
                    state = next_state;
                    linearized = with_op;
                    lift(&mut events, entry);
                    entry = events[head].next;
                    continue;
                }
            }
            entry = e.next;
        } else {
            // A return reached with its op not linearized: every order tried so far is wrong.
            let Some((call, prev_state)) = stack.pop() else {
                return Search::NotLinearizable;
            };
            state = prev_state;
            linearized ^= zobrist.call(events[call].op as usize);
            unlift(&mut events, call);
            entry = events[call].next;
        }
    }
    Search::Linearizable
}

/// Random 128-bit numbers per call, for the linearized set (the state is hashed by
/// [`State::hash128`]).
struct Zobrist {
    calls: Vec<u128>,
}

impl Zobrist {
    fn new(n: usize) -> Zobrist {
        let mut rng = Rng::new(0x5EED_2B15_7A4E_0001);
        let mut next = || (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        let calls = (0..n).map(|_| next()).collect();
        Zobrist { calls }
    }

    fn call(&self, op: usize) -> u128 {
        self.calls[op]
    }
}

/// The cache keys are already uniformly random: hash them by taking their low bits.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 ^= v as u64;
    }
}

/// Calls and returns sorted by time, calls before returns at the same instant (so touching
/// operations count as concurrent: the permissive reading of equal clock readings), then a
/// head sentinel as the last element.
fn build_events(calls: &[Call]) -> Vec<Event> {
    let mut order: Vec<(u64, bool, u32)> = Vec::with_capacity(calls.len() * 2);
    for (i, c) in calls.iter().enumerate() {
        order.push((c.invoke, false, i as u32));
        order.push((c.complete.max(c.invoke), true, i as u32));
    }
    // (time, is_return, op): `false` sorts first, so calls precede returns at one time.
    order.sort_unstable();
    let mut ret_of = vec![0usize; calls.len()];
    for (pos, &(_, is_return, op)) in order.iter().enumerate() {
        if is_return {
            ret_of[op as usize] = pos;
        }
    }
    let len = order.len();
    let mut events: Vec<Event> = order
        .iter()
        .enumerate()
        .map(|(pos, &(_, is_return, op))| Event {
            op,
            is_call: !is_return,
            ret: if is_return { NIL } else { ret_of[op as usize] },
            prev: if pos == 0 { len } else { pos - 1 },
            next: if pos + 1 == len { NIL } else { pos + 1 },
        })
        .collect();
    events.push(Event {
        op: 0,
        is_call: false,
        ret: NIL,
        prev: NIL,
        next: 0,
    });
    events
}

fn unlink(events: &mut [Event], i: usize) {
    let Event { prev, next, .. } = events[i];
    events[prev].next = next;
    if next != NIL {
        events[next].prev = prev;
    }
}

fn relink(events: &mut [Event], i: usize) {
    let Event { prev, next, .. } = events[i];
    events[prev].next = i;
    if next != NIL {
        events[next].prev = i;
    }
}

/// Take a call and its return out of the list (they keep their own links for `unlift`).
fn lift(events: &mut [Event], call: usize) {
    let ret = events[call].ret;
    unlink(events, call);
    unlink(events, ret);
}

/// Put back what `lift` took out, in the reverse order.
fn unlift(events: &mut [Event], call: usize) {
    let ret = events[call].ret;
    relink(events, ret);
    relink(events, call);
}

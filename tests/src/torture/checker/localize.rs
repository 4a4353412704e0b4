//! Where a key's history stops being linearizable: the first time `t` (an invocation or a
//! completion) such that the history cut at `t` has no order that fits, found by bisection. A
//! failing run's witness can be hundreds of operations; the cut points at the answer (or the
//! call) that breaks it.
//!
//! The cut at `t` keeps the operations invoked by `t`; one still running at `t` says nothing of
//! its answer: a read (or a refusal, which is checked like one) is dropped, a change becomes
//! unknown (it may take effect after `t`, or never). Every order that fits the whole history
//! fits each cut (the operations invoked later are ordered after every one completed by `t`,
//! and the unknown ones can go last), so the first cut that fails holds the fault.

use super::wgl::{self, Search};
use super::{prepare, shrink};
use crate::torture::history::{Op, Outcome};

/// The first failing cut of a key's `ops`: its time, and a shrunk witness of that cut (sorted
/// by invocation); `None` if the whole history is linearizable (or the search gave up).
pub fn first_failing_cut(ops: &[Op], max_steps: u64) -> Option<(u64, Vec<Op>)> {
    let mut times: Vec<u64> = ops
        .iter()
        .flat_map(|o| [o.invoke_ns, o.complete_ns])
        .collect();
    times.sort_unstable();
    times.dedup();
    let fails = |t: u64| verdict(&cut(ops, t), max_steps) == Some(false);
    let (mut lo, mut hi) = (0usize, times.len().checked_sub(1)?);
    if !fails(times[hi]) {
        return None;
    }
    // fails(times[hi]); not known for lo.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(times[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let t = times[hi];
    let at = cut(ops, t);
    let witness = match prepare(&at) {
        Err((_, witness)) => witness,
        Ok(p) => {
            let kept = shrink::shrink(&p, max_steps);
            let mut w: Vec<Op> = kept.iter().map(|&i| p.ops[i].clone()).collect();
            w.sort_by_key(|o| (o.invoke_ns, o.complete_ns));
            w
        }
    };
    Some((t, witness))
}

/// `ops` as known at `t` (see the module's comment).
pub fn cut(ops: &[Op], t: u64) -> Vec<Op> {
    ops.iter()
        .filter(|o| o.invoke_ns <= t)
        .filter_map(|o| {
            if o.complete_ns <= t {
                return Some(o.clone());
            }
            if o.kind == crate::torture::history::Kind::Read || o.refusal().is_some() {
                return None;
            }
            if o.outcome == Outcome::Fail {
                return Some(o.clone());
            }
            let mut u = o.clone();
            u.outcome = Outcome::Unknown;
            u.complete_ns = t;
            if u.kind == crate::torture::history::Kind::Incr {
                u.value = None;
            }
            u.version = None;
            u.found = None;
            Some(u)
        })
        .collect()
}

/// `Some(true)`: linearizable; `Some(false)`: not; `None`: the search gave up.
fn verdict(ops: &[Op], max_steps: u64) -> Option<bool> {
    let p = match prepare(ops) {
        Ok(p) => p,
        Err(_) => return Some(false),
    };
    match wgl::search(&p.calls, max_steps) {
        Search::Linearizable => Some(true),
        Search::NotLinearizable => Some(false),
        Search::GaveUp => None,
    }
}

//! The WGL search against a second, independent decision procedure on random histories: for a
//! register whose writes are unique, Gibbons & Korach's zones decide linearizability exactly
//! in polynomial time (as restated by Golab, Li and Shah, PODC 2011). Both must agree on every
//! history, linearizable or not.

use super::wgl::{search, Call, CallKind, Search, State};
use crate::torture::rng::Rng;

/// The zones verdict: a read may not finish before its write starts; then with, per value, the
/// cluster of its write and the reads of it, f = min completion and s = max invocation make a
/// forward zone (f, s) when f < s, else a backward zone (s, f). Linearizable iff no two forward
/// zones overlap and no backward zone lies inside a forward one. The initial (absent) value is
/// written at -infinity; an unknown write completes at +infinity.
fn zones_linearizable(calls: &[Call]) -> bool {
    const NEG: i128 = i128::MIN / 4;
    let time = |t: u64| {
        if t == u64::MAX {
            i128::MAX / 4
        } else {
            t as i128
        }
    };
    let absent = calls.len();
    // Per cluster (write index, or `absent`): (min completion, max invocation).
    let mut zone: Vec<Option<(i128, i128)>> = vec![None; calls.len() + 1];
    let mut widen = |i: usize, inv: i128, comp: i128| {
        let z = zone[i].get_or_insert((comp, inv));
        *z = (z.0.min(comp), z.1.max(inv));
    };
    for (i, c) in calls.iter().enumerate() {
        match c.kind {
            CallKind::Write(_) => widen(i, time(c.invoke), time(c.complete)),
            CallKind::Read(State::Text { id: w, .. }) => {
                if time(c.complete) < time(calls[w as usize].invoke) {
                    return false;
                }
                widen(w as usize, time(c.invoke), time(c.complete));
            }
            CallKind::Read(_) => {
                widen(absent, NEG, NEG);
                widen(absent, time(c.invoke), time(c.complete));
            }
            other => unreachable!("a register history has no {other:?}"),
        }
    }
    let (mut forward, mut backward) = (Vec::new(), Vec::new());
    for (f, s) in zone.into_iter().flatten() {
        if f < s {
            forward.push((f, s));
        } else {
            backward.push((s, f));
        }
    }
    forward.sort();
    let overlapping = forward.windows(2).any(|w| w[1].0 < w[0].1);
    let nested = backward
        .iter()
        .any(|&(s, f)| forward.iter().any(|&(a, b)| a < s && f < b));
    !overlapping && !nested
}

/// A random history of a real register: linearization points in order, each call's interval
/// around its point, some writes unknown (taking effect, or not); then, half the time, one read
/// made to return another value, which may or may not break it. Every time is distinct.
fn random_history(rng: &mut Rng) -> Vec<Call> {
    let n = rng.between(2, 12) as usize;
    let mut calls = Vec::with_capacity(n);
    let mut state = State::Absent;
    // Write i writes the value named i.
    let value = |i: u32| State::Text { id: i, int: None };
    let mut used = std::collections::HashSet::new();
    let mut distinct = |t: u64, rng: &mut Rng| {
        let mut t = t * 1000 + rng.below(1000);
        while !used.insert(t) {
            t += 1;
        }
        t
    };
    for i in 0..n {
        let point = 100 + 50 * i as u64;
        let invoke = distinct(point - rng.below(100), rng);
        let complete = distinct(point + rng.below(100), rng);
        let write = rng.percent(50);
        let kind = if write {
            CallKind::Write(value(i as u32))
        } else {
            CallKind::Read(state)
        };
        let unknown = write && rng.percent(20);
        if write && (!unknown || rng.percent(50)) {
            state = value(i as u32);
        }
        let complete = if unknown { u64::MAX } else { complete };
        calls.push(Call {
            kind,
            invoke,
            complete,
        });
    }
    if rng.percent(50) {
        let reads: Vec<usize> = (0..n)
            .filter(|&i| matches!(calls[i].kind, CallKind::Read(_)))
            .collect();
        let writes: Vec<u32> = (0..n as u32)
            .filter(|&i| matches!(calls[i as usize].kind, CallKind::Write(_)))
            .collect();
        if !reads.is_empty() {
            let r = reads[rng.below(reads.len() as u64) as usize];
            let pick = rng.below(writes.len() as u64 + 1) as usize;
            calls[r].kind = CallKind::Read(writes.get(pick).map_or(State::Absent, |&w| value(w)));
        }
    }
    calls
}

#[test]
fn the_search_agrees_with_the_zones_on_random_histories() {
    let mut rng = Rng::new(0xD1FF);
    let (mut yes, mut no) = (0, 0);
    for case in 0..20_000 {
        let calls = random_history(&mut rng);
        let wgl = search(&calls, 1_000_000);
        assert_ne!(wgl, Search::GaveUp, "case {case}: {calls:?}");
        let zones = zones_linearizable(&calls);
        assert_eq!(
            wgl == Search::Linearizable,
            zones,
            "case {case}: WGL says {wgl:?}, zones say {zones}: {calls:#?}"
        );
        if zones {
            yes += 1;
        } else {
            no += 1;
        }
    }
    // Both kinds must be common, or the agreement means little.
    assert!(yes > 5_000 && no > 2_000, "{yes} linearizable, {no} not");
}

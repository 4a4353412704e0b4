//! The checker against hand-built histories, linearizable and not, so that it demonstrably
//! can fail: stale reads, lost writes, reads of values never written, overlaps that are fine,
//! unknown writes that appear later, and the double application of one resent write.

use super::wgl::{search, Call, CallKind, Search, State};
use super::*;

/// `w(p, "a", 0, 10)`: process `p` wrote "a" from t=0 to t=10, acknowledged.
fn w(p: u32, v: &str, invoke: u64, complete: u64) -> Op {
    op(p, Kind::Write, Some(v), invoke, complete, Outcome::Ok)
}

fn w_unknown(p: u32, v: &str, invoke: u64, complete: u64) -> Op {
    op(p, Kind::Write, Some(v), invoke, complete, Outcome::Unknown)
}

fn w_failed(p: u32, v: &str, invoke: u64, complete: u64) -> Op {
    op(p, Kind::Write, Some(v), invoke, complete, Outcome::Fail)
}

/// A successful read of `v` (`None`: NOT_FOUND).
fn r(p: u32, v: Option<&str>, invoke: u64, complete: u64) -> Op {
    op(p, Kind::Read, v, invoke, complete, Outcome::Ok)
}

fn op(p: u32, kind: Kind, v: Option<&str>, invoke: u64, complete: u64, outcome: Outcome) -> Op {
    Op {
        process: p,
        key: "k".into(),
        kind,
        value: v.map(String::from),
        invoke_ns: invoke,
        complete_ns: complete,
        outcome,
        error: None,
        ..Op::default()
    }
}

fn verdict(ops: &[Op]) -> KeyVerdict {
    check_key(ops, DEFAULT_MAX_STEPS)
}

#[track_caller]
fn assert_linearizable(ops: &[Op]) {
    assert_eq!(verdict(ops), KeyVerdict::Linearizable, "{ops:#?}");
}

/// Not linearizable; returns the witness.
#[track_caller]
fn assert_violation(ops: &[Op]) -> Vec<Op> {
    match verdict(ops) {
        KeyVerdict::Violation { witness, .. } => {
            assert!(!witness.is_empty());
            witness
        }
        other => panic!("expected a violation, got {other:?} for {ops:#?}"),
    }
}

#[test]
fn an_empty_and_a_sequential_history_are_linearizable() {
    assert_linearizable(&[]);
    assert_linearizable(&[
        r(0, None, 0, 1),
        w(0, "a", 2, 3),
        r(1, Some("a"), 4, 5),
        w(1, "b", 6, 7),
        r(0, Some("b"), 8, 9),
    ]);
}

#[test]
fn a_stale_read_is_a_violation() {
    let witness = assert_violation(&[w(0, "a", 0, 1), w(0, "b", 2, 3), r(1, Some("a"), 4, 5)]);
    assert_eq!(witness.len(), 3, "{witness:#?}");
}

#[test]
fn a_lost_write_is_a_violation() {
    // Acknowledged, then NOT_FOUND: the initial value came back.
    assert_violation(&[w(0, "a", 0, 1), r(1, None, 2, 3)]);
    // Acknowledged, then an older value.
    assert_violation(&[
        w(0, "a", 0, 1),
        r(1, Some("a"), 2, 3),
        w(0, "b", 4, 5),
        r(1, Some("a"), 6, 7),
    ]);
}

#[test]
fn a_read_of_a_value_never_written_is_a_violation() {
    match verdict(&[w(0, "a", 0, 1), r(1, Some("zz"), 2, 3)]) {
        KeyVerdict::Violation { why, witness } => {
            assert!(why.contains("no operation on this key wrote"), "{why}");
            assert_eq!(witness, vec![r(1, Some("zz"), 2, 3)]);
        }
        other => panic!("{other:?}"),
    }
    // A failed write had no effect: reading its value is a violation too.
    let ops = [w_failed(0, "a", 0, 1), r(1, Some("a"), 2, 3)];
    match verdict(&ops) {
        KeyVerdict::Violation { why, .. } => assert!(why.contains("reported failed"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn overlapping_operations_may_take_effect_in_either_order() {
    // The write overlaps both reads: absent, then "a", fits (the write lands between them).
    assert_linearizable(&[w(0, "a", 0, 10), r(1, None, 1, 2), r(2, Some("a"), 3, 4)]);
    // Two overlapping writes, read in the order opposite to their invocations.
    assert_linearizable(&[
        w(0, "a", 0, 10),
        w(1, "b", 1, 9),
        r(2, Some("b"), 11, 12),
        r(2, Some("b"), 13, 14),
    ]);
    // Touching intervals (equal times) count as concurrent.
    assert_linearizable(&[w(0, "a", 0, 5), r(1, None, 5, 6)]);
    // But once "a" was seen, the register cannot go back to absent while the write is open.
    assert_violation(&[w(0, "a", 0, 10), r(1, Some("a"), 1, 2), r(2, None, 3, 4)]);
}

#[test]
fn an_unknown_write_may_take_effect_later_or_never() {
    // The client gave up at t=5; the write shows up at t=100: fine.
    assert_linearizable(&[
        w(0, "a", 0, 1),
        w_unknown(1, "b", 2, 5),
        r(2, Some("a"), 6, 7),
        r(2, Some("b"), 100, 101),
    ]);
    // Never seen at all: fine too (it is dropped).
    assert_linearizable(&[
        w(0, "a", 0, 1),
        w_unknown(1, "b", 2, 5),
        r(2, Some("a"), 6, 7),
    ]);
    // But once seen it has happened: an older value afterwards is a stale read.
    assert_violation(&[
        w(0, "a", 0, 1),
        w_unknown(1, "b", 2, 5),
        r(2, Some("b"), 6, 7),
        r(2, Some("a"), 8, 9),
    ]);
    // And it cannot have happened before it was sent.
    assert_violation(&[r(2, Some("b"), 0, 1), w_unknown(1, "b", 2, 5)]);
}

#[test]
fn one_write_applied_twice_is_a_violation() {
    // What a client that resends a write whose first copy took effect produces: a, b, a while
    // the write of "a" is still running.
    let witness = assert_violation(&[
        w(0, "a", 0, 100),
        w(1, "b", 10, 20),
        r(2, Some("a"), 5, 8),
        r(2, Some("b"), 30, 31),
        r(2, Some("a"), 50, 51),
    ]);
    // The read of "b" is not even needed: "b" was acknowledged after "a" was seen.
    assert_eq!(
        witness,
        vec![
            w(0, "a", 0, 100),
            r(2, Some("a"), 5, 8),
            w(1, "b", 10, 20),
            r(2, Some("a"), 50, 51),
        ]
    );
}

#[test]
fn shrinking_finds_the_few_operations_that_matter() {
    let mut ops = Vec::new();
    let mut t = 0;
    for i in 0..300 {
        let v = format!("v{i}");
        ops.push(w(i % 3, &v, t, t + 5));
        ops.push(r(3, Some(&v), t + 6, t + 7));
        t += 10;
    }
    assert_linearizable(&ops);
    // One stale read in the middle.
    ops.push(r(4, Some("v100"), 1503, 1504));
    let witness = assert_violation(&ops);
    assert!(witness.len() <= 4, "{witness:#?}");
    assert!(
        witness.contains(&r(4, Some("v100"), 1503, 1504)),
        "{witness:#?}"
    );
}

#[test]
fn the_search_gives_up_on_its_budget_rather_than_hanging() {
    // Many fully concurrent writes and reads: a large search space for a tiny budget.
    let mut ops: Vec<Op> = (0..40)
        .map(|i| w(i, &format!("v{i}"), i as u64, 1000))
        .collect();
    ops.extend((0..40).map(|i| r(100 + i, Some(&format!("v{}", 39 - i)), 500, 1000)));
    assert!(matches!(check_key(&ops, 50), KeyVerdict::GaveUp { .. }));
}

#[test]
fn the_raw_search_handles_many_sequential_operations() {
    let calls: Vec<Call> = (0..200_000u64)
        .map(|i| Call {
            kind: if i % 2 == 0 {
                CallKind::Write(State::Text {
                    id: i as u32,
                    int: None,
                })
            } else {
                CallKind::Read(State::Text {
                    id: i as u32 - 1,
                    int: None,
                })
            },
            invoke: i * 10,
            complete: i * 10 + 5,
        })
        .collect();
    assert_eq!(search(&calls, DEFAULT_MAX_STEPS), Search::Linearizable);
}

#[test]
fn keys_are_checked_apart_and_lost_writes_are_found() {
    let mut ops = vec![
        w(0, "a1", 0, 1),
        w(0, "a2", 2, 3),
        w(1, "b1", 0, 1),
        w(1, "b2", 10, 20),
        w(1, "c1", 0, 1),
    ];
    for o in &mut ops {
        o.key = o.value.as_deref().unwrap()[..1].to_string();
    }
    // Final reads by process 9: key a has its last write, key b an older one, key c nothing.
    let mut finals = vec![
        r(9, Some("a2"), 30, 31),
        r(9, Some("b1"), 30, 31),
        r(9, None, 30, 31),
    ];
    for (o, k) in finals.iter_mut().zip(["a", "b", "c"]) {
        o.key = k.into();
    }
    ops.extend(finals);
    let v = check(&ops, Some(9), DEFAULT_MAX_STEPS);
    assert_eq!(v.keys["a"].1, KeyVerdict::Linearizable);
    assert!(matches!(v.keys["b"].1, KeyVerdict::Violation { .. }));
    assert!(matches!(v.keys["c"].1, KeyVerdict::Violation { .. }));
    assert_eq!(v.lost.len(), 2, "{:#?}", v.lost);
    assert!(
        v.lost[0].starts_with("b: acknowledged write of \"b2\""),
        "{}",
        v.lost[0]
    );
    assert!(v.lost[1].contains("NOT_FOUND"), "{}", v.lost[1]);
    assert!(!v.passed());
    assert_eq!(v.violations()[0].0, "c", "fewest operations first");
}

#[test]
fn a_later_overlapping_write_supersedes_an_acknowledged_one() {
    // "b" overlapped "a" and was read last: "a" is superseded, not lost.
    let ops = [w(0, "a", 0, 10), w(1, "b", 5, 15), r(9, Some("b"), 20, 21)];
    assert!(lost::lost_writes(&ops, 9).is_empty());
    let v = check(&ops, Some(9), DEFAULT_MAX_STEPS);
    assert!(v.passed(), "{v:?}");
    // With no successful final read the writes are unchecked, which is reported.
    let ops = [
        w(0, "a", 0, 10),
        op(9, Kind::Read, None, 20, 21, Outcome::Unknown),
    ];
    assert_eq!(lost::lost_writes(&ops, 9).len(), 1);
}

#[test]
fn refusals_while_the_cluster_recovers_are_neither_lost_writes_nor_not_found() {
    // The shape of a kill -9 of every node: "a" acknowledged; then every READ and WRITE
    // refused (UNAVAILABLE while the masters recover: failed reads carry no value, failed
    // writes had no effect), an in-flight write cut off (unknown, never read); then "a" reads
    // back. A failed READ must not count as NOT_FOUND, nor a failed WRITE as a write.
    let failed_read = |p, at| op(p, Kind::Read, None, at, at + 1, Outcome::Fail);
    let ops = [
        w(0, "a", 0, 1),
        w_unknown(1, "lost-in-flight", 2, 3),
        failed_read(0, 4),
        w_failed(1, "refused", 6, 7),
        failed_read(2, 8),
        r(0, Some("a"), 10, 11),
        r(9, Some("a"), 20, 21),
    ];
    let v = check(&ops, Some(9), DEFAULT_MAX_STEPS);
    assert!(v.passed(), "{v:?}");
    // Had the refused write taken effect after all, reading it back is a violation.
    let mut ops = ops.to_vec();
    ops.push(r(2, Some("refused"), 12, 13));
    assert!(matches!(
        check_key(&ops, DEFAULT_MAX_STEPS),
        KeyVerdict::Violation { .. }
    ));
}

/// The first failing cut is the read that could not be: a write acknowledged, then read back
/// missing (the lost write exactly_once found), in a history with ops before and after; a
/// read still running at an earlier cut says nothing there. A history that fits has none.
#[test]
fn the_first_failing_cut_is_at_the_read_that_breaks_the_history() {
    let mut ops = vec![
        w(1, "a", 0, 10),
        r(2, Some("a"), 5, 15),
        w(3, "b", 20, 30),
        // Running across the cut at 50: its answer is not known there.
        r(2, Some("c"), 35, 70),
        w(1, "c", 38, 60),
        r(3, None, 40, 50),
        w(1, "d", 80, 90),
        r(2, Some("d"), 95, 99),
    ];
    let (t, witness) = localize::first_failing_cut(&ops, DEFAULT_MAX_STEPS).expect("a cut");
    assert_eq!(t, 50, "the missing read's completion");
    assert!(witness
        .iter()
        .any(|o| o.kind == Kind::Read && o.value.is_none()));
    assert!(witness.iter().all(|o| o.invoke_ns <= 50));
    ops.retain(|o| !(o.kind == Kind::Read && o.value.is_none()));
    assert_linearizable(&ops);
    assert_eq!(localize::first_failing_cut(&ops, DEFAULT_MAX_STEPS), None);
}

//! The checker on DELETE, CAS and INCR: for each, histories that fit and histories that cannot
//! (a deleted value coming back, two CAS winners for one version, a lost increment, refusals
//! the state did not call for), unknown outcomes, the version check, and the same histories
//! read from JSON lines as an independent checker would get them.

use super::*;
use crate::torture::history::{parse_history, Expected};

fn op(p: u32, kind: Kind, value: Option<&str>, at: (u64, u64), outcome: Outcome) -> Op {
    Op {
        process: p,
        key: "k".into(),
        kind,
        value: value.map(String::from),
        invoke_ns: at.0,
        complete_ns: at.1,
        outcome,
        ..Op::default()
    }
}

fn w(v: &str, at: (u64, u64)) -> Op {
    op(0, Kind::Write, Some(v), at, Outcome::Ok)
}

fn w_unknown(v: &str, at: (u64, u64)) -> Op {
    op(0, Kind::Write, Some(v), at, Outcome::Unknown)
}

fn r(v: Option<&str>, at: (u64, u64)) -> Op {
    op(1, Kind::Read, v, at, Outcome::Ok)
}

/// An ok DELETE: `found` whether the key existed.
fn del(found: bool, at: (u64, u64)) -> Op {
    Op {
        found: Some(found),
        ..op(2, Kind::Delete, None, at, Outcome::Ok)
    }
}

fn del_unknown(at: (u64, u64)) -> Op {
    op(2, Kind::Delete, None, at, Outcome::Unknown)
}

/// A CAS from `expected` (`None`: missing) to `new`, with its outcome (`Fail`: CONFLICT).
fn cas(expected: Option<&str>, new: &str, at: (u64, u64), outcome: Outcome) -> Op {
    Op {
        expected: Some(Expected {
            version: if expected.is_some() { 7 } else { 0 },
            value: expected.map(String::from),
        }),
        error: (outcome == Outcome::Fail).then(|| "CONFLICT: current version 9".into()),
        ..op(3, Kind::Cas, Some(new), at, outcome)
    }
}

/// An ok INCR of `delta` that answered `result`.
fn incr(delta: i64, result: i64, at: (u64, u64)) -> Op {
    Op {
        delta: Some(delta),
        ..op(4, Kind::Incr, Some(&result.to_string()), at, Outcome::Ok)
    }
}

fn incr_unknown(delta: i64, at: (u64, u64)) -> Op {
    Op {
        delta: Some(delta),
        error: Some("TIMEOUT: t".into()),
        ..op(4, Kind::Incr, None, at, Outcome::Unknown)
    }
}

fn incr_refused(code: &str, delta: i64, at: (u64, u64)) -> Op {
    Op {
        delta: Some(delta),
        error: Some(format!("{code}: refused")),
        ..op(4, Kind::Incr, None, at, Outcome::Fail)
    }
}

#[track_caller]
fn fits(ops: &[Op]) {
    assert_eq!(
        check_key(ops, DEFAULT_MAX_STEPS),
        KeyVerdict::Linearizable,
        "{ops:#?}"
    );
}

/// Not linearizable; the witness is returned (and is itself not linearizable).
#[track_caller]
fn refused(ops: &[Op]) -> Vec<Op> {
    match check_key(ops, DEFAULT_MAX_STEPS) {
        KeyVerdict::Violation { witness, .. } => {
            assert!(!witness.is_empty());
            assert!(
                matches!(
                    check_key(&witness, DEFAULT_MAX_STEPS),
                    KeyVerdict::Violation { .. }
                ),
                "the witness fits: {witness:#?}"
            );
            witness
        }
        other => panic!("expected a violation, got {other:?} for {ops:#?}"),
    }
}

#[test]
fn a_delete_makes_reads_not_found_and_its_value_cannot_come_back() {
    fits(&[w("a", (0, 1)), del(true, (2, 3)), r(None, (4, 5))]);
    fits(&[
        del(false, (0, 1)),
        w("a", (2, 3)),
        del(true, (4, 5)),
        del(false, (6, 7)),
    ]);
    // The deleted value read back afterwards: what a slave that missed the DELETE would show.
    let witness = refused(&[w("a", (0, 1)), del(true, (2, 3)), r(Some("a"), (4, 5))]);
    assert_eq!(witness.len(), 3, "{witness:#?}");
    // Found a key that was never written; found nothing after an acknowledged write.
    refused(&[del(true, (0, 1))]);
    refused(&[w("a", (0, 1)), del(false, (2, 3))]);
    // Two DELETEs one after the other cannot both find the key.
    refused(&[w("a", (0, 1)), del(true, (2, 3)), del(true, (4, 5))]);
    // An overlapping write may land between them.
    fits(&[
        w("a", (0, 1)),
        del(true, (2, 3)),
        w("b", (2, 9)),
        del(true, (4, 10)),
    ]);
}

#[test]
fn an_unknown_delete_may_take_effect_later_or_never() {
    fits(&[
        w("a", (0, 1)),
        del_unknown((2, 3)),
        r(Some("a"), (4, 5)),
        r(None, (8, 9)),
    ]);
    fits(&[w("a", (0, 1)), del_unknown((2, 3)), r(Some("a"), (4, 5))]);
    // Once it is seen missing, it cannot come back.
    refused(&[
        w("a", (0, 1)),
        del_unknown((2, 3)),
        r(None, (4, 5)),
        r(Some("a"), (8, 9)),
    ]);
}

#[test]
fn an_unknown_write_nobody_read_still_explains_a_delete_that_found_the_key() {
    // The write timed out but happened: the DELETE found it. Leaving the write out because no
    // read returned its value would call this a violation.
    fits(&[w_unknown("a", (0, 5)), del(true, (6, 7)), r(None, (8, 9))]);
    // It explains a refused INCR and a CONFLICT too.
    fits(&[
        w_unknown("a", (0, 5)),
        incr_refused("NOT_AN_INTEGER", 1, (6, 7)),
    ]);
    fits(&[
        w_unknown("a", (0, 5)),
        cas(None, "b", (6, 7), Outcome::Fail),
    ]);
    // With nothing that depends on the state blindly, it is left out before the search.
    let p = prepare(&[w("x", (0, 1)), w_unknown("a", (2, 5)), r(Some("x"), (6, 7))]).unwrap();
    assert_eq!(p.ops.len(), 2, "{:#?}", p.ops);
    let p = prepare(&[w_unknown("a", (2, 5)), del(true, (6, 7))]).unwrap();
    assert_eq!(p.ops.len(), 2, "{:#?}", p.ops);
}

#[test]
fn a_cas_wins_only_at_its_expected_value_and_only_once() {
    fits(&[
        w("a", (0, 1)),
        cas(Some("a"), "b", (2, 3), Outcome::Ok),
        r(Some("b"), (4, 5)),
    ]);
    fits(&[cas(None, "b", (0, 1), Outcome::Ok), r(Some("b"), (2, 3))]);
    // Expecting a value overwritten before it began.
    refused(&[
        w("a", (0, 1)),
        w("c", (2, 3)),
        cas(Some("a"), "b", (4, 5), Outcome::Ok),
    ]);
    // Expecting the key missing after an acknowledged write.
    refused(&[w("a", (0, 1)), cas(None, "b", (2, 3), Outcome::Ok)]);
    // Two winners for one version, even concurrent: the second found the first's value.
    let witness = refused(&[
        w("a", (0, 1)),
        cas(Some("a"), "b", (2, 10), Outcome::Ok),
        cas(Some("a"), "c", (3, 9), Outcome::Ok),
    ]);
    assert_eq!(witness.len(), 3, "{witness:#?}");
    // The CAS took effect but the read shows the value it replaced, after it completed.
    refused(&[
        w("a", (0, 1)),
        cas(Some("a"), "b", (2, 3), Outcome::Ok),
        r(Some("a"), (4, 5)),
    ]);
}

#[test]
fn a_conflict_needs_the_key_at_another_value() {
    // Refused though nothing changed the key: a wrong CONFLICT.
    refused(&[w("a", (0, 1)), cas(Some("a"), "b", (2, 3), Outcome::Fail)]);
    refused(&[cas(None, "b", (2, 3), Outcome::Fail)]);
    // A concurrent write explains it; so does a write before it.
    fits(&[
        w("a", (0, 1)),
        w("c", (2, 9)),
        cas(Some("a"), "b", (3, 4), Outcome::Fail),
    ]);
    fits(&[w("a", (0, 1)), cas(None, "b", (2, 3), Outcome::Fail)]);
    // A conflicting CAS wrote nothing: its value read back is a violation.
    refused(&[
        w("a", (0, 1)),
        w("c", (2, 3)),
        cas(Some("a"), "b", (4, 5), Outcome::Fail),
        r(Some("b"), (6, 7)),
    ]);
}

#[test]
fn an_unknown_cas_takes_effect_only_where_it_could_have_won() {
    fits(&[
        w("a", (0, 1)),
        cas(Some("a"), "b", (2, 3), Outcome::Unknown),
        r(Some("a"), (4, 5)),
        r(Some("b"), (6, 7)),
    ]);
    // The key was "c" from before the CAS began until the read of "b": the CAS cannot have won.
    refused(&[
        w("a", (0, 1)),
        w("c", (2, 3)),
        cas(Some("a"), "b", (4, 5), Outcome::Unknown),
        r(Some("b"), (6, 7)),
    ]);
}

#[test]
fn increments_sum_exactly() {
    fits(&[incr(1, 1, (0, 1)), incr(2, 3, (2, 3)), r(Some("3"), (4, 5))]);
    fits(&[
        incr(1, 1, (0, 10)),
        incr(1, 2, (1, 9)),
        r(Some("2"), (11, 12)),
    ]);
    fits(&[incr(-4, -4, (0, 1)), r(Some("-4"), (2, 3))]);
    // A lost increment: both answered 1, one after the other or concurrently.
    let witness = refused(&[incr(1, 1, (0, 1)), incr(1, 1, (2, 3))]);
    assert_eq!(witness.len(), 2);
    refused(&[incr(1, 1, (0, 10)), incr(1, 1, (1, 9))]);
    // The read shows a count the increments never made.
    refused(&[incr(1, 1, (0, 1)), incr(2, 3, (2, 3)), r(Some("1"), (4, 5))]);
    // A count read with no INCR on the key: nobody wrote it.
    match check_key(&[r(Some("6"), (0, 1))], DEFAULT_MAX_STEPS) {
        KeyVerdict::Violation { why, .. } => assert!(why.contains("no operation"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn incr_counts_from_a_missing_key_and_refuses_written_values() {
    fits(&[w("a", (0, 1)), del(true, (2, 3)), incr(2, 2, (4, 5))]);
    fits(&[w("a", (0, 1)), incr_refused("NOT_AN_INTEGER", 1, (2, 3))]);
    // A counter over a written value, or NOT_AN_INTEGER on a missing key or on a counter.
    refused(&[w("a", (0, 1)), incr(1, 1, (2, 3))]);
    refused(&[incr_refused("NOT_AN_INTEGER", 1, (0, 1))]);
    refused(&[
        incr(5, 5, (0, 1)),
        incr_refused("NOT_AN_INTEGER", 1, (2, 3)),
    ]);
    // OVERFLOW only where the sum leaves 64 bits.
    let max = i64::MAX;
    fits(&[incr(max, max, (0, 1)), incr_refused("OVERFLOW", 1, (2, 3))]);
    refused(&[incr(5, 5, (0, 1)), incr_refused("OVERFLOW", 1, (2, 3))]);
    // An INCR answered with no integer is a violation on its own.
    let mut bad = incr(1, 1, (0, 1));
    bad.value = Some("one".into());
    refused(&[bad]);
}

#[test]
fn an_unknown_incr_adds_once_or_not_at_all() {
    fits(&[
        incr(1, 1, (0, 1)),
        incr_unknown(5, (2, 3)),
        r(Some("6"), (10, 11)),
    ]);
    fits(&[
        incr(1, 1, (0, 1)),
        incr_unknown(5, (2, 3)),
        r(Some("1"), (10, 11)),
    ]);
    refused(&[
        incr(1, 1, (0, 1)),
        incr_unknown(5, (2, 3)),
        r(Some("11"), (10, 11)),
    ]);
    // Seen applied, it cannot be undone.
    refused(&[
        incr(1, 1, (0, 1)),
        incr_unknown(5, (2, 3)),
        r(Some("6"), (10, 11)),
        r(Some("1"), (12, 13)),
    ]);
}

#[test]
fn one_version_names_one_value() {
    let mut vread = r(Some("a"), (2, 3));
    vread.version = Some(5);
    let mut later = cas(Some("a"), "b", (4, 5), Outcome::Ok);
    later.version = Some(5);
    match check_key(&[w("a", (0, 1)), vread, later], DEFAULT_MAX_STEPS) {
        KeyVerdict::Violation { why, witness } => {
            assert!(why.contains("version 5"), "{why}");
            assert_eq!(witness.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn acknowledged_deletes_cas_and_incrs_are_checked_against_the_final_read() {
    let finals = |v: Option<&str>| Op {
        process: 9,
        ..r(v, (100, 101))
    };
    // A DELETE acknowledged last, and the value it deleted at the end: lost.
    let ops = [w("a", (0, 1)), del(true, (2, 3)), finals(Some("a"))];
    let lost = lost::lost_writes(&ops, 9);
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert!(lost[0].contains("acknowledged delete"), "{}", lost[0]);
    // A CAS acknowledged last, NOT_FOUND at the end and no DELETE: lost.
    let ops = [cas(None, "b", (0, 1), Outcome::Ok), finals(None)];
    assert_eq!(lost::lost_writes(&ops, 9).len(), 1);
    // An INCR superseded by an unknown INCR: not lost; by an earlier one: lost.
    let ops = [
        incr(1, 1, (0, 1)),
        incr_unknown(1, (2, 3)),
        finals(Some("2")),
    ];
    assert!(lost::lost_writes(&ops, 9).is_empty());
    let ops = [incr(1, 1, (0, 1)), incr(1, 2, (2, 3)), finals(Some("1"))];
    assert_eq!(lost::lost_writes(&ops, 9).len(), 1);
    let v = check(&ops, Some(9), DEFAULT_MAX_STEPS);
    assert!(!v.passed());
}

#[test]
fn histories_read_from_json_lines_are_held_to_the_same_model() {
    // What an independent tool would be given: a CAS won twice, a lost increment, a value
    // back from a delete, a wrong CONFLICT; and one history that fits.
    let bad = [
        r#"{"process":0,"key":"c","op":"write","value":"0-1","invoke_ns":0,"complete_ns":1,"outcome":"ok"}
{"process":1,"key":"c","op":"cas","value":"1-1","expected":4,"expected_value":"0-1","invoke_ns":2,"complete_ns":3,"outcome":"ok"}
{"process":2,"key":"c","op":"cas","value":"2-1","expected":4,"expected_value":"0-1","invoke_ns":4,"complete_ns":5,"outcome":"ok"}"#,
        r#"{"process":0,"key":"i","op":"incr","value":"3","delta":3,"invoke_ns":0,"complete_ns":1,"outcome":"ok"}
{"process":1,"key":"i","op":"incr","value":"-1","delta":-1,"invoke_ns":2,"complete_ns":3,"outcome":"ok"}"#,
        r#"{"process":0,"key":"d","op":"write","value":"0-1","invoke_ns":0,"complete_ns":1,"outcome":"ok"}
{"process":1,"key":"d","op":"delete","value":null,"found":true,"invoke_ns":2,"complete_ns":3,"outcome":"ok"}
{"process":2,"key":"d","op":"read","value":"0-1","invoke_ns":4,"complete_ns":5,"outcome":"ok"}"#,
        r#"{"process":0,"key":"x","op":"cas","value":"0-1","expected":0,"expected_value":null,"invoke_ns":0,"complete_ns":1,"outcome":"fail","error":"CONFLICT: current version 0"}"#,
    ];
    for text in bad {
        let ops = parse_history(text).unwrap();
        let v = check(&ops, None, DEFAULT_MAX_STEPS);
        assert_eq!(v.violations().len(), 1, "{text}\n{v:#?}");
    }
    let good = r#"{"process":0,"key":"m","op":"incr","value":"2","delta":2,"invoke_ns":0,"complete_ns":1,"outcome":"ok"}
{"process":1,"key":"m","op":"write","value":"1-1","invoke_ns":2,"complete_ns":3,"outcome":"ok"}
{"process":2,"key":"m","op":"incr","value":null,"delta":1,"invoke_ns":4,"complete_ns":5,"outcome":"fail","error":"NOT_AN_INTEGER: the value is not a signed 64-bit decimal integer"}
{"process":0,"key":"m","op":"cas","value":"0-2","expected":9,"expected_value":"1-1","version":12,"invoke_ns":6,"complete_ns":7,"outcome":"ok"}
{"process":1,"key":"m","op":"delete","value":null,"found":true,"version":9223372036854775821,"invoke_ns":8,"complete_ns":9,"outcome":"ok"}
{"process":2,"key":"m","op":"delete","value":null,"found":false,"invoke_ns":10,"complete_ns":11,"outcome":"ok"}
{"process":3,"key":"m","op":"read","value":null,"invoke_ns":12,"complete_ns":13,"outcome":"ok"}"#;
    let v = check(&parse_history(good).unwrap(), Some(3), DEFAULT_MAX_STEPS);
    assert!(v.passed(), "{v:#?}");
}

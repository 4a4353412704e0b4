//! The end of a torture run for people: operations by outcome, faults by kind, the checker's
//! verdict, and on a violation the smallest failing key's witness history.

use std::fmt::Write as _;

use crate::torture::checker::lost::ms;
use crate::torture::checker::KeyVerdict;
use crate::torture::history::{Kind, Op, Outcome};
use crate::torture::run::Report;

/// The summary, ending in the verdict line.
pub fn summary(r: &Report) -> String {
    let mut s = String::new();
    let c = &r.cfg;
    let _ = writeln!(
        s,
        "== dsm-torture summary: seed {}, {:.1} s in all ({} s of faults), {} clients, {} keys, {} slaves, R={}, {}",
        c.seed,
        r.elapsed.as_secs_f64(),
        c.duration.as_secs(),
        c.clients,
        c.keys,
        c.slaves,
        c.replicas,
        crate::torture::run::slave_disks(c)
    );
    ops_lines(r, &mut s);
    fault_lines(r, &mut s);
    checker_lines(r, &mut s);
    let _ = writeln!(s, "verdict: {}", if r.passed() { "PASS" } else { "FAIL" });
    s
}

/// Operations by kind and outcome (the final reads apart); kinds the run did not do are left out.
fn ops_lines(r: &Report, s: &mut String) {
    for kind in Kind::ALL {
        let of = |o: Outcome| {
            r.ops
                .iter()
                .filter(|x| x.kind == kind && x.outcome == o && x.process != r.final_process)
                .count()
        };
        let (ok, fail, unknown) = (of(Outcome::Ok), of(Outcome::Fail), of(Outcome::Unknown));
        if ok + fail + unknown == 0 && !matches!(kind, Kind::Read | Kind::Write) {
            continue;
        }
        let refused = r
            .ops
            .iter()
            .filter(|x| x.kind == kind && x.refusal().is_some())
            .count();
        let _ = writeln!(
            s,
            "ops: {:5} {:<6} ok {ok}, failed {fail}{}, unknown {unknown}{}",
            ok + fail + unknown,
            kind.name(),
            match kind {
                Kind::Cas => format!(" ({refused} of them CONFLICT)"),
                Kind::Incr => format!(" ({refused} of them NOT_AN_INTEGER or OVERFLOW)"),
                _ => String::new(),
            },
            match kind {
                Kind::Delete => {
                    let missing = r
                        .ops
                        .iter()
                        .filter(|x| x.kind == kind && x.found == Some(false))
                        .count();
                    format!("; {missing} of the ok ones found no key")
                }
                _ => String::new(),
            }
        );
    }
    let finals = r
        .ops
        .iter()
        .filter(|o| o.process == r.final_process)
        .count();
    let _ = writeln!(s, "final reads: {finals} (one successful read per key)");
}

/// Faults by kind, takeovers, and anything about the nemesis a reader should know.
fn fault_lines(r: &Report, s: &mut String) {
    let kinds: Vec<String> = r
        .faults
        .counts
        .iter()
        .map(|(f, n)| format!("{} {n}", f.name()))
        .collect();
    let _ = writeln!(
        s,
        "faults: {} ({}); takeovers seen: {}",
        r.faults.total(),
        if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(", ")
        },
        r.faults.takeovers
    );
    unknown_by_fault(r, s);
    if let Some(e) = &r.nemesis_error {
        let _ = writeln!(s, "NEMESIS ERROR: {e}");
    }
    if r.holders_dead > 0 {
        let _ = writeln!(
            s,
            "note: the masters answered NOT_FOUND {} times because every copy of a key was lost \
             (which the nemesis never causes); those reads are checked as they are",
            r.holders_dead
        );
    }
}

/// Writes whose outcome the client could not know, by the fault under way while they were
/// in flight (from its injection until the cluster was whole again), and outside any fault.
fn unknown_by_fault(r: &Report, s: &mut String) {
    let mut by: std::collections::BTreeMap<Option<crate::torture::nemesis::Fault>, usize> =
        Default::default();
    let mut outside = Vec::new();
    for o in r.ops.iter().filter(|o| {
        o.kind == Kind::Write && o.outcome == Outcome::Unknown && o.process != r.final_process
    }) {
        let fault = r.faults.fault_during(o.invoke_ns, o.complete_ns);
        *by.entry(fault).or_default() += 1;
        if fault.is_none() {
            outside.push(o);
        }
    }
    let total: usize = by.values().sum();
    let parts: Vec<String> = by
        .iter()
        .map(|(f, n)| format!("{} {n}", f.map_or("outside any fault", |f| f.name())))
        .collect();
    let _ = writeln!(
        s,
        "unknown writes: {total}{}",
        if parts.is_empty() {
            String::new()
        } else {
            format!(
                " (by the fault under way while in flight: {})",
                parts.join(", ")
            )
        }
    );
    for o in outside.iter().take(5) {
        let _ = writeln!(
            s,
            "  unknown outside any fault: {} {} from {} to {}: {}",
            o.key,
            o.value.as_deref().unwrap_or(""),
            ms(o.invoke_ns),
            ms(o.complete_ns),
            o.error.as_deref().unwrap_or("")
        );
    }
}

/// The checker's counts, lost writes, undecided keys, and the smallest violation's witness.
fn checker_lines(r: &Report, s: &mut String) {
    let v = &r.verdict;
    let _ = writeln!(
        s,
        "checker: {} of {} keys linearizable, {} not, {} undecided; {} lost acknowledged changes ({:.2} s)",
        v.linearizable_keys(),
        v.keys.len(),
        v.violations().len(),
        v.gave_up().len(),
        v.lost.len(),
        r.check_time.as_secs_f64()
    );
    for line in v.lost.iter().take(20) {
        let _ = writeln!(s, "  lost: {line}");
    }
    for key in v.gave_up() {
        let _ = writeln!(s, "  undecided (search budget ran out): {key}");
    }
    if let Some(&(key, n, KeyVerdict::Violation { why, witness })) = v.violations().first() {
        let _ = writeln!(s, "smallest non-linearizable key: {key} ({n} ops): {why}");
        s.push_str(&witness_table(witness));
    }
}

/// A history as a table, one operation per line, in order of invocation.
pub fn witness_table(ops: &[Op]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:>7} {:>6} {:<24} {:>10} {:>10} {:<7} error",
        "process", "op", "value", "invoke", "complete", "outcome"
    );
    for o in ops {
        let _ = writeln!(
            s,
            "  {:>7} {:>6} {:<24} {:>10} {:>10} {:<7} {}",
            o.process,
            o.kind.name(),
            what(o),
            ms(o.invoke_ns),
            ms(o.complete_ns),
            o.outcome.name(),
            o.error.as_deref().unwrap_or("")
        );
    }
    s
}

/// The operation's arguments and answer in a few characters: `v`, `NOT_FOUND`,
/// `1-2 -> 3-4` (a CAS from what it expected), `+3 = 7` (an INCR), `found` (a DELETE).
fn what(o: &Op) -> String {
    let text = |v: Option<&str>| v.unwrap_or("NOT_FOUND").to_string();
    match o.kind {
        Kind::Read | Kind::Write => text(o.value.as_deref()),
        Kind::Cas => format!(
            "{} -> {}",
            text(o.expected.as_ref().and_then(|e| e.value.as_deref())),
            text(o.value.as_deref())
        ),
        Kind::Incr => format!(
            "{:+} = {}",
            o.delta.unwrap_or(0),
            o.value.as_deref().unwrap_or("?")
        ),
        Kind::Delete => match o.found {
            Some(true) => "found".into(),
            Some(false) => "NOT_FOUND".into(),
            None => "?".into(),
        },
    }
}

//! Lost acknowledged changes: after the run, with every client stopped and the cluster healed,
//! one final read per key. Each change that was acknowledged (a WRITE, a CAS that wrote, a
//! DELETE that found the key, an INCR) must be what that read shows, or superseded by a change
//! that may have produced what it shows and may have taken effect after it (it did not
//! complete before the acknowledged one was sent).

use std::collections::BTreeMap;

use crate::torture::history::{Kind, Op, Outcome};

/// Why each lost acknowledged change counts as lost, key by key (empty: none lost). A key
/// whose final read never succeeded is reported too: its changes could not be checked.
pub fn lost_writes(ops: &[Op], final_process: u32) -> Vec<String> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut lost = Vec::new();
    for (key, ops) in by_key {
        let acked: Vec<&Op> = ops
            .iter()
            .copied()
            .filter(|o| o.outcome == Outcome::Ok && o.process != final_process)
            .filter(|o| leaves(o).is_some())
            .collect();
        let last_read = ops
            .iter()
            .filter(|o| o.process == final_process && o.kind == Kind::Read)
            .filter(|o| o.outcome == Outcome::Ok)
            .max_by_key(|o| o.complete_ns);
        let Some(last_read) = last_read else {
            if !acked.is_empty() {
                lost.push(format!(
                    "{key}: no final read succeeded; {} acknowledged changes unchecked",
                    acked.len()
                ));
            }
            continue;
        };
        let shown = last_read.value.as_deref();
        // Every change (not failed) that may have left what the final read shows.
        let producers: Vec<&Op> = ops
            .iter()
            .copied()
            .filter(|o| o.outcome != Outcome::Fail && may_leave(o, shown))
            .collect();
        for a in acked {
            if leaves(a) == Some(shown) {
                continue;
            }
            if producers
                .iter()
                .any(|p| p.outcome == Outcome::Unknown || p.complete_ns >= a.invoke_ns)
            {
                continue;
            }
            let why = match (shown, producers.iter().max_by_key(|p| p.complete_ns)) {
                (None, None) => "the final read says NOT_FOUND, and no DELETE can have said so".into(),
                (None, Some(p)) => format!(
                    "the final read says NOT_FOUND, from a DELETE acknowledged at {} before this began",
                    ms(p.complete_ns)
                ),
                (Some(v), None) => format!("the final read returns {v:?}, which nobody wrote"),
                (Some(v), Some(p)) => format!(
                    "the final read returns {v:?}, acknowledged at {} before this began",
                    ms(p.complete_ns)
                ),
            };
            lost.push(format!(
                "{key}: acknowledged {} of {} (process {}, {}..{}) lost: {why}",
                a.kind.name(),
                describe(a),
                a.process,
                ms(a.invoke_ns),
                ms(a.complete_ns)
            ));
        }
    }
    lost
}

/// What an acknowledged change left the key holding (`Some(None)`: missing); `None` for an
/// operation that changed nothing.
fn leaves(o: &Op) -> Option<Option<&str>> {
    match o.kind {
        Kind::Write | Kind::Cas | Kind::Incr => Some(o.value.as_deref()),
        Kind::Delete if o.found == Some(true) => Some(None),
        _ => None,
    }
}

/// Whether `o` (acknowledged or unknown) may have left the key holding `shown`.
fn may_leave(o: &Op, shown: Option<&str>) -> bool {
    match (o.kind, o.outcome) {
        // An unanswered INCR's result is unknown: any number.
        (Kind::Incr, Outcome::Unknown) => shown.is_some_and(|v| v.parse::<i64>().is_ok()),
        (Kind::Delete, Outcome::Unknown) => shown.is_none(),
        _ => leaves(o) == Some(shown),
    }
}

/// A change for people: the value written, the new count, or "the key deleted".
fn describe(o: &Op) -> String {
    match o.kind {
        Kind::Delete => "the key (deleted)".into(),
        _ => format!("{:?}", o.value.as_deref().unwrap_or("")),
    }
}

/// `12.345s`: a history time for people.
pub fn ms(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

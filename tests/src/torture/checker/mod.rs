//! The verdict on a history: per key (P-compositionality: a history is linearizable iff each
//! key's is), is it linearizable as a read/write register ([`wgl`]); and is every acknowledged
//! write still readable, or superseded, at the end ([`lost`]). On a violation the key's history
//! is shrunk to a small witness ([`shrink`]).
//!
//! How outcomes are read:
//! - an `ok` write happened once, between its invocation and completion;
//! - a `fail`ed write never happened; a read of its value is a violation on its own;
//! - an `unknown` write may have happened at any time after its invocation, or never: its
//!   completion is taken as +infinity. One that no read returns is dropped (exactly
//!   equivalent: it may be placed after everything else);
//! - a read that did not succeed says nothing and is dropped; a NOT_FOUND read returns the
//!   initial (absent) value.

pub mod lost;
pub mod shrink;
pub mod wgl;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use crate::torture::history::{Kind, Op, Outcome};
use wgl::{Call, CallKind, Search};

/// Search steps allowed per key (and per attempt while shrinking) before giving up.
pub const DEFAULT_MAX_STEPS: u64 = 20_000_000;

/// The verdict on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    Linearizable,
    /// Not linearizable: why, and a small sub-history that still is not (sorted by invocation).
    Violation {
        why: String,
        witness: Vec<Op>,
    },
    /// The search ran out of steps: neither proven nor refuted.
    GaveUp {
        ops: usize,
    },
}

/// The verdict on a whole history.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Every key, in order, with its operation count.
    pub keys: BTreeMap<String, (usize, KeyVerdict)>,
    /// Acknowledged writes that the final reads show lost (see [`lost`]).
    pub lost: Vec<String>,
}

impl Verdict {
    pub fn linearizable_keys(&self) -> usize {
        self.keys
            .values()
            .filter(|(_, v)| *v == KeyVerdict::Linearizable)
            .count()
    }

    /// Keys that are not linearizable, fewest operations first.
    pub fn violations(&self) -> Vec<(&str, usize, &KeyVerdict)> {
        let mut v: Vec<_> = self
            .keys
            .iter()
            .filter(|(_, (_, v))| matches!(v, KeyVerdict::Violation { .. }))
            .map(|(k, (n, v))| (k.as_str(), *n, v))
            .collect();
        v.sort_by_key(|&(_, n, _)| n);
        v
    }

    pub fn gave_up(&self) -> Vec<&str> {
        self.keys
            .iter()
            .filter(|(_, (_, v))| matches!(v, KeyVerdict::GaveUp { .. }))
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Linearizable, nothing lost, and every key decided.
    pub fn passed(&self) -> bool {
        self.lost.is_empty() && self.linearizable_keys() == self.keys.len()
    }
}

/// Check a whole history. `final_process`: the process whose reads are the final ones, taken
/// after every client stopped and the cluster healed (`None`: no lost-write check).
pub fn check(ops: &[Op], final_process: Option<u32>, max_steps: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    let mut verdict = Verdict::default();
    for (key, key_ops) in by_key {
        let v = check_key(&key_ops, max_steps);
        verdict.keys.insert(key.to_string(), (key_ops.len(), v));
    }
    if let Some(p) = final_process {
        verdict.lost = lost::lost_writes(ops, p);
    }
    verdict
}

/// Check one key's operations.
pub fn check_key(ops: &[Op], max_steps: u64) -> KeyVerdict {
    let prepared = match prepare(ops) {
        Ok(p) => p,
        Err((why, witness)) => return KeyVerdict::Violation { why, witness },
    };
    match wgl::search(&prepared.calls, max_steps) {
        Search::Linearizable => KeyVerdict::Linearizable,
        Search::GaveUp => KeyVerdict::GaveUp { ops: ops.len() },
        Search::NotLinearizable => {
            let kept = shrink::shrink(&prepared, max_steps);
            let mut witness: Vec<Op> = kept.iter().map(|&i| prepared.ops[i].clone()).collect();
            witness.sort_by_key(|o| (o.invoke_ns, o.complete_ns));
            KeyVerdict::Violation {
                why: format!(
                    "no order of the {} operations fits a register; {} of them still do not",
                    prepared.calls.len(),
                    witness.len()
                ),
                witness,
            }
        }
    }
}

/// A key's operations reduced to what constrains the register, ready for the search.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The operations kept, in the order of `calls`.
    pub ops: Vec<Op>,
    pub calls: Vec<Call>,
}

/// Drop what says nothing (unsuccessful reads, failed writes, unknown writes nobody read) and
/// resolve each read to the write it read. A read of a value no write wrote, or of a failed
/// write's value, is a violation without any search: `Err((why, witness))`.
pub fn prepare(ops: &[Op]) -> Result<Prepared, (String, Vec<Op>)> {
    let mut writes: HashMap<&str, &Op> = HashMap::new();
    let mut failed: HashMap<&str, &Op> = HashMap::new();
    for op in ops.iter().filter(|o| o.kind == Kind::Write) {
        let Some(v) = op.value.as_deref() else {
            continue;
        };
        let table = match op.outcome {
            Outcome::Fail => &mut failed,
            Outcome::Ok | Outcome::Unknown => &mut writes,
        };
        if let Some(earlier) = table.insert(v, op) {
            let why =
                format!("the value {v:?} was written twice: the workload must write unique values");
            return Err((why, vec![earlier.clone(), op.clone()]));
        }
    }
    let reads: Vec<&Op> = ops
        .iter()
        .filter(|o| o.kind == Kind::Read && o.outcome == Outcome::Ok)
        .collect();
    for r in &reads {
        let Some(v) = r.value.as_deref() else {
            continue;
        };
        if writes.contains_key(v) {
            continue;
        }
        return Err(match failed.get(v) {
            Some(w) => (
                format!("a read returned {v:?}, whose write was reported failed (no effect)"),
                vec![(*w).clone(), (*r).clone()],
            ),
            None => (
                format!("a read returned {v:?}, which no operation on this key wrote"),
                vec![(*r).clone()],
            ),
        });
    }
    let read_values: std::collections::HashSet<&str> =
        reads.iter().filter_map(|r| r.value.as_deref()).collect();
    let mut kept: Vec<Op> = ops
        .iter()
        .filter(|o| match (o.kind, o.outcome) {
            (Kind::Write, Outcome::Ok) => true,
            (Kind::Write, Outcome::Unknown) => {
                o.value.as_deref().is_some_and(|v| read_values.contains(v))
            }
            (Kind::Read, Outcome::Ok) => true,
            _ => false,
        })
        .cloned()
        .collect();
    kept.sort_by_key(|o| (o.invoke_ns, o.complete_ns));
    Ok(to_calls(kept))
}

/// Number the kept operations and resolve each read to its write's index.
pub(crate) fn to_calls(ops: Vec<Op>) -> Prepared {
    let index: HashMap<&str, u32> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind == Kind::Write)
        .filter_map(|(i, o)| Some((o.value.as_deref()?, i as u32)))
        .collect();
    let calls = ops
        .iter()
        .map(|o| Call {
            kind: match o.kind {
                Kind::Write => CallKind::Write,
                Kind::Read => CallKind::Read(o.value.as_deref().map(|v| index[v])),
            },
            invoke: o.invoke_ns,
            complete: match (o.kind, o.outcome) {
                (Kind::Write, Outcome::Unknown) => u64::MAX,
                _ => o.complete_ns,
            },
        })
        .collect();
    Prepared { ops, calls }
}

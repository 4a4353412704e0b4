//! The verdict on a history: per key (P-compositionality: a history is linearizable iff each
//! key's is), is it linearizable as the register of [`model`] (READ, WRITE, DELETE, CAS, INCR)
//! ([`wgl`]); and is every acknowledged change still what the final read shows, or superseded,
//! at the end ([`lost`]). On a violation the key's history is shrunk to a small witness
//! ([`shrink`]).
//!
//! How outcomes are read:
//! - an `ok` change happened once, between its invocation and completion, and its answer (a
//!   DELETE's found or not, an INCR's new value) came from the state it found;
//! - a `fail`ed change never happened; a read of its value is a violation on its own. A CAS
//!   refused with CONFLICT, or an INCR with NOT_AN_INTEGER or OVERFLOW, also says the state
//!   was such that the master had to refuse: that is checked like a read;
//! - an `unknown` change may have happened at any time after its invocation, or never: its
//!   completion is taken as +infinity, and what it does depends on the state it meets (a CAS
//!   only at its expected value, an INCR only on an integer). An unknown WRITE or CAS is left
//!   out when it provably cannot matter (see `unseen_change`);
//! - a read that did not succeed says nothing and is dropped; a NOT_FOUND read returns the
//!   initial (missing) state.

pub mod localize;
pub mod lost;
pub mod model;
pub mod shrink;
pub mod wgl;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod ops_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::torture::history::{Kind, Op, Outcome, Refusal};
use wgl::{Call, CallKind, Search, State};

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
                    "no order of the {} operations fits the key; {} of them still do not",
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

/// Drop what says nothing (unsuccessful reads, changes that failed without saying anything
/// about the key, unknown writes that can have made no difference), check what needs no
/// search (values unique per write, a value read that nobody wrote, an INCR answered with no
/// integer, one version carrying two values): `Err((why, witness))` on a violation.
pub fn prepare(ops: &[Op]) -> Result<Prepared, (String, Vec<Op>)> {
    let mut written: HashMap<&str, &Op> = HashMap::new();
    let mut failed: HashMap<&str, &Op> = HashMap::new();
    for op in ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Write | Kind::Cas))
    {
        let Some(v) = op.value.as_deref() else {
            continue;
        };
        let table = match op.outcome {
            Outcome::Fail => &mut failed,
            Outcome::Ok | Outcome::Unknown => &mut written,
        };
        if let Some(earlier) = table.insert(v, op) {
            let why =
                format!("the value {v:?} was written twice: the workload must write unique values");
            return Err((why, vec![earlier.clone(), op.clone()]));
        }
    }
    let counters = ops
        .iter()
        .any(|o| o.kind == Kind::Incr && o.outcome != Outcome::Fail);
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        match (op.kind, op.value.as_deref()) {
            (Kind::Read, Some(v)) if !written.contains_key(v) => {
                if canonical_int(v).is_some() && counters {
                    continue; // an INCR's result: the search decides.
                }
                return Err(match failed.get(v) {
                    Some(w) => (
                        format!(
                            "a read returned {v:?}, whose write was reported failed (no effect)"
                        ),
                        vec![(*w).clone(), op.clone()],
                    ),
                    None => (
                        format!("a read returned {v:?}, which no operation on this key wrote"),
                        vec![op.clone()],
                    ),
                });
            }
            (Kind::Incr, v) if v.and_then(canonical_int).is_none() => {
                let why = format!("an INCR answered {v:?}, which is no integer");
                return Err((why, vec![op.clone()]));
            }
            _ => {}
        }
    }
    versions_name_one_value(ops)?;
    let read: HashSet<&str> = ops
        .iter()
        .filter(|o| o.kind == Kind::Read && o.outcome == Outcome::Ok)
        .filter_map(|o| o.value.as_deref())
        .chain(
            ops.iter()
                .filter(|o| o.kind == Kind::Cas && o.outcome != Outcome::Fail)
                .filter_map(|o| o.expected.as_ref()?.value.as_deref()),
        )
        .collect();
    let mut kept: Vec<Op> = ops
        .iter()
        .filter(|o| match (o.kind, o.outcome) {
            (Kind::Read, outcome) => outcome == Outcome::Ok,
            (Kind::Write | Kind::Cas, Outcome::Unknown) => !unseen_change(o, ops, &read),
            (_, Outcome::Ok | Outcome::Unknown) => true,
            (_, Outcome::Fail) => o.refusal().is_some(),
        })
        .cloned()
        .collect();
    kept.sort_by_key(|o| (o.invoke_ns, o.complete_ns));
    Ok(to_calls(kept))
}

/// Whether the unknown write (or cas) `u` can be left out without changing the verdict: no
/// read returned its value and no cas expected it, the value is no integer, and no operation
/// that could have taken effect after it depends on the key's state without naming a value
/// (see [`blind`]). Then in any order that fits, the calls between `u` and the next change
/// saw its value only through reads of it (there are none), so without `u` the order still
/// fits; and an order that fits without `u` fits with it placed last.
fn unseen_change(u: &Op, ops: &[Op], read: &HashSet<&str>) -> bool {
    let Some(v) = u.value.as_deref() else {
        return true;
    };
    !read.contains(v)
        && v.parse::<i64>().is_err()
        && !ops
            .iter()
            .any(|o| blind(o) && effective_end(o) >= u.invoke_ns)
}

/// An operation whose answer depends on the key's state without naming the value it holds: a
/// DELETE that found the key, a refused CAS or INCR, and unanswered CASes and INCRs (what they
/// do depends on the state).
pub(crate) fn blind(o: &Op) -> bool {
    match (o.kind, o.outcome) {
        (Kind::Delete, Outcome::Ok) => o.found == Some(true),
        (Kind::Cas | Kind::Incr, Outcome::Unknown) => true,
        _ => o.refusal().is_some(),
    }
}

/// When an operation may take effect until: its completion, or never ending if unknown.
fn effective_end(o: &Op) -> u64 {
    match o.outcome {
        Outcome::Unknown => u64::MAX,
        _ => o.complete_ns,
    }
}

/// `Some(n)` if `v` is `n` written as INCR writes numbers.
fn canonical_int(v: &str) -> Option<i64> {
    v.parse::<i64>().ok().filter(|n| n.to_string() == v)
}

/// Every version an answer carried names one value (a DELETE's tombstone names the key missing):
/// what a CAS's expected version relies on.
fn versions_name_one_value(ops: &[Op]) -> Result<(), (String, Vec<Op>)> {
    let mut seen: HashMap<u64, (Option<&str>, &Op)> = HashMap::new();
    let carried = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| {
            let value = match o.kind {
                Kind::Delete => None,
                _ => o.value.as_deref(),
            };
            Some((o.version?, value, o))
        });
    let expected = ops
        .iter()
        .filter_map(|o| Some((o.expected.as_ref()?, o)))
        .filter(|(e, _)| e.version != 0)
        .map(|(e, o)| (e.version, e.value.as_deref(), o));
    for (version, value, op) in carried.chain(expected) {
        let (first, by) = *seen.entry(version).or_insert((value, op));
        if first != value {
            let why = format!("version {version} was answered with {first:?} and with {value:?}");
            return Err((why, vec![by.clone(), op.clone()]));
        }
    }
    Ok(())
}

/// Number the kept operations and turn each into the call the model checks.
pub(crate) fn to_calls(ops: Vec<Op>) -> Prepared {
    let mut texts: HashMap<String, u32> = HashMap::new();
    let mut state = |v: Option<&str>| match v {
        None => State::Absent,
        Some(v) => match canonical_int(v) {
            Some(n) => State::Int(n),
            None => {
                let next = texts.len() as u32;
                let id = *texts.entry(v.to_string()).or_insert(next);
                State::Text {
                    id,
                    int: v.parse().ok(),
                }
            }
        },
    };
    let calls = ops
        .iter()
        .map(|o| {
            let value = state(o.value.as_deref());
            let expected = state(o.expected.as_ref().and_then(|e| e.value.as_deref()));
            let delta = o.delta.unwrap_or(0);
            let kind = match (o.kind, o.outcome) {
                (Kind::Read, _) => CallKind::Read(value),
                (Kind::Write, _) => CallKind::Write(value),
                (Kind::Cas, Outcome::Ok) => CallKind::Cas {
                    expected,
                    new: value,
                },
                (Kind::Cas, Outcome::Unknown) => CallKind::CasMaybe {
                    expected,
                    new: value,
                },
                (Kind::Cas, Outcome::Fail) => CallKind::Conflict { expected },
                (Kind::Delete, Outcome::Ok) => CallKind::Delete {
                    found: o.found.unwrap_or(true),
                },
                (Kind::Delete, _) => CallKind::DeleteMaybe,
                (Kind::Incr, Outcome::Ok) => CallKind::Incr {
                    delta,
                    result: value.int().unwrap_or(0),
                },
                (Kind::Incr, Outcome::Unknown) => CallKind::IncrMaybe { delta },
                (Kind::Incr, Outcome::Fail) => match o.refusal() {
                    Some(Refusal::Overflow) => CallKind::Overflow { delta },
                    _ => CallKind::NotAnInteger,
                },
            };
            Call {
                kind,
                invoke: o.invoke_ns,
                complete: effective_end(o),
            }
        })
        .collect();
    Prepared { ops, calls }
}

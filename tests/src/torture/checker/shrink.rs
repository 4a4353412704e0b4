//! Shrinking a non-linearizable key history to a small witness: delete chunks of operations,
//! halving the chunk size, while what is left is still not linearizable.
//!
//! Sound: only what cannot turn a linearizable history into one that is not is dropped, so
//! whatever is left and still fails shows that the whole history fails. That is any operation
//! that leaves the state as it found it (reads, refusals, a DELETE that found nothing), and a
//! WRITE or CAS whose value no remaining read returned and no remaining CAS expected, as long
//! as nothing left depends on the state without naming a value (a DELETE that found the key, a
//! refusal, an unanswered CAS or INCR: see `checker::blind`). A change that a remaining call
//! saw is never dropped.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::wgl::{self, Search};
use super::{blind, to_calls, Prepared};
use crate::torture::history::{Kind, Op, Outcome};

/// Shrinking stops here and keeps what it has.
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Indices into `p.ops` of a small sub-history that is still not linearizable (all of them if
/// nothing could be dropped).
pub fn shrink(p: &Prepared, max_steps: u64) -> Vec<usize> {
    let deadline = Instant::now() + TIME_LIMIT;
    let mut kept: Vec<usize> = (0..p.ops.len()).collect();
    let mut chunk = kept.len().div_ceil(2);
    while chunk >= 1 {
        let mut start = 0;
        while start < kept.len() {
            if Instant::now() >= deadline {
                return kept;
            }
            let end = (start + chunk).min(kept.len());
            let candidate = without(p, &kept, start..end);
            if candidate.len() < kept.len() && fails(p, &candidate, max_steps) {
                kept = candidate;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2).min(chunk - 1);
    }
    kept
}

/// `kept` without the positions in `range`, except what may not be dropped (see above).
fn without(p: &Prepared, kept: &[usize], range: std::ops::Range<usize>) -> Vec<usize> {
    let outside = |pos: usize| !range.contains(&pos);
    let staying = || {
        kept.iter()
            .enumerate()
            .filter(move |&(pos, _)| outside(pos))
            .map(|(_, &i)| &p.ops[i])
    };
    let seen: HashSet<&str> = staying()
        .filter_map(|o| match o.kind {
            Kind::Read => o.value.as_deref(),
            Kind::Cas => o.expected.as_ref()?.value.as_deref(),
            _ => None,
        })
        .collect();
    let any_blind = staying().any(blind);
    kept.iter()
        .enumerate()
        .filter(|&(pos, &i)| outside(pos) || !droppable(&p.ops[i], &seen, any_blind))
        .map(|(_, &i)| i)
        .collect()
}

fn droppable(op: &Op, seen: &HashSet<&str>, any_blind: bool) -> bool {
    let keeps_state = match (op.kind, op.outcome) {
        (Kind::Read, _) => true,
        (Kind::Delete, Outcome::Ok) => op.found == Some(false),
        _ => op.refusal().is_some(),
    };
    let unseen_value = matches!(op.kind, Kind::Write | Kind::Cas)
        && !any_blind
        && op
            .value
            .as_deref()
            .is_some_and(|v| !seen.contains(v) && v.parse::<i64>().is_err());
    keeps_state || unseen_value
}

fn fails(p: &Prepared, subset: &[usize], max_steps: u64) -> bool {
    let ops = subset.iter().map(|&i| p.ops[i].clone()).collect();
    wgl::search(&to_calls(ops).calls, max_steps) == Search::NotLinearizable
}

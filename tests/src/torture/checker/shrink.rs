//! Shrinking a non-linearizable key history to a small witness: delete chunks of operations,
//! halving the chunk size, while what is left is still not linearizable.
//!
//! Sound: if a history is linearizable, so is any part of it that drops reads, and writes that
//! no remaining read returned (take the full linearization and leave those out). So whatever is
//! left here and still fails shows that the whole history fails. A write that a remaining read
//! returned is never dropped: the read would then fail trivially.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::wgl::{self, Search};
use super::{to_calls, Prepared};
use crate::torture::history::Kind;

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

/// `kept` without the positions in `range`, except writes that a remaining read returned.
fn without(p: &Prepared, kept: &[usize], range: std::ops::Range<usize>) -> Vec<usize> {
    let outside = |pos: usize| !range.contains(&pos);
    let read_values: HashSet<&str> = kept
        .iter()
        .enumerate()
        .filter(|&(pos, &i)| outside(pos) && p.ops[i].kind == Kind::Read)
        .filter_map(|(_, &i)| p.ops[i].value.as_deref())
        .collect();
    kept.iter()
        .enumerate()
        .filter(|&(pos, &i)| {
            let op = &p.ops[i];
            outside(pos)
                || (op.kind == Kind::Write
                    && op.value.as_deref().is_some_and(|v| read_values.contains(v)))
        })
        .map(|(_, &i)| i)
        .collect()
}

fn fails(p: &Prepared, subset: &[usize], max_steps: u64) -> bool {
    let ops = subset.iter().map(|&i| p.ops[i].clone()).collect();
    wgl::search(&to_calls(ops).calls, max_steps) == Search::NotLinearizable
}

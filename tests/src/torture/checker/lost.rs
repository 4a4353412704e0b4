//! Lost acknowledged writes: after the run, with every client stopped and the cluster healed,
//! one final read per key. Each write that was acknowledged must be what that read returns,
//! or superseded by the write that the read does return: one that may have taken effect after
//! it (it did not complete before the acknowledged write was sent).

use std::collections::{BTreeMap, HashMap};

use crate::torture::history::{Kind, Op, Outcome};

/// Why each lost acknowledged write counts as lost, key by key (empty: none lost). A key whose
/// final read never succeeded is reported too: its writes could not be checked.
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
            .filter(|o| o.kind == Kind::Write && o.outcome == Outcome::Ok)
            .collect();
        let last_read = ops
            .iter()
            .filter(|o| o.process == final_process && o.kind == Kind::Read)
            .filter(|o| o.outcome == Outcome::Ok)
            .max_by_key(|o| o.complete_ns);
        let Some(last_read) = last_read else {
            if !acked.is_empty() {
                lost.push(format!(
                    "{key}: no final read succeeded; {} acknowledged writes unchecked",
                    acked.len()
                ));
            }
            continue;
        };
        let writes: HashMap<&str, &Op> = ops
            .iter()
            .filter(|o| o.kind == Kind::Write && o.outcome != Outcome::Fail)
            .filter_map(|o| Some((o.value.as_deref()?, *o)))
            .collect();
        let final_value = last_read.value.as_deref();
        let final_write = final_value.and_then(|v| writes.get(v).copied());
        for w in acked {
            let v = w.value.as_deref().unwrap_or_default();
            if final_value == Some(v) {
                continue;
            }
            let why = match (final_value, final_write) {
                (None, _) => "the final read says NOT_FOUND".to_string(),
                (Some(f), None) => format!("the final read returns {f:?}, which nobody wrote"),
                (Some(f), Some(fw))
                    if fw.outcome == Outcome::Ok && fw.complete_ns < w.invoke_ns =>
                {
                    format!(
                        "the final read returns {f:?}, acknowledged at {} before this write began",
                        ms(fw.complete_ns)
                    )
                }
                _ => continue,
            };
            lost.push(format!(
                "{key}: acknowledged write of {v:?} (process {}, {}..{}) lost: {why}",
                w.process,
                ms(w.invoke_ns),
                ms(w.complete_ns)
            ));
        }
    }
    lost
}

/// `12.345s`: a history time for people.
pub fn ms(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

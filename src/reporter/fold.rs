//! Per-node lines, folded: the tasks of one per-node kind that ended alike
//! (same state, same reason) print as one line at the end of the build,
//! `ran pxe: 46 nodes (node03 … node52)`, or, with `-v`, one line each; in
//! sorted order either way, whatever order the scheduler finished them in.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{Finished, TaskState};

/// The order groups print in: what ran, then what would, was cached, was skipped.
fn rank(s: TaskState) -> u8 {
    match s {
        TaskState::Ran => 0,
        TaskState::Stale => 1,
        TaskState::Cached => 2,
        TaskState::Skipped => 3,
        TaskState::Failed => 4,
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    rank: u8,
    kind: String,
    /// The reason without values (`input changed: node.mac`).
    reason: Option<String>,
}

/// One task of a group: its node and its own line (shown with `-v`, or
/// when it is alone in its group).
struct Entry {
    node: String,
    line: String,
    /// Its reason in full (`input changed: node.mac a -> b`).
    reason: Option<String>,
}

/// The per-node tasks seen so far, grouped.
#[derive(Default)]
pub(super) struct Folds {
    groups: BTreeMap<GroupKey, (TaskState, Vec<Entry>)>,
}

impl Folds {
    /// Keeps `f`, whose own line is `line`, for the end.
    pub(super) fn add(&mut self, f: &Finished, line: String) {
        let (kind, node) = f.task.split_once(':').unwrap_or((f.task.as_str(), ""));
        let key = GroupKey {
            rank: rank(f.state),
            kind: kind.to_string(),
            reason: f.reason_kind.clone().or_else(|| f.reason.clone()),
        };
        self.groups
            .entry(key)
            .or_insert_with(|| (f.state, Vec::new()))
            .1
            .push(Entry {
                node: node.to_string(),
                line,
                reason: f.reason.clone(),
            });
    }

    /// The lines to print, in order: one a group, or with `verbose` one a
    /// task; a group of one prints its task's own line.
    pub(super) fn lines(self, verbose: bool) -> Vec<String> {
        let mut out = Vec::new();
        for (key, (state, mut entries)) in self.groups {
            entries.sort_by(|a, b| natural_cmp(&a.node, &b.node));
            if verbose || entries.len() == 1 {
                out.extend(entries.into_iter().map(|e| e.line));
                continue;
            }
            out.push(folded(&key, state, &entries));
        }
        out
    }
}

/// `ran pxe: 46 nodes (node03 … node52): REASON`.
fn folded(key: &GroupKey, state: TaskState, entries: &[Entry]) -> String {
    let n = entries.len();
    let kind = &key.kind;
    if state == TaskState::Skipped {
        if let Some(dep) = key
            .reason
            .as_deref()
            .and_then(|r| r.strip_prefix("dependency failed: "))
        {
            return format!("{n} skipped because {kind}'s dependency {dep} failed");
        }
    }
    let first = &entries[0].node;
    let last = &entries[n - 1].node;
    let range = if n == 2 {
        format!("{first}, {last}")
    } else {
        format!("{first} … {last}")
    };
    let word = match state {
        TaskState::Ran => "ran",
        TaskState::Stale => "would run",
        TaskState::Cached => "cached",
        TaskState::Skipped => "skipped",
        TaskState::Failed => "failed",
    };
    // The full reason when all share it (`… -> console=ttyS1`).
    let same = entries.iter().all(|e| e.reason == entries[0].reason);
    let reason = if same {
        &entries[0].reason
    } else {
        &key.reason
    };
    let reason = reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    format!("{word} {kind}: {n} nodes ({range}){reason}")
}

/// Orders names as people count: `node2` before `node10`.
pub(super) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.len() - a.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                let db = b.len() - b.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                let (na, nb) = (&a[..da], &b[..db]);
                let (ta, tb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
                let o = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
                    .then_with(|| na.len().cmp(&nb.len()));
                if o != Ordering::Equal {
                    return o;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(task: &str, reason: &str) -> Finished {
        Finished {
            task: task.into(),
            state: TaskState::Ran,
            reason: Some(reason.into()),
            seconds: 0.0,
            log: None,
            tail: Vec::new(),
            per_node: true,
            reason_kind: None,
        }
    }

    #[test]
    fn names_sort_as_people_count() {
        let mut v = vec!["node10", "node2", "node02", "gpu1", "node1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["gpu1", "node1", "node2", "node02", "node10"]);
    }

    #[test]
    fn a_group_folds_in_sorted_order_and_a_lone_task_keeps_its_line() {
        let mut f = Folds::default();
        for n in [12, 3, 52, 7] {
            let t = ran(
                &format!("pxe:node{n:02}"),
                "dependency rebuilt: publish:default",
            );
            f.add(&t, format!("ran {}", t.task));
        }
        let t = ran("pxe:node99", "input changed: node.mac");
        f.add(
            &t,
            "ran pxe:node99 (0.00s): input changed: node.mac a -> b".into(),
        );
        assert_eq!(
            f.lines(false),
            [
                "ran pxe: 4 nodes (node03 … node52): dependency rebuilt: publish:default",
                "ran pxe:node99 (0.00s): input changed: node.mac a -> b",
            ]
        );
    }
}

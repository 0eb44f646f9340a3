//! A rollout's batches: the canaries first (the given ones, or the first
//! node by name), then the other nodes by name, `--batch N` or
//! `--percent P` of all at a time.

use serde::{Deserialize, Serialize};

use crate::names::natural_cmp;

/// How many nodes a batch after the canaries holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Size {
    /// N nodes (at least 1).
    Count(usize),
    /// P percent of all the nodes moved, rounded down, at least 1.
    Percent(u32),
}

impl Size {
    /// The batch size for `total` nodes.
    pub fn of(self, total: usize) -> usize {
        match self {
            Size::Count(n) => n.max(1),
            Size::Percent(p) => (total * p.min(100) as usize / 100).max(1),
        }
    }
}

/// The batches of `nodes`: `canaries` (those of them that are among
/// `nodes`; none: the first node by name) first, then the rest by name,
/// `size` at a time. Empty for no nodes.
pub fn batches(nodes: &[String], canaries: &[String], size: Size) -> Vec<Vec<String>> {
    let mut sorted: Vec<&String> = nodes.iter().collect();
    sorted.sort_by(|a, b| natural_cmp(a, b));
    sorted.dedup();
    let Some(first) = sorted.first() else {
        return Vec::new();
    };
    let mut canary: Vec<String> = sorted
        .iter()
        .filter(|n| canaries.contains(n))
        .map(|n| n.to_string())
        .collect();
    if canary.is_empty() {
        canary.push(first.to_string());
    }
    let rest: Vec<String> = sorted
        .iter()
        .filter(|n| !canary.contains(n))
        .map(|n| n.to_string())
        .collect();
    let n = size.of(sorted.len());
    let mut out = vec![canary];
    out.extend(rest.chunks(n).map(<[String]>::to_vec));
    out
}

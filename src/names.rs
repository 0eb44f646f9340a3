//! Node names as people read them: sorted with their numbers as numbers
//! (`node2` before `node10`), and long lists folded into runs
//! (`node01 … node50 (50 nodes)`) without leaving any name out.
//!
//! Imports nothing of ddc.

use std::cmp::Ordering;

/// Compares names with their runs of digits as numbers: `node2` before
/// `node10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[i - 1].is_ascii_digit() {
                out.push((b[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x, y) {
            ((true, x), (true, y)) => {
                let (tx, ty) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                tx.len()
                    .cmp(&ty.len())
                    .then(tx.cmp(ty))
                    .then(x.len().cmp(&y.len()))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// A name as its text before and after its last number, and that number
/// with its digits.
fn split_number(name: &str) -> Option<(&str, &str, &str)> {
    let end = name.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = name[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    Some((&name[..start], &name[start..end], &name[end..]))
}

/// Whether `b` is the name after `a` (`node09`, `node10`).
fn follows(a: &str, b: &str) -> bool {
    match (split_number(a), split_number(b)) {
        (Some((pa, da, sa)), Some((pb, db, sb))) if pa == pb && sa == sb => {
            let (Ok(x), Ok(y)) = (da.parse::<u64>(), db.parse::<u64>()) else {
                return false;
            };
            let padded = |d: &str| d.len() > 1 && d.starts_with('0');
            y == x + 1 && (da.len() == db.len() || !padded(db))
        }
        _ => false,
    }
}

/// Every name, sorted, runs of three or more consecutive names folded as
/// `first … last`; the count follows when anything was folded or the list
/// is long. `-` for none.
pub fn fold(names: &[String]) -> String {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort_by(|a, b| natural_cmp(a, b));
    let mut parts = Vec::new();
    let mut folded = false;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && follows(sorted[j], sorted[j + 1]) {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{} … {}", sorted[i], sorted[j]));
            folded = true;
        } else {
            parts.extend(sorted[i..=j].iter().map(|s| s.to_string()));
        }
        i = j + 1;
    }
    match sorted.len() {
        0 => "-".to_string(),
        n if folded || n > 6 => format!("{} ({n} nodes)", parts.join(", ")),
        _ => parts.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sort_as_numbers() {
        let mut v = vec!["node10", "node2", "node02", "gpu1", "node1a"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["gpu1", "node1a", "node2", "node02", "node10"]);
    }

    #[test]
    fn lists_fold_into_runs_and_keep_every_name() {
        let v = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let fifty: Vec<String> = (1..=50).map(|i| format!("node{i:02}")).collect();
        assert_eq!(fold(&fifty), "node01 … node50 (50 nodes)");
        assert_eq!(
            fold(&v(&["node10", "node09", "node08", "gpu1", "node12"])),
            "gpu1, node08 … node10, node12 (5 nodes)"
        );
        assert_eq!(fold(&v(&["a", "b"])), "a, b");
        assert_eq!(fold(&[]), "-");
    }
}

//! A task that ran becomes a [`Record`]: its outputs fingerprinted (files by
//! content with a stat stamp, trees through the stat cache), their combined
//! output hash, and the names and short hashes of its key's inputs.

use std::path::Path;

use anyhow::{Context, Result};

use crate::cache::{self, CacheDirs, OutputRecord, Record};
use crate::fingerprint::{hash_output, scan_tree, CacheKey, Fingerprint, Input, StatStamp};
use crate::recipes::{DepResult, Produced, TaskSpec};

/// Fingerprints what `spec` produced and records it under `key`.
pub(crate) fn record(
    dirs: &CacheDirs,
    spec: &TaskSpec,
    key: CacheKey,
    inputs: &[Input],
    deps: &[DepResult],
    produced: &Produced,
    seconds: f64,
) -> Result<Record> {
    let mut outputs = Vec::new();
    let mut h = blake3::Hasher::new();
    for p in &produced.files {
        let m = std::fs::symlink_metadata(p)
            .with_context(|| format!("{} did not write {}", spec.id, p.display()))?;
        let hash = hash_output(p)?;
        add(&mut h, p, &hash);
        outputs.push(OutputRecord {
            path: p.clone(),
            hash,
            stamp: StatStamp::of(&m),
            dir: false,
        });
    }
    for p in &produced.dirs {
        let known = produced
            .scanned
            .iter()
            .find(|(d, _)| d == p)
            .map(|(_, t)| t);
        let (tree, _) = scan_tree(p, known)?;
        cache::save_tree(&dirs.tree(spec.id.as_str(), outputs.len()), &tree)?;
        let hash = tree.fingerprint();
        add(&mut h, p, &hash);
        outputs.push(OutputRecord {
            path: p.clone(),
            hash,
            stamp: root_stamp(p),
            dir: true,
        });
    }
    h.update(serde_json::to_string(&produced.facts)?.as_bytes());
    if produced.layered {
        for d in deps {
            h.update(&d.out_hash.0);
        }
    }
    let all = || spec.inputs.iter().chain(inputs);
    Ok(Record {
        task: spec.id.to_string(),
        key,
        input_names: all()
            .map(|i| i.name.as_ref())
            .collect::<Vec<_>>()
            .join("\n"),
        input_hashes: all().map(|i| i.hash.prefix64()).collect(),
        outputs,
        out_hash: Fingerprint(*h.finalize().as_bytes()),
        seconds,
        replaced: Vec::new(),
        // The engine's to fill: it knows the config the values come from.
        input_values: String::new(),
    })
}

/// The paths an earlier run of the task left that `new` no longer produces:
/// the outputs of its record `old` and those it had yet to remove, and the
/// `orphans` of a killed run.
pub(crate) fn replaced<'a>(
    old: Option<&'a Record>,
    orphans: impl Iterator<Item = &'a std::path::PathBuf>,
    new: &Record,
) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = old
        .into_iter()
        .flat_map(|o| o.outputs.iter().map(|o| &o.path).chain(&o.replaced))
        .chain(orphans)
        .filter(|p| !new.outputs.iter().any(|o| &o.path == *p))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The stat stamp of a tree's root, which stands for the tree on a no-op.
fn root_stamp(p: &Path) -> StatStamp {
    std::fs::symlink_metadata(p)
        .map(|m| StatStamp::of(&m))
        .unwrap_or_default()
}

/// `old` with the current stamps of its trees' roots, if any moved (the
/// trees were found unchanged in depth).
pub(crate) fn restamp(old: &Record) -> Option<Record> {
    let moved = |o: &OutputRecord| o.dir && root_stamp(&o.path) != o.stamp;
    if !old.outputs.iter().any(moved) {
        return None;
    }
    let mut r = old.clone();
    for o in r.outputs.iter_mut().filter(|o| o.dir) {
        o.stamp = root_stamp(&o.path);
    }
    Some(r)
}

fn add(h: &mut blake3::Hasher, path: &Path, hash: &Fingerprint) {
    h.update(path.as_os_str().as_encoded_bytes());
    h.update(&hash.0);
}

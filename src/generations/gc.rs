//! What `gc` keeps and deletes: the reasons to keep a generation (the
//! strongest named), and the deletion of the rest, retired images' too.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Result;

use super::{current, entries_by_generation, human, list, resolve};
use crate::config::Config;
use crate::fsutil;

/// Why `gc` keeps a generation. Several may hold; the strongest (the
/// first variant) is the one named.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Keep {
    /// Where `current` points: new boots get it.
    Current,
    /// Nodes report running it (their root): deleting it breaks them.
    Running(Vec<String>),
    /// An unfinished `ddc rollout` may pin these nodes back to it.
    BackOut(Vec<String>),
    /// A node's `image = "IMG@GEN"` pins it.
    PinnedBy(String),
    /// A boot entry on disk points at it.
    BootEntry(String),
    /// One of the newest `--keep` generations.
    Newest(usize),
}

impl std::fmt::Display for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keep::Current => f.write_str("current"),
            Keep::Running(nodes) => write!(f, "running on {}", crate::names::fold(nodes)),
            Keep::BackOut(nodes) => write!(
                f,
                "rollout back-out: an unfinished rollout may pin {} back to it",
                crate::names::fold(nodes)
            ),
            Keep::PinnedBy(node) => write!(f, "pinned by {node}"),
            Keep::BootEntry(file) => write!(f, "boot entry {file} points at it"),
            Keep::Newest(n) => write!(f, "one of the newest {n}"),
        }
    }
}

/// Generations nodes report running, by (image, generation), with the nodes.
pub type Running = BTreeMap<(String, String), Vec<String>>;

/// Generations `gc` must keep, per image, with the strongest reason;
/// `running` ones too unless `force`, and `backout` ones (the generations an
/// unfinished rollout may pin its nodes back to) always. Of a `retired`
/// image only those a boot entry points at, or a node runs, stay.
pub fn protected(
    cfg: &Config,
    keep: usize,
    retired: &[String],
    running: &Running,
    backout: &Running,
    force: bool,
) -> BTreeMap<(String, String), Keep> {
    let mut out: BTreeMap<(String, String), Keep> = BTreeMap::new();
    let mut hold = |image: &str, g: &str, why: Keep| {
        let e = out
            .entry((image.to_string(), g.to_string()))
            .or_insert(why.clone());
        if why < *e {
            *e = why;
        }
    };
    let entries = entries_by_generation(cfg);
    for ((img, g), files) in &entries {
        if retired.contains(img) {
            if let Some(f) = files.iter().min() {
                hold(img, g, Keep::BootEntry(f.clone()));
            }
        }
    }
    for ((img, g), nodes) in running.iter().filter(|_| !force) {
        hold(img, g, Keep::Running(nodes.clone()));
    }
    for ((img, g), nodes) in backout {
        hold(img, g, Keep::BackOut(nodes.clone()));
    }
    for image in cfg.images.keys() {
        let gens = list(&cfg.paths.nfs_root, image);
        if let Some(c) = current(&cfg.paths.nfs_root, image) {
            hold(image, &c, Keep::Current);
        }
        for g in gens.iter().rev().take(keep) {
            hold(image, &g.name, Keep::Newest(keep));
        }
        // Of several pinning nodes (or boot entries), the first by name is named.
        for n in cfg.nodes.iter().filter(|n| &n.image == image) {
            if let Some(g) = n.pin.as_deref().and_then(|pin| resolve(&gens, pin)) {
                hold(image, &g.name, Keep::PinnedBy(n.hostname.clone()));
            }
        }
        for ((img, g), files) in &entries {
            if img == image {
                if let Some(f) = files.iter().min() {
                    hold(image, g, Keep::BootEntry(f.clone()));
                }
            }
        }
    }
    out
}

/// What `gc` deletes (or would, with `dry_run`): lines to print, and the
/// bytes freed. Every generation of a `retired` image goes, unless a boot
/// entry points at it or a node runs it; then its folders. With `force`,
/// generations in `running` go too, each line naming the nodes that lose
/// their root.
pub fn gc(
    cfg: &Config,
    keep: usize,
    dry_run: bool,
    retired: &[String],
    running: &Running,
    backout: &Running,
    force: bool,
) -> Result<(Vec<String>, u64)> {
    // Deleted without following a link below them.
    fsutil::own(&cfg.paths.nfs_root, fsutil::DIR_MODE);
    fsutil::own(&cfg.paths.tftp_root, fsutil::DIR_MODE);
    let keep_set = protected(cfg, keep, retired, running, backout, force);
    let mut lines = Vec::new();
    let mut freed = 0u64;
    for image in cfg.images.keys().chain(retired) {
        let tag = if retired.contains(image) {
            ", retired image"
        } else {
            ""
        };
        // What deleting a generation frees: its files that no other
        // generation links to (counted when it is deleted, in order).
        for g in list(&cfg.paths.nfs_root, image) {
            let key = (image.clone(), g.name.clone());
            if let Some(why) = keep_set.get(&key) {
                lines.push(format!("keep   {image}/{} ({why})", g.name));
                continue;
            }
            let root = cfg.paths.nfs_root.join(image).join(&g.name);
            let own = unique_bytes(&root);
            freed += own;
            let breaks = running.get(&key).map_or_else(String::new, |nodes| {
                format!(
                    "; breaks {}: running on it, their root goes",
                    crate::names::fold(nodes)
                )
            });
            if dry_run {
                lines.push(format!(
                    "would delete {image}/{} (frees {}{tag}{breaks})",
                    g.name,
                    human(own)
                ));
            } else {
                fsutil::safe_remove_dir_all(&root)?;
                fsutil::remove_path(&crate::manifest::path_of(&root))?;
                fsutil::remove_path(&cfg.paths.tftp_root.join(image).join(&g.name))?;
                lines.push(format!(
                    "deleted {image}/{} (freed {}{tag}{breaks})",
                    g.name,
                    human(own)
                ));
            }
        }
    }
    if !dry_run {
        for image in retired {
            let kept = keep_set.keys().any(|(i, _)| i == image);
            if !kept {
                // Its `current` link, rollback record and manifests (never
                // followed), then the kernel folders.
                fsutil::safe_remove_dir_all(&cfg.paths.nfs_root.join(image))?;
                fsutil::safe_remove_dir_all(&cfg.paths.tftp_root.join(image))?;
            }
        }
    }
    Ok((lines, freed))
}

/// Disk use of a tree, each file counted once however many links it has.
pub fn tree_bytes(root: &Path) -> u64 {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    walkdir::WalkDir::new(root)
        .same_file_system(true)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| seen.insert((m.dev(), m.ino())))
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Bytes of files in a tree that no other path links to.
fn unique_bytes(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .same_file_system(true)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_dir() || m.nlink() == 1)
        .map(|m| m.blocks() * 512)
        .sum()
}

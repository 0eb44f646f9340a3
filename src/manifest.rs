//! A published generation's manifest, `nfs_root/IMG/NNNN-HASH.manifest`
//! beside it: every path with its type, mode, owner, size and content hash
//! (a link's hash is its target's), and the installed packages. `ddc verify`
//! checks a generation against it; `ddc diff` compares two of them.
//!
//! Knows trees and files only: must not import config, recipes or engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::fingerprint::{scan_tree, TreeEntry, TreeStamp};

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) arch: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) packages: Vec<Package>,
    pub(crate) tree: TreeStamp,
}

/// Where the manifest of `generation` (a folder of `nfs_root/IMG`) is.
pub(crate) fn path_of(generation: &Path) -> PathBuf {
    let mut name = generation.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest");
    generation.with_file_name(name)
}

impl Manifest {
    /// Scans a generation: every file hashed, the packages from its dpkg
    /// database (none when it has none).
    pub(crate) fn scan(root: &Path) -> Result<Manifest> {
        let (tree, _) = scan_tree(root, None)?;
        Ok(Manifest {
            packages: packages(root),
            tree,
        })
    }

    pub(crate) fn save(&self, generation: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self)?;
        crate::fsutil::atomic_write(&path_of(generation), &bytes, true)
    }

    pub(crate) fn load(generation: &Path) -> Result<Manifest> {
        let p = path_of(generation);
        let bytes = std::fs::read(&p).with_context(|| {
            format!(
                "{} has no manifest ({}): it was published by an older ddc, so there is nothing to check it against",
                generation.display(),
                p.display()
            )
        })?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a manifest", p.display()))
    }
}

/// The packages installed in an image, read from its own dpkg database.
fn packages(root: &Path) -> Vec<Package> {
    let admindir = root.join("var/lib/dpkg");
    if !admindir.join("status").is_file() {
        return Vec::new();
    }
    let out = std::process::Command::new("dpkg-query")
        .arg(format!("--admindir={}", admindir.display()))
        .args([
            "-W",
            "-f",
            "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n",
        ])
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    let mut v: Vec<Package> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let status = f.next()?;
            let (name, version, arch) = (f.next()?, f.next()?, f.next()?);
            status.starts_with("ii").then(|| Package {
                name: name.into(),
                version: version.into(),
                arch: arch.into(),
            })
        })
        .collect();
    v.sort();
    v
}

/// Whether two manifests describe the same generation bit for bit: the
/// same packages, and the same paths with the same type, mode, owner,
/// content and mtime.
pub(crate) fn identical(a: &Manifest, b: &Manifest) -> bool {
    let same = |x: &TreeEntry, y: &TreeEntry| {
        x.path == y.path
            && x.meta == y.meta
            && x.hash == y.hash
            && x.stamp.mtime_ns == y.stamp.mtime_ns
    };
    a.packages == b.packages
        && a.tree.entries.len() == b.tree.entries.len()
        && a.tree
            .entries
            .iter()
            .zip(&b.tree.entries)
            .all(|(x, y)| same(x, y))
}

/// How two trees differ, path by path.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct TreeDiff {
    pub(crate) changed: Vec<String>,
    pub(crate) added: Vec<String>,
    pub(crate) removed: Vec<String>,
}

impl TreeDiff {
    pub(crate) fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.added.is_empty() && self.removed.is_empty()
    }
}

/// What differs from `a` to `b`: content, type, mode or owner.
pub(crate) fn diff_trees(a: &TreeStamp, b: &TreeStamp) -> TreeDiff {
    let index = |t: &TreeStamp| -> BTreeMap<String, TreeEntry> {
        t.entries
            .iter()
            .map(|e| (e.path.clone(), e.clone()))
            .collect()
    };
    let (a, b) = (index(a), index(b));
    let mut d = TreeDiff::default();
    for (path, ea) in &a {
        match b.get(path) {
            None => d.removed.push(path.clone()),
            Some(eb) if eb.hash != ea.hash || eb.meta != ea.meta => d.changed.push(path.clone()),
            Some(_) => {}
        }
    }
    d.added = b.keys().filter(|p| !a.contains_key(*p)).cloned().collect();
    d
}

/// How two package lists differ.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct PackageDiff {
    pub(crate) added: Vec<Package>,
    pub(crate) removed: Vec<Package>,
    /// (name, from version, to version)
    pub(crate) upgraded: Vec<(String, String, String)>,
}

pub(crate) fn diff_packages(a: &[Package], b: &[Package]) -> PackageDiff {
    let by_name = |v: &[Package]| -> BTreeMap<String, Package> {
        v.iter().map(|p| (p.name.clone(), p.clone())).collect()
    };
    let (a, b) = (by_name(a), by_name(b));
    let mut d = PackageDiff::default();
    for (name, pa) in &a {
        match b.get(name) {
            None => d.removed.push(pa.clone()),
            Some(pb) if pb.version != pa.version => {
                d.upgraded
                    .push((name.clone(), pa.version.clone(), pb.version.clone()))
            }
            Some(_) => {}
        }
    }
    d.added = b
        .iter()
        .filter(|(n, _)| !a.contains_key(*n))
        .map(|(_, p)| p.clone())
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_differ_by_content_mode_presence() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        for f in ["etc/a", "etc/b", "etc/c"] {
            std::fs::write(r.join(f), f).unwrap();
        }
        let before = Manifest::scan(r).unwrap();
        std::fs::write(r.join("etc/a"), "edited").unwrap();
        std::fs::remove_file(r.join("etc/b")).unwrap();
        std::fs::write(r.join("etc/d"), "new").unwrap();
        let after = Manifest::scan(r).unwrap();
        let diff = diff_trees(&before.tree, &after.tree);
        assert_eq!(diff.changed, ["etc/a"]);
        assert_eq!(diff.removed, ["etc/b"]);
        assert_eq!(diff.added, ["etc/d"]);
        assert!(diff_trees(&after.tree, &after.tree).is_empty());
    }

    #[test]
    fn packages_added_removed_upgraded() {
        let p = |n: &str, v: &str| Package {
            name: n.into(),
            version: v.into(),
            arch: "amd64".into(),
        };
        let d = diff_packages(&[p("a", "1"), p("b", "1")], &[p("a", "2"), p("c", "1")]);
        assert_eq!(d.added, [p("c", "1")]);
        assert_eq!(d.removed, [p("b", "1")]);
        assert_eq!(d.upgraded, [("a".into(), "1".into(), "2".into())]);
    }

    #[test]
    fn identical_means_content_metadata_and_mtimes() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::write(r.join("a"), "a").unwrap();
        let one = Manifest::scan(r).unwrap();
        assert!(identical(&one, &Manifest::scan(r).unwrap()));
        let f = std::fs::File::options()
            .write(true)
            .open(r.join("a"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
        let touched = Manifest::scan(r).unwrap();
        assert!(diff_trees(&one.tree, &touched.tree).is_empty());
        assert!(!identical(&one, &touched), "an mtime differs");
        let mut more = touched.clone();
        more.packages.push(Package {
            name: "x".into(),
            version: "1".into(),
            arch: "all".into(),
        });
        assert!(!identical(&touched, &more), "a package differs");
    }

    #[test]
    fn the_manifest_sits_beside_its_generation() {
        assert_eq!(
            path_of(Path::new("/srv/nfsroot/default/0001-abc")),
            Path::new("/srv/nfsroot/default/0001-abc.manifest")
        );
    }
}

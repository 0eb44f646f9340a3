//! Published generations of each image: `nfs_root/IMG/NNNN-HASH/` (the root
//! filesystem) with `tftp_root/IMG/NNNN-HASH/` (kernel and initrd), and the
//! `nfs_root/IMG/current` link that boot entries follow. A published
//! generation is never written again; `current` switches in one rename.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::fsutil;

mod gc;
pub use gc::{gc, tree_bytes, Running};

/// One published generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    pub seq: u32,
    /// `NNNN-HASH`, the folder name.
    pub name: String,
}

/// Every image with generations in `nfs_root`, in the Ddcfile or not
/// (nodes may still run on an image that left it).
pub fn published_images(nfs_root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(nfs_root)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !list(nfs_root, name).is_empty())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Images no longer in the Ddcfile (retired) that left something behind:
/// cache layers (a folder of `cache_images`, the cache's `images`), or
/// generations in the nfs_root. `ddc gc` deletes them.
pub fn retired(cfg: &Config, cache_images: &Path) -> Vec<String> {
    let mut out: BTreeSet<String> = std::fs::read_dir(cache_images)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.extend(published_images(&cfg.paths.nfs_root));
    out.retain(|i| !cfg.images.contains_key(i));
    out.into_iter().collect()
}

/// The generations of an image, oldest first.
pub fn list(nfs_root: &Path, image: &str) -> Vec<Generation> {
    let mut gens: Vec<Generation> = std::fs::read_dir(nfs_root.join(image))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let (seq, hash) = name.split_once('-')?;
                    let ok = seq.len() == 4
                        && seq.bytes().all(|b| b.is_ascii_digit())
                        && hash.len() == 12
                        && hash.bytes().all(|b| b.is_ascii_hexdigit())
                        && e.file_type().is_ok_and(|t| t.is_dir());
                    if ok {
                        Some(Generation {
                            seq: seq.parse().ok()?,
                            name,
                        })
                    } else {
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    gens.sort_by_key(|g| g.seq);
    gens
}

fn pointer(nfs_root: &Path, image: &str) -> PathBuf {
    nfs_root.join(image).join("current")
}

/// The generation boot entries use: where `current` points, if it names a
/// published generation.
pub fn current(nfs_root: &Path, image: &str) -> Option<String> {
    let target = std::fs::read_link(pointer(nfs_root, image)).ok()?;
    let name = target.to_str()?.to_string();
    nfs_root.join(image).join(&name).is_dir().then_some(name)
}

/// Points `current` at a generation, atomically (a new link renamed over the
/// old). The image's folder and the generation are reached without
/// following a link (`fsutil`: the nfs_root is one of ddc's own folders).
pub fn set_current(nfs_root: &Path, image: &str, generation: &str) -> Result<()> {
    fsutil::own(nfs_root, fsutil::DIR_MODE);
    let dir = fsutil::Folder::open(&nfs_root.join(image))?;
    if !dir.has_dir(generation)? {
        bail!("{image} has no generation {generation}");
    }
    dir.symlink(Path::new(generation), "current")
        .with_context(|| format!("cannot switch {}", pointer(nfs_root, image).display()))?;
    dir.sync()
}

/// The content hash of a generation, `HASH` of `NNNN-HASH`: the same
/// content published again gets a new number and the same hash.
pub fn content(generation: &str) -> &str {
    generation.split_once('-').map_or(generation, |(_, h)| h)
}

fn rolled_back_file(nfs_root: &Path, image: &str) -> PathBuf {
    nfs_root.join(image).join("rolled-back")
}

/// The contents (hashes) of `image` that an administrator rolled back from:
/// a build that publishes one of them again does not make it current.
/// Kept beside `current`, so neither `ddc clean` nor `gc` forgets it.
pub fn rolled_back(nfs_root: &Path, image: &str) -> BTreeSet<String> {
    std::fs::read_to_string(rolled_back_file(nfs_root, image))
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Records that `image` was rolled back from content `from` (if any) to
/// content `to`: `from` is refused as current until rolled forward, `to` is
/// chosen again.
pub fn record_rollback(nfs_root: &Path, image: &str, from: Option<&str>, to: &str) -> Result<()> {
    let mut set = rolled_back(nfs_root, image);
    set.remove(to);
    if let Some(f) = from.filter(|f| *f != to) {
        set.insert(f.to_string());
    }
    let text: String = set.iter().map(|h| format!("{h}\n")).collect();
    crate::fsutil::atomic_write(&rolled_back_file(nfs_root, image), text.as_bytes(), true)
}

/// Finds a generation by its full name, its sequence number (`2`, `0002`)
/// or a prefix of its hash.
pub fn resolve<'a>(gens: &'a [Generation], spec: &str) -> Option<&'a Generation> {
    if let Some(g) = gens.iter().find(|g| g.name == spec) {
        return Some(g);
    }
    if let Ok(n) = spec.parse::<u32>() {
        if spec.len() <= 4 {
            return gens.iter().find(|g| g.seq == n);
        }
    }
    let matching: Vec<&Generation> = gens
        .iter()
        .filter(|g| spec.len() >= 4 && g.name[5..].starts_with(spec))
        .collect();
    if matching.len() == 1 {
        Some(matching[0])
    } else {
        None
    }
}

/// The generation a rollback makes current: the one `spec` names (see
/// [`resolve`]), or else the one just before `current`. None if there is none.
pub fn rollback_target<'a>(
    gens: &'a [Generation],
    current: Option<&str>,
    spec: Option<&str>,
) -> Option<&'a Generation> {
    match spec {
        Some(spec) => resolve(gens, spec),
        None => {
            let pos = gens.iter().position(|g| Some(g.name.as_str()) == current)?;
            pos.checked_sub(1).map(|p| &gens[p])
        }
    }
}

/// Which generation each boot entry in the TFTP root boots, by entry file
/// name (`01-52-54-…` for pxelinux, `ipxe/52-54-….ipxe` for iPXE), read
/// from the entries themselves.
pub fn entries_by_generation(cfg: &Config) -> HashMap<(String, String), Vec<String>> {
    let mut out: HashMap<(String, String), Vec<String>> = HashMap::new();
    for (dir, shown) in [("pxelinux.cfg", ""), ("ipxe", "ipxe/")] {
        scan_entries(cfg, dir, shown, &mut out);
    }
    out
}

/// [`entries_by_generation`] for the entries in `tftp_root/dir`, named
/// `shown` + file name.
fn scan_entries(
    cfg: &Config,
    dir: &str,
    shown: &str,
    out: &mut HashMap<(String, String), Vec<String>>,
) {
    let Ok(rd) = std::fs::read_dir(cfg.paths.tftp_root.join(dir)) else {
        return;
    };
    let prefix = format!("{}/", cfg.paths.nfs_root.display());
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for word in text.split_whitespace() {
            let Some(root) = word.strip_prefix("nfsroot=") else {
                continue;
            };
            let root = root.split(',').next().unwrap_or_default();
            let path = root.split_once(':').map(|x| x.1).unwrap_or(root);
            if let Some((image, generation)) = path
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once('/'))
            {
                out.entry((
                    image.to_string(),
                    generation.trim_end_matches('/').to_string(),
                ))
                .or_default()
                .push(format!("{shown}{}", e.file_name().to_string_lossy()));
            }
        }
    }
}

/// Disk use of each generation: blocks of files not already counted in an
/// older generation (hard-linked files count once, where they first appear).
pub fn sizes(nfs_root: &Path, image: &str, gens: &[Generation]) -> Vec<u64> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    gens.iter()
        .map(|g| {
            let mut bytes = 0u64;
            for e in walkdir::WalkDir::new(nfs_root.join(image).join(&g.name))
                .same_file_system(true)
                .into_iter()
                .flatten()
            {
                if let Ok(m) = e.metadata() {
                    if seen.insert((m.dev(), m.ino())) {
                        bytes += m.blocks() * 512;
                    }
                }
            }
            bytes
        })
        .collect()
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn age(path: &Path) -> String {
    let secs = published_at(path)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// When the generation at `root` was published: its manifest's mtime
/// (written then, and never again), else the folder's. The tree's own
/// mtimes are clamped to the image's SOURCE_DATE_EPOCH, which may be a year
/// old for a pinned snapshot.
pub fn published_at(root: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(crate::manifest::path_of(root))
        .or_else(|_| std::fs::metadata(root))
        .and_then(|m| m.modified())
}

/// Node hostnames by boot entry name (pxelinux's and iPXE's).
pub fn hostnames(cfg: &Config) -> HashMap<String, String> {
    cfg.nodes
        .iter()
        .flat_map(|n| {
            let ipxe = format!("ipxe/{}.ipxe", n.mac.replace(':', "-"));
            [
                (n.pxe_name(), n.hostname.clone()),
                (ipxe, n.hostname.clone()),
            ]
        })
        .collect()
}

/// The text of `ddc generations [IMG]`: the images of the Ddcfile, then
/// the `retired` ones (no longer in it; see [`retired`]).
pub fn report(
    cfg: &Config,
    only: Option<&str>,
    retired: &[String],
) -> Result<String, crate::error::Error> {
    let all: Vec<(&String, bool)> = cfg
        .images
        .keys()
        .map(|k| (k, false))
        .chain(retired.iter().map(|r| (r, true)))
        .collect();
    let images: Vec<(&String, bool)> = match only {
        Some(i) => all.iter().copied().filter(|(k, _)| *k == i).collect(),
        None => all.clone(),
    };
    if let (Some(i), true) = (only, images.is_empty()) {
        return Err(crate::error::NotStarted(format!(
            "no image {i:?} in the Ddcfile, nor a retired one; images: {}",
            all.iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let entries = entries_by_generation(cfg);
    let names = hostnames(cfg);
    let mut out = String::new();
    let mut any_refused = false;
    for (image, is_retired) in images {
        let refused = rolled_back(&cfg.paths.nfs_root, image);
        let gens = list(&cfg.paths.nfs_root, image);
        let title = if is_retired {
            format!("{image} (retired: no longer in the Ddcfile; `ddc gc` deletes its generations and cache layers)")
        } else {
            image.clone()
        };
        if gens.is_empty() {
            let none = if is_retired {
                "no generations, cache layers only"
            } else {
                "nothing published yet (ddc build)"
            };
            out.push_str(&format!("{title}: {none}\n"));
            continue;
        }
        let cur = current(&cfg.paths.nfs_root, image);
        let sizes = sizes(&cfg.paths.nfs_root, image, &gens);
        out.push_str(&format!("{title}:\n"));
        out.push_str("    generation         age     size        nodes\n");
        for (g, size) in gens.iter().zip(sizes) {
            let nodes: Vec<String> = entries
                .get(&(image.clone(), g.name.clone()))
                .map(|v| {
                    v.iter()
                        .map(|f| names.get(f).cloned().unwrap_or_else(|| f.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let shown = crate::names::fold(&nodes);
            let mark = if cur.as_deref() == Some(g.name.as_str()) {
                "*"
            } else if refused.contains(content(&g.name)) {
                any_refused = true;
                "x"
            } else {
                " "
            };
            out.push_str(&format!(
                "  {mark} {:<18} {:<7} {:<11} {shown}\n",
                g.name,
                age(&cfg.paths.nfs_root.join(image).join(&g.name)),
                human(size)
            ));
        }
    }
    out.push_str("(* current: where boot entries point; size counts files shared with older generations once)\n");
    if any_refused {
        out.push_str("(x rolled back from: builds leave it aside until `ddc rollforward IMG`)\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(seq: u32, hash: &str) -> Generation {
        Generation {
            seq,
            name: format!("{seq:04}-{hash}"),
        }
    }

    #[test]
    fn resolves_by_name_number_and_hash_prefix() {
        let gens = vec![
            g(1, "aaaaaaaaaaaa"),
            g(2, "abcdef012345"),
            g(3, "abcfff012345"),
        ];
        assert_eq!(resolve(&gens, "0002-abcdef012345"), Some(&gens[1]));
        assert_eq!(resolve(&gens, "2"), Some(&gens[1]));
        assert_eq!(resolve(&gens, "0003"), Some(&gens[2]));
        assert_eq!(resolve(&gens, "abcd"), Some(&gens[1]));
        assert_eq!(resolve(&gens, "abc"), None, "too short");
        assert_eq!(resolve(&gens, "abcf"), Some(&gens[2]));
        assert_eq!(resolve(&gens, "9"), None);
    }

    #[test]
    fn rollback_goes_to_the_named_or_the_previous_generation() {
        let gens = vec![g(1, "aaaaaaaaaaaa"), g(2, "bbbbbbbbbbbb")];
        let cur = Some("0002-bbbbbbbbbbbb");
        assert_eq!(rollback_target(&gens, cur, None), Some(&gens[0]));
        assert_eq!(rollback_target(&gens, cur, Some("2")), Some(&gens[1]));
        assert_eq!(
            rollback_target(&gens, Some("0001-aaaaaaaaaaaa"), None),
            None
        );
        assert_eq!(rollback_target(&gens, None, None), None);
        assert_eq!(rollback_target(&gens, cur, Some("9")), None);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 * 1024 * 1024), "3.0 MiB");
    }
}

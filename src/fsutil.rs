//! File system primitives that keep the master safe: atomic writes, removal
//! that refuses to cross a mount point, and the mount table.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What the temporary files of [`atomic_write`] are called: this, the
/// writer's pid, `-`, and random letters.
pub const TEMP_PREFIX: &str = ".ddc-tmp-";

/// Whether `name` is a temporary file of [`atomic_write`] whose writer is
/// gone (a pid that no longer runs).
pub fn is_stale_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
        return false;
    };
    match rest
        .split_once('-')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
    {
        Some(pid) => pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists(),
        // Older ddc versions wrote no pid: only a killed one leaves them.
        None => true,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// then a rename, so a reader sees the old content or the new, never half.
/// With `durable`, the file and its folder are fsynced before returning.
pub fn atomic_write(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    atomic_write_mode(path, bytes, durable, 0o644)
}

/// [`atomic_write`] with the file's mode (0600 for what holds secrets).
pub fn atomic_write_mode(path: &Path, bytes: &[u8], durable: bool, mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent folder", path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Generated files are read by daemons running as other users.
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot rename into {}", path.display()))?;
    if durable {
        fsync_dir(dir)?;
    }
    Ok(())
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot fsync {}", dir.display()))
}

/// Every mount point, from `/proc/self/mountinfo`. An error when it cannot
/// be read: then nothing may be deleted.
pub fn mount_points() -> Result<Vec<PathBuf>> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo to check for mounts")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount(p)))
        .collect())
}

fn unescape_mount(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut found: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|m| m.starts_with(&dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    Ok(found)
}

/// Removes a tree, refusing if anything is mounted at or below it, and never
/// descending into another file system.
pub fn safe_remove_dir_all(dir: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", dir.display())),
    };
    if !meta.is_dir() {
        return fs::remove_file(dir).with_context(|| format!("cannot remove {}", dir.display()));
    }
    let mounts = mounts_under(dir)?;
    if !mounts.is_empty() {
        bail!(
            "refusing to delete {}: {} is mounted inside it; unmount it first (umount -R {})",
            dir.display(),
            mounts[0].display(),
            mounts[mounts.len() - 1].display()
        );
    }
    let dev = meta.dev();
    // Depth-first, contents before their folder; stop at a foreign device.
    for entry in walkdir::WalkDir::new(dir)
        .contents_first(true)
        .same_file_system(true)
    {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let m = entry.metadata()?;
        if m.dev() != dev {
            bail!(
                "refusing to delete {}: {} is on another file system",
                dir.display(),
                entry.path().display()
            );
        }
        let p = entry.path();
        let r = if entry.file_type().is_dir() {
            fs::remove_dir(p)
        } else {
            fs::remove_file(p)
        };
        r.with_context(|| format!("cannot remove {}", p.display()))?;
    }
    Ok(())
}

/// Removes a file or a tree if it exists (trees through [`safe_remove_dir_all`]).
pub fn remove_path(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => safe_remove_dir_all(path).map(|_| true),
        Ok(_) => fs::remove_file(path)
            .map(|_| true)
            .with_context(|| format!("cannot remove {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot stat {}", path.display())),
    }
}

/// A path shown relative to `base` when it is inside it.
pub fn shown(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal_in_mountinfo() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }

    #[test]
    fn atomic_write_replaces_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x/y.conf");
        atomic_write(&p, b"one", true).unwrap();
        atomic_write(&p, b"two", false).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn removes_a_tree() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        fs::create_dir_all(t.join("a/b")).unwrap();
        fs::write(t.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", t.join("link")).unwrap();
        safe_remove_dir_all(&t).unwrap();
        assert!(!t.exists());
        assert!(Path::new("/etc").exists());
    }
}

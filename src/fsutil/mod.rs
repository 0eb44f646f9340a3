//! File system primitives that keep the master safe: writes and deletions
//! that never go through a link in ddc's own folders, atomic writes,
//! removal that refuses to cross a mount point, explicit modes, and the
//! mount table.
//!
//! # ddc's own folders
//!
//! The cache, the TFTP root, the nfs_root and the folder of each server
//! config file (as the Ddcfile gives them) are *owned* folders, declared
//! with [`own`] (the cache by `CacheDirs::new`, the others when a build,
//! `gc` or a rollback starts). The path *to* an owned folder is the
//! administrator's choice and is followed: `/srv`, or `/srv/tftp` itself,
//! may be a link. Below it nothing is followed: every path ddc creates,
//! writes or deletes there is reached from a file descriptor of the owned
//! folder, one name at a time, each opened with `O_NOFOLLOW` (a
//! [`Folder`]), and a link where ddc expects a folder of its own or a file
//! it writes is refused with an error naming it. A path in no owned folder
//! is taken as if its parent were one: its last name is never followed.
//!
//! # Modes
//!
//! Whatever the umask: a folder ddc creates gets the mode of the owned
//! folder it is in (0755) unless its creator
//! names one, a file the mode its writer names; both are set with
//! `fchmod` after creation.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

mod folder;
mod mounts;
mod stat;
#[cfg(test)]
mod tests;

pub use folder::{list, Folder};
pub use mounts::{mount_points, mounts_under};
pub use stat::{Stat, Stats};

use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// What the temporary files of [`atomic_write`] are called: this, the
/// writer's pid, `-`, and random letters.
pub const TEMP_PREFIX: &str = ".ddc-tmp-";

/// The mode of the folders ddc creates in its cache: others may read them
/// (`ddc graph` and `build -n` work for any user who can read the cluster's
/// folder); what holds secrets is a file of mode 0600 (logs, the config
/// cache). Never writable by others.
pub const CACHE_DIR_MODE: u32 = 0o755;
/// The mode of the folders ddc creates elsewhere (TFTP root, nfs_root,
/// server config folders): daemons running as other users read them.
pub const DIR_MODE: u32 = 0o755;

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

/// The owned folders, with the mode of the folders ddc creates in each.
static OWNED: RwLock<Vec<(PathBuf, u32)>> = RwLock::new(Vec::new());

/// Declares `dir` a folder ddc owns (see the module's documentation); the
/// folders ddc creates in it get `mode`. Declaring one twice changes nothing.
pub fn own(dir: &Path, mode: u32) {
    let mut owned = OWNED.write().unwrap_or_else(|e| e.into_inner());
    if !owned.iter().any(|(d, _)| d == dir) {
        owned.push((dir.to_path_buf(), mode));
    }
}

/// The deepest owned folder that is `dir` or holds it, with its mode.
fn owner_of(dir: &Path) -> Option<(PathBuf, u32)> {
    let owned = OWNED.read().unwrap_or_else(|e| e.into_inner());
    owned
        .iter()
        .filter(|(d, _)| dir.starts_with(d))
        .max_by_key(|(d, _)| d.components().count())
        .cloned()
}

/// The names of `rel`, refusing `..` (it would climb out of the folder).
fn names(rel: &Path, whole: &Path) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            _ => bail!(
                "refusing {}: ddc does not follow `..` inside its own folders",
                whole.display()
            ),
        }
    }
    Ok(out)
}

/// The folder and the name of a file path.
fn split(path: &Path) -> Result<(&Path, &OsStr)> {
    let name = path
        .file_name()
        .with_context(|| format!("{} does not name a file", path.display()))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir, name))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// Creates `path` and the folders on the way to it that are missing,
/// following links: the way to an owned folder is the administrator's.
/// What it creates gets `mode` (the folders on the way [`DIR_MODE`]).
fn create_followed(path: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            create_followed(parent, DIR_MODE)?;
        }
    }
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// How [`Folder::open_file`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// Write from the start, emptied.
    Truncate,
    /// Write at the end.
    Append,
    /// Read and write, as it is (the lock).
    Keep,
}

/// Writes `bytes` to `path` atomically with mode 0644 (see [`Folder::write`]);
/// its folder is created if missing. With `durable`, fsynced.
pub fn atomic_write(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    atomic_write_mode(path, bytes, durable, 0o644)
}

/// [`atomic_write`] with the file's mode (0600 for what holds secrets).
pub fn atomic_write_mode(path: &Path, bytes: &[u8], durable: bool, mode: u32) -> Result<()> {
    let (dir, name) = split(path)?;
    Folder::of_file(dir, true)?
        .with_context(|| format!("internal error: {} was not created", dir.display()))?
        .write(name, bytes, durable, mode)
}

/// Replaces the regular file at `path` (one of the user's, like the node
/// inventory) by `bytes` atomically and durably, keeping its mode and, as
/// root, its owner. `path` must not be a link: resolve it first.
pub fn replace_keeping(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!(
            "refusing to replace {}: it is not a regular file",
            path.display()
        );
    }
    let (dir, name) = split(path)?;
    let owner = rustix::process::geteuid()
        .is_root()
        .then_some((meta.uid(), meta.gid()));
    Folder::of_file(dir, false)?
        .with_context(|| format!("{} does not exist", dir.display()))?
        .write_owned(name, bytes, true, meta.mode() & 0o7777, owner)
}

/// Opens the file at `path` as asked (see [`Folder::open_file`]); its
/// folder is created if missing.
pub fn open_file(path: &Path, how: Open, mode: u32) -> Result<fs::File> {
    let (dir, name) = split(path)?;
    Folder::of_file(dir, true)?
        .with_context(|| format!("internal error: {} was not created", dir.display()))?
        .open_file(name, how, mode)
}

/// Creates the folder `path` and what is missing on the way, with the mode
/// of the owned folder it is in.
pub fn make_dir(path: &Path) -> Result<()> {
    Folder::make(path).map(drop)
}

/// [`make_dir`], the folder itself, if missing, created with `mode`.
pub fn make_dir_mode(path: &Path, mode: u32) -> Result<()> {
    Folder::make_mode(path, mode).map(drop)
}

/// Removes the empty folder at `path` (a mount point no longer used).
pub fn remove_empty_dir(path: &Path) -> Result<()> {
    let (dir, name) = split(path)?;
    Folder::of_file(dir, false)?
        .with_context(|| format!("{} does not exist", dir.display()))?
        .remove_empty_dir(name)
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    Folder::open(dir)?.sync()
}

/// Removes a file, a link or a tree if it exists (see [`Folder::remove`]),
/// never through a link. Returns whether there was something.
pub fn remove_path(path: &Path) -> Result<bool> {
    let (dir, name) = split(path)?;
    match Folder::of_file(dir, false)? {
        Some(f) => f.remove(name),
        None => Ok(false),
    }
}

/// Removes a tree, refusing if anything is mounted at or below it, never
/// descending into another file system nor through a link.
pub fn safe_remove_dir_all(dir: &Path) -> Result<()> {
    remove_path(dir).map(drop)
}

/// Removes the temporary files of [`atomic_write`] whose writer is gone from
/// the folder `dir` (skipped if it is missing or reached through a link);
/// returns their paths.
pub fn remove_stale_temps(dir: &Path) -> Vec<PathBuf> {
    let Ok(Some(folder)) = Folder::of_file(dir, false) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for (name, kind) in folder.entries().unwrap_or_default() {
        if kind == FileType::RegularFile
            && is_stale_temp(&name.to_string_lossy())
            && rfs::unlinkat(folder.fd(), &name, AtFlags::empty()).is_ok()
        {
            removed.push(dir.join(name));
        }
    }
    removed
}

/// Opens the file at `path` for reading without following a last link.
pub fn open_no_follow(path: &Path) -> std::io::Result<fs::File> {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map(fs::File::from)
    .map_err(io)
}

/// A path shown relative to `base` when it is inside it.
pub fn shown(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

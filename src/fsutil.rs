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
//! folder it is in (0700 in the cache, 0755 elsewhere) unless its creator
//! names one, a file the mode its writer names; both are set with
//! `fchmod` after creation.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

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

/// A folder reached without following a link below an owned folder (or an
/// owned folder itself): everything in it is done relative to its file
/// descriptor, one name at a time, never through a link.
pub struct Folder {
    fd: OwnedFd,
    path: PathBuf,
    /// The mode of the folders created in it.
    mode: u32,
}

impl Folder {
    /// The folder at `path`, which must exist.
    pub fn open(path: &Path) -> Result<Folder> {
        Self::reach(path, None)?.with_context(|| format!("{} does not exist", path.display()))
    }

    /// The folder at `path` if it exists (None if it or a folder on the way
    /// does not).
    pub fn find(path: &Path) -> Result<Option<Folder>> {
        Self::reach(path, None)
    }

    /// The folder at `path`, created with what is missing on the way (with
    /// the owned folder's mode).
    pub fn make(path: &Path) -> Result<Folder> {
        Self::make_inner(path, None)
    }

    /// [`Folder::make`], creating the folder itself, if missing, with `mode`.
    pub fn make_mode(path: &Path, mode: u32) -> Result<Folder> {
        Self::make_inner(path, Some(mode))
    }

    fn make_inner(path: &Path, mode: Option<u32>) -> Result<Folder> {
        Self::reach(path, Some(mode))?
            .with_context(|| format!("internal error: {} was not created", path.display()))
    }

    /// The folder a file at `path` is written in: the same as
    /// [`Folder::make`], but a folder in no owned folder is taken as one
    /// itself (the file, the last name, is not followed).
    fn of_file(dir: &Path, create: bool) -> Result<Option<Folder>> {
        let create = create.then_some(None);
        match owner_of(dir) {
            Some(_) => Self::walk(dir, create, false),
            None => Self::walk(dir, create, true),
        }
    }

    /// Walks from the owned folder holding `path` (or, in none, from its
    /// parent) to `path`; with `create`, makes what is missing.
    fn reach(path: &Path, create: Option<Option<u32>>) -> Result<Option<Folder>> {
        Self::walk(path, create, false)
    }

    fn walk(path: &Path, create: Option<Option<u32>>, root_itself: bool) -> Result<Option<Folder>> {
        let (root, mode, rel) = match owner_of(path) {
            Some((root, mode)) => {
                let rel = names(path.strip_prefix(&root).expect("owned"), path)?;
                (root, mode, rel)
            }
            None if root_itself => (path.to_path_buf(), DIR_MODE, Vec::new()),
            None => {
                let (dir, name) = split(path)?;
                let rel = names(Path::new(name), path)?;
                (dir.to_path_buf(), DIR_MODE, rel)
            }
        };
        let root_mode = match (&create, rel.is_empty()) {
            (Some(Some(m)), true) => *m,
            _ => mode,
        };
        let fd = match rfs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create.is_some() => {
                create_followed(&root, root_mode)?;
                rfs::open(
                    &root,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)
                .with_context(|| format!("cannot open {}", root.display()))?
            }
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io(e)).with_context(|| format!("cannot open {}", root.display())),
        };
        let mut folder = Folder {
            fd,
            path: root,
            mode,
        };
        let last = rel.len().saturating_sub(1);
        for (i, name) in rel.iter().enumerate() {
            let make = create.map(|m| match m {
                Some(m) if i == last => m,
                _ => mode,
            });
            folder = match folder.sub(name, make)? {
                Some(f) => f,
                None => return Ok(None),
            };
        }
        Ok(Some(folder))
    }

    /// The folder `name` in this one, never through a link; created with
    /// `create`'s mode if it is missing.
    fn sub(&self, name: &OsStr, create: Option<u32>) -> Result<Option<Folder>> {
        let path = self.path.join(name);
        let at = |fd| Folder {
            fd,
            path: path.clone(),
            mode: self.mode,
        };
        match rfs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => return Ok(Some(at(fd))),
            Err(Errno::NOENT) if create.is_some() => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.refusal(name, e, "a folder of its own")),
        }
        let mode = create.expect("creating");
        let made = match rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => {
                return Err(io(e)).with_context(|| format!("cannot create {}", path.display()))
            }
        };
        let fd = rfs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())
            .map_err(|e| self.refusal(name, e, "a folder of its own"))?;
        if made {
            rfs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(io)
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        }
        Ok(Some(at(fd)))
    }

    /// The error for `name`, which could not be opened as `expected`: a
    /// link is named as one.
    fn refusal(&self, name: &OsStr, e: Errno, expected: &str) -> anyhow::Error {
        let path = self.path.join(name);
        match self.kind(name) {
            Ok(Some(FileType::Symlink)) => {
                let to = rfs::readlinkat(&self.fd, name, Vec::new())
                    .map(|t| PathBuf::from(OsStr::from_bytes(t.as_bytes())))
                    .unwrap_or_default();
                anyhow::anyhow!(
                    "refusing {}: it is a symbolic link (to {}) where ddc expects {expected}; ddc never writes or deletes through a link in its own folders: remove the link",
                    path.display(),
                    to.display()
                )
            }
            Ok(Some(t)) if e == Errno::NOTDIR || e == Errno::NXIO => anyhow::anyhow!(
                "refusing {}: it is a {} where ddc expects {expected}",
                path.display(),
                kind_name(t)
            ),
            _ => anyhow::Error::new(io(e)).context(format!("cannot open {}", path.display())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// What `name` is, without following it; None if there is nothing.
    pub fn kind(&self, name: impl AsRef<OsStr>) -> Result<Option<FileType>> {
        let name = name.as_ref();
        match rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io(e)).with_context(|| format!("cannot stat {}", self.show(name))),
        }
    }

    /// Whether `name` is a folder here: false if there is nothing, an error
    /// naming it if it is a link or anything but a folder.
    pub fn has_dir(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        Ok(self.sub(name.as_ref(), None)?.is_some())
    }

    /// The folder `name` in this one, if it exists; a link there is refused.
    pub fn sub_dir(&self, name: impl AsRef<OsStr>) -> Result<Option<Folder>> {
        self.sub(name.as_ref(), None)
    }

    /// The folder `name`, created with `mode` if it is missing.
    pub fn make_dir(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<Folder> {
        self.sub(name.as_ref(), Some(mode))?
            .context("internal error: a folder was not created")
    }

    fn show(&self, name: &OsStr) -> String {
        self.path.join(name).display().to_string()
    }

    /// Refuses `name` if it is a link (ddc writes no file through one).
    fn refuse_link(&self, name: &OsStr) -> Result<()> {
        match self.kind(name)? {
            Some(FileType::Symlink) => Err(self.refusal(name, Errno::LOOP, "a file it writes")),
            Some(FileType::Directory) => {
                bail!("refusing to write {}: it is a folder", self.show(name))
            }
            _ => Ok(()),
        }
    }

    /// Writes `bytes` to `name` atomically: a new temporary file
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode `mode` set with fchmod), then a
    /// rename, so a reader sees the old content or the new, never half.
    /// With `durable`, the file and this folder are fsynced first.
    pub fn write(
        &self,
        name: impl AsRef<OsStr>,
        bytes: &[u8],
        durable: bool,
        mode: u32,
    ) -> Result<()> {
        let name = name.as_ref();
        self.refuse_link(name)?;
        let (tmp, fd) = self.temp()?;
        let written = (|| -> Result<()> {
            let mut f = fs::File::from(fd);
            f.write_all(bytes)
                .with_context(|| format!("cannot write {}", self.show(name)))?;
            rfs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(io)?;
            if durable {
                f.sync_all()?;
            }
            rfs::renameat(&self.fd, &tmp, &self.fd, name)
                .map_err(io)
                .with_context(|| format!("cannot rename into {}", self.show(name)))?;
            if durable {
                self.sync()?;
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = rfs::unlinkat(&self.fd, &tmp, AtFlags::empty());
        }
        written
    }

    /// A new temporary file in this folder, created exclusively.
    fn temp(&self) -> Result<(OsString, OwnedFd)> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        let mut last = Errno::EXIST;
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut x =
                (nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let letters: String = (0..8)
                .map(|_| {
                    let c = b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize];
                    x /= 36;
                    c as char
                })
                .collect();
            let name = OsString::from(format!("{TEMP_PREFIX}{}-{letters}", std::process::id()));
            match rfs::openat(
                &self.fd,
                &name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => return Ok((name, fd)),
                Err(Errno::EXIST) => last = Errno::EXIST,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        Err(io(last))
            .with_context(|| format!("cannot create a temporary file in {}", self.path.display()))
    }

    /// Opens the regular file `name` (created with `mode` if missing) as
    /// asked. A link, anything but a regular file, or a file with other
    /// hard links is refused; the file gets `mode` whatever it had.
    pub fn open_file(&self, name: impl AsRef<OsStr>, how: Open, mode: u32) -> Result<fs::File> {
        let name = name.as_ref();
        let access = match how {
            Open::Truncate => OFlags::WRONLY,
            Open::Append => OFlags::WRONLY | OFlags::APPEND,
            Open::Keep => OFlags::RDWR,
        };
        // NONBLOCK: a FIFO planted there must not hang the build.
        let fd = rfs::openat(
            &self.fd,
            name,
            access | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| self.refusal(name, e, "a file it writes"))?;
        let st = rfs::fstat(&fd).map_err(io)?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::RegularFile {
            bail!(
                "refusing {}: it is a {} where ddc expects a file it writes",
                self.show(name),
                kind_name(kind)
            );
        }
        if st.st_nlink > 1 {
            bail!(
                "refusing {}: it has other hard links, and ddc writes only files of its own",
                self.show(name)
            );
        }
        rfs::fcntl_setfl(&fd, rfs::fcntl_getfl(&fd).map_err(io)? - OFlags::NONBLOCK).map_err(io)?;
        if how == Open::Truncate {
            rfs::ftruncate(&fd, 0).map_err(io)?;
        }
        rfs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(io)
            .with_context(|| format!("cannot set the mode of {}", self.show(name)))?;
        Ok(fs::File::from(fd))
    }

    /// Removes `name`: a file or a link (never what it points at), or a
    /// tree, refusing if anything is mounted in it and never leaving its
    /// file system. Returns whether there was something.
    pub fn remove(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = name.as_ref();
        match rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(io(e)).with_context(|| format!("cannot stat {}", self.show(name))),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                let path = self.path.join(name);
                let mounts = mounts_under(&path)?;
                if !mounts.is_empty() {
                    bail!(
                        "refusing to delete {}: {} is mounted inside it; unmount it first (umount -R {})",
                        path.display(),
                        mounts[0].display(),
                        mounts[mounts.len() - 1].display()
                    );
                }
                remove_tree(self.fd.as_fd(), name, &path, &path, st.st_dev)?;
                Ok(true)
            }
            Ok(_) => rfs::unlinkat(&self.fd, name, AtFlags::empty())
                .map(|()| true)
                .map_err(io)
                .with_context(|| format!("cannot remove {}", self.show(name))),
        }
    }

    /// Removes the empty folder `name` (a mount point left empty).
    pub fn remove_empty_dir(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)
            .map_err(io)
            .with_context(|| format!("cannot remove {}", self.show(name)))
    }

    /// Renames `from` to `to`, both in this folder.
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        rfs::renameat(&self.fd, from, &self.fd, to)
            .map_err(io)
            .with_context(|| format!("cannot rename {} to {}", self.show(from), self.show(to)))
    }

    /// Makes `name` a link to `target`, atomically (a new link renamed over
    /// what was there, which is replaced, never followed).
    pub fn symlink(&self, target: &Path, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        let mut tmp = OsString::from(".");
        tmp.push(name);
        tmp.push(".ddc-tmp");
        let _ = rfs::unlinkat(&self.fd, &tmp, AtFlags::empty());
        rfs::symlinkat(target, &self.fd, &tmp)
            .map_err(io)
            .with_context(|| format!("cannot create {}", self.show(&tmp)))?;
        self.rename(&tmp, name)
    }

    /// Where the link `name` points, if it is one.
    pub fn read_link(&self, name: impl AsRef<OsStr>) -> Option<PathBuf> {
        rfs::readlinkat(&self.fd, name.as_ref(), Vec::new())
            .ok()
            .map(|t| PathBuf::from(OsStr::from_bytes(t.as_bytes())))
    }

    /// The names in this folder, with their types (not following links).
    pub fn entries(&self) -> Result<Vec<(OsString, FileType)>> {
        list(self.fd.as_fd()).with_context(|| format!("cannot read {}", self.path.display()))
    }

    /// fsyncs this folder (a rename in it is durable).
    pub fn sync(&self) -> Result<()> {
        rfs::fsync(&self.fd)
            .map_err(io)
            .with_context(|| format!("cannot fsync {}", self.path.display()))
    }

    /// Flushes the whole file system this folder is on.
    pub fn sync_fs(&self) -> Result<()> {
        rfs::syncfs(&self.fd)
            .map_err(io)
            .with_context(|| format!("cannot sync {}", self.path.display()))
    }
}

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "file",
        FileType::Directory => "folder",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice | FileType::BlockDevice => "device",
        FileType::Unknown => "file of unknown type",
    }
}

/// The entries of the folder `fd`, with their types (asked for when the
/// file system does not say), not following links.
pub fn list(fd: BorrowedFd) -> std::io::Result<Vec<(OsString, FileType)>> {
    let mut dir = rfs::Dir::read_from(fd).map_err(io)?;
    let mut out = Vec::new();
    while let Some(e) = dir.read() {
        let e = e.map_err(io)?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name).to_os_string();
        let kind = match e.file_type() {
            FileType::Unknown => rfs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode))
                .map_err(io)?,
            k => k,
        };
        out.push((name, kind));
    }
    Ok(out)
}

/// Removes the tree `name` of the folder `parent`, contents first, each
/// folder opened with `O_NOFOLLOW`, refusing to leave the device `dev`.
fn remove_tree(parent: BorrowedFd, name: &OsStr, path: &Path, top: &Path, dev: u64) -> Result<()> {
    let fd = rfs::openat(parent, name, DIR_FLAGS, Mode::empty())
        .map_err(io)
        .with_context(|| format!("cannot open {} (not following a link)", path.display()))?;
    let st = rfs::fstat(&fd).map_err(io)?;
    if st.st_dev != dev {
        bail!(
            "refusing to delete {}: {} is on another file system",
            top.display(),
            path.display()
        );
    }
    for (entry, kind) in
        list(fd.as_fd()).with_context(|| format!("cannot read {}", path.display()))?
    {
        let p = path.join(&entry);
        if kind == FileType::Directory {
            remove_tree(fd.as_fd(), &entry, &p, top, dev)?;
        } else {
            rfs::unlinkat(&fd, &entry, AtFlags::empty())
                .map_err(io)
                .with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    rfs::unlinkat(parent, name, AtFlags::REMOVEDIR)
        .map_err(io)
        .with_context(|| format!("cannot remove {}", path.display()))
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
        .context("internal error: a folder was not created")?
        .write(name, bytes, durable, mode)
}

/// Opens the file at `path` as asked (see [`Folder::open_file`]); its
/// folder is created if missing.
pub fn open_file(path: &Path, how: Open, mode: u32) -> Result<fs::File> {
    let (dir, name) = split(path)?;
    Folder::of_file(dir, true)?
        .context("internal error: a folder was not created")?
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

/// A path shown relative to `base` when it is inside it.
pub fn shown(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

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
        assert_eq!(mode_of(&p), 0o644);
    }

    #[test]
    fn removes_a_tree() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        fs::create_dir_all(t.join("a/b")).unwrap();
        fs::write(t.join("a/b/f"), "x").unwrap();
        symlink("/etc", t.join("link")).unwrap();
        safe_remove_dir_all(&t).unwrap();
        assert!(!t.exists());
        assert!(Path::new("/etc").exists());
    }

    /// Below an owned folder, a link where ddc expects a folder or a file is
    /// refused for writes and deletions alike; the way to the owned folder
    /// (itself a link here) is followed.
    #[test]
    fn links_below_an_owned_folder_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        fs::create_dir(&real).unwrap();
        let root = d.path().join("root");
        symlink(&real, &root).unwrap();
        own(&root, 0o755);
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("f"), "precious").unwrap();

        atomic_write(&root.join("a/b/ok"), b"x", false).unwrap();
        assert_eq!(fs::read(real.join("a/b/ok")).unwrap(), b"x");

        symlink(&outside, root.join("a/link")).unwrap();
        for err in [
            atomic_write(&root.join("a/link/f"), b"y", false).unwrap_err(),
            open_file(&root.join("a/link/f"), Open::Append, 0o600).unwrap_err(),
            make_dir(&root.join("a/link/sub")).unwrap_err(),
            remove_path(&root.join("a/link/f")).unwrap_err(),
        ] {
            let e = format!("{err:#}");
            assert!(e.contains("a/link") && e.contains("symbolic link"), "{e}");
        }
        symlink(outside.join("f"), root.join("a/file-link")).unwrap();
        let e = format!(
            "{:#}",
            atomic_write(&root.join("a/file-link"), b"y", false).unwrap_err()
        );
        assert!(e.contains("symbolic link"), "{e}");
        let e = format!(
            "{:#}",
            open_file(&root.join("a/file-link"), Open::Truncate, 0o600).unwrap_err()
        );
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(fs::read(outside.join("f")).unwrap(), b"precious");
        // Removing the link removes the link only.
        assert!(remove_path(&root.join("a/link")).unwrap());
        assert!(outside.join("f").exists());
        // `..` never climbs out.
        assert!(atomic_write(&root.join("a/../../x"), b"y", false).is_err());
    }

    #[test]
    fn files_with_other_hard_links_are_not_opened() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "precious").unwrap();
        fs::hard_link(&f, d.path().join("log")).unwrap();
        assert!(open_file(&d.path().join("log"), Open::Truncate, 0o600).is_err());
        assert_eq!(fs::read(&f).unwrap(), b"precious");
    }

    /// Folders get the owned folder's mode, files their writer's (the umask
    /// is tested through the binary: changing it here would race other tests).
    #[test]
    fn modes_are_explicit() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("cache");
        own(&root, 0o700);
        open_file(&root.join("logs/x.log"), Open::Truncate, 0o600).unwrap();
        make_dir_mode(&root.join("images/img/step"), 0o755).unwrap();
        atomic_write_mode(&root.join("state/records"), b"r", false, 0o600).unwrap();
        atomic_write(&d.path().join("other/conf"), b"c", false).unwrap();
        assert_eq!(mode_of(&root), 0o700);
        assert_eq!(mode_of(&root.join("logs")), 0o700);
        assert_eq!(mode_of(&root.join("logs/x.log")), 0o600);
        assert_eq!(mode_of(&root.join("images/img")), 0o700);
        assert_eq!(mode_of(&root.join("images/img/step")), 0o755);
        assert_eq!(mode_of(&root.join("state/records")), 0o600);
        assert_eq!(mode_of(&d.path().join("other")), 0o755);
        assert_eq!(mode_of(&d.path().join("other/conf")), 0o644);
    }
}

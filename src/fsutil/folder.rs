//! [`Folder`]: a directory reached without following a link below ddc's
//! own folders, and everything done relative to it (create, write, rename,
//! list, remove a tree that stays on its file system and crosses no mount).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::*;

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

    pub(super) fn make_inner(path: &Path, mode: Option<u32>) -> Result<Folder> {
        Self::reach(path, Some(mode))?
            .with_context(|| format!("internal error: {} was not created", path.display()))
    }

    /// The folder a file at `path` is written in: the same as
    /// [`Folder::make`], but a folder in no owned folder is taken as one
    /// itself (the file, the last name, is not followed).
    pub(super) fn of_file(dir: &Path, create: bool) -> Result<Option<Folder>> {
        let create = create.then_some(None);
        match owner_of(dir) {
            Some(_) => Self::walk(dir, create, false),
            None => Self::walk(dir, create, true),
        }
    }

    /// Walks from the owned folder holding `path` (or, in none, from its
    /// parent) to `path`; with `create`, makes what is missing.
    pub(super) fn reach(path: &Path, create: Option<Option<u32>>) -> Result<Option<Folder>> {
        Self::walk(path, create, false)
    }

    pub(super) fn walk(
        path: &Path,
        create: Option<Option<u32>>,
        root_itself: bool,
    ) -> Result<Option<Folder>> {
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
    pub(super) fn sub(&self, name: &OsStr, create: Option<u32>) -> Result<Option<Folder>> {
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
    pub(super) fn refusal(&self, name: &OsStr, e: Errno, expected: &str) -> anyhow::Error {
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
        self.sub(name.as_ref(), Some(mode))?.with_context(|| {
            format!(
                "internal error: {} was not created",
                self.show(name.as_ref())
            )
        })
    }

    pub(super) fn show(&self, name: &OsStr) -> String {
        self.path.join(name).display().to_string()
    }

    /// Refuses `name` if it is a link (ddc writes no file through one).
    pub(super) fn refuse_link(&self, name: &OsStr) -> Result<()> {
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
        self.write_owned(name, bytes, durable, mode, None)
    }

    /// [`Folder::write`], the new file given `owner` (uid, gid) first.
    pub fn write_owned(
        &self,
        name: impl AsRef<OsStr>,
        bytes: &[u8],
        durable: bool,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        let name = name.as_ref();
        self.refuse_link(name)?;
        let (tmp, fd) = self.temp()?;
        let written = (|| -> Result<()> {
            let mut f = fs::File::from(fd);
            f.write_all(bytes)
                .with_context(|| format!("cannot write {}", self.show(name)))?;
            if let Some((uid, gid)) = owner {
                let (u, g) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
                rfs::fchown(&f, Some(u), Some(g)).map_err(io)?;
            }
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
    pub(super) fn temp(&self) -> Result<(OsString, OwnedFd)> {
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
        // Named as every temporary file of ddc's, so that one a killed ddc
        // left is swept like the others.
        let mut tmp = OsString::from(format!("{TEMP_PREFIX}{}-", std::process::id()));
        tmp.push(name);
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

pub(super) fn kind_name(t: FileType) -> &'static str {
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
pub(super) fn remove_tree(
    parent: BorrowedFd,
    name: &OsStr,
    path: &Path,
    top: &Path,
    dev: u64,
) -> Result<()> {
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

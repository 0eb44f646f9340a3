//! The walk behind [`super::scan_tree`]: a tree read relative to directory
//! file descriptors, one name at a time, never through a link (a folder or
//! file swapped for a link during the walk is not followed out of the
//! tree), and hashed on rayon's pool, a task a file or folder.
//!
//! Entries come out in the order a depth-first walk with each folder's names
//! sorted by their bytes gives (the order tree fingerprints were recorded
//! in), each folder before what it holds. Folders on another file system are
//! listed but not entered. A file is opened once and read through a buffer
//! of its thread's, and its stat comes from the one `fstatat` of the walk.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use rayon::prelude::*;
use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags};

use super::{Fingerprint, StatStamp, TreeEntry};

/// The read size: large enough that a multi-MB file costs few reads and
/// blake3 gets many chunks an update, small enough to stay in L2.
const BUF: usize = 128 * 1024;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0u8; BUF]);
}

/// What a walk needs everywhere: the hashes it may reuse, the root's device.
struct Walk<'a> {
    root: &'a Path,
    known: &'a HashMap<&'a str, &'a TreeEntry>,
    dev: u64,
    /// Whether a file was hashed (or a link read) instead of reused.
    rehashed: std::sync::atomic::AtomicBool,
}

/// Every entry of the tree at `root` (the root first, as ""), with hashes
/// reused from `known` where the stat stamp is unchanged; and whether any
/// was computed.
pub(super) fn scan(
    root: &Path,
    known: &HashMap<&str, &TreeEntry>,
) -> Result<(Vec<TreeEntry>, bool)> {
    let cannot = || format!("cannot read {}", root.display());
    let lstat = rfs::lstat(root)
        .map_err(io::Error::from)
        .with_context(cannot)?;
    let walk = Walk {
        root,
        known,
        dev: 0,
        rehashed: false.into(),
    };
    let kind = FileType::from_raw_mode(lstat.st_mode);
    let mut out = vec![walk.entry(None, c"", String::new(), &lstat, kind)?];
    // The root itself may be a link to a folder: it is followed (only it).
    let dir = match kind {
        FileType::Directory | FileType::Symlink => {
            match rfs::open(root, dir_flags() - OFlags::NOFOLLOW, Mode::empty()) {
                Ok(fd) => Some(fd),
                Err(e) if kind == FileType::Symlink && e == rustix::io::Errno::NOTDIR => None,
                Err(e) => return Err(io::Error::from(e)).with_context(cannot),
            }
        }
        _ => None,
    };
    if let Some(fd) = dir {
        let dev = dev_of(
            &rfs::fstat(&fd)
                .map_err(io::Error::from)
                .with_context(cannot)?,
        );
        let walk = Walk { dev, ..walk };
        out.extend(walk.folder(fd, "")?);
        return Ok((out, walk.rehashed.into_inner()));
    }
    Ok((out, walk.rehashed.into_inner()))
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl Walk<'_> {
    /// The entries below the folder `fd` (at `rel`), in walk order.
    fn folder(&self, fd: OwnedFd, rel: &str) -> Result<Vec<TreeEntry>> {
        let cannot = || format!("cannot read {}", self.root.join(rel).display());
        let mut dir = Dir::new(fd).map_err(io::Error::from).with_context(cannot)?;
        let mut names = Vec::new();
        for e in dir.by_ref() {
            let e = e.map_err(io::Error::from).with_context(cannot)?;
            let name = e.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        names.sort_unstable_by(|a, b| a.to_bytes().cmp(b.to_bytes()));
        let fd = dir.fd().map_err(io::Error::from).with_context(cannot)?;
        let subtrees: Vec<Vec<TreeEntry>> = names
            .par_iter()
            .map(|name| self.child(fd, rel, name))
            .collect::<Result<_>>()?;
        Ok(subtrees.into_iter().flatten().collect())
    }

    /// The entry `name` of the folder `dir` (at `rel`), and for a folder on
    /// the root's file system, everything below it.
    fn child(&self, dir: BorrowedFd, rel: &str, name: &CStr) -> Result<Vec<TreeEntry>> {
        let lossy = String::from_utf8_lossy(name.to_bytes());
        let path = if rel.is_empty() {
            lossy.into_owned()
        } else {
            format!("{rel}/{lossy}")
        };
        let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io::Error::from)
            .with_context(|| format!("cannot stat {}", self.root.join(&path).display()))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        let entry = self.entry(Some(dir), name, path, &st, kind)?;
        if kind != FileType::Directory || dev_of(&st) != self.dev {
            return Ok(vec![entry]);
        }
        let sub = rfs::openat(dir, name, dir_flags(), Mode::empty())
            .map_err(io::Error::from)
            .with_context(|| format!("cannot read {}", self.root.join(&entry.path).display()))?;
        let rel = entry.path.clone();
        let mut v = vec![entry];
        v.extend(self.folder(sub, &rel)?);
        Ok(v)
    }

    /// One entry: its stamp and metadata from `st`; its hash reused when the
    /// stamp is the recorded one, else read (`name` in `dir`; the root
    /// itself when `dir` is None).
    fn entry(
        &self,
        dir: Option<BorrowedFd>,
        name: &CStr,
        path: String,
        st: &rfs::Stat,
        kind: FileType,
    ) -> Result<TreeEntry> {
        let (stamp, meta) = stamp_of(st, kind);
        let reuse = self.known.get(path.as_str()).filter(|o| o.stamp == stamp);
        let hash = match (reuse, kind) {
            (Some(old), _) => old.hash,
            (None, FileType::RegularFile | FileType::Symlink) => {
                self.rehashed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let full = || self.root.join(&path);
                let got = match dir {
                    Some(dir) => hash_at(dir, name, kind == FileType::Symlink),
                    None if kind == FileType::Symlink => std::fs::read_link(self.root)
                        .map(|t| Fingerprint::of(t.as_os_str().as_encoded_bytes())),
                    None => hash_at(rfs::CWD, self.root, false),
                };
                got.with_context(|| format!("cannot read {}", full().display()))?
            }
            (None, _) => Fingerprint([0; 32]),
        };
        Ok(TreeEntry {
            path,
            stamp,
            meta,
            hash,
        })
    }
}

/// A stat's stamp and (mode, uid, gid, device number of a device).
// The fields' integer types differ between architectures.
#[allow(clippy::unnecessary_cast)]
fn stamp_of(st: &rfs::Stat, kind: FileType) -> (StatStamp, (u32, u32, u32, u64)) {
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    let stamp = StatStamp {
        size: st.st_size as u64,
        mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        ino: st.st_ino as u64,
    };
    let rdev = match kind {
        FileType::CharacterDevice | FileType::BlockDevice => st.st_rdev as u64,
        _ => 0,
    };
    (stamp, (st.st_mode as u32, st.st_uid, st.st_gid, rdev))
}

/// The device a stat's file is on.
#[allow(clippy::unnecessary_cast)]
fn dev_of(st: &rfs::Stat) -> u64 {
    st.st_dev as u64
}

/// The hash of the file `name` in `dir` (opened without following a link),
/// or of the link's target when `link`.
fn hash_at<P: rustix::path::Arg>(dir: BorrowedFd, name: P, link: bool) -> io::Result<Fingerprint> {
    if link {
        let t = rfs::readlinkat(dir, name, Vec::new())?;
        return Ok(Fingerprint::of(t.as_bytes()));
    }
    let f = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    hash_fd(f.as_fd())
}

/// blake3 of everything `fd` reads, through this thread's buffer.
pub(super) fn hash_fd(fd: BorrowedFd) -> io::Result<Fingerprint> {
    BUFFER.with(|b| {
        let mut buf = b.borrow_mut();
        let mut h = blake3::Hasher::new();
        loop {
            match rustix::io::read(fd, &mut buf[..]) {
                Ok(0) => break,
                Ok(n) => {
                    h.update(&buf[..n]);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Fingerprint(*h.finalize().as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    use super::super::{hash_file, scan_tree};
    use super::*;

    /// The walk as it was before (walkdir, one path at a time): recorded
    /// tree fingerprints depend on its order and fields.
    fn walkdir_scan(root: &Path) -> Vec<TreeEntry> {
        walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .same_file_system(true)
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                let m = e.path().symlink_metadata().unwrap();
                let ft = m.file_type();
                let hash = if ft.is_file() {
                    hash_file(e.path()).unwrap()
                } else if ft.is_symlink() {
                    let t = std::fs::read_link(e.path()).unwrap();
                    Fingerprint::of(t.as_os_str().as_bytes())
                } else {
                    Fingerprint([0; 32])
                };
                TreeEntry {
                    path: e
                        .path()
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    stamp: StatStamp::of(&m),
                    meta: (m.mode(), m.uid(), m.gid(), 0),
                    hash,
                }
            })
            .collect()
    }

    #[test]
    fn same_entries_in_the_same_order_as_walkdir() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for dir in ["a/b/c", "a-c", "a.d/e", "z", "B"] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        for (i, f) in ["a/x", "a/b/c/y", "a-c/z", "a.d/e/w", "B/v", "top"]
            .iter()
            .enumerate()
        {
            std::fs::write(r.join(f), vec![i as u8; 300_000 * i]).unwrap();
        }
        let odd = std::ffi::OsStr::from_bytes(b"odd-\xff-name");
        std::fs::write(r.join("z").join(odd), "x").unwrap();
        symlink("../top", r.join("a/link")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        symlink(outside.path(), r.join("z/out")).unwrap();
        std::fs::set_permissions(r.join("B/v"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let (t, rehashed) = scan_tree(r, None).unwrap();
        assert!(rehashed);
        assert_eq!(t.entries, walkdir_scan(r));
        assert!(t.entries.iter().all(|e| !e.path.contains("secret")));
        // Reused from the previous scan when nothing changed.
        let (again, rehashed) = scan_tree(r, Some(&t)).unwrap();
        assert!(!rehashed);
        assert_eq!(again.entries, t.entries);
    }

    #[test]
    fn a_file_or_a_link_as_the_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("dir/f"), "f").unwrap();
        std::fs::write(d.path().join("file"), "content").unwrap();
        symlink("dir", d.path().join("to-dir")).unwrap();
        for root in ["file", "to-dir"] {
            let root = d.path().join(root);
            assert_eq!(
                scan_tree(&root, None).unwrap().0.entries,
                walkdir_scan(&root)
            );
        }
        assert!(scan_tree(&d.path().join("missing"), None).is_err());
    }
}

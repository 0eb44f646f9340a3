//! Reproducible image layers: the `SOURCE_DATE_EPOCH` of an image (set in
//! the Ddcfile, the snapshot's time, or derived from the newest `Date:` of
//! the Release files the bootstrap fetched, and then kept in the image at
//! [`EPOCH_FILE`] for the later steps), and the normalisation ddc applies to
//! the tree after every step, so that two builds from the same inputs give
//! the same bytes: logs and caches that record when or in which order a
//! build ran are dropped, `/etc/shadow`'s password dates are the epoch's
//! day, and no mtime is newer than the epoch.
//!
//! Everything is reached inside the image without following a link: the
//! image's absolute links point into the master's own tree.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};

use crate::epoch::{newest_release_date, shadow_day};
use crate::fsutil::Folder;

/// Where an image keeps its epoch, for the steps after the bootstrap and
/// for whoever wants to know which mirror state a node runs.
pub(crate) const EPOCH_FILE: &str = "usr/lib/ddc/source-date-epoch";

/// Files that record when a build ran, or what it ran before: removed.
const DROPPED: &[&str] = &[
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/apt/eipp.log.xz",
    "var/cache/ldconfig/aux-cache",
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "var/lib/systemd/random-seed",
    "var/lib/dbus/machine-id",
];

/// Folders whose files ending in `-old` (the state before the last write)
/// are removed.
const OLD_COPIES: &[&str] = &["var/lib/dpkg", "var/cache/debconf"];

/// What one normalisation did, for the step's log.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Normalised {
    pub(crate) removed: usize,
    pub(crate) clamped: usize,
    pub(crate) shadow_lines: usize,
}

fn io(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// The folder `rel` of the image, reached without following a link; None
/// if it is missing or a link on the way.
fn dir_in(root: BorrowedFd, rel: &str) -> Option<OwnedFd> {
    let mut fd = rfs::openat(
        root,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    for name in rel.split('/').filter(|n| !n.is_empty()) {
        fd = rfs::openat(
            &fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
    }
    Some(fd)
}

/// `rel` split into its folder (opened) and its name.
fn parent_in<'a>(root: BorrowedFd, rel: &'a str) -> Option<(OwnedFd, &'a str)> {
    let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    Some((dir_in(root, dir)?, name))
}

/// Reads the regular file `rel` of the image (None if it is not one).
fn read_in(root: BorrowedFd, rel: &str) -> Result<Option<Vec<u8>>> {
    let Some((dir, name)) = parent_in(root, rel) else {
        return Ok(None);
    };
    let fd = match rfs::openat(
        &dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(_) => return Ok(None),
    };
    let mut f = std::fs::File::from(fd);
    if !f.metadata()?.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut bytes)
        .with_context(|| format!("cannot read /{rel}"))?;
    Ok(Some(bytes))
}

/// Removes the regular file `name` of `dir` (a link or anything else
/// stays); whether it was there.
fn remove_file(dir: BorrowedFd, name: &OsStr) -> Result<bool> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
            rfs::unlinkat(dir, name, AtFlags::empty()).map_err(io)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The epoch the bootstrap's Release files give: the newest `Date:` of
/// the `*Release` files in the image's `/var/lib/apt/lists`.
pub(crate) fn derive_epoch(rootfs: &Path) -> Result<i64> {
    let root = Folder::open(rootfs)?;
    let lists = "var/lib/apt/lists";
    let mut texts = Vec::new();
    if let Some(dir) = dir_in(root.fd(), lists) {
        for (name, kind) in crate::fsutil::list(dir.as_fd()).map_err(|e| anyhow::anyhow!(e))? {
            let Some(n) = name.to_str() else { continue };
            if kind == FileType::RegularFile && n.ends_with("Release") {
                if let Some(b) = read_in(root.fd(), &format!("{lists}/{n}"))? {
                    texts.push(String::from_utf8_lossy(&b).into_owned());
                }
            }
        }
    }
    match newest_release_date(texts.iter().map(String::as_str)) {
        Some(t) => Ok(t),
        None => bail!(
            "cannot derive SOURCE_DATE_EPOCH: the bootstrap left no Release file with a Date: in the image's /{lists}; set source_date_epoch in the image's table of the Ddcfile"
        ),
    }
}

/// The epoch recorded in the image by its bootstrap step.
pub(crate) fn read_epoch(rootfs: &Path) -> Result<i64> {
    let root = Folder::open(rootfs)?;
    let text = read_in(root.fd(), EPOCH_FILE)?.with_context(|| {
        format!("the image at {} has no /{EPOCH_FILE}, which its debootstrap step writes; run `ddc clean debootstrap:IMAGE` and build", rootfs.display())
    })?;
    String::from_utf8_lossy(&text)
        .trim()
        .parse()
        .with_context(|| format!("/{EPOCH_FILE} of the image holds no number"))
}

/// Records `epoch` in the image.
pub(crate) fn write_epoch(rootfs: &Path, epoch: i64) -> Result<()> {
    let mut dir = Folder::open(rootfs)?;
    let rel = Path::new(EPOCH_FILE);
    for name in rel.parent().into_iter().flat_map(|p| p.iter()) {
        dir = dir.make_dir(name, 0o755)?;
    }
    let name = rel.file_name().unwrap_or_default();
    dir.write(name, format!("{epoch}\n").as_bytes(), false, 0o644)
}

/// `/etc/shadow` with every password's last change on `day`.
fn shadow_text(text: &str, day: i64) -> (String, usize) {
    let mut n = 0;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let mut f: Vec<&str> = body.split(':').collect();
        let day = day.to_string();
        if f.len() >= 3 && !f[2].is_empty() && f[2] != day {
            f[2] = &day;
            n += 1;
            out.push_str(&f.join(":"));
        } else {
            out.push_str(body);
        }
        out.push_str(end);
    }
    (out, n)
}

/// Rewrites `etc/shadow` (and its backup `shadow-`) with `day`, keeping
/// the files' owners and modes.
fn normalise_shadow(root: &Folder, day: i64) -> Result<usize> {
    let Some(etc) = root.sub_dir("etc")? else {
        return Ok(0);
    };
    let mut lines = 0;
    for name in ["shadow", "shadow-"] {
        let Some(bytes) = read_in(root.fd(), &format!("etc/{name}"))? else {
            continue;
        };
        let (text, n) = shadow_text(&String::from_utf8_lossy(&bytes), day);
        if n == 0 {
            continue;
        }
        let st = rfs::statat(etc.fd(), name, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
        etc.write(name, text.as_bytes(), false, st.st_mode & 0o7777)?;
        rfs::chownat(
            etc.fd(),
            name,
            Some(rfs::Uid::from_raw(st.st_uid)),
            Some(rfs::Gid::from_raw(st.st_gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io)?;
        lines += n;
    }
    Ok(lines)
}

/// Removes what records when or how a build ran.
fn drop_volatile(folder: &Folder) -> Result<usize> {
    let root = folder.fd();
    let mut removed = 0;
    for rel in DROPPED {
        if let Some((dir, name)) = parent_in(root, rel) {
            removed += usize::from(remove_file(dir.as_fd(), OsStr::new(name))?);
        }
    }
    for rel in OLD_COPIES {
        let Some(dir) = dir_in(root, rel) else {
            continue;
        };
        for (name, _) in crate::fsutil::list(dir.as_fd())? {
            if name.as_encoded_bytes().ends_with(b"-old") {
                removed += usize::from(remove_file(dir.as_fd(), &name)?);
            }
        }
    }
    // The package lists: the next apt-get update fetches them again.
    if let Some(dir) = dir_in(root, "var/lib/apt/lists") {
        for (name, kind) in crate::fsutil::list(dir.as_fd())? {
            if kind != FileType::Directory && name != "lock" {
                removed += usize::from(remove_file(dir.as_fd(), &name)?);
            }
        }
    }
    // machine-id stays empty: systemd makes one per node at each boot.
    if let Some(id) = read_in(root, "etc/machine-id")? {
        if !id.is_empty() {
            let etc = folder.sub_dir("etc")?.context("the image has no /etc")?;
            etc.write("machine-id", b"", false, 0o444)?;
        }
    }
    Ok(removed)
}

/// Removes compiled Python (`*.pyc`, which records the source's mtime or
/// the order it was compiled in; Python compiles again at run time) and
/// sets every mtime newer than `epoch` to `epoch`.
fn clamp_tree(rootfs: &Path, epoch: i64) -> Result<(usize, usize)> {
    let (mut removed, mut clamped) = (0, 0);
    let mut newer = Vec::new();
    for entry in walkdir::WalkDir::new(rootfs).same_file_system(true) {
        let entry = entry.with_context(|| format!("cannot read {}", rootfs.display()))?;
        let m = entry.path().symlink_metadata()?;
        let pyc = m.is_file()
            && entry.path().extension() == Some(OsStr::new("pyc"))
            && entry.path().parent().and_then(Path::file_name) == Some(OsStr::new("__pycache__"));
        if pyc {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        } else if m.mtime() > epoch || (m.mtime() == epoch && m.mtime_nsec() != 0) {
            newer.push(entry.into_path());
        }
    }
    // Removing a .pyc changed its folder's mtime: folders come after.
    newer.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in newer {
        set_mtime(&p, epoch)?;
        clamped += 1;
    }
    Ok((removed, clamped))
}

/// Sets the mtime (and atime) of `path`, a file ddc wrote, to `epoch`.
pub(crate) fn set_mtime(path: &Path, epoch: i64) -> Result<()> {
    let at = Timespec {
        tv_sec: epoch,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: at,
        last_modification: at,
    };
    rfs::utimensat(rfs::CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io)
        .with_context(|| format!("cannot set the mtime of {}", path.display()))
}

/// Normalises the image at `rootfs` for `epoch`; writes what it did to `log`.
pub(crate) fn normalise(rootfs: &Path, epoch: i64, log: &mut impl Write) -> Result<Normalised> {
    let root = Folder::open(rootfs)?;
    let mut n = Normalised {
        removed: drop_volatile(&root)?,
        shadow_lines: normalise_shadow(&root, shadow_day(epoch))?,
        ..Default::default()
    };
    let (pyc, clamped) = clamp_tree(rootfs, epoch)?;
    n.removed += pyc;
    n.clamped = clamped;
    writeln!(
        log,
        "ddc: reproducible at SOURCE_DATE_EPOCH={epoch}: {} volatile files removed, {} shadow dates set, {} mtimes clamped",
        n.removed, n.shadow_lines, n.clamped
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn shadow_dates_become_the_epochs_day() {
        let text =
            "root:$y$j9T$x:19000:0:99999:7:::\nsystemd-network:!*:19001::::::\nnobody:*:::::::\n";
        let (out, n) = shadow_text(text, 19518);
        assert_eq!(n, 2);
        assert_eq!(
            out,
            "root:$y$j9T$x:19518:0:99999:7:::\nsystemd-network:!*:19518::::::\nnobody:*:::::::\n"
        );
        assert_eq!(shadow_text(&out, 19518).1, 0, "idempotent");
    }

    #[test]
    fn a_tree_is_normalised() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for dir in [
            "etc",
            "var/log/apt",
            "var/lib/dpkg",
            "var/lib/apt/lists/partial",
            "usr/lib/python3/__pycache__",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        let files = [
            ("etc/machine-id", "0123456789abcdef\n"),
            ("etc/shadow", "root:*:20000:0:99999:7:::\n"),
            ("var/log/dpkg.log", "2026-11-27 install\n"),
            ("var/log/apt/history.log", "Start-Date\n"),
            ("var/lib/dpkg/status", "Package: x\n"),
            ("var/lib/dpkg/status-old", "Package: y\n"),
            (
                "var/lib/apt/lists/m_dists_bookworm_InRelease",
                "Date: Sat, 10 Jun 2023 08:57:08 UTC\n",
            ),
            ("usr/lib/python3/__pycache__/x.cpython-311.pyc", "\0"),
            ("usr/lib/python3/x.py", "pass\n"),
        ];
        for (f, text) in files {
            std::fs::write(r.join(f), text).unwrap();
        }
        std::fs::set_permissions(r.join("etc/shadow"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        // A link to the master's own file is never followed.
        std::os::unix::fs::symlink("/etc/hostname", r.join("etc/host-link")).unwrap();
        assert_eq!(derive_epoch(r).unwrap(), 1_686_387_428);
        let mut log = Vec::new();
        let n = normalise(r, 1_686_387_428, &mut log).unwrap();
        assert_eq!(n.removed, 5, "{n:?}");
        assert_eq!(n.shadow_lines, 1);
        for gone in [
            "var/log/dpkg.log",
            "var/log/apt/history.log",
            "var/lib/dpkg/status-old",
            "var/lib/apt/lists/m_dists_bookworm_InRelease",
            "usr/lib/python3/__pycache__/x.cpython-311.pyc",
        ] {
            assert!(!r.join(gone).exists(), "{gone}");
        }
        assert!(r.join("var/lib/apt/lists/partial").is_dir());
        assert_eq!(std::fs::read(r.join("etc/machine-id")).unwrap(), b"");
        assert_eq!(
            std::fs::read_to_string(r.join("etc/shadow")).unwrap(),
            "root:*:19518:0:99999:7:::\n"
        );
        let shadow = std::fs::metadata(r.join("etc/shadow")).unwrap();
        assert_eq!(shadow.mode() & 0o7777, 0o640);
        for e in walkdir::WalkDir::new(r) {
            let m = e.unwrap().path().symlink_metadata().unwrap();
            assert!(m.mtime() <= 1_686_387_428);
        }
        let link = r.join("etc/host-link").symlink_metadata().unwrap();
        assert_eq!(link.mtime(), 1_686_387_428);
        // Nothing newer: a second pass changes nothing.
        let again = normalise(r, 1_686_387_428, &mut log).unwrap();
        assert_eq!(again, Normalised::default());
        assert!(String::from_utf8(log)
            .unwrap()
            .contains("SOURCE_DATE_EPOCH=1686387428"));
    }

    #[test]
    fn the_epoch_goes_through_the_image() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_epoch(d.path()).is_err());
        write_epoch(d.path(), 42).unwrap();
        assert_eq!(read_epoch(d.path()).unwrap(), 42);
        assert!(derive_epoch(d.path())
            .unwrap_err()
            .to_string()
            .contains("set source_date_epoch"));
    }
}

//! The mount guard around every step that enters an image: `/proc`, `/sys`,
//! `/dev` (bind) and `/dev/pts` (bind) mounted inside the root, unmounted
//! deepest first when the guard drops, whatever happened (an error, a panic
//! unwinding, a cancelled build). Also the overlay mounts of layered staging.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

/// Mounts that are undone, in reverse order, on drop.
#[derive(Default)]
pub struct MountGuard {
    mounts: Vec<PathBuf>,
}

impl MountGuard {
    /// Mounts the kernel file systems a chroot needs inside `root`.
    pub fn chroot(root: &Path) -> Result<Self> {
        let mut g = MountGuard::default();
        let root = std::fs::canonicalize(root)
            .with_context(|| format!("cannot resolve {}", root.display()))?;
        let none: Option<&str> = None;
        for (rel, source, fstype, flags) in [
            (
                "proc",
                "proc",
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            ),
            (
                "sys",
                "sysfs",
                Some("sysfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
            ),
            ("dev", "/dev", None, MsFlags::MS_BIND),
            ("dev/pts", "/dev/pts", None, MsFlags::MS_BIND),
        ] {
            let (target, fd) = target(&root, rel)?;
            // Mounted on the folder opened, not on a path looked up again.
            let at = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            mount(Some(source), &at, fstype, flags, none)
                .with_context(|| format!("cannot mount {source} on {}", target.display()))?;
            g.mounts.push(target.clone());
            if flags.contains(MsFlags::MS_BIND) {
                // Keep what happens under it from propagating back to the host.
                let _ = mount(none, &target, none, MsFlags::MS_PRIVATE, none);
            }
        }
        Ok(g)
    }

    /// Mounts an overlay of `lowers` (topmost first) with an optional upper.
    pub fn overlay(
        target: &Path,
        lowers: &[PathBuf],
        upper: Option<(&Path, &Path)>,
    ) -> Result<Self> {
        // The layers are folders of the cache: one that became a link is
        // refused, never mounted from wherever it points.
        let upper_dirs = upper.iter().flat_map(|(u, w)| [*u, *w]);
        for dir in lowers.iter().map(PathBuf::as_path).chain(upper_dirs) {
            crate::fsutil::Folder::open(dir)?;
        }
        let mut opts = format!(
            "lowerdir={}",
            lowers
                .iter()
                .map(|l| escape_opt(l))
                .collect::<Vec<_>>()
                .join(":")
        );
        if let Some((up, work)) = upper {
            opts.push_str(&format!(
                ",upperdir={},workdir={}",
                escape_opt(up),
                escape_opt(work)
            ));
        }
        // The mount point is replaced by the overlay's root, whose mode is
        // the layers'.
        crate::fsutil::make_dir_mode(target, 0o755)?;
        let flags = if upper.is_some() {
            MsFlags::empty()
        } else {
            MsFlags::MS_RDONLY
        };
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            flags,
            Some(opts.as_str()),
        )
        .with_context(|| format!("cannot mount an overlay on {} ({opts})", target.display()))?;
        Ok(MountGuard {
            mounts: vec![target.to_path_buf()],
        })
    }

    /// Unmounts everything now, reporting the first failure.
    pub fn release(mut self) -> Result<()> {
        self.unmount_all()
    }

    fn unmount_all(&mut self) -> Result<()> {
        let mut first_err = None;
        while let Some(m) = self.mounts.pop() {
            if let Err(e) = unmount(&m) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_all() {
            let _ = writeln!(std::io::stderr(), "ddc: {e:#}");
        }
    }
}

/// A mount point inside the image at `root` (a real path), opened: each
/// name below `root` is opened with `O_NOFOLLOW` (created 0755 if missing),
/// so a link in the image is refused, never followed out of it.
fn target(root: &Path, rel: &str) -> Result<(PathBuf, OwnedFd)> {
    let mut fd = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)
    .with_context(|| format!("cannot open {}", root.display()))?;
    let mut path = root.to_path_buf();
    for name in rel.split('/') {
        path.push(name);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let next = match rfs::openat(&fd, name, flags, Mode::empty()) {
            Err(Errno::NOENT) => {
                match rfs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(io(e))
                            .with_context(|| format!("cannot create {}", path.display()))
                    }
                }
                rfs::openat(&fd, name, flags, Mode::empty())
            }
            r => r,
        };
        fd = match next {
            Ok(f) => f,
            // O_NOFOLLOW|O_DIRECTORY on a link gives ELOOP or ENOTDIR.
            Err(Errno::LOOP | Errno::NOTDIR) => {
                let link = rfs::statat(&fd, name, rfs::AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                    rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink
                });
                if link {
                    bail!(
                        "refusing to mount on {}: it is a symlink in the image",
                        path.display()
                    )
                }
                bail!("refusing to mount on {}: not a folder", path.display())
            }
            Err(e) => return Err(io(e)).with_context(|| format!("cannot open {}", path.display())),
        };
    }
    Ok((path, fd))
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

fn escape_opt(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(':', "\\:")
}

/// Unmounts one mount point, retrying for a while when it is busy. Never a
/// lazy detach: a mount that stays busy stays mounted, and is reported (the
/// steps' processes are gone by then, so only something else can hold it).
pub fn unmount(m: &Path) -> Result<()> {
    for _ in 0..50 {
        match umount2(m, MntFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) => std::thread::sleep(Duration::from_millis(100)),
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot unmount {}", m.display())),
        }
    }
    bail!(
        "cannot unmount {}: it stays busy (`fuser -vm {}` shows who holds it); ddc leaves it mounted rather than detach it, and the next build tries again",
        m.display(),
        m.display()
    )
}

/// Whether a mount point is one ddc makes: an image step's or publish's
/// root (`cache/images/IMG/STEP.root`, `STEP.staging`) or below one.
/// The cache itself, or a disk an administrator mounted in it, is not.
fn ours(images: &Path, m: &Path) -> bool {
    let Ok(rest) = m.strip_prefix(images) else {
        return false;
    };
    rest.components().nth(1).is_some_and(|c| {
        let c = c.as_os_str().to_string_lossy();
        c.ends_with(".root") || c.ends_with(".staging")
    })
}

/// Unmounts what an earlier, killed run of ddc left mounted in the cache at
/// `dir`, and nothing else.
pub fn unmount_leftovers(dir: &Path) -> Vec<PathBuf> {
    let images = std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .join("images");
    let mut done = Vec::new();
    for m in crate::fsutil::mounts_under(&images).unwrap_or_default() {
        if ours(&images, &m) && unmount(&m).is_ok() {
            done.push(m);
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ddcs_own_mount_points_are_leftovers() {
        let i = Path::new("/c/cache/images");
        assert!(ours(i, Path::new("/c/cache/images/default/packages.root")));
        assert!(ours(
            i,
            Path::new("/c/cache/images/default/packages.root/proc")
        ));
        assert!(ours(
            i,
            Path::new("/c/cache/images/default/configure.staging/dev/pts")
        ));
        assert!(ours(i, Path::new("/c/cache/images/default/publish.root")));
        assert!(!ours(i, Path::new("/c/cache/images")));
        assert!(!ours(i, Path::new("/c/cache/images/default")));
        assert!(!ours(i, Path::new("/c/cache/images/default/packages")));
        assert!(!ours(i, Path::new("/c/cache")));
        assert!(!ours(i, Path::new("/c/cache/debs")));
    }
}

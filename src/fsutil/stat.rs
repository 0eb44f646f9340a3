//! Stat stamps of many files in few folders (10,000 node entries in one
//! `pxelinux.cfg`), each looked up in its folder's handle instead of by its
//! whole path: walking six path components again for every file was half
//! the time a build spent checking its outputs.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, CWD};

use crate::fingerprint::StatStamp;

/// What a stat without following the last link says of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub stamp: StatStamp,
    pub is_dir: bool,
}

/// Folder handles, each opened once (its path resolved then, links
/// followed, as a stat by path resolves the folders on the way). Lives for
/// one pass over the outputs: a folder replaced afterwards is not seen.
#[derive(Default)]
pub struct Stats {
    dirs: RwLock<HashMap<PathBuf, Arc<OwnedFd>, foldhash::fast::RandomState>>,
}

impl Stats {
    /// `symlink_metadata(path)`'s answer, as a stamp and a kind. Errors
    /// keep their kind (not found, permission denied).
    pub fn of(&self, path: &Path) -> io::Result<Stat> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return std::fs::symlink_metadata(path).map(|m| Stat {
                stamp: StatStamp::of(&m),
                is_dir: m.is_dir(),
            });
        };
        let fd = self.dir(dir)?;
        let st = rfs::statat(&*fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)?;
        Ok(Stat {
            stamp: StatStamp {
                size: st.st_size as u64,
                mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
                ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
                ino: st.st_ino,
            },
            is_dir: FileType::from_raw_mode(st.st_mode) == FileType::Directory,
        })
    }

    fn dir(&self, dir: &Path) -> io::Result<Arc<OwnedFd>> {
        if let Some(fd) = self.dirs.read().expect("folders").get(dir) {
            return Ok(fd.clone());
        }
        let dir_path = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let fd = Arc::new(
            rfs::openat(
                CWD,
                dir_path,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)?,
        );
        self.dirs
            .write()
            .expect("folders")
            .insert(dir.to_path_buf(), fd.clone());
        Ok(fd)
    }
}

/// Nanoseconds since the epoch, as [`StatStamp::of`] counts them.
fn ns(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_path(p: &Path) -> io::Result<Stat> {
        std::fs::symlink_metadata(p).map(|m| Stat {
            stamp: StatStamp::of(&m),
            is_dir: m.is_dir(),
        })
    }

    #[test]
    fn says_what_a_stat_by_path_says() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("pxelinux.cfg");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("01-52-54-00-00-00-01"), "entry").unwrap();
        std::os::unix::fs::symlink("01-52-54-00-00-00-01", sub.join("link")).unwrap();
        std::os::unix::fs::symlink(&sub, d.path().join("linked")).unwrap();
        let stats = Stats::default();
        for p in [
            sub.join("01-52-54-00-00-00-01"),
            sub.join("link"),
            sub.clone(),
            d.path().join("linked"),
            d.path().join("linked/01-52-54-00-00-00-01"),
        ] {
            assert_eq!(
                stats.of(&p).unwrap(),
                by_path(&p).unwrap(),
                "{}",
                p.display()
            );
        }
        let gone = stats.of(&sub.join("missing")).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        let no_dir = stats.of(&d.path().join("nowhere/file")).unwrap_err();
        assert_eq!(no_dir.kind(), io::ErrorKind::NotFound);
        // A file changed after its folder was opened is seen changed.
        let before = stats.of(&sub.join("01-52-54-00-00-00-01")).unwrap();
        std::fs::write(sub.join("01-52-54-00-00-00-01"), "another entry").unwrap();
        assert_ne!(stats.of(&sub.join("01-52-54-00-00-00-01")).unwrap(), before);
    }
}

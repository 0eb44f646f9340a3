//! Task logs: where a heavy task writes as it goes, and the last lines of
//! a failed task's log that the reporter shows.

use std::fs::File;
use std::path::Path;

use anyhow::Result;

use crate::cache::CacheDirs;
use crate::fsutil;

/// Heavy tasks write their log as they go; cheap tasks only get a file if
/// they fail.
pub(super) fn open_log(dirs: &CacheDirs, task: &str) -> Result<File> {
    fsutil::open_file(&dirs.log(task), fsutil::Open::Truncate, LOG_MODE)
}

/// The mode of task logs: a step's output may show what it configured.
pub(super) const LOG_MODE: u32 = 0o600;

/// The last `n` lines of a log, read from its end (a step's log can be
/// gigabytes: only its last 64 KiB are read).
pub(super) fn tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut f) = fsutil::open_no_follow(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(WINDOW);
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.take(WINDOW).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_of_a_large_log_is_read_from_its_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.log");
        let mut text = String::new();
        for i in 0..100_000 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&p, &text).unwrap();
        let t = tail(&p, 3);
        assert_eq!(t, ["line 99997", "line 99998", "line 99999"]);
        std::fs::write(&p, "a\nb\n").unwrap();
        assert_eq!(tail(&p, 15), ["a", "b"]);
        assert!(tail(&d.path().join("missing"), 3).is_empty());
    }
}

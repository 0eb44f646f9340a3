//! The mount table, read from `/proc/self/mountinfo`: what ddc must never
//! delete through.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

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

pub(super) fn unescape_mount(s: &str) -> String {
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
    found.sort_by(|a, b| {
        (std::cmp::Reverse(a.components().count()), a)
            .cmp(&(std::cmp::Reverse(b.components().count()), b))
    });
    found.dedup();
    Ok(found)
}

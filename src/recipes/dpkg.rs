//! The installed version of a host tool (mmdebstrap, debootstrap), which
//! the first image step's key includes: read from dpkg's status file when
//! that answers for sure, else from `dpkg-query`. Starting `dpkg-query`
//! costs 5 to 8 ms, more than the rest of planning 10,000 nodes, on every
//! build that is not a no-op.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// Where dpkg keeps what is installed, and its journal of changes not yet
/// folded into it.
const STATUS: &str = "/var/lib/dpkg/status";
const UPDATES: &str = "/var/lib/dpkg/updates";

/// A status file larger than this is not read (dpkg-query answers).
const MAX_STATUS: u64 = 256 << 20;

/// The installed version of a Debian package, or "unknown" (not installed,
/// or no dpkg). The same string as `dpkg-query -W -f '${Version}' PACKAGE`.
pub(crate) fn tool_version(package: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().expect("tools");
    cache
        .entry(package.to_string())
        .or_insert_with(|| {
            from_status(Path::new(STATUS), Path::new(UPDATES), package)
                .unwrap_or_else(|| dpkg_query(package))
        })
        .clone()
}

/// What `dpkg-query` says: by its path, since a key must not depend on
/// the PATH ddc runs with.
fn dpkg_query(package: &str) -> String {
    std::process::Command::new("/usr/bin/dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The version from the status file, only when it is sure to be what
/// dpkg-query would say: no change pending in dpkg's journal (`updates`,
/// which dpkg-query reads on top), and exactly one record of the package,
/// installed. None in every other case (dpkg-query decides).
fn from_status(status: &Path, updates: &Path, package: &str) -> Option<String> {
    // dpkg-query reads another database when these say so.
    if ["DPKG_ADMINDIR", "DPKG_ROOT"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        return None;
    }
    let pending = std::fs::read_dir(updates)
        .ok()?
        .flatten()
        .any(|e| e.file_name().to_str().is_some_and(is_journal_entry));
    if pending || std::fs::metadata(status).ok()?.len() > MAX_STATUS {
        return None;
    }
    let text = std::fs::read(status).ok()?;
    let text = std::str::from_utf8(&text).ok()?;
    let mut found = text
        .split("\n\n")
        .filter(|record| field(record, "Package") == Some(package));
    let record = found.next()?;
    if found.next().is_some() || field(record, "Status") != Some("install ok installed") {
        return None;
    }
    Some(field(record, "Version").unwrap_or_default().to_string())
}

/// dpkg's journal entries are named by a number (`tmp.i` is its scratch).
fn is_journal_entry(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// A field of one status record: its value on the `Name:` line.
fn field<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    record.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        Some(value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_TEXT: &str = "Package: adduser\nStatus: install ok installed\nVersion: 3.134\n\n\
        Package: mmdebstrap\nStatus: install ok installed\nPriority: optional\nVersion: 1.3.5-7\n\
        Description: create a Debian chroot\n Version: not this one\n\n\
        Package: debootstrap\nStatus: deinstall ok config-files\nVersion: 1.0.128\n\n\
        Package: libc6\nArchitecture: amd64\nStatus: install ok installed\nVersion: 2.36-9\n\n\
        Package: libc6\nArchitecture: i386\nStatus: install ok installed\nVersion: 2.36-9\n";

    fn dpkg_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("status"), STATUS_TEXT).unwrap();
        std::fs::create_dir(d.path().join("updates")).unwrap();
        std::fs::write(d.path().join("updates/tmp.i"), "").unwrap();
        d
    }

    fn version(d: &Path, package: &str) -> Option<String> {
        from_status(&d.join("status"), &d.join("updates"), package)
    }

    #[test]
    fn an_installed_package_has_its_version_field() {
        let d = dpkg_dir();
        assert_eq!(version(d.path(), "mmdebstrap").as_deref(), Some("1.3.5-7"));
        assert_eq!(version(d.path(), "adduser").as_deref(), Some("3.134"));
    }

    #[test]
    fn anything_unsure_is_left_to_dpkg_query() {
        let d = dpkg_dir();
        // Not installed, removed with its config left, or in two architectures.
        assert_eq!(version(d.path(), "mmdebstrap-extra"), None);
        assert_eq!(version(d.path(), "debootstrap"), None);
        assert_eq!(version(d.path(), "libc6"), None);
        // A change in dpkg's journal, not yet in the status file.
        std::fs::write(d.path().join("updates/0001"), "Package: mmdebstrap\n").unwrap();
        assert_eq!(version(d.path(), "mmdebstrap"), None);
    }

    #[test]
    fn the_status_file_says_what_dpkg_query_says() {
        // This host's own dpkg, where there is one.
        for tool in ["dpkg", "mmdebstrap", "debootstrap"] {
            if let Some(v) = from_status(Path::new(STATUS), Path::new(UPDATES), tool) {
                assert_eq!(v, dpkg_query(tool), "{tool}");
            }
        }
    }
}

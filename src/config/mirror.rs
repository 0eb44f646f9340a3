//! The master's own apt mirror, the default for images that name none, and
//! the apt source files it is read from.
//!
//! Reads only the master's files: imports nothing from the other config modules.

use std::path::{Path, PathBuf};

/// The master's apt source files, where an image's default mirror comes from.
pub(super) fn apt_sources() -> Vec<PathBuf> {
    let mut v = vec![
        PathBuf::from("/etc/apt/sources.list"),
        PathBuf::from("/etc/apt/sources.list.d"),
    ];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        v.extend(files);
    }
    v
}

/// The mirror that the master's own apt sources use, or empty.
pub(crate) fn system_mirror() -> String {
    mirror_from_sources(
        Path::new("/etc/apt/sources.list.d"),
        Path::new("/etc/apt/sources.list"),
    )
    .unwrap_or_default()
}

/// Finds the first Debian archive URI in deb822 `.sources` files or a
/// one-line `sources.list`; security and backports archives are skipped.
fn mirror_from_sources(dir: &Path, list: &Path) -> Option<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sources"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
                })
            };
            let enabled = field("Enabled").is_none_or(|v| v != "no");
            let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
            let suites = field("Suites").unwrap_or_default();
            if enabled && is_deb && !suites.contains("security") && !suites.contains("backports") {
                if let Some(uri) =
                    field("URIs").and_then(|u| u.split_whitespace().next().map(str::to_string))
                {
                    return Some(uri);
                }
            }
        }
    }
    let text = std::fs::read_to_string(list).ok()?;
    for line in text.lines() {
        // `deb [arch=amd64 signed-by=…] URI SUITE …`: the options block may
        // hold several words.
        let mut in_options = false;
        let mut words = line.split_whitespace().filter(|w| {
            let skip = in_options || w.starts_with('[');
            in_options = skip && !w.ends_with(']');
            !skip
        });
        if words.next() != Some("deb") {
            continue;
        }
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        if !suite.contains("security") && !suite.contains("backports") {
            return Some(uri.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_from_the_masters_apt_sources() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("sources.list.d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("debian.sources"),
            "Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\n\nTypes: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n",
        )
        .unwrap();
        assert_eq!(
            mirror_from_sources(&dir, &d.path().join("none")).as_deref(),
            Some("http://deb.example/debian")
        );
        let list = d.path().join("sources.list");
        std::fs::write(
            &list,
            "# comment\ndeb [arch=amd64] http://other.example/debian bookworm main\n",
        )
        .unwrap();
        assert_eq!(
            mirror_from_sources(&d.path().join("empty"), &list).as_deref(),
            Some("http://other.example/debian")
        );
        assert_eq!(
            mirror_from_sources(&d.path().join("empty"), &d.path().join("none")),
            None
        );
    }
}

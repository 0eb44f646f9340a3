//! The validated config kept between runs (`cache/config.bin`, postcard),
//! keyed by this binary, the Ddcfile's own location (its real path, device
//! and inode) and the fingerprint of every file it was read from.
//!
//! The config holds absolute paths, all derived from the Ddcfile's folder: a
//! copy of the folder (`cp -a A B`), or the folder moved, has the same bytes
//! but another location, so it is validated again and every path derived
//! from where it is now, never taken from where it was.
//!
//! Only a speed-up: imports the model, never the validator.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::Config;

/// A fingerprint of what a config was read from: each file's bytes, or a
/// folder's listing.
pub(crate) fn sources_fingerprint(sources: &[PathBuf]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for p in sources {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        if p.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            h.update(names.join("\n").as_bytes());
        } else if let Ok(bytes) = super::read::read_bounded(p) {
            h.update(blake3::hash(&bytes).as_bytes());
        } else {
            h.update(b"(missing)");
        }
        h.update(b"\0");
    }
    *h.finalize().as_bytes()
}

/// This ddc binary: a config validated by another version is checked again.
pub(crate) fn binary_id() -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}-{}-{}", m.size(), m.mtime(), m.ino())
        })
        .unwrap_or_default();
    format!("{}/{exe}", env!("CARGO_PKG_VERSION"))
}

/// Where a Ddcfile is: its real path, and the file itself (a copy is
/// another file, even at a path that once named the original).
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct Location {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Location {
    /// `ddcfile` is already the real path ([`super::ddcfile_path`]).
    fn of(ddcfile: &Path) -> Option<Location> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(ddcfile).ok()?;
        Some(Location {
            path: ddcfile.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

const CONFIG_CACHE_VERSION: u32 = 4;

/// A config validated before from the very same files, for the Ddcfile at
/// the very same place: parsing and validating a 10,000-node Ddcfile takes
/// longer than a whole no-op build.
pub(super) fn cached(path: &Path, ddcfile: &Path, shown: &str) -> Option<Config> {
    let bytes = std::fs::read(path).ok()?;
    let (head, rest) = postcard::take_from_bytes::<Head>(&bytes).ok()?;
    let here = Location::of(ddcfile)?;
    if head.version != CONFIG_CACHE_VERSION
        || head.binary != binary_id()
        || head.ddcfile != here
        || head.shown != shown
        || head.fingerprint != sources_fingerprint(&head.sources)
    {
        return None;
    }
    let config: Config = postcard::from_bytes(rest).ok()?;
    (config.file == here.path
        && Some(config.base_dir.as_path()) == here.path.parent()
        && config.sources == head.sources)
        .then_some(config)
}

/// What the memo holds before its config: which files, and which ddc, it
/// was made from. The file is this head, then the config (postcard: one
/// after the other), so a memo of other files is told without decoding
/// 10,000 nodes.
#[derive(Serialize, Deserialize)]
struct Head {
    version: u32,
    binary: String,
    ddcfile: Location,
    shown: String,
    /// The config's sources.
    sources: Vec<PathBuf>,
    fingerprint: [u8; 32],
}

pub(super) fn remember(path: &Path, ddcfile: &Path, shown: &str, config: &Config) {
    let Some(ddcfile) = Location::of(ddcfile) else {
        return;
    };
    let head = Head {
        version: CONFIG_CACHE_VERSION,
        binary: binary_id(),
        ddcfile,
        shown: shown.to_string(),
        sources: config.sources.clone(),
        fingerprint: sources_fingerprint(&config.sources),
    };
    // The same bytes as one struct of both, without copying the config.
    if let Ok(bytes) = postcard::to_stdvec(&(&head, config)) {
        // Only a speed-up: a failure to write it changes nothing.
        // 0600: it holds root_password_hash, which the Ddcfile may keep private.
        let _ = crate::fsutil::atomic_write_mode(path, &bytes, false, 0o600);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config as `load` would make for the Ddcfile in `dir`.
    fn config_in(dir: &Path) -> Config {
        let text = "[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster = \"192.0.2.1\"\n";
        std::fs::write(dir.join("Ddcfile.toml"), text).unwrap();
        let dir = std::fs::canonicalize(dir).unwrap();
        crate::config::parse(text, "Ddcfile.toml", &dir, &String::new).unwrap()
    }

    #[test]
    fn a_copy_or_a_replaced_ddcfile_is_not_the_remembered_one() {
        let a = tempfile::tempdir().unwrap();
        let cfg = config_in(a.path());
        let memo = a.path().join("config.bin");
        remember(&memo, &cfg.file, "Ddcfile.toml", &cfg);
        assert!(cached(&memo, &cfg.file, "Ddcfile.toml").is_some());
        assert!(cached(&memo, &cfg.file, "./Ddcfile.toml").is_none());

        // The same bytes, memo included, in another folder.
        let b = tempfile::tempdir().unwrap();
        config_in(b.path());
        std::fs::copy(&memo, b.path().join("config.bin")).unwrap();
        let b_file = std::fs::canonicalize(b.path().join("Ddcfile.toml")).unwrap();
        assert!(cached(&b.path().join("config.bin"), &b_file, "Ddcfile.toml").is_none());

        // The same path, another file (moved away, copied back).
        let moved = a.path().join("moved.toml");
        std::fs::rename(&cfg.file, &moved).unwrap();
        std::fs::copy(&moved, &cfg.file).unwrap();
        assert!(cached(&memo, &cfg.file, "Ddcfile.toml").is_none());
    }
}

//! The validated config kept between runs (`cache/config.bin`, postcard),
//! keyed by this binary and the fingerprint of every file it was read from.
//!
//! Only a speed-up: imports the model, never the validator.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::Config;

/// A fingerprint of what a config was read from: each file's bytes, or a
/// folder's listing.
fn sources_fingerprint(sources: &[PathBuf]) -> [u8; 32] {
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
        } else if let Ok(bytes) = std::fs::read(p) {
            h.update(blake3::hash(&bytes).as_bytes());
        } else {
            h.update(b"(missing)");
        }
        h.update(b"\0");
    }
    *h.finalize().as_bytes()
}

/// This ddc binary: a config validated by another version is checked again.
fn binary_id() -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}-{}-{}", m.size(), m.mtime(), m.ino())
        })
        .unwrap_or_default();
    format!("{}/{exe}", env!("CARGO_PKG_VERSION"))
}

#[derive(Serialize, Deserialize)]
struct CachedConfig {
    version: u32,
    binary: String,
    shown: String,
    fingerprint: [u8; 32],
    config: Config,
}

const CONFIG_CACHE_VERSION: u32 = 1;

/// A config validated before from the very same files: parsing and
/// validating a 10,000-node Ddcfile takes longer than a whole no-op build.
pub(super) fn cached(path: &Path, shown: &str) -> Option<Config> {
    let bytes = std::fs::read(path).ok()?;
    let c: CachedConfig = postcard::from_bytes(&bytes).ok()?;
    (c.version == CONFIG_CACHE_VERSION
        && c.binary == binary_id()
        && c.shown == shown
        && c.fingerprint == sources_fingerprint(&c.config.sources))
    .then_some(c.config)
}

pub(super) fn remember(path: &Path, shown: &str, config: &Config) {
    let c = CachedConfig {
        version: CONFIG_CACHE_VERSION,
        binary: binary_id(),
        shown: shown.to_string(),
        fingerprint: sources_fingerprint(&config.sources),
        config: config.clone(),
    };
    if let Ok(bytes) = postcard::to_stdvec(&c) {
        // Only a speed-up: a failure to write it changes nothing.
        // 0600: it holds root_password_hash, which the Ddcfile may keep private.
        let _ = crate::fsutil::atomic_write_mode(path, &bytes, false, 0o600);
    }
}

//! The steps of an image and how their working trees are made: what the
//! image recipe (`image.rs`), publish, the planner and the step environment
//! share. Imports none of them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use super::Kind;

/// Where a step stands in [`Step::ALL`].
pub(crate) fn index_of(step: Step) -> usize {
    Step::ALL.iter().position(|s| *s == step).expect("a step")
}

/// How a step's working tree is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Staging {
    Layers,
    Copy,
}

impl Staging {
    /// The staging whose key input hashes to `prefix` (as a record keeps it).
    pub(crate) fn recorded(prefix: u64) -> Option<Staging> {
        [Staging::Layers, Staging::Copy]
            .into_iter()
            .find(|s| crate::fingerprint::Fingerprint::of_json(s).prefix64() == prefix)
    }
}

/// [`Staging::Layers`] when running as root on a kernel with overlayfs,
/// else [`Staging::Copy`]. `DDC_STAGING=copy` forces copies (for file
/// systems overlayfs cannot use).
pub(crate) fn staging_mode() -> Staging {
    static MODE: std::sync::OnceLock<Staging> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        if std::env::var("DDC_STAGING").is_ok_and(|v| v == "copy") {
            return Staging::Copy;
        }
        let root = nix::unistd::geteuid().is_root();
        let listed = || {
            std::fs::read_to_string("/proc/filesystems")
                .is_ok_and(|s| s.lines().any(|l| l.ends_with("\toverlay")))
        };
        // overlay may be a module not loaded yet: load it rather than let
        // the mode (part of every image step's key) depend on what ran before.
        if root && !listed() {
            let _ = Command::new("modprobe")
                .arg("overlay")
                .stderr(std::process::Stdio::null())
                .status();
        }
        if root && listed() {
            Staging::Layers
        } else {
            Staging::Copy
        }
    })
}

pub(crate) fn image_dir(cache: &Path, image: &str) -> PathBuf {
    cache.join("images").join(image)
}

/// The steps of an image, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Debootstrap,
    Packages,
    Configure,
    Initramfs,
}

impl Step {
    pub(crate) const ALL: [Step; 4] = [
        Step::Debootstrap,
        Step::Packages,
        Step::Configure,
        Step::Initramfs,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Debootstrap => "debootstrap",
            Step::Packages => "packages",
            Step::Configure => "configure",
            Step::Initramfs => "initramfs",
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Step::Debootstrap => Kind::Debootstrap,
            Step::Packages => Kind::Packages,
            Step::Configure => Kind::Configure,
            Step::Initramfs => Kind::Initramfs,
        }
    }

    pub(crate) fn index(self) -> usize {
        index_of(self)
    }
}

/// The committed outputs of the steps before `step`, newest first.
pub(crate) fn lower_layers(dir: &Path, step: Step) -> Vec<PathBuf> {
    Step::ALL[..step.index()]
        .iter()
        .rev()
        .map(|s| dir.join(s.name()))
        .collect()
}

//! The steps of an image and how their working trees are made: what the
//! image recipe (`image.rs`), publish, the planner and the step environment
//! share. Imports none of them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use super::Kind;
use crate::config::Config;

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

/// Whether `image` runs `step` itself: an image with `from` starts from its
/// base's packages layer and has no `debootstrap` of its own.
pub(crate) fn runs_step(cfg: &Config, image: &str, step: Step) -> bool {
    step != Step::Debootstrap || cfg.images.get(image).is_none_or(|i| i.from.is_none())
}

/// The committed trees under `step` of `image`, newest first: the outputs
/// of its own steps before `step`, then, for an image with `from`, its
/// bases' layers from their `packages` step down. As root these are the
/// overlay's lower layers; in copy mode the first is the tree copied.
pub(crate) fn lower_layers(cache: &Path, cfg: &Config, image: &str, step: Step) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Step::ALL[..step.index()]
        .iter()
        .rev()
        .filter(|s| runs_step(cfg, image, **s))
        .map(|s| image_dir(cache, image).join(s.name()))
        .collect();
    if step == Step::Debootstrap {
        return out;
    }
    for base in cfg.bases_of(image) {
        for s in [Step::Packages, Step::Debootstrap] {
            if runs_step(cfg, &base.name, s) {
                out.push(image_dir(cache, &base.name).join(s.name()));
            }
        }
    }
    out
}

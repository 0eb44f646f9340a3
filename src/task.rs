//! What every task is: a stable id, a kind with a recipe version, its static
//! inputs, its dependencies, and the action that produces its outputs.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fingerprint::{Fingerprint, Input};

/// A stable task id: `kind:instance` (`pxe:node01`) or just `kind` (`dhcp`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub String);

impl TaskId {
    pub fn new(kind: Kind, instance: Option<&str>) -> Self {
        match instance {
            Some(i) => TaskId(format!("{}:{}", kind.name(), i)),
            None => TaskId(kind.name().to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind_name(&self) -> &str {
        self.0.split(':').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The steps of an image, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Debootstrap,
    Packages,
    Configure,
    Initramfs,
}

impl Step {
    pub const ALL: [Step; 4] = [
        Step::Debootstrap,
        Step::Packages,
        Step::Configure,
        Step::Initramfs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Debootstrap => "debootstrap",
            Step::Packages => "packages",
            Step::Configure => "configure",
            Step::Initramfs => "initramfs",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Step::Debootstrap => Kind::Debootstrap,
            Step::Packages => Kind::Packages,
            Step::Configure => Kind::Configure,
            Step::Initramfs => Kind::Initramfs,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Debootstrap,
    Packages,
    Configure,
    Initramfs,
    Publish,
    Bootloader,
    Pxe,
    PxeDefault,
    Exports,
    Dhcp,
    Rsyslog,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Debootstrap => "debootstrap",
            Kind::Packages => "packages",
            Kind::Configure => "configure",
            Kind::Initramfs => "initramfs",
            Kind::Publish => "publish",
            Kind::Bootloader => "bootloader",
            Kind::Pxe => "pxe",
            Kind::PxeDefault => "pxe-default",
            Kind::Exports => "exports",
            Kind::Dhcp => "dhcp",
            Kind::Rsyslog => "rsyslog",
        }
    }

    /// Bumped whenever the Rust side of a recipe changes what it produces,
    /// so that every task of that kind reruns once.
    pub fn recipe_version(self) -> u32 {
        1
    }

    /// Heavy tasks run subprocesses for seconds to minutes, on the bounded pool.
    pub fn heavy(self) -> bool {
        matches!(
            self,
            Kind::Debootstrap | Kind::Packages | Kind::Configure | Kind::Initramfs | Kind::Publish
        )
    }
}

/// What a task does when it runs.
#[derive(Clone, Debug)]
pub enum Action {
    ImageStep { image: String, step: Step },
    Publish { image: String },
    Bootloader,
    Pxe { node: usize },
    PxeDefault,
    Exports,
    Dhcp,
    Rsyslog,
}

/// A task in the graph, with everything its key needs but its dependencies'
/// output hashes, which are known only when they have finished.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    pub id: TaskId,
    pub kind: Kind,
    pub deps: Vec<usize>,
    pub inputs: Vec<Input>,
    pub action: Action,
    /// Script a step runs, if any, and its header flags.
    pub script: Option<Script>,
}

#[derive(Clone, Debug)]
pub struct Script {
    pub path: PathBuf,
    pub chroot: bool,
    pub needs_root: bool,
}

impl Script {
    /// Reads the `# ddc: chroot root` markers in the first lines of a script.
    pub fn from_text(path: PathBuf, text: &str) -> Self {
        let mut chroot = false;
        let mut needs_root = false;
        for line in text.lines().take(10) {
            if let Some(rest) = line.trim().strip_prefix("# ddc:") {
                for word in rest.split(|c: char| c.is_whitespace() || c == ',') {
                    match word {
                        "chroot" => chroot = true,
                        "root" => needs_root = true,
                        _ => {}
                    }
                }
            }
        }
        Script {
            path,
            chroot,
            needs_root: needs_root || chroot,
        }
    }
}

/// The result of a finished dependency, as its dependents see it.
#[derive(Clone, Debug)]
pub struct DepResult {
    pub id: TaskId,
    pub out_hash: Fingerprint,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_markers() {
        let s = Script::from_text("x".into(), "#!/bin/sh\n# ddc: chroot\nset -eu\n");
        assert!(s.chroot && s.needs_root);
        let s = Script::from_text("x".into(), "#!/bin/sh\n# ddc: root\n");
        assert!(!s.chroot && s.needs_root);
        let s = Script::from_text("x".into(), "#!/bin/sh\nmkdir -p x\n");
        assert!(!s.chroot && !s.needs_root);
    }

    #[test]
    fn ids() {
        assert_eq!(
            TaskId::new(Kind::Pxe, Some("node01")).as_str(),
            "pxe:node01"
        );
        assert_eq!(TaskId::new(Kind::Dhcp, None).as_str(), "dhcp");
        assert_eq!(TaskId("pxe:node01".into()).kind_name(), "pxe");
    }
}

/// What a running task gets: the config, the templates, its dependencies'
/// results, a log to write to, and the build's cancellation flag.
pub struct RunCtx<'a> {
    pub cfg: &'a crate::config::Config,
    pub templates: &'a crate::template::Templates,
    pub cache_dir: &'a std::path::Path,
    pub deps: &'a [DepResult],
    pub log: &'a mut std::fs::File,
    /// Where the log is kept (cheap tasks keep theirs only when they fail).
    pub log_path: std::path::PathBuf,
    pub cancel: &'a crate::process::Cancel,
}

/// What a task produced: files and trees to fingerprint, and data for its
/// dependents (the paths publish chose, say).
#[derive(Default, Debug)]
pub struct Produced {
    pub files: Vec<PathBuf>,
    pub dirs: Vec<PathBuf>,
    pub meta: serde_json::Value,
    /// The output is a layer over its dependencies' outputs: its hash must
    /// cover theirs too, or early cutoff would hide a change below it.
    pub layered: bool,
    /// Lines for the user, printed as warnings when the task finishes.
    pub warnings: Vec<String>,
}

impl RunCtx<'_> {
    pub fn dep(&self, kind: Kind) -> Option<&DepResult> {
        self.deps.iter().find(|d| d.id.kind_name() == kind.name())
    }
}

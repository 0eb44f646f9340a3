//! The task kinds. Each kind is one [`Recipe`], in a file of its own: which
//! tasks it adds to the graph and with which inputs, what it needs from the
//! host, the inputs it reads late, and the action that writes its outputs.
//! [`Kind::recipe`] is the one place a kind is registered.
//!
//! Recipes know the config, the templates and the published generations;
//! they know nothing of the engine that decides when they run, the cache
//! that records them, or the commands.

mod apply;
mod bootloader;
mod dhcp;
mod dpkg;
mod exports;
mod image;
mod ipxe;
mod plan;
mod publish;
mod pxe;
mod reproducible;
mod rsyslog;
mod step;
mod step_env;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::{Config, Image};
use crate::fingerprint::{Fingerprint, Input};
use crate::tasks_dir::TaskFile;

pub(crate) use dhcp::node_lines;
pub(crate) use plan::{intern, Planner};
pub(crate) use pxe::{boot_generation, node_entry};
pub(crate) use step::{staging_mode, Staging, Step};

/// A stable task id: `kind:instance` (`pxe:node01`) or just `kind` (`dhcp`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TaskId(pub(crate) String);

impl TaskId {
    pub(crate) fn new(kind: Kind, instance: Option<&str>) -> Self {
        match instance {
            Some(i) => TaskId(format!("{}:{}", kind.name(), i)),
            None => TaskId(kind.name().to_string()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every kind of task. Adding one: a variant here, its arm in
/// [`Kind::recipe`], and a file with its [`Recipe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
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
    Apply,
}

impl Kind {
    /// In the order their tasks are planned: an image's tasks, then the
    /// cluster's, each after the kinds it depends on.
    pub(crate) const ALL: [Kind; 12] = [
        Kind::Debootstrap,
        Kind::Packages,
        Kind::Configure,
        Kind::Initramfs,
        Kind::Publish,
        Kind::Bootloader,
        Kind::Pxe,
        Kind::PxeDefault,
        Kind::Exports,
        Kind::Dhcp,
        Kind::Rsyslog,
        Kind::Apply,
    ];

    /// The registry: the recipe of each kind.
    pub(crate) fn recipe(self) -> &'static dyn Recipe {
        match self {
            Kind::Debootstrap => &Step::Debootstrap,
            Kind::Packages => &Step::Packages,
            Kind::Configure => &Step::Configure,
            Kind::Initramfs => &Step::Initramfs,
            Kind::Publish => &publish::Publish,
            Kind::Bootloader => &bootloader::Bootloader,
            Kind::Pxe => &pxe::Pxe,
            Kind::PxeDefault => &pxe::PxeDefault,
            Kind::Exports => &exports::Exports,
            Kind::Dhcp => &dhcp::Dhcp,
            Kind::Rsyslog => &rsyslog::Rsyslog,
            Kind::Apply => &apply::Apply,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        self.recipe().name()
    }

    /// The kind of a task id (`pxe:node01` → Pxe), if it is one of today's.
    pub(crate) fn of_id(id: &str) -> Option<Kind> {
        let name = id.split(':').next().unwrap_or(id);
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Whether a recipe plans tasks once per image or once per cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Image,
    Cluster,
}

/// What a task is about: the config entry its action reads.
#[derive(Clone, Debug)]
pub(crate) enum Subject {
    Cluster,
    Image(String),
    /// An index into `Config::nodes`.
    Node(usize),
}

/// What a task needs from the master: root, or a program (looked up in
/// `PATH`, as its step will) or a file, with the Debian package that has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    Root,
    Program {
        program: String,
        package: &'static str,
    },
    File {
        path: PathBuf,
        package: &'static str,
    },
}

/// One kind of task.
pub(crate) trait Recipe: Sync {
    fn name(&self) -> &'static str;

    /// Bumped whenever the Rust side of the recipe changes what it produces,
    /// so that every task of the kind reruns once.
    fn version(&self) -> u32 {
        1
    }

    /// Heavy tasks run subprocesses for seconds to minutes, on the bounded
    /// pool, and keep a log; the others are cheap and numerous.
    fn heavy(&self) -> bool {
        false
    }

    /// One task per node: folded into one line by `ddc graph`. A per-node
    /// recipe plans from the config and the tasks folder alone (no host
    /// file, no tool): the whole-build cutoff (`engine/cutoff.rs`) does not
    /// plan it, and its late inputs depend only on the task's subject.
    fn per_node(&self) -> bool {
        false
    }

    fn scope(&self) -> Scope {
        Scope::Cluster
    }

    /// The templates it renders, relative to the tasks folder: key inputs.
    fn templates(&self) -> &'static [&'static str] {
        &[]
    }

    /// Adds the kind's tasks: for `image` when the scope is per image.
    fn plan(&self, p: &mut Planner, image: Option<&Image>) -> Result<()>;

    /// Inputs read only when the task is about to run, after its
    /// dependencies (the generation a boot entry points at, say). The
    /// whole-build cutoff computes them again to decide a no-op.
    fn late_inputs(&self, _task: &TaskSpec, _cfg: &Config, _memo: &LateMemo) -> Vec<Input> {
        Vec::new()
    }

    /// The paths the task writes, known before it runs: journaled first, so
    /// that a build killed halfway still knows what to clean up. Empty for
    /// kinds whose outputs live in the cache or are kept anyway.
    fn outputs(&self, _task: &TaskSpec, _cfg: &Config) -> Vec<PathBuf> {
        Vec::new()
    }

    /// What the host must have before the task can run.
    fn needs(&self, _task: &TaskSpec, _cfg: &Config) -> Vec<Need> {
        Vec::new()
    }

    /// A folder of the cache that holds the task's output (`ddc clean`
    /// removes it with the record).
    fn cache_dir(&self, _task: &TaskSpec, _cache: &Path) -> Option<PathBuf> {
        None
    }

    /// Its outputs stay when its task leaves the graph (published
    /// generations: running nodes may boot from them).
    fn keeps_outputs(&self) -> bool {
        false
    }

    fn run(&self, task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced>;
}

/// A task in the graph, with everything its key needs but its dependencies'
/// output hashes and its late inputs, known only when it is about to run.
#[derive(Clone, Debug)]
pub(crate) struct TaskSpec {
    pub(crate) id: TaskId,
    pub(crate) kind: Kind,
    pub(crate) deps: Vec<usize>,
    pub(crate) inputs: Vec<Input>,
    pub(crate) subject: Subject,
    /// The script a step runs, if any, and its header flags.
    pub(crate) script: Option<Script>,
}

impl TaskSpec {
    pub(crate) fn recipe(&self) -> &'static dyn Recipe {
        self.kind.recipe()
    }

    /// The image the task is about (image steps, publish).
    pub(crate) fn image(&self) -> Option<&str> {
        match &self.subject {
            Subject::Image(i) => Some(i),
            _ => None,
        }
    }
}

/// A step's script as it runs: the script itself first, then the files of
/// its folder (`initramfs/ddc-union`), with the bytes its key hashed.
#[derive(Clone, Debug)]
pub(crate) struct Script {
    pub(crate) files: Vec<TaskFile>,
    pub(crate) chroot: bool,
    pub(crate) needs_root: bool,
}

impl Script {
    /// Reads the `# ddc: chroot root` markers in the first lines of a script.
    pub(crate) fn from_text(files: Vec<TaskFile>, text: &str) -> Self {
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
            files,
            chroot,
            needs_root: needs_root || chroot,
        }
    }
}

/// The result of a finished dependency, as its dependents see it.
#[derive(Clone, Debug)]
pub(crate) struct DepResult {
    pub(crate) id: TaskId,
    pub(crate) out_hash: Fingerprint,
}

/// What a running task gets: the config, the templates, its dependencies'
/// results, a log to write to, and the build's cancellation flag.
pub(crate) struct RunCtx<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) templates: &'a crate::template::Templates,
    pub(crate) cache_dir: &'a Path,
    pub(crate) deps: &'a [DepResult],
    pub(crate) log: &'a mut std::fs::File,
    /// Where the log is kept (cheap tasks keep theirs only when they fail).
    pub(crate) log_path: PathBuf,
    pub(crate) cancel: &'a crate::process::Cancel,
}

impl RunCtx<'_> {
    pub(crate) fn dep(&self, kind: Kind) -> Option<&DepResult> {
        let prefix = kind.name();
        self.deps.iter().find(|d| {
            d.id.as_str()
                .strip_prefix(prefix)
                .is_some_and(|r| r.is_empty() || r.starts_with(':'))
        })
    }
}

/// What a task produced: files and trees to fingerprint.
#[derive(Default, Debug)]
pub(crate) struct Produced {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) dirs: Vec<PathBuf>,
    /// Facts about the outputs that their bytes do not show (publish: the
    /// kernel version it chose); part of the output hash.
    pub(crate) facts: serde_json::Value,
    /// The output is a layer over its dependencies' outputs: its hash must
    /// cover theirs too, or early cutoff would hide a change below it.
    pub(crate) layered: bool,
    /// Lines for the user, printed as warnings when the task finishes.
    pub(crate) warnings: Vec<String>,
    /// Trees of `dirs` the action has just scanned (publish's manifest):
    /// their hashes are reused rather than computed again.
    pub(crate) scanned: Vec<(PathBuf, crate::fingerprint::TreeStamp)>,
    /// Lines for the user, printed as notes when the task finishes.
    pub(crate) notes: Vec<String>,
    /// A daemon made to read its new config, and how: `dnsmasq (SIGHUP)`,
    /// listed in the build's summary line.
    pub(crate) applied: Option<String>,
}

/// What late inputs read once per build: each image's current generation
/// (the boot entries of 10,000 nodes ask for it).
pub(crate) struct LateMemo {
    current: Vec<std::sync::OnceLock<Fingerprint>>,
}

impl LateMemo {
    pub(crate) fn new(cfg: &Config) -> Self {
        LateMemo {
            current: cfg.images.keys().map(|_| Default::default()).collect(),
        }
    }

    /// The generation `image` boots (its pin, else `current`), as an input.
    fn generation(&self, cfg: &Config, image: &str, pin: Option<&str>) -> Input {
        // Hashed once per image: 10,000 entries boot the same generation.
        let compute = || {
            let g = boot_generation(cfg, image, pin).unwrap_or_else(|e| format!("unresolved: {e}"));
            Fingerprint::of(g.as_bytes())
        };
        let hash = match (pin, cfg.images.keys().position(|k| k == image)) {
            (None, Some(i)) => *self.current[i].get_or_init(compute),
            _ => compute(),
        };
        Input {
            name: Cow::Borrowed("generation"),
            hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_markers() {
        let s = Script::from_text(vec![], "#!/bin/sh\n# ddc: chroot\nset -eu\n");
        assert!(s.chroot && s.needs_root);
        let s = Script::from_text(vec![], "#!/bin/sh\n# ddc: root\n");
        assert!(!s.chroot && s.needs_root);
        let s = Script::from_text(vec![], "#!/bin/sh\nmkdir -p x\n");
        assert!(!s.chroot && !s.needs_root);
    }

    #[test]
    fn ids_and_kinds() {
        assert_eq!(
            TaskId::new(Kind::Pxe, Some("node01")).as_str(),
            "pxe:node01"
        );
        assert_eq!(TaskId::new(Kind::Dhcp, None).as_str(), "dhcp");
        assert_eq!(Kind::of_id("pxe:node01"), Some(Kind::Pxe));
        assert_eq!(Kind::of_id("pxe-default"), Some(Kind::PxeDefault));
        assert_eq!(Kind::of_id("gone:x"), None);
        for k in Kind::ALL {
            assert_eq!(Kind::of_id(k.name()), Some(k), "names are unique");
        }
    }
}

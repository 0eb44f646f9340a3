//! A task's key, and why a task is stale: the one place both are computed,
//! for a build, a dry run, `ddc graph` and the preflight.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use crate::cache::{self, CacheDirs, OutputRecord, Record};
use crate::fingerprint::{cache_key_of, hash_output, scan_tree, CacheKey, Input, StatStamp};
use crate::fsutil::shown;
use crate::graph::DEP_PREFIX;
use crate::recipes::{TaskId, TaskSpec};
use crate::tasks_dir::TasksDir;

use super::readable::{denied, Unreadable};

/// The key of `spec` with its late inputs and dependencies' output hashes.
pub(crate) fn key_of(spec: &TaskSpec, more: &[Input]) -> CacheKey {
    let r = spec.recipe();
    cache_key_of(r.name(), r.version(), spec.inputs.iter().chain(more))
}

/// Why a task must run. Its wording is what `-n`, `--json` and `graph` show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StaleReason {
    /// No record: never built, or forgotten by `ddc clean`.
    NeverBuilt,
    NewInput(String),
    InputChanged(String),
    /// A file of the tasks folder changed (shown relative to the Ddcfile).
    FileChanged(String),
    InputRemoved(String),
    DependencyRebuilt(String),
    /// The recipe's own version changed.
    RecipeChanged(&'static str),
    OutputMissing(String),
    OutputChanged(String),
    /// A dry run: a dependency would run first, so the key is not known.
    DependencyWouldRun(TaskId),
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleReason::NeverBuilt => f.write_str("not built yet, or cleaned"),
            StaleReason::NewInput(n) => write!(f, "new input: {n}"),
            StaleReason::InputChanged(n) => write!(f, "input changed: {n}"),
            StaleReason::FileChanged(p) => write!(f, "file changed: {p}"),
            StaleReason::InputRemoved(n) => write!(f, "input removed: {n}"),
            StaleReason::DependencyRebuilt(d) => write!(f, "dependency rebuilt: {d}"),
            StaleReason::RecipeChanged(k) => write!(f, "recipe changed: {k}"),
            StaleReason::OutputMissing(p) => write!(f, "output missing: {p}"),
            StaleReason::OutputChanged(p) => write!(f, "output changed: {p}"),
            StaleReason::DependencyWouldRun(d) => write!(f, "dependency would run: {d}"),
        }
    }
}

/// Compares a task with its record.
pub(crate) struct Judge<'a> {
    pub(crate) dirs: &'a CacheDirs,
    /// Paths are shown relative to the Ddcfile's folder.
    pub(crate) base_dir: &'a Path,
    /// The tasks folder's files: a changed one is named as the user knows it.
    pub(crate) files: &'a TasksDir,
    /// In a dry run: where outputs this user cannot read are noted (and
    /// taken as recorded); None in a build, where they count as changed.
    pub(crate) unreadable: Option<&'a Unreadable>,
    /// Re-hash trees even when their root's stat stamp is as recorded.
    pub(crate) deep: bool,
    /// The outputs' folders, opened once for the build.
    pub(crate) stats: &'a crate::fsutil::Stats,
    /// Only what is quick to check (the scheduler's own thread): an output
    /// whose stamp moved is taken as changed instead of hashed, and the
    /// task is decided again, in full, on a thread of its own.
    pub(crate) quick: bool,
}

impl Judge<'_> {
    /// Why the task must run, or None if its record still holds.
    pub(crate) fn staleness(
        &self,
        spec: &TaskSpec,
        old: Option<&Record>,
        key: CacheKey,
        more: &[Input],
    ) -> Option<StaleReason> {
        let Some(old) = old else {
            return Some(StaleReason::NeverBuilt);
        };
        if old.key != key {
            return Some(self.changed_input(spec, old, more));
        }
        old.outputs
            .iter()
            .enumerate()
            .find_map(|(n, o)| self.output_changed(spec, n, o))
    }

    /// Which input made the key differ from the record's.
    fn changed_input(&self, spec: &TaskSpec, old: &Record, more: &[Input]) -> StaleReason {
        let before: HashMap<&str, u64> = old.inputs().collect();
        for i in spec.inputs.iter().chain(more) {
            match before.get(i.name.as_ref()) {
                None => return StaleReason::NewInput(i.name.to_string()),
                Some(h) if *h != i.hash.prefix64() => return self.input_reason(&i.name),
                _ => {}
            }
        }
        let now: HashSet<&str> = spec
            .inputs
            .iter()
            .chain(more)
            .map(|i| i.name.as_ref())
            .collect();
        match old.inputs().find(|(n, _)| !now.contains(n)) {
            Some((gone, _)) => StaleReason::InputRemoved(gone.to_string()),
            None => StaleReason::RecipeChanged(spec.recipe().name()),
        }
    }

    fn input_reason(&self, name: &str) -> StaleReason {
        if let Some(dep) = name.strip_prefix(DEP_PREFIX) {
            StaleReason::DependencyRebuilt(dep.to_string())
        } else if let Some(f) = name.strip_prefix("file:") {
            StaleReason::FileChanged(self.files.shown(f, self.base_dir))
        } else {
            StaleReason::InputChanged(name.to_string())
        }
    }

    fn rel(&self, p: &Path) -> String {
        shown(p, self.base_dir)
    }

    fn output_changed(&self, spec: &TaskSpec, n: usize, o: &OutputRecord) -> Option<StaleReason> {
        let missing = || Some(StaleReason::OutputMissing(self.rel(&o.path)));
        let changed = || Some(StaleReason::OutputChanged(self.rel(&o.path)));
        let meta = match self.stats.of(&o.path) {
            Ok(m) => m,
            Err(e) if self.skip(e.kind() == std::io::ErrorKind::PermissionDenied, &o.path) => {
                return None
            }
            Err(_) => return missing(),
        };
        if o.dir {
            if !meta.is_dir {
                return missing();
            }
            // Trees are ddc's own, written once (image layers, generations):
            // their root's stamp stands for them; `--verify` looks inside.
            if !self.deep && o.stamp != StatStamp::default() && meta.stamp == o.stamp {
                return None;
            }
            if self.quick {
                return changed();
            }
            let prev = cache::load_tree(&self.dirs.tree(spec.id.as_str(), n));
            match scan_tree(&o.path, prev.as_ref()) {
                Ok((t, _)) if t.fingerprint() == o.hash => None,
                Err(e) if self.skip(denied(&e), &o.path) => None,
                _ => changed(),
            }
        } else if meta.stamp == o.stamp {
            None
        } else if self.quick {
            changed()
        } else {
            match hash_output(&o.path) {
                Ok(h) if h == o.hash => None,
                Err(e) if self.skip(denied(&e), &o.path) => None,
                _ => changed(),
            }
        }
    }

    /// Whether an output that failed to read is skipped: a dry run that
    /// lacks the permission to read it takes it as recorded.
    fn skip(&self, denied: bool, path: &Path) -> bool {
        self.unreadable
            .is_some_and(|u| u.skip(denied, self.rel(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        let cases = [
            (StaleReason::NeverBuilt, "not built yet, or cleaned"),
            (
                StaleReason::InputChanged("images.default.packages".into()),
                "input changed: images.default.packages",
            ),
            (
                StaleReason::DependencyRebuilt("configure:default".into()),
                "dependency rebuilt: configure:default",
            ),
            (
                StaleReason::OutputMissing("out/tftp/pxelinux.cfg/01-x".into()),
                "output missing: out/tftp/pxelinux.cfg/01-x",
            ),
            (
                StaleReason::DependencyWouldRun(TaskId("publish:default".into())),
                "dependency would run: publish:default",
            ),
        ];
        for (r, text) in cases {
            assert_eq!(r.to_string(), text);
        }
    }
}

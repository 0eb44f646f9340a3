//! After the tasks: the outputs no task produces any more are removed, and
//! the records folded in. Those are the outputs of tasks that left the graph,
//! and the outputs a rerun task replaced (the entry of a node whose MAC
//! changed), which its new record names: journaled with it, so a build
//! killed before this point still removes them the next time.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cache::{CacheDirs, Journal, Record, State};
use crate::config::Config;
use crate::fsutil::{remove_path, shown};
use crate::graph::Graph;
use crate::recipes::{Kind, Scope};

/// What the sweep found to do.
pub(crate) struct Sweep {
    /// (task that left it, path), sorted.
    removals: Vec<(String, PathBuf)>,
    /// Tasks whose replaced outputs are all in `removals` or claimed again.
    swept: Vec<String>,
    /// Tasks that left the graph: their records go.
    forget: Vec<String>,
    /// Outputs of tasks that left the graph that stay (published generations).
    kept: Vec<PathBuf>,
    /// Images no longer in the Ddcfile whose records and outputs stay.
    retired: BTreeSet<String>,
}

/// The image a task of an image is about (`packages:gpu` is gpu's).
fn image_of(task: &str) -> Option<&str> {
    let kind = Kind::of_id(task)?;
    if kind.recipe().scope() != Scope::Image {
        return None;
    }
    task.split_once(':').map(|(_, i)| i)
}

/// Whether the record of a task that left the graph stays: a task of an
/// image no longer in the Ddcfile (a retired image) keeps its record and
/// its outputs (cache layers, generations) while one of them is there, so
/// that adding the image back reuses them. `ddc gc` deletes them.
fn retained(cfg: &Config, rec: &Record) -> bool {
    image_of(&rec.task).is_some_and(|i| !cfg.images.contains_key(i))
        && rec
            .outputs
            .iter()
            .any(|o| o.path.symlink_metadata().is_ok())
}

/// The records of retired images that stay (see [`retained`]), looked at
/// only when some record is not in the graph (`in_graph` of them are):
/// never on a build of the usual kind.
fn retained_records<'s>(cfg: &Config, state: &'s State, in_graph: usize) -> HashSet<&'s str> {
    if in_graph == state.records.len() {
        return HashSet::new();
    }
    state
        .records
        .values()
        .filter(|r| retained(cfg, r))
        .map(|r| r.task.as_str())
        .collect()
}

impl Sweep {
    /// Compares the recorded outputs with the graph and this build's records.
    /// What a task of the graph declares it writes is never removed, recorded
    /// or not: a file whose owner moved to a task that failed this time (the
    /// dnsmasq config, from `dhcp` to `apply:dnsmasq`) stays in place.
    pub(crate) fn plan(
        cfg: &Config,
        graph: &Graph,
        state: &State,
        new_records: &[Record],
    ) -> Sweep {
        let mut sweep = Sweep {
            removals: Vec::new(),
            swept: Vec::new(),
            forget: Vec::new(),
            kept: Vec::new(),
            retired: BTreeSet::new(),
        };
        // The common case, a no-op or a few tasks rerun to the same paths:
        // nothing replaced, no orphan, no record of a task that left the
        // graph. Then there is nothing to compare (10,000 paths to hash).
        let in_graph = graph
            .tasks
            .iter()
            .filter(|t| state.records.contains_key(t.id.as_str()))
            .count();
        let kept_retired = retained_records(cfg, state, in_graph);
        sweep.retired = kept_retired
            .iter()
            .filter_map(|t| image_of(t))
            .map(String::from)
            .collect();
        let quiet = state.orphans.is_empty()
            && in_graph + kept_retired.len() == state.records.len()
            && state.records.values().all(|r| r.replaced.is_empty())
            && new_records.iter().all(|r| r.replaced.is_empty());
        if quiet {
            return sweep;
        }
        let new: HashMap<&str, &Record> =
            new_records.iter().map(|r| (r.task.as_str(), r)).collect();
        let current: Vec<&Record> = graph
            .tasks
            .iter()
            .filter_map(|t| {
                let id = t.id.as_str();
                new.get(id).copied().or_else(|| state.records.get(id))
            })
            .collect();
        // Only the paths that may be removed are looked up: a set of every
        // output (10,000 paths hashed) for one replaced entry cost more
        // than the rest of a one-node change.
        let vanished = in_graph + kept_retired.len() != state.records.len();
        let ids: HashSet<&str> = if vanished {
            graph.tasks.iter().map(|t| t.id.as_str()).collect()
        } else {
            HashSet::new()
        };
        let gone_records = || {
            state.records.iter().filter(|(t, _)| {
                vanished && !ids.contains(t.as_str()) && !kept_retired.contains(t.as_str())
            })
        };
        let mut candidates: HashSet<&PathBuf> = current.iter().flat_map(|r| &r.replaced).collect();
        candidates.extend(state.orphans.iter().map(|(_, p)| p));
        for (_, rec) in gone_records() {
            candidates.extend(rec.outputs.iter().map(|o| &o.path).chain(&rec.replaced));
        }
        let claimed: HashSet<&PathBuf> = current
            .iter()
            .flat_map(|r| r.outputs.iter().map(|o| &o.path))
            .filter(|p| candidates.contains(p))
            .collect();
        for r in current.iter().filter(|r| !r.replaced.is_empty()) {
            for p in r.replaced.iter().filter(|p| !claimed.contains(p)) {
                sweep.removals.push((r.task.clone(), p.clone()));
            }
            sweep.swept.push(r.task.clone());
        }
        for (task, p) in &state.orphans {
            if !claimed.contains(p) {
                sweep.removals.push((task.clone(), p.clone()));
            }
            sweep.swept.push(task.clone());
        }
        sweep.swept.sort();
        sweep.swept.dedup();
        for (task, rec) in gone_records() {
            let keeps = Kind::of_id(task).is_some_and(|k| k.recipe().keeps_outputs());
            let gone = rec.outputs.iter().map(|o| (&o.path, o.dir));
            let gone = gone.chain(rec.replaced.iter().map(|p| (p, false)));
            for (p, dir) in gone.filter(|(p, _)| !claimed.contains(p)) {
                if !keeps {
                    sweep.removals.push((task.clone(), p.clone()));
                } else if dir && p.symlink_metadata().is_ok() {
                    sweep.kept.push(p.clone());
                }
            }
            sweep.forget.push(task.clone());
        }
        sweep.keep_declared(cfg, graph);
        sweep
    }

    /// Drops from the removals what a task of the graph declares it writes.
    fn keep_declared(&mut self, cfg: &Config, graph: &Graph) {
        if !self.removals.is_empty() {
            use rayon::prelude::*;
            let removed: HashSet<&PathBuf> = self.removals.iter().map(|(_, p)| p).collect();
            let declared: HashSet<PathBuf> = graph
                .tasks
                .par_iter()
                .flat_map_iter(|t| t.recipe().outputs(t, cfg))
                .filter(|p| removed.contains(p))
                .collect();
            self.removals.retain(|(_, p)| !declared.contains(p));
        }
        self.removals.sort();
        self.removals.dedup();
    }

    /// What a dry run says it would remove.
    pub(crate) fn preview(&self, base: &Path) -> Vec<String> {
        self.removals
            .iter()
            .map(|(task, p)| format!("would remove {} (left by {task})", shown(p, base)))
            .chain(self.retired.iter().map(|i| {
                format!(
                    "image {i} is retired: its cache layers and generations stay until `ddc gc`"
                )
            }))
            .collect()
    }

    /// Adds the new records, removes the outputs, and drops the vanished
    /// tasks' records; returns what to tell the user. Each step is
    /// journaled, and each is harmless to repeat after a crash.
    pub(crate) fn apply(
        self,
        base: &Path,
        dirs: &CacheDirs,
        state: &mut State,
        journal: Option<&Journal>,
        new_records: Vec<Record>,
    ) -> Result<Vec<String>> {
        for r in new_records {
            state.records.insert(r.task.clone(), r);
        }
        let mut notes = Vec::new();
        let mut failed: HashSet<&str> = HashSet::new();
        let forgotten: HashSet<&str> = self.forget.iter().map(String::as_str).collect();
        for (task, p) in &self.removals {
            match remove_path(p) {
                Ok(true) if forgotten.contains(task.as_str()) => notes.push(format!(
                    "removed {} ({task} is no longer in the Ddcfile)",
                    shown(p, base)
                )),
                Ok(_) => {}
                Err(e) => {
                    failed.insert(task);
                    notes.push(format!("could not remove {}: {e:#}", p.display()));
                }
            }
        }
        for t in self.swept.iter().filter(|t| !failed.contains(t.as_str())) {
            if let Some(j) = journal {
                j.swept(t);
            }
            if let Some(r) = state.records.get_mut(t) {
                r.replaced.clear();
            }
        }
        state.orphans.retain(|(t, _)| failed.contains(t.as_str()));
        for image in &self.retired {
            notes.push(format!(
                "image {image} is retired (no longer in the Ddcfile): its cache layers and generations stay until `ddc gc`; adding it back reuses them"
            ));
        }
        for p in &self.kept {
            notes.push(format!(
                "kept {}: its image left the Ddcfile, but nodes may still run on it; delete it when none does",
                p.display()
            ));
        }
        for t in self.forget.iter().filter(|t| !failed.contains(t.as_str())) {
            if let Some(j) = journal {
                j.forget(t);
            }
            if let Some(old) = state.records.remove(t) {
                // Trees are kept for folder outputs only, by their place.
                for (n, _) in old.outputs.iter().enumerate().filter(|(_, o)| o.dir) {
                    let _ = remove_path(&dirs.tree(t, n));
                }
            }
        }
        Ok(notes)
    }

    /// How many journal lines the sweep adds.
    pub(crate) fn lines(&self) -> usize {
        self.forget.len() + self.swept.len()
    }
}

/// The `.ddc-tmp-*` files that atomic writes of a killed process left in the
/// cache's own folders (small: looked at on every build) and, after a killed
/// build (`outputs`), beside the recorded outputs; removes them.
pub(crate) fn temp_files(state: &State, dirs: &CacheDirs, outputs: bool) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = state
        .records
        .values()
        .filter(|_| outputs)
        .flat_map(|r| &r.outputs)
        .filter_map(|o| o.path.parent().map(Path::to_path_buf))
        .collect();
    folders.extend([dirs.root.clone(), dirs.state(), dirs.root.join("trees")]);
    folders.sort();
    folders.dedup();
    // A folder reached through a link is skipped: nothing is deleted there.
    folders
        .iter()
        .flat_map(|d| crate::fsutil::remove_stale_temps(d))
        .collect()
}

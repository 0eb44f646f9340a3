//! After the tasks: the outputs no task produces any more (those of tasks
//! that left the graph, and the old outputs of rerun tasks, like the entry
//! of a node whose MAC changed) are removed, and the records folded in.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Result;

use crate::cache::{CacheDirs, Journal, Record, State};
use crate::fsutil::{remove_path, shown};
use crate::graph::Graph;
use crate::recipes::Kind;

/// What the sweep found to do.
pub(crate) struct Sweep {
    /// (task that left it, path), sorted.
    removals: Vec<(String, PathBuf)>,
    /// Tasks that left the graph: their records go.
    forget: Vec<String>,
    /// Outputs of tasks that left the graph that stay (published generations).
    kept: Vec<PathBuf>,
}

impl Sweep {
    /// Compares the recorded outputs with the graph and this build's records.
    pub(crate) fn plan(graph: &Graph, state: &State, new_records: &[Record]) -> Sweep {
        let current: HashSet<&str> = graph.tasks.iter().map(|t| t.id.as_str()).collect();
        let rerun: HashMap<&str, &Record> =
            new_records.iter().map(|r| (r.task.as_str(), r)).collect();
        let mut claimed: HashSet<&PathBuf> = HashSet::new();
        for t in &graph.tasks {
            let rec = rerun
                .get(t.id.as_str())
                .copied()
                .or_else(|| state.records.get(t.id.as_str()));
            if let Some(r) = rec {
                claimed.extend(r.outputs.iter().map(|o| &o.path));
            }
        }
        let mut sweep = Sweep {
            removals: Vec::new(),
            forget: Vec::new(),
            kept: Vec::new(),
        };
        for (task, rec) in &state.records {
            let vanished = !current.contains(task.as_str());
            if !vanished && !rerun.contains_key(task.as_str()) {
                continue;
            }
            let keeps = Kind::of_id(task).is_some_and(|k| k.recipe().keeps_outputs());
            for o in rec.outputs.iter().filter(|o| !claimed.contains(&o.path)) {
                if !keeps {
                    sweep.removals.push((task.clone(), o.path.clone()));
                } else if vanished && o.dir {
                    sweep.kept.push(o.path.clone());
                }
            }
            if vanished {
                sweep.forget.push(task.clone());
            }
        }
        sweep.removals.sort();
        sweep
    }

    /// What a dry run says it would remove.
    pub(crate) fn preview(&self, base: &std::path::Path) -> Vec<String> {
        self.removals
            .iter()
            .map(|(task, p)| format!("would remove {} (left by {task})", shown(p, base)))
            .collect()
    }

    /// Removes the outputs, drops the vanished tasks' records and adds the
    /// new ones; returns what to tell the user.
    pub(crate) fn apply(
        self,
        base: &std::path::Path,
        dirs: &CacheDirs,
        state: &mut State,
        journal: Option<&Journal>,
        new_records: Vec<Record>,
    ) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for (task, p) in &self.removals {
            match remove_path(p) {
                Ok(true) if self.forget.contains(task) => notes.push(format!(
                    "removed {} ({task} is no longer in the Ddcfile)",
                    shown(p, base)
                )),
                Ok(_) => {}
                Err(e) => notes.push(format!("could not remove {}: {e:#}", p.display())),
            }
        }
        for p in &self.kept {
            notes.push(format!(
                "kept {}: its image left the Ddcfile, but nodes may still run on it; delete it when none does",
                p.display()
            ));
        }
        for t in &self.forget {
            if let Some(j) = journal {
                j.forget(t);
            }
            if let Some(old) = state.records.remove(t) {
                for n in 0..old.outputs.len() {
                    let _ = std::fs::remove_file(dirs.tree(t, n));
                }
            }
        }
        for r in new_records {
            state.records.insert(r.task.clone(), r);
        }
        Ok(notes)
    }

    /// How many journal lines the sweep adds (records forgotten).
    pub(crate) fn forgotten(&self) -> usize {
        self.forget.len()
    }
}

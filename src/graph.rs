//! Assembles the recipes' tasks into the build's DAG: per image `debootstrap
//! → packages → configure → initramfs → publish`, then the cluster's tasks
//! (`bootloader`, one `pxe:NODE` per node, `exports`, `dhcp`, ...), and
//! selects tasks by id or kind.
//!
//! It knows the recipes' registry, not what any recipe does; it must not
//! import the engine or the commands.

use std::borrow::Cow;
use std::collections::HashMap;

use anyhow::{bail, Result};

use crate::config::Config;
use crate::error::NotStarted;
use crate::recipes::{intern, Kind, Planner, Scope, TaskId, TaskSpec};

/// A dependency's output hash is a key input named `dep:ID`.
pub(crate) const DEP_PREFIX: &str = "dep:";

/// The task graph: specs in a topological order (a task's dependencies come
/// before it).
pub(crate) struct Graph {
    pub(crate) tasks: Vec<TaskSpec>,
    /// The key input name of each task as a dependency (`dep:packages:default`).
    pub(crate) dep_name: Vec<Cow<'static, str>>,
    pub(crate) index: HashMap<TaskId, usize>,
}

/// Builds the graph for a config.
pub(crate) fn build(cfg: &Config) -> Result<Graph> {
    let mut p = Planner::new(cfg);
    for img in cfg.images.values() {
        for kind in Kind::ALL {
            if kind.recipe().scope() == Scope::Image {
                kind.recipe().plan(&mut p, Some(img))?;
            }
        }
    }
    for kind in Kind::ALL {
        if kind.recipe().scope() == Scope::Cluster {
            kind.recipe().plan(&mut p, None)?;
        }
    }
    let tasks = p.tasks;
    // Recipes name only tasks planned before them: the order is topological.
    for (i, t) in tasks.iter().enumerate() {
        if t.deps.iter().any(|&d| d >= i) {
            bail!(
                "internal error: {} depends on a task planned after it",
                t.id
            );
        }
    }
    let index = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.clone(), i))
        .collect();
    let mut is_dep = vec![false; tasks.len()];
    for t in &tasks {
        for &d in &t.deps {
            is_dep[d] = true;
        }
    }
    let dep_name = tasks
        .iter()
        .zip(is_dep)
        .map(|(t, dep)| {
            if dep {
                intern(format!("{DEP_PREFIX}{}", t.id))
            } else {
                Cow::Borrowed("")
            }
        })
        .collect();
    Ok(Graph {
        tasks,
        dep_name,
        index,
    })
}

impl Graph {
    /// The tasks named by ids (`pxe:node01`) or kinds (`pxe`): what
    /// `ddc build`, `clean` and `rollback` accept.
    pub(crate) fn select(&self, names: &[String]) -> Result<Vec<usize>, NotStarted> {
        let mut out = Vec::new();
        for t in names {
            match self.index.get(&TaskId(t.clone())) {
                Some(&i) => out.push(i),
                None => {
                    let before = out.len();
                    out.extend((0..self.tasks.len()).filter(|&i| self.tasks[i].kind.name() == t));
                    if out.len() == before {
                        return Err(NotStarted(format!(
                            "no task {t:?} in this build; `ddc graph` lists the tasks (ids look like packages:default or pxe:node01)"
                        )));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The named tasks and everything they need, as a mask over `tasks`.
    pub(crate) fn closure(&self, targets: &[String]) -> Result<Vec<bool>, NotStarted> {
        let mut want = vec![targets.is_empty(); self.tasks.len()];
        let mut stack = self.select(targets)?;
        while let Some(i) = stack.pop() {
            if !want[i] {
                want[i] = true;
                stack.extend(self.tasks[i].deps.iter().copied());
            }
        }
        Ok(want)
    }

    /// The tasks that depend, directly or not, on any of `roots` (included).
    pub(crate) fn dependents(&self, roots: &[usize]) -> Vec<bool> {
        let mut mark = vec![false; self.tasks.len()];
        let mut rdeps: Vec<Vec<usize>> = vec![Vec::new(); self.tasks.len()];
        for (i, t) in self.tasks.iter().enumerate() {
            for &d in &t.deps {
                rdeps[d].push(i);
            }
        }
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(i) = stack.pop() {
            if !mark[i] {
                mark[i] = true;
                stack.extend(rdeps[i].iter().copied());
            }
        }
        mark
    }
}

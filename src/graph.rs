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
use crate::fingerprint::{Fingerprint, Input};
use crate::recipes::{intern, Kind, LateMemo, Planner, Scope, Staging, Subject, TaskId, TaskSpec};
use crate::tasks_dir::TasksDir;

/// A dependency's output hash is a key input named `dep:ID`.
pub(crate) const DEP_PREFIX: &str = "dep:";

/// The task graph: specs in a topological order (a task's dependencies come
/// before it).
pub(crate) struct Graph {
    pub(crate) tasks: Vec<TaskSpec>,
    /// The key input name of each task as a dependency (`dep:packages:default`).
    pub(crate) dep_name: Vec<Cow<'static, str>>,
    pub(crate) index: HashMap<TaskId, usize>,
    /// The tasks folder's files, as the keys hashed them (templates render from it).
    pub(crate) files: TasksDir,
    /// (task, task it runs after): an order, not a dependency (nothing of
    /// the second is in the first's key). A child image's publish runs after
    /// its base's, to hard-link against the base's new generation.
    pub(crate) after: Vec<(usize, usize)>,
}

/// Builds the graph for a config; image steps stage their trees as
/// `staging` says (part of their keys).
pub(crate) fn build(cfg: &Config, staging: Staging) -> Result<Graph> {
    let Planner { tasks, files, .. } = plan(cfg, staging, true)?;
    // Recipes name only tasks planned before them: the order is topological.
    for (i, t) in tasks.iter().enumerate() {
        if t.deps.iter().any(|&d| d >= i) {
            bail!(
                "internal error: {} depends on a task planned after it",
                t.id
            );
        }
    }
    let index: HashMap<TaskId, usize> = tasks
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
    let publish = |i: &str| index.get(&TaskId::new(Kind::Publish, Some(i))).copied();
    let after = cfg
        .images
        .values()
        .filter_map(|i| Some((publish(&i.name)?, publish(i.from.as_deref()?)?)))
        .collect();
    Ok(Graph {
        tasks,
        dep_name,
        index,
        files,
        after,
    })
}

/// Plans the tasks of every recipe, or of all but the per-node ones.
fn plan(cfg: &Config, staging: Staging, per_node: bool) -> Result<Planner<'_>> {
    let mut p = Planner::new(cfg, staging)?;
    // A base's tasks before those of the images that start from it.
    for img in cfg.images_in_build_order() {
        for kind in Kind::ALL {
            if kind.recipe().scope() == Scope::Image {
                kind.recipe().plan(&mut p, Some(img))?;
            }
        }
    }
    for kind in Kind::ALL {
        if kind.recipe().scope() == Scope::Cluster && (per_node || !kind.recipe().per_node()) {
            kind.recipe().plan(&mut p, None)?;
        }
    }
    Ok(p)
}

/// A digest of the tasks of a plan but the per-node ones: each one's id,
/// recipe version, key inputs and dependencies (by id). What the
/// whole-build cutoff compares: the cluster's tasks read the host (tool
/// versions, a files tree, the master's configs) while they are planned;
/// the per-node tasks are planned from the config and the tasks folder
/// alone, which the cutoff checks by themselves.
pub(crate) fn plan_digest(tasks: &[TaskSpec]) -> Fingerprint {
    let mut h = blake3::Hasher::new();
    for t in tasks.iter().filter(|t| !t.recipe().per_node()) {
        h.update(t.id.as_str().as_bytes());
        h.update(&t.recipe().version().to_le_bytes());
        for i in &t.inputs {
            h.update(b"\0");
            h.update(i.name.as_bytes());
            h.update(b"\0");
            h.update(&i.hash.0);
        }
        for &d in &t.deps {
            h.update(b"\0dep\0");
            h.update(tasks[d].id.as_str().as_bytes());
        }
        h.update(b"\n");
    }
    Fingerprint(*h.finalize().as_bytes())
}

/// The cluster's tasks planned as [`build`] plans them, without the
/// per-node ones: their [`plan_digest`], and the digest of every task's
/// late inputs (the per-node tasks' too, from their subjects alone).
pub(crate) fn cluster_digests(
    cfg: &Config,
    staging: Staging,
) -> Result<(Fingerprint, Fingerprint)> {
    let p = plan(cfg, staging, false)?;
    let memo = LateMemo::new(cfg);
    let mut late = LateDigest::default();
    for t in &p.tasks {
        late.task(t, &t.recipe().late_inputs(t, cfg, &memo));
    }
    for kind in Kind::ALL.into_iter().filter(|k| k.recipe().per_node()) {
        let mut spec = TaskSpec {
            id: TaskId(String::new()),
            kind,
            deps: Vec::new(),
            inputs: Vec::new(),
            subject: Subject::Cluster,
            script: None,
        };
        for n in 0..cfg.nodes.len() {
            spec.subject = Subject::Node(n);
            late.task(&spec, &kind.recipe().late_inputs(&spec, cfg, &memo));
        }
    }
    Ok((plan_digest(&p.tasks), late.finish()))
}

/// The late inputs of every task of a build, in one hash: the cluster's
/// tasks by id, in plan order, then each per-node kind's by node, in node
/// order (add them in those orders).
#[derive(Default)]
pub(crate) struct LateDigest(Vec<u8>);

impl LateDigest {
    pub(crate) fn task(&mut self, t: &TaskSpec, inputs: &[Input]) {
        let h = &mut self.0;
        match (t.recipe().per_node(), &t.subject) {
            (true, Subject::Node(n)) => {
                h.extend(t.kind.name().as_bytes());
                h.extend((*n as u64).to_le_bytes());
            }
            _ => h.extend(t.id.as_str().as_bytes()),
        }
        for i in inputs {
            h.push(0);
            h.extend(i.name.as_bytes());
            h.push(0);
            h.extend(i.hash.0);
        }
        h.push(b'\n');
    }

    /// Hashed at once: 10,000 small updates cost more than one long one.
    pub(crate) fn finish(self) -> Fingerprint {
        Fingerprint::of(&self.0)
    }
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
                        let names = self
                            .tasks
                            .iter()
                            .flat_map(|s| [s.id.as_str(), s.kind.name()]);
                        return Err(NotStarted(format!(
                            "no task {t:?} in this build{} (`ddc graph` lists the tasks; ids look like packages:default or pxe:node01)",
                            crate::config::did_you_mean(t, names)
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

    /// What the scheduler waits for before each task: its dependencies, and
    /// the wanted tasks it runs after (see `after`).
    pub(crate) fn schedule_deps(&self, wanted: &[bool]) -> Vec<Vec<usize>> {
        let mut deps: Vec<Vec<usize>> = self.tasks.iter().map(|t| t.deps.clone()).collect();
        for &(t, first) in self.after.iter().filter(|(_, f)| wanted[*f]) {
            deps[t].push(first);
        }
        deps
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn graph(tasks_dir: Option<&Path>) -> Graph {
        let line = tasks_dir
            .map(|d| format!("tasks_dir = {:?}\n", d.display().to_string()))
            .unwrap_or_default();
        let text = format!(
            "{line}[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster = \"192.0.2.1\"\n\n[images.default]\nsuite = \"bookworm\"\npackages = [\"linux-image-amd64\"]\n\n[[nodes]]\nhostname = \"n1\"\nmac = \"52:54:00:00:00:01\"\nip = \"192.0.2.11\"\n"
        );
        let cfg = crate::config::parse(&text, "Ddcfile.toml", Path::new("/nonexistent"), &|| {
            "http://mirror.invalid/debian".to_string()
        })
        .expect("valid");
        build(&cfg, Staging::Copy).expect("a graph")
    }

    /// The tasks whose key inputs differ between two graphs.
    fn differ(a: &Graph, b: &Graph) -> Vec<String> {
        let inputs = |t: &TaskSpec| -> Vec<(String, [u8; 32])> {
            t.inputs
                .iter()
                .map(|i| (i.name.to_string(), i.hash.0))
                .collect()
        };
        a.tasks
            .iter()
            .zip(&b.tasks)
            .filter(|(x, y)| inputs(x) != inputs(y))
            .map(|(x, _)| x.id.to_string())
            .collect()
    }

    /// Keys hash the bytes used: the built-in files and the same files
    /// ejected into tasks_dir are the same inputs; one file edited there
    /// changes exactly the task that uses it.
    #[test]
    fn keys_hash_the_bytes_used_wherever_they_come_from() {
        let d = tempfile::tempdir().unwrap();
        crate::tasks_dir::eject(d.path()).unwrap();
        let built_in = graph(None);
        assert_eq!(
            differ(&built_in, &graph(Some(d.path()))),
            Vec::<String>::new()
        );
        std::fs::write(d.path().join("configure.sh"), "#!/bin/sh\n").unwrap();
        assert_eq!(
            differ(&built_in, &graph(Some(d.path()))),
            ["configure:default"]
        );
        std::fs::write(d.path().join("templates/pxelinux.cfg.j2"), "x").unwrap();
        assert_eq!(
            differ(&built_in, &graph(Some(d.path()))),
            ["configure:default", "pxe:n1"]
        );
    }
}

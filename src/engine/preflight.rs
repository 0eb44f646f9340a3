//! Before anything runs: the host programs and the privileges that the tasks
//! about to run need, all named at once with the Debian package to install.

use std::collections::HashSet;
use std::path::PathBuf;

use super::key::key_of;
use crate::cache::State;
use crate::config::Config;
use crate::fingerprint::Input;
use crate::graph::Graph;
use crate::recipes::{LateMemo, Need};

/// The problems that keep the wanted, stale tasks from running.
pub(crate) fn preflight(
    cfg: &Config,
    graph: &Graph,
    state: &State,
    wanted: &[bool],
) -> Vec<String> {
    let late = LateMemo::new(cfg);
    let mut need_root = Vec::new();
    let mut programs: Vec<(String, &'static str, String)> = Vec::new();
    for (i, spec) in graph.tasks.iter().enumerate() {
        if !wanted[i] {
            continue;
        }
        let needs = spec.recipe().needs(spec, cfg);
        if needs.is_empty() || recorded_fresh(graph, state, i, &late, cfg) {
            continue;
        }
        for need in needs {
            match need {
                Need::Root => need_root.push(spec.id.to_string()),
                Need::Program { program, package } => {
                    programs.push((program, package, spec.id.to_string()))
                }
            }
        }
    }
    let mut problems = Vec::new();
    if !need_root.is_empty() && !nix::unistd::geteuid().is_root() {
        problems.push(format!(
            "{} must run as root (they build a root file system in a chroot); run ddc build as root",
            need_root.join(", ")
        ));
    }
    let mut seen = HashSet::new();
    for (program, package, task) in programs {
        if seen.insert(program.clone()) && which(&program).is_none() {
            problems.push(format!(
                "{task} needs the program {program}, which is not installed: apt-get install {package}"
            ));
        }
    }
    problems
}

/// Whether task `i`'s record holds for the recorded outputs of its
/// dependencies (a task whose dependency reruns may still come out fresh,
/// but it is checked as if it would run).
fn recorded_fresh(graph: &Graph, state: &State, i: usize, late: &LateMemo, cfg: &Config) -> bool {
    let spec = &graph.tasks[i];
    let mut more: Vec<Input> = spec.recipe().late_inputs(spec, cfg, late);
    for &d in &spec.deps {
        match state.records.get(graph.tasks[d].id.as_str()) {
            Some(r) => more.push(Input {
                name: graph.dep_name[d].clone(),
                hash: r.out_hash,
            }),
            None => return false,
        }
    }
    let key = key_of(spec, &more);
    state
        .records
        .get(spec.id.as_str())
        .is_some_and(|r| r.key == key)
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

//! Before anything runs: root, the host programs and the host files that
//! the tasks about to run need, all named in one message that ends in one
//! `apt-get install` line with every missing package.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::key::key_of;
use crate::cache::State;
use crate::config::Config;
use crate::fingerprint::Input;
use crate::graph::Graph;
use crate::process;
use crate::recipes::{LateMemo, Need};

/// What the stale, wanted tasks need, each with the tasks that need it.
#[derive(Default)]
struct Needs {
    root: Vec<String>,
    programs: BTreeMap<String, (&'static str, Vec<String>)>,
    files: BTreeMap<PathBuf, (&'static str, Vec<String>)>,
}

/// The message naming everything the wanted, stale tasks lack on this
/// master, or None when nothing is missing. A dry run (`as_root`) asks
/// what a build by root would lack.
pub(crate) fn preflight(
    cfg: &Config,
    graph: &Graph,
    state: &State,
    wanted: &[bool],
    as_root: bool,
) -> Option<String> {
    let late = LateMemo::new(cfg);
    let mut needs = Needs::default();
    // A task may run if its record does not hold, or if a task it depends
    // on may run: all are checked now, not one failure per build. Only the
    // tasks that need something (and what they depend on) are looked at:
    // 10,000 boot entries need nothing from the host.
    let mut may_run: Vec<Option<bool>> = vec![None; graph.tasks.len()];
    for (i, spec) in graph.tasks.iter().enumerate() {
        if !wanted[i] {
            continue;
        }
        let task_needs = spec.recipe().needs(spec, cfg);
        if task_needs.is_empty() || !may_run_memo(graph, state, i, &late, cfg, &mut may_run) {
            continue;
        }
        let task = spec.id.to_string();
        for need in task_needs {
            match need {
                Need::Root => needs.root.push(task.clone()),
                Need::Program { program, package } => {
                    let e = needs.programs.entry(program).or_insert((package, vec![]));
                    e.1.push(task.clone());
                }
                Need::File { path, package } => {
                    let e = needs.files.entry(path).or_insert((package, vec![]));
                    e.1.push(task.clone());
                }
            }
        }
    }
    report(&needs, as_root || nix::unistd::geteuid().is_root())
}

/// Whether task `i` may run (memoized): its record does not hold, or a
/// task it depends on may run. Dependencies come before their dependents,
/// so the recursion is as deep as the longest chain (the image steps).
fn may_run_memo(
    graph: &Graph,
    state: &State,
    i: usize,
    late: &LateMemo,
    cfg: &Config,
    memo: &mut [Option<bool>],
) -> bool {
    if let Some(v) = memo[i] {
        return v;
    }
    let deps = graph.tasks[i].deps.clone();
    let v = deps
        .into_iter()
        .any(|d| may_run_memo(graph, state, d, late, cfg, memo))
        || !recorded_fresh(graph, state, i, late, cfg);
    memo[i] = Some(v);
    v
}

/// One line per problem, then the packages to install.
fn report(needs: &Needs, root: bool) -> Option<String> {
    let mut lines = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    let mut add = |p: &'static str| {
        if !packages.contains(&p) {
            packages.push(p);
        }
    };
    if !needs.root.is_empty() && !root {
        lines.push(format!(
            "  root: {} build a root file system in a chroot: run ddc build as root (sudo ddc build)",
            needs.root.join(", ")
        ));
    }
    for (program, (package, tasks)) in &needs.programs {
        if process::which(program).is_some() {
            continue;
        }
        let tasks = tasks.join(", ");
        match process::elsewhere(program) {
            Some(p) => lines.push(format!(
                "  program {program} ({tasks}): not in PATH, though {} is: add {} to PATH",
                p.display(),
                p.parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            )),
            None => {
                lines.push(format!(
                    "  program {program} ({tasks}): not in PATH (package {package})"
                ));
                add(package);
            }
        }
    }
    for (path, (package, tasks)) in &needs.files {
        if !path.is_file() {
            lines.push(format!(
                "  file {} ({}): missing (package {package})",
                path.display(),
                tasks.join(", ")
            ));
            add(package);
        }
    }
    if lines.is_empty() {
        return None;
    }
    let mut text = String::from("this master lacks what the build needs:\n");
    text.push_str(&lines.join("\n"));
    if !packages.is_empty() {
        text.push_str(&format!(
            "\ninstall every missing package at once: apt-get install {}",
            packages.join(" ")
        ));
    }
    Some(text)
}

/// Whether task `i`'s record holds for the recorded outputs of its
/// dependencies.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_missing_is_named_at_once_with_one_install_line() {
        let mut needs = Needs {
            root: vec!["debootstrap:a".into(), "packages:a".into()],
            ..Default::default()
        };
        for (p, pkg, t) in [
            ("ddc-no-such-tool", "ddc-tool", "debootstrap:a"),
            ("ddc-no-such-tool", "ddc-tool", "debootstrap:b"),
            ("ddc-other-tool", "ddc-other", "publish:a"),
            ("sh", "dash", "x"),
        ] {
            let e = needs.programs.entry(p.into()).or_insert((pkg, vec![]));
            e.1.push(t.into());
        }
        for (f, pkg) in [
            ("/nonexistent/pxelinux.0", "pxelinux"),
            ("/nonexistent/ldlinux.c32", "ddc-other"),
        ] {
            needs
                .files
                .insert(f.into(), (pkg, vec!["bootloader".into()]));
        }
        let text = report(&needs, false).unwrap();
        assert!(
            text.contains("  root: debootstrap:a, packages:a build"),
            "{text}"
        );
        assert!(
            text.contains("program ddc-no-such-tool (debootstrap:a, debootstrap:b): not in PATH (package ddc-tool)"),
            "{text}"
        );
        assert!(!text.contains("program sh"), "{text}");
        assert!(
            text.contains("file /nonexistent/pxelinux.0 (bootloader): missing (package pxelinux)"),
            "{text}"
        );
        assert_eq!(
            text.lines().last().unwrap(),
            "install every missing package at once: apt-get install ddc-tool ddc-other pxelinux"
        );
        assert!(!report(&needs, true).unwrap().contains("root:"));
        assert!(report(&Needs::default(), false).is_none());
    }
}

//! `ddc power on|off|cycle|reset|status`: which nodes (named, `--all`, an
//! image's, or those whose boot entry points at a generation), then the
//! action on each node's BMC, `[power] parallel` at a time, each within
//! `[power] timeout`, and a table of the results sorted by node. What
//! ipmitool is asked and what its answers mean is `crate::bmc`'s. Must not
//! import `cli`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::bmc::{self, Credentials, Outcome};
use crate::config::{self, Config, Node};
use crate::error::{Error, NotStarted};
use crate::generations;
use crate::process::{self, Cancel};

pub(crate) use crate::bmc::Action;

/// The options of `ddc power`.
pub(crate) struct Options {
    pub(crate) action: Action,
    /// Hostnames.
    pub(crate) nodes: Vec<String>,
    pub(crate) all: bool,
    pub(crate) image: Option<String>,
    /// A generation (name, number or hash prefix): the nodes whose boot
    /// entry points at it.
    pub(crate) generation: Option<String>,
    pub(crate) dry_run: bool,
    pub(crate) json: bool,
}

const NO_BMC: &str = "no bmc set: give the node bmc = \"ADDR[:PORT]\" in its [[nodes]] table, or a bmc column in the nodes_file CSV";

pub(crate) fn run(file: &Path, o: Options) -> Result<(), Error> {
    let cfg = config::load(file)?;
    let mut nodes = select(&cfg, &o)?;
    if nodes.is_empty() {
        eprintln!("no node selected: nothing to do");
        return Ok(());
    }
    nodes.sort_by_cached_key(|n| natural(&n.hostname));
    let shown = file.display().to_string();
    let creds = bmc::credentials(&cfg.power, &shown, !o.dry_run).map_err(NotStarted)?;
    if o.dry_run {
        print_plan(&cfg, &creds, &nodes, o.action, o.json);
        return Ok(());
    }
    let cancel = Arc::new(Cancel::default());
    process::install_signal_handlers(&cancel)?;
    let started = Instant::now();
    let outcomes = run_all(&cfg, &creds, &nodes, o.action, &cancel);
    let elapsed = started.elapsed();
    if o.json {
        for (n, out) in nodes.iter().zip(&outcomes) {
            let line = serde_json::json!({
                "node": n.hostname,
                "bmc": n.bmc.as_ref().map(|b| b.to_string()),
                "action": o.action.as_str(),
                "ok": out.ok,
                "result": out.result,
            });
            println!("{line}");
        }
    } else {
        print_table(&nodes, &outcomes);
        println!("{}", summary(o.action, &outcomes, elapsed.as_secs_f64()));
    }
    if cancel.is_cancelled() {
        Err(Error::Interrupted)
    } else if outcomes.iter().any(|o| !o.ok) {
        Err(Error::NodesFailed)
    } else {
        Ok(())
    }
}

/// The nodes the options name, each once.
fn select<'a>(cfg: &'a Config, o: &Options) -> Result<Vec<&'a Node>, NotStarted> {
    if !o.nodes.is_empty() {
        let wanted: BTreeSet<&str> = o.nodes.iter().map(String::as_str).collect();
        let unknown: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| !cfg.nodes.iter().any(|n| n.hostname == *w))
            .collect();
        if !unknown.is_empty() {
            return Err(NotStarted(format!(
                "no node named {} in the Ddcfile or its nodes_file",
                unknown.join(", ")
            )));
        }
        return Ok(cfg
            .nodes
            .iter()
            .filter(|n| wanted.contains(n.hostname.as_str()))
            .collect());
    }
    if let Some(image) = &o.image {
        if !cfg.images.contains_key(image) {
            return Err(NotStarted(format!(
                "no image {image:?} in the Ddcfile; images: {}",
                cfg.images.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    // The nodes whose entry (pxelinux's or iPXE's) points at the generation.
    let on_generation = match &o.generation {
        Some(g) => {
            let names = generations::hostnames(cfg);
            let files = generation_entries(cfg, o.image.as_deref(), g)?;
            Some(
                files
                    .iter()
                    .filter_map(|f| names.get(f).cloned())
                    .collect::<BTreeSet<String>>(),
            )
        }
        None => None,
    };
    if !o.all && o.image.is_none() && on_generation.is_none() {
        return Err(NotStarted(
            "name the nodes: NODE…, --all, --image IMG or --generation G".into(),
        ));
    }
    Ok(cfg
        .nodes
        .iter()
        .filter(|n| o.image.as_ref().is_none_or(|i| n.image == *i))
        .filter(|n| {
            on_generation
                .as_ref()
                .is_none_or(|hosts| hosts.contains(&n.hostname))
        })
        .collect())
}

/// The boot entry files that point at generation `spec` (of `image`, or of
/// the one image that has such a generation).
fn generation_entries(
    cfg: &Config,
    image: Option<&str>,
    spec: &str,
) -> Result<BTreeSet<String>, NotStarted> {
    let images: Vec<&str> = match image {
        Some(i) => vec![i],
        None => cfg.images.keys().map(String::as_str).collect(),
    };
    let found: Vec<(&str, String)> = images
        .into_iter()
        .filter_map(|i| {
            let gens = generations::list(&cfg.paths.nfs_root, i);
            Some((i, generations::resolve(&gens, spec)?.name.clone()))
        })
        .collect();
    let (image, generation) = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(NotStarted(format!(
                "no generation {spec:?}{}; `ddc generations` lists them",
                image.map(|i| format!(" of image {i}")).unwrap_or_default()
            )))
        }
        more => {
            let names: Vec<String> = more.iter().map(|(i, g)| format!("{i} {g}")).collect();
            return Err(NotStarted(format!(
                "{spec:?} names a generation of several images ({}); add --image IMG",
                names.join(", ")
            )));
        }
    };
    let entries = generations::entries_by_generation(cfg);
    Ok(entries
        .get(&(image.to_string(), generation))
        .map(|files| files.iter().cloned().collect())
        .unwrap_or_default())
}

/// Runs the action on every node, `[power] parallel` at a time; the
/// outcomes in the order of `nodes`.
fn run_all(
    cfg: &Config,
    creds: &Credentials,
    nodes: &[&Node],
    action: Action,
    cancel: &Cancel,
) -> Vec<Outcome> {
    let results: Vec<Mutex<Option<Outcome>>> = nodes.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = cfg.power.parallel.min(nodes.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(node) = nodes.get(i) else { break };
                let outcome = match &node.bmc {
                    Some(b) => bmc::run(&cfg.power, creds, b, action, cancel),
                    None => Outcome::failed(NO_BMC),
                };
                *results[i].lock().expect("result") = Some(outcome);
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .expect("result")
                .unwrap_or_else(|| Outcome::failed("not run"))
        })
        .collect()
}

fn print_table(nodes: &[&Node], outcomes: &[Outcome]) {
    let bmcs: Vec<String> = nodes
        .iter()
        .map(|n| n.bmc.as_ref().map_or("-".into(), |b| b.to_string()))
        .collect();
    let w_node = nodes
        .iter()
        .map(|n| n.hostname.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let w_bmc = bmcs.iter().map(String::len).max().unwrap_or(0).max(3);
    println!("{:<w_node$}  {:<w_bmc$}  result", "node", "bmc");
    for ((n, b), o) in nodes.iter().zip(&bmcs).zip(outcomes) {
        println!("{:<w_node$}  {b:<w_bmc$}  {}", n.hostname, o.result);
    }
}

/// `power status: 3 nodes, 2 on, 1 off, 0 failed (0.2s)`.
fn summary(action: Action, outcomes: &[Outcome], secs: f64) -> String {
    let count = |r: &str| outcomes.iter().filter(|o| o.ok && o.result == r).count();
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    let n = outcomes.len();
    let nodes = if n == 1 { "node" } else { "nodes" };
    let done = match action {
        Action::Status => format!("{} on, {} off", count("on"), count("off")),
        _ => format!("{} ok", count("ok")),
    };
    format!(
        "power {}: {n} {nodes}, {done}, {failed} failed ({secs:.1}s)",
        action.as_str()
    )
}

/// `-n`: the command each node would run (the password stays in its file).
fn print_plan(cfg: &Config, creds: &Credentials, nodes: &[&Node], action: Action, json: bool) {
    for n in nodes {
        let line = n
            .bmc
            .as_ref()
            .map(|b| bmc::command_line(&cfg.power, creds, b, action));
        if json {
            let v = serde_json::json!({
                "node": n.hostname,
                "bmc": n.bmc.as_ref().map(|b| b.to_string()),
                "action": action.as_str(),
                "would_run": line,
            });
            println!("{v}");
        } else {
            match line {
                Some(l) => println!("{}: would run: {}", n.hostname, l.join(" ")),
                None => println!("{}: {NO_BMC}", n.hostname),
            }
        }
    }
}

/// A hostname as a sort key that puts node2 before node10.
fn natural(s: &str) -> Vec<(String, u128)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u128::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    let last = if digits.is_empty() {
        0
    } else {
        digits.parse().unwrap_or(u128::MAX)
    };
    key.push((text, last));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["node10", "node2", "gpu1", "node1", "node02a"];
        v.sort_by_key(|s| natural(s));
        assert_eq!(v, ["gpu1", "node1", "node2", "node02a", "node10"]);
    }
}

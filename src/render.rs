//! Draws the task graph with each task's state (from a build's results) as
//! text, Graphviz dot or JSON. Per-node tasks fold into one line per kind
//! beyond a few nodes. Knows graphs and results only: must not import
//! `cli` or `commands`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::engine::TaskResult;
use crate::graph::Graph;
use crate::reporter::TaskState;

/// How [`render`] draws.
#[derive(Clone, Copy)]
pub(crate) enum Format {
    Text,
    Dot,
    Json,
}

/// The graph `g` with the state of each task in `results`, drawn as `format` says.
pub(crate) fn render(format: Format, g: &Graph, results: &[Option<TaskResult>]) -> String {
    match format {
        Format::Text => text(g, results),
        Format::Dot => dot(g, results),
        Format::Json => json(g, results),
    }
}

/// Beyond this many tasks of one per-node kind, they fold into one line.
const FOLD: usize = 8;

fn state_word(r: Option<&TaskResult>) -> (&'static str, String) {
    match r {
        Some(r) if r.state == TaskState::Cached => ("fresh", String::new()),
        Some(r) => (
            "stale",
            r.reason.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        ),
        None => ("stale", String::new()),
    }
}

fn text(g: &Graph, results: &[Option<TaskResult>]) -> String {
    let mut out = String::new();
    let mut folded: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &g.tasks {
        *counts.entry(t.kind.name()).or_default() += 1;
    }
    let count = |k: &str| counts.get(k).copied().unwrap_or_default();
    for (i, t) in g.tasks.iter().enumerate() {
        let (word, why) = state_word(results[i].as_ref());
        if t.kind.recipe().per_node() && count(t.kind.name()) > FOLD {
            let e = folded.entry(t.kind.name()).or_default();
            e.0 += 1;
            if word == "stale" {
                e.1 += 1;
            }
            if e.0 == count(t.kind.name()) {
                let _ = writeln!(out, "{}: {} nodes, {} stale", t.kind.name(), e.0, e.1);
            }
            continue;
        }
        let deps: Vec<String> = t.deps.iter().map(|&d| g.tasks[d].id.to_string()).collect();
        let _ = write!(out, "{:<28} {word}", t.id.as_str());
        if !why.is_empty() {
            let _ = write!(out, " ({why})");
        }
        if !deps.is_empty() {
            let _ = write!(out, "  <- {}", deps.join(", "));
        }
        out.push('\n');
    }
    out
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn dot(g: &Graph, results: &[Option<TaskResult>]) -> String {
    let mut out =
        String::from("digraph ddc {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    let fold_pxe = g
        .tasks
        .iter()
        .filter(|t| t.kind.recipe().per_node())
        .count()
        > FOLD;
    let name = |i: usize| -> String {
        let t = &g.tasks[i];
        if fold_pxe && t.kind.recipe().per_node() {
            format!("{} (per node)", t.kind.name())
        } else {
            t.id.to_string()
        }
    };
    let mut nodes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, _) in g.tasks.iter().enumerate() {
        let e = nodes.entry(name(i)).or_default();
        e.0 += 1;
        if state_word(results[i].as_ref()).0 == "stale" {
            e.1 += 1;
        }
    }
    for (n, (count, stale)) in &nodes {
        let color = if *stale > 0 { "orange" } else { "darkgreen" };
        let label = if *count > 1 {
            format!("{n}\\n{count} tasks, {stale} stale")
        } else if *stale > 0 {
            format!("{n}\\nstale")
        } else {
            format!("{n}\\nfresh")
        };
        let _ = writeln!(
            out,
            "  {} [label=\"{}\", color={color}];",
            dot_id(n),
            label.replace('"', "\\\"")
        );
    }
    let mut edges = std::collections::BTreeSet::new();
    for (i, t) in g.tasks.iter().enumerate() {
        for &d in &t.deps {
            edges.insert((name(d), name(i)));
        }
    }
    for (a, b) in edges {
        let _ = writeln!(out, "  {} -> {};", dot_id(&a), dot_id(&b));
    }
    out.push_str("}\n");
    out
}

fn json(g: &Graph, results: &[Option<TaskResult>]) -> String {
    let tasks: Vec<serde_json::Value> = g
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (word, why) = state_word(results[i].as_ref());
            serde_json::json!({
                "id": t.id.as_str(),
                "kind": t.kind.name(),
                "deps": t.deps.iter().map(|&d| g.tasks[d].id.as_str()).collect::<Vec<_>>(),
                "state": word,
                "reason": if why.is_empty() { serde_json::Value::Null } else { why.into() },
            })
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&serde_json::json!({ "tasks": tasks })).expect("json");
    s.push('\n');
    s
}

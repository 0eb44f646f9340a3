//! `ddc status`: each node's state from the node-state database (read
//! directly, so it works with `ddc serve` stopped), the generation it runs
//! against the one its entry points at, and a summary line; `--json` gives
//! one object per node per line. `--reset-db` moves a corrupt database
//! aside. Must not import `cli`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::config::{self, Config, Node};
use crate::error::{Error, NotStarted};
use crate::generations;
use crate::nodestate::{self, NodeRow, State, Store};

/// The options of `ddc status`.
pub(crate) struct Options {
    /// Only these nodes (all when empty).
    pub(crate) nodes: Vec<String>,
    pub(crate) json: bool,
    /// Move the database aside instead of reading it.
    pub(crate) reset_db: bool,
}

/// One node's line.
struct Line<'a> {
    node: &'a Node,
    row: NodeRow,
    state: State,
    target: Option<String>,
    reboot: bool,
}

pub(crate) fn run(file: &Path, o: Options) -> Result<(), Error> {
    let cfg = config::load(file)?;
    let db = crate::serve::db_path(&cfg);
    if o.reset_db {
        match nodestate::reset(&db)? {
            Some(aside) => println!(
                "moved {} aside to {}; `ddc serve` starts an empty one, and nodes report again \
                 within one heartbeat",
                db.display(),
                aside.display()
            ),
            None => println!(
                "no node-state database at {}: nothing to reset",
                db.display()
            ),
        }
        return Ok(());
    }
    for n in &o.nodes {
        if !cfg.nodes.iter().any(|x| &x.hostname == n) {
            return Err(NotStarted(format!("no node {n:?} in the inventory")).into());
        }
    }
    let mut rows = match Store::open_existing(&db)? {
        Some(s) => s.nodes()?,
        None => BTreeMap::new(),
    };
    let now = nodestate::now_ms();
    let mut nodes: Vec<&Node> = cfg
        .nodes
        .iter()
        .filter(|n| o.nodes.is_empty() || o.nodes.contains(&n.hostname))
        .collect();
    nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    let lines: Vec<Line> = nodes
        .into_iter()
        .map(|node| {
            let row = rows.remove(&node.hostname).unwrap_or_default();
            let state = row.state(now, cfg.server.heartbeat);
            let target = target(&cfg, node);
            let reboot = match (&row.report, &target) {
                (Some(r), Some(t)) => r.generation != *t || r.image != node.image,
                _ => false,
            };
            Line {
                node,
                row,
                state,
                target,
                reboot,
            }
        })
        .collect();
    if o.json {
        for l in &lines {
            println!("{}", as_json(l));
        }
    } else {
        print!("{}", as_text(&lines));
    }
    Ok(())
}

/// The generation a node's entry points at: its pin, or its image's current.
pub(crate) fn target(cfg: &Config, node: &Node) -> Option<String> {
    let root = &cfg.paths.nfs_root;
    match &node.pin {
        Some(pin) => {
            let gens = generations::list(root, &node.image);
            generations::resolve(&gens, pin).map(|g| g.name.clone())
        }
        None => generations::current(root, &node.image),
    }
}

fn as_json(l: &Line) -> serde_json::Value {
    let r = l.row.report.as_ref();
    json!({
        "node": l.node.hostname,
        "state": l.state.as_str(),
        "image": l.node.image,
        "running": r.map(|r| &r.generation),
        "running_image": r.map(|r| &r.image),
        "target": l.target,
        "reboot_needed": l.reboot,
        "last_seen": l.row.last_seen().map(nodestate::rfc3339),
        "booted_at": l.row.booted_at().map(nodestate::rfc3339),
        "kernel": r.map(|r| &r.kernel),
        "boot_id": r.map(|r| &r.boot_id),
        "failed_units": r.map(|r| &r.failed_units),
    })
}

fn as_text(lines: &[Line]) -> String {
    let width = lines
        .iter()
        .map(|l| l.node.hostname.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<10}  {:<17}  {:<17}  {:<20}  booted at\n",
        "node", "state", "running", "target", "last seen"
    );
    let dash = || "-".to_string();
    for l in lines {
        let r = l.row.report.as_ref();
        let mut line = format!(
            "{:<width$}  {:<10}  {:<17}  {:<17}  {:<20}  {:<20}",
            l.node.hostname,
            l.state.as_str().replace('_', " "),
            r.map_or_else(dash, |r| r.generation.clone()),
            l.target.clone().unwrap_or_else(dash),
            l.row.last_seen().map_or_else(dash, nodestate::rfc3339),
            l.row.booted_at().map_or_else(dash, nodestate::rfc3339),
        );
        if l.reboot {
            line.push_str("  reboot needed");
        }
        if let Some(r) = r.filter(|r| !r.failed_units.is_empty()) {
            line.push_str(&format!("  failed: {}", r.failed_units.join(", ")));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&summary(lines));
    out.push('\n');
    out
}

/// `10 up (8 on current, 2 need a reboot), 1 booting, 1 silent, 3 never seen`.
fn summary(lines: &[Line]) -> String {
    let count = |s: State| lines.iter().filter(|l| l.state == s).count();
    let up = count(State::Up);
    let reboot = lines
        .iter()
        .filter(|l| l.state == State::Up && l.reboot)
        .count();
    let mut parts = vec![format!(
        "{up} up ({} on current, {reboot} need a reboot)",
        up - reboot
    )];
    for (s, name) in [
        (State::Booting, "booting"),
        (State::Silent, "silent"),
        (State::NeverSeen, "never seen"),
    ] {
        let n = count(s);
        if n > 0 {
            parts.push(format!("{n} {name}"));
        }
    }
    parts.join(", ")
}

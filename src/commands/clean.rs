//! `ddc clean`: forgets task records so the next build reruns those tasks,
//! and frees the image stages kept in the cache. Published images, TFTP
//! files and server configs are never touched: running nodes use them.
//! Owns what clean removes and says; must not import `cli`.

use std::path::Path;

use anyhow::Result;

use crate::cache::{Lock, State};
use crate::config::Config;
use crate::engine::cache_dirs;
use crate::error::Error;
use crate::fsutil::safe_remove_dir_all;
use crate::graph::Graph;

use super::{load, Loaded};

/// Forgets all records, or those of `tasks` and their dependents, then
/// prints what it did.
pub(crate) fn run(file: &Path, tasks: &[String], no_wait: bool) -> Result<(), Error> {
    let Loaded { cfg, graph, .. } = load(file)?;
    let say = |s: String| eprintln!("ddc: {s}");
    for line in clean(&cfg, &graph, tasks, no_wait, &say)? {
        println!("{line}");
    }
    Ok(())
}

/// Returns the lines to print.
fn clean(
    cfg: &Config,
    graph: &Graph,
    targets: &[String],
    no_wait: bool,
    say: &dyn Fn(String),
) -> Result<Vec<String>, Error> {
    let dirs = cache_dirs(cfg);
    if !dirs.root.exists() {
        return Ok(vec!["nothing to clean: there is no cache yet".into()]);
    }
    let _lock = Lock::acquire(&dirs, no_wait, say)?;
    crate::cache::claim(&dirs, &cfg.file)?;
    let mut state = State::load(&dirs)?;
    let mut lines = Vec::new();
    let chosen: Vec<usize> = if targets.is_empty() {
        (0..graph.tasks.len()).collect()
    } else {
        let roots = graph.select(targets)?;
        let mark = graph.dependents(&roots);
        (0..graph.tasks.len()).filter(|&i| mark[i]).collect()
    };
    let mut forgotten = 0;
    for &i in &chosen {
        let t = &graph.tasks[i];
        if state.records.remove(t.id.as_str()).is_some() {
            forgotten += 1;
        }
        if let Some(d) = t.recipe().cache_dir(t, &dirs.root) {
            if d.exists() {
                safe_remove_dir_all(&d)?;
                lines.push(format!("removed {}", d.display()));
            }
        }
    }
    if targets.is_empty() {
        // Records of tasks no longer in the graph go too.
        forgotten += state.records.len();
        state.records.clear();
        for sub in ["trees", "images"] {
            let d = dirs.root.join(sub);
            if d.exists() {
                safe_remove_dir_all(&d)?;
                lines.push(format!("removed {}", d.display()));
            }
        }
    }
    state.compact(&dirs)?;
    lines.push(format!(
        "forgot {forgotten} task record{}: the next build reruns {}",
        if forgotten == 1 { "" } else { "s" },
        if targets.is_empty() {
            "everything".to_string()
        } else {
            format!("{} task(s)", chosen.len())
        }
    ));
    let mut kept = String::new();
    if dirs.root.join("debs").exists() {
        kept.push_str(", the package cache cache/debs");
    }
    if dirs.root.join("ssh-host-keys").exists() {
        kept.push_str(", the images' SSH host keys cache/ssh-host-keys");
    }
    lines.push(format!(
        "kept: published images in {}, the TFTP root, the server configs{kept}",
        cfg.paths.nfs_root.display(),
    ));
    Ok(lines)
}

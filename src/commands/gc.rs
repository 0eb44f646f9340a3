//! `ddc gc`: deletes old generations (never the current one, a pinned one,
//! or one a boot entry points at; nor one a node reports running
//! (`nodestate`), unless `--force`) and what retired images (no longer in
//! the Ddcfile) left: their generations and cache layers, under the cache
//! lock; then rewrites the exports without them (the build forgets the
//! retired images' records once their outputs are gone). What may go is
//! `crate::generations`' to decide.
//! Must not import `cli`.

use std::path::Path;

use crate::config::Config;
use crate::engine::{self, BuildOptions};
use crate::error::Error;
use crate::generations;
use crate::generations::Running;

use super::{load, run_build, Loaded, Run};

/// The options of `ddc gc`.
pub(crate) struct Options {
    /// How many of the newest generations of each image to keep.
    pub(crate) keep: usize,
    /// Show what would be deleted; delete nothing.
    pub(crate) dry_run: bool,
    pub(crate) no_wait: bool,
    pub(crate) verbose: bool,
    /// Delete generations nodes report running, too.
    pub(crate) force: bool,
}

/// What the node-state database protects: the generations nodes in the
/// inventory report running, and those an unfinished rollout may pin its
/// nodes back to (its `from` generations); prints a line for each report
/// of a node no longer in the inventory (not kept). A database that cannot
/// be read stops gc (it could delete a running root) unless `force`.
fn running(cfg: &crate::config::Config, force: bool) -> Result<(Running, Running), Error> {
    let db = crate::serve::db_path(cfg);
    let known: std::collections::HashSet<&str> =
        cfg.nodes.iter().map(|n| n.hostname.as_str()).collect();
    let read = crate::nodestate::Store::open_existing(&db).and_then(|s| {
        let Some(s) = s else {
            return Ok(Default::default());
        };
        let (running, ignored) = s.running(&|h| known.contains(h))?;
        let mut backout = Running::new();
        if let Some((_, nodes)) = s.unfinished_rollout()? {
            for n in nodes {
                backout
                    .entry((n.from_image, n.from_gen))
                    .or_default()
                    .push(n.hostname);
            }
        }
        Ok((running, backout, ignored))
    });
    match read {
        Ok((r, b, ignored)) => {
            for line in ignored {
                println!("{line}");
            }
            Ok((r, b))
        }
        Err(e) if force => {
            eprintln!("warning: {e:#}; --force deletes without knowing what nodes run");
            Ok(Default::default())
        }
        Err(e) => Err(anyhow::anyhow!(
            "{e:#}\ngc cannot tell which generations nodes run; --force deletes regardless"
        )
        .into()),
    }
}

/// Deletes (or, with `dry_run`, names) old generations, and the retired
/// images' generations and cache layers; prints what it did.
fn collect(
    cfg: &Config,
    keep: usize,
    dry_run: bool,
    (running, backout): (&Running, &Running),
    force: bool,
) -> Result<(), Error> {
    let layers = engine::cache_dirs(cfg).root.join("images");
    let retired = generations::retired(cfg, &layers);
    let (lines, mut freed) =
        generations::gc(cfg, keep, dry_run, &retired, running, backout, force)?;
    for line in lines {
        println!("{line}");
    }
    for image in &retired {
        let dir = layers.join(image);
        if !dir.is_dir() {
            continue;
        }
        let bytes = generations::tree_bytes(&dir);
        freed += bytes;
        let (verb, what) = if dry_run {
            ("would delete", "frees")
        } else {
            crate::fsutil::safe_remove_dir_all(&dir)?;
            ("deleted", "freed")
        };
        println!(
            "{verb} the cache layers of retired image {image}: {} ({what} {})",
            crate::fsutil::shown(&dir, &cfg.base_dir),
            generations::human(bytes)
        );
    }
    let verb = if dry_run { "would free" } else { "freed" };
    println!("{verb} {}", generations::human(freed));
    Ok(())
}

pub(crate) fn run(file: &Path, o: Options) -> Result<(), Error> {
    let Loaded { cfg, graph, .. } = load(file)?;
    let (running, backout) = running(&cfg, o.force)?;
    if o.dry_run {
        return collect(&cfg, o.keep, true, (&running, &backout), o.force);
    }
    // Delete under the lock, then rewrite the exports without the deleted.
    let opts = BuildOptions {
        targets: vec!["exports".into()],
        dry_run: false,
        jobs: 1,
        keep_going: true,
        no_deps: true,
        verify: false,
        cutoff: None,
    };
    let delete = |_: &dyn Fn(String)| -> Result<(), Error> {
        collect(&cfg, o.keep, false, (&running, &backout), o.force)
    };
    let run = Run {
        json: false,
        verbose: o.verbose,
        no_wait: o.no_wait,
        state: None,
        before: &delete,
    };
    run_build(&cfg, &graph, &opts, run)
}

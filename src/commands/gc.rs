//! `ddc gc`: deletes old generations (never the current one, a pinned one,
//! or one a boot entry points at) under the cache lock, then rewrites the
//! exports without them; nor one a node reports running (`nodestate`),
//! unless `--force`. What may go is `crate::generations`' to decide.
//! Must not import `cli`.

use std::path::Path;

use crate::engine::BuildOptions;
use crate::error::Error;
use crate::generations;

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

/// The generations nodes report running, from the node-state database. A
/// database that cannot be read stops gc (it could delete a running root)
/// unless `force`.
fn running(cfg: &crate::config::Config, force: bool) -> Result<generations::Running, Error> {
    let db = crate::serve::db_path(cfg);
    let read = crate::nodestate::Store::open_existing(&db)
        .and_then(|s| s.map_or_else(|| Ok(Default::default()), |s| s.running()));
    match read {
        Ok(r) => Ok(r),
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

pub(crate) fn run(file: &Path, o: Options) -> Result<(), Error> {
    let Loaded { cfg, graph, .. } = load(file)?;
    let running = running(&cfg, o.force)?;
    if o.dry_run {
        for line in generations::gc(&cfg, o.keep, true, &running, o.force)? {
            println!("{line}");
        }
        return Ok(());
    }
    // Delete under the lock, then rewrite the exports without the deleted.
    let opts = BuildOptions {
        targets: vec!["exports".into()],
        dry_run: false,
        jobs: 1,
        keep_going: true,
        no_deps: true,
        verify: false,
    };
    let delete = |_: &dyn Fn(String)| -> Result<(), Error> {
        for line in generations::gc(&cfg, o.keep, false, &running, o.force)? {
            println!("{line}");
        }
        Ok(())
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

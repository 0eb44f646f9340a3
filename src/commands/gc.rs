//! `ddc gc`: deletes old generations (never the current one, a pinned one,
//! or one a boot entry points at) under the cache lock, then rewrites the
//! exports without them. What may go is `crate::generations`' to decide.
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
}

pub(crate) fn run(file: &Path, o: Options) -> Result<(), Error> {
    let Loaded { cfg, graph, .. } = load(file)?;
    if o.dry_run {
        for line in generations::gc(&cfg, o.keep, true)? {
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
        for line in generations::gc(&cfg, o.keep, false)? {
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

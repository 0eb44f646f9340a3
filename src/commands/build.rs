//! `ddc build`: builds everything, or the named tasks (or task kinds) and
//! what they need, under the cache lock. Owns only turning its options into
//! a build; the build itself is `crate::engine`. Must not import `cli`.

use std::path::Path;

use crate::engine::BuildOptions;
use crate::error::Error;

use super::{load, load_to_read, run_build, Loaded, Run};

/// The options of `ddc build`.
pub(crate) struct Options {
    /// Task ids (packages:default, pxe:node01) or kinds (pxe); none is all.
    pub(crate) tasks: Vec<String>,
    pub(crate) dry_run: bool,
    /// Look inside every recorded tree instead of trusting its root.
    pub(crate) verify: bool,
    pub(crate) json: bool,
    /// How many heavy tasks run at once (default: the core count).
    pub(crate) jobs: Option<usize>,
    pub(crate) keep_going: bool,
    pub(crate) no_wait: bool,
    pub(crate) verbose: bool,
}

pub(crate) fn run(file: &Path, o: Options) -> Result<(), Error> {
    let Loaded { cfg, graph, state } = if o.dry_run {
        load_to_read(file)?
    } else {
        load(file)?
    };
    let opts = BuildOptions {
        targets: o.tasks,
        dry_run: o.dry_run,
        jobs: o.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
        keep_going: o.keep_going,
        no_deps: false,
        verify: o.verify,
    };
    let run = Run {
        json: o.json,
        verbose: o.verbose,
        no_wait: o.no_wait,
        state: Some(state),
        before: &|_| Ok(()),
    };
    let outcome = run_build(&cfg, &graph, &opts, run);
    // The graph and config of 10,000 nodes take milliseconds to free;
    // the process ends now and the kernel frees them at once.
    std::mem::forget(graph);
    std::mem::forget(cfg);
    outcome
}

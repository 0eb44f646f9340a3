//! `ddc build`: builds everything, or the named tasks (or task kinds) and
//! what they need, under the cache lock. Owns only turning its options into
//! a build; the build itself is `crate::engine`. Must not import `cli`.

use std::path::Path;

use crate::cache::Lock;
use crate::config::Config;
use crate::engine::{self, BuildOptions, NoopInputs};
use crate::error::Error;
use crate::recipes;
use crate::reporter::{Mode, Reporter};

use super::{load, load_config, load_to_read, load_with, run_build, Loaded, Run};

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
    // A build of everything: first the whole-build cutoff (ninja's no-op),
    // which `--verify` does not trust; both write it when they end well.
    let whole = !o.dry_run && o.tasks.is_empty();
    let (Loaded { cfg, graph, state }, cutoff) = if whole {
        let start = std::time::Instant::now();
        let dirs = engine::cache_dirs_at(&crate::config::base_dir(file));
        let last = engine::noop_last(&dirs).filter(|_| !o.verify);
        // Not a no-op (the Ddcfile changed, say): the records load while
        // the config parses, as in any build.
        let state = last
            .is_none()
            .then(|| std::thread::spawn(move || crate::cache::State::load(&dirs)));
        let cfg = load_config(file)?;
        tracing::debug!("config of {} nodes loaded", cfg.nodes.len());
        let inputs = NoopInputs::of(&cfg, recipes::staging_mode());
        if let Some(last) = last {
            if noop(&cfg, &inputs, &o, start, last).is_some() {
                std::mem::forget(cfg);
                return Ok(());
            }
        }
        tracing::debug!("the whole-build cutoff does not hold: a full build");
        (load_with(cfg, state)?, Some(inputs))
    } else if o.dry_run {
        (load_to_read(file)?, None)
    } else {
        (load(file)?, None)
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
        cutoff,
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

/// The build if it is a no-op by the whole-build cutoff: said as a full
/// no-op says it. None when it is not (or the cache is busy): the full
/// build decides.
fn noop(
    cfg: &Config,
    inputs: &NoopInputs,
    o: &Options,
    start: std::time::Instant,
    last: engine::Noop,
) -> Option<()> {
    let dirs = engine::cache_dirs(cfg);
    let lock = Lock::acquire(&dirs, true, &|_| {}).ok()?;
    let ids = engine::noop_check(cfg, inputs, &dirs, last)?;
    tracing::debug!("a no-op by the whole-build cutoff");
    let reporter = Reporter::start(Mode::choose(o.json), o.verbose);
    let events = reporter.sender();
    engine::noop_report(cfg, ids, &events, start);
    drop(events);
    reporter.finish();
    drop(lock);
    Some(())
}

//! The subcommands, one file each, and the setup several of them share:
//! loading the Ddcfile, the task graph and the cache records ([`load`]), and
//! a build under the cache lock with its reporter ([`run_build`]). Each
//! command takes plain options and returns [`Error`], whose variant decides
//! the exit code. Commands know nothing of the command line: this module and
//! its children must not import `cli` (nor clap).

pub(crate) mod build;
pub(crate) mod clean;
pub(crate) mod diff;
pub(crate) mod discover;
pub(crate) mod gc;
pub(crate) mod generations;
pub(crate) mod graph;
pub(crate) mod init;
pub(crate) mod node;
pub(crate) mod node_show;
pub(crate) mod nodes;
pub(crate) mod power;
pub(crate) mod rollback;
pub(crate) mod rollout;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod tasks;
pub(crate) mod verify;

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::cache::{Lock, State};
use crate::config::{self, Config};
use crate::engine::{self, BuildOptions};
use crate::error::{Error, NotStarted};
use crate::graph::{self as task_graph, Graph};
use crate::process::{self, Cancel};
use crate::recipes;
use crate::reporter::{Event, Mode, Reporter};

/// The cache records, loading on their own thread.
pub(crate) type StateLoad = JoinHandle<anyhow::Result<State>>;

/// What every command starts from.
pub(crate) struct Loaded {
    pub(crate) cfg: Config,
    pub(crate) graph: Graph,
    /// The records, loaded while the Ddcfile parsed.
    pub(crate) state: StateLoad,
}

/// Loads the Ddcfile at `file` and builds its task graph; the cache records
/// load meanwhile. A graph that cannot be built means nothing can start.
pub(crate) fn load(file: &Path) -> Result<Loaded, Error> {
    let t = std::time::Instant::now();
    // The records load while the Ddcfile parses: both take tens of ms at 10,000 nodes.
    let dirs = engine::cache_dirs_at(&config::base_dir(file));
    let state = std::thread::spawn(move || State::load(&dirs));
    loaded(file, state, recipes::staging_mode(), t)
}

/// [`load`] for commands that only read (`graph`, `build -n`). A user who
/// cannot build (not root) sees the image steps as the build that recorded
/// them staged them, not as an unprivileged build would.
pub(crate) fn load_to_read(file: &Path) -> Result<Loaded, Error> {
    if nix::unistd::geteuid().is_root() {
        return load(file);
    }
    let t = std::time::Instant::now();
    let state = State::load(&engine::cache_dirs_at(&config::base_dir(file)));
    let recorded = state.as_ref().ok().and_then(|s| {
        s.records
            .values()
            .filter(|r| recipes::Kind::of_id(&r.task).is_some_and(|k| k.recipe().heavy()))
            .find_map(|r| r.inputs().find(|(n, _)| *n == "staging"))
            .and_then(|(_, h)| recipes::Staging::recorded(h))
    });
    let staging = recorded.unwrap_or_else(recipes::staging_mode);
    loaded(file, std::thread::spawn(move || state), staging, t)
}

fn loaded(
    file: &Path,
    state: StateLoad,
    staging: recipes::Staging,
    t: std::time::Instant,
) -> Result<Loaded, Error> {
    let cfg = config::load(file)?;
    // What validation could not check (a mirror out of reach), on every
    // command: the config memo keeps them, so a no-op says them too.
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    tracing::debug!("config loaded in {:?}", t.elapsed());
    let graph = task_graph::build(&cfg, staging).map_err(|e| NotStarted(format!("{e:#}")))?;
    tracing::debug!(
        "graph of {} tasks built at {:?}",
        graph.tasks.len(),
        t.elapsed()
    );
    Ok(Loaded { cfg, graph, state })
}

/// Work done under the build lock before the build; gets a way to say things.
pub(crate) type BeforeBuild<'a> = dyn Fn(&dyn Fn(String)) -> Result<(), Error> + 'a;

/// How [`run_build`] reports, locks and starts.
pub(crate) struct Run<'a> {
    /// One JSON object per task per line on stdout.
    pub(crate) json: bool,
    /// Print every task, cached ones too.
    pub(crate) verbose: bool,
    /// Fail instead of waiting when another ddc holds the cache.
    pub(crate) no_wait: bool,
    /// Records loaded before the lock; loaded again if another build ran meanwhile.
    pub(crate) state: Option<StateLoad>,
    /// Runs under the lock before the build (rollback switches `current` there).
    pub(crate) before: &'a BeforeBuild<'a>,
}

/// Takes the lock, runs `run.before` under it, then the build, reporting as
/// asked. A dry run takes no lock and runs nothing before.
pub(crate) fn run_build(
    cfg: &Config,
    g: &Graph,
    opts: &BuildOptions,
    run: Run,
) -> Result<(), Error> {
    let reporter = Reporter::start(Mode::choose(run.json), run.verbose);
    let events = reporter.sender();
    let cancel = Arc::new(Cancel::default());
    let waited = Cell::new(false);
    let say = |s: String| {
        let _ = events.send(Event::Note(s));
    };
    let lock = if opts.dry_run {
        None
    } else {
        let say_wait = |s: String| {
            waited.set(true);
            say(s);
        };
        match Lock::acquire(&engine::cache_dirs(cfg), run.no_wait, &say_wait)
            .and_then(|l| (run.before)(&say).map(|()| l))
        {
            Ok(l) => Some(l),
            Err(e) => {
                drop(events);
                reporter.finish();
                return Err(e);
            }
        }
    };
    if let Err(e) = process::install_signal_handlers(&cancel) {
        drop(events);
        reporter.finish();
        return Err(e.into());
    }
    // Loaded before the lock was taken: load again if another build ran meanwhile.
    let state = match run.state {
        Some(s) if !waited.get() => s.join().ok().and_then(|s| s.ok()),
        _ => None,
    };
    let outcome = match engine::build(cfg, g, opts, events.clone(), &cancel, state) {
        Ok(report) => {
            let _ = events.send(Event::Summary(report.summary.clone()));
            let outcome = if cancel.is_cancelled() {
                say(
                    "interrupted: finished tasks are recorded; the next build goes on from there"
                        .into(),
                );
                Err(Error::Interrupted)
            } else if report.failed() {
                Err(Error::TasksFailed)
            } else {
                Ok(())
            };
            std::mem::forget(report);
            outcome
        }
        Err(e) => Err(e),
    };
    drop(events);
    reporter.finish();
    drop(lock);
    outcome
}

//! The command line: clap definitions, wired to the pieces that do the work.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::build::{self, BuildOptions};
use crate::cache::Lock;
use crate::config;
use crate::error::{Error, NotStarted};
use crate::graph;
use crate::process::{self, Cancel};
use crate::reporter::{Event, Mode, Reporter};

#[derive(Parser)]
#[command(
    name = "ddc",
    version,
    about = "Builds and keeps up to date everything a diskless Debian cluster boots from"
)]
pub struct Cli {
    /// The Ddcfile to use.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "Ddcfile.toml"
    )]
    pub file: PathBuf,
    /// Print every task, cached ones too.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build everything, or the named tasks (or task kinds) and what they need.
    Build {
        /// Task ids (packages:default, pxe:node01) or kinds (pxe).
        tasks: Vec<String>,
        /// Print what would run and why; run nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// One JSON object per task per line on stdout.
        #[arg(long)]
        json: bool,
        /// How many heavy tasks run at once (default: the core count).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Let independent tasks finish after a failure.
        #[arg(short, long)]
        keep_going: bool,
        /// Fail instead of waiting when another ddc holds the cache.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show the task graph and each task's state against the cache.
    Graph {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List each image's generations: age, size, which nodes boot them.
    Generations { image: Option<String> },
    /// Make an earlier generation current (the previous one by default) and
    /// rewrite the boot entries; nothing is rebuilt.
    Rollback {
        image: String,
        /// Its name, number or hash prefix (`ddc generations` lists them).
        generation: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete old generations (never the current one, a pinned one, or one a
    /// boot entry points at) and rewrite the exports without them.
    Gc {
        /// How many of the newest generations of each image to keep.
        #[arg(long, default_value_t = 2)]
        keep: usize,
        /// Show what would be deleted.
        #[arg(short = 'n', long)]
        dry_run: bool,
        #[arg(long)]
        no_wait: bool,
    },
    /// Forget the cache (all, or the named tasks and their dependents).
    Clean {
        tasks: Vec<String>,
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Dot,
    Json,
}

pub fn main(cli: Cli) -> Result<(), Error> {
    let t = std::time::Instant::now();
    // The records load while the Ddcfile parses: both take tens of ms at 10,000 nodes.
    let dirs = build::cache_dirs_at(&config::base_dir(&cli.file));
    let state = std::thread::spawn(move || crate::cache::State::load(&dirs));
    let cfg = config::load(&cli.file)?;
    tracing::debug!("config loaded in {:?}", t.elapsed());
    let g = graph::build(&cfg).map_err(|e| NotStarted(format!("{e:#}")))?;
    tracing::debug!(
        "graph of {} tasks built at {:?}",
        g.tasks.len(),
        t.elapsed()
    );
    match cli.command {
        Command::Build {
            tasks,
            dry_run,
            json,
            jobs,
            keep_going,
            no_wait,
        } => {
            let opts = BuildOptions {
                targets: tasks,
                dry_run,
                jobs: jobs.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2)
                }),
                keep_going,
                no_deps: false,
            };
            let outcome = run_build(
                &cfg,
                &g,
                &opts,
                json,
                cli.verbose,
                no_wait,
                Some(state),
                &|_| Ok(()),
            );
            // The graph and config of 10,000 nodes take milliseconds to free;
            // the process ends now and the kernel frees them at once.
            std::mem::forget(g);
            std::mem::forget(cfg);
            outcome
        }
        Command::Generations { image } => {
            print!("{}", crate::generations::report(&cfg, image.as_deref())?);
            Ok(())
        }
        Command::Rollback {
            image,
            generation,
            json,
            no_wait,
        } => {
            if !cfg.images.contains_key(&image) {
                return Err(NotStarted(format!(
                    "no image {image:?} in the Ddcfile; images: {}",
                    cfg.images.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
                .into());
            }
            // Only the boot entries of this image run; nothing is rebuilt.
            let mut targets: Vec<String> = cfg
                .nodes
                .iter()
                .filter(|n| n.image == image && n.pin.is_none())
                .map(|n| format!("pxe:{}", n.hostname))
                .collect();
            if cfg.server.default_entry.as_deref() == Some(image.as_str()) {
                targets.push("pxe-default".into());
            }
            let opts = BuildOptions {
                targets,
                dry_run: false,
                jobs: 1,
                keep_going: true,
                no_deps: true,
            };
            let nfs_root = cfg.paths.nfs_root.clone();
            let switch = move |say: &dyn Fn(String)| -> Result<(), Error> {
                let gens = crate::generations::list(&nfs_root, &image);
                let current = crate::generations::current(&nfs_root, &image);
                let target = crate::generations::rollback_target(&gens, current.as_deref(), generation.as_deref())
                    .cloned()
                    .ok_or_else(|| NotStarted(match &generation {
                        Some(spec) => format!("{image} has no generation {spec:?} (or it is ambiguous); `ddc generations {image}` lists them"),
                        None => format!(
                            "{image} has no generation before the current one ({}); `ddc generations {image}` lists them",
                            current.as_deref().unwrap_or("none")
                        ),
                    }))?;
                crate::generations::set_current(&nfs_root, &image, &target.name)?;
                say(format!(
                    "{image}: current is now {} (was {}); rewriting its boot entries",
                    target.name,
                    current.as_deref().unwrap_or("none")
                ));
                Ok(())
            };
            run_build(&cfg, &g, &opts, json, cli.verbose, no_wait, None, &switch)
        }
        Command::Gc {
            keep,
            dry_run,
            no_wait,
        } => {
            if dry_run {
                for line in crate::generations::gc(&cfg, keep, true)? {
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
            };
            let cfg2 = cfg.clone();
            let delete = move |_: &dyn Fn(String)| -> Result<(), Error> {
                for line in crate::generations::gc(&cfg2, keep, false)? {
                    println!("{line}");
                }
                Ok(())
            };
            run_build(&cfg, &g, &opts, false, cli.verbose, no_wait, None, &delete)
        }
        Command::Graph { format } => {
            let reporter = Reporter::start(Mode::Silent, false);
            let cancel = Arc::new(Cancel::default());
            let opts = BuildOptions {
                targets: vec![],
                dry_run: true,
                jobs: 1,
                keep_going: true,
                no_deps: false,
            };
            let state = state.join().ok().and_then(|s| s.ok());
            let report = build::build(&cfg, &g, &opts, reporter.sender(), &cancel, state)?;
            reporter.finish();
            let out = match format {
                Format::Text => crate::render::text(&g, &report.results),
                Format::Dot => crate::render::dot(&g, &report.results),
                Format::Json => crate::render::json(&g, &report.results),
            };
            print!("{out}");
            Ok(())
        }
        Command::Clean { tasks, no_wait } => {
            let say = |s: String| eprintln!("ddc: {s}");
            for line in crate::clean::clean(&cfg, &g, &tasks, no_wait, &say)? {
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// Work done under the build lock before the build; gets a way to say things.
type BeforeBuild<'a> = dyn Fn(&dyn Fn(String)) -> Result<(), Error> + 'a;

/// Takes the lock, runs `before` under it (rollback switches `current`
/// there), then the build, reporting as asked.
#[allow(clippy::too_many_arguments)]
fn run_build(
    cfg: &config::Config,
    g: &graph::Graph,
    opts: &BuildOptions,
    json: bool,
    verbose: bool,
    no_wait: bool,
    state: Option<std::thread::JoinHandle<Result<crate::cache::State>>>,
    before: &BeforeBuild,
) -> Result<(), Error> {
    let reporter = Reporter::start(Mode::choose(json), verbose);
    let events = reporter.sender();
    let cancel = Arc::new(Cancel::default());
    let waited = std::cell::Cell::new(false);
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
        match Lock::acquire(&build::cache_dirs(cfg), no_wait, &say_wait)
            .map_err(Error::from)
            .and_then(|l| before(&say).map(|_| l))
        {
            Ok(l) => Some(l),
            Err(e) => {
                drop(events);
                reporter.finish();
                return Err(e);
            }
        }
    };
    process::install_signal_handlers(&cancel)?;
    // Loaded before the lock was taken: load again if another build ran meanwhile.
    let state = match state {
        Some(s) if !waited.get() => s.join().ok().and_then(|s| s.ok()),
        _ => None,
    };
    let outcome = match build::build(cfg, g, opts, events.clone(), &cancel, state) {
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
        Err(e) => Err(e.into()),
    };
    drop(events);
    reporter.finish();
    drop(lock);
    outcome
}

//! The command line: clap definitions, wired to the pieces that do the work.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::build::{self, BuildOptions};
use crate::cache::Lock;
use crate::config;
use crate::exit;
use crate::graph;
use crate::process::{self, Cancel};
use crate::reporter::{Event, Mode, Reporter, TaskState};

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

pub fn main(cli: Cli) -> Result<i32> {
    let t = std::time::Instant::now();
    // The records load while the Ddcfile parses: both take tens of ms at 10,000 nodes.
    let dirs = build::cache_dirs_at(&config::base_dir(&cli.file));
    let state = std::thread::spawn(move || crate::cache::State::load(&dirs));
    let cfg = config::load(&cli.file)?;
    tracing::debug!("config loaded in {:?}", t.elapsed());
    let g = graph::build(&cfg).map_err(|e| build::NotStarted(format!("{e:#}")))?;
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
            let reporter = Reporter::start(Mode::choose(json), cli.verbose);
            let events = reporter.sender();
            let cancel = Arc::new(Cancel::default());
            let waited = std::cell::Cell::new(false);
            let lock = if dry_run {
                None
            } else {
                let say = |s: String| {
                    waited.set(true);
                    let _ = events.send(Event::Note(s));
                };
                match Lock::acquire(&build::cache_dirs(&cfg), no_wait, &say) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        drop(events);
                        reporter.finish();
                        return Err(e);
                    }
                }
            };
            process::install_signal_handlers(&cancel)?;
            let opts = BuildOptions {
                targets: tasks,
                dry_run,
                jobs: jobs.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2)
                }),
                keep_going,
            };
            // Loaded before the lock was taken: load again if another build ran meanwhile.
            let state = if waited.get() {
                None
            } else {
                state.join().ok().and_then(|s| s.ok())
            };
            let result = build::build(&cfg, &g, &opts, events.clone(), &cancel, state);
            let code = match &result {
                Ok(report) => {
                    let _ = events.send(Event::Summary(std::mem::take(&mut {
                        report.summary_clone()
                    })));
                    if cancel.is_cancelled() {
                        let _ = events.send(Event::Note("interrupted: finished tasks are recorded; the next build goes on from there".into()));
                        130
                    } else if report.failed() {
                        exit::FAILED
                    } else {
                        exit::SUCCESS
                    }
                }
                Err(_) => exit::FAILED,
            };
            drop(events);
            reporter.finish();
            drop(lock);
            result.map(|_| code)
        }
        Command::Graph { format } => {
            let reporter = Reporter::start(Mode::Silent, false);
            let cancel = Arc::new(Cancel::default());
            let opts = BuildOptions {
                targets: vec![],
                dry_run: true,
                jobs: 1,
                keep_going: true,
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
            Ok(exit::SUCCESS)
        }
        Command::Clean { tasks, no_wait } => {
            let say = |s: String| eprintln!("ddc: {s}");
            for line in crate::clean::clean(&cfg, &g, &tasks, no_wait, &say)? {
                println!("{line}");
            }
            Ok(exit::SUCCESS)
        }
    }
}

impl build::BuildReport {
    fn summary_clone(&self) -> crate::reporter::Summary {
        let s = &self.summary;
        crate::reporter::Summary {
            ran: s.ran,
            cached: s.cached,
            failed: s.failed,
            skipped: s.skipped,
            stale: s.stale,
            seconds: s.seconds,
            dry_run: s.dry_run,
        }
    }
}

#[allow(dead_code)]
fn _state_is_used(_: TaskState) {}

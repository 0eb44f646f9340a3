//! The build engine: decides which tasks are stale ([`key`]), checks the
//! host first ([`preflight`]), runs the stale ones through the scheduler,
//! records their outputs ([`record`]) and removes what no task produces any
//! more ([`sweep`]).
//!
//! It runs recipes without knowing what any of them does, and sends events
//! to the reporter without printing; it must not import the commands.

mod cutoff;
mod key;
mod log;
mod outcome;
mod preflight;
mod prepare;
mod readable;
mod record;
mod summary;
mod sweep;
mod values;

use std::io::Write;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::Result;

use crate::cache::{self, CacheDirs, Journal, Record, State};
use crate::config::Config;
use crate::error::Error;
use crate::fingerprint::{CacheKey, Input};
use crate::fsutil;
use crate::graph::Graph;
use crate::process::Cancel;
use crate::recipes::{DepResult, LateMemo, RunCtx, TaskSpec};
use crate::reporter::{Event, Finished, Summary, TaskState};
use crate::scheduler::{self, Skip};
use crate::template::Templates;

use log::{open_log, tail, LOG_MODE};
use outcome::Outcome;
use prepare::prepare;
use summary::{skip_reason, summarize};

pub(crate) use cutoff::{
    check as noop_check, last as noop_last, report as noop_report, Inputs as NoopInputs, Noop,
};
pub(crate) use key::StaleReason;
pub(crate) use outcome::{Reason, TaskResult};

pub(crate) struct BuildOptions {
    pub(crate) targets: Vec<String>,
    pub(crate) dry_run: bool,
    pub(crate) jobs: usize,
    pub(crate) keep_going: bool,
    /// Run only the named tasks: what they depend on is taken as recorded,
    /// never rebuilt (for `ddc rollback`, which must rebuild nothing).
    pub(crate) no_deps: bool,
    /// Re-hash every recorded tree (image layers, generations) instead of
    /// trusting its root's stat stamp.
    pub(crate) verify: bool,
    /// What the build started from (taken before it planned), when a build
    /// of everything that ends well should write the whole-build cutoff.
    pub(crate) cutoff: Option<cutoff::Inputs>,
}

pub(crate) struct BuildReport {
    pub(crate) results: Vec<Option<TaskResult>>,
    pub(crate) summary: Summary,
}

impl BuildReport {
    pub(crate) fn failed(&self) -> bool {
        self.summary.failed > 0 || self.summary.skipped > 0
    }
}

/// The warning every build gives while `server.allow_insecure_ports` is on.
fn insecure_note(cfg: &Config) -> Option<String> {
    cfg.server.allow_insecure_ports.then(|| format!(
        "warning: {}: server.allow_insecure_ports = true: any process on the cluster network can claim uid 0 and read every file of the exported images",
        cfg.file.display()
    ))
}

pub(crate) fn cache_dirs(cfg: &Config) -> CacheDirs {
    cache_dirs_at(&cfg.base_dir)
}

pub(crate) fn cache_dirs_at(base_dir: &Path) -> CacheDirs {
    CacheDirs::new(base_dir.join("cache"))
}

/// Declares ddc's own folders besides the cache (see `fsutil`): the TFTP
/// root, the nfs_root and the folder of each server config file. Nothing
/// below them is written or deleted through a link.
pub(crate) fn own_folders(cfg: &Config) {
    let p = &cfg.paths;
    fsutil::own(&p.tftp_root, fsutil::DIR_MODE);
    fsutil::own(&p.nfs_root, fsutil::DIR_MODE);
    for file in [&p.exports, &p.ganesha, &p.dhcpd, &p.dnsmasq, &p.rsyslog] {
        if let Some(dir) = file.parent() {
            fsutil::own(dir, fsutil::DIR_MODE);
        }
    }
}

/// Everything a build needs, shared by the worker threads.
struct Engine<'a> {
    cfg: &'a Config,
    graph: &'a Graph,
    dirs: &'a CacheDirs,
    state: &'a State,
    templates: &'a Templates,
    journal: Option<&'a Journal>,
    cancel: &'a Arc<Cancel>,
    events: Sender<Event>,
    /// Late inputs read once per build (an image's current generation).
    late: LateMemo,
    /// Finished events of cheap tasks, sent as one batch.
    batched: Mutex<Vec<Finished>>,
    results: Vec<OnceLock<TaskResult>>,
    new_records: Mutex<Vec<Record>>,
    dry_run: bool,
    verify: bool,
    /// Outputs a dry run could not read.
    unreadable: readable::Unreadable,
    /// With `no_deps`: the tasks that may run; the others use their records.
    targets: Option<Vec<bool>>,
    /// The values of scalar inputs: recorded, and shown as `old -> new`.
    values: values::Values<'a>,
    /// What the whole-build cutoff is written from, if it may be.
    collect: Option<cutoff::Collect>,
    /// The outputs' folders, each opened once.
    stats: crate::fsutil::Stats,
}

impl Engine<'_> {
    fn send(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn flush(&self) {
        let batch = std::mem::take(&mut *self.batched.lock().expect("batch"));
        if !batch.is_empty() {
            self.send(Event::Batch(batch));
        }
    }

    /// Records how task `i` ended and tells the reporter; returns whether it
    /// succeeded.
    fn conclude(&self, i: usize, o: Outcome) -> bool {
        let spec = &self.graph.tasks[i];
        let state = o.result.state;
        let (reason, reason_kind) = self.reason_text(spec, o.result.reason.as_ref());
        let f = Finished {
            task: spec.id.to_string(),
            state,
            reason,
            seconds: o.seconds,
            tail: o.log.as_deref().map(|l| tail(l, 15)).unwrap_or_default(),
            log: o.log,
            per_node: spec.recipe().per_node(),
            reason_kind,
        };
        let _ = self.results[i].set(o.result);
        if spec.recipe().heavy() {
            self.send(Event::Finished(f));
        } else {
            self.batched.lock().expect("batch").push(f);
        }
        state != TaskState::Failed
    }

    /// A reason as reported, and without its values when it shows some: an
    /// input's change shows `old -> new` (computed only for a reported task).
    fn reason_text(&self, spec: &TaskSpec, r: Option<&Reason>) -> (Option<String>, Option<String>) {
        let Some(r) = r else {
            return (None, None);
        };
        let text = r.to_string();
        let change = match r {
            Reason::Stale(StaleReason::InputChanged(name)) => self
                .state
                .records
                .get(spec.id.as_str())
                .and_then(|old| self.values.change(spec, old, name)),
            _ => None,
        };
        match change {
            Some(c) => (Some(format!("{text} {c}")), Some(text)),
            None => (Some(text), None),
        }
    }

    /// The late inputs and dependencies' output hashes of a task, or the
    /// dependency that has none yet (a dry run).
    fn inputs(&self, i: usize, spec: &TaskSpec) -> Result<Vec<Input>, StaleReason> {
        let mut inputs = spec.recipe().late_inputs(spec, self.cfg, &self.late);
        if let Some(c) = &self.collect {
            let _ = c.late[i].set(inputs.clone());
        }
        for &d in &spec.deps {
            let Some(h) = self.results[d].get().and_then(|r| r.out_hash) else {
                return Err(StaleReason::DependencyWouldRun(
                    self.graph.tasks[d].id.clone(),
                ));
            };
            inputs.push(Input {
                name: self.graph.dep_name[d].clone(),
                hash: h,
            });
        }
        Ok(inputs)
    }

    /// The finished dependencies of a task about to run, as its action sees
    /// them (only a task that runs needs them: not 10,000 cached entries).
    fn dep_results(&self, spec: &TaskSpec) -> Vec<DepResult> {
        spec.deps
            .iter()
            .filter_map(|&d| {
                let out_hash = self.results[d].get()?.out_hash?;
                let id = self.graph.tasks[d].id.clone();
                Some(DepResult { id, out_hash })
            })
            .collect()
    }

    /// Decides and runs task `i`; a panic in it fails it like an error.
    fn task(&self, i: usize) -> bool {
        self.guarded(i, || self.decide(i, true))
            .expect("a task decided to its end")
    }

    /// A heavy task decided on the scheduler's own thread when that is
    /// quick: its record holds by its outputs' stamps. None when it must
    /// run, when an output would have to be hashed, or in a dry run or with
    /// `--verify`: then a heavy thread decides it, in full.
    fn quick(&self, i: usize) -> Option<bool> {
        if self.verify || self.dry_run {
            return None;
        }
        self.guarded(i, || self.decide(i, false))
    }

    /// Concludes what `decide` said, a panic as a failed task.
    fn guarded(&self, i: usize, decide: impl FnOnce() -> Option<Outcome>) -> Option<bool> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decide)) {
            Ok(o) => o.map(|o| self.conclude(i, o)),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into());
                let reason = format!("internal error (please report it): {why}");
                Some(self.conclude(i, Outcome::said(TaskState::Failed, reason)))
            }
        }
    }

    /// How task `i` ends; None when it must run and `may_run` is false.
    fn decide(&self, i: usize, may_run: bool) -> Option<Outcome> {
        let spec = &self.graph.tasks[i];
        let start = Instant::now();
        if self.targets.as_ref().is_some_and(|t| !t[i]) {
            return Some(self.as_recorded(spec));
        }
        let inputs = match self.inputs(i, spec) {
            Ok(v) => v,
            Err(pending) => {
                let stale = Outcome::new(TaskState::Stale, Some(Reason::Stale(pending)), None);
                return Some(stale);
            }
        };
        let key = key::key_of(spec, &inputs);
        let judge = key::Judge {
            dirs: self.dirs,
            base_dir: &self.cfg.base_dir,
            files: &self.graph.files,
            unreadable: self.dry_run.then_some(&self.unreadable),
            deep: self.verify,
            stats: &self.stats,
            quick: !may_run,
        };
        let old = self.state.records.get(spec.id.as_str());
        let outcome = match judge.staleness(spec, old, key, &inputs) {
            None => {
                // A tree checked in depth whose root moved (a record of an
                // older ddc, or after --verify): record its root's new stamp.
                if let Some(r) = old.filter(|_| !self.dry_run).and_then(record::restamp) {
                    if let Some(j) = self.journal {
                        j.record(&r);
                    }
                    self.new_records.lock().expect("records").push(r);
                }
                Outcome::new(TaskState::Cached, None, old.map(|r| r.out_hash))
            }
            Some(why) if self.dry_run => {
                Outcome::new(TaskState::Stale, Some(Reason::Stale(why)), None)
            }
            Some(_) if !may_run => return None,
            Some(why) => self.run(spec, key, &inputs, &self.dep_results(spec), why),
        };
        Some(outcome.took(start))
    }

    /// Runs a stale task and journals its record.
    fn run(
        &self,
        spec: &TaskSpec,
        key: CacheKey,
        inputs: &[Input],
        deps: &[DepResult],
        why: StaleReason,
    ) -> Outcome {
        if spec.recipe().heavy() {
            let log = self.dirs.log(spec.id.as_str());
            self.send(Event::Started(spec.id.to_string(), Some(log)));
        }
        match self.produce(spec, key, inputs, deps) {
            Ok(rec) => {
                let hash = rec.out_hash;
                if let Some(j) = self.journal {
                    j.record(&rec);
                }
                self.new_records.lock().expect("records").push(rec);
                Outcome::new(TaskState::Ran, Some(Reason::Stale(why)), Some(hash))
            }
            Err(e) => {
                let log = self.dirs.log(spec.id.as_str());
                if let Ok(mut f) = fsutil::open_file(&log, fsutil::Open::Append, LOG_MODE) {
                    let _ = writeln!(f, "ddc: {} failed: {e:#}", spec.id);
                }
                let mut o = Outcome::said(TaskState::Failed, format!("{e:#}"));
                o.log = Some(log);
                o
            }
        }
    }

    /// A dependency outside a `no_deps` build: its record, as it is.
    fn as_recorded(&self, spec: &TaskSpec) -> Outcome {
        match self.state.records.get(spec.id.as_str()) {
            Some(old) => Outcome::new(
                TaskState::Cached,
                Some(Reason::Said("as recorded (not rebuilt)".into())),
                Some(old.out_hash),
            ),
            None => Outcome::said(TaskState::Failed, "never built: run ddc build first"),
        }
    }

    /// Runs the recipe's action and records what it produced.
    fn produce(
        &self,
        spec: &TaskSpec,
        key: CacheKey,
        inputs: &[Input],
        deps: &[DepResult],
    ) -> Result<Record> {
        let start = Instant::now();
        let heavy = spec.recipe().heavy();
        let mut log = if heavy {
            open_log(self.dirs, spec.id.as_str())?
        } else {
            tempfile::tempfile()?
        };
        if heavy {
            writeln!(log, "ddc: {} (key {})", spec.id, key.short())?;
        }
        let mut ctx = RunCtx {
            cfg: self.cfg,
            templates: self.templates,
            cache_dir: &self.dirs.root,
            deps,
            log: &mut log,
            log_path: self.dirs.log(spec.id.as_str()),
            cancel: self.cancel,
        };
        let declared = spec.recipe().outputs(spec, self.cfg);
        // Only paths no record names need an intent: a kill leaves the others
        // to the old record (its outputs, or what it had yet to remove).
        let old = self.state.records.get(spec.id.as_str());
        let named = |p: &&std::path::PathBuf| {
            old.is_some_and(|r| r.outputs.iter().any(|o| &o.path == *p) || r.replaced.contains(p))
        };
        let fresh: Vec<std::path::PathBuf> =
            declared.iter().filter(|p| !named(p)).cloned().collect();
        if let (Some(j), false) = (self.journal, fresh.is_empty()) {
            j.intent(spec.id.as_str(), &fresh)?;
        }
        let produced = spec.recipe().run(spec, &mut ctx)?;
        if let Some(p) = produced
            .files
            .iter()
            .find(|p| !declared.is_empty() && !declared.contains(p))
        {
            anyhow::bail!(
                "internal error: {} wrote {}, which it did not declare",
                spec.id,
                p.display()
            );
        }
        for w in &produced.warnings {
            self.send(Event::Note(format!("warning: {}: {w}", spec.id)));
        }
        let said = produced.notes.iter().cloned().map(Event::Note);
        said.chain(produced.applied.clone().map(Event::Applied))
            .for_each(|e| self.send(e));
        let seconds = start.elapsed().as_secs_f64();
        let mut rec = record::record(self.dirs, spec, key, inputs, deps, &produced, seconds)?;
        let names = spec.inputs.iter().chain(inputs).map(|i| i.name.as_ref());
        rec.input_values = self.values.encode(spec, names);
        if !spec.recipe().keeps_outputs() {
            let id = spec.id.as_str();
            let orphans = self.state.orphans.iter().filter(|(t, _)| t == id);
            let old = self.state.records.get(id);
            rec.replaced = record::replaced(old, orphans.map(|(_, p)| p), &rec);
        }
        if heavy {
            writeln!(log, "ddc: {} done in {seconds:.1}s", spec.id)?;
        }
        Ok(rec)
    }
}

/// Runs the wanted tasks through the scheduler.
fn execute(engine: &Engine, opts: &BuildOptions, wanted: &[bool]) {
    let graph = engine.graph;
    let deps = graph.schedule_deps(wanted);
    let heavy: Vec<bool> = graph.tasks.iter().map(|t| t.recipe().heavy()).collect();
    let mut skips: Vec<(usize, Skip)> = Vec::new();
    scheduler::execute(
        &scheduler::Tasks {
            deps: &deps,
            wanted,
            heavy: &heavy,
        },
        &scheduler::Options {
            jobs: opts.jobs,
            keep_going: opts.keep_going,
        },
        &|| engine.cancel.is_cancelled(),
        &|i| engine.task(i),
        &|i| engine.quick(i),
        &|| engine.flush(),
        &mut |i, s| skips.push((i, s)),
    );
    for (i, s) in &skips {
        engine.conclude(*i, Outcome::said(TaskState::Skipped, skip_reason(graph, s)));
    }
    engine.flush();
}

/// Runs (or, with `dry_run`, evaluates) a build.
pub(crate) fn build(
    cfg: &Config,
    graph: &Graph,
    opts: &BuildOptions,
    events: Sender<Event>,
    cancel: &Arc<Cancel>,
    state: Option<State>,
) -> Result<BuildReport, Error> {
    let start = Instant::now();
    let dirs = cache_dirs(cfg);
    own_folders(cfg);
    let wanted = graph.closure(&opts.targets)?;
    let mut state = prepare(cfg, graph, opts, &events, state, &wanted)?;
    tracing::debug!(
        "{} records ready at {:?}",
        state.records.len(),
        start.elapsed()
    );
    let templates = Templates::load(&graph.files)?;
    let journal = if opts.dry_run {
        None
    } else {
        Some(Journal::open(&dirs)?)
    };
    let _ = events.send(Event::Planned(wanted.iter().filter(|w| **w).count()));
    let targets = if opts.no_deps {
        let mut t = vec![false; graph.tasks.len()];
        for i in graph.select(&opts.targets)? {
            t[i] = true;
        }
        Some(t)
    } else {
        None
    };
    let engine = Engine {
        cfg,
        graph,
        dirs: &dirs,
        state: &state,
        templates: &templates,
        journal: journal.as_ref(),
        cancel,
        events: events.clone(),
        late: LateMemo::new(cfg),
        batched: Mutex::new(Vec::with_capacity(graph.tasks.len())),
        results: (0..graph.tasks.len()).map(|_| OnceLock::new()).collect(),
        new_records: Mutex::new(Vec::new()),
        dry_run: opts.dry_run,
        verify: opts.verify,
        unreadable: Default::default(),
        targets,
        values: values::Values::new(cfg),
        collect: cutoff::Collect::for_build(opts, graph),
        stats: Default::default(),
    };
    execute(&engine, opts, &wanted);
    tracing::debug!("tasks done at {:?}", start.elapsed());
    let results: Vec<Option<TaskResult>> =
        engine.results.into_iter().map(|r| r.into_inner()).collect();
    let new_records = engine.new_records.into_inner().expect("records");
    let collect = engine.collect;
    if let Some(n) = engine.unreadable.note() {
        let _ = events.send(Event::Note(n));
    }
    let sweep = sweep::Sweep::plan(cfg, graph, &state, &new_records);
    let notes = if opts.dry_run {
        sweep.preview(&cfg.base_dir)
    } else {
        let added = new_records.len() + sweep.lines();
        let notes = sweep.apply(
            &cfg.base_dir,
            &dirs,
            &mut state,
            journal.as_ref(),
            new_records,
        )?;
        // Everything this build did is in the journal before any snapshot.
        if let Some(j) = journal {
            j.close()?;
        }
        // Orphans live only in the journal: fold it only when none is left.
        if state.should_compact(added) && state.orphans.is_empty() {
            state.compact(&dirs)?;
        }
        cache::end_build(&dirs)?;
        if let Some(c) = collect.filter(|_| !cancel.is_cancelled()) {
            c.remember(cfg, graph, &state, &dirs, &results);
        }
        notes
    };
    for n in notes {
        let _ = events.send(Event::Note(n));
    }
    tracing::debug!("build done");
    let summary = summarize(&results, opts.dry_run, start);
    // 10,000 records take milliseconds to free: the process ends soon and
    // the kernel frees them at once.
    std::mem::forget(state);
    Ok(BuildReport { results, summary })
}

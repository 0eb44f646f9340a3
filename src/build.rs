//! `ddc build`: decides which tasks are stale, runs them through the
//! scheduler, fingerprints and records their outputs, and removes what
//! vanished tasks left behind.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cache::{self, CacheDirs, Journal, OutputRecord, Record, State};
use crate::config::Config;
use crate::error::NotStarted;
use crate::fingerprint::{
    cache_key, cache_key_of, hash_output, scan_tree, Fingerprint, Input, StatStamp,
};
use crate::fsutil::{remove_path, shown};
use crate::graph::Graph;
use crate::process::Cancel;
use crate::reporter::{Event, Finished, Summary, TaskState};
use crate::scheduler::{self, Skip};
use crate::task::{DepResult, Kind, RunCtx, TaskSpec};
use crate::template::Templates;

pub struct BuildOptions {
    pub targets: Vec<String>,
    pub dry_run: bool,
    pub jobs: usize,
    pub keep_going: bool,
    /// Run only the named tasks: what they depend on is taken as recorded,
    /// never rebuilt (for `ddc rollback`, which must rebuild nothing).
    pub no_deps: bool,
}

/// How a task ended in this run.
#[derive(Clone, Debug)]
pub struct TaskResult {
    pub state: TaskState,
    pub reason: Option<String>,
    /// None when the task did not produce (failed, skipped, or would run).
    pub out_hash: Option<Fingerprint>,
}

pub struct BuildReport {
    pub results: Vec<Option<TaskResult>>,
    pub summary: Summary,
}

impl BuildReport {
    pub fn failed(&self) -> bool {
        self.summary.failed > 0 || self.summary.skipped > 0
    }
}

/// Everything a build needs, shared by the worker threads.
struct Engine<'a> {
    cfg: &'a Config,
    graph: &'a Graph,
    dirs: &'a CacheDirs,
    state: &'a State,
    templates: Option<&'a Templates>,
    journal: Option<&'a Journal>,
    cancel: &'a Arc<Cancel>,
    events: Sender<Event>,
    /// Late inputs read once per build (an image's current generation).
    late: crate::tasks::LateMemo,
    /// Finished events of cheap tasks, sent as one batch.
    batched: Mutex<Vec<Finished>>,
    results: Vec<OnceLock<TaskResult>>,
    new_records: Mutex<Vec<Record>>,
    dry_run: bool,
    /// With `no_deps`: the tasks that may run; the others use their records.
    targets: Option<Vec<bool>>,
}

/// Line-per-task log: heavy tasks write to their file as they go; cheap
/// tasks only get a file if they fail.
pub fn open_log(dirs: &CacheDirs, task: &str) -> Result<File> {
    std::fs::create_dir_all(dirs.logs())?;
    let p = dirs.log(task);
    File::create(&p).with_context(|| format!("cannot create {}", p.display()))
}

fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    let lines: Vec<String> = std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

impl Engine<'_> {
    fn send(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn finished(&self, heavy: bool, f: Finished) {
        if heavy {
            self.send(Event::Finished(f));
        } else {
            self.batched.lock().expect("batch").push(f);
        }
    }

    fn flush(&self) {
        let batch = std::mem::take(&mut *self.batched.lock().expect("batch"));
        if !batch.is_empty() {
            self.send(Event::Batch(batch));
        }
    }

    /// Records how task `i` ended and tells the reporter; returns whether it
    /// succeeded. With a log, the failure message carries its last lines.
    fn conclude(
        &self,
        i: usize,
        state: TaskState,
        reason: Option<String>,
        out_hash: Option<Fingerprint>,
        seconds: f64,
        log: Option<PathBuf>,
    ) -> bool {
        let spec = &self.graph.tasks[i];
        let _ = self.results[i].set(TaskResult {
            state,
            reason: reason.clone(),
            out_hash,
        });
        self.finished(
            spec.kind.heavy(),
            Finished {
                task: spec.id.to_string(),
                state,
                reason,
                seconds,
                tail: log.as_deref().map(|l| tail(l, 15)).unwrap_or_default(),
                log,
            },
        );
        state != TaskState::Failed
    }

    fn rel(&self, p: &Path) -> String {
        shown(p, &self.cfg.base_dir)
    }

    /// The key inputs of a task: its static inputs and its dependencies'
    /// output hashes. None if a dependency has no output hash yet (dry run).
    fn inputs(&self, spec: &TaskSpec) -> (Vec<Input>, Vec<DepResult>, Option<String>) {
        let mut inputs = crate::tasks::late_inputs(spec, self.cfg, &self.late);
        let mut deps = Vec::with_capacity(spec.deps.len());
        let mut pending = None;
        for &d in &spec.deps {
            let id = &self.graph.tasks[d].id;
            match self.results[d].get().and_then(|r| r.out_hash) {
                Some(h) => {
                    inputs.push(Input {
                        name: self.graph.dep_name[d].clone(),
                        hash: h,
                    });
                    deps.push(DepResult {
                        id: id.clone(),
                        out_hash: h,
                    });
                }
                None => {
                    pending.get_or_insert_with(|| format!("dependency would run: {id}"));
                }
            }
        }
        (inputs, deps, pending)
    }

    /// Why a task must run, or None if its record still holds.
    fn staleness(&self, spec: &TaskSpec, key: Fingerprint, dep_inputs: &[Input]) -> Option<String> {
        let Some(old) = self.state.records.get(spec.id.as_str()) else {
            return Some("not built yet, or cleaned".into());
        };
        if old.key != key {
            let before: HashMap<&str, u64> = old.inputs().collect();
            for i in spec.inputs.iter().chain(dep_inputs) {
                match before.get(i.name.as_ref()) {
                    None => return Some(format!("new input: {}", i.name)),
                    Some(h) if *h != i.hash.prefix64() => {
                        return Some(if let Some(dep) = i.name.strip_prefix("dep:") {
                            format!("dependency rebuilt: {dep}")
                        } else if let Some(f) = i.name.strip_prefix("file:") {
                            format!("file changed: {}", self.rel(&self.cfg.tasks_dir.join(f)))
                        } else {
                            format!("input changed: {}", i.name)
                        })
                    }
                    _ => {}
                }
            }
            let now: HashSet<&str> = spec
                .inputs
                .iter()
                .chain(dep_inputs)
                .map(|i| i.name.as_ref())
                .collect();
            if let Some((gone, _)) = old.inputs().find(|(n, _)| !now.contains(n)) {
                return Some(format!("input removed: {gone}"));
            }
            return Some(format!("recipe changed: {}", spec.kind.name()));
        }
        for (n, o) in old.outputs.iter().enumerate() {
            if let Some(why) = self.output_changed(spec, n, o) {
                return Some(why);
            }
        }
        None
    }

    fn output_changed(&self, spec: &TaskSpec, n: usize, o: &OutputRecord) -> Option<String> {
        let meta = match std::fs::symlink_metadata(&o.path) {
            Ok(m) => m,
            Err(_) => return Some(format!("output missing: {}", self.rel(&o.path))),
        };
        if o.dir {
            if !meta.is_dir() {
                return Some(format!("output missing: {}", self.rel(&o.path)));
            }
            let tree_path = self.dirs.tree(spec.id.as_str(), n);
            let prev = cache::load_tree(&tree_path);
            match scan_tree(&o.path, prev.as_ref()) {
                Ok((t, _)) if t.fingerprint() == o.hash => None,
                _ => Some(format!("output changed: {}", self.rel(&o.path))),
            }
        } else if StatStamp::of(&meta) == o.stamp {
            None
        } else {
            match hash_output(&o.path) {
                Ok(h) if h == o.hash => None,
                _ => Some(format!("output changed: {}", self.rel(&o.path))),
            }
        }
    }

    /// Decides and, unless this is a dry run, runs task `i`. Returns success.
    /// Decides and runs task `i`; a panic in it fails it like an error.
    fn task(&self, i: usize) -> bool {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.task_inner(i))) {
            Ok(ok) => ok,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into());
                let reason = format!("internal error (please report it): {why}");
                self.conclude(i, TaskState::Failed, Some(reason), None, 0.0, None)
            }
        }
    }

    fn task_inner(&self, i: usize) -> bool {
        let spec = &self.graph.tasks[i];
        let start = Instant::now();
        if self.targets.as_ref().is_some_and(|t| !t[i]) {
            return self.as_recorded(i, spec);
        }
        let (inputs, deps, pending) = self.inputs(spec);
        let (state, reason, out_hash) = if let Some(p) = pending {
            (TaskState::Stale, Some(p), None)
        } else {
            let key = cache_key_of(
                spec.kind.name(),
                spec.kind.recipe_version(),
                spec.inputs.iter().chain(&inputs),
            );
            match self.staleness(spec, key, &inputs) {
                None => {
                    let old = &self.state.records[spec.id.as_str()];
                    (TaskState::Cached, None, Some(old.out_hash))
                }
                Some(why) if self.dry_run => (TaskState::Stale, Some(why), None),
                Some(why) => {
                    if spec.kind.heavy() {
                        self.send(Event::Started(spec.id.to_string()));
                    }
                    match self.run(spec, key, inputs, &deps) {
                        Ok(rec) => {
                            let hash = rec.out_hash;
                            if let Some(j) = self.journal {
                                j.record(&rec);
                            }
                            self.new_records.lock().expect("records").push(rec);
                            (TaskState::Ran, Some(why), Some(hash))
                        }
                        Err(e) => {
                            let log = self.dirs.log(spec.id.as_str());
                            let _ = File::options()
                                .append(true)
                                .create(true)
                                .open(&log)
                                .and_then(|mut f| writeln!(f, "ddc: {} failed: {e:#}", spec.id));
                            let secs = start.elapsed().as_secs_f64();
                            let why = Some(format!("{e:#}"));
                            return self.conclude(i, TaskState::Failed, why, None, secs, Some(log));
                        }
                    }
                }
            }
        };
        self.conclude(
            i,
            state,
            reason,
            out_hash,
            start.elapsed().as_secs_f64(),
            None,
        )
    }

    /// A dependency outside a `no_deps` build: its record, as it is.
    fn as_recorded(&self, i: usize, spec: &TaskSpec) -> bool {
        match self.state.records.get(spec.id.as_str()) {
            Some(old) => {
                let why = Some("as recorded (not rebuilt)".to_string());
                self.conclude(i, TaskState::Cached, why, Some(old.out_hash), 0.0, None)
            }
            None => {
                let why = Some("never built: run ddc build first".to_string());
                self.conclude(i, TaskState::Failed, why, None, 0.0, None)
            }
        }
    }

    fn run(
        &self,
        spec: &TaskSpec,
        key: Fingerprint,
        inputs: Vec<Input>,
        deps: &[DepResult],
    ) -> Result<Record> {
        let start = Instant::now();
        let heavy = spec.kind.heavy();
        // Cheap tasks write their log only when they fail (10,000 of them).
        let mut log = if heavy {
            open_log(self.dirs, spec.id.as_str())?
        } else {
            tempfile::tempfile()?
        };
        if heavy {
            writeln!(log, "ddc: {} (key {})", spec.id, key.short())?;
        }
        let templates = self.templates.context("internal error: no templates")?;
        let mut ctx = RunCtx {
            cfg: self.cfg,
            templates,
            cache_dir: &self.dirs.root,
            deps,
            log: &mut log,
            log_path: self.dirs.log(spec.id.as_str()),
            cancel: self.cancel,
        };
        let produced = crate::tasks::run(spec, &mut ctx)?;
        for w in &produced.warnings {
            self.send(Event::Note(format!("warning: {}: {w}", spec.id)));
        }
        let mut outputs = Vec::new();
        let mut h = blake3::Hasher::new();
        for p in &produced.files {
            let m = std::fs::symlink_metadata(p)
                .with_context(|| format!("{} did not write {}", spec.id, p.display()))?;
            let hash = hash_output(p)?;
            h.update(p.as_os_str().as_encoded_bytes());
            h.update(&hash.0);
            outputs.push(OutputRecord {
                path: p.clone(),
                hash,
                stamp: StatStamp::of(&m),
                dir: false,
            });
        }
        for p in &produced.dirs {
            let n = outputs.len();
            let tree_path = self.dirs.tree(spec.id.as_str(), n);
            let (tree, _) = scan_tree(p, None)?;
            cache::save_tree(&tree_path, &tree)?;
            let hash = tree.fingerprint();
            h.update(p.as_os_str().as_encoded_bytes());
            h.update(&hash.0);
            outputs.push(OutputRecord {
                path: p.clone(),
                hash,
                stamp: StatStamp::default(),
                dir: true,
            });
        }
        h.update(serde_json::to_string(&produced.meta)?.as_bytes());
        if produced.layered {
            for d in deps {
                h.update(&d.out_hash.0);
            }
        }
        if heavy {
            writeln!(
                log,
                "ddc: {} done in {:.1}s",
                spec.id,
                start.elapsed().as_secs_f64()
            )?;
        }
        Ok(Record {
            task: spec.id.to_string(),
            key,
            input_names: spec
                .inputs
                .iter()
                .chain(&inputs)
                .map(|i| i.name.as_ref())
                .collect::<Vec<_>>()
                .join("\n"),
            input_hashes: spec
                .inputs
                .iter()
                .chain(&inputs)
                .map(|i| i.hash.prefix64())
                .collect(),
            outputs,
            out_hash: Fingerprint(*h.finalize().as_bytes()),
            meta: Arc::new(produced.meta),
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// Host tools and privileges that the stale image tasks need, checked before
/// anything runs. Returns the problems found.
fn preflight(cfg: &Config, graph: &Graph, state: &State, wanted: &[bool]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut need_root = Vec::new();
    let mut tools: Vec<(&str, &str, String)> = Vec::new();
    // Predicts staleness from the recorded dependency hashes: a task whose
    // key would differ even so, or that has no record, will run.
    for (i, spec) in graph.tasks.iter().enumerate() {
        if !wanted[i]
            || !matches!(
                spec.action,
                crate::task::Action::ImageStep { .. } | crate::task::Action::Publish { .. }
            )
        {
            continue;
        }
        let mut inputs = spec.inputs.clone();
        let mut known = true;
        for &d in &spec.deps {
            let id = &graph.tasks[d].id;
            match state.records.get(id.as_str()) {
                Some(r) => inputs.push(Input {
                    name: format!("dep:{id}").into(),
                    hash: r.out_hash,
                }),
                None => known = false,
            }
        }
        let key = cache_key(spec.kind.name(), spec.kind.recipe_version(), &inputs);
        let fresh = known
            && state
                .records
                .get(spec.id.as_str())
                .is_some_and(|r| r.key == key);
        if fresh {
            continue;
        }
        if let Some(s) = &spec.script {
            if s.needs_root {
                need_root.push(spec.id.to_string());
            }
            if s.chroot {
                tools.push(("chroot", "coreutils", spec.id.to_string()));
            }
        }
        match &spec.action {
            crate::task::Action::ImageStep {
                image,
                step: crate::task::Step::Debootstrap,
            } => {
                let b = cfg.images[image].bootstrapper.as_str();
                tools.push((b, b, spec.id.to_string()));
            }
            crate::task::Action::Publish { .. } => {
                tools.push(("rsync", "rsync", spec.id.to_string()))
            }
            _ => {}
        }
    }
    if !need_root.is_empty() && !nix::unistd::geteuid().is_root() {
        problems.push(format!(
            "{} must run as root (they build a root file system in a chroot); run ddc build as root",
            need_root.join(", ")
        ));
    }
    let mut seen = HashSet::new();
    for (tool, package, task) in tools {
        if seen.insert(tool) && which(tool).is_none() {
            problems.push(format!(
                "{task} needs the program {tool}, which is not installed: apt-get install {package}"
            ));
        }
    }
    problems
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

pub fn cache_dirs(cfg: &Config) -> CacheDirs {
    cache_dirs_at(&cfg.base_dir)
}

pub fn cache_dirs_at(base_dir: &Path) -> CacheDirs {
    CacheDirs::new(base_dir.join("cache"))
}

/// Runs (or, with `dry_run`, evaluates) a build.
pub fn build(
    cfg: &Config,
    graph: &Graph,
    opts: &BuildOptions,
    events: Sender<Event>,
    cancel: &Arc<Cancel>,
    state: Option<State>,
) -> Result<BuildReport> {
    let start = Instant::now();
    let dirs = cache_dirs(cfg);
    let wanted = graph.closure(&opts.targets)?;
    if cfg.server.allow_insecure_ports {
        let _ = events.send(Event::Note(format!(
            "warning: {}: server.allow_insecure_ports = true: any process on the cluster network can claim uid 0 and read every file of the exported images",
            cfg.file.display()
        )));
    }
    if !opts.dry_run {
        for m in crate::chroot::unmount_leftovers(&dirs.root) {
            let _ = events.send(Event::Note(format!(
                "unmounted {} left mounted by an earlier, interrupted run",
                m.display()
            )));
        }
    }
    let mut state = match state {
        Some(s) if s.is_current(&dirs) => s,
        _ => State::load(&dirs)?,
    };
    tracing::debug!(
        "{} records loaded in {:?}",
        state.records.len(),
        start.elapsed()
    );
    if !opts.dry_run {
        crate::cache::claim(&dirs, &cfg.file)?;
        let problems = if opts.no_deps {
            Vec::new()
        } else {
            preflight(cfg, graph, &state, &wanted)
        };
        if !problems.is_empty() {
            return Err(NotStarted(problems.join("\n")).into());
        }
    }
    let templates = Templates::load(&cfg.tasks_dir)?;
    let mut journal = if opts.dry_run {
        None
    } else {
        Some(Journal::open(&dirs)?)
    };
    let n = wanted.iter().filter(|w| **w).count();
    let _ = events.send(Event::Planned(n));
    let engine = Engine {
        cfg,
        graph,
        dirs: &dirs,
        state: &state,
        templates: Some(&templates),
        journal: journal.as_ref(),
        cancel,
        events: events.clone(),
        batched: Mutex::new(Vec::new()),
        late: crate::tasks::LateMemo::new(cfg),
        results: (0..graph.tasks.len()).map(|_| OnceLock::new()).collect(),
        new_records: Mutex::new(Vec::new()),
        dry_run: opts.dry_run,
        targets: if opts.no_deps {
            let mut t = vec![false; graph.tasks.len()];
            for i in graph.select(&opts.targets)? {
                t[i] = true;
            }
            Some(t)
        } else {
            None
        },
    };
    let deps: Vec<Vec<usize>> = graph.tasks.iter().map(|t| t.deps.clone()).collect();
    let heavy: Vec<bool> = graph.tasks.iter().map(|t| t.kind.heavy()).collect();
    let mut skips: Vec<(usize, Skip)> = Vec::new();
    scheduler::execute(
        &deps,
        &wanted,
        &heavy,
        &scheduler::Options {
            jobs: opts.jobs,
            keep_going: opts.keep_going,
        },
        &|| cancel.is_cancelled(),
        &|i| engine.task(i),
        &|| engine.flush(),
        &mut |i, s| skips.push((i, s)),
    );
    for (i, s) in &skips {
        let reason = match s {
            Skip::DependencyFailed(d) => format!("dependency failed: {}", graph.tasks[*d].id),
            Skip::Stopped => "not started: an earlier task failed (use -k to go on)".to_string(),
            Skip::Cancelled => "not started: the build was interrupted".to_string(),
        };
        engine.conclude(*i, TaskState::Skipped, Some(reason), None, 0.0, None);
    }
    engine.flush();
    tracing::debug!("tasks done at {:?}", start.elapsed());
    let results: Vec<Option<TaskResult>> =
        engine.results.into_iter().map(|r| r.into_inner()).collect();
    let new_records = engine.new_records.into_inner().expect("records");

    // Outputs that are no longer produced: those of vanished tasks, and old
    // outputs of rerun tasks (a node whose MAC changed), unless a current task
    // claims the same path.
    let current: HashSet<&str> = graph.tasks.iter().map(|t| t.id.as_str()).collect();
    let mut claimed: HashSet<PathBuf> = HashSet::new();
    let rerun: HashMap<&str, &Record> = new_records.iter().map(|r| (r.task.as_str(), r)).collect();
    for t in &graph.tasks {
        let rec = rerun
            .get(t.id.as_str())
            .copied()
            .or_else(|| state.records.get(t.id.as_str()));
        if let Some(r) = rec {
            claimed.extend(r.outputs.iter().map(|o| o.path.clone()));
        }
    }
    let mut removals: Vec<(String, PathBuf)> = Vec::new();
    let mut forget: Vec<String> = Vec::new();
    let mut kept: Vec<PathBuf> = Vec::new();
    for (task, rec) in &state.records {
        let vanished = !current.contains(task.as_str());
        let replaced = rerun.contains_key(task.as_str());
        if !vanished && !replaced {
            continue;
        }
        let serves = task.starts_with(&format!("{}:", Kind::Publish.name()));
        for o in &rec.outputs {
            if claimed.contains(&o.path) {
                continue;
            }
            if serves {
                // Published generations stay: running nodes boot from them.
                if vanished && o.dir {
                    kept.push(o.path.clone());
                }
            } else {
                removals.push((task.clone(), o.path.clone()));
            }
        }
        if vanished {
            forget.push(task.clone());
        }
    }
    removals.sort();
    let send_note = |s: String| {
        let _ = events.send(Event::Note(s));
    };
    if opts.dry_run {
        for (task, p) in &removals {
            send_note(format!(
                "would remove {} (left by {task})",
                shown(p, &cfg.base_dir)
            ));
        }
    } else {
        for (task, p) in &removals {
            match remove_path(p) {
                Ok(true) if forget.contains(task) => send_note(format!(
                    "removed {} ({task} is no longer in the Ddcfile)",
                    shown(p, &cfg.base_dir)
                )),
                Ok(_) => {}
                Err(e) => send_note(format!("could not remove {}: {e:#}", p.display())),
            }
        }
        for p in &kept {
            send_note(format!(
                "kept {}: its image left the Ddcfile, but nodes may still run on it; delete it when none does",
                p.display()
            ));
        }
        let added = new_records.len() + forget.len();
        for t in &forget {
            if let Some(j) = &journal {
                j.forget(t);
            }
            state.records.remove(t);
            for n in 0..4 {
                let _ = std::fs::remove_file(dirs.tree(t, n));
            }
        }
        for r in new_records {
            state.records.insert(r.task.clone(), r);
        }
        // Everything this build did is in the journal before any snapshot.
        if let Some(j) = journal.take() {
            j.close()?;
        }
        if state.should_compact(added) {
            state.compact(&dirs)?;
        }
    }
    let mut summary = Summary {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    for r in results.iter().flatten() {
        match r.state {
            TaskState::Ran => summary.ran += 1,
            TaskState::Cached => summary.cached += 1,
            TaskState::Failed => summary.failed += 1,
            TaskState::Skipped => summary.skipped += 1,
            TaskState::Stale => summary.stale += 1,
        }
    }
    summary.seconds = start.elapsed().as_secs_f64();
    // 10,000 records take milliseconds to free: the process ends soon and
    // the kernel frees them at once.
    std::mem::forget(state);
    Ok(BuildReport { results, summary })
}

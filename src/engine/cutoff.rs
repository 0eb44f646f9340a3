//! The whole-build early cutoff, as ninja's no-op: when every input of the
//! last successful full build is as it was and every output as it recorded
//! it, `ddc build` is a no-op without planning the per-node tasks, without
//! a key and without reading the records.
//!
//! The last full build that ended with every task done writes
//! `cache/state/noop.bin`: what its inputs were ([`Inputs`]: this binary,
//! the Ddcfile, the staging mode, the bytes of the config's sources, the
//! whole tasks folder), a digest of its cluster tasks' plan and of every
//! task's late inputs, the state files' stamps, and each task with its
//! outputs' stamps. The next `ddc build` (all tasks, no `--verify`) checks
//! all of that, planning the cluster's few tasks again (they read the host
//! while planned: tool versions, a files tree, the master's configs) and
//! computing every late input (generations, the bootloader's host files).
//! Anything different, missing or unreadable: the full build, which first
//! removes the file. So the cutoff says "no-op" only where the full build
//! would find every key and every output's stamp as recorded.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cache::{CacheDirs, Record, State};
use crate::config::Config;
use crate::fingerprint::{Input, StatStamp};
use crate::fsutil;
use crate::graph::{self, Graph, LateDigest};
use crate::recipes::{Kind, Staging, Subject};
use crate::reporter::{Event, Finished, Summary, TaskState};

const FILE: &str = "noop.bin";
const VERSION: u32 = 1;
/// Readable like the other state files, written only by root's builds.
const FILE_MODE: u32 = 0o644;

/// What a build started from, taken before it plans: the next build must
/// start from the same.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub(crate) struct Inputs {
    binary: String,
    ddcfile: PathBuf,
    staging: String,
    /// The files the config was read from, and the fingerprint of their
    /// bytes (the config memo's test).
    source_files: Vec<PathBuf>,
    sources: [u8; 32],
    /// Everything in `tasks_dir`.
    tasks: [u8; 32],
}

impl Inputs {
    pub(crate) fn of(cfg: &Config, staging: Staging) -> Inputs {
        Inputs {
            binary: crate::config::binary_id(),
            ddcfile: cfg.file.clone(),
            staging: format!("{staging:?}"),
            source_files: cfg.sources.clone(),
            sources: crate::config::sources_fingerprint(&cfg.sources),
            tasks: crate::tasks_dir::digest(cfg.tasks_dir.as_deref()).0,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Noop {
    version: u32,
    inputs: Inputs,
    /// [`graph::plan_digest`] of the graph the build ran.
    plan: [u8; 32],
    /// The late inputs every task was judged with.
    late: [u8; 32],
    /// The state files' stamps after the build: records changed since
    /// (`ddc clean`, another build) mean a full build.
    state: Vec<Option<StatStamp>>,
    /// The tasks in graph order, NUL-separated.
    ids: String,
    /// Every recorded output path, NUL-separated, with its stamp and kind.
    paths: String,
    outputs: Vec<(StatStamp, bool)>,
}

fn path(dirs: &CacheDirs) -> PathBuf {
    dirs.state().join(FILE)
}

/// A full build starts: the cutoff no longer holds until it ends well.
pub(crate) fn forget(dirs: &CacheDirs) {
    let _ = fsutil::remove_path(&path(dirs));
}

/// What a build collects for the cutoff while it runs.
pub(crate) struct Collect {
    pub(crate) inputs: Inputs,
    pub(crate) plan: [u8; 32],
    /// Each task's late inputs, as it was judged with them.
    pub(crate) late: Vec<std::sync::OnceLock<Vec<Input>>>,
}

impl Collect {
    /// For a build of every task that was given its inputs, else None.
    pub(crate) fn for_build(opts: &super::BuildOptions, graph: &Graph) -> Option<Self> {
        let whole = !opts.dry_run && !opts.no_deps && opts.targets.is_empty();
        let inputs = opts.cutoff.clone().filter(|_| whole)?;
        Some(Collect {
            inputs,
            plan: graph::plan_digest(&graph.tasks).0,
            late: (0..graph.tasks.len()).map(|_| Default::default()).collect(),
        })
    }

    /// The late inputs of every task in [`LateDigest`]'s order, or None if
    /// a task was not judged.
    fn late_digest(&self, graph: &Graph) -> Option<[u8; 32]> {
        let mut d = LateDigest::default();
        let mut nodes: Vec<(usize, usize, usize)> = Vec::new();
        for (i, t) in graph.tasks.iter().enumerate() {
            match (t.recipe().per_node(), &t.subject) {
                (true, Subject::Node(n)) => {
                    let kind = Kind::ALL.iter().position(|k| *k == t.kind)?;
                    nodes.push((kind, *n, i));
                }
                (true, _) => return None,
                _ => d.task(t, self.late[i].get()?),
            }
        }
        nodes.sort_unstable();
        for (_, _, i) in nodes {
            d.task(&graph.tasks[i], self.late[i].get()?);
        }
        Some(d.finish().0)
    }

    /// Writes the cutoff after a build that did every task: called last,
    /// when the records are as the next build reads them. Only a speed-up:
    /// nothing is written when anything is off (a task not done, records of
    /// tasks the build does not have, outputs left to remove, the Ddcfile or
    /// the tasks folder edited while the build ran).
    pub(crate) fn remember(
        &self,
        cfg: &Config,
        graph: &Graph,
        state: &State,
        dirs: &CacheDirs,
        results: &[Option<super::TaskResult>],
    ) {
        let done = |r: &Option<super::TaskResult>| {
            r.as_ref()
                .is_some_and(|r| matches!(r.state, TaskState::Ran | TaskState::Cached))
        };
        if !results.iter().all(done) {
            return;
        }
        let now = Inputs::of(cfg, crate::recipes::staging_mode());
        if state.records.len() != graph.tasks.len()
            || !state.orphans.is_empty()
            || now != self.inputs
        {
            return;
        }
        let Some(late) = self.late_digest(graph) else {
            return;
        };
        // Each made at its size at once (10,000 tasks): fresh memory costs.
        let n = graph.tasks.len();
        let mut ids = String::with_capacity(n * 16);
        let mut paths = String::with_capacity(n * 48);
        let mut outputs = Vec::with_capacity(n + 64);
        for t in &graph.tasks {
            let Some(r) = state.records.get(t.id.as_str()) else {
                return;
            };
            if !r.replaced.is_empty() {
                return;
            }
            ids.push_str(t.id.as_str());
            ids.push('\0');
            add_outputs(r, &mut paths, &mut outputs);
        }
        let n = Noop {
            version: VERSION,
            inputs: now,
            plan: self.plan,
            late,
            state: State::stamp_of(dirs),
            ids,
            paths,
            outputs,
        };
        let size = n.ids.len() + n.paths.len() + 40 * n.outputs.len() + 4096;
        if let Ok(bytes) = postcard::to_extend(&n, Vec::with_capacity(size)) {
            let _ = fsutil::atomic_write_mode(&path(dirs), &bytes, false, FILE_MODE);
        }
    }
}

fn add_outputs(r: &Record, paths: &mut String, outputs: &mut Vec<(StatStamp, bool)>) {
    for o in &r.outputs {
        paths.push_str(&o.path.to_string_lossy());
        paths.push('\0');
        outputs.push((o.stamp, o.dir));
    }
}

/// The last build's cutoff, if the files its config was read from still
/// hold the same bytes: read before the config loads, so that a build that
/// cannot be a no-op (an edited Ddcfile) loads its records meanwhile.
pub(crate) fn last(dirs: &CacheDirs) -> Option<Noop> {
    let bytes = std::fs::read(path(dirs)).ok()?;
    let n: Noop = postcard::from_bytes(&bytes).ok()?;
    let i = &n.inputs;
    (n.version == VERSION && crate::config::sources_fingerprint(&i.source_files) == i.sources)
        .then_some(n)
}

/// The tasks of the last build ([`last`]) if this build is a no-op, else
/// None (then the full build decides). Called under the build lock.
pub(crate) fn check(
    cfg: &Config,
    inputs: &Inputs,
    dirs: &CacheDirs,
    n: Noop,
) -> Option<Vec<String>> {
    if n.inputs != *inputs || State::stamp_of(dirs) != n.state {
        return None;
    }
    // A build was killed (its leftovers to sweep), or left mounts: the
    // full build cleans up and says so.
    if std::fs::symlink_metadata(dirs.state().join("building")).is_ok() {
        return None;
    }
    let root = std::fs::canonicalize(&dirs.root).ok()?;
    if !fsutil::mounts_under(&root.join("images")).ok()?.is_empty() {
        return None;
    }
    // The cache is this Ddcfile's (`cache::claim`).
    let owner = std::fs::read_to_string(dirs.root.join("ddcfile")).ok()?;
    if owner.trim() != cfg.file.display().to_string() {
        return None;
    }
    let staging = crate::recipes::staging_mode();
    let (held, digests) = rayon::join(
        || outputs_hold(&n),
        || graph::cluster_digests(cfg, staging).ok(),
    );
    let (plan, late) = digests?;
    (held && plan.0 == n.plan && late.0 == n.late)
        .then(|| n.ids.split_terminator('\0').map(String::from).collect())
}

/// Whether every output is as recorded: what the full build's judge
/// accepts without hashing (a file's stamp; a tree's root stamp).
fn outputs_hold(n: &Noop) -> bool {
    use rayon::prelude::*;
    let paths: Vec<&str> = n.paths.split_terminator('\0').collect();
    let stats = fsutil::Stats::default();
    paths.len() == n.outputs.len()
        && paths
            .par_iter()
            .zip(n.outputs.par_iter())
            .with_min_len(256)
            .all(|(p, (stamp, dir))| match stats.of(Path::new(p)) {
                Ok(m) if *dir => m.is_dir && *stamp != StatStamp::default() && m.stamp == *stamp,
                Ok(m) => m.stamp == *stamp,
                Err(_) => false,
            })
}

/// Says what a full no-op says: every task cached.
pub(crate) fn report(cfg: &Config, ids: Vec<String>, events: &Sender<Event>, start: Instant) {
    if let Some(n) = super::insecure_note(cfg) {
        let _ = events.send(Event::Note(n));
    }
    let _ = events.send(Event::Planned(ids.len()));
    let cached = ids.len();
    let batch = ids
        .into_iter()
        .map(|task| {
            let per_node = Kind::of_id(&task).is_some_and(|k| k.recipe().per_node());
            Finished {
                task,
                state: TaskState::Cached,
                reason: None,
                seconds: 0.0,
                log: None,
                tail: Vec::new(),
                per_node,
                reason_kind: None,
            }
        })
        .collect();
    let _ = events.send(Event::Batch(batch));
    let _ = events.send(Event::Summary(Summary {
        cached,
        seconds: start.elapsed().as_secs_f64(),
        ..Default::default()
    }));
}

//! `ddc rollout [IMG]`: reboots the nodes whose running generation (from
//! `ddc serve`'s reports in the node-state database) differs from their
//! entry's, canaries first, then in batches, each node through its BMC or
//! over ssh, and waits for each to report up on its new generation before
//! the next batch. The rules (batches, verdicts, rollback, resume) are
//! `crate::rollout`'s state machine; this file starts, resumes or abandons
//! a rollout, `select.rs` picks the nodes and checks the plan, `drive.rs`
//! feeds the machine and executes what it says, `out.rs` prints. Must not
//! import `cli`.

mod drive;
mod out;
mod reboot;
mod select;

use std::fs::TryLockError;
use std::path::Path;
use std::time::Duration;

use crate::config::{self, Config};
use crate::error::{Error, NotStarted};
use crate::fsutil::{open_file, Open};
use crate::nodestate::{self, RolloutNode, RolloutRow, Store};
use crate::rollout::{self, Gen, Machine, NodeRun, NodeState, Params, Phase, Stage};

pub(crate) use crate::rollout::Size;

/// Start a new rollout, go on with the unfinished one, or drop it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    New,
    Resume,
    Abandon,
}

/// The options of `ddc rollout`.
pub(crate) struct Options {
    pub(crate) start: Start,
    pub(crate) image: Option<String>,
    pub(crate) canaries: Vec<String>,
    pub(crate) size: Size,
    pub(crate) timeout: Duration,
    pub(crate) max_failed: usize,
    pub(crate) rollback: bool,
    pub(crate) dry_run: bool,
    pub(crate) json: bool,
}

pub(crate) fn run(file: &Path, o: Options) -> Result<(), Error> {
    let cfg = config::load(file)?;
    let db = crate::serve::db_path(&cfg);
    if !db.exists() {
        return Err(NotStarted(format!(
            "no node-state database at {}: no `ddc serve` has run, so ddc knows nothing of what \
             the nodes run; start `ddc serve` (the nodes report to it at boot and every \
             [server] heartbeat), then run ddc rollout",
            db.display()
        ))
        .into());
    }
    let _lock = if o.dry_run { None } else { Some(lock(&cfg)?) };
    // A dry run writes nothing, not even the rollout tables.
    let opened = if o.dry_run {
        Store::open_existing(&db)?
    } else {
        Some(Store::open(&db)?)
    };
    let mut store = opened.ok_or_else(|| anyhow::anyhow!("{} vanished", db.display()))?;
    let unfinished = store.unfinished_rollout()?;
    let out = out::Out::new(o.json);
    match (o.start, unfinished) {
        (Start::Abandon, None) | (Start::Resume, None) => {
            Err(NotStarted("no unfinished rollout: nothing to resume or abandon".into()).into())
        }
        (Start::Abandon, Some((row, _))) => {
            if !o.dry_run {
                let now = nodestate::now_ms();
                store.save_rollout(row.id, "abandoned", row.batch, Some(now), &[])?;
            }
            out.note(&format!(
                "rollout {} (started {}) {}: its nodes are left as they are",
                row.id,
                nodestate::rfc3339(row.started),
                if o.dry_run {
                    "would be abandoned"
                } else {
                    "abandoned"
                }
            ));
            Ok(())
        }
        (Start::New, Some((row, _))) => Err(NotStarted(format!(
            "rollout {} (started {}) is unfinished: `ddc rollout --resume` continues it, \
             `ddc rollout --abandon` drops it",
            row.id,
            nodestate::rfc3339(row.started)
        ))
        .into()),
        (Start::Resume, Some((row, nodes))) => resume(file, cfg, store, row, &nodes, o, out),
        (Start::New, None) => start(file, cfg, store, o, out),
    }
}

/// Goes on with the stored rollout `row`.
fn resume(
    file: &Path,
    cfg: Config,
    store: Store,
    row: RolloutRow,
    nodes: &[RolloutNode],
    o: Options,
    out: out::Out,
) -> Result<(), Error> {
    let params: Params = serde_json::from_str(&row.params).map_err(|e| {
        anyhow::anyhow!(
            "rollout {}: its stored parameters cannot be read: {e}",
            row.id
        )
    })?;
    let stage = Stage::parse(&row.stage).unwrap_or(Stage::Forward);
    let (runs, methods) = from_rows(nodes);
    moved_since(&cfg, &runs, row.id)?;
    let m = Machine::new(runs, &params, row.batch, stage);
    let plan = select::Plan::resumed(&cfg, methods, file)?;
    if o.dry_run {
        out.plan(&plan, &m, row.id, &[]);
        return Ok(());
    }
    out.note(&format!("resuming rollout {}", row.id));
    drive::Driver::new(file, cfg, store, row.id, m, plan, out)?.run()
}

/// Plans a new rollout, and runs it unless `-n`.
fn start(
    file: &Path,
    cfg: Config,
    mut store: Store,
    o: Options,
    out: out::Out,
) -> Result<(), Error> {
    let params = Params {
        image: o.image.clone(),
        canaries: o.canaries.clone(),
        size: o.size,
        timeout_ms: o.timeout.as_millis() as i64,
        max_failed: o.max_failed,
        rollback: o.rollback,
    };
    let rows = store.nodes()?;
    let sel = select::select(&cfg, &rows, &params, nodestate::now_ms())?;
    if sel.moving.is_empty() {
        out.nothing(&sel);
        return Ok(());
    }
    let names: Vec<String> = sel.moving.iter().map(|c| c.name.clone()).collect();
    let batches = rollout::batches(&names, &params.canaries, params.size);
    let runs = runs_of(&sel, &batches);
    let m = Machine::new(runs, &params, 0, Stage::Forward);
    let plan = select::Plan::new(&cfg, &m, &params, file, o.dry_run)?;
    if o.dry_run {
        out.plan(&plan, &m, 0, &sel.skipped);
        return Ok(());
    }
    let stored: Vec<RolloutNode> = (0..m.nodes.len())
        .map(|i| to_row(&m.nodes[i], plan.methods[i].as_str()))
        .collect();
    let json = serde_json::to_string(&params).map_err(anyhow::Error::from)?;
    let id = store.start_rollout(params.image.as_deref(), &json, nodestate::now_ms(), &stored)?;
    out.plan(&plan, &m, id, &sel.skipped);
    drive::Driver::new(file, cfg, store, id, m, plan, out)?.run()
}

/// Refuses to resume when a build since moved the entries of nodes still
/// to be moved to another generation than the stored target: they would
/// boot it and fail.
fn moved_since(cfg: &Config, runs: &[NodeRun], id: i64) -> Result<(), NotStarted> {
    let by_name: std::collections::HashMap<&str, &config::Node> =
        cfg.nodes.iter().map(|n| (n.hostname.as_str(), n)).collect();
    let moved: Vec<String> = runs
        .iter()
        .filter(|n| n.phase == Phase::Forward && n.state != NodeState::Up)
        .filter_map(|n| {
            let node = *by_name.get(n.name.as_str())?;
            let now = super::status::target(cfg, node)?;
            (now != n.to.generation || node.image != n.to.image).then(|| {
                format!(
                    "{} ({} of image {}, not {})",
                    n.name, now, node.image, n.to.generation
                )
            })
        })
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    Err(NotStarted(format!(
        "rollout {id} moves nodes to generations their entries no longer point at (a build \
         since?): {}; drop it with `ddc rollout --abandon` and start a new one",
        moved.join(", ")
    )))
}

/// The rollout lock, `cache/rollout.lock`: one rollout at a time.
fn lock(cfg: &Config) -> Result<std::fs::File, Error> {
    let path = cfg.base_dir.join("cache/rollout.lock");
    let f = open_file(&path, Open::Keep, 0o600)
        .map_err(|e| e.context(format!("cannot open {}", path.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(TryLockError::WouldBlock) => Err(NotStarted(format!(
            "another ddc rollout is running (it holds {}); wait for it, or stop it \
             (Ctrl-C) and continue with `ddc rollout --resume`",
            path.display()
        ))
        .into()),
        Err(TryLockError::Error(e)) => Err(anyhow::Error::new(e)
            .context(format!("cannot lock {}", path.display()))
            .into()),
    }
}

/// The machine's nodes, batched.
fn runs_of(sel: &select::Selection, batches: &[Vec<String>]) -> Vec<NodeRun> {
    let by_name: std::collections::HashMap<&str, &select::Candidate> =
        sel.moving.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut out = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        for name in batch {
            let c = by_name[name.as_str()];
            out.push(NodeRun {
                name: name.clone(),
                batch: b,
                from: c.from.clone(),
                to: c.to.clone(),
                phase: Phase::Forward,
                state: NodeState::Pending,
                reboot_at: None,
                why: None,
            });
        }
    }
    out
}

/// A node as stored.
fn to_row(n: &NodeRun, method: &str) -> RolloutNode {
    RolloutNode {
        hostname: n.name.clone(),
        batch: n.batch,
        from_image: n.from.image.clone(),
        from_gen: n.from.generation.clone(),
        to_image: n.to.image.clone(),
        to_gen: n.to.generation.clone(),
        method: method.to_string(),
        phase: n.phase.as_str().to_string(),
        state: n.state.as_str().to_string(),
        reboot_at: n.reboot_at,
        why: n.why.clone(),
    }
}

/// The stored nodes as the machine's, and their reboot methods.
fn from_rows(rows: &[RolloutNode]) -> (Vec<NodeRun>, Vec<String>) {
    let runs = rows
        .iter()
        .map(|r| NodeRun {
            name: r.hostname.clone(),
            batch: r.batch,
            from: Gen {
                image: r.from_image.clone(),
                generation: r.from_gen.clone(),
            },
            to: Gen {
                image: r.to_image.clone(),
                generation: r.to_gen.clone(),
            },
            phase: Phase::parse(&r.phase).unwrap_or(Phase::Forward),
            // A state this ddc cannot read is taken as rebooting: waited for,
            // never rebooted again.
            state: NodeState::parse(&r.state).unwrap_or(NodeState::Rebooting),
            reboot_at: r.reboot_at,
            why: r.why.clone(),
        })
        .collect();
    (runs, rows.iter().map(|r| r.method.clone()).collect())
}

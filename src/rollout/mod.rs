//! The rollout state machine of `ddc rollout`: the plan (canaries first,
//! then batches of `--batch N` or `--percent P`), each node's state
//! (pending → rebooting → waiting → up | failed, and for a rollback the same
//! again toward the generation it ran before), each batch's verdict, and
//! what to do next given what the nodes reported and the clock. No
//! processes, no I/O, no clock of its own: the driver
//! (`commands::rollout`) feeds it observations from the node-state database
//! and executes the actions it returns, so every rule here is unit-tested
//! alone. Imports only `names`.

mod plan;

pub use plan::{batches, Size};

use serde::{Deserialize, Serialize};

/// What a rollout was asked: stored with it, so `--resume` goes on alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// The image whose nodes move (None: every image's).
    pub image: Option<String>,
    /// The canaries as given (empty: the first node by name).
    pub canaries: Vec<String>,
    pub size: Size,
    /// How long a rebooted node has to report up on its target (ms).
    pub timeout_ms: i64,
    /// A batch with more failed nodes than this stops the rollout.
    pub max_failed: usize,
    /// Pin the failed nodes of the stopping batch back and reboot them.
    pub rollback: bool,
}

/// An image's generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gen {
    pub image: String,
    pub generation: String,
}

/// Toward which generation a node is being moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// To its target.
    Forward,
    /// Back to the generation it ran before (a rollback).
    Back,
}

/// Where a node is in its move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Not rebooted yet.
    Pending,
    /// Its reboot is recorded and being (or maybe) issued: never issued again.
    Rebooting,
    /// Its reboot was issued; waiting for it to report.
    Waiting,
    /// It reported up on the phase's generation, no failed units.
    Up,
    /// It did not, or its reboot could not be issued.
    Failed,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Rebooting => "rebooting",
            NodeState::Waiting => "waiting",
            NodeState::Up => "up",
            NodeState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<NodeState> {
        [
            NodeState::Pending,
            NodeState::Rebooting,
            NodeState::Waiting,
            NodeState::Up,
            NodeState::Failed,
        ]
        .into_iter()
        .find(|n| n.as_str() == s)
    }

    fn in_flight(self) -> bool {
        matches!(self, NodeState::Rebooting | NodeState::Waiting)
    }
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Forward => "forward",
            Phase::Back => "back",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "forward" => Some(Phase::Forward),
            "back" => Some(Phase::Back),
            _ => None,
        }
    }
}

/// One node of a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRun {
    pub name: String,
    /// Its batch (0: the canaries).
    pub batch: usize,
    /// What it ran when the rollout was planned.
    pub from: Gen,
    /// What its entry points at.
    pub to: Gen,
    pub phase: Phase,
    pub state: NodeState,
    /// When its reboot (of this phase) was recorded, ms.
    pub reboot_at: Option<i64>,
    /// Why it failed.
    pub why: Option<String>,
}

impl NodeRun {
    /// The generation it must come up on now.
    pub fn goal(&self) -> &Gen {
        match self.phase {
            Phase::Forward => &self.to,
            Phase::Back => &self.from,
        }
    }

    /// Its state as shown: `rolled_back` for a node up again on its old
    /// generation.
    pub fn shown_state(&self) -> &'static str {
        match (self.phase, self.state) {
            (Phase::Back, NodeState::Up) => "rolled_back",
            (Phase::Back, NodeState::Failed) => "rollback_failed",
            (_, s) => s.as_str(),
        }
    }
}

/// Where the rollout as a whole is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Moving batches forward.
    Forward,
    /// A batch failed: its failed nodes are to be pinned back.
    Pinning,
    /// They are pinned and being rebooted onto their old generation.
    RollingBack,
    Done(Outcome),
}

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every node is up on its target.
    Succeeded,
    /// A batch had more than `max_failed` failed nodes.
    Failed,
    /// Dropped with `--abandon`.
    Abandoned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
        }
    }
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Forward => "forward",
            Stage::Pinning => "pinning",
            Stage::RollingBack => "rolling_back",
            Stage::Done(o) => o.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "forward" => Stage::Forward,
            "pinning" => Stage::Pinning,
            "rolling_back" => Stage::RollingBack,
            "succeeded" => Stage::Done(Outcome::Succeeded),
            "failed" => Stage::Done(Outcome::Failed),
            "abandoned" => Stage::Done(Outcome::Abandoned),
            _ => return None,
        })
    }
}

/// What the node-state database says of a node now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seen {
    /// Its state is `up` (a report within three heartbeats, no boot since).
    pub up: bool,
    /// What its last report said it runs.
    pub running: Option<Gen>,
    pub failed_units: Vec<String>,
    /// When the boot of its last report began (ms).
    pub booted_at: Option<i64>,
}

/// What the driver is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Reboot these nodes: already recorded as rebooting (save first, then
    /// issue); tell [`Machine::issued`] how each went.
    Reboot(Vec<usize>),
    /// The node came up on its goal.
    Up(usize),
    /// The node failed (its `why` says how).
    Failed(usize),
    /// Every node of a batch is settled and the batch passed.
    BatchDone(usize),
    /// Pin these nodes back to their `from` generation and rebuild their
    /// entries; then call [`Machine::pinned`].
    Pin(Vec<usize>),
    /// The rollout is over.
    Finish(Outcome),
}

/// A rollout in progress.
#[derive(Debug, Clone)]
pub struct Machine {
    pub nodes: Vec<NodeRun>,
    /// How many batches (batch 0 holds the canaries).
    pub batches: usize,
    /// The batch being moved.
    pub batch: usize,
    pub stage: Stage,
    pub timeout_ms: i64,
    pub max_failed: usize,
    pub rollback: bool,
    /// Nodes whose state changed since [`Machine::take_changed`].
    changed: Vec<usize>,
}

impl Machine {
    /// A new rollout of `nodes` (their `batch` set by [`batches`]), or one
    /// read back from the database (`batch` and `stage` as stored).
    pub fn new(nodes: Vec<NodeRun>, params: &Params, batch: usize, stage: Stage) -> Machine {
        let batches = nodes.iter().map(|n| n.batch + 1).max().unwrap_or(0);
        Machine {
            nodes,
            batches,
            batch,
            stage,
            timeout_ms: params.timeout_ms,
            max_failed: params.max_failed,
            rollback: params.rollback,
            changed: Vec::new(),
        }
    }

    /// The nodes whose state changed since the last call, each once.
    pub fn take_changed(&mut self) -> Vec<usize> {
        let mut v = std::mem::take(&mut self.changed);
        v.sort_unstable();
        v.dedup();
        v
    }

    fn set(&mut self, i: usize, state: NodeState) {
        self.nodes[i].state = state;
        self.changed.push(i);
    }

    fn fail(&mut self, i: usize, why: String) {
        self.nodes[i].why = Some(why);
        self.set(i, NodeState::Failed);
    }

    /// The nodes of batch `b`.
    pub fn batch_nodes(&self, b: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].batch == b)
            .collect()
    }

    /// What to do now, at `now` (ms), given what `seen` says of each node.
    pub fn step(&mut self, now: i64, seen: &dyn Fn(&NodeRun) -> Option<Seen>) -> Vec<Action> {
        let mut actions = Vec::new();
        loop {
            match self.stage {
                Stage::Done(_) => return actions,
                Stage::Pinning => {
                    actions.push(Action::Pin(self.failed_forward()));
                    return actions;
                }
                Stage::Forward | Stage::RollingBack => {}
            }
            let phase = if self.stage == Stage::Forward {
                Phase::Forward
            } else {
                Phase::Back
            };
            let idx: Vec<usize> = self
                .batch_nodes(self.batch)
                .into_iter()
                .filter(|&i| self.nodes[i].phase == phase)
                .collect();
            let pending: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| self.nodes[i].state == NodeState::Pending)
                .collect();
            if !pending.is_empty() {
                for &i in &pending {
                    self.nodes[i].reboot_at = Some(now);
                    self.nodes[i].why = None;
                    self.set(i, NodeState::Rebooting);
                }
                actions.push(Action::Reboot(pending));
                return actions;
            }
            for &i in &idx {
                if self.nodes[i].state.in_flight() {
                    actions.extend(self.check(i, now, seen(&self.nodes[i])));
                }
            }
            if idx.iter().any(|&i| self.nodes[i].state.in_flight()) {
                return actions;
            }
            if self.stage == Stage::RollingBack {
                self.stage = Stage::Done(Outcome::Failed);
                actions.push(Action::Finish(Outcome::Failed));
                return actions;
            }
            let failed = self.failed_forward();
            if failed.len() > self.max_failed {
                if self.rollback {
                    self.stage = Stage::Pinning;
                    continue;
                }
                self.stage = Stage::Done(Outcome::Failed);
                actions.push(Action::Finish(Outcome::Failed));
                return actions;
            }
            actions.push(Action::BatchDone(self.batch));
            self.batch += 1;
            if self.batch >= self.batches {
                self.stage = Stage::Done(Outcome::Succeeded);
                actions.push(Action::Finish(Outcome::Succeeded));
                return actions;
            }
        }
    }

    /// The failed nodes of the current batch, on their way forward.
    fn failed_forward(&self) -> Vec<usize> {
        self.batch_nodes(self.batch)
            .into_iter()
            .filter(|&i| {
                self.nodes[i].phase == Phase::Forward && self.nodes[i].state == NodeState::Failed
            })
            .collect()
    }

    /// Whether node `i` (rebooting or waiting) is up, failed, or still due.
    fn check(&mut self, i: usize, now: i64, seen: Option<Seen>) -> Option<Action> {
        let n = &self.nodes[i];
        let since = n.reboot_at.unwrap_or(now);
        let goal = n.goal().clone();
        let fresh = seen
            .as_ref()
            .filter(|s| s.booted_at.is_some_and(|b| b > since));
        if let Some(s) = fresh {
            match &s.running {
                Some(r) if *r == goal => {
                    if !s.failed_units.is_empty() {
                        let why = format!(
                            "booted {} with failed units: {}",
                            goal.generation,
                            s.failed_units.join(", ")
                        );
                        self.fail(i, why);
                        return Some(Action::Failed(i));
                    }
                    if s.up {
                        self.set(i, NodeState::Up);
                        return Some(Action::Up(i));
                    }
                }
                Some(r) => {
                    let why = format!(
                        "booted {} of image {}, not {} of image {}",
                        r.generation, r.image, goal.generation, goal.image
                    );
                    self.fail(i, why);
                    return Some(Action::Failed(i));
                }
                None => {}
            }
        }
        if now - since >= self.timeout_ms {
            let why = format!(
                "did not report up on {} within {}",
                goal.generation,
                shown_duration(self.timeout_ms)
            );
            self.fail(i, why);
            return Some(Action::Failed(i));
        }
        None
    }

    /// How the reboot of node `i` went: issued, or refused with a reason.
    pub fn issued(&mut self, i: usize, result: Result<(), String>) {
        match result {
            Ok(()) => self.set(i, NodeState::Waiting),
            Err(why) => self.fail(i, format!("could not be rebooted: {why}")),
        }
    }

    /// Node `i`'s reboot was never started (interrupted first): it is
    /// pending again.
    pub fn not_issued(&mut self, i: usize) {
        self.nodes[i].reboot_at = None;
        self.set(i, NodeState::Pending);
    }

    /// The nodes of [`Action::Pin`] are pinned and their entries rebuilt:
    /// they are to be rebooted onto their old generation.
    pub fn pinned(&mut self) {
        for i in self.failed_forward() {
            self.nodes[i].phase = Phase::Back;
            self.nodes[i].reboot_at = None;
            self.set(i, NodeState::Pending);
        }
        self.stage = Stage::RollingBack;
    }

    /// The nodes never rebooted (of later batches, or pending).
    pub fn untouched(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].state == NodeState::Pending)
            .collect()
    }
}

/// `10m`, `90s`, `1h30m`.
pub fn shown_duration(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests;

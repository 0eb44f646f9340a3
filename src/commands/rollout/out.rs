//! What `ddc rollout` prints: with `--json`, one event object a line
//! (`plan`, `skipped`, `reboot`, `up`, `failed`, `rollback`, `done`, each
//! with its `time`, and `node` and `generation` where it has them); else
//! lines for people, node lists folded (`node01 … node50 (50 nodes)`) so
//! a batch of thousands reads as one line. Failures are named node by node.

use serde_json::{json, Value};

use super::select::{Plan, Selection, Skip};
use crate::names::fold;
use crate::rollout::{shown_duration, Machine, NodeState, Outcome, Phase, Stage};

pub(super) struct Out {
    json: bool,
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl Out {
    pub(super) fn new(json: bool) -> Out {
        Out { json }
    }

    pub(super) fn json(&self) -> bool {
        self.json
    }

    fn event(&self, kind: &str, fields: Value) {
        let mut v = json!({ "event": kind, "time": now() });
        if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
            o.extend(f);
        }
        println!("{v}");
    }

    /// A line for people: stdout, or stderr under `--json`.
    pub(super) fn note(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn skipped(&self, skipped: &[Skip]) {
        if self.json {
            for s in skipped {
                self.event(
                    "skipped",
                    json!({
                        "node": s.node,
                        "reason": s.reason,
                        "last_seen": s.last_seen.map(crate::nodestate::rfc3339),
                    }),
                );
            }
            return;
        }
        for reason in ["never seen", "silent", "booting", "no generation"] {
            let v: Vec<String> = skipped
                .iter()
                .filter(|s| s.reason == reason)
                .map(|s| s.node.clone())
                .collect();
            if v.is_empty() {
                continue;
            }
            let why = match reason {
                "never seen" => "never seen: no report yet; they are not rebooted",
                "silent" => "silent: no report within 3 heartbeats; they are not rebooted",
                "booting" => "booting: no report since their last boot; they are not rebooted",
                _ => "their image has no generation yet: run `ddc build`",
            };
            println!("skipped, {why}: {}", fold(&v));
        }
    }

    /// Nothing to reboot.
    pub(super) fn nothing(&self, sel: &Selection) {
        self.skipped(&sel.skipped);
        if self.json {
            self.event("done", json!({ "outcome": "nothing_to_do" }));
        } else {
            println!(
                "nothing to do: {} {} their entry's generation",
                sel.on_target,
                if sel.on_target == 1 {
                    "node runs"
                } else {
                    "nodes run"
                }
            );
        }
    }

    /// The plan: batches, how each node is rebooted, the nodes skipped.
    pub(super) fn plan(&self, plan: &Plan, m: &Machine, id: i64, skipped: &[Skip]) {
        if self.json {
            for (i, n) in m.nodes.iter().enumerate() {
                self.event(
                    "plan",
                    json!({
                        "rollout": id,
                        "node": n.name,
                        "batch": n.batch,
                        "image": n.to.image,
                        "generation": n.to.generation,
                        "from": n.from.generation,
                        "method": plan.methods[i].as_str(),
                        "state": n.shown_state(),
                    }),
                );
            }
            self.skipped(skipped);
            return;
        }
        let what = if id == 0 {
            "would reboot".to_string()
        } else {
            format!("rollout {id}: rebooting")
        };
        let timeout = shown_duration(m.timeout_ms);
        println!(
            "{what} {} {} in {} {}, each to report up within {timeout}, at most {} failed a batch",
            m.nodes.len(),
            if m.nodes.len() == 1 { "node" } else { "nodes" },
            m.batches,
            if m.batches == 1 { "batch" } else { "batches" },
            m.max_failed
        );
        for b in 0..m.batches {
            let idx = m.batch_nodes(b);
            let names: Vec<String> = idx.iter().map(|&i| m.nodes[i].name.clone()).collect();
            let gens: Vec<String> = idx
                .iter()
                .map(|&i| m.nodes[i].to.generation.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let label = if b == 0 { " (canary)" } else { "" };
            println!(
                "  batch {}{label}: {} onto {}",
                b + 1,
                fold(&names),
                gens.join(", ")
            );
        }
        for method in [super::select::Method::Bmc, super::select::Method::Ssh] {
            let v: Vec<String> = (0..m.nodes.len())
                .filter(|&i| plan.methods[i] == method)
                .map(|i| m.nodes[i].name.clone())
                .collect();
            if !v.is_empty() {
                println!("rebooted {}: {}", method.shown(), fold(&v));
            }
        }
        self.skipped(skipped);
    }

    /// Reboots issued.
    pub(super) fn reboot(&self, m: &Machine, plan: &Plan, idx: &[usize]) {
        if self.json {
            for &i in idx {
                let n = &m.nodes[i];
                self.event(
                    "reboot",
                    json!({
                        "node": n.name,
                        "image": n.goal().image,
                        "generation": n.goal().generation,
                        "method": plan.methods[i].as_str(),
                        "batch": n.batch,
                        "rollback": n.phase == Phase::Back,
                    }),
                );
            }
            return;
        }
        let names: Vec<String> = idx.iter().map(|&i| m.nodes[i].name.clone()).collect();
        let Some(&first) = idx.first() else { return };
        if m.nodes[first].phase == Phase::Back {
            println!(
                "rolling back: rebooted {} onto the generation they ran before",
                fold(&names)
            );
        } else {
            println!(
                "batch {}/{}: rebooted {}; waiting for them to report up (at most {})",
                m.nodes[first].batch + 1,
                m.batches,
                fold(&names),
                shown_duration(m.timeout_ms)
            );
        }
    }

    /// Text only: how many of the batch are up, and who is still waited for.
    pub(super) fn waiting(&self, m: &Machine, now: i64) {
        if self.json {
            return;
        }
        let phase = if m.stage == Stage::RollingBack {
            Phase::Back
        } else {
            Phase::Forward
        };
        let idx: Vec<usize> = m
            .batch_nodes(m.batch)
            .into_iter()
            .filter(|&i| m.nodes[i].phase == phase)
            .collect();
        let waiting: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| matches!(m.nodes[i].state, NodeState::Rebooting | NodeState::Waiting))
            .collect();
        let Some(since) = waiting.iter().filter_map(|&i| m.nodes[i].reboot_at).min() else {
            return;
        };
        let up = idx
            .iter()
            .filter(|&&i| m.nodes[i].state == NodeState::Up)
            .count();
        let names: Vec<String> = waiting.iter().map(|&i| m.nodes[i].name.clone()).collect();
        println!(
            "batch {}/{}: {up} of {} up; waiting for {} (at most {} more)",
            m.batch + 1,
            m.batches,
            idx.len(),
            fold(&names),
            shown_duration((since + m.timeout_ms - now).max(0))
        );
    }

    pub(super) fn up(&self, m: &Machine, i: usize) {
        let n = &m.nodes[i];
        if self.json {
            self.event(
                "up",
                json!({
                    "node": n.name,
                    "image": n.goal().image,
                    "generation": n.goal().generation,
                    "rollback": n.phase == Phase::Back,
                }),
            );
        } else if n.phase == Phase::Back {
            println!("{}: rolled back, up on {}", n.name, n.goal().generation);
        }
    }

    /// A node failed; `last` is its last report, as words and as JSON.
    pub(super) fn failed(&self, m: &Machine, i: usize, last: (String, Value)) {
        let n = &m.nodes[i];
        let why = n.why.clone().unwrap_or_default();
        if self.json {
            self.event(
                "failed",
                json!({
                    "node": n.name,
                    "image": n.goal().image,
                    "generation": n.goal().generation,
                    "reason": why,
                    "rollback": n.phase == Phase::Back,
                    "last_report": last.1,
                }),
            );
        } else {
            println!("{}: FAILED: {why}; last report: {}", n.name, last.0);
        }
    }

    pub(super) fn batch_done(&self, m: &Machine, b: usize) {
        if self.json {
            return;
        }
        let idx = m.batch_nodes(b);
        let up: Vec<String> = idx
            .iter()
            .filter(|&&i| m.nodes[i].state == NodeState::Up)
            .map(|&i| m.nodes[i].name.clone())
            .collect();
        let failed = idx.len() - up.len();
        let mut line = format!("batch {}/{}: up: {}", b + 1, m.batches, fold(&up));
        if failed > 0 {
            line.push_str(&format!(
                " ({failed} failed, within --max-failed {})",
                m.max_failed
            ));
        }
        println!("{line}");
    }

    /// Node `i` is pinned back (`said`: where).
    pub(super) fn rollback(&self, m: &Machine, i: usize, said: &str) {
        let n = &m.nodes[i];
        if self.json {
            self.event(
                "rollback",
                json!({
                    "node": n.name,
                    "image": n.from.image,
                    "generation": n.from.generation,
                    "pinned": said,
                }),
            );
        } else {
            println!("{}: pinned back to {}: {said}", n.name, n.from.generation);
        }
    }

    pub(super) fn done(&self, m: &Machine, id: i64, outcome: Outcome) {
        let pick = |f: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..m.nodes.len())
                .filter(|&i| f(i))
                .map(|i| m.nodes[i].name.clone())
                .collect()
        };
        let up = pick(&|i| m.nodes[i].phase == Phase::Forward && m.nodes[i].state == NodeState::Up);
        let failed =
            pick(&|i| m.nodes[i].state == NodeState::Failed || m.nodes[i].phase == Phase::Back);
        let rolled = pick(&|i| m.nodes[i].shown_state() == "rolled_back");
        let untouched: Vec<String> = m
            .untouched()
            .into_iter()
            .map(|i| m.nodes[i].name.clone())
            .collect();
        if self.json {
            self.event(
                "done",
                json!({
                    "rollout": id,
                    "outcome": outcome.as_str(),
                    "up": up,
                    "failed": failed,
                    "rolled_back": rolled,
                    "not_rebooted": untouched,
                }),
            );
            return;
        }
        match outcome {
            Outcome::Succeeded => println!(
                "rollout {id} succeeded: {} up on their new generation{}",
                fold(&up),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!("; failed (within --max-failed): {}", fold(&failed))
                }
            ),
            _ => {
                println!(
                    "rollout {id} stopped: batch {} had more than {} failed: {}",
                    m.batch + 1,
                    m.max_failed,
                    fold(&failed)
                );
                if !rolled.is_empty() {
                    println!("rolled back: {}", fold(&rolled));
                }
                if !untouched.is_empty() {
                    println!("never rebooted: {}", fold(&untouched));
                }
                if !up.is_empty() {
                    println!("up on their new generation: {}", fold(&up));
                }
            }
        }
    }
}

//! Drives a rollout: reads the node-state database every poll (1 s;
//! `DDC_ROLLOUT_POLL_MS` for tests), asks the state machine what to do,
//! saves what changed (a node's "rebooting" before its reboot is issued),
//! and does it: reboots (`reboot.rs`), pins failed nodes back through the
//! CSV editor of `ddc node set` and rebuilds as `ddc build` does, under the
//! build lock. Ctrl-C stops the reboots in flight and leaves the rollout
//! resumable (exit 130).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::out::Out;
use super::reboot::{issue_all, Issued};
use super::select::Plan;
use crate::config::{self, Config};
use crate::engine::BuildOptions;
use crate::error::Error;
use crate::nodestate::{self, NodeRow, State, Store};
use crate::process::{self, Cancel};
use crate::rollout::{Action, Gen, Machine, NodeRun, Outcome, Seen, Stage};

pub(super) struct Driver<'a> {
    file: &'a Path,
    cfg: Config,
    store: Store,
    id: i64,
    m: Machine,
    plan: Plan,
    out: Out,
    cancel: Arc<Cancel>,
    poll: Duration,
    saved: (Stage, usize),
    /// When a waiting batch was last said to be waited for.
    said_waiting: Instant,
}

impl<'a> Driver<'a> {
    pub(super) fn new(
        file: &'a Path,
        cfg: Config,
        store: Store,
        id: i64,
        m: Machine,
        plan: Plan,
        out: Out,
    ) -> Result<Driver<'a>, Error> {
        let cancel = Arc::new(Cancel::default());
        process::install_signal_handlers(&cancel)?;
        let poll = std::env::var("DDC_ROLLOUT_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(1), Duration::from_millis);
        let saved = (m.stage, m.batch);
        Ok(Driver {
            file,
            cfg,
            store,
            id,
            m,
            plan,
            out,
            cancel,
            poll,
            saved,
            said_waiting: Instant::now(),
        })
    }

    pub(super) fn run(mut self) -> Result<(), Error> {
        loop {
            if self.cancel.is_cancelled() {
                return self.interrupted();
            }
            let now = nodestate::now_ms();
            let rows = self.store.nodes()?;
            let hb = self.cfg.server.heartbeat;
            let actions = self
                .m
                .step(now, &|n: &NodeRun| seen(rows.get(&n.name), now, hb));
            // Before anything is done: a reboot is recorded before it is issued.
            self.save(None)?;
            let mut busy = false;
            for a in actions {
                match a {
                    Action::Reboot(idx) => {
                        self.reboot(&idx)?;
                        busy = true;
                    }
                    Action::Up(i) => self.out.up(&self.m, i),
                    Action::Failed(i) => {
                        let last = last_report(rows.get(&self.m.nodes[i].name), now, hb);
                        self.out.failed(&self.m, i, last);
                    }
                    Action::BatchDone(b) => self.out.batch_done(&self.m, b),
                    Action::Pin(idx) => {
                        match self.pin(&idx) {
                            Err(_) if self.cancel.is_cancelled() => return self.interrupted(),
                            r => r?,
                        }
                        busy = true;
                    }
                    Action::Finish(o) => {
                        self.save(Some(nodestate::now_ms()))?;
                        self.out.done(&self.m, self.id, o);
                        return match o {
                            Outcome::Succeeded => Ok(()),
                            _ => Err(Error::NodesFailed),
                        };
                    }
                }
            }
            if self.cancel.is_cancelled() {
                return self.interrupted();
            }
            if busy {
                self.said_waiting = Instant::now();
            } else {
                // Every 30 polls (30 s), what the batch still waits for.
                if self.said_waiting.elapsed() >= self.poll * 30 {
                    self.out.waiting(&self.m, nodestate::now_ms());
                    self.said_waiting = Instant::now();
                }
                self.sleep();
            }
        }
    }

    /// Saves the nodes that changed, and the stage and batch if they did.
    fn save(&mut self, finished: Option<i64>) -> Result<(), Error> {
        let changed = self.m.take_changed();
        let now = (self.m.stage, self.m.batch);
        if changed.is_empty() && now == self.saved && finished.is_none() {
            return Ok(());
        }
        let rows: Vec<_> = changed
            .iter()
            .map(|&i| super::to_row(&self.m.nodes[i], self.plan.methods[i].as_str()))
            .collect();
        self.store.save_rollout(
            self.id,
            self.m.stage.as_str(),
            self.m.batch,
            finished,
            &rows,
        )?;
        self.saved = now;
        Ok(())
    }

    fn interrupted(&mut self) -> Result<(), Error> {
        self.save(None)?;
        self.out.note(&format!(
            "interrupted: rollout {} is recorded; `ddc rollout --resume` continues it (a node \
             already rebooted is only waited for)",
            self.id
        ));
        Err(Error::Interrupted)
    }

    /// Waits one poll, or until Ctrl-C.
    fn sleep(&self) {
        let end = Instant::now() + self.poll;
        while !self.cancel.is_cancelled() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Issues the reboots of `idx` (recorded as rebooting already).
    fn reboot(&mut self, idx: &[usize]) -> Result<(), Error> {
        let results = issue_all(&self.cfg, &self.plan, &self.m, idx, &self.cancel);
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for (&i, r) in idx.iter().zip(results) {
            match r {
                Issued::NotStarted => self.m.not_issued(i),
                Issued::Unknown => {}
                Issued::Done(Ok(())) => {
                    self.m.issued(i, Ok(()));
                    ok.push(i);
                }
                Issued::Done(Err(why)) => {
                    self.m.issued(i, Err(why));
                    failed.push(i);
                }
            }
        }
        self.out.reboot(&self.m, &self.plan, &ok);
        if !failed.is_empty() {
            let rows = self.store.nodes()?;
            let now = nodestate::now_ms();
            for i in failed {
                let last = last_report(
                    rows.get(&self.m.nodes[i].name),
                    now,
                    self.cfg.server.heartbeat,
                );
                self.out.failed(&self.m, i, last);
            }
        }
        self.save(None)
    }

    /// Pins the nodes of `idx` back to the generation they ran, rebuilds,
    /// and hands them to the machine to be rebooted.
    fn pin(&mut self, idx: &[usize]) -> Result<(), Error> {
        use super::super::node::{apply, Edit};
        for &i in idx {
            let n = &self.m.nodes[i];
            let value = format!("image={}@{}", n.from.image, n.from.generation);
            let edit = Edit::Set(n.name.clone(), vec![value]);
            let said = self
                .aside(|| apply(self.file, edit))?
                .map(|s| s.join("; "))
                .unwrap_or_else(|| "already pinned".into());
            self.out.rollback(&self.m, i, &said);
        }
        self.aside(|| self.build())?;
        self.cfg = config::load(self.file)?;
        self.m.pinned();
        self.save(None)
    }

    /// Runs `f` with its standard output on standard error under `--json`,
    /// whose standard output holds the rollout's events alone (the CSV
    /// edit's and the build's lines are for people).
    fn aside<T>(&self, f: impl FnOnce() -> T) -> T {
        use std::io::Write;
        if !self.out.json() {
            return f();
        }
        let _ = std::io::stdout().flush();
        let saved = nix::unistd::dup(1);
        let moved = saved.is_ok() && nix::unistd::dup2(2, 1).is_ok();
        let out = f();
        let _ = std::io::stdout().flush();
        if let Ok(fd) = saved {
            if moved {
                let _ = nix::unistd::dup2(fd, 1);
            }
            let _ = nix::unistd::close(fd);
        }
        out
    }

    /// `ddc build`, under the build lock: the pinned nodes' entries.
    fn build(&self) -> Result<(), Error> {
        let super::super::Loaded { cfg, graph, state } = super::super::load(self.file)?;
        let opts = BuildOptions {
            targets: Vec::new(),
            dry_run: false,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            keep_going: false,
            no_deps: false,
            verify: false,
        };
        let run = super::super::Run {
            json: false,
            verbose: false,
            no_wait: false,
            state: Some(state),
            before: &|_| Ok(()),
        };
        super::super::run_build(&cfg, &graph, &opts, run)
    }
}

/// What the database says of a node, for the machine.
fn seen(row: Option<&NodeRow>, now: i64, heartbeat: u32) -> Option<Seen> {
    let row = row?;
    let r = row.report.as_ref();
    Some(Seen {
        up: row.state(now, heartbeat) == State::Up,
        running: r.map(|r| Gen {
            image: r.image.clone(),
            generation: r.generation.clone(),
        }),
        failed_units: r.map(|r| r.failed_units.clone()).unwrap_or_default(),
        booted_at: row.booted_at(),
    })
}

/// A node's last report: in words, and as JSON.
fn last_report(row: Option<&NodeRow>, now: i64, heartbeat: u32) -> (String, Value) {
    let Some(row) = row.filter(|r| r.last_seen().is_some()) else {
        return ("none (never seen)".into(), Value::Null);
    };
    let state = row.state(now, heartbeat).as_str();
    let r = row.report.as_ref();
    let seen = row.last_seen().map(nodestate::rfc3339);
    let mut words = format!("state {}", state.replace('_', " "));
    if let Some(r) = r {
        words.push_str(&format!(", running {} of image {}", r.generation, r.image));
        if !r.failed_units.is_empty() {
            words.push_str(&format!(", failed units: {}", r.failed_units.join(", ")));
        }
    }
    if let Some(s) = &seen {
        words.push_str(&format!(", last seen {s}"));
    }
    let v = json!({
        "state": state,
        "image": r.map(|r| &r.image),
        "generation": r.map(|r| &r.generation),
        "failed_units": r.map(|r| &r.failed_units),
        "last_seen": seen,
        "booted_at": row.booted_at().map(nodestate::rfc3339),
    });
    (words, v)
}

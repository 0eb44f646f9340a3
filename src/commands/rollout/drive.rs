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
use crate::error::{Error, NotStarted};
use crate::nodestate::{self, NodeRow, State, Store};
use crate::process::{self, Cancel};
use crate::rollout::{Action, Gen, Machine, NodeRun, NodeState, Outcome, Phase, Seen, Stage};

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
    /// A reboot was issued (by this run or one before): errors exit 1
    /// from then on, never 2 ("nothing rebooted").
    touched: bool,
    /// The wall clock when this run began, and the monotonic one: the
    /// machine's clock is the first plus the time elapsed on the second, so
    /// a wall clock step (NTP) neither fires nor holds off a timeout.
    start: (i64, Instant),
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
        let mut m = m;
        m.heartbeat_ms = i64::from(cfg.server.heartbeat) * 1000;
        let start = (nodestate::now_ms(), Instant::now());
        m.run_start = start.0;
        let touched = m
            .nodes
            .iter()
            .any(|n| n.state != NodeState::Pending || n.phase == Phase::Back);
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
            touched,
            start,
        })
    }

    /// Runs the rollout to its end. Once a reboot was issued, an error that
    /// would exit 2 exits 1, but for a later batch's entries moved (that
    /// batch is not rebooted).
    pub(super) fn run(mut self) -> Result<(), Error> {
        match self.drive() {
            Err(Error::NotStarted(n)) if self.touched && !n.0.starts_with(MOVED) => {
                Err(Error::Failed(anyhow::anyhow!("{}", n.0)))
            }
            Err(Error::Config(c)) if self.touched => Err(Error::Failed(anyhow::anyhow!("{c}"))),
            r => r,
        }
    }

    fn drive(&mut self) -> Result<(), Error> {
        loop {
            if self.cancel.is_cancelled() {
                return self.interrupted();
            }
            let now = self.now();
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
                    self.out.waiting(&self.m, self.now());
                    self.said_waiting = Instant::now();
                }
                self.sleep();
            }
        }
    }

    /// The machine's clock (ms): this run's start on the wall clock plus the
    /// monotonic time since.
    fn now(&self) -> i64 {
        self.start.0 + self.start.1.elapsed().as_millis() as i64
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

    /// Issues the reboots of `idx` (recorded as rebooting already), unless
    /// the entries of some moved since the rollout began (a build,
    /// `ddc rollback` or `ddc node set` meanwhile): then none is rebooted
    /// and the rollout stops, resumable no more.
    fn reboot(&mut self, idx: &[usize]) -> Result<(), Error> {
        if self.m.nodes[idx[0]].phase == Phase::Forward {
            let cfg = config::load(self.file)?;
            let moved = super::moved(&cfg, idx.iter().map(|&i| &self.m.nodes[i]));
            if !moved.is_empty() {
                for &i in idx {
                    self.m.not_issued(i);
                }
                self.save(None)?;
                return Err(NotStarted(format!(
                    "{MOVED} since rollout {} began (a build, `ddc rollback` or `ddc node set` \
                     meanwhile): {}; batch {}/{} was not rebooted (it would boot what no \
                     canary tested). `ddc rollout --resume` refuses likewise: drop this rollout \
                     with `ddc rollout --abandon`, then start a new one",
                    self.id,
                    moved.join(", "),
                    self.m.batch + 1,
                    self.m.batches
                ))
                .into());
            }
        }
        if let Some(why) = self.serve_silent()? {
            for &i in idx {
                self.m.not_issued(i);
            }
            self.save(None)?;
            return Err(NotStarted(format!(
                "{why}: the nodes' reports would go unheard, so batch {}/{} was not rebooted; \
                 start it (`systemctl start ddc-serve`, or `ddc serve`), then `ddc rollout --resume`",
                self.m.batch + 1,
                self.m.batches
            ))
            .into());
        }
        self.touched = true;
        // The boot each node reports before its reboot: a report of that
        // boot again never counts as the new one.
        let rows = self.store.nodes()?;
        for &i in idx {
            let boot = rows
                .get(&self.m.nodes[i].name)
                .and_then(|r| r.report.as_ref());
            if let Some(r) = boot.filter(|r| !r.boot_id.is_empty()) {
                self.m.old_boot(i, r.boot_id.clone());
            }
        }
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
        let gone = super::select::gone_back(&self.cfg, idx.iter().map(|&i| &self.m.nodes[i]));
        if !gone.is_empty() {
            return Err(anyhow::anyhow!(
                "cannot pin back to the generation they ran: {}; rollout {} stays unfinished: \
                 publish that generation again, or `ddc rollout --abandon` and fix these nodes \
                 by hand (`ddc node set NODE image=IMG@GEN`)",
                gone.join(", "),
                self.id
            )
            .into());
        }
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
            cutoff: None,
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

/// How the error of entries moved mid-rollout begins.
/// Why no reboot may be issued now for want of a running `ddc serve`:
/// none has said so in the database within three of its beats.
impl Driver<'_> {
    fn serve_silent(&self) -> Result<Option<String>, Error> {
        let now = nodestate::now_ms();
        Ok(match self.store.serve_alive()? {
            Some((at, _)) if now - at <= 3 * nodestate::ALIVE_EVERY_MS => None,
            Some((at, pid)) => Some(format!(
                "`ddc serve` (pid {pid}) has not said it runs since {}",
                nodestate::rfc3339(at)
            )),
            None => Some("no `ddc serve` runs for this cluster".to_string()),
        })
    }
}

const MOVED: &str = "the entries of nodes of the next batch point at another generation";

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
        system: r.and_then(|r| r.system.clone()),
        boot_id: r.map(|r| r.boot_id.clone()).unwrap_or_default(),
        report_at: row.report_at,
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
        if let Some(system) = &r.system {
            words.push_str(&format!(", system {system}"));
        }
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
        "system": r.and_then(|r| r.system.as_ref()),
        "last_seen": seen,
        "booted_at": row.booted_at().map(nodestate::rfc3339),
    });
    (words, v)
}

//! The one place build progress is printed. The engine sends [`Event`]s; the
//! reporter turns them into a progress bar (on a terminal), plain lines, or
//! one JSON object per task per line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

mod fold;
mod live;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Ran,
    Cached,
    Failed,
    Skipped,
    Stale,
}

#[derive(Debug)]
pub enum Event {
    /// How many tasks this run looks at.
    Planned(usize),
    /// A heavy task started; where its log is, for the heartbeat.
    Started(String, Option<PathBuf>),
    Finished(Finished),
    /// Many cheap tasks finished together.
    Batch(Vec<Finished>),
    /// A line for the user that is not about one task.
    Note(String),
    /// A daemon a task made read its new config, and how (`dnsmasq
    /// (SIGHUP)`): listed in the summary line.
    Applied(String),
    Summary(Summary),
}

#[derive(Debug, Serialize)]
pub struct Finished {
    pub task: String,
    pub state: TaskState,
    pub reason: Option<String>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    #[serde(skip)]
    pub tail: Vec<String>,
    /// One of a kind's per-node tasks: folded with the others that ended alike.
    #[serde(skip)]
    pub per_node: bool,
    /// The reason without the values it shows (`input changed: node.mac`),
    /// to fold by; None when it is the reason itself.
    #[serde(skip)]
    pub reason_kind: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub ran: usize,
    pub cached: usize,
    pub failed: usize,
    pub skipped: usize,
    pub stale: usize,
    pub seconds: f64,
    pub dry_run: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Json,
    Plain,
    Progress,
    /// Collects nothing: for `ddc graph`, which prints states itself.
    Silent,
}

impl Mode {
    /// JSON if asked; a progress bar only on a terminal that draws one
    /// (not `TERM=dumb`); plain lines, without any escape code, otherwise.
    pub fn choose(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        {
            Mode::Progress
        } else {
            Mode::Plain
        }
    }
}

pub struct Reporter {
    tx: mpsc::Sender<Event>,
    thread: JoinHandle<()>,
}

impl Reporter {
    pub fn start(mode: Mode, verbose: bool) -> Reporter {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || Printer::new(mode, verbose).run(rx));
        Reporter { tx, thread }
    }

    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.tx.clone()
    }

    pub fn finish(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

fn plain_line(f: &Finished, verbose: bool) -> Option<String> {
    let reason = f
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match f.state {
        TaskState::Ran => Some(format!("ran {} ({:.2}s){reason}", f.task, f.seconds)),
        TaskState::Cached => verbose.then(|| format!("cached {}{reason}", f.task)),
        TaskState::Stale => Some(format!("would run {}{reason}", f.task)),
        TaskState::Skipped => Some(format!("skipped {}{reason}", f.task)),
        TaskState::Failed => {
            let mut s = format!("error: {} failed{reason}", f.task);
            if let Some(log) = &f.log {
                s.push_str(&format!("\n  log: {}", log.display()));
            }
            if !f.tail.is_empty() {
                s.push_str("\n  last lines of the log:");
                for l in &f.tail {
                    s.push_str(&format!("\n    {l}"));
                }
            }
            Some(s)
        }
    }
}

/// The summary, and the daemons made to read their new config.
fn summary_line(s: &Summary, applied: &[String]) -> String {
    if s.dry_run {
        format!(
            "ddc: dry run: {} would run, {} cached ({:.2}s)",
            s.stale, s.cached, s.seconds
        )
    } else {
        let mut line = format!(
            "ddc: {} ran, {} cached, {} failed",
            s.ran, s.cached, s.failed
        );
        if s.skipped > 0 {
            line.push_str(&format!(", {} skipped", s.skipped));
        }
        line.push_str(&format!(" in {:.2}s", s.seconds));
        if !applied.is_empty() {
            line.push_str(&format!("; applied: {}", applied.join(", ")));
        }
        line
    }
}

/// How many failed tasks the closing summary repeats, and how many lines
/// of each one's error.
const RECAP_TASKS: usize = 10;
const RECAP_LINES: usize = 3;
/// How many error blocks of one per-node kind print as they come (all with
/// `-v`); the others are counted at the end and repeated in the recap.
const BLOCKS_PER_KIND: usize = 3;

/// A failed task, repeated at the end.
struct Failure {
    task: String,
    error: String,
    log: Option<PathBuf>,
    /// Its error block was not printed (a per-node kind's fourth and on).
    hidden: bool,
}

/// The closing lines that repeat each failed task: its name, the first
/// lines of its error, its log.
fn recap(failures: &[Failure]) -> String {
    let n = failures.len();
    let mut s = format!("ddc: {n} task{} failed:", if n == 1 { "" } else { "s" });
    for f in failures.iter().take(RECAP_TASKS) {
        let mut lines = f.error.lines();
        s.push_str(&format!("\n  {}: {}", f.task, lines.next().unwrap_or("")));
        for l in lines.take(RECAP_LINES - 1) {
            s.push_str(&format!("\n    {l}"));
        }
        if let Some(log) = &f.log {
            s.push_str(&format!("\n    log: {}", log.display()));
        }
    }
    if n > RECAP_TASKS {
        let where_ = if failures[RECAP_TASKS..].iter().any(|f| f.hidden) {
            "in their logs, or with -v"
        } else {
            "above"
        };
        s.push_str(&format!(
            "\n  and {} more (their errors are {where_})",
            n - RECAP_TASKS
        ));
    }
    s
}

/// `failed pxe: 47 more nodes (node04 … node50)`: per kind, the failed
/// tasks whose error blocks were not printed.
fn hidden_failures(failures: &[Failure]) -> Vec<String> {
    let mut by_kind: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for f in failures.iter().filter(|f| f.hidden) {
        let (kind, node) = f.task.split_once(':').unwrap_or((&f.task, ""));
        by_kind.entry(kind).or_default().push(node);
    }
    by_kind
        .into_iter()
        .map(|(kind, mut nodes)| {
            nodes.sort_by(|a, b| fold::natural_cmp(a, b));
            let range = match nodes.len() {
                1 => nodes[0].to_string(),
                2 => format!("{}, {}", nodes[0], nodes[1]),
                n => format!("{} … {}", nodes[0], nodes[n - 1]),
            };
            format!(
                "failed {kind}: {} more nodes ({range}); -v prints each error",
                nodes.len()
            )
        })
        .collect()
}

/// The reporter's thread: what it has seen so far.
struct Printer {
    mode: Mode,
    verbose: bool,
    bar: Option<indicatif::ProgressBar>,
    running: Vec<String>,
    live: live::Running,
    applied: Vec<String>,
    folds: fold::Folds,
    failures: Vec<Failure>,
    /// JSON lines not yet written: one write per event, not per task (a
    /// batch of 10,000 cached tasks, line-buffered, was 10,000 writes).
    json: Vec<u8>,
}

impl Printer {
    fn new(mode: Mode, verbose: bool) -> Self {
        Printer {
            mode,
            verbose,
            bar: None,
            running: Vec::new(),
            live: Default::default(),
            applied: Vec::new(),
            folds: Default::default(),
            failures: Vec::new(),
            json: Vec::new(),
        }
    }

    /// Prints events until every sender is gone; between them, heartbeats.
    fn run(mut self, rx: mpsc::Receiver<Event>) {
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(Event::Batch(v)) => v.into_iter().for_each(|f| self.finished(f)),
                Ok(ev) => self.event(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.write_json();
            if self.mode == Mode::Plain {
                for l in self.live.heartbeats() {
                    let _ = writeln!(std::io::stderr(), "{l}");
                }
            }
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    /// Writes the JSON lines collected so far.
    fn write_json(&mut self) {
        if !self.json.is_empty() {
            let _ = std::io::stdout().lock().write_all(&self.json);
            self.json.clear();
        }
    }

    /// Prints a line above the bar, or on stdout.
    fn out(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
    }

    fn err(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    fn event(&mut self, ev: Event) {
        match (self.mode, ev) {
            // Silent (ddc graph) still says what it could not see.
            (Mode::Silent, Event::Note(n)) => eprintln!("ddc: {n}"),
            (Mode::Silent, _) => {}
            (Mode::Progress, Event::Planned(n)) => self.bar = Some(progress_bar(n)),
            (_, Event::Planned(_)) => {}
            (Mode::Progress, Event::Started(t, _)) => {
                self.running.push(t);
                if let Some(b) = &self.bar {
                    b.set_message(self.running.join(", "));
                }
            }
            (Mode::Plain, Event::Started(t, log)) => {
                let _ = writeln!(std::io::stderr(), "running {t}");
                self.live.start(t, log);
            }
            (_, Event::Started(..)) => {}
            (_, Event::Finished(f)) => self.finished(f),
            (_, Event::Note(n)) => self.err(&format!("ddc: {n}")),
            (_, Event::Applied(a)) => self.applied.push(a),
            (_, Event::Batch(v)) => v.into_iter().for_each(|f| self.finished(f)),
            (_, Event::Summary(s)) => self.summary(&s),
        }
    }

    fn finished(&mut self, f: Finished) {
        match self.mode {
            Mode::Silent => return,
            Mode::Json => {
                let _ = serde_json::to_writer(&mut self.json, &f);
                self.json.push(b'\n');
            }
            Mode::Progress | Mode::Plain => {}
        }
        self.running.retain(|t| *t != f.task);
        self.live.stop(&f.task);
        if let Some(b) = &self.bar {
            // Only tasks that run move the bar: the others leave its length.
            match f.state {
                TaskState::Cached | TaskState::Skipped => {
                    b.set_length(b.length().unwrap_or(1).saturating_sub(1))
                }
                _ => b.inc(1),
            }
            b.set_message(self.running.join(", "));
        }
        if f.state == TaskState::Failed {
            let kind = f.task.split(':').next().unwrap_or_default();
            let shown = self
                .failures
                .iter()
                .filter(|x| !x.hidden && x.task.split(':').next() == Some(kind))
                .count();
            let hidden = f.per_node && !self.verbose && shown >= BLOCKS_PER_KIND;
            if let Some(l) = plain_line(&f, self.verbose).filter(|_| !hidden) {
                self.err(&l);
            }
            self.failures.push(Failure {
                task: f.task,
                error: f.reason.unwrap_or_default(),
                log: f.log,
                hidden,
            });
            return;
        }
        if self.mode == Mode::Json {
            return;
        }
        let Some(line) = plain_line(&f, self.verbose) else {
            return;
        };
        if f.per_node {
            self.folds.add(&f, line);
        } else {
            self.out(&line);
        }
    }

    fn summary(&mut self, s: &Summary) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        for l in std::mem::take(&mut self.folds).lines(self.verbose) {
            self.out(&l);
        }
        // In the same order whatever order the scheduler ran them in.
        self.failures
            .sort_by(|a, b| fold::natural_cmp(&a.task, &b.task));
        for l in hidden_failures(&self.failures) {
            self.err(&l);
        }
        if !self.failures.is_empty() {
            self.err(&recap(&self.failures));
        }
        self.applied.sort();
        let line = summary_line(s, &self.applied);
        if self.mode == Mode::Json {
            self.err(&line);
        } else {
            self.out(&line);
        }
    }
}

/// The bar: tasks that ran out of those that run (cached ones shorten it).
fn progress_bar(n: usize) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(n as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} (eta {eta}) {wide_msg}",
        )
        .expect("a valid template"),
    );
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_lists_what_was_applied() {
        let s = Summary {
            ran: 3,
            cached: 10,
            seconds: 0.25,
            ..Default::default()
        };
        assert_eq!(
            summary_line(&s, &[]),
            "ddc: 3 ran, 10 cached, 0 failed in 0.25s"
        );
        let applied = ["dnsmasq (SIGHUP)".into(), "nfs-ganesha (SIGHUP)".into()];
        assert_eq!(
            summary_line(&s, &applied),
            "ddc: 3 ran, 10 cached, 0 failed in 0.25s; applied: dnsmasq (SIGHUP), nfs-ganesha (SIGHUP)"
        );
    }
}

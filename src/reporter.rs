//! The one place build progress is printed. The engine sends [`Event`]s; the
//! reporter turns them into a progress bar (on a terminal), plain lines, or
//! one JSON object per task per line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

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
    Started(String),
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
    pub fn choose(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
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
        let thread = std::thread::spawn(move || print_events(mode, verbose, rx));
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
        TaskState::Cached => verbose.then(|| format!("cached {}", f.task)),
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

fn print_events(mode: Mode, verbose: bool, rx: mpsc::Receiver<Event>) {
    let stdout = std::io::stdout();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut running: Vec<String> = Vec::new();
    let mut applied: Vec<String> = Vec::new();
    let events = rx.into_iter().flat_map(|ev| match ev {
        Event::Batch(v) => v.into_iter().map(Event::Finished).collect::<Vec<_>>(),
        other => vec![other],
    });
    for ev in events {
        match (mode, ev) {
            // Silent (ddc graph) still says what it could not see.
            (Mode::Silent, Event::Note(n)) => eprintln!("ddc: {n}"),
            (Mode::Silent, _) => {}
            (Mode::Progress, Event::Planned(n)) => {
                let b = indicatif::ProgressBar::new(n as u64);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
                    )
                    .expect("a valid template"),
                );
                b.enable_steady_tick(Duration::from_millis(200));
                bar = Some(b);
            }
            (_, Event::Planned(_)) => {}
            (Mode::Progress, Event::Started(t)) => {
                running.push(t);
                if let Some(b) = &bar {
                    b.set_message(running.join(", "));
                }
            }
            (Mode::Plain, Event::Started(t)) => {
                if verbose {
                    let _ = writeln!(std::io::stderr(), "running {t}");
                }
            }
            (_, Event::Started(_)) => {}
            (Mode::Json, Event::Finished(f)) => {
                let mut out = stdout.lock();
                let _ = serde_json::to_writer(&mut out, &f);
                let _ = out.write_all(b"\n");
                if f.state == TaskState::Failed {
                    if let Some(l) = plain_line(&f, verbose) {
                        let _ = writeln!(std::io::stderr(), "{l}");
                    }
                }
            }
            (Mode::Progress, Event::Finished(f)) => {
                running.retain(|t| *t != f.task);
                if let Some(b) = &bar {
                    b.inc(1);
                    b.set_message(running.join(", "));
                    if let Some(l) = plain_line(&f, verbose) {
                        b.println(l);
                    }
                }
            }
            (_, Event::Finished(f)) => {
                if let Some(l) = plain_line(&f, verbose) {
                    if f.state == TaskState::Failed {
                        let _ = writeln!(std::io::stderr(), "{l}");
                    } else {
                        let _ = writeln!(stdout.lock(), "{l}");
                    }
                }
            }
            (Mode::Progress, Event::Note(n)) => match &bar {
                Some(b) => b.println(format!("ddc: {n}")),
                None => {
                    let _ = writeln!(std::io::stderr(), "ddc: {n}");
                }
            },
            (_, Event::Note(n)) => {
                let _ = writeln!(std::io::stderr(), "ddc: {n}");
            }
            (_, Event::Applied(a)) => applied.push(a),
            (_, Event::Batch(_)) => unreachable!("batches are flattened above"),
            (m, Event::Summary(s)) => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                applied.sort();
                let line = summary_line(&s, &applied);
                if m == Mode::Json {
                    let _ = writeln!(std::io::stderr(), "{line}");
                } else {
                    let _ = writeln!(stdout.lock(), "{line}");
                }
            }
        }
    }
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
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

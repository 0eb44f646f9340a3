//! Running steps when stderr is not a terminal (a pipe to `tee`, a CI log):
//! a start line per step, and every [`HEARTBEAT`] a line with how long it
//! has run and the last line of its log, so a long step is never silent.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a running step says it still runs.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(10);
/// The longest log line a heartbeat shows, in characters.
const TAIL_CHARS: usize = 120;

struct Step {
    task: String,
    log: Option<PathBuf>,
    started: Instant,
    said: Instant,
}

/// The steps running now.
#[derive(Default)]
pub(super) struct Running {
    steps: Vec<Step>,
}

impl Running {
    pub(super) fn start(&mut self, task: String, log: Option<PathBuf>) {
        let now = Instant::now();
        self.steps.push(Step {
            task,
            log,
            started: now,
            said: now,
        });
    }

    pub(super) fn stop(&mut self, task: &str) {
        self.steps.retain(|s| s.task != task);
    }

    /// The heartbeat lines of steps that said nothing for [`HEARTBEAT`].
    pub(super) fn heartbeats(&mut self) -> Vec<String> {
        let now = Instant::now();
        let mut out = Vec::new();
        for s in self.steps.iter_mut().filter(|s| now - s.said >= HEARTBEAT) {
            s.said = now;
            let mut line = format!(
                "still running {} ({}s)",
                s.task,
                (now - s.started).as_secs()
            );
            if let Some(last) = s.log.as_deref().and_then(last_line) {
                line.push_str(&format!(": {last}"));
            }
            out.push(line);
        }
        out
    }
}

/// The last non-empty line of a log, without control characters, at most
/// [`TAIL_CHARS`] long.
fn last_line(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    // A progress meter rewrites its line with \r: its last state counts.
    let line = text
        .split(['\n', '\r'])
        .map(str::trim)
        .rfind(|l| !l.is_empty())?;
    Some(bounded(line))
}

fn bounded(line: &str) -> String {
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= TAIL_CHARS {
        clean
    } else {
        let mut s: String = clean.chars().take(TAIL_CHARS - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_bounded_and_clean() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let long = "x".repeat(500);
        std::fs::write(&log, format!("first\n\x1b[1m{long}\n\n")).unwrap();
        let l = last_line(&log).unwrap();
        assert_eq!(l.chars().count(), TAIL_CHARS);
        assert!(!l.contains('\x1b') && l.ends_with('…'), "{l}");
        std::fs::write(&log, "get 1%\rget 50%\r").unwrap();
        assert_eq!(last_line(&log).unwrap(), "get 50%");
    }
}

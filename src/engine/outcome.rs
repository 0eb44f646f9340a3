//! How a task ended: its state, why, and what the reporter shows of it.

use std::path::PathBuf;
use std::time::Instant;

use super::StaleReason;
use crate::fingerprint::Fingerprint;
use crate::reporter::TaskState;

/// Why a task ended as it did.
#[derive(Clone, Debug)]
pub(crate) enum Reason {
    Stale(StaleReason),
    /// A failure, a skip, or a dependency taken as recorded.
    Said(String),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Stale(s) => s.fmt(f),
            Reason::Said(s) => f.write_str(s),
        }
    }
}

/// How a task ended in this run.
#[derive(Clone, Debug)]
pub(crate) struct TaskResult {
    pub(crate) state: TaskState,
    pub(crate) reason: Option<Reason>,
    /// None when the task did not produce (failed, skipped, or would run).
    pub(crate) out_hash: Option<Fingerprint>,
}

/// How a task ended, with what the reporter shows of it.
pub(super) struct Outcome {
    pub(super) result: TaskResult,
    pub(super) seconds: f64,
    /// The failed task's log, whose last lines are shown.
    pub(super) log: Option<PathBuf>,
}

impl Outcome {
    pub(super) fn new(
        state: TaskState,
        reason: Option<Reason>,
        out_hash: Option<Fingerprint>,
    ) -> Self {
        Outcome {
            result: TaskResult {
                state,
                reason,
                out_hash,
            },
            seconds: 0.0,
            log: None,
        }
    }

    pub(super) fn said(state: TaskState, text: impl Into<String>) -> Self {
        Outcome::new(state, Some(Reason::Said(text.into())), None)
    }

    pub(super) fn took(mut self, start: Instant) -> Self {
        self.seconds = start.elapsed().as_secs_f64();
        self
    }
}

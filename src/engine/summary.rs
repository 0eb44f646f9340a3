//! How a build's tasks ended, summed up for the reporter, and why the
//! scheduler left some unstarted.

use std::time::Instant;

use crate::graph::Graph;
use crate::reporter::{Summary, TaskState};
use crate::scheduler::Skip;

use super::TaskResult;

/// The reason shown for a task the scheduler did not start.
pub(super) fn skip_reason(graph: &Graph, s: &Skip) -> String {
    match s {
        Skip::DependencyFailed(d) => format!("dependency failed: {}", graph.tasks[*d].id),
        Skip::Stopped => "not started: an earlier task failed (use -k to go on)".to_string(),
        Skip::Cancelled => "not started: the build was interrupted".to_string(),
    }
}

/// The counts of a build's results.
pub(super) fn summarize(results: &[Option<TaskResult>], dry_run: bool, start: Instant) -> Summary {
    let mut summary = Summary {
        dry_run,
        ..Default::default()
    };
    for r in results.iter().flatten() {
        match r.state {
            TaskState::Ran => summary.ran += 1,
            TaskState::Cached => summary.cached += 1,
            TaskState::Failed => summary.failed += 1,
            TaskState::Skipped => summary.skipped += 1,
            TaskState::Stale => summary.stale += 1,
        }
    }
    summary.seconds = start.elapsed().as_secs_f64();
    summary
}

//! `ddc rollout`'s arguments, and the call they make.

use std::time::Duration;

use clap::Args;

use crate::commands;
use crate::error::Error;

/// `ddc rollout`'s arguments.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("size").args(["batch", "percent"])))]
pub(crate) struct Rollout {
    /// The image whose nodes move (default: every image's).
    #[arg(value_name = "IMG", conflicts_with_all = ["resume", "abandon"])]
    image: Option<String>,
    /// The nodes rebooted first, alone in the first batch (default: the
    /// first node by name); several after one --canary, or comma-separated
    /// (give IMG before them).
    #[arg(long, value_name = "NODE", num_args = 1.., value_delimiter = ',',
          conflicts_with_all = ["resume", "abandon"])]
    canary: Vec<String>,
    /// How many nodes each batch after the canaries reboots (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..),
          conflicts_with_all = ["resume", "abandon"])]
    batch: Option<u64>,
    /// Each batch after the canaries reboots P percent of the nodes moved
    /// (rounded down, at least 1).
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(1..=100),
          conflicts_with_all = ["resume", "abandon"])]
    percent: Option<u32>,
    /// How long a rebooted node has to report up on its new generation
    /// with no failed units (like 90s, 10m, 1h).
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = humantime::parse_duration,
          conflicts_with_all = ["resume", "abandon"])]
    timeout: Duration,
    /// How many nodes of a batch may fail before the rollout stops.
    #[arg(long, value_name = "K", default_value_t = 0, conflicts_with_all = ["resume", "abandon"])]
    max_failed: usize,
    /// When a batch stops the rollout, pin its failed nodes back to the
    /// generation they ran (image = "IMG@GEN" in the nodes_file CSV),
    /// rebuild their entries and reboot them.
    #[arg(long, conflicts_with_all = ["resume", "abandon"])]
    rollback_on_failure: bool,
    /// Print the plan (batches, how each node is rebooted, the nodes
    /// skipped and why); reboot nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// One JSON object per event per line on stdout (plan, skipped,
    /// reboot, up, failed, rollback, done).
    #[arg(long)]
    json: bool,
    /// Continue the last unfinished rollout with its stored parameters; a
    /// node already rebooted is only waited for, never rebooted again.
    #[arg(long, conflicts_with = "abandon")]
    resume: bool,
    /// Drop the last unfinished rollout (nothing is rebooted).
    #[arg(long)]
    abandon: bool,
}

impl Rollout {
    pub(super) fn run(self, file: &std::path::Path) -> Result<(), Error> {
        use commands::rollout::{Options, Size, Start};
        let start = if self.resume {
            Start::Resume
        } else if self.abandon {
            Start::Abandon
        } else {
            Start::New
        };
        let size = match self.percent {
            Some(p) => Size::Percent(p),
            None => Size::Count(self.batch.unwrap_or(1) as usize),
        };
        commands::rollout::run(
            file,
            Options {
                start,
                image: self.image,
                canaries: self.canary,
                size,
                timeout: self.timeout,
                max_failed: self.max_failed,
                rollback: self.rollback_on_failure,
                dry_run: self.dry_run,
                json: self.json,
            },
        )
    }
}

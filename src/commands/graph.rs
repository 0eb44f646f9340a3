//! `ddc graph`: shows the task graph and each task's state against the cache,
//! found by a dry run that runs nothing and takes no lock. The drawing is
//! `crate::render`'s. Must not import `cli`.

use std::path::Path;
use std::sync::Arc;

use crate::engine::{self, BuildOptions};
use crate::error::Error;
use crate::process::Cancel;
use crate::render::{self, Format};
use crate::reporter::{Mode, Reporter};

use super::{load_to_read, Loaded};

pub(crate) fn run(file: &Path, format: Format) -> Result<(), Error> {
    let Loaded { cfg, graph, state } = load_to_read(file)?;
    let reporter = Reporter::start(Mode::Silent, false);
    let cancel = Arc::new(Cancel::default());
    let opts = BuildOptions {
        targets: vec![],
        dry_run: true,
        jobs: 1,
        keep_going: true,
        no_deps: false,
        verify: false,
        cutoff: None,
    };
    let state = state.join().ok().and_then(|s| s.ok());
    let report = engine::build(&cfg, &graph, &opts, reporter.sender(), &cancel, state)?;
    reporter.finish();
    print!("{}", render::render(format, &graph, &report.results));
    Ok(())
}

//! What happens before a build's first task: warnings about the config,
//! the records (loaded again if another build ran meanwhile), the preflight
//! checks, mounts and temporary files an interrupted run left, the lock.

use std::sync::mpsc::Sender;

use crate::cache::{self, State};
use crate::config::Config;
use crate::error::{Error, NotStarted};
use crate::graph::Graph;
use crate::reporter::Event;

use super::{cache_dirs, preflight, readable, sweep, BuildOptions};

/// Notes, state and checks before a build. Returns the loaded state.
pub(super) fn prepare(
    cfg: &Config,
    graph: &Graph,
    opts: &BuildOptions,
    events: &Sender<Event>,
    state: Option<State>,
    wanted: &[bool],
) -> Result<State, Error> {
    let dirs = cache_dirs(cfg);
    let note = |s: String| {
        let _ = events.send(Event::Note(s));
    };
    if let Some(n) = super::insecure_note(cfg) {
        note(n);
    }
    let state = match state {
        Some(s) if s.is_current(&dirs) => s,
        _ => readable::load_state(&dirs, opts.dry_run, &note)?,
    };
    // Everything the build needs is checked before it touches anything.
    if !opts.no_deps {
        match preflight::preflight(cfg, graph, &state, wanted, opts.dry_run) {
            Some(p) if opts.dry_run => note(format!("ddc build would not start: {p}")),
            Some(p) => return Err(NotStarted(p).into()),
            None => {}
        }
    }
    if !opts.dry_run {
        for m in crate::chroot::unmount_leftovers(&dirs.root) {
            note(format!(
                "unmounted {} left mounted by an earlier, interrupted run",
                m.display()
            ));
        }
    }
    if !opts.dry_run {
        cache::claim(&dirs, &cfg.file)?;
        let killed = cache::begin_build(&dirs)?;
        // Until this build ends well, the last one's no-op no longer holds.
        super::cutoff::forget(&dirs);
        for p in sweep::temp_files(&state, &dirs, killed) {
            note(format!(
                "removed {}, left by a ddc that was killed",
                p.display()
            ));
        }
    }
    Ok(state)
}

//! What a user who may not read everything sees: commands that only read
//! (`graph`, `build -n`) skip a cache file or an output they cannot read,
//! with a note, instead of failing or calling it changed.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::sync::Mutex;

use crate::cache::{CacheDirs, State};

/// Whether an error comes from a permission the user lacks.
pub(super) fn denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::PermissionDenied)
            || c.downcast_ref::<walkdir::Error>()
                .and_then(|w| w.io_error())
                .is_some_and(|io| io.kind() == ErrorKind::PermissionDenied)
    })
}

/// The records; in a dry run, records this user cannot read are skipped
/// with a note (every task then shows as not built).
pub(super) fn load_state(
    dirs: &CacheDirs,
    dry_run: bool,
    note: &dyn Fn(String),
) -> anyhow::Result<State> {
    match State::load(dirs) {
        Err(e) if dry_run && denied(&e) => {
            note(format!(
                "skipped the records: {e:#}; tasks show as not built (run as root, or as the user who builds, to see their state)"
            ));
            Ok(State::default())
        }
        r => r,
    }
}

/// Outputs a dry run could not read, taken as recorded.
#[derive(Default)]
pub(super) struct Unreadable(Mutex<BTreeSet<String>>);

impl Unreadable {
    /// Notes `path` when `denied`; true if it was.
    pub(super) fn skip(&self, denied: bool, path: String) -> bool {
        if denied {
            self.0.lock().expect("unreadable").insert(path);
        }
        denied
    }

    /// The note for the user, if anything was skipped.
    pub(super) fn note(self) -> Option<String> {
        let paths = self.0.into_inner().expect("unreadable");
        let n = paths.len();
        let first = paths.into_iter().next()?;
        let more = if n > 1 {
            format!(" and {} more", n - 1)
        } else {
            String::new()
        };
        Some(format!(
            "skipped {first}{more}: this user cannot read them, so they are taken as recorded (run as root to check them)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn permission_errors_are_told_apart() {
        let io = std::io::Error::from(ErrorKind::PermissionDenied);
        assert!(denied(&anyhow::Error::from(io).context("cannot read x")));
        let other: anyhow::Result<()> = Err(std::io::Error::from(ErrorKind::NotFound).into());
        assert!(!denied(&other.context("x").unwrap_err()));
        let u = Unreadable::default();
        assert!(!u.skip(false, "a".into()));
        assert!(u.skip(true, "cache/images/default/packages".into()));
        assert!(u.skip(true, "out/nfsroot/default".into()));
        assert_eq!(
            u.note().unwrap(),
            "skipped cache/images/default/packages and 1 more: this user cannot read them, so they are taken as recorded (run as root to check them)"
        );
        assert!(Unreadable::default().note().is_none());
    }
}

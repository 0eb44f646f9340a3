//! An image's reproducibility keys: `source_date_epoch`, and `snapshot`
//! with `snapshot_archive`, which pin its mirror to one moment of Debian's
//! snapshot archive.

use super::rules::MIRROR;
use super::Validator;
use crate::config::raw::RawImage;
use crate::epoch::{snapshot_time, MAX_EPOCH};

/// What the keys decide: the epoch of the image's steps (None: derived
/// from the mirror when bootstrapping), the snapshot, and the mirror that
/// replaces the image's when it has one.
pub(super) struct Pin {
    pub(super) source_date_epoch: Option<i64>,
    pub(super) snapshot: Option<String>,
    pub(super) mirror: Option<String>,
}

impl Validator<'_> {
    /// Reads and checks the keys, taking them out of `raw`; an image with
    /// `from` may not set `snapshot` or `snapshot_archive`.
    pub(super) fn reproducible(&mut self, image: &str, raw: &mut RawImage) -> Pin {
        let key = |k: &str| format!("images.{image}.{k}");
        if let Some(from) = &raw.from {
            // A child is built on its base's packages layer, from its
            // base's mirror: a snapshot of its own would be ignored.
            let base = from.get_ref().clone();
            for (k, v) in [
                ("snapshot", raw.snapshot.take()),
                ("snapshot_archive", raw.snapshot_archive.take()),
            ] {
                if let Some(v) = v {
                    let origin = self.origin(&v);
                    self.error(
                        origin,
                        key(k),
                        format!("{image} inherits its base's snapshot (from = {base:?}): remove {k}, or set it in images.{base}"),
                    );
                }
            }
        }
        let epoch = raw.source_date_epoch.take().and_then(|e| {
            let origin = self.origin(&e);
            let v = e.into_inner();
            if (0..=MAX_EPOCH).contains(&v) {
                Some(v)
            } else {
                self.error(
                    origin,
                    key("source_date_epoch"),
                    format!("{v} is not a time ddc can use: write seconds since 1970-01-01 00:00 UTC, from 0 to {MAX_EPOCH} (like 1704067200; `date +%s` prints the current one)"),
                );
                None
            }
        });
        let archive = raw.snapshot_archive.take().map(|a| {
            (
                self.origin(&a),
                self.checked(a, &key("snapshot_archive"), &MIRROR),
            )
        });
        let mut pin = Pin {
            source_date_epoch: epoch,
            snapshot: None,
            mirror: None,
        };
        let Some(snap) = raw.snapshot.take() else {
            if let Some((origin, _)) = archive {
                self.error(
                    origin,
                    key("snapshot_archive"),
                    "is used only with a snapshot: add snapshot = \"YYYYMMDDTHHMMSSZ\" (the moment to pin the mirror to), or remove snapshot_archive",
                );
            }
            return pin;
        };
        let snap = self.sourced(snap);
        let Some(time) = snapshot_time(&snap.value) else {
            self.error(
                snap.origin,
                key("snapshot"),
                format!(
                    "{:?} is not a snapshot time: write it in UTC as YYYYMMDDTHHMMSSZ, like \"20240101T000000Z\"",
                    snap.value
                ),
            );
            return pin;
        };
        if let Some(m) = &raw.mirror {
            let origin = self.origin(m);
            self.error(
                origin,
                key("mirror"),
                "and snapshot both say where the packages come from: remove mirror (with a snapshot, the mirror is snapshot_archive at that moment)",
            );
        }
        match archive {
            Some((_, base)) => {
                pin.mirror = Some(format!("{}/{}/", base.trim_end_matches('/'), snap.value));
            }
            None => self.error(
                snap.origin.clone(),
                key("snapshot"),
                "needs snapshot_archive, the base URL of Debian's snapshot archive (ddc appends /TIMESTAMP/ to it): add snapshot_archive = \"URL\"",
            ),
        }
        pin.source_date_epoch = pin.source_date_epoch.or(Some(time));
        pin.snapshot = Some(snap.value);
        pin
    }
}

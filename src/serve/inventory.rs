//! What `ddc serve` knows of the cluster: each node's MAC and IP by
//! hostname, hostnames by MAC, and the document root, taken from the
//! validated config; and the watch that reloads it when a `ddc build` (or
//! an edit) changes the Ddcfile, the inventory or an image's `current` link.
//! A config that does not validate leaves the last good one in use.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{self, Config};

/// A node as the service checks it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Lowercase, colon separated.
    pub(crate) mac: String,
    pub(crate) ip: Ipv4Addr,
}

/// The nodes and the document root of one validated config.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub(crate) by_host: HashMap<String, Entry>,
    /// Hostname by MAC, lowercase and colon separated.
    pub(crate) by_mac: HashMap<String, String>,
    pub(crate) root: PathBuf,
    /// What was looked at to decide the config changed.
    stamp: Stamp,
}

/// A file's size, modification time (s, ns) and inode.
type FileStamp = (u64, i64, i64, u64);

/// Size, modification time and inode of each source file, and where each
/// image's `current` link points.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
struct Stamp(Vec<(PathBuf, Option<FileStamp>)>, Vec<Option<PathBuf>>);

fn stamp_of(file: &Path, cfg: &Config) -> Stamp {
    let mut files = vec![config::ddcfile_path(file)];
    files.extend(cfg.sources.iter().cloned());
    let stats = files
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p)
                .ok()
                .map(|m| (m.size(), m.mtime(), m.mtime_nsec(), m.ino()));
            (p, m)
        })
        .collect();
    let links = cfg
        .images
        .keys()
        .map(|i| std::fs::read_link(cfg.paths.nfs_root.join(i).join("current")).ok())
        .collect();
    Stamp(stats, links)
}

impl Inventory {
    pub(crate) fn of(file: &Path, cfg: &Config) -> Inventory {
        let by_host = cfg
            .nodes
            .iter()
            .map(|n| {
                let e = Entry {
                    mac: n.mac.clone(),
                    ip: n.ip,
                };
                (n.hostname.clone(), e)
            })
            .collect();
        let by_mac = cfg
            .nodes
            .iter()
            .map(|n| (n.mac.clone(), n.hostname.clone()))
            .collect();
        Inventory {
            by_host,
            by_mac,
            root: cfg.paths.tftp_root.clone(),
            stamp: stamp_of(file, cfg),
        }
    }
}

/// The inventory in use, swapped whole on a reload; readers clone the `Arc`.
pub(crate) type Shared = Arc<RwLock<Arc<Inventory>>>;

/// The inventory in use now.
pub(crate) fn current(shared: &Shared) -> Arc<Inventory> {
    shared
        .read()
        .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
}

/// Checks every second whether the config's files or `current` links
/// changed, and reloads it if so. Runs until the runtime stops. Takes no
/// lock `ddc build` waits for: it only stats and reads.
pub(crate) async fn watch(file: PathBuf, shared: Shared, mut cfg: Config) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let old = current(&shared).stamp.clone();
        let (f, c) = (file.clone(), cfg.clone());
        let Ok(Some(next)) = tokio::task::spawn_blocking(move || reload(&f, &c, &old)).await else {
            continue;
        };
        let (new_cfg, inv) = next;
        tracing::info!(nodes = inv.by_host.len(), "config reloaded");
        cfg = new_cfg;
        if let Ok(mut g) = shared.write() {
            *g = Arc::new(inv);
        }
    }
}

/// The new config and inventory if anything changed since `old`.
fn reload(file: &Path, cfg: &Config, old: &Stamp) -> Option<(Config, Inventory)> {
    if stamp_of(file, cfg) == *old {
        return None;
    }
    match config::load(file) {
        Ok(c) => {
            let inv = Inventory::of(file, &c);
            Some((c, inv))
        }
        Err(e) => {
            tracing::warn!(
                "the config changed but does not validate; serving the last good one:\n{e}"
            );
            // Remember the failing stamp so the error is logged once.
            let mut inv = Inventory::of(file, cfg);
            inv.stamp = stamp_of(file, cfg);
            Some((cfg.clone(), inv))
        }
    }
}

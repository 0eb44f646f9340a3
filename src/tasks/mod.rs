//! The actions behind each task kind.

pub mod boot;
pub mod image;
pub mod server;

use anyhow::Result;

use crate::config::Config;
use crate::fingerprint::{Fingerprint, Input};
use crate::generations;
use crate::task::{Action, Produced, RunCtx, TaskSpec};

/// Inputs read when a task is about to run, after its dependencies: the
/// generation a boot entry points at (publish and `ddc rollback` move it),
/// and the generations `exports` lists (`ddc gc` removes some).
pub fn late_inputs(spec: &TaskSpec, cfg: &Config, memo: &LateMemo) -> Vec<Input> {
    let generation = |image: &str, pin: Option<&str>| -> String {
        let compute = || {
            boot::boot_generation(cfg, image, pin).unwrap_or_else(|e| format!("unresolved: {e}"))
        };
        match (pin, cfg.images.keys().position(|k| k == image)) {
            (None, Some(i)) => memo.current[i].get_or_init(compute).clone(),
            _ => compute(),
        }
    };
    match &spec.action {
        Action::Pxe { node } => {
            let n = &cfg.nodes[*node];
            vec![Input {
                name: "generation".into(),
                hash: Fingerprint::of(generation(&n.image, n.pin.as_deref()).as_bytes()),
            }]
        }
        Action::PxeDefault => {
            let image = cfg.server.default_entry.as_deref().unwrap_or_default();
            vec![Input {
                name: "generation".into(),
                hash: Fingerprint::of(generation(image, None).as_bytes()),
            }]
        }
        Action::Exports => {
            let mut all = String::new();
            for image in generations::published_images(&cfg.paths.nfs_root) {
                for g in generations::list(&cfg.paths.nfs_root, &image) {
                    all.push_str(&format!("{image}/{}\n", g.name));
                }
            }
            vec![Input {
                name: "generations".into(),
                hash: Fingerprint::of(all.as_bytes()),
            }]
        }
        _ => Vec::new(),
    }
}

/// What late inputs read once per build: each image's current generation
/// (boot entries of 10,000 nodes ask for it).
pub struct LateMemo {
    current: Vec<std::sync::OnceLock<String>>,
}

impl LateMemo {
    pub fn new(cfg: &Config) -> Self {
        LateMemo {
            current: cfg.images.keys().map(|_| Default::default()).collect(),
        }
    }
}

/// Runs a task's action.
pub fn run(spec: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
    match &spec.action {
        Action::ImageStep { image, step } => image::run_step(ctx, spec, image, *step),
        Action::Publish { image } => image::run_publish(ctx, image),
        Action::Bootloader => boot::run_bootloader(ctx),
        Action::Pxe { node } => boot::run_pxe(ctx, Some(*node)),
        Action::PxeDefault => boot::run_pxe(ctx, None),
        Action::Exports => server::run_exports(ctx),
        Action::Dhcp => server::run_dhcp(ctx),
        Action::Rsyslog => server::run_rsyslog(ctx),
    }
}

//! `exports`: the NFS exports of every kept generation of every image, for
//! the kernel server (`exports.d`) and nfs-ganesha, with export ids that stay
//! the same from build to build; in place, or as candidates for `apply:nfs`.

use anyhow::Result;
use serde::Serialize;

use super::apply::{destination, staging, Daemon, Role};
use super::{Kind, LateMemo, Planner, Produced, Recipe, RunCtx, Subject, TaskSpec};
use crate::config::{Config, Image};
use crate::fingerprint::{Fingerprint, Input};
use crate::fsutil::atomic_write;
use crate::generations;

pub(crate) struct Exports;

impl Recipe for Exports {
    fn name(&self) -> &'static str {
        "exports"
    }

    fn templates(&self) -> &'static [&'static str] {
        &["templates/exports.j2", "templates/ganesha.conf.j2"]
    }

    fn plan(&self, p: &mut Planner, _image: Option<&Image>) -> Result<()> {
        let cfg = p.cfg;
        let mut inputs = p.templates(Kind::Exports)?;
        inputs.push(Planner::value("cluster.network", &cfg.cluster.network));
        inputs.push(Planner::value("cluster.master", &cfg.cluster.master));
        inputs.push(Planner::value(
            "server.export_options",
            &cfg.server.export_options,
        ));
        inputs.push(Planner::value("paths.exports", &cfg.paths.exports));
        inputs.push(Planner::value("paths.ganesha", &cfg.paths.ganesha));
        inputs.push(staging(cfg, Daemon::Nfs));
        let mut publish: Vec<(&str, usize)> = p.publish_tasks().into_iter().collect();
        publish.sort();
        let deps = publish.into_iter().map(|(_, i)| i).collect();
        p.push(Planner::task(
            Kind::Exports,
            None,
            deps,
            inputs,
            Subject::Cluster,
        ));
        Ok(())
    }

    /// The generations it lists: `ddc gc` removes some.
    fn late_inputs(&self, _task: &TaskSpec, cfg: &Config, _memo: &LateMemo) -> Vec<Input> {
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

    fn outputs(&self, _task: &TaskSpec, cfg: &Config) -> Vec<std::path::PathBuf> {
        vec![
            destination(cfg, Role::Exports),
            destination(cfg, Role::Ganesha),
        ]
    }

    fn run(&self, _task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
        run_exports(ctx)
    }
}

#[derive(Serialize)]
struct Export {
    image: String,
    generation: String,
    path: String,
    /// Stable across builds: ganesha puts it in every file handle.
    export_id: u32,
}

/// Every kept generation of every image, with stable ganesha export ids.
fn exports(ctx: &RunCtx) -> Vec<Export> {
    let cfg = ctx.cfg;
    let mut out: Vec<Export> = Vec::new();
    for image in generations::published_images(&cfg.paths.nfs_root) {
        for g in generations::list(&cfg.paths.nfs_root, &image) {
            out.push(Export {
                image: image.clone(),
                path: cfg
                    .paths
                    .nfs_root
                    .join(&image)
                    .join(&g.name)
                    .display()
                    .to_string(),
                generation: g.name,
                export_id: 0,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    // Export ids come from the path's hash, moved on past collisions in path
    // order; 1..=99 are left to the administrator's own exports.
    let mut used = std::collections::HashSet::new();
    for e in &mut out {
        let h = blake3::hash(e.path.as_bytes());
        let mut id =
            100 + u32::from_le_bytes(h.as_bytes()[..4].try_into().expect("4 bytes")) % 60000;
        while !used.insert(id) {
            id = if id >= 60099 { 100 } else { id + 1 };
        }
        e.export_id = id;
    }
    out
}

fn run_exports(ctx: &mut RunCtx) -> Result<Produced> {
    let cfg = ctx.cfg;
    let exports = exports(ctx);
    let data = serde_json::json!({
        "exports": exports,
        "network": cfg.cluster.network.to_string(),
        "options": cfg.server.export_options,
        "privileged_port": !cfg.server.allow_insecure_ports,
        "master": cfg.cluster.master.to_string(),
    });
    let mut out = Produced::default();
    for (tpl, role) in [
        ("templates/exports.j2", Role::Exports),
        ("templates/ganesha.conf.j2", Role::Ganesha),
    ] {
        let text = ctx.templates.render(tpl, &data)?;
        let path = destination(cfg, role);
        atomic_write(&path, text.as_bytes(), true)?;
        out.files.push(path);
    }
    Ok(out)
}

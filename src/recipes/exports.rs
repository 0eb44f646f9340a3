//! `exports`: the NFS exports of every kept generation of every image, for
//! the kernel server (`exports.d`) and nfs-ganesha, with export ids that stay
//! the same from build to build; in place, or as candidates for `apply:nfs`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;

use super::apply::{destination, staging, wiring, wiring_input, Daemon, Role};
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
        inputs.push(wiring_input(cfg, Daemon::Nfs));
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
            ids_file(cfg),
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

/// Where the export ids given out so far are kept: beside the generations
/// they name, so that neither `ddc clean` nor a new export moves one.
fn ids_file(cfg: &Config) -> std::path::PathBuf {
    cfg.paths.nfs_root.join(".ddc-export-ids")
}

/// The ids given out so far, by export path.
fn known_ids(cfg: &Config) -> BTreeMap<String, u32> {
    std::fs::read(ids_file(cfg))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// An id for every path: the one it has, else one from the path's hash,
/// moved on past the ids in use. An export keeps its id as long as it
/// exists (ganesha puts it in every file handle a running node holds);
/// 1..=99 are left to the administrator's own exports.
fn assign_ids(paths: &[String], known: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    let mut out: BTreeMap<String, u32> = paths
        .iter()
        .filter_map(|p| Some((p.clone(), *known.get(p)?)))
        .collect();
    let mut used: BTreeSet<u32> = out.values().copied().collect();
    let new: Vec<&String> = paths.iter().filter(|p| !out.contains_key(*p)).collect();
    for p in new {
        let h = blake3::hash(p.as_bytes());
        let mut id =
            100 + u32::from_le_bytes(h.as_bytes()[..4].try_into().expect("4 bytes")) % 60000;
        while !used.insert(id) {
            id = if id >= 60099 { 100 } else { id + 1 };
        }
        out.insert(p.clone(), id);
    }
    out
}

/// Every kept generation of every image, with stable ganesha export ids.
fn exports(ctx: &RunCtx) -> (Vec<Export>, BTreeMap<String, u32>) {
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
    let paths: Vec<String> = out.iter().map(|e| e.path.clone()).collect();
    let ids = assign_ids(&paths, &known_ids(ctx.cfg));
    for e in &mut out {
        e.export_id = ids[&e.path];
    }
    (out, ids)
}

fn run_exports(ctx: &mut RunCtx) -> Result<Produced> {
    let cfg = ctx.cfg;
    let (exports, ids) = exports(ctx);
    let mut data = serde_json::json!({
        "ddcfile": cfg.file.display().to_string(),
        "exports": exports,
        "network": cfg.cluster.network.to_string(),
        "options": cfg.server.export_options,
        "ganesha": cfg.server.ganesha,
        "privileged_port": !cfg.server.allow_insecure_ports,
        "master": cfg.cluster.master.to_string(),
    });
    let mut out = Produced::default();
    for (tpl, role) in [
        ("templates/exports.j2", Role::Exports),
        ("templates/ganesha.conf.j2", Role::Ganesha),
    ] {
        data["wiring"] = wiring(cfg, role);
        let text = ctx.templates.render(tpl, &data)?;
        let path = destination(cfg, role);
        atomic_write(&path, text.as_bytes(), true)?;
        out.files.push(path);
    }
    let ids_path = ids_file(cfg);
    atomic_write(&ids_path, &serde_json::to_vec_pretty(&ids)?, true)?;
    out.files.push(ids_path);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash-derived id of a path, as a new export would get it.
    fn natural(p: &str) -> u32 {
        assign_ids(&[p.to_string()], &BTreeMap::new())[p]
    }

    #[test]
    fn a_running_export_keeps_its_id_when_a_new_one_collides() {
        let running = "/srv/nfsroot/default/0002-aaaaaaaaaaaa".to_string();
        let first = assign_ids(std::slice::from_ref(&running), &BTreeMap::new());
        // A path that sorts first and hashes to the running export's id.
        let want = first[&running];
        let thief = (0..2_000_000)
            .map(|i| format!("/srv/nfsroot/a{i}/0001-bbbbbbbbbbbb"))
            .find(|p| natural(p) == want)
            .expect("a colliding path");
        let both = assign_ids(&[thief.clone(), running.clone()], &first);
        assert_eq!(both[&running], want, "the running export was renumbered");
        assert_ne!(both[&thief], want);
        // Gone exports free their ids; survivors keep theirs.
        let later = assign_ids(std::slice::from_ref(&running), &both);
        assert_eq!(later.len(), 1);
        assert_eq!(later[&running], want);
    }
}

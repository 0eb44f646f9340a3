//! `pxe:NODE` and `pxe-default`: a boot entry per node, pointing at the
//! generation the node boots: its pin, else the image's `current`. For a
//! pxelinux node, a pxelinux entry found by MAC by pxelinux.0 (BIOS) and
//! syslinux.efi (UEFI); for an iPXE node, instead, a static iPXE script
//! (`ipxe/52-54-….ipxe`) that fetches kernel and initrd over HTTP. A node that
//! switches method gets the other file, and the sweep removes the old one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::ipxe;
use super::{Kind, LateMemo, Planner, Produced, Recipe, RunCtx, Subject, TaskId, TaskSpec};
use crate::config::{Boot, Config, Image, Node};
use crate::fingerprint::Input;
use crate::fsutil::atomic_write;
use crate::generations;

const TEMPLATES: &[&str] = &[PXELINUX_TEMPLATE, IPXE_TEMPLATE];
const PXELINUX_TEMPLATE: &str = "templates/pxelinux.cfg.j2";
const IPXE_TEMPLATE: &str = "templates/node.ipxe.j2";

/// The template inputs of each method, from the recipe's list (in order).
fn split_templates(all: Vec<Input>) -> (Vec<Input>, Vec<Input>) {
    let mut pxelinux = Vec::new();
    let mut ipxe = Vec::new();
    for (t, input) in TEMPLATES.iter().zip(all) {
        if *t == PXELINUX_TEMPLATE {
            pxelinux.push(input);
        } else {
            ipxe.push(input);
        }
    }
    (pxelinux, ipxe)
}

/// What an iPXE entry reads beyond a pxelinux one: a pxelinux entry's key
/// is the same as before iPXE existed.
fn ipxe_inputs(cfg: &Config) -> [Input; 2] {
    [
        Planner::value("boot", &Boot::Ipxe),
        Planner::value("server.http", &cfg.server.http),
    ]
}

/// The inputs every entry shares.
fn common_inputs(cfg: &Config) -> [Input; 2] {
    [
        Planner::value("cluster.master", &cfg.cluster.master),
        Planner::value("paths.tftp_root", &cfg.paths.tftp_root),
    ]
}

/// One boot entry per node.
pub(crate) struct Pxe;

impl Recipe for Pxe {
    fn name(&self) -> &'static str {
        "pxe"
    }

    fn per_node(&self) -> bool {
        true
    }

    fn templates(&self) -> &'static [&'static str] {
        TEMPLATES
    }

    fn plan(&self, p: &mut Planner, _image: Option<&Image>) -> Result<()> {
        use rayon::prelude::*;
        let cfg = p.cfg;
        let (pxelinux_tpl, ipxe_tpl) = split_templates(p.templates(Kind::Pxe)?);
        let ipxe_extra = ipxe_inputs(cfg);
        let common = common_inputs(cfg);
        let publish = p.publish_tasks();
        let bootloader = p
            .find(Kind::Bootloader, None)
            .context("internal error: pxe planned before the bootloader")?;
        let image_cmdline: std::collections::HashMap<&str, Input> = cfg
            .images
            .values()
            .map(|img| {
                let name = format!("images.{}.cmdline", img.name);
                (img.name.as_str(), Planner::value(name, &img.cmdline))
            })
            .collect();
        let tasks: Vec<TaskSpec> = cfg
            .nodes
            .par_iter()
            .enumerate()
            .map(|(i, n)| {
                let templates = match n.boot {
                    Boot::Pxelinux => &pxelinux_tpl,
                    Boot::Ipxe => &ipxe_tpl,
                };
                let mut inputs = Vec::with_capacity(templates.len() + 9);
                inputs.extend(templates.iter().cloned());
                if n.boot == Boot::Ipxe {
                    inputs.extend(ipxe_extra.iter().cloned());
                }
                inputs.extend(common.iter().cloned());
                inputs.push(Planner::text("node.hostname", &n.hostname));
                inputs.push(Planner::text("node.mac", &n.mac));
                inputs.push(Planner::text("node.image", &n.image));
                inputs.push(Planner::text("node.cmdline", &n.cmdline));
                inputs.push(image_cmdline[n.image.as_str()].clone());
                TaskSpec {
                    id: TaskId::new(Kind::Pxe, Some(&n.hostname)),
                    kind: Kind::Pxe,
                    deps: vec![publish[n.image.as_str()], bootloader],
                    inputs,
                    subject: Subject::Node(i),
                    script: None,
                }
            })
            .collect();
        p.tasks.extend(tasks);
        Ok(())
    }

    fn outputs(&self, task: &TaskSpec, cfg: &Config) -> Vec<PathBuf> {
        match task.subject {
            Subject::Node(i) => vec![node_entry_path(cfg, i)],
            _ => Vec::new(),
        }
    }

    fn late_inputs(&self, task: &TaskSpec, cfg: &Config, memo: &LateMemo) -> Vec<Input> {
        match task.subject {
            Subject::Node(i) => {
                let n = &cfg.nodes[i];
                vec![memo.generation(cfg, &n.image, n.pin.as_deref())]
            }
            _ => Vec::new(),
        }
    }

    fn run(&self, task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
        match task.subject {
            Subject::Node(i) => run_pxe(ctx, Some(i)),
            _ => anyhow::bail!("internal error: a pxe task without a node"),
        }
    }
}

/// The entry of machines that have none of their own (`server.default_entry`).
pub(crate) struct PxeDefault;

impl Recipe for PxeDefault {
    fn name(&self) -> &'static str {
        "pxe-default"
    }

    fn templates(&self) -> &'static [&'static str] {
        TEMPLATES
    }

    fn plan(&self, p: &mut Planner, _image: Option<&Image>) -> Result<()> {
        let cfg = p.cfg;
        let Some(image) = &cfg.server.default_entry else {
            return Ok(());
        };
        let img = &cfg.images[image];
        let (pxelinux_tpl, ipxe_tpl) = split_templates(p.templates(Kind::PxeDefault)?);
        let mut inputs = match img.boot {
            Boot::Pxelinux => pxelinux_tpl,
            Boot::Ipxe => ipxe_tpl,
        };
        if img.boot == Boot::Ipxe {
            inputs.extend(ipxe_inputs(cfg));
        }
        inputs.extend(common_inputs(cfg));
        inputs.push(Planner::value("server.default_entry", image));
        inputs.push(Planner::value(
            format!("images.{}.cmdline", img.name),
            &img.cmdline,
        ));
        let deps = vec![
            p.find(Kind::Publish, Some(image))
                .context("internal error: no publish task for the default entry")?,
            p.find(Kind::Bootloader, None)
                .context("internal error: pxe-default planned before the bootloader")?,
        ];
        p.push(Planner::task(
            Kind::PxeDefault,
            None,
            deps,
            inputs,
            Subject::Cluster,
        ));
        Ok(())
    }

    fn outputs(&self, _task: &TaskSpec, cfg: &Config) -> Vec<PathBuf> {
        vec![default_entry_path(cfg)]
    }

    fn late_inputs(&self, _task: &TaskSpec, cfg: &Config, memo: &LateMemo) -> Vec<Input> {
        let image = cfg.server.default_entry.as_deref().unwrap_or_default();
        vec![memo.generation(cfg, image, None)]
    }

    fn run(&self, _task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
        run_pxe(ctx, None)
    }
}

/// Where a node's entry is: pxelinux.0 reads it there, and syslinux.efi
/// through the `efi64/pxelinux.cfg` link the bootloader task makes.
pub(crate) fn entry_paths(tftp_root: &Path, name: &str) -> [PathBuf; 1] {
    [tftp_root.join("pxelinux.cfg").join(name)]
}

/// A node's entry: its pxelinux entry, or its iPXE script.
fn node_entry_path(cfg: &Config, i: usize) -> PathBuf {
    node_entry(cfg, &cfg.nodes[i])
}

/// `n`'s entry: its pxelinux entry, or its iPXE script.
pub(crate) fn node_entry(cfg: &Config, n: &Node) -> PathBuf {
    match n.boot {
        Boot::Pxelinux => entry_paths(&cfg.paths.tftp_root, &n.pxe_name())[0].clone(),
        Boot::Ipxe => ipxe::script_path(&cfg.paths.tftp_root, &n.mac),
    }
}

/// The default entry, in its image's method.
fn default_entry_path(cfg: &Config) -> PathBuf {
    if ipxe::default_entry_is_ipxe(cfg) {
        cfg.paths.tftp_root.join(ipxe::DEFAULT_SCRIPT)
    } else {
        entry_paths(&cfg.paths.tftp_root, "default")[0].clone()
    }
}

#[derive(Serialize)]
struct EntryContext<'a> {
    http: String,
    label: &'a str,
    hostname: Option<&'a str>,
    mac: Option<&'a str>,
    image: &'a str,
    generation: &'a str,
    kernel: &'a str,
    initrd: &'a str,
    append: String,
}

/// The kernel arguments of an entry: the NFS root, then the image's and the
/// node's own arguments (the config's validation checks their length).
pub(crate) fn append_line(cfg: &Config, root: &str, img: &Image, node_cmdline: &str) -> String {
    crate::config::kernel_append(cfg.cluster.master, root, &img.cmdline, node_cmdline)
}

/// The generation a boot entry points at: the node's pin, else `current`.
pub(crate) fn boot_generation(cfg: &Config, image: &str, pin: Option<&str>) -> Result<String> {
    match pin {
        Some(p) => {
            let gens = generations::list(&cfg.paths.nfs_root, image);
            generations::resolve(&gens, p).map(|g| g.name.clone()).with_context(|| {
                format!(
                    "generation {p:?} of image {image} is not published (or is ambiguous); `ddc generations {image}` lists them"
                )
            })
        }
        None => generations::current(&cfg.paths.nfs_root, image).with_context(|| {
            let link = cfg.paths.nfs_root.join(image).join("current");
            if generations::list(&cfg.paths.nfs_root, image).is_empty() {
                format!("image {image} has no generation yet: build publish:{image} first")
            } else {
                format!(
                    "{} does not name a generation of image {image}; `ddc rollforward {image}` points it at the newest (`ddc generations {image}` lists them)",
                    link.display()
                )
            }
        }),
    }
}

/// Writes a node's entry (or the default one, for `node == None`).
fn run_pxe(ctx: &mut RunCtx, node: Option<usize>) -> Result<Produced> {
    let cfg = ctx.cfg;
    let (path, image, cmdline, hostname, mac) = match node {
        Some(i) => {
            let n = &cfg.nodes[i];
            (
                node_entry_path(cfg, i),
                n.image.as_str(),
                n.cmdline.as_str(),
                Some(n.hostname.as_str()),
                Some(n.mac.as_str()),
            )
        }
        None => (
            default_entry_path(cfg),
            cfg.server.default_entry.as_deref().unwrap_or_default(),
            "",
            None,
            None,
        ),
    };
    let pin = node.and_then(|i| cfg.nodes[i].pin.as_deref());
    let generation = boot_generation(cfg, image, pin)?;
    let img = &cfg.images[image];
    let boot = node.map_or(img.boot, |i| cfg.nodes[i].boot);
    let root = cfg.paths.nfs_root.join(image).join(&generation);
    let kernel = format!("{image}/{generation}/vmlinuz");
    let initrd = format!("{image}/{generation}/initrd.img");
    let ctx_data = EntryContext {
        http: ipxe::base_url(cfg),
        label: hostname.unwrap_or("default"),
        hostname,
        mac,
        image,
        generation: &generation,
        kernel: &kernel,
        initrd: &initrd,
        append: append_line(cfg, &root.display().to_string(), img, cmdline),
    };
    let template = match boot {
        Boot::Pxelinux => PXELINUX_TEMPLATE,
        Boot::Ipxe => IPXE_TEMPLATE,
    };
    let text = ctx.templates.render(template, &ctx_data)?;
    atomic_write(&path, text.as_bytes(), false)?;
    Ok(Produced {
        files: vec![path],
        ..Produced::default()
    })
}

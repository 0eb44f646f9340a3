//! The master's server configs: NFS exports (kernel exports.d and
//! nfs-ganesha), DHCP (ISC dhcpd and dnsmasq) and the rsyslog receiver.

use anyhow::Result;
use serde::Serialize;

use crate::fsutil::atomic_write;
use crate::generations;
use crate::task::{Produced, RunCtx};

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

pub fn run_exports(ctx: &mut RunCtx) -> Result<Produced> {
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
    for (tpl, path) in [
        ("templates/exports.j2", &cfg.paths.exports),
        ("templates/ganesha.conf.j2", &cfg.paths.ganesha),
    ] {
        let text = ctx.templates.render(tpl, &data)?;
        atomic_write(path, text.as_bytes(), true)?;
        out.files.push(path.clone());
    }
    Ok(out)
}

#[derive(Serialize)]
struct Host<'a> {
    hostname: &'a str,
    mac: &'a str,
    ip: String,
}

pub fn run_dhcp(ctx: &mut RunCtx) -> Result<Produced> {
    let cfg = ctx.cfg;
    let c = &cfg.cluster;
    let hosts: Vec<Host> = cfg
        .nodes
        .iter()
        .map(|n| Host {
            hostname: &n.hostname,
            mac: &n.mac,
            ip: n.ip.to_string(),
        })
        .collect();
    let data = serde_json::json!({
        "network": c.network.network().to_string(),
        "netmask": c.network.netmask().to_string(),
        "prefix": c.network.prefix_len(),
        "master": c.master.to_string(),
        "gateway": c.gateway.map(|g| g.to_string()),
        "dns": c.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "domain": c.domain,
        "hosts": hosts,
        "tftp": cfg.server.dnsmasq_tftp,
        "tftp_root": cfg.paths.tftp_root.display().to_string(),
        "interface": cfg.server.dnsmasq_interface,
        "bios_loader": "pxelinux.0",
        "efi64_loader": "efi64/syslinux.efi",
    });
    let mut out = Produced::default();
    for (tpl, path) in [
        ("templates/dhcpd.conf.j2", &cfg.paths.dhcpd),
        ("templates/dnsmasq.conf.j2", &cfg.paths.dnsmasq),
    ] {
        let text = ctx.templates.render(tpl, &data)?;
        atomic_write(path, text.as_bytes(), true)?;
        out.files.push(path.clone());
    }
    Ok(out)
}

pub fn run_rsyslog(ctx: &mut RunCtx) -> Result<Produced> {
    let cfg = ctx.cfg;
    let data = serde_json::json!({
        "network": cfg.cluster.network.to_string(),
        "master": cfg.cluster.master.to_string(),
    });
    let text = ctx.templates.render("templates/rsyslog.conf.j2", &data)?;
    atomic_write(&cfg.paths.rsyslog, text.as_bytes(), true)?;
    Ok(Produced {
        files: vec![cfg.paths.rsyslog.clone()],
        ..Default::default()
    })
}

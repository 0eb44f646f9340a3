//! `dhcp`: a host entry per node for ISC dhcpd and for dnsmasq, with the
//! BIOS and UEFI boot file names: syslinux's for pxelinux nodes; for iPXE
//! nodes, iPXE's binaries, and the HTTP URL of `boot.ipxe` for clients that
//! already are iPXE (user class `iPXE`). Machines without an entry get the
//! default method's; hosts of the other method are grouped (dhcpd) or
//! tagged (dnsmasq). dnsmasq's hosts go to its hosts file
//! (`dhcp-hostsfile`, reread on SIGHUP), its main config holds the rest.
//! Each file is written in place, or, when ddc applies that daemon's config
//! (`[apply]`), as a candidate that `apply:DAEMON` checks and installs.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use super::apply::{destination, staging, wiring, wiring_input, Daemon, Role};
use super::ipxe;
use super::{Kind, Planner, Produced, Recipe, RunCtx, Subject, TaskSpec};
use crate::config::{Boot, Config, Image, Node};
use crate::fingerprint::{Fingerprint, Input};
use crate::fsutil::atomic_write;
use crate::template::Templates;

pub(crate) struct Dhcp;

impl Recipe for Dhcp {
    fn name(&self) -> &'static str {
        "dhcp"
    }

    fn templates(&self) -> &'static [&'static str] {
        &[
            "templates/dhcpd.conf.j2",
            "templates/dnsmasq.conf.j2",
            "templates/dnsmasq-hosts.j2",
        ]
    }

    fn plan(&self, p: &mut Planner, _image: Option<&Image>) -> Result<()> {
        let cfg = p.cfg;
        let mut inputs = p.templates(Kind::Dhcp)?;
        inputs.push(Planner::value("cluster", &cfg.cluster));
        inputs.push(Planner::value("server", &cfg.server));
        inputs.push(Planner::value("paths.dhcpd", &cfg.paths.dhcpd));
        inputs.push(Planner::value("paths.dnsmasq", &cfg.paths.dnsmasq));
        inputs.push(Planner::value(
            "paths.dnsmasq_hosts",
            &cfg.paths.dnsmasq_hosts,
        ));
        inputs.push(staging(cfg, Daemon::Dhcpd));
        inputs.push(staging(cfg, Daemon::Dnsmasq));
        inputs.push(wiring_input(cfg, Daemon::Dhcpd));
        inputs.push(wiring_input(cfg, Daemon::Dnsmasq));
        inputs.push(Planner::value("paths.tftp_root", &cfg.paths.tftp_root));
        inputs.push(Input {
            name: "nodes".into(),
            hash: nodes_fingerprint(cfg),
        });
        if ipxe::used(cfg) {
            inputs.push(Planner::value(
                "ipxe.default_boot",
                &ipxe::default_boot(cfg),
            ));
        }
        p.push(Planner::task(
            Kind::Dhcp,
            None,
            vec![],
            inputs,
            Subject::Cluster,
        ));
        Ok(())
    }

    fn outputs(&self, _task: &TaskSpec, cfg: &Config) -> Vec<PathBuf> {
        FILES.iter().map(|(_, r)| destination(cfg, *r)).collect()
    }

    fn run(&self, _task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
        run_dhcp(ctx)
    }
}

/// The fingerprint of what DHCP reads of the nodes, in Ddcfile order.
fn nodes_fingerprint(cfg: &Config) -> Fingerprint {
    let mut h = blake3::Hasher::new();
    for n in &cfg.nodes {
        h.update(n.hostname.as_bytes());
        h.update(b"\0");
        h.update(n.mac.as_bytes());
        h.update(b"\0");
        h.update(&n.ip.octets());
        h.update(n.image.as_bytes());
        // Only iPXE nodes add bytes: a pxelinux cluster keeps its key.
        if n.boot == Boot::Ipxe {
            h.update(b"\0ipxe");
        }
        h.update(b"\n");
    }
    Fingerprint(*h.finalize().as_bytes())
}

/// A host as the templates see it. Its fields in name order, as a JSON
/// object keeps them: the same value whichever way it is made.
#[derive(Serialize)]
struct Host<'a> {
    hostname: &'a str,
    ip: String,
    mac: &'a str,
    /// Boots with the method that is not the default one.
    other: bool,
}

fn hosts<'a>(cfg: &Config, nodes: impl Iterator<Item = &'a Node>) -> Vec<Host<'a>> {
    let default_boot = ipxe::default_boot(cfg);
    nodes
        .map(|n| Host {
            hostname: &n.hostname,
            ip: n.ip.to_string(),
            mac: &n.mac,
            other: n.boot != default_boot,
        })
        .collect()
}

/// What the DHCP templates are rendered with: the cluster and `nodes`. The
/// file's own wiring (its header) is added per file by [`for_file`].
fn template_data<'a>(cfg: &Config, nodes: impl Iterator<Item = &'a Node>) -> serde_json::Value {
    let hosts = hosts(cfg, nodes);
    let mut data = data_but_hosts(cfg, hosts.iter().any(|h| h.other));
    data["hosts"] = serde_json::to_value(&hosts).unwrap_or_default();
    data
}

/// [`template_data`] without its `hosts`.
fn data_but_hosts(cfg: &Config, any_other: bool) -> serde_json::Value {
    let c = &cfg.cluster;
    let default_boot = ipxe::default_boot(cfg);
    serde_json::json!({
        "network": c.network.network().to_string(),
        "netmask": c.network.netmask().to_string(),
        "prefix": c.network.prefix_len(),
        "master": c.master.to_string(),
        "gateway": c.gateway.map(|g| g.to_string()),
        "dns": c.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "domain": c.domain,
        "tftp": cfg.server.dnsmasq_tftp,
        "tftp_root": cfg.paths.tftp_root.display().to_string(),
        "interface": cfg.server.dnsmasq_interface,
        "dnsmasq_dns": cfg.server.dnsmasq_dns,
        "discovery": cfg.server.discovery,
        "ddcfile": cfg.file.display().to_string(),
        "hosts_file": cfg.paths.dnsmasq_hosts.display().to_string(),
        "bios_loader": "pxelinux.0",
        "efi64_loader": "efi64/syslinux.efi",
        "ipxe": ipxe::used(cfg),
        "any_other": any_other,
        "default_boot": boot_name(default_boot),
        "other_boot": boot_name(match default_boot {
            Boot::Pxelinux => Boot::Ipxe,
            Boot::Ipxe => Boot::Pxelinux,
        }),
        "ipxe_script": format!("{}/{}", ipxe::base_url(cfg), ipxe::BOOT_SCRIPT),
        "ipxe_bios_loader": ipxe::BIOS_LOADER,
        "ipxe_efi64_loader": ipxe::EFI_LOADER,
        "main_file": wiring(cfg, Role::DnsmasqMain)["file"].clone(),
    })
}

/// `data` for the file of `role`: with how that file is wired into its
/// daemon (its header).
fn for_file<'d>(
    data: &'d mut serde_json::Value,
    cfg: &Config,
    role: Role,
) -> &'d serde_json::Value {
    data["wiring"] = wiring(cfg, role);
    data
}

fn run_dhcp(ctx: &mut RunCtx) -> Result<Produced> {
    let cfg = ctx.cfg;
    let hosts = hosts(cfg, cfg.nodes.iter());
    let data = data_but_hosts(cfg, hosts.iter().any(|h| h.other));
    // Made the template engine's values once for the three files, not once
    // per file, and the hosts straight from the nodes, not through JSON:
    // converting 10,000 hosts cost as much as rendering them.
    let mut values: std::collections::BTreeMap<String, minijinja::Value> = data
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), minijinja::Value::from_serialize(v)))
        .collect();
    values.insert("hosts".into(), minijinja::Value::from_serialize(&hosts));
    let mut out = Produced::default();
    for (tpl, role) in FILES {
        values.insert(
            "wiring".into(),
            minijinja::Value::from_serialize(wiring(cfg, role)),
        );
        let path = destination(cfg, role);
        // Room for what it rendered last time (a hint: at most 64 MiB,
        // whatever is there now), or 160 bytes a host.
        let size = std::fs::metadata(&path)
            .map(|m| m.len().min(64 << 20) as usize)
            .unwrap_or(160 * hosts.len());
        let text = ctx.templates.render_sized(tpl, &values, size + 4096)?;
        atomic_write(&path, text.as_bytes(), true)?;
        out.files.push(path);
    }
    Ok(out)
}

/// The lines of each DHCP file that are `node`'s, as the dhcp task renders
/// them (`ddc show`): each template rendered with no host and with this one,
/// and the lines the host adds. Files with none are left out.
pub(crate) fn node_lines(
    cfg: &Config,
    templates: &Templates,
    node: &Node,
) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut without = template_data(cfg, std::iter::empty());
    let mut with = template_data(cfg, std::iter::once(node));
    for (tpl, role) in FILES {
        let without = templates.render(tpl, for_file(&mut without, cfg, role))?;
        let with = templates.render(tpl, for_file(&mut with, cfg, role))?;
        let (a, b): (Vec<&str>, Vec<&str>) = (without.lines().collect(), with.lines().collect());
        let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let tail = a[head..]
            .iter()
            .rev()
            .zip(b[head..].iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        let added = &b[head..b.len() - tail];
        if !added.is_empty() {
            out.push((role.installed(cfg).to_path_buf(), added.join("\n")));
        }
    }
    Ok(out)
}

fn boot_name(b: Boot) -> &'static str {
    match b {
        Boot::Pxelinux => "pxelinux",
        Boot::Ipxe => "ipxe",
    }
}

/// Each template and the file it renders.
const FILES: [(&str, Role); 3] = [
    ("templates/dhcpd.conf.j2", Role::Dhcpd),
    ("templates/dnsmasq.conf.j2", Role::DnsmasqMain),
    ("templates/dnsmasq-hosts.j2", Role::DnsmasqHosts),
];

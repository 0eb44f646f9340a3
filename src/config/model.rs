//! The validated cluster description: what the rest of ddc reads. Every
//! value in it has been checked, so it is safe to put in a path, a task id or
//! a generated config file.
//!
//! Plain data: imports nothing from the other config modules.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The whole validated cluster description.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The Ddcfile itself, and the folder relative paths start from.
    pub file: PathBuf,
    pub base_dir: PathBuf,
    /// Files that replace the built-in step scripts and templates, if any.
    pub tasks_dir: Option<PathBuf>,
    /// The CSV inventory, if `nodes_file` names one.
    pub nodes_file: Option<PathBuf>,
    pub cluster: Cluster,
    pub paths: Paths,
    pub server: Server,
    pub images: BTreeMap<String, Image>,
    pub nodes: Vec<Node>,
    /// Where each node of `nodes` (same index) was given: beside the nodes,
    /// never in what a task hashes, so moving a node's line reruns nothing.
    pub node_origins: Vec<NodeOrigin>,
    /// How ddc makes the running daemons read the configs it wrote.
    pub apply: Apply,
    /// How `ddc power` reaches the nodes' BMCs (`[power]`).
    pub power: Power,
    /// The files this config was read from (the Ddcfile, the inventory, the
    /// master's apt sources when a mirror was taken from them).
    pub sources: Vec<PathBuf>,
    /// What validation could not check (`FILE:LINE:COL: KEY: message`),
    /// printed by every command that loads the config.
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    pub network: Ipv4Net,
    pub master: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub syslog: bool,
    /// The boot method of images that name none (`[cluster] boot`).
    pub boot: Boot,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Paths {
    pub tftp_root: PathBuf,
    pub nfs_root: PathBuf,
    pub exports: PathBuf,
    pub ganesha: PathBuf,
    pub dhcpd: PathBuf,
    pub dnsmasq: PathBuf,
    /// dnsmasq's `dhcp-hostsfile` (the nodes), reread on SIGHUP; never in
    /// the folder of `dnsmasq`, which dnsmasq may read as config.
    pub dnsmasq_hosts: PathBuf,
    pub rsyslog: PathBuf,
    /// The master's main rsyslog config, read (never written) to see whether
    /// it loads imudp itself: rsyslog refuses a module loaded twice.
    #[serde(default)]
    pub rsyslog_main: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Server {
    /// The kernel `exports` options, always with `secure` (or `insecure`
    /// when `allow_insecure_ports` is set).
    pub export_options: String,
    /// The same options in nfs-ganesha's words.
    pub ganesha: GaneshaOptions,
    /// Exports accept requests from unprivileged source ports, so that any
    /// process on the cluster network can claim any uid (AUTH_SYS).
    pub allow_insecure_ports: bool,
    pub dnsmasq_tftp: bool,
    pub dnsmasq_interface: Option<String>,
    /// dnsmasq also answers DNS (port 53); off by default (`port=0`), so
    /// that it does not clash with systemd-resolved or another resolver.
    #[serde(default)]
    pub dnsmasq_dns: bool,
    /// The image that machines without an entry of their own boot, if any.
    pub default_entry: Option<String>,
    /// Where `ddc serve` listens and nodes fetch iPXE scripts, kernels and
    /// initrds and send their reports (`[server] http`, default MASTER:8080).
    pub http: SocketAddrV4,
    /// Seconds between a node's reports (`[server] heartbeat`, default 60).
    pub heartbeat: u32,
    /// Addresses DHCP leases, briefly, to machines outside the inventory,
    /// so that they reach iPXE's boot script and `ddc discover` hears of
    /// them (`[server] discovery = "FIRST-LAST"`); none by default.
    #[serde(default)]
    pub discovery: Option<DiscoveryRange>,
}

/// `[server] discovery`: the first and last address of the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl DiscoveryRange {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }
}

/// `server.export_options` as nfs-ganesha's EXPORT block says them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaneshaOptions {
    /// The CLIENT block's `Access_Type`: `RO` or `RW`.
    pub access_type: String,
    /// `Root_Squash`, `No_Root_Squash` or `All_Squash`.
    pub squash: String,
    /// `sys`, or the flavors of `sec=`, comma separated.
    pub sec_type: String,
    pub anonymous_uid: Option<u32>,
    pub anonymous_gid: Option<u32>,
}

/// The union filesystem that puts a node's writable layer over the
/// read-only image (`union = "overlay" | "aufs"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Union {
    #[default]
    Overlay,
    Aufs,
}

impl Union {
    pub fn as_str(self) -> &'static str {
        match self {
            Union::Overlay => "overlay",
            Union::Aufs => "aufs",
        }
    }
}

/// How a node's firmware gets its kernel and initrd (`boot = "pxelinux" |
/// "ipxe"`): pxelinux over TFTP, or iPXE over HTTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Boot {
    #[default]
    Pxelinux,
    Ipxe,
}

/// The tool that makes an image's first root filesystem
/// (`bootstrapper = "mmdebstrap" | "debootstrap"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bootstrapper {
    Debootstrap,
    #[default]
    Mmdebstrap,
}

impl Bootstrapper {
    pub fn as_str(self) -> &'static str {
        match self {
            Bootstrapper::Debootstrap => "debootstrap",
            Bootstrapper::Mmdebstrap => "mmdebstrap",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    pub name: String,
    /// The image whose `packages` layer this one starts from (`from = "IMG"`):
    /// suite, arch, mirror and bootstrapper are the base's; the other keys
    /// it does not set are inherited.
    pub from: Option<String>,
    pub suite: String,
    pub arch: String,
    /// What this image's own `packages` step installs: for an image with
    /// `from`, only the packages its bases do not have.
    pub packages: Vec<String>,
    pub union: Union,
    pub cmdline: String,
    /// Empty: the master's own mirror was not found, use the bootstrapper's default.
    pub mirror: String,
    pub bootstrapper: Bootstrapper,
    pub files: Option<PathBuf>,
    pub root_password_hash: Option<String>,
    pub ssh_authorized_keys: Vec<String>,
    pub nis_domain: Option<String>,
    /// The image's own `boot`, else the cluster's.
    pub boot: Boot,
    /// `SOURCE_DATE_EPOCH` of the image's steps: `source_date_epoch`, else
    /// the snapshot's time; None: the mirror's newest Release `Date:`, read
    /// when the image is bootstrapped.
    pub source_date_epoch: Option<i64>,
    /// The snapshot timestamp (`20240101T000000Z`) the mirror is pinned to.
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    pub hostname: String,
    /// Lowercase, colon separated.
    pub mac: String,
    pub ip: Ipv4Addr,
    pub image: String,
    /// A generation the node stays on (`image = "compute@0002"`), for canaries.
    pub pin: Option<String>,
    pub cmdline: String,
    /// The node's own `boot`, else its image's.
    pub boot: Boot,
    /// The node's BMC, for `ddc power`.
    pub bmc: Option<Bmc>,
}

/// Where a node was given, for `ddc nodes`, `ddc show` and `ddc node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOrigin {
    /// In `nodes_file` (then `line` is its row), or in a `[[nodes]]` table
    /// of the Ddcfile (then `line` is the line of its `hostname`).
    pub csv: bool,
    pub line: usize,
    /// The node names its image (else it boots the default one).
    pub image_given: bool,
    /// The range (`node[03-52]`) the node was counted from, if any.
    pub range: Option<String>,
}

impl NodeOrigin {
    /// `Ddcfile.toml:41` or `nodes.csv row 7`, the files shown relative to
    /// the Ddcfile's folder.
    pub fn shown(&self, cfg: &Config) -> String {
        let rel = |p: &std::path::Path| {
            p.strip_prefix(&cfg.base_dir)
                .unwrap_or(p)
                .display()
                .to_string()
        };
        match (&cfg.nodes_file, self.csv) {
            (Some(f), true) => format!("{} row {}", rel(f), self.line),
            _ => format!("{}:{}", rel(&cfg.file), self.line),
        }
    }
}

impl Config {
    /// The images, each after the image it starts from (`from`): the order
    /// their tasks are planned in. Validation refuses cycles.
    pub fn images_in_build_order(&self) -> Vec<&Image> {
        let mut out: Vec<&Image> = Vec::new();
        let mut stack: Vec<&Image> = Vec::new();
        for img in self.images.values() {
            let mut at = Some(img);
            while let Some(i) = at.filter(|i| !out.iter().any(|o| o.name == i.name)) {
                if stack.iter().any(|s| s.name == i.name) {
                    break;
                }
                stack.push(i);
                at = i.from.as_ref().and_then(|b| self.images.get(b));
            }
            out.extend(stack.drain(..).rev());
        }
        out
    }

    /// The images `image` starts from, nearest first (empty for a root image).
    pub fn bases_of(&self, image: &str) -> Vec<&Image> {
        let mut out: Vec<&Image> = Vec::new();
        let mut at = self.images.get(image).and_then(|i| i.from.as_deref());
        while let Some(b) = at.and_then(|b| self.images.get(b)) {
            if out.iter().any(|o| o.name == b.name) || b.name == image {
                break;
            }
            out.push(b);
            at = b.from.as_deref();
        }
        out
    }
}

impl Node {
    /// The pxelinux file name: `01-aa-bb-cc-dd-ee-ff`.
    pub fn pxe_name(&self) -> String {
        format!("01-{}", self.mac.replace(':', "-"))
    }
}

/// The kernel arguments of a boot entry (its APPEND line): the NFS root
/// `root` on `master`, then the image's and the node's own arguments.
pub fn kernel_append(
    master: Ipv4Addr,
    root: &str,
    image_cmdline: &str,
    node_cmdline: &str,
) -> String {
    let mut s = format!("boot=nfs nfsroot={master}:{root},vers=3,tcp ip=dhcp ro");
    for extra in [image_cmdline, node_cmdline] {
        if !extra.trim().is_empty() {
            s.push(' ');
            s.push_str(extra.trim());
        }
    }
    s
}

/// How ddc makes a daemon read the config it installed (a key of `[apply]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reach {
    /// Through systemd when the daemon's usual unit is active; otherwise the
    /// checked config is installed and the user is told to reload it.
    Auto,
    /// `systemctl` on this unit, or on the daemon's usual one.
    Systemd(Option<String>),
    /// Signals the process whose pid this file holds.
    Pidfile(PathBuf),
    /// Not applied: the config is written in place, unchecked, as before.
    Off,
}

/// The `[apply]` table: one [`Reach`] a daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Apply {
    pub dnsmasq: Reach,
    pub dhcpd: Reach,
    pub nfs: Reach,
    pub rsyslog: Reach,
}

/// A node's BMC (`bmc = "ADDR"` or `"ADDR:PORT"`): an IPv4 address or a
/// DNS name, and the UDP port when it is not IPMI's 623.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bmc {
    pub host: String,
    pub port: Option<u16>,
}

impl std::fmt::Display for Bmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// The program that talks to the BMCs (`[power] driver`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerDriver {
    #[default]
    Ipmitool,
}

/// The IPMI LAN protocol (`[power] interface`): `lanplus` (IPMI 2.0,
/// RMCP+) or `lan` (IPMI 1.5, for old BMCs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpmiInterface {
    #[default]
    Lanplus,
    Lan,
}

impl IpmiInterface {
    pub fn as_str(self) -> &'static str {
        match self {
            IpmiInterface::Lanplus => "lanplus",
            IpmiInterface::Lan => "lan",
        }
    }
}

/// The `[power]` table. `user` and `password_file` are checked when power is
/// used (`ddc power`), not when the Ddcfile loads: a cluster without BMCs
/// needs neither.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Power {
    pub driver: PowerDriver,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Where `password_file` was given (`Ddcfile.toml:LINE:COL`), for the
    /// messages about the file.
    pub password_file_at: String,
    pub interface: IpmiInterface,
    /// ipmitool's `-C`: the RMCP+ cipher suite, when ipmitool must not ask
    /// the BMC for its list (some BMCs answer that slowly, or not at all).
    pub cipher_suite: Option<u8>,
    /// Seconds one node's command may take before it is killed.
    pub timeout: u64,
    /// How many nodes are reached at once.
    pub parallel: usize,
}

pub(crate) const DEFAULT_EXPORT_OPTIONS: &str = "ro,async,no_root_squash,no_subtree_check";

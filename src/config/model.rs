//! The validated cluster description: what the rest of ddc reads. Every
//! value in it has been checked, so it is safe to put in a path, a task id or
//! a generated config file.
//!
//! Plain data: imports nothing from the other config modules.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
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
    pub cluster: Cluster,
    pub paths: Paths,
    pub server: Server,
    pub images: BTreeMap<String, Image>,
    pub nodes: Vec<Node>,
    /// The files this config was read from (the Ddcfile, the inventory, the
    /// master's apt sources when a mirror was taken from them).
    pub sources: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    pub network: Ipv4Net,
    pub master: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub syslog: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Paths {
    pub tftp_root: PathBuf,
    pub nfs_root: PathBuf,
    pub exports: PathBuf,
    pub ganesha: PathBuf,
    pub dhcpd: PathBuf,
    pub dnsmasq: PathBuf,
    pub rsyslog: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Server {
    /// The kernel `exports` options, always with `secure` (or `insecure`
    /// when `allow_insecure_ports` is set).
    pub export_options: String,
    /// Exports accept requests from unprivileged source ports, so that any
    /// process on the cluster network can claim any uid (AUTH_SYS).
    pub allow_insecure_ports: bool,
    pub dnsmasq_tftp: bool,
    pub dnsmasq_interface: Option<String>,
    /// The image that machines without an entry of their own boot, if any.
    pub default_entry: Option<String>,
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
    pub suite: String,
    pub arch: String,
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
}

impl Node {
    /// The pxelinux file name: `01-aa-bb-cc-dd-ee-ff`.
    pub fn pxe_name(&self) -> String {
        format!("01-{}", self.mac.replace(':', "-"))
    }
}

pub(crate) const DEFAULT_EXPORT_OPTIONS: &str = "ro,async,no_root_squash,no_subtree_check";

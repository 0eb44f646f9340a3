//! The Ddcfile: its structs, loading with source positions, and validation.
//!
//! Everything a user can get wrong is caught here, before any task runs, and
//! reported as `FILE:LINE:COL: KEY: message` (or `FILE: row N` for the CSV
//! inventory). Once a [`Config`] exists, every value in it is safe to put in a
//! path, a task id or a generated config file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::inventory;

/// A position in a source file, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based line and column, or a CSV row.
    pub place: Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    LineCol(usize, usize),
    Row(usize),
    File,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.place {
            Place::LineCol(l, c) => write!(f, "{}:{}:{}", self.file, l, c),
            Place::Row(r) => write!(f, "{}: row {}", self.file, r),
            Place::File => write!(f, "{}", self.file),
        }
    }
}

/// One problem in the user's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: Origin,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.message)
        }
    }
}

/// All the problems found in one load, printed one a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

// ---------------------------------------------------------------- raw TOML

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDdcfile {
    nodes_file: Option<Spanned<String>>,
    tasks_dir: Option<Spanned<String>>,
    cluster: RawCluster,
    #[serde(default)]
    paths: RawPaths,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    images: BTreeMap<Spanned<String>, RawImage>,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    network: Spanned<String>,
    master: Spanned<String>,
    gateway: Option<Spanned<String>>,
    dns: Option<Vec<Spanned<String>>>,
    domain: Option<Spanned<String>>,
    syslog: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    tftp_root: Option<Spanned<String>>,
    nfs_root: Option<Spanned<String>>,
    exports: Option<Spanned<String>>,
    ganesha: Option<Spanned<String>>,
    dhcpd: Option<Spanned<String>>,
    dnsmasq: Option<Spanned<String>>,
    rsyslog: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    export_options: Option<Spanned<String>>,
    allow_insecure_ports: Option<bool>,
    dnsmasq_tftp: Option<bool>,
    dnsmasq_interface: Option<Spanned<String>>,
    default_entry: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    suite: Spanned<String>,
    arch: Option<Spanned<String>>,
    #[serde(default)]
    packages: Vec<Spanned<String>>,
    union: Option<Spanned<String>>,
    cmdline: Option<Spanned<String>>,
    mirror: Option<Spanned<String>>,
    bootstrapper: Option<Spanned<String>>,
    files: Option<Spanned<String>>,
    root_password_hash: Option<Spanned<String>>,
    #[serde(default)]
    ssh_authorized_keys: Vec<Spanned<String>>,
    nis_domain: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    hostname: Spanned<String>,
    mac: Spanned<String>,
    ip: Spanned<String>,
    image: Option<Spanned<String>>,
    cmdline: Option<Spanned<String>>,
}

// ---------------------------------------------------------------- validated

/// The whole validated cluster description.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The Ddcfile itself, and the folder relative paths start from.
    pub file: PathBuf,
    pub base_dir: PathBuf,
    pub tasks_dir: PathBuf,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Union {
    Overlay,
    Aufs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bootstrapper {
    Debootstrap,
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

pub const DEFAULT_EXPORT_OPTIONS: &str = "ro,async,no_root_squash,no_subtree_check";

/// `options` with the source-port option said explicitly: `secure` (requests
/// only from privileged ports, which only root on a client can use) unless
/// insecure ports are allowed, then `insecure`.
fn port_option(options: &str, allow_insecure_ports: bool) -> String {
    let wanted = if allow_insecure_ports {
        "insecure"
    } else {
        "secure"
    };
    let mut out: Vec<&str> = options
        .split(',')
        .filter(|o| *o != "secure" && *o != "insecure")
        .collect();
    let at = out
        .iter()
        .position(|o| *o == "ro" || *o == "rw")
        .map_or(0, |i| i + 1);
    out.insert(at, wanted);
    out.join(",")
}

// ---------------------------------------------------------------- loading

/// Where a value came from, before validation.
pub(crate) struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

pub(crate) struct NodeInput {
    pub hostname: Sourced<String>,
    pub mac: Sourced<String>,
    pub ip: Sourced<String>,
    pub image: Option<Sourced<String>>,
    pub cmdline: Option<Sourced<String>>,
    /// Where the node as a whole was given, for duplicate messages.
    pub origin: Origin,
}

/// The master's apt source files, where an image's default mirror comes from.
fn apt_sources() -> Vec<PathBuf> {
    let mut v = vec![
        PathBuf::from("/etc/apt/sources.list"),
        PathBuf::from("/etc/apt/sources.list.d"),
    ];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        v.extend(files);
    }
    v
}

/// A fingerprint of what a config was read from: each file's bytes, or a
/// folder's listing.
fn sources_fingerprint(sources: &[PathBuf]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for p in sources {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        if p.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            h.update(names.join("\n").as_bytes());
        } else if let Ok(bytes) = std::fs::read(p) {
            h.update(blake3::hash(&bytes).as_bytes());
        } else {
            h.update(b"(missing)");
        }
        h.update(b"\0");
    }
    *h.finalize().as_bytes()
}

/// This ddc binary: a config validated by another version is checked again.
fn binary_id() -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}-{}-{}", m.size(), m.mtime(), m.ino())
        })
        .unwrap_or_default();
    format!("{}/{exe}", env!("CARGO_PKG_VERSION"))
}

#[derive(Serialize, Deserialize)]
struct CachedConfig {
    version: u32,
    binary: String,
    shown: String,
    fingerprint: [u8; 32],
    config: Config,
}

const CONFIG_CACHE_VERSION: u32 = 1;

/// A config validated before from the very same files: parsing and
/// validating a 10,000-node Ddcfile takes longer than a whole no-op build.
fn cached(path: &Path, shown: &str) -> Option<Config> {
    let bytes = std::fs::read(path).ok()?;
    let c: CachedConfig = postcard::from_bytes(&bytes).ok()?;
    (c.version == CONFIG_CACHE_VERSION
        && c.binary == binary_id()
        && c.shown == shown
        && c.fingerprint == sources_fingerprint(&c.config.sources))
    .then_some(c.config)
}

fn remember(path: &Path, shown: &str, config: &Config) {
    let c = CachedConfig {
        version: CONFIG_CACHE_VERSION,
        binary: binary_id(),
        shown: shown.to_string(),
        fingerprint: sources_fingerprint(&config.sources),
        config: config.clone(),
    };
    if let Ok(bytes) = postcard::to_stdvec(&c) {
        // Only a speed-up: a failure to write it changes nothing.
        // 0600: it holds root_password_hash, which the Ddcfile may keep private.
        let _ = crate::fsutil::atomic_write_mode(path, &bytes, false, 0o600);
    }
}

/// Loads and validates a Ddcfile and the inventory it names, or takes the
/// config validated from the same bytes last time (`cache/config.bin`).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let shown = path.display().to_string();
    let cache = base_dir(path).join("cache/config.bin");
    if let Some(c) = cached(&cache, &shown) {
        return Ok(c);
    }
    let config = load_uncached(path)?;
    if cache.parent().is_some_and(Path::is_dir) {
        remember(&cache, &shown, &config);
    }
    Ok(config)
}

/// Loads and validates a Ddcfile and the inventory it names.
pub fn load_uncached(path: &Path) -> Result<Config, ConfigErrors> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            origin: Origin {
                file: display.clone(),
                place: Place::File,
            },
            key: String::new(),
            message: format!("cannot read the Ddcfile: {e} (use -f PATH to name another one)"),
        }])
    })?;
    parse(&text, &display, &base_dir(path), &system_mirror)
}

/// The folder of a Ddcfile, which relative paths start from.
pub fn base_dir(ddcfile: &Path) -> PathBuf {
    let dir = ddcfile
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// Parses and validates Ddcfile text; `mirror_default` gives the mirror to
/// use when an image names none.
pub fn parse(
    text: &str,
    file: &str,
    base_dir: &Path,
    mirror_default: &dyn Fn() -> String,
) -> Result<Config, ConfigErrors> {
    let raw: RawDdcfile = toml::from_str(text).map_err(|e| {
        let place = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                Place::LineCol(l, c)
            }
            None => Place::File,
        };
        ConfigErrors(vec![ConfigError {
            origin: Origin {
                file: file.to_string(),
                place,
            },
            key: String::new(),
            message: toml_message(&e),
        }])
    })?;
    let mut v = Validator {
        file: file.to_string(),
        text,
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        errors: Vec::new(),
    };
    let cfg = v.config(raw, base_dir, mirror_default);
    if v.errors.is_empty() {
        Ok(cfg.expect("a config without errors"))
    } else {
        Err(ConfigErrors(v.errors))
    }
}

fn toml_message(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    if msg.starts_with("unknown field") {
        format!("{msg}; remove it or check its spelling")
    } else if msg.starts_with("missing field") {
        format!("{msg}; add it")
    } else {
        msg
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut start = offset;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..start].chars().count() + 1;
    (line, col)
}

struct Validator<'a> {
    file: String,
    text: &'a str,
    /// Byte offset of each line's start, for positions in O(log n).
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn origin<T>(&self, s: &Spanned<T>) -> Origin {
        let offset = s.span().start.min(self.text.len());
        let line = self.line_starts.partition_point(|&st| st <= offset);
        let start = self.line_starts[line - 1];
        let (_, c) = line_col(&self.text[start..], offset - start);
        let l = line;
        Origin {
            file: self.file.clone(),
            place: Place::LineCol(l, c),
        }
    }

    fn sourced(&self, s: Spanned<String>) -> Sourced<String> {
        let origin = self.origin(&s);
        Sourced {
            value: s.into_inner(),
            origin,
        }
    }

    fn error(&mut self, origin: Origin, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            origin,
            key: key.into(),
            message: message.into(),
        });
    }

    fn config(
        &mut self,
        raw: RawDdcfile,
        base_dir: &Path,
        mirror_default: &dyn Fn() -> String,
    ) -> Option<Config> {
        let cluster = self.cluster(raw.cluster);
        let paths = self.paths(raw.paths, base_dir);
        let tasks_dir = match raw.tasks_dir {
            Some(t) => {
                let s = self.sourced(t);
                self.path_value(&s, "tasks_dir", base_dir)
            }
            None => base_dir.join("tasks"),
        };
        let declared: BTreeMap<String, ()> = raw
            .images
            .keys()
            .map(|k| (k.get_ref().clone(), ()))
            .collect();
        let mut images = BTreeMap::new();
        let mut sources =
            vec![base_dir.join(Path::new(&self.file).file_name().unwrap_or_default())];
        let mut mirror_cache: Option<String> = None;
        for (name, img) in raw.images {
            let name = self.sourced(name);
            if let Some(image) = self.image(&name, img, base_dir, &mut || {
                mirror_cache.get_or_insert_with(mirror_default).clone()
            }) {
                images.insert(name.value.clone(), image);
            }
        }
        let server = self.server(raw.server, &declared);

        let mut inputs: Vec<NodeInput> = Vec::new();
        for n in raw.nodes {
            let origin = self.origin(&n.hostname);
            inputs.push(NodeInput {
                hostname: self.sourced(n.hostname),
                mac: self.sourced(n.mac),
                ip: self.sourced(n.ip),
                image: n.image.map(|s| self.sourced(s)),
                cmdline: n.cmdline.map(|s| self.sourced(s)),
                origin,
            });
        }
        if let Some(nf) = raw.nodes_file {
            let s = self.sourced(nf);
            let path = self.path_value(&s, "nodes_file", base_dir);
            sources.push(path.clone());
            match inventory::read(&path, &s.value) {
                Ok(more) => inputs.extend(more),
                Err(e) => self.errors.push(ConfigError {
                    origin: s.origin.clone(),
                    key: "nodes_file".into(),
                    message: e,
                }),
            }
        }
        let nodes = self.nodes(inputs, cluster.as_ref(), &declared);
        if mirror_cache.is_some() {
            sources.extend(apt_sources());
        }
        let cluster = cluster?;
        let server = server?;
        Some(Config {
            file: base_dir.join(Path::new(&self.file).file_name().unwrap_or_default()),
            base_dir: base_dir.to_path_buf(),
            tasks_dir,
            cluster,
            paths,
            server,
            images,
            nodes,
            sources,
        })
    }

    fn ipv4(&mut self, s: &Sourced<String>, key: &str) -> Option<Ipv4Addr> {
        match s.value.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.error(
                    s.origin.clone(),
                    key,
                    format!(
                        "{:?} is not an IPv4 address (expected four numbers like 192.0.2.11)",
                        s.value
                    ),
                );
                None
            }
        }
    }

    fn cluster(&mut self, raw: RawCluster) -> Option<Cluster> {
        let network_s = self.sourced(raw.network);
        let network = match network_s.value.parse::<Ipv4Net>() {
            Ok(n) if n.network() != n.addr() => {
                self.error(
                    network_s.origin.clone(),
                    "cluster.network",
                    format!(
                        "{:?} has host bits set; write the network address, {}",
                        network_s.value,
                        n.trunc()
                    ),
                );
                None
            }
            Ok(n) => Some(n),
            Err(_) => {
                self.error(
                    network_s.origin.clone(),
                    "cluster.network",
                    format!(
                        "{:?} is not a network in CIDR form (expected like 192.0.2.0/24)",
                        network_s.value
                    ),
                );
                None
            }
        };
        let master_s = self.sourced(raw.master);
        let master = self.ipv4(&master_s, "cluster.master");
        if let (Some(net), Some(m)) = (network, master) {
            self.check_host_in(&master_s.origin, "cluster.master", m, net);
        }
        let gateway = raw.gateway.map(|g| self.sourced(g)).and_then(|g| {
            let ip = self.ipv4(&g, "cluster.gateway")?;
            if let Some(net) = network {
                self.check_host_in(&g.origin, "cluster.gateway", ip, net);
            }
            Some(ip)
        });
        let mut dns = Vec::new();
        for d in raw.dns.unwrap_or_default() {
            let d = self.sourced(d);
            if let Some(ip) = self.ipv4(&d, "cluster.dns") {
                dns.push(ip);
            }
        }
        let domain = raw.domain.map(|d| self.sourced(d)).and_then(|d| {
            if is_dns_name(&d.value) {
                Some(d.value)
            } else {
                self.error(
                    d.origin,
                    "cluster.domain",
                    format!(
                        "{:?} is not a DNS domain name (letters, digits and '-' in labels separated by dots)",
                        d.value
                    ),
                );
                None
            }
        });
        Some(Cluster {
            network: network?,
            master: master?,
            gateway,
            dns,
            domain,
            syslog: raw.syslog.unwrap_or(false),
        })
    }

    fn check_host_in(&mut self, origin: &Origin, key: &str, ip: Ipv4Addr, net: Ipv4Net) {
        if !net.contains(&ip) {
            self.error(
                origin.clone(),
                key,
                format!("{ip} is outside the cluster network {net}"),
            );
        } else if net.prefix_len() < 31 && (ip == net.network() || ip == net.broadcast()) {
            let what = if ip == net.network() {
                "network"
            } else {
                "broadcast"
            };
            self.error(
                origin.clone(),
                key,
                format!("{ip} is the {what} address of {net}; give a host address"),
            );
        }
    }

    fn path_value(&mut self, s: &Sourced<String>, key: &str, base_dir: &Path) -> PathBuf {
        if s.value.is_empty() || s.value.contains(['\n', '\r', '\0']) {
            self.error(
                s.origin.clone(),
                key,
                format!("{:?} is not a usable path", s.value),
            );
        }
        base_dir.join(&s.value)
    }

    fn paths(&mut self, raw: RawPaths, base: &Path) -> Paths {
        let tftp_origin = raw.tftp_root.as_ref().map(|s| self.origin(s));
        let nfs_origin = raw.nfs_root.as_ref().map(|s| self.origin(s));
        let mut get = |v: Option<Spanned<String>>, key: &str, default: &str| match v {
            Some(s) => {
                let s = self.sourced(s);
                self.path_value(&s, &format!("paths.{key}"), base)
            }
            None => base.join(default),
        };
        let paths = Paths {
            tftp_root: get(raw.tftp_root, "tftp_root", "out/tftp"),
            nfs_root: get(raw.nfs_root, "nfs_root", "out/nfsroot"),
            exports: get(raw.exports, "exports", "out/exports.d/ddc.exports"),
            ganesha: get(raw.ganesha, "ganesha", "out/ganesha/ddc.conf"),
            dhcpd: get(raw.dhcpd, "dhcpd", "out/dhcp/ddc.conf"),
            dnsmasq: get(raw.dnsmasq, "dnsmasq", "out/dnsmasq.d/ddc.conf"),
            rsyslog: get(raw.rsyslog, "rsyslog", "out/rsyslog.d/ddc.conf"),
        };
        // These paths go into kernel lines (nfsroot=HOST:PATH,OPTS), exports
        // and quoted config values: a space, quote, comma or colon would split them.
        let file_origin = Origin {
            file: self.file.clone(),
            place: Place::File,
        };
        for (key, path, origin, bad) in [
            (
                "paths.nfs_root",
                &paths.nfs_root,
                nfs_origin,
                " \t\"',:;#\\",
            ),
            (
                "paths.tftp_root",
                &paths.tftp_root,
                tftp_origin,
                " \t\"',;#\\",
            ),
        ] {
            let text = path.display().to_string();
            if let Some(c) = text.chars().find(|c| bad.contains(*c) || c.is_control()) {
                let origin = origin.unwrap_or_else(|| file_origin.clone());
                self.error(
                    origin,
                    key,
                    format!(
                        "{text:?} has {c:?} in it, which cannot stand in a kernel line or an export; use a path of letters, digits, '/', '.', '_', '-' (set the key, or move the Ddcfile's folder)"
                    ),
                );
            }
        }
        paths
    }

    fn server(&mut self, raw: RawServer, images: &BTreeMap<String, ()>) -> Option<Server> {
        let allow_insecure_ports = raw.allow_insecure_ports.unwrap_or(false);
        let export_options = match raw.export_options.map(|s| self.sourced(s)) {
            Some(s) => {
                let ok = !s.value.is_empty()
                    && s.value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_,=:".contains(c));
                if !ok {
                    self.error(
                        s.origin.clone(),
                        "server.export_options",
                        format!(
                            "{:?} is not a list of export options (like {DEFAULT_EXPORT_OPTIONS})",
                            s.value
                        ),
                    );
                } else if !allow_insecure_ports && s.value.split(',').any(|o| o == "insecure") {
                    self.error(
                        s.origin.clone(),
                        "server.export_options",
                        format!(
                            "{:?} has \"insecure\": it lets any unprivileged process on the cluster network claim uid 0 and read every file of the image (/etc/shadow, SSH host keys); remove it, or set server.allow_insecure_ports = true if you really mean it",
                            s.value
                        ),
                    );
                }
                s.value
            }
            None => DEFAULT_EXPORT_OPTIONS.to_string(),
        };
        let export_options = port_option(&export_options, allow_insecure_ports);
        let dnsmasq_interface = raw.dnsmasq_interface.map(|s| self.sourced(s)).map(|s| {
            let ok = !s.value.is_empty()
                && s.value.len() < 16
                && s.value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
            if !ok {
                self.error(
                    s.origin.clone(),
                    "server.dnsmasq_interface",
                    format!("{:?} is not a network interface name", s.value),
                );
            }
            s.value
        });
        let default_entry = raw.default_entry.map(|s| self.sourced(s)).map(|s| {
            if !images.contains_key(&s.value) {
                self.error(
                    s.origin.clone(),
                    "server.default_entry",
                    format!(
                        "names image {:?}, which is not defined; define [images.{}] or use one of: {}",
                        s.value,
                        s.value,
                        image_list(images)
                    ),
                );
            }
            s.value
        });
        Some(Server {
            export_options,
            allow_insecure_ports,
            dnsmasq_tftp: raw.dnsmasq_tftp.unwrap_or(true),
            dnsmasq_interface,
            default_entry,
        })
    }

    fn image(
        &mut self,
        name: &Sourced<String>,
        raw: RawImage,
        base: &Path,
        mirror_default: &mut dyn FnMut() -> String,
    ) -> Option<Image> {
        let before = self.errors.len();
        let key = |k: &str| format!("images.{}.{}", name.value, k);
        if !is_image_name(&name.value) {
            self.error(
                name.origin.clone(),
                format!("images.{}", name.value),
                "an image name is lowercase letters, digits, '-' and '_', starting with a letter or digit",
            );
        }
        let suite = self.sourced(raw.suite);
        if !is_word(&suite.value, "-.") {
            self.error(
                suite.origin.clone(),
                key("suite"),
                format!(
                    "{:?} is not a Debian suite name (like bookworm or trixie)",
                    suite.value
                ),
            );
        }
        let arch = match raw.arch.map(|a| self.sourced(a)) {
            Some(a) => {
                if !is_word(&a.value, "") {
                    self.error(
                        a.origin.clone(),
                        key("arch"),
                        format!(
                            "{:?} is not a Debian architecture (like amd64 or arm64)",
                            a.value
                        ),
                    );
                }
                a.value
            }
            None => "amd64".to_string(),
        };
        let mut packages = Vec::new();
        for p in raw.packages {
            let p = self.sourced(p);
            let ok = p
                .value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && p.value.len() > 1
                && is_word(&p.value, "+.-:=~/");
            if !ok {
                self.error(
                    p.origin.clone(),
                    key("packages"),
                    format!("{:?} is not a Debian package name", p.value),
                );
            }
            packages.push(p.value);
        }
        let union = match raw.union.map(|u| self.sourced(u)) {
            None => Union::Overlay,
            Some(u) => match u.value.as_str() {
                "overlay" => Union::Overlay,
                "aufs" => Union::Aufs,
                _ => {
                    self.error(
                        u.origin.clone(),
                        key("union"),
                        format!(
                            "{:?} is not a union filesystem; use \"overlay\" or \"aufs\"",
                            u.value
                        ),
                    );
                    Union::Overlay
                }
            },
        };
        let cmdline = match raw.cmdline.map(|c| self.sourced(c)) {
            Some(c) => {
                self.check_cmdline(&c, &key("cmdline"));
                c.value
            }
            None => String::new(),
        };
        let mirror = match raw.mirror.map(|m| self.sourced(m)) {
            Some(m) => {
                let ok = ["http://", "https://", "file:/"]
                    .iter()
                    .any(|p| m.value.starts_with(p))
                    && !m
                        .value
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'');
                if !ok {
                    self.error(
                        m.origin.clone(),
                        key("mirror"),
                        format!(
                            "{:?} is not a mirror URL (expected http://, https:// or file:/)",
                            m.value
                        ),
                    );
                }
                m.value
            }
            None => mirror_default(),
        };
        let bootstrapper = match raw.bootstrapper.map(|b| self.sourced(b)) {
            None => Bootstrapper::Mmdebstrap,
            Some(b) => match b.value.as_str() {
                "debootstrap" => Bootstrapper::Debootstrap,
                "mmdebstrap" => Bootstrapper::Mmdebstrap,
                _ => {
                    self.error(
                        b.origin.clone(),
                        key("bootstrapper"),
                        format!(
                            "{:?} is not a bootstrapper; use \"debootstrap\" or \"mmdebstrap\"",
                            b.value
                        ),
                    );
                    Bootstrapper::Mmdebstrap
                }
            },
        };
        let files = raw.files.map(|f| self.sourced(f)).map(|f| {
            let p = self.path_value(&f, &key("files"), base);
            if !p.is_dir() {
                self.error(
                    f.origin.clone(),
                    key("files"),
                    format!(
                        "{:?} is not a folder ({}); create it or remove the key",
                        f.value,
                        p.display()
                    ),
                );
            }
            p
        });
        let root_password_hash = raw.root_password_hash.map(|h| self.sourced(h)).map(|h| {
            let looks_crypt = h.value.starts_with('$')
                && h.value.matches('$').count() >= 3
                && h.value.chars().all(|c| c.is_ascii_graphic());
            if !looks_crypt {
                self.error(
                    h.origin.clone(),
                    key("root_password_hash"),
                    "is not a crypt(3) hash; never put a plain password here: make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`",
                );
            }
            h.value
        });
        let mut ssh_authorized_keys = Vec::new();
        for k in raw.ssh_authorized_keys {
            let k = self.sourced(k);
            if k.value.trim().is_empty() || k.value.chars().any(|c| c.is_control()) {
                self.error(
                    k.origin.clone(),
                    key("ssh_authorized_keys"),
                    "each key is one line of an authorized_keys file (like \"ssh-ed25519 AAAA… user@host\")",
                );
            }
            ssh_authorized_keys.push(k.value);
        }
        let nis_domain = raw.nis_domain.map(|d| self.sourced(d)).map(|d| {
            if !is_dns_name(&d.value) {
                self.error(
                    d.origin.clone(),
                    key("nis_domain"),
                    format!("{:?} is not a NIS domain name", d.value),
                );
            }
            d.value
        });
        if self.errors.len() > before {
            return None;
        }
        Some(Image {
            name: name.value.clone(),
            suite: suite.value,
            arch,
            packages,
            union,
            cmdline,
            mirror,
            bootstrapper,
            files,
            root_password_hash,
            ssh_authorized_keys,
            nis_domain,
        })
    }

    fn check_cmdline(&mut self, c: &Sourced<String>, key: &str) {
        if c.value.chars().any(|ch| ch.is_control()) {
            self.error(
                c.origin.clone(),
                key,
                "kernel arguments are one line: remove the newline or control character",
            );
        }
    }

    fn nodes(
        &mut self,
        inputs: Vec<NodeInput>,
        cluster: Option<&Cluster>,
        images: &BTreeMap<String, ()>,
    ) -> Vec<Node> {
        let mut nodes = Vec::with_capacity(inputs.len());
        let mut hostnames: HashMap<String, Origin> = HashMap::with_capacity(inputs.len());
        let mut macs: HashMap<String, Origin> = HashMap::with_capacity(inputs.len());
        let mut ips: HashMap<Ipv4Addr, Origin> = HashMap::with_capacity(inputs.len());
        let only_image = if images.len() == 1 {
            images.keys().next().cloned()
        } else {
            None
        };
        for n in inputs {
            let before = self.errors.len();
            let hostname = n.hostname.value.clone();
            if !is_dns_label(&hostname) {
                self.error(
                    n.hostname.origin.clone(),
                    "hostname",
                    format!(
                        "{hostname:?} is not a valid hostname (1 to 63 letters, digits and '-', not starting or ending with '-')"
                    ),
                );
            } else if let Some(first) =
                hostnames.insert(hostname.to_ascii_lowercase(), n.hostname.origin.clone())
            {
                self.error(
                    n.hostname.origin.clone(),
                    "hostname",
                    format!("{hostname:?} is already used by the node at {first}"),
                );
            }
            let mac = match parse_mac(&n.mac.value) {
                Ok(m) => {
                    if let Some(first) = macs.insert(m.clone(), n.mac.origin.clone()) {
                        self.error(
                            n.mac.origin.clone(),
                            "mac",
                            format!("{:?} is already used by the node at {first}", n.mac.value),
                        );
                    }
                    m
                }
                Err(why) => {
                    self.error(
                        n.mac.origin.clone(),
                        "mac",
                        format!("{:?} {why}", n.mac.value),
                    );
                    String::new()
                }
            };
            let ip = self.ipv4(&n.ip, "ip");
            if let Some(ip) = ip {
                if let Some(c) = cluster {
                    self.check_host_in(&n.ip.origin, "ip", ip, c.network);
                    if ip == c.master {
                        self.error(
                            n.ip.origin.clone(),
                            "ip",
                            format!("{ip} is the master's address"),
                        );
                    } else if Some(ip) == c.gateway {
                        self.error(
                            n.ip.origin.clone(),
                            "ip",
                            format!("{ip} is the gateway's address"),
                        );
                    }
                }
                if let Some(first) = ips.insert(ip, n.ip.origin.clone()) {
                    self.error(
                        n.ip.origin.clone(),
                        "ip",
                        format!("{ip} is already used by the node at {first}"),
                    );
                }
            }
            let mut pin = None;
            let image = match &n.image {
                Some(i) => {
                    let (name, gen) = match i.value.split_once('@') {
                        Some((name, gen)) => (name, Some(gen)),
                        None => (i.value.as_str(), None),
                    };
                    if let Some(gen) = gen {
                        let ok = !gen.is_empty()
                            && gen.len() <= 17
                            && gen.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
                        if ok {
                            pin = Some(gen.to_ascii_lowercase());
                        } else {
                            self.error(
                                i.origin.clone(),
                                "image",
                                format!(
                                    "{:?}: after '@' comes a generation: its number (2), its name (0002-1a2b3c4d5e6f) or a hash prefix; `ddc generations` lists them",
                                    i.value
                                ),
                            );
                        }
                    }
                    if !images.contains_key(name) {
                        self.error(
                            i.origin.clone(),
                            "image",
                            format!(
                                "names image {name:?}, which is not defined; define [images.{name}] or use one of: {}",
                                image_list(images)
                            ),
                        );
                    }
                    name.to_string()
                }
                None => {
                    if images.contains_key("default") {
                        "default".to_string()
                    } else if let Some(only) = &only_image {
                        only.clone()
                    } else {
                        self.error(
                            n.origin.clone(),
                            "image",
                            format!(
                                "this node names no image and there is no [images.default]; add image = one of: {}",
                                image_list(images)
                            ),
                        );
                        String::new()
                    }
                }
            };
            let cmdline = match &n.cmdline {
                Some(c) => {
                    self.check_cmdline(c, "cmdline");
                    c.value.clone()
                }
                None => String::new(),
            };
            if self.errors.len() == before {
                nodes.push(Node {
                    hostname,
                    mac,
                    ip: ip.expect("checked"),
                    image,
                    pin,
                    cmdline,
                });
            }
        }
        nodes
    }
}

fn image_list<V>(images: &BTreeMap<String, V>) -> String {
    if images.is_empty() {
        "(none defined)".to_string()
    } else {
        images.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Parses a MAC address (`:` or `-` separated) into lowercase colon form.
pub fn parse_mac(s: &str) -> Result<String, &'static str> {
    const BAD: &str = "is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)";
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(BAD);
    }
    let first = u8::from_str_radix(parts[0], 16).map_err(|_| BAD)?;
    if first & 1 == 1 {
        return Err("is a multicast address, which no network card has");
    }
    if parts.iter().all(|p| *p == "00") {
        return Err("is the all-zero address, which no network card has");
    }
    Ok(parts.join(":").to_ascii_lowercase())
}

/// A DNS label: 1–63 letters, digits and '-', not at either end.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_image_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_word(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
}

/// The mirror that the master's own apt sources use, or empty.
pub fn system_mirror() -> String {
    mirror_from_sources(
        Path::new("/etc/apt/sources.list.d"),
        Path::new("/etc/apt/sources.list"),
    )
    .unwrap_or_default()
}

/// Finds the first Debian archive URI in deb822 `.sources` files or a
/// one-line `sources.list`; security and backports archives are skipped.
pub fn mirror_from_sources(dir: &Path, list: &Path) -> Option<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sources"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
                })
            };
            let enabled = field("Enabled").is_none_or(|v| v != "no");
            let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
            let suites = field("Suites").unwrap_or_default();
            if enabled && is_deb && !suites.contains("security") && !suites.contains("backports") {
                if let Some(uri) =
                    field("URIs").and_then(|u| u.split_whitespace().next().map(str::to_string))
                {
                    return Some(uri);
                }
            }
        }
    }
    let text = std::fs::read_to_string(list).ok()?;
    for line in text.lines() {
        let mut words = line.split_whitespace().filter(|w| !w.starts_with('['));
        if words.next() != Some("deb") {
            continue;
        }
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        if !suite.contains("security") && !suite.contains("backports") {
            return Some(uri.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"[cluster]
network = "192.0.2.0/24"
master = "192.0.2.1"

[images.default]
suite = "bookworm"
packages = ["linux-image-amd64"]

[[nodes]]
hostname = "node01"
mac = "52:54:00:12:34:56"
ip = "192.0.2.11"
"#;

    fn parse_str(text: &str) -> Result<Config, ConfigErrors> {
        parse(text, "Ddcfile.toml", Path::new("/nonexistent"), &|| {
            "http://mirror.invalid/debian".to_string()
        })
    }

    fn errors(text: &str) -> String {
        match parse_str(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_base_config_is_valid() {
        let c = parse_str(BASE).unwrap();
        assert_eq!(c.nodes[0].image, "default");
        assert_eq!(c.images["default"].arch, "amd64");
        assert_eq!(c.images["default"].mirror, "http://mirror.invalid/debian");
        assert_eq!(c.paths.tftp_root, Path::new("/nonexistent/out/tftp"));
    }

    #[test]
    fn error_messages() {
        // (replace this, with that) → exact message
        let table: &[(&str, &str, &str)] = &[
            ("master = \"192.0.2.1\"", "master = \"192.0.2.1\"\nfoo = 1",
             "Ddcfile.toml:4:1: unknown field `foo`, expected one of `network`, `master`, `gateway`, `dns`, `domain`, `syslog`; remove it or check its spelling"),
            ("mac = \"52:54:00:12:34:56\"", "mac = \"52:54:00:12:34:5g\"",
             "Ddcfile.toml:11:7: mac: \"52:54:00:12:34:5g\" is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)"),
            ("mac = \"52:54:00:12:34:56\"", "mac = \"01:00:5e:00:00:01\"",
             "Ddcfile.toml:11:7: mac: \"01:00:5e:00:00:01\" is a multicast address, which no network card has"),
            ("ip = \"192.0.2.11\"", "ip = \"192.0.2.300\"",
             "Ddcfile.toml:12:6: ip: \"192.0.2.300\" is not an IPv4 address (expected four numbers like 192.0.2.11)"),
            ("ip = \"192.0.2.11\"", "ip = \"198.51.100.7\"",
             "Ddcfile.toml:12:6: ip: 198.51.100.7 is outside the cluster network 192.0.2.0/24"),
            ("ip = \"192.0.2.11\"", "ip = \"192.0.2.1\"",
             "Ddcfile.toml:12:6: ip: 192.0.2.1 is the master's address"),
            ("ip = \"192.0.2.11\"", "ip = \"192.0.2.255\"",
             "Ddcfile.toml:12:6: ip: 192.0.2.255 is the broadcast address of 192.0.2.0/24; give a host address"),
            ("network = \"192.0.2.0/24\"", "network = \"192.0.2.0/33\"",
             "Ddcfile.toml:2:11: cluster.network: \"192.0.2.0/33\" is not a network in CIDR form (expected like 192.0.2.0/24)"),
            ("network = \"192.0.2.0/24\"", "network = \"192.0.2.7/24\"",
             "Ddcfile.toml:2:11: cluster.network: \"192.0.2.7/24\" has host bits set; write the network address, 192.0.2.0/24"),
            ("hostname = \"node01\"", "hostname = \"../x\"",
             "Ddcfile.toml:10:12: hostname: \"../x\" is not a valid hostname (1 to 63 letters, digits and '-', not starting or ending with '-')"),
            ("hostname = \"node01\"", "hostname = \"a\\nb\"",
             "Ddcfile.toml:10:12: hostname: \"a\\nb\" is not a valid hostname (1 to 63 letters, digits and '-', not starting or ending with '-')"),
            ("ip = \"192.0.2.11\"", "ip = \"192.0.2.11\"\nimage = \"compute\"",
             "Ddcfile.toml:13:9: image: names image \"compute\", which is not defined; define [images.compute] or use one of: default"),
            ("suite = \"bookworm\"", "suite = \"bookworm\"\nunion = \"zfs\"",
             "Ddcfile.toml:7:9: images.default.union: \"zfs\" is not a union filesystem; use \"overlay\" or \"aufs\""),
            ("suite = \"bookworm\"", "suite = \"bookworm\"\nroot_password_hash = \"hunter2\"",
             "Ddcfile.toml:7:22: images.default.root_password_hash: is not a crypt(3) hash; never put a plain password here: make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`"),
            ("packages = [\"linux-image-amd64\"]", "packages = [\"linux image\"]",
             "Ddcfile.toml:7:13: images.default.packages: \"linux image\" is not a Debian package name"),
            ("[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster = \"192.0.2.1\"\n", "",
             "Ddcfile.toml:1:1: missing field `cluster`; add it"),
        ];
        for (from, to, want) in table {
            assert!(BASE.contains(from), "{from}");
            let text = BASE.replacen(from, to, 1);
            assert_eq!(&errors(&text), want, "for {to:?}");
        }
    }

    #[test]
    fn exports_say_secure_unless_insecure_ports_are_allowed() {
        let c = parse_str(BASE).unwrap();
        assert_eq!(
            c.server.export_options,
            "ro,secure,async,no_root_squash,no_subtree_check"
        );
        let with = |server: &str| format!("{BASE}\n[server]\n{server}\n");
        let c = parse_str(&with("export_options = \"rw,secure,sync\"")).unwrap();
        assert_eq!(c.server.export_options, "rw,secure,sync");
        assert_eq!(
            errors(&with("export_options = \"ro,insecure\"")),
            "Ddcfile.toml:15:18: server.export_options: \"ro,insecure\" has \"insecure\": it lets any unprivileged process on the cluster network claim uid 0 and read every file of the image (/etc/shadow, SSH host keys); remove it, or set server.allow_insecure_ports = true if you really mean it"
        );
        let c = parse_str(&with(
            "export_options = \"ro,secure\"\nallow_insecure_ports = true",
        ))
        .unwrap();
        assert_eq!(c.server.export_options, "ro,insecure");
        assert!(c.server.allow_insecure_ports);
    }

    #[test]
    fn duplicates_name_the_first_place() {
        let more = "\n[[nodes]]\nhostname = \"NODE01\"\nmac = \"52:54:00:12:34:56\"\nip = \"192.0.2.11\"\n";
        let text = format!("{BASE}{more}");
        assert_eq!(
            errors(&text),
            "Ddcfile.toml:15:12: hostname: \"NODE01\" is already used by the node at Ddcfile.toml:10:12\n\
             Ddcfile.toml:16:7: mac: \"52:54:00:12:34:56\" is already used by the node at Ddcfile.toml:11:7\n\
             Ddcfile.toml:17:6: ip: 192.0.2.11 is already used by the node at Ddcfile.toml:12:6"
        );
        // MACs compare case-insensitively, whatever the separator.
        let more = "\n[[nodes]]\nhostname = \"node02\"\nmac = \"52-54-00-12-34-5E\"\nip = \"192.0.2.12\"\n";
        let text = format!("{}{more}", BASE.replace("34:56", "34:5e"));
        assert!(errors(&text).contains("mac: \"52-54-00-12-34-5E\" is already used"));
    }

    #[test]
    fn mirror_from_the_masters_apt_sources() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("sources.list.d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("debian.sources"),
            "Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\n\nTypes: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n",
        )
        .unwrap();
        assert_eq!(
            mirror_from_sources(&dir, &d.path().join("none")).as_deref(),
            Some("http://deb.example/debian")
        );
        let list = d.path().join("sources.list");
        std::fs::write(
            &list,
            "# comment\ndeb [arch=amd64] http://other.example/debian bookworm main\n",
        )
        .unwrap();
        assert_eq!(
            mirror_from_sources(&d.path().join("empty"), &list).as_deref(),
            Some("http://other.example/debian")
        );
        assert_eq!(
            mirror_from_sources(&d.path().join("empty"), &d.path().join("none")),
            None
        );
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 3), (2, 1));
        assert_eq!(line_col("x", 99), (1, 2));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn no_input_panics(text in ".{0,400}") {
            let _ = parse_str(&text);
        }

        #[test]
        fn no_node_values_panic(
            hostname in "\\PC{0,70}",
            mac in "[0-9a-fA-F:\\-]{0,20}|\\PC{0,20}",
            ip in "[0-9.]{0,20}|\\PC{0,10}",
            image in "\\PC{0,10}",
        ) {
            let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
            let text = format!(
                "{BASE}\n[[nodes]]\nhostname = \"{}\"\nmac = \"{}\"\nip = \"{}\"\nimage = \"{}\"\n",
                esc(&hostname), esc(&mac), esc(&ip), esc(&image)
            );
            if let Ok(c) = parse_str(&text) {
                // Whatever got through is safe for paths and config files.
                for n in &c.nodes {
                    proptest::prop_assert!(is_dns_label(&n.hostname));
                    proptest::prop_assert!(n.pxe_name().bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
                }
            }
        }

        #[test]
        fn mutated_ddcfiles_never_panic(cut in 0usize..400, insert in "\\PC{0,8}") {
            let mut text = BASE.to_string();
            let at = cut.min(text.len());
            if text.is_char_boundary(at) {
                text.insert_str(at, &insert);
            }
            let _ = parse_str(&text);
        }
    }
}

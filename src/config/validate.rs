//! Validation: turns the raw TOML and the inventory's rows into the model,
//! collecting every problem with its position instead of stopping at the first.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use toml::Spanned;

use super::inventory;
use super::mirror::apt_sources;
use super::model::*;
use super::origin::{line_col, ConfigError, NodeInput, Origin, Place, Sourced};
use super::raw::*;

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

pub(super) struct Validator<'a> {
    pub(super) file: String,
    pub(super) text: &'a str,
    /// Byte offset of each line's start, for positions in O(log n).
    pub(super) line_starts: Vec<usize>,
    pub(super) errors: Vec<ConfigError>,
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

    pub(super) fn config(
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

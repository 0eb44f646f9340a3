//! The nodes, from `[[nodes]]` tables and the CSV inventory alike: ranges
//! counted out, each value checked, and hostnames, MACs and addresses
//! unique across both.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::cmdline::KernelLines;
use super::rules::{CMDLINE, DNSMASQ_NAME, HOSTNAME};
use super::{image_list, Validator};
use crate::config::model::{Boot, Cluster, Node, NodeOrigin};
use crate::config::origin::{NodeInput, Origin, Place, Sourced};
use crate::config::raw::RawNode;
use crate::config::{inventory, range};

/// The values nodes have taken so far, each with where it was given.
/// Hashed with foldhash, not SipHash: the keys are the admin's own, and
/// 10,000 nodes are checked on every build that reads the config.
struct Taken {
    hostnames: FastMap<String, Origin>,
    macs: FastMap<String, Origin>,
    ips: FastMap<Ipv4Addr, Origin>,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

impl Taken {
    fn with_capacity(n: usize) -> Self {
        let map = || HashMap::with_capacity_and_hasher(n, Default::default());
        Taken {
            hostnames: map(),
            macs: map(),
            ips: HashMap::with_capacity_and_hasher(n, Default::default()),
        }
    }
}

impl Validator<'_> {
    pub(super) fn node_input(&self, n: RawNode) -> NodeInput {
        NodeInput {
            origin: self.origin(&n.hostname),
            hostname: self.sourced(n.hostname),
            mac: self.sourced(n.mac),
            ip: self.sourced(n.ip),
            image: n.image.map(|s| self.sourced(s)),
            cmdline: n.cmdline.map(|s| self.sourced(s)),
            range: None,
            boot: n.boot.map(|s| self.sourced(s)),
            bmc: n.bmc.map(|s| self.sourced(s)),
        }
    }

    /// The inventory named by `nodes_file`: its path and its rows.
    pub(super) fn inventory(
        &mut self,
        raw: Spanned<String>,
        base: &Path,
    ) -> (PathBuf, Vec<NodeInput>) {
        let s = self.sourced(raw);
        let path = self.path_value(&s, "nodes_file", base);
        let rows = match self.inventory.take() {
            Some(bytes) => inventory::parse(&bytes, &s.value),
            None => inventory::read(&path, &s.value),
        };
        match rows {
            Ok(rows) => (path, rows),
            Err(e) => {
                self.error(s.origin, "nodes_file", e);
                (path, Vec::new())
            }
        }
    }

    /// The nodes without errors. Addresses are checked against the cluster
    /// when it is valid.
    pub(super) fn nodes(
        &mut self,
        inputs: Vec<NodeInput>,
        cluster: Option<&Cluster>,
        images: &BTreeSet<String>,
        boots: &HashMap<&str, Boot>,
        kernel_lines: Option<&KernelLines>,
    ) -> (Vec<Node>, Vec<NodeOrigin>) {
        let inputs = self.expand_ranges(inputs, cluster);
        let mut nodes = Vec::with_capacity(inputs.len());
        let mut origins = Vec::with_capacity(inputs.len());
        let mut taken = Taken::with_capacity(inputs.len());
        let mut said = std::collections::HashSet::new();
        for n in inputs {
            let before = self.errors.len();
            let origin = node_origin(&n);
            if self.check(&n.hostname, "hostname", &HOSTNAME)
                && self.check(&n.hostname, "hostname", &DNSMASQ_NAME)
            {
                let lower = n.hostname.value.to_ascii_lowercase();
                let shown = || match &n.range {
                    Some(r) => format!("{:?} (of the range {r})", n.hostname.value),
                    None => format!("{:?}", n.hostname.value),
                };
                self.check_unique(
                    &mut taken.hostnames,
                    lower,
                    &n.hostname.origin,
                    "hostname",
                    shown,
                );
            }
            let mac = self.mac(&n.mac, &mut taken.macs);
            let ip = self.node_ip(&n.ip, cluster, &mut taken.ips);
            let (image, pin) = match &n.image {
                Some(i) => self.node_image(i, images),
                None => (self.default_image(&n.origin, images), None),
            };
            let bmc = n.bmc.as_ref().and_then(|b| self.bmc(b));
            let cmdline = n.cmdline.map(|c| {
                if self.check(&c, "cmdline", &CMDLINE) {
                    if let Some(lines) = kernel_lines {
                        self.node_kernel_line(lines, &n.hostname.value, &image, &c);
                    }
                }
                c.value
            });
            let boot = match &n.boot {
                Some(b) => self.node_boot(b),
                None => boots.get(image.as_str()).copied().unwrap_or_default(),
            };
            if self.errors.len() == before {
                nodes.push(Node {
                    hostname: n.hostname.value,
                    mac,
                    ip: ip.expect("checked"),
                    image,
                    pin,
                    cmdline: cmdline.unwrap_or_default(),
                    boot,
                    bmc,
                });
                origins.push(origin);
            } else if n.range.is_some() {
                // A range's nodes share their mistakes: say each once.
                for e in self.errors.split_off(before) {
                    if said.insert(e.to_string()) {
                        self.errors.push(e);
                    }
                }
            }
        }
        (nodes, origins)
    }

    /// Each range (`node[03-52]`) as the nodes it stands for; a range
    /// whose addresses leave the cluster network is one error.
    fn expand_ranges(
        &mut self,
        inputs: Vec<NodeInput>,
        cluster: Option<&Cluster>,
    ) -> Vec<NodeInput> {
        let mut out = Vec::with_capacity(inputs.len());
        for n in inputs {
            if !n.hostname.value.contains('[') {
                out.push(n);
                continue;
            }
            let range = n.hostname.value.clone();
            let ip_origin = n.ip.origin.clone();
            match range::expand(n) {
                Ok(v) if v.first().is_some_and(|m| m.range.is_some()) => {
                    let (first, last) = (&v[0].ip.value, &v[v.len() - 1].ip.value);
                    if let (Some(c), Ok(a), Ok(b)) =
                        (cluster, first.parse::<Ipv4Addr>(), last.parse::<Ipv4Addr>())
                    {
                        let net = c.network;
                        let host_last = if net.prefix_len() < 31 {
                            u32::from(net.broadcast()) - 1
                        } else {
                            u32::from(net.broadcast())
                        };
                        if net.contains(&a) && u32::from(b) > host_last {
                            self.error(ip_origin, "ip", format!(
                                "the range {range} counts {} addresses up from {a} to {b}, past the end of the cluster network {net} (its last host address is {}); start lower or shorten the range",
                                v.len(), Ipv4Addr::from(host_last)
                            ));
                            continue;
                        }
                    }
                    out.extend(v);
                }
                Ok(v) => out.extend(v),
                Err(e) => self.errors.push(e),
            }
        }
        out
    }

    /// A node's own `boot` (a `[[nodes]]` key or the CSV's `boot` column).
    fn node_boot(&mut self, b: &Sourced<String>) -> Boot {
        match b.value.as_str() {
            "pxelinux" => Boot::Pxelinux,
            "ipxe" => Boot::Ipxe,
            other => {
                self.error(b.origin.clone(), "boot", super::cluster::boot_says(other));
                Boot::default()
            }
        }
    }

    /// Reports a value (`shown` as such) that an earlier node has taken.
    fn check_unique<K: Hash + Eq>(
        &mut self,
        taken: &mut FastMap<K, Origin>,
        value: K,
        origin: &Origin,
        key: &str,
        shown: impl FnOnce() -> String,
    ) {
        // `shown` only for an error: 10,000 nodes format nothing.
        if let Some(first) = taken.insert(value, origin.clone()) {
            self.error(
                origin.clone(),
                key,
                format!("{} is already used by the node at {first}", shown()),
            );
        }
    }

    /// The MAC in lowercase colon form, or empty when it is not one.
    fn mac(&mut self, s: &Sourced<String>, taken: &mut FastMap<String, Origin>) -> String {
        match parse_mac(&s.value) {
            Ok(m) => {
                let shown = || format!("{:?}", s.value);
                self.check_unique(taken, m.clone(), &s.origin, "mac", shown);
                m
            }
            Err(why) => {
                self.error(s.origin.clone(), "mac", format!("{:?} {why}", s.value));
                String::new()
            }
        }
    }

    fn node_ip(
        &mut self,
        s: &Sourced<String>,
        cluster: Option<&Cluster>,
        taken: &mut FastMap<Ipv4Addr, Origin>,
    ) -> Option<Ipv4Addr> {
        let ip = self.host_ip(s, "ip", cluster.map(|c| c.network))?;
        if let Some(c) = cluster {
            if ip == c.master {
                self.error(
                    s.origin.clone(),
                    "ip",
                    format!("{ip} is the master's address"),
                );
            } else if Some(ip) == c.gateway {
                self.error(
                    s.origin.clone(),
                    "ip",
                    format!("{ip} is the gateway's address"),
                );
            }
        }
        self.check_unique(taken, ip, &s.origin, "ip", || ip.to_string());
        Some(ip)
    }

    /// `image = "NAME"`, or `"NAME@GENERATION"` to pin the node to a
    /// generation: the image's name and the pin.
    fn node_image(
        &mut self,
        i: &Sourced<String>,
        images: &BTreeSet<String>,
    ) -> (String, Option<String>) {
        let (name, generation) = match i.value.split_once('@') {
            Some((name, generation)) => (name, Some(generation)),
            None => (i.value.as_str(), None),
        };
        let pin = generation.and_then(|g| self.pin(i, g));
        self.check_image_exists(&i.origin, "image", name, images);
        (name.to_string(), pin)
    }

    /// A pin as `generations::resolve` reads it: a number (1 to 9999), a
    /// whole name (`0002-1a2b3c4d5e6f`) or 4 to 12 hex digits of a hash.
    fn pin(&mut self, i: &Sourced<String>, generation: &str) -> Option<String> {
        let g = generation.to_ascii_lowercase();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        let number = digits(&g) && g.len() <= 4 && g.parse::<u32>().is_ok_and(|n| n >= 1);
        let name = g.len() == 17
            && g.is_ascii()
            && digits(&g[..4])
            && &g[..4] != "0000"
            && g.as_bytes()[4] == b'-'
            && hex(&g[5..]);
        let hash_prefix = (4..=12).contains(&g.len()) && hex(&g) && !(digits(&g) && g.len() <= 4);
        if number || name || hash_prefix {
            return Some(g);
        }
        let image = i.value.split('@').next().unwrap_or_default();
        self.error(
            i.origin.clone(),
            "image",
            format!(
                "{:?}: after '@' comes a generation: its number (1 to 9999, like 2 or 0002), its name (like 0002-1a2b3c4d5e6f) or 4 to 12 hex digits of its hash; `ddc generations {image}` lists them",
                i.value
            ),
        );
        None
    }

    /// The image of a node that names none: `default`, or the only one.
    fn default_image(&mut self, origin: &Origin, images: &BTreeSet<String>) -> String {
        if images.contains("default") {
            return "default".to_string();
        }
        if images.len() == 1 {
            return images.first().cloned().expect("one image");
        }
        self.error(
            origin.clone(),
            "image",
            format!(
                "this node names no image and there is no [images.default]; add image = one of: {}",
                image_list(images)
            ),
        );
        String::new()
    }
}

/// Where a node was given, kept beside it.
fn node_origin(n: &NodeInput) -> NodeOrigin {
    let (csv, line) = match n.origin.place {
        Place::Row(r) => (true, r),
        Place::LineCol(l, _) => (false, l),
        Place::File => (false, 0),
    };
    NodeOrigin {
        csv,
        line,
        image_given: n.image.is_some(),
        range: n.range.clone(),
    }
}

/// Parses a MAC address (`:` or `-` separated) into lowercase colon form.
fn parse_mac(s: &str) -> Result<String, &'static str> {
    const BAD: &str = "is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)";
    // Six hex pairs split by `:` or `-`: 17 bytes, a separator every third.
    // Byte by byte, without a list of parts: 10,000 nodes are checked.
    let b = s.as_bytes();
    let sep = |i: usize| i % 3 == 2;
    let bad_byte = |(i, c): (usize, &u8)| {
        if sep(i) {
            *c != b':' && *c != b'-'
        } else {
            !c.is_ascii_hexdigit()
        }
    };
    if b.len() != 17 || b.iter().enumerate().any(bad_byte) {
        return Err(BAD);
    }
    let first = u8::from_str_radix(&s[..2], 16).map_err(|_| BAD)?;
    if first & 1 == 1 {
        return Err("is a multicast address, which no network card has");
    }
    if b.iter().enumerate().all(|(i, c)| sep(i) || *c == b'0') {
        return Err("is the all-zero address, which no network card has");
    }
    let lower = |(i, c): (usize, &u8)| {
        if sep(i) {
            ':'
        } else {
            c.to_ascii_lowercase() as char
        }
    };
    Ok(b.iter().enumerate().map(lower).collect())
}

#[cfg(test)]
mod mac_tests {
    use super::parse_mac;

    #[test]
    fn macs_as_the_split_on_colons_and_dashes_read_them() {
        assert_eq!(parse_mac("52:54:00:AB:cd:EF").unwrap(), "52:54:00:ab:cd:ef");
        assert_eq!(parse_mac("52-54-00:ab-cd-ef").unwrap(), "52:54:00:ab:cd:ef");
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52:54:00:ab:cd:e",
            "52:54:00:ab:cd:eg",
            "525:4:00:ab:cd:ef",
            "52.54.00.ab.cd.ef",
            "52:54:00:ab:cd:é",
        ] {
            assert!(
                parse_mac(bad).unwrap_err().starts_with("is not a MAC"),
                "{bad:?}"
            );
        }
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse_mac("00:00:00:00:00:00")
            .unwrap_err()
            .contains("all-zero"));
    }
}

//! The [cluster], [paths] and [server] tables: the network, where outputs
//! go, and how the master serves them.

use std::collections::BTreeSet;
use std::path::Path;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::paths::default_of;
use super::rules::{DNS_DOMAIN, INTERFACE};
use super::Validator;
use crate::config::model::{Cluster, Paths, Server};
use crate::config::origin::Origin;
use crate::config::raw::{RawCluster, RawPaths, RawServer};

/// The shortest prefix of a cluster network: no private range (RFC 1918) is
/// larger than a /8, and a shorter prefix takes in public address space of
/// others, to whom the image would be exported.
const MIN_PREFIX: u8 = 8;

impl Validator<'_> {
    pub(super) fn cluster(&mut self, raw: RawCluster) -> Option<Cluster> {
        let network = self.network(raw.network);
        let master = self.sourced(raw.master);
        let master = self.host_ip(&master, "cluster.master", network);
        let gateway = raw.gateway.and_then(|g| {
            let g = self.sourced(g);
            self.host_ip(&g, "cluster.gateway", network)
        });
        let mut dns = Vec::new();
        for d in raw.dns.unwrap_or_default() {
            let d = self.sourced(d);
            dns.extend(self.ipv4(&d, "cluster.dns"));
        }
        let domain = self.optional(raw.domain, "cluster.domain", &DNS_DOMAIN);
        Some(Cluster {
            network: network?,
            master: master?,
            gateway,
            dns,
            domain,
            syslog: raw.syslog.unwrap_or(false),
        })
    }

    fn network(&mut self, raw: Spanned<String>) -> Option<Ipv4Net> {
        let s = self.sourced(raw);
        let message = match s.value.parse::<Ipv4Net>() {
            Ok(n) if n.network() != n.addr() => format!(
                "{:?} has host bits set; write the network address, {}",
                s.value,
                n.trunc()
            ),
            Ok(n) if n.prefix_len() == 0 => format!(
                "{:?} is every IPv4 address: the image would be exported, and DHCP answers given, to the whole internet; give the cluster's own network, with a prefix of /{MIN_PREFIX} or longer (like 10.0.0.0/16)",
                s.value
            ),
            Ok(n) if n.prefix_len() < MIN_PREFIX => format!(
                "{:?} spans {} addresses, more than 10.0.0.0/8, the largest private range: the image would be exported to every one of them; give the cluster's own network, with a prefix of /{MIN_PREFIX} or longer (like 10.0.0.0/16)",
                s.value,
                1u64 << (32 - n.prefix_len())
            ),
            Ok(n) => return Some(n),
            Err(_) => format!(
                "{:?} is not a network in CIDR form (expected like 192.0.2.0/24)",
                s.value
            ),
        };
        self.error(s.origin, "cluster.network", message);
        None
    }

    pub(super) fn paths(&mut self, raw: RawPaths, base: &Path) -> Paths {
        let tftp_origin = raw.tftp_root.as_ref().map(|s| self.origin(s));
        let nfs_origin = raw.nfs_root.as_ref().map(|s| self.origin(s));
        let mut get = |v: Option<Spanned<String>>, key: &str| match v {
            Some(s) => self.path(s, &format!("paths.{key}"), base),
            None => base.join(default_of(key)),
        };
        let paths = Paths {
            tftp_root: get(raw.tftp_root, "tftp_root"),
            nfs_root: get(raw.nfs_root, "nfs_root"),
            exports: get(raw.exports, "exports"),
            ganesha: get(raw.ganesha, "ganesha"),
            dhcpd: get(raw.dhcpd, "dhcpd"),
            dnsmasq: get(raw.dnsmasq, "dnsmasq"),
            dnsmasq_hosts: get(raw.dnsmasq_hosts, "dnsmasq_hosts"),
            rsyslog: get(raw.rsyslog, "rsyslog"),
            rsyslog_main: get(raw.rsyslog_main, "rsyslog_main"),
        };
        // What may not appear in a path that goes into a kernel line
        // (nfsroot=HOST:PATH,OPTS), an export or a quoted config value.
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
            self.check_kernel_line_path(key, path, origin, bad);
        }
        paths
    }

    /// A space, quote, comma or colon would split a kernel line or an export.
    /// The path may come from the Ddcfile's folder rather than a key: then
    /// the message names the file.
    fn check_kernel_line_path(
        &mut self,
        key: &str,
        path: &Path,
        origin: Option<Origin>,
        bad: &str,
    ) {
        let text = path.display().to_string();
        if let Some(c) = text.chars().find(|c| bad.contains(*c) || c.is_control()) {
            let origin = origin.unwrap_or_else(|| self.file_origin());
            self.error(
                origin,
                key,
                format!(
                    "{text:?} has {c:?} in it, which cannot stand in a kernel line or an export; use a path of letters, digits, '/', '.', '_', '-' (set the key, or move the Ddcfile's folder)"
                ),
            );
        }
    }

    pub(super) fn server(&mut self, raw: RawServer, images: &BTreeSet<String>) -> Server {
        let allow_insecure_ports = raw.allow_insecure_ports.unwrap_or(false);
        let (export_options, ganesha) =
            self.export_options(raw.export_options, allow_insecure_ports);
        let dnsmasq_interface = self.optional(
            raw.dnsmasq_interface,
            "server.dnsmasq_interface",
            &INTERFACE,
        );
        let default_entry = raw.default_entry.map(|s| {
            let s = self.sourced(s);
            self.check_image_exists(&s.origin, "server.default_entry", &s.value, images);
            s.value
        });
        Server {
            export_options,
            ganesha,
            allow_insecure_ports,
            dnsmasq_tftp: raw.dnsmasq_tftp.unwrap_or(true),
            dnsmasq_interface,
            dnsmasq_dns: raw.dnsmasq_dns.unwrap_or(false),
            default_entry,
        }
    }
}

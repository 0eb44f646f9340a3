//! The [cluster], [paths] and [server] tables: the network, where outputs
//! go, and how the master serves them.

use std::collections::BTreeSet;
use std::path::Path;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::rules::{DNS_DOMAIN, EXPORT_OPTIONS, INTERFACE};
use super::Validator;
use crate::config::model::{Cluster, Paths, Server, DEFAULT_EXPORT_OPTIONS};
use crate::config::origin::{Origin, Place};
use crate::config::raw::{RawCluster, RawPaths, RawServer};

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
            Ok(n) if n.network() == n.addr() => return Some(n),
            Ok(n) => format!(
                "{:?} has host bits set; write the network address, {}",
                s.value,
                n.trunc()
            ),
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
        let mut get = |v: Option<Spanned<String>>, key: &str, default: &str| match v {
            Some(s) => self.path(s, &format!("paths.{key}"), base),
            None => base.join(default),
        };
        let paths = Paths {
            tftp_root: get(raw.tftp_root, "tftp_root", "out/tftp"),
            nfs_root: get(raw.nfs_root, "nfs_root", "out/nfsroot"),
            exports: get(raw.exports, "exports", "out/exports.d/ddc.exports"),
            ganesha: get(raw.ganesha, "ganesha", "out/ganesha/ddc.conf"),
            dhcpd: get(raw.dhcpd, "dhcpd", "out/dhcp/ddc.conf"),
            dnsmasq: get(raw.dnsmasq, "dnsmasq", "out/dnsmasq.d/ddc.conf"),
            dnsmasq_hosts: get(raw.dnsmasq_hosts, "dnsmasq_hosts", "out/dnsmasq/ddc.hosts"),
            rsyslog: get(raw.rsyslog, "rsyslog", "out/rsyslog.d/ddc.conf"),
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
            let origin = origin.unwrap_or_else(|| Origin {
                file: self.file.clone(),
                place: Place::File,
            });
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
        let export_options = self.export_options(raw.export_options, allow_insecure_ports);
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
            allow_insecure_ports,
            dnsmasq_tftp: raw.dnsmasq_tftp.unwrap_or(true),
            dnsmasq_interface,
            default_entry,
        }
    }

    fn export_options(
        &mut self,
        raw: Option<Spanned<String>>,
        allow_insecure_ports: bool,
    ) -> String {
        const KEY: &str = "server.export_options";
        let options = match raw.map(|s| self.sourced(s)) {
            Some(s) => {
                if self.check(&s, KEY, &EXPORT_OPTIONS)
                    && !allow_insecure_ports
                    && s.value.split(',').any(|o| o == "insecure")
                {
                    self.error(
                        s.origin.clone(),
                        KEY,
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
        port_option(&options, allow_insecure_ports)
    }
}

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

//! The [cluster], [paths] and [server] tables: the network, where outputs
//! go, and how the master serves them.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
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
        let boot = self.choice(raw.boot, "cluster.boot", boot_says);
        Some(Cluster {
            network: network?,
            master: master?,
            gateway,
            dns,
            domain,
            syslog: raw.syslog.unwrap_or(false),
            boot,
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

    pub(super) fn server(
        &mut self,
        raw: RawServer,
        images: &BTreeSet<String>,
        master: Option<Ipv4Addr>,
    ) -> Server {
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
        let http = self.http(raw.http, master);
        let heartbeat = self.heartbeat(raw.heartbeat);
        Server {
            export_options,
            ganesha,
            allow_insecure_ports,
            dnsmasq_tftp: raw.dnsmasq_tftp.unwrap_or(true),
            dnsmasq_interface,
            dnsmasq_dns: raw.dnsmasq_dns.unwrap_or(false),
            default_entry,
            http,
            heartbeat,
            discovery: None,
        }
    }

    /// `[server] http`: an address nodes reach, with a port; the master's
    /// port 8080 when absent.
    fn http(&mut self, raw: Option<Spanned<String>>, master: Option<Ipv4Addr>) -> SocketAddrV4 {
        let fallback =
            SocketAddrV4::new(master.unwrap_or(Ipv4Addr::UNSPECIFIED), DEFAULT_HTTP_PORT);
        let Some(raw) = raw else {
            return fallback;
        };
        let s = self.sourced(raw);
        let message = match s.value.parse::<SocketAddrV4>() {
            Ok(a) if a.ip().is_unspecified() || a.ip().is_broadcast() || a.ip().is_multicast() => format!(
                "{:?}: nodes put this address in the URLs they fetch, so it must be one they can reach, like the master's ({}:{DEFAULT_HTTP_PORT}); to listen on every address, run `ddc serve --listen 0.0.0.0:PORT`",
                s.value,
                master.map(|m| m.to_string()).unwrap_or_else(|| "MASTER".into())
            ),
            Ok(a) if a.port() == 0 => format!("{:?} has port 0; give the port nodes connect to, like {}:{DEFAULT_HTTP_PORT}", s.value, a.ip()),
            Ok(a) => return a,
            Err(_) => format!(
                "{:?} is not an IPv4 address with a port (expected like 192.0.2.1:{DEFAULT_HTTP_PORT})",
                s.value
            ),
        };
        self.error(s.origin, "server.http", message);
        fallback
    }

    /// `[server] heartbeat`: seconds between a node's reports.
    fn heartbeat(&mut self, raw: Option<Spanned<i64>>) -> u32 {
        let Some(raw) = raw else {
            return DEFAULT_HEARTBEAT;
        };
        let origin = self.origin(&raw);
        let v = raw.into_inner();
        match u32::try_from(v) {
            Ok(s) if HEARTBEAT_RANGE.contains(&s) => s,
            _ => {
                self.error(
                    origin,
                    "server.heartbeat",
                    format!(
                        "{v} is not a heartbeat in seconds between {} and {} (a day); nodes report this often, and are called silent after 3 missed reports",
                        HEARTBEAT_RANGE.start(),
                        HEARTBEAT_RANGE.end()
                    ),
                );
                DEFAULT_HEARTBEAT
            }
        }
    }
}

const DEFAULT_HTTP_PORT: u16 = 8080;
const DEFAULT_HEARTBEAT: u32 = 60;
const HEARTBEAT_RANGE: std::ops::RangeInclusive<u32> = 5..=86_400;

/// The message for a `boot` value that names no boot method.
pub(super) fn boot_says(v: &str) -> String {
    format!("{v:?} is not a boot method; use \"pxelinux\" (TFTP, the default) or \"ipxe\" (iPXE over HTTP)")
}

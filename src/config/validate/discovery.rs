//! `[server] discovery = "FIRST-LAST"`: the addresses DHCP leases, for a
//! few minutes, to machines outside the inventory, so that they reach
//! iPXE's boot script and report themselves to `ddc serve` (`ddc
//! discover`). Checked against the cluster network, the master's and the
//! nodes' addresses, and the boot method unknown machines get.

use std::collections::HashMap;

use toml::Spanned;

use super::Validator;
use crate::config::model::{Boot, Cluster, DiscoveryRange, Node, NodeOrigin, Server};

const KEY: &str = "server.discovery";

impl Validator<'_> {
    pub(super) fn discovery(
        &mut self,
        raw: Spanned<String>,
        cluster: &Cluster,
        server: &Server,
        nodes: &[Node],
        origins: &[NodeOrigin],
        boots: &HashMap<&str, Boot>,
    ) -> Option<DiscoveryRange> {
        let s = self.sourced(raw);
        let Some((a, b)) = s.value.split_once('-') else {
            self.error(
                s.origin,
                KEY,
                format!(
                    "{:?} is not a range of addresses: write FIRST-LAST, like \"192.0.2.200-192.0.2.249\"",
                    s.value
                ),
            );
            return None;
        };
        let first = self.ipv4(&sub(&s, a.trim()), KEY)?;
        let last = self.ipv4(&sub(&s, b.trim()), KEY)?;
        let net = cluster.network;
        for ip in [first, last] {
            self.check_host_in(&s.origin, KEY, ip, net);
        }
        if first > last {
            self.error(
                s.origin,
                KEY,
                format!("{first} comes after {last}: write the lower address first"),
            );
            return None;
        }
        let range = DiscoveryRange { first, last };
        let mut own = vec![
            ("the master", cluster.master),
            ("server.http", *server.http.ip()),
        ];
        own.extend(cluster.gateway.map(|g| ("the gateway", g)));
        own.extend(cluster.dns.iter().map(|d| ("a DNS server", *d)));
        for (what, ip) in own {
            if range.contains(ip) {
                self.error(
                    s.origin.clone(),
                    KEY,
                    format!("{first}-{last} holds {ip}, {what}'s address: the range is leased to unknown machines; pick addresses no host uses"),
                );
            }
        }
        let inside: Vec<String> = nodes
            .iter()
            .zip(origins)
            .filter(|(n, _)| range.contains(n.ip))
            .map(|(n, o)| {
                let at = if o.csv { "row" } else { "line" };
                format!("{} {} ({at} {})", n.hostname, n.ip, o.line)
            })
            .collect();
        if !inside.is_empty() {
            let more = match inside.len() {
                n if n > 3 => format!(" and {} more", n - 3),
                _ => String::new(),
            };
            self.error(
                s.origin.clone(),
                KEY,
                format!(
                    "{first}-{last} holds the address of {}{more}: the range is leased to unknown machines; move the range or those nodes",
                    inside[..inside.len().min(3)].join(", ")
                ),
            );
        }
        let default = match &server.default_entry {
            Some(image) => boots.get(image.as_str()).copied().unwrap_or(cluster.boot),
            None => cluster.boot,
        };
        if default != Boot::Ipxe {
            self.error(
                s.origin,
                KEY,
                "unknown machines report themselves from iPXE's boot script, but they are handed pxelinux: set [cluster] boot = \"ipxe\" (nodes may keep boot = \"pxelinux\"), or the ipxe image as server.default_entry",
            );
            return None;
        }
        Some(range)
    }
}

/// One side of the range, placed at the key's value.
fn sub(
    s: &crate::config::origin::Sourced<String>,
    v: &str,
) -> crate::config::origin::Sourced<String> {
    crate::config::origin::Sourced {
        value: v.to_string(),
        origin: s.origin.clone(),
    }
}

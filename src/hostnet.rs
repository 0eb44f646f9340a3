//! What `ddc init` reads of this master: its IPv4 interfaces, which one
//! carries the default route, and the one that is obviously the cluster
//! network's, if any. Knows nothing of the config.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// An IPv4 address of an interface that is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Iface {
    pub(crate) name: String,
    /// The address with its prefix (`10.1.0.1/24`).
    pub(crate) addr: Ipv4Net,
    /// It carries the default route: the way out, not the cluster's.
    pub(crate) default_route: bool,
}

impl Iface {
    pub(crate) fn master(&self) -> Ipv4Addr {
        self.addr.addr()
    }

    pub(crate) fn network(&self) -> Ipv4Net {
        self.addr.trunc()
    }
}

/// Names of interfaces that are not a NIC of the master: containers,
/// virtual machines and tunnels.
const VIRTUAL: &[&str] = &[
    "docker",
    "veth",
    "virbr",
    "br-",
    "lxc",
    "lxd",
    "tun",
    "tap",
    "wg",
    "vnet",
    "cni",
    "flannel",
    "podman",
    "tailscale",
    "zt",
];

/// The IPv4 addresses of the master's interfaces that are up, not the
/// loopback and not virtual, in the kernel's order.
pub(crate) fn interfaces() -> Vec<Iface> {
    use nix::net::if_::InterfaceFlags;
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let default = default_route_interfaces(&routes);
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in addrs {
        if !a.flags.contains(InterfaceFlags::IFF_UP)
            || a.flags.contains(InterfaceFlags::IFF_LOOPBACK)
            || VIRTUAL.iter().any(|v| a.interface_name.starts_with(v))
        {
            continue;
        }
        let ip = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip());
        let mask = a
            .netmask
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip());
        let (Some(ip), Some(mask)) = (ip, mask) else {
            continue;
        };
        let prefix = u32::from(mask).leading_ones() as u8;
        if let Ok(addr) = Ipv4Net::new(ip, prefix) {
            out.push(Iface {
                default_route: default.contains(&a.interface_name),
                name: a.interface_name,
                addr,
            });
        }
    }
    out
}

/// The interfaces of `/proc/net/route`'s default routes.
fn default_route_interfaces(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
        })
        .collect()
}

/// The cluster's interface when there is one obvious choice: the only one
/// without the default route (a master with a way out and a cluster
/// network), or the only one there is.
pub(crate) fn obvious(ifaces: &[Iface]) -> Option<&Iface> {
    let inside: Vec<&Iface> = ifaces.iter().filter(|i| !i.default_route).collect();
    match (inside.as_slice(), ifaces) {
        ([one], _) => Some(one),
        ([], [only]) => Some(only),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(name: &str, addr: &str, default_route: bool) -> Iface {
        Iface {
            name: name.into(),
            addr: addr.parse().unwrap(),
            default_route,
        }
    }

    #[test]
    fn the_obvious_cluster_interface() {
        let uplink = i("eth0", "192.168.1.5/24", true);
        let cluster = i("eth1", "10.1.0.1/16", false);
        let other = i("eth2", "10.2.0.1/24", false);
        assert_eq!(obvious(&[uplink.clone(), cluster.clone()]), Some(&cluster));
        assert_eq!(obvious(std::slice::from_ref(&uplink)), Some(&uplink));
        assert_eq!(obvious(std::slice::from_ref(&cluster)), Some(&cluster));
        assert_eq!(obvious(&[uplink.clone(), cluster.clone(), other]), None);
        assert_eq!(
            obvious(&[uplink.clone(), i("eth3", "172.16.0.9/24", true)]),
            None
        );
        assert_eq!(obvious(&[]), None);
        assert_eq!(cluster.network().to_string(), "10.1.0.0/16");
        assert_eq!(cluster.master().to_string(), "10.1.0.1");
    }

    #[test]
    fn default_routes_are_read_from_the_kernel_table() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth1\t0000010A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(default_route_interfaces(table), ["eth0"]);
    }
}

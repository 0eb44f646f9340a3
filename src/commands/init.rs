//! `ddc init [DIR]`: writes a commented `Ddcfile.toml` for this master and
//! an example `nodes.csv`. The cluster network and the master's address
//! come from the master's interfaces when one is obviously the cluster's
//! (a documentation placeholder with a comment otherwise), the suite and
//! architecture from the master itself, the mirror from its apt sources.
//! Never overwrites a file. Must not import `cli`.

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::error::{Error, NotStarted};
use crate::hostnet::{self, Iface};

/// What `ddc init` found on this master.
pub(crate) struct Found {
    pub(crate) interfaces: Vec<Iface>,
    /// The master's Debian suite and architecture.
    pub(crate) suite: String,
    pub(crate) arch: String,
    /// From the master's apt sources; empty if none was found.
    pub(crate) mirror: String,
}

pub(crate) fn run(dir: &Path) -> Result<(), Error> {
    let ddcfile = dir.join("Ddcfile.toml");
    let nodes = dir.join("nodes.csv");
    let present: Vec<String> = [&ddcfile, &nodes]
        .iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !present.is_empty() {
        return Err(NotStarted(format!(
            "not overwriting {}: ddc init writes a new cluster folder; move them away or pick another folder",
            present.join(" and ")
        ))
        .into());
    }
    let found = Found {
        interfaces: hostnet::interfaces(),
        suite: master_suite(),
        arch: master_arch(),
        mirror: crate::config::system_mirror(),
    };
    let (text, csv) = (ddcfile_text(&found), nodes_csv(&found));
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    for (path, body) in [(&ddcfile, &text), (&nodes, &csv)] {
        std::fs::write(path, body)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let net = match hostnet::obvious(&found.interfaces) {
        Some(i) => format!("cluster network {} on {}", i.network(), i.name),
        None => {
            "no obvious cluster network on this master: set [cluster] network and master".into()
        }
    };
    println!(
        "wrote {} and {} ({net}); edit them, then `ddc build -n` shows what `sudo ddc build` will do",
        ddcfile.display(),
        nodes.display()
    );
    Ok(())
}

/// The master's Debian codename, or bookworm.
fn master_suite() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
    };
    match (field("ID").as_deref(), field("VERSION_CODENAME")) {
        (Some("debian"), Some(c)) if !c.is_empty() => c,
        _ => "bookworm".into(),
    }
}

/// The master's Debian architecture.
fn master_arch() -> String {
    std::process::Command::new("/usr/bin/dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| match std::env::consts::ARCH {
            "aarch64" => "arm64".into(),
            _ => "amd64".into(),
        })
}

/// The network, master and its comment: the obvious interface's, or the
/// documentation network with a comment saying what to put there.
fn cluster(found: &Found) -> (Ipv4Net, Ipv4Addr, String) {
    match hostnet::obvious(&found.interfaces).filter(|i| i.addr.prefix_len() <= 29) {
        Some(i) => {
            let why = if found.interfaces.len() == 1 {
                "its only interface"
            } else {
                "the only interface without the default route"
            };
            let comment = format!("# Found on this master: {} ({}), {why}.\n", i.name, i.addr);
            (i.network(), i.master(), comment)
        }
        None => {
            let seen: Vec<String> = found
                .interfaces
                .iter()
                .map(|i| format!("{} {}", i.name, i.addr))
                .collect();
            let seen = if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            };
            let comment = format!(
                "# No obvious cluster network on this master (interfaces: {seen}).\n\
                 # A placeholder: put the cluster network and this master's address on it here.\n"
            );
            let net: Ipv4Net = "192.0.2.0/24".parse().expect("a network");
            (net, Ipv4Addr::new(192, 0, 2, 1), comment)
        }
    }
}

const DDCFILE: &str = r#"# The cluster this master serves, written by `ddc init`. Relative paths
# are relative to this file. `ddc build -n` shows what a build would do,
# `sudo ddc build` builds it, `ddc graph` shows the steps.

nodes_file = "nodes.csv"      # the nodes: hostname,mac,ip[,image[,cmdline]] (an example: replace it)
# tasks_dir = "tasks"         # files here replace the built-in step scripts and templates
#                             # (`ddc tasks --eject tasks` writes them out for editing)

[cluster]
{CLUSTER_COMMENT}network = "{NETWORK}"
master  = {MASTER} # this master's address there: serves TFTP, NFS and syslog
# gateway = "…"               # the nodes' default route
# dns     = ["…"]
# domain  = "cluster.example"
# syslog  = true              # nodes send their logs to the master

[paths]                       # where the outputs go: under out/ here by default; on the master:
# tftp_root = "/srv/tftp"
# nfs_root  = "/srv/nfsroot"
# exports   = "/etc/exports.d/ddc.exports"
# ganesha   = "/etc/ganesha/ddc.conf"
# dhcpd     = "/etc/dhcp/ddc.conf"
# dnsmasq   = "/etc/dnsmasq.d/ddc.conf"

[server]
{INTERFACE}
[images.default]
suite    = {SUITE} # this master's
arch     = "{ARCH}"
packages = ["{KERNEL}", "nfs-common", "systemd-sysv"]
{MIRROR}
# union = "overlay"           # or "aufs"
# bootstrapper = "mmdebstrap" # or "debootstrap"
# cmdline = "console=ttyS0"   # extra kernel arguments
# files = "files"             # a tree copied over the image, owners and modes kept
# root_password_hash = "$y$…" # a crypt(3) hash: mkpasswd -m yescrypt
# ssh_authorized_keys = ["ssh-ed25519 AAAA… admin@master"]
# snapshot = "20240101T000000Z"  # pin the packages to this moment of Debian's snapshot archive,
# snapshot_archive = "URL"       # whose base URL this is (README: Reproducible generations)
"#;

/// The Ddcfile for what was found.
pub(crate) fn ddcfile_text(found: &Found) -> String {
    let (network, master, comment) = cluster(found);
    let interface = match hostnet::obvious(&found.interfaces) {
        Some(i) if i.network() == network => {
            let q = format!("\"{}\"", i.name);
            format!("dnsmasq_interface = {q:<9} # dnsmasq answers DHCP there only\n")
        }
        _ => "# dnsmasq_interface = \"eth1\" # dnsmasq answers DHCP there only\n".into(),
    };
    let mirror = if found.mirror.is_empty() {
        "# mirror = \"http://…/debian\"  # none found in this master's apt sources: the bootstrapper's default".to_string()
    } else {
        format!(
            "mirror   = \"{}\"  # from this master's apt sources",
            found.mirror
        )
    };
    let kernel = match found.arch.as_str() {
        "i386" => "linux-image-686".to_string(),
        a => format!("linux-image-{a}"),
    };
    DDCFILE
        .replace("{CLUSTER_COMMENT}", &comment)
        .replace("{NETWORK}", &network.to_string())
        .replace("{MASTER}", &format!("{:<19}", format!("\"{master}\"")))
        .replace("{INTERFACE}", &interface)
        .replace(
            "{SUITE}",
            &format!("{:<18}", format!("\"{}\"", found.suite)),
        )
        .replace("{ARCH}", &found.arch)
        .replace("{KERNEL}", &kernel)
        .replace("{MIRROR}", &mirror)
}

/// Two example nodes in the cluster network, away from its first addresses
/// where it is large enough.
pub(crate) fn nodes_csv(found: &Found) -> String {
    let (network, master, _) = cluster(found);
    let skip = if network.prefix_len() <= 24 { 100 } else { 0 };
    let hosts = network.hosts().skip(skip).filter(|h| *h != master);
    let mut csv = String::from(
        "# One node a row (ddc node add|set|rm edit this file in place; ddc nodes lists them).\n\
# Optional columns: add image and cmdline to the header; a row may leave them out.\n\
# A range, its MAC and IP counted up: node[03-52],52:54:00:aa:00:03,192.0.2.13\n\
hostname,mac,ip\n",
    );
    for (n, ip) in hosts.take(2).enumerate() {
        csv.push_str(&format!(
            "node{:02},52:54:00:00:00:{:02x},{ip}\n",
            n + 1,
            n + 1
        ));
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(ifaces: &[(&str, &str, bool)], mirror: &str) -> Found {
        Found {
            interfaces: ifaces
                .iter()
                .map(|(n, a, d)| Iface {
                    name: n.to_string(),
                    addr: a.parse().unwrap(),
                    default_route: *d,
                })
                .collect(),
            suite: "bookworm".into(),
            arch: "amd64".into(),
            mirror: mirror.into(),
        }
    }

    /// The written files validate, whatever was found.
    fn validate(f: &Found) -> crate::config::Config {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("nodes.csv"), nodes_csv(f)).unwrap();
        crate::config::parse(&ddcfile_text(f), "Ddcfile.toml", d.path(), &|| {
            "http://mirror.invalid/debian".into()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", ddcfile_text(f)))
    }

    #[test]
    fn an_obvious_interface_gives_the_network_master_and_dnsmasq_interface() {
        let f = found(
            &[
                ("eth0", "192.168.1.5/24", true),
                ("eth1", "10.1.0.1/16", false),
            ],
            "http://deb.example/debian",
        );
        let cfg = validate(&f);
        assert_eq!(cfg.cluster.network.to_string(), "10.1.0.0/16");
        assert_eq!(cfg.cluster.master.to_string(), "10.1.0.1");
        assert_eq!(cfg.server.dnsmasq_interface.as_deref(), Some("eth1"));
        assert_eq!(cfg.images["default"].mirror, "http://deb.example/debian");
        let ips: Vec<String> = cfg.nodes.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(ips, ["10.1.0.101", "10.1.0.102"]);
        assert!(ddcfile_text(&f).contains("# Found on this master: eth1 (10.1.0.1/16)"));
    }

    #[test]
    fn no_obvious_interface_gives_the_placeholder_and_says_so() {
        for ifaces in [
            vec![],
            vec![
                ("eth0", "192.168.1.5/24", false),
                ("eth1", "10.1.0.1/16", false),
            ],
            vec![("eth0", "192.168.1.5/31", false)],
        ] {
            let f = found(&ifaces, "");
            let cfg = validate(&f);
            assert_eq!(cfg.cluster.network.to_string(), "192.0.2.0/24");
            assert_eq!(cfg.cluster.master.to_string(), "192.0.2.1");
            assert_eq!(cfg.server.dnsmasq_interface, None);
            assert_eq!(cfg.nodes.len(), 2);
            let text = ddcfile_text(&f);
            assert!(text.contains("# No obvious cluster network"), "{text}");
            assert!(text.contains("# mirror = "), "{text}");
            assert_eq!(cfg.images["default"].mirror, "http://mirror.invalid/debian");
        }
    }

    #[test]
    fn a_small_network_still_gets_two_nodes() {
        let f = found(&[("eth1", "10.9.9.1/29", false)], "");
        let cfg = validate(&f);
        let ips: Vec<String> = cfg.nodes.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(ips, ["10.9.9.2", "10.9.9.3"]);
    }
}

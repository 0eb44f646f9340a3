//! What a generated file's header says about itself: where it is (the path
//! the daemon reads, not the candidate in the cache) and how what reads it
//! gets to read a new one: `ddc build`, through `[apply]`, or the
//! administrator, with the command.

use serde_json::{json, Value};

use super::{Daemon, Role};
use crate::config::{Config, Reach};

/// `{"file": "/abs/path", "reload": "…"}` for a template's header.
pub(crate) fn wiring(cfg: &Config, role: Role) -> Value {
    json!({
        "file": role.installed(cfg).display().to_string(),
        "reload": reload(cfg, role),
    })
}

/// The input that makes a config task rewrite its headers when `[apply]`
/// for its daemon changes, or the Ddcfile they name.
pub(crate) fn wiring_input(cfg: &Config, daemon: Daemon) -> crate::fingerprint::Input {
    super::Planner::value(
        format!("apply.{}.reach", daemon.key()),
        &(daemon.reach(cfg), &cfg.file),
    )
}

/// By hand: the command that makes the daemon read `role`'s file.
fn by_hand(role: Role) -> &'static str {
    match role {
        Role::DnsmasqMain => "systemctl restart dnsmasq (it reads this file only when it starts)",
        Role::DnsmasqHosts => {
            "systemctl reload dnsmasq, or SIGHUP to dnsmasq (it rereads this file on SIGHUP)"
        }
        Role::Dhcpd => "systemctl restart isc-dhcp-server (dhcpd reads it only when it starts)",
        Role::Exports => "exportfs -ra",
        Role::Ganesha => "systemctl reload nfs-ganesha, or SIGHUP to ganesha.nfsd",
        Role::Rsyslog => "systemctl restart rsyslog (it reads this file only when it starts)",
    }
}

fn reload(cfg: &Config, role: Role) -> String {
    let daemon = role.daemon();
    let key = daemon.key();
    match daemon.reach(cfg) {
        Reach::Off => format!(
            "ddc does not reload it ([apply] {key} = \"off\"): after ddc build, {}",
            by_hand(role)
        ),
        Reach::Auto => format!(
            "ddc build checks it, puts it here and has it read when it changes ([apply] {key} = \"auto\": through systemd when the usual unit runs; otherwise it says so, and then: {})",
            by_hand(role)
        ),
        Reach::Systemd(unit) => {
            let unit = unit.as_deref().unwrap_or("the usual unit");
            format!("ddc build checks it, puts it here and has systemd reload or restart {unit} when it changes ([apply] {key})")
        }
        Reach::Pidfile(p) if role.read_at_start() => format!(
            "ddc build checks it and puts it here; the process in {} reads it only when it starts, so ddc asks you to restart it when it changes ([apply] {key})",
            p.display()
        ),
        Reach::Pidfile(p) => format!(
            "ddc build checks it, puts it here and sends SIGHUP to the process in {} when it changes ([apply] {key})",
            p.display()
        ),
    }
}

//! Issuing a rollout's reboots: through a node's BMC (`ipmitool … chassis
//! power cycle`, `crate::bmc`), or `ssh -o BatchMode=yes root@IP systemctl
//! reboot`, the node's host keys checked against its running image's keys
//! (`cache/ssh-host-keys/IMG/`, which ddc keeps for every generation) when
//! ddc has them; `[power] parallel` at a time, each within `[power]
//! timeout`, all stopped by Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::select::{Method, Plan};
use crate::bmc::{self, Action as Power};
use crate::config::Config;
use crate::process::{self, Bounded, Cancel};
use crate::rollout::{Machine, Phase};

/// How a reboot went.
pub(super) enum Issued {
    /// It was never started (interrupted first): the node is pending again.
    NotStarted,
    /// Interrupted while it ran: it may have happened; the node stays
    /// rebooting (waited for on resume, never rebooted again).
    Unknown,
    Done(Result<(), String>),
}

/// Issues the reboots, `[power] parallel` at a time; the results in the
/// order of `idx`.
pub(super) fn issue_all(
    cfg: &Config,
    plan: &Plan,
    m: &Machine,
    idx: &[usize],
    cancel: &Cancel,
) -> Vec<Issued> {
    // The image each node runs now, whose host keys it shows.
    let mut known: BTreeMap<&str, Option<PathBuf>> = BTreeMap::new();
    for &i in idx {
        let n = &m.nodes[i];
        let running = match n.phase {
            Phase::Forward => &n.from.image,
            Phase::Back => &n.to.image,
        };
        if plan.methods[i] == Method::Ssh && !known.contains_key(running.as_str()) {
            known.insert(running, known_hosts(cfg, running));
        }
    }
    let results: Vec<Mutex<Option<Issued>>> = idx.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = cfg.power.parallel.min(idx.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = idx.get(k) else { break };
                let n = &m.nodes[i];
                let running = match n.phase {
                    Phase::Forward => &n.from.image,
                    Phase::Back => &n.to.image,
                };
                let keys = known.get(running.as_str()).cloned().flatten();
                let r = issue(cfg, plan, &n.name, plan.methods[i], keys, cancel);
                *results[k].lock().expect("result") = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .expect("result")
                .unwrap_or(Issued::NotStarted)
        })
        .collect()
}

fn issue(
    cfg: &Config,
    plan: &Plan,
    name: &str,
    method: Method,
    known: Option<PathBuf>,
    cancel: &Cancel,
) -> Issued {
    if cancel.is_cancelled() {
        return Issued::NotStarted;
    }
    let node = cfg.nodes.iter().find(|n| n.hostname == name);
    match method {
        Method::Bmc => {
            let Some(b) = node.and_then(|n| n.bmc.as_ref()) else {
                return Issued::Done(Err(
                    "no bmc set any more: give it bmc = \"ADDR[:PORT]\" again".into(),
                ));
            };
            let Some(c) = &plan.creds else {
                return Issued::Done(Err("no [power] credentials".into()));
            };
            let o = bmc::run(&cfg.power, c, b, Power::Cycle, cancel);
            if o.ok {
                Issued::Done(Ok(()))
            } else if cancel.is_cancelled() {
                Issued::Unknown
            } else {
                Issued::Done(Err(o.result))
            }
        }
        Method::Ssh => match node {
            Some(n) => ssh_reboot(&n.ip.to_string(), known, cfg.power.timeout, cancel),
            None => Issued::Done(Err("no longer in the inventory".into())),
        },
    }
}

/// A known-hosts file of image `image`'s host keys (those ddc keeps in
/// `cache/ssh-host-keys/IMG/`), written beside them for ssh; None when ddc
/// has none (the user's own known hosts are used).
fn known_hosts(cfg: &Config, image: &str) -> Option<PathBuf> {
    let cache = cfg.base_dir.join("cache");
    let dir = cache.join("ssh-host-keys").join(image);
    let mut lines: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("ssh_host_") && n.ends_with("_key.pub")
        })
        .filter_map(|e| crate::fsutil::open_no_follow(&e.path()).ok())
        .filter_map(|f| std::io::read_to_string(f).ok())
        .filter_map(|t| {
            let mut w = t.split_whitespace();
            Some(format!("* {} {}\n", w.next()?, w.next()?))
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    lines.sort();
    let file = cache.join(format!("rollout-known-hosts-{image}"));
    crate::fsutil::atomic_write_mode(&file, lines.concat().as_bytes(), false, 0o644).ok()?;
    Some(file)
}

/// `ssh -o BatchMode=yes root@IP systemctl reboot`, checking the node's
/// host key against `known` when given. The connection may drop as the
/// node goes down: that is a reboot too.
fn ssh_reboot(ip: &str, known: Option<PathBuf>, timeout: u64, cancel: &Cancel) -> Issued {
    let mut cmd = Command::new("ssh");
    cmd.args([
        "-o".to_string(),
        "BatchMode=yes".to_string(),
        "-o".to_string(),
        format!("ConnectTimeout={timeout}"),
    ]);
    if let Some(k) = known {
        cmd.arg("-o")
            .arg(format!("UserKnownHostsFile={}", k.display()))
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "StrictHostKeyChecking=yes"]);
    }
    cmd.args([format!("root@{ip}").as_str(), "systemctl", "reboot"]);
    let name = ip;
    match process::run_bounded(&mut cmd, Duration::from_secs(timeout), cancel) {
        Ok(Bounded::Exited { status, stderr, .. }) => {
            let err = String::from_utf8_lossy(&stderr);
            let dropped = status.code() == Some(255)
                && (err.contains("closed by remote host") || err.contains("Connection reset"));
            if status.success() || dropped {
                Issued::Done(Ok(()))
            } else {
                // ssh's last line is its verdict (after a host key warning's banner).
                let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                Issued::Done(Err(format!(
                    "ssh root@{name} systemctl reboot failed ({status}): {}",
                    last.trim()
                )))
            }
        }
        Ok(Bounded::TimedOut) => Issued::Done(Err(format!(
            "ssh root@{name} systemctl reboot did not end within {timeout}s (power.timeout)"
        ))),
        Ok(Bounded::Cancelled) => Issued::Unknown,
        Err(e) => Issued::Done(Err(format!("{e:#}"))),
    }
}

//! `apply:DAEMON` (`apply:dnsmasq`, `apply:dhcpd`, `apply:nfs`,
//! `apply:rsyslog`): makes a running daemon serve the config ddc wrote for
//! it. The config task (`dhcp`, `exports`, `rsyslog`) writes a candidate in
//! the cache (`cache/staged/DAEMON/`); this task, which depends on it and so
//! runs only when its output changed, checks the candidate with the
//! daemon's own checker ([`check`]), renames it into place, and reloads the
//! daemon the way that keeps it serving ([`reach`]).
//!
//! Its outputs are the installed files. A candidate that fails the check is
//! never installed, the task fails, and its record stays the old one: the
//! next build tries again. What the daemon was last made to read is kept in
//! `cache/applied/DAEMON/state.json`, so that a rerun reloads only a daemon
//! whose own files changed, and a restart ddc asked for is noticed.
//!
//! With `[apply] DAEMON = "off"` there is no such task and the config task
//! writes the file in place, unchecked, as ddc always did.

mod check;
mod ganesha;
mod reach;
mod wiring;

pub(crate) use wiring::{wiring, wiring_input};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{Kind, Need, Planner, Produced, Recipe, RunCtx, Subject, TaskSpec};
use crate::config::{Config, Image, Reach};
use crate::fingerprint::Input;
use crate::fsutil::atomic_write;

pub(crate) struct Apply;

/// A daemon whose config ddc writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Daemon {
    Dnsmasq,
    Dhcpd,
    Nfs,
    Rsyslog,
}

/// One file ddc writes for a daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    DnsmasqMain,
    DnsmasqHosts,
    Dhcpd,
    Exports,
    Ganesha,
    Rsyslog,
}

impl Role {
    /// Its name in the cache (`cache/staged/DAEMON/NAME`) and in the state.
    fn name(self) -> &'static str {
        match self {
            Role::DnsmasqMain => "main.conf",
            Role::DnsmasqHosts => "hosts",
            Role::Dhcpd => "dhcpd.conf",
            Role::Exports => "exports",
            Role::Ganesha => "ganesha.conf",
            Role::Rsyslog => "rsyslog.conf",
        }
    }

    fn daemon(self) -> Daemon {
        match self {
            Role::DnsmasqMain | Role::DnsmasqHosts => Daemon::Dnsmasq,
            Role::Dhcpd => Daemon::Dhcpd,
            Role::Exports | Role::Ganesha => Daemon::Nfs,
            Role::Rsyslog => Daemon::Rsyslog,
        }
    }

    /// Where the daemon reads it.
    pub(crate) fn installed(self, cfg: &Config) -> &Path {
        let p = &cfg.paths;
        match self {
            Role::DnsmasqMain => &p.dnsmasq,
            Role::DnsmasqHosts => &p.dnsmasq_hosts,
            Role::Dhcpd => &p.dhcpd,
            Role::Exports => &p.exports,
            Role::Ganesha => &p.ganesha,
            Role::Rsyslog => &p.rsyslog,
        }
    }

    /// The daemon reads it only when it starts (dnsmasq's main config,
    /// dhcpd's, rsyslog's): a change needs a restart, not a SIGHUP.
    fn read_at_start(self) -> bool {
        matches!(self, Role::DnsmasqMain | Role::Dhcpd | Role::Rsyslog)
    }
}

impl Daemon {
    const ALL: [Daemon; 4] = [Daemon::Dnsmasq, Daemon::Dhcpd, Daemon::Nfs, Daemon::Rsyslog];

    /// Its key in `[apply]` and its task's instance.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Daemon::Dnsmasq => "dnsmasq",
            Daemon::Dhcpd => "dhcpd",
            Daemon::Nfs => "nfs",
            Daemon::Rsyslog => "rsyslog",
        }
    }

    /// The key input that says how it is reached.
    fn input_name(self) -> &'static str {
        match self {
            Daemon::Dnsmasq => "apply.dnsmasq",
            Daemon::Dhcpd => "apply.dhcpd",
            Daemon::Nfs => "apply.nfs",
            Daemon::Rsyslog => "apply.rsyslog",
        }
    }

    fn roles(self) -> &'static [Role] {
        match self {
            Daemon::Dnsmasq => &[Role::DnsmasqMain, Role::DnsmasqHosts],
            Daemon::Dhcpd => &[Role::Dhcpd],
            Daemon::Nfs => &[Role::Exports, Role::Ganesha],
            Daemon::Rsyslog => &[Role::Rsyslog],
        }
    }

    /// The task that writes its config.
    fn config_task(self) -> Kind {
        match self {
            Daemon::Dnsmasq | Daemon::Dhcpd => Kind::Dhcp,
            Daemon::Nfs => Kind::Exports,
            Daemon::Rsyslog => Kind::Rsyslog,
        }
    }

    fn reach(self, cfg: &Config) -> &Reach {
        let a = &cfg.apply;
        match self {
            Daemon::Dnsmasq => &a.dnsmasq,
            Daemon::Dhcpd => &a.dhcpd,
            Daemon::Nfs => &a.nfs,
            Daemon::Rsyslog => &a.rsyslog,
        }
    }

    fn of(task: &TaskSpec) -> Result<Daemon> {
        let instance = task.id.as_str().strip_prefix("apply:").unwrap_or_default();
        Daemon::ALL
            .into_iter()
            .find(|d| d.key() == instance)
            .with_context(|| format!("internal error: {} names no daemon", task.id))
    }
}

/// Whether ddc applies `daemon`'s config (checks, installs, reloads).
fn applies(cfg: &Config, daemon: Daemon) -> bool {
    *daemon.reach(cfg) != Reach::Off
}

/// Where a config task writes a file: its candidate in the cache when ddc
/// applies it, else the file itself.
pub(crate) fn destination(cfg: &Config, role: Role) -> PathBuf {
    if applies(cfg, role.daemon()) {
        staged(cfg, role)
    } else {
        role.installed(cfg).to_path_buf()
    }
}

/// The candidate of a file, in the cache (the engine's `cache/`).
fn staged(cfg: &Config, role: Role) -> PathBuf {
    cfg.base_dir
        .join("cache/staged")
        .join(role.daemon().key())
        .join(role.name())
}

/// A config task's key input: whether it writes `daemon`'s files in place
/// or as candidates.
pub(crate) fn staging(cfg: &Config, daemon: Daemon) -> Input {
    Planner::value(daemon.input_name(), &applies(cfg, daemon))
}

impl Recipe for Apply {
    fn name(&self) -> &'static str {
        "apply"
    }

    /// Checkers and reloads run subprocesses: a log of their own.
    fn heavy(&self) -> bool {
        true
    }

    fn plan(&self, p: &mut Planner, _image: Option<&Image>) -> Result<()> {
        let cfg = p.cfg;
        for d in Daemon::ALL {
            let Some(dep) = p.find(d.config_task(), None) else {
                continue;
            };
            if !applies(cfg, d) {
                continue;
            }
            let installed: Vec<&Path> = d.roles().iter().map(|r| r.installed(cfg)).collect();
            let inputs = vec![
                Planner::value(d.input_name(), d.reach(cfg)),
                Planner::value("installed", &installed),
            ];
            p.push(Planner::task(
                Kind::Apply,
                Some(d.key()),
                vec![dep],
                inputs,
                Subject::Cluster,
            ));
        }
        Ok(())
    }

    fn outputs(&self, task: &TaskSpec, cfg: &Config) -> Vec<PathBuf> {
        let Ok(d) = Daemon::of(task) else {
            return Vec::new();
        };
        d.roles()
            .iter()
            .map(|r| r.installed(cfg).to_path_buf())
            .collect()
    }

    fn needs(&self, task: &TaskSpec, cfg: &Config) -> Vec<Need> {
        let Ok(d) = Daemon::of(task) else {
            return Vec::new();
        };
        match d.reach(cfg) {
            Reach::Systemd(_) => check::needs(d)
                .into_iter()
                .chain([reach::systemctl_need()])
                .collect(),
            Reach::Pidfile(_) => check::needs(d),
            Reach::Auto | Reach::Off => Vec::new(),
        }
    }

    /// What the daemon was last made to read: `ddc clean` forgets it, and
    /// the next build checks, installs and reloads again.
    fn cache_dir(&self, task: &TaskSpec, cache: &Path) -> Option<PathBuf> {
        Some(cache.join("applied").join(Daemon::of(task).ok()?.key()))
    }

    fn run(&self, task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
        run_apply(Daemon::of(task)?, ctx)
    }
}

/// One file of a daemon's config: its candidate and what is installed.
pub(super) struct Staged {
    role: Role,
    staged: PathBuf,
    installed: PathBuf,
    bytes: Vec<u8>,
    /// The installed file's bytes, if there is one.
    current: Option<Vec<u8>>,
}

impl Staged {
    fn read(cfg: &Config, role: Role) -> Result<Staged> {
        let staged = staged(cfg, role);
        let bytes = std::fs::read(&staged)
            .with_context(|| format!("cannot read the candidate {}", staged.display()))?;
        let installed = role.installed(cfg).to_path_buf();
        let current = std::fs::read(&installed).ok();
        Ok(Staged {
            role,
            staged,
            installed,
            bytes,
            current,
        })
    }

    fn hash(&self) -> String {
        blake3::hash(&self.bytes).to_hex().to_string()
    }

    /// The daemon may not serve it yet: not what was applied last, or not
    /// what is installed.
    fn changed(&self, state: &State) -> bool {
        state.applied.get(self.role.name()) != Some(&self.hash())
            || self.current.as_deref() != Some(&self.bytes[..])
    }
}

/// Content hashes by role name.
type Hashes = BTreeMap<String, String>;

/// What ddc last made the daemon read, and a restart it waits for.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct State {
    applied: Hashes,
    pending: Option<reach::Pending>,
}

impl State {
    fn load(path: &Path) -> State {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, path: &Path) -> Result<()> {
        atomic_write(path, &serde_json::to_vec_pretty(self)?, true)
    }
}

fn run_apply(d: Daemon, ctx: &mut RunCtx) -> Result<Produced> {
    let cfg = ctx.cfg;
    let files: Vec<Staged> = d
        .roles()
        .iter()
        .map(|r| Staged::read(cfg, *r))
        .collect::<Result<_>>()?;
    let state_path = ctx
        .cache_dir
        .join("applied")
        .join(d.key())
        .join("state.json");
    let mut state = State::load(&state_path);
    let mut out = Produced {
        files: files.iter().map(|f| f.installed.clone()).collect(),
        ..Default::default()
    };
    let changed: Vec<Role> = files
        .iter()
        .filter(|f| f.changed(&state))
        .map(|f| f.role)
        .collect();
    if changed.is_empty() {
        writeln!(ctx.log, "ddc: {} already serves this config", d.key())?;
        return Ok(out);
    }
    let way = reach::resolve(d, d.reach(cfg), ctx.log)?;
    check::check(d, &files, way.must_check(), ctx.log)?;
    let mut restart = false;
    for f in files
        .iter()
        .filter(|f| f.current.as_deref() != Some(&f.bytes[..]))
    {
        atomic_write(&f.installed, &f.bytes, true)?;
        writeln!(ctx.log, "ddc: installed {}", f.installed.display())?;
        restart |= f.role.read_at_start();
    }
    if let reach::Way::Unmanaged = way {
        // The user reloads it: say how, for what this build installed.
        out.notes.push(reach::unmanaged_note(d, restart));
        return Ok(out);
    }
    let hashes: Hashes = files
        .iter()
        .map(|f| (f.role.name().to_string(), f.hash()))
        .collect();
    let done = reach::reload(d, &way, &changed, &mut state, &hashes, ctx.log);
    state.save(&state_path)?;
    let how = done?;
    writeln!(ctx.log, "ddc: applied {how}")?;
    state.applied = hashes;
    state.pending = None;
    state.save(&state_path)?;
    out.applied = Some(how);
    Ok(out)
}

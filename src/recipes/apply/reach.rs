//! How ddc reaches a daemon: `systemctl` on its unit, a signal to the
//! process of a pid file, `exportfs -ra` for the kernel NFS server, or, in
//! "auto" mode with no active unit, a note for the user.
//!
//! In pid file mode ddc only signals: it never starts a process, since it
//! cannot know how the daemon was started (its namespaces, its arguments,
//! its supervisor). A change the daemon reads only at start (dhcpd's config,
//! dnsmasq's main config, rsyslog's) is installed after a passing check, and
//! the task fails asking for a restart; the pid then running is kept, and a
//! later build that finds another process there knows the restart happened.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Daemon, Hashes, Role, State};
use crate::config::Reach;
use crate::recipes::Need;

/// How this build reaches the daemon.
pub(super) enum Way {
    Systemd(String),
    Pidfile(PathBuf),
    /// The kernel NFS server, running without a systemd unit.
    Exportfs,
    /// "auto" found no active unit: the user reloads it.
    Unmanaged,
}

impl Way {
    /// Whether the daemon's checker must be installed: it is when ddc
    /// reloads the daemon; in "auto" mode with nothing running, a missing
    /// checker means the daemon is not installed either, and the config is
    /// installed unchecked.
    pub(super) fn must_check(&self) -> bool {
        !matches!(self, Way::Unmanaged)
    }
}

/// A process, told from a later one that reuses its pid by its start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ProcId {
    pid: i32,
    /// Clock ticks after boot (`/proc/PID/stat`, field 22).
    start: u64,
}

/// A config installed for a daemon that must restart to read it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Pending {
    hashes: Hashes,
    /// The process that ran when it was installed, if one did.
    under: Option<ProcId>,
}

/// The units "auto" and "systemd" look for, in order.
fn usual_units(d: Daemon) -> &'static [&'static str] {
    match d {
        Daemon::Dnsmasq => &["dnsmasq"],
        Daemon::Dhcpd => &["isc-dhcp-server"],
        Daemon::Nfs => &["nfs-ganesha", "nfs-server"],
        Daemon::Rsyslog => &["rsyslog"],
    }
}

/// The program names a pid file's process may have.
fn program_names(d: Daemon) -> &'static [&'static str] {
    match d {
        Daemon::Dnsmasq => &["dnsmasq"],
        Daemon::Dhcpd => &["dhcpd"],
        Daemon::Nfs => &["ganesha.nfsd"],
        Daemon::Rsyslog => &["rsyslogd"],
    }
}

/// What the summary calls the daemon when ddc signals it.
fn label(d: Daemon) -> &'static str {
    match d {
        Daemon::Nfs => "nfs-ganesha",
        _ => d.key(),
    }
}

pub(super) fn systemctl_need() -> Need {
    Need::Program {
        program: "systemctl".into(),
        package: "systemd",
    }
}

/// A program on PATH or in the sbin folders, which a user's PATH may lack.
pub(super) fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs `cmd`, its command line and output going to the log; whether it
/// succeeded, and its output.
pub(super) fn run_logged(cmd: &mut Command, log: &mut File) -> Result<(bool, String)> {
    let shown = format!("{cmd:?}").replace('"', "");
    let o = cmd
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&o.stderr));
    writeln!(log, "$ {shown}\n{}(exit {:?})", text, o.status.code())?;
    Ok((o.status.success(), text))
}

fn is_active(unit: &str, log: &mut File) -> Result<bool> {
    let Some(systemctl) = program("systemctl") else {
        writeln!(log, "ddc: no systemctl here")?;
        return Ok(false);
    };
    let mut c = Command::new(systemctl);
    c.args(["is-active", "--quiet", unit]);
    Ok(run_logged(&mut c, log)?.0)
}

/// Whether the kernel NFS server runs (it has threads).
fn kernel_nfsd_running() -> bool {
    std::fs::read_to_string("/proc/fs/nfsd/threads")
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 0)
}

/// Decides how this build reaches `d`.
pub(super) fn resolve(d: Daemon, reach: &Reach, log: &mut File) -> Result<Way> {
    let units = usual_units(d);
    Ok(match reach {
        Reach::Off => bail!("internal error: apply:{} planned with apply off", d.key()),
        Reach::Pidfile(p) => Way::Pidfile(p.clone()),
        Reach::Systemd(Some(u)) => Way::Systemd(u.clone()),
        Reach::Systemd(None) if units.len() == 1 => Way::Systemd(units[0].to_string()),
        Reach::Systemd(None) => match first_active(units, log)? {
            Some(u) => Way::Systemd(u),
            None => bail!(
                "neither {} is active (systemctl is-active): start yours, or name its unit: [apply] {} = {{ systemd = \"UNIT\" }}",
                units.join(" nor "),
                d.key()
            ),
        },
        Reach::Auto => match first_active(units, log)? {
            Some(u) => Way::Systemd(u),
            None if d == Daemon::Nfs && kernel_nfsd_running() && program("exportfs").is_some() => {
                Way::Exportfs
            }
            None => Way::Unmanaged,
        },
    })
}

fn first_active(units: &[&str], log: &mut File) -> Result<Option<String>> {
    for u in units {
        if is_active(u, log)? {
            return Ok(Some(u.to_string()));
        }
    }
    Ok(None)
}

/// Makes the daemon read its installed config, `changed` being the files
/// it may not serve yet; `state.pending` is updated for the caller to save.
/// Says how, for the summary line: `dnsmasq (SIGHUP)`.
pub(super) fn reload(
    d: Daemon,
    way: &Way,
    changed: &[Role],
    state: &mut State,
    hashes: &Hashes,
    log: &mut File,
) -> Result<String> {
    let restart = changed.iter().any(|r| r.read_at_start());
    match way {
        Way::Unmanaged => bail!("internal error: reload of an unmanaged {}", d.key()),
        Way::Exportfs => {
            let exportfs = program("exportfs").context("exportfs is not installed")?;
            let (ok, out) = run_logged(Command::new(exportfs).arg("-ra"), log)?;
            if !ok {
                bail!("exportfs -ra failed: {}", out.trim());
            }
            Ok("kernel NFS (exportfs -ra)".into())
        }
        Way::Systemd(unit) => systemd(d, unit, restart, log),
        Way::Pidfile(p) => pidfile(d, p, restart, state, hashes),
    }
}

/// The note "auto" prints for a daemon it found no unit of.
pub(super) fn unmanaged_note(d: Daemon, restart: bool) -> String {
    let verb = if restart { "restart" } else { "reload" };
    match d {
        Daemon::Nfs => format!(
            "the NFS server is not running under systemd: {verb} it yourself (nfs-ganesha: SIGHUP; kernel NFS: exportfs -ra), or set [apply] nfs"
        ),
        _ => format!(
            "{} is not running under systemd: {verb} it yourself, or set [apply] {}",
            d.key(),
            d.key()
        ),
    }
}

fn systemd(d: Daemon, unit: &str, restart: bool, log: &mut File) -> Result<String> {
    if !is_active(unit, log)? {
        bail!(
            "{unit} is not active (systemctl is-active {unit}): start it; the checked config is installed and it reads it when it starts"
        );
    }
    let verb = if restart {
        "restart"
    } else {
        "reload-or-restart"
    };
    let systemctl = program("systemctl").context("systemctl is not installed")?;
    let (ok, out) = run_logged(Command::new(systemctl).args([verb, unit]), log)?;
    if !ok {
        bail!("systemctl {verb} {unit} failed: {}", out.trim());
    }
    Ok(format!("{} (systemctl {verb} {unit})", d.key()))
}

fn pidfile(
    d: Daemon,
    path: &Path,
    restart: bool,
    state: &mut State,
    hashes: &Hashes,
) -> Result<String> {
    let now = process_of(d, path)?;
    if restart {
        let pending = state.pending.take().filter(|p| p.hashes == *hashes);
        if let (Some(p), Some(now)) = (&pending, now) {
            if p.under != Some(now) {
                return Ok(format!("{} (read it at start, pid {})", label(d), now.pid));
            }
        }
        let under = pending.map_or(now, |p| p.under);
        state.pending = Some(Pending {
            hashes: hashes.clone(),
            under,
        });
        match now {
            None => bail!(not_running(d, path)),
            Some(now) => bail!(
                "{} (pid {}) reads this config only when it starts and ddc restarts only through systemd: restart it; the config passed the check and is installed, and the next ddc build sees the new process",
                label(d),
                now.pid
            ),
        }
    }
    let Some(now) = now else {
        bail!(not_running(d, path));
    };
    signal_hup(d, path, now)?;
    Ok(format!("{} (SIGHUP)", label(d)))
}

fn not_running(d: Daemon, path: &Path) -> String {
    format!(
        "{} is not running (no live process in the pid file {}): start it; the checked config is installed and it reads it when it starts (or set [apply] {} = \"off\")",
        label(d),
        path.display(),
        d.key()
    )
}

/// The live process a pid file names, if any; an error if it is another
/// program (a stale pid file: signalling it could kill a stranger).
fn process_of(d: Daemon, path: &Path) -> Result<Option<ProcId>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let pid: i32 = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .filter(|p| *p > 0)
        .with_context(|| format!("{} does not hold a pid: {:?}", path.display(), text.trim()))?;
    let Some(id) = proc_id(pid) else {
        return Ok(None);
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|e| e.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let names = program_names(d);
    if !names.iter().any(|n| *n == comm.trim() || *n == exe) {
        bail!(
            "the pid file {} names pid {pid}, which is {:?}, not {}: the pid file is stale or names another program; correct [apply] {}",
            path.display(),
            comm.trim(),
            names[0],
            d.key()
        );
    }
    Ok(Some(id))
}

/// A live (not zombie) process's identity.
fn proc_id(pid: i32) -> Option<ProcId> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    let start = fields.get(19)?.parse().ok()?;
    Some(ProcId { pid, start })
}

fn signal_hup(d: Daemon, path: &Path, p: ProcId) -> Result<()> {
    if proc_id(p.pid) != Some(p) {
        bail!(not_running(d, path));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .with_context(|| {
        format!(
            "cannot signal {} (pid {}): run ddc build as root, or as the daemon's user",
            label(d),
            p.pid
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_an_identity_that_a_dead_pid_lacks() {
        let me = proc_id(std::process::id() as i32).expect("this process");
        assert_eq!(proc_id(me.pid), Some(me), "stable");
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert_eq!(proc_id(pid), None, "a reaped child is gone");
    }

    #[test]
    fn a_pid_file_naming_another_program_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.pid");
        std::fs::write(&p, format!("{}\n", std::process::id())).unwrap();
        let e = process_of(Daemon::Dnsmasq, &p).unwrap_err().to_string();
        assert!(e.contains("not dnsmasq: the pid file is stale"), "{e}");
        assert_eq!(
            process_of(Daemon::Dnsmasq, &d.path().join("none")).unwrap(),
            None
        );
        std::fs::write(&p, "garbage").unwrap();
        let e = process_of(Daemon::Dnsmasq, &p).unwrap_err().to_string();
        assert!(e.contains("does not hold a pid"), "{e}");
    }
}

//! Each daemon's own checker on the candidates, before anything is
//! installed: `dnsmasq --test` (the main config, and the hosts file as
//! `dhcp-host` lines), `dhcpd -t` (ddc's file included from an otherwise
//! empty dhcpd.conf, as a master's dhcpd.conf includes it), `rsyslogd -N1`,
//! and, for NFS, a strict parse of ganesha's EXPORT blocks and of the
//! kernel's exports lines (neither server has a check mode). A failure names
//! the checker's own message.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::reach::{program, run_logged};
use super::{ganesha, Daemon, Role, Staged};
use crate::recipes::Need;

/// The checker program of a daemon and its Debian package.
fn checker(d: Daemon) -> Option<(&'static str, &'static str)> {
    match d {
        Daemon::Dnsmasq => Some(("dnsmasq", "dnsmasq-base")),
        Daemon::Dhcpd => Some(("dhcpd", "isc-dhcp-server")),
        Daemon::Rsyslog => Some(("rsyslogd", "rsyslog")),
        Daemon::Nfs => None,
    }
}

pub(super) fn needs(d: Daemon) -> Vec<Need> {
    checker(d)
        .map(|(program, package)| Need::Program {
            program: program.into(),
            package,
        })
        .into_iter()
        .collect()
}

/// Checks `d`'s candidates; with `required` false a missing checker skips
/// the check (said in the log).
pub(super) fn check(d: Daemon, files: &[Staged], required: bool, log: &mut File) -> Result<()> {
    let file = |role: Role| {
        files
            .iter()
            .find(|f| f.role == role)
            .expect("every role of the daemon is read")
    };
    if d == Daemon::Nfs {
        return nfs(file(Role::Ganesha), file(Role::Exports));
    }
    let (name, package) = checker(d).expect("a checker");
    let Some(program) = program(name) else {
        if required {
            bail!("{name} is not installed, so the new config cannot be checked: apt-get install {package}");
        }
        writeln!(
            log,
            "ddc: {name} is not installed: the config is not checked"
        )?;
        return Ok(());
    };
    let mut cmd = Command::new(&program);
    match d {
        Daemon::Dnsmasq => {
            let main = file(Role::DnsmasqMain);
            cmd.args(["--test", "-C"]).arg(&main.staged);
            verdict(name, &main.staged, run_logged(&mut cmd, log)?)?;
            dnsmasq_hosts(&program, file(Role::DnsmasqHosts), log)
        }
        Daemon::Dhcpd => {
            let f = file(Role::Dhcpd);
            let wrapper = dhcpd_wrapper(&f.staged)?;
            cmd.args(["-t", "-q", "-cf"]).arg(wrapper.path());
            verdict(name, &f.staged, run_logged(&mut cmd, log)?)
        }
        Daemon::Rsyslog => {
            let f = file(Role::Rsyslog);
            // A drop-in that leaves imudp to the master's config is checked
            // as included after a config that loads it.
            let wrapper = rsyslog_wrapper(f)?;
            let checked = wrapper.as_ref().map_or(f.staged.as_path(), |w| w.path());
            cmd.args(["-N1", "-f"]).arg(checked);
            verdict(name, &f.staged, run_logged(&mut cmd, log)?)
        }
        Daemon::Nfs => unreachable!("checked above"),
    }
}

/// For a drop-in that does not load imudp itself: an rsyslog.conf that
/// loads it, then includes the drop-in.
fn rsyslog_wrapper(f: &Staged) -> Result<Option<tempfile::NamedTempFile>> {
    let text = String::from_utf8_lossy(&f.bytes);
    let loads = text.lines().any(|l| {
        l.trim()
            .replace(' ', "")
            .starts_with("module(load=\"imudp\"")
    });
    if loads {
        return Ok(None);
    }
    let shown = f.staged.display().to_string();
    if shown.contains(char::is_whitespace) {
        bail!("{shown} cannot be named in an rsyslog include: move the Ddcfile's folder to a plain path");
    }
    let mut w = tempfile::Builder::new()
        .prefix("ddc-rsyslog-check-")
        .suffix(".conf")
        .tempfile()?;
    writeln!(
        w,
        "# ddc: checks {shown} after a main config that loads imudp\nmodule(load=\"imudp\")\n$IncludeConfig {shown}"
    )?;
    Ok(Some(w))
}

/// A dhcpd.conf that includes only `fragment`.
fn dhcpd_wrapper(fragment: &Path) -> Result<tempfile::NamedTempFile> {
    let shown = fragment.display().to_string();
    if shown.contains(['"', '\\', '\n']) {
        bail!(
            "{shown} cannot be named in a dhcpd include: move the Ddcfile's folder to a plain path"
        );
    }
    let mut w = tempfile::Builder::new()
        .prefix("ddc-dhcpd-check-")
        .suffix(".conf")
        .tempfile()?;
    writeln!(
        w,
        "# ddc: checks {shown} as dhcpd.conf includes it\ninclude \"{shown}\";"
    )?;
    Ok(w)
}

/// dnsmasq reads a hosts file only when it runs, never under `--test`: its
/// lines are checked as `dhcp-host=` lines of a config, and the message names
/// the hosts file and the line. In blocks of [`HOSTS_BLOCK`] lines: dnsmasq
/// compares each host with all before it, and 10,000 at once take 0.25 s
/// (duplicates are the validator's to refuse, across the whole file).
fn dnsmasq_hosts(dnsmasq: &Path, hosts: &Staged, log: &mut File) -> Result<()> {
    let text = String::from_utf8_lossy(&hosts.bytes);
    let lines: Vec<&str> = text.lines().collect();
    for (n, block) in lines.chunks(HOSTS_BLOCK).enumerate() {
        let mut conf = tempfile::Builder::new()
            .prefix("ddc-dnsmasq-hosts-")
            .tempfile()?;
        for line in block {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                writeln!(conf, "{line}")?;
            } else {
                writeln!(conf, "dhcp-host={t}")?;
            }
        }
        conf.flush()?;
        let mut cmd = Command::new(dnsmasq);
        cmd.args(["--test", "-C"]).arg(conf.path());
        let (ok, out) = run_logged(&mut cmd, log)?;
        let out = hosts_message(&out, conf.path(), &hosts.staged, n * HOSTS_BLOCK);
        verdict("dnsmasq", &hosts.staged, (ok, out))?;
    }
    Ok(())
}

const HOSTS_BLOCK: usize = 1000;

/// dnsmasq's message about a block (`at line N of TEMP`), about the hosts
/// file: its path, and the line in it.
fn hosts_message(out: &str, temp: &Path, hosts: &Path, offset: usize) -> String {
    let temp = format!(" of {}", temp.display());
    out.lines()
        .map(|l| match l.split_once(" at line ") {
            Some((head, rest)) if rest.ends_with(&temp) => {
                let n: usize = rest.trim_end_matches(&temp).parse().unwrap_or(0);
                format!("{head} at line {} of {}", n + offset, hosts.display())
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Passes a checker's success; otherwise fails with its own message.
fn verdict(name: &str, file: &Path, (ok, out): (bool, String)) -> Result<()> {
    if ok {
        return Ok(());
    }
    bail!(
        "{name} rejects the new config, which is not installed (the old one stays in place): {}",
        own_message(name, file, &out)
    )
}

/// The lines of a checker's output that say what is wrong: those naming
/// the file or an error, else its last lines.
fn own_message(name: &str, file: &Path, out: &str) -> String {
    let shown = file.display().to_string();
    let mut picked: Vec<&str> = Vec::new();
    for l in out.lines().map(str::trim) {
        let about = l.contains(&shown)
            || (l.starts_with(&format!("{name}:")) && !l.contains("syntax check OK"))
            || l.to_lowercase().contains("error");
        if about && !l.contains("bad parse") && !picked.contains(&l) {
            picked.push(l);
        }
    }
    if picked.is_empty() {
        picked = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        picked.drain(..picked.len().saturating_sub(3));
    }
    picked.truncate(3);
    picked.join("; ")
}

fn nfs(ganesha_conf: &Staged, exports: &Staged) -> Result<()> {
    let text =
        std::str::from_utf8(&ganesha_conf.bytes).context("the ganesha config is not UTF-8")?;
    let mut problems: Vec<String> = ganesha::check(text)
        .into_iter()
        .map(|p| format!("{}: {p}", ganesha_conf.staged.display()))
        .collect();
    let text = std::str::from_utf8(&exports.bytes).context("the exports file is not UTF-8")?;
    problems.extend(
        exports_problems(text)
            .into_iter()
            .map(|p| format!("{}: {p}", exports.staged.display())),
    );
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "the new NFS exports are not installed (the old ones stay in place): {}",
        problems.join("; ")
    )
}

/// Each line of a kernel exports file: an existing absolute folder, then
/// clients with their options, `CLIENT(OPT,...)`.
fn exports_problems(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let path = words.next().unwrap_or_default();
        if !path.starts_with('/') || !Path::new(path).is_dir() {
            out.push(format!(
                "line {}: {path:?} is not an existing folder",
                n + 1
            ));
        }
        let clients: Vec<&str> = words.collect();
        if clients.is_empty() {
            out.push(format!("line {}: no client", n + 1));
        }
        for c in clients {
            let ok = match c.split_once('(') {
                Some((host, opts)) => {
                    !host.is_empty()
                        && opts.strip_suffix(')').is_some_and(|o| {
                            !o.is_empty()
                                && o.split(',').all(|o| {
                                    !o.is_empty()
                                        && o.chars().all(|c| {
                                            c.is_ascii_alphanumeric() || "_=:/".contains(c)
                                        })
                                })
                        })
                }
                None => !c.contains(')'),
            };
            if !ok {
                out.push(format!("line {}: {c:?} is not CLIENT(OPTIONS)", n + 1));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_lines() {
        let ok = "# comment\n/tmp 192.0.2.0/24(ro,secure,no_root_squash)\n";
        assert!(exports_problems(ok).is_empty());
        let bad = "/tmp 192.0.2.0/24(ro,\n/nonexistent-ddc x(ro)\n/tmp\n";
        assert_eq!(
            exports_problems(bad),
            [
                "line 1: \"192.0.2.0/24(ro,\" is not CLIENT(OPTIONS)",
                "line 2: \"/nonexistent-ddc\" is not an existing folder",
                "line 3: no client"
            ]
        );
    }

    #[test]
    fn the_checkers_own_message_is_kept() {
        let f = Path::new("/c/staged/dhcpd/dhcpd.conf");
        let dhcpd = "Internet Systems Consortium DHCP Server 4.4.3-P1\nCopyright 2004-2022\n\
                     /c/staged/dhcpd/dhcpd.conf line 7: semicolon expected.\n}\n ^\n\
                     w.conf line 1: /c/staged/dhcpd/dhcpd.conf: bad parse.\n\
                     Configuration file errors encountered -- exiting\n\nexiting.\n";
        assert_eq!(
            own_message("dhcpd", f, dhcpd),
            "/c/staged/dhcpd/dhcpd.conf line 7: semicolon expected.; Configuration file errors encountered -- exiting"
        );
        let dnsmasq = "\ndnsmasq: bad option at line 3 of /c/x.conf\n";
        assert_eq!(
            own_message("dnsmasq", f, dnsmasq),
            "dnsmasq: bad option at line 3 of /c/x.conf"
        );
        assert_eq!(own_message("x", f, "a\nb\nc\nd\n"), "b; c; d");
    }

    #[test]
    fn a_hosts_block_message_names_the_hosts_file_and_its_line() {
        let out = "\ndnsmasq: bad DHCP host name at line 2 of /tmp/ddc-dnsmasq-hosts-x\n";
        assert_eq!(
            hosts_message(
                out,
                Path::new("/tmp/ddc-dnsmasq-hosts-x"),
                Path::new("/c/hosts"),
                3000
            ),
            "\ndnsmasq: bad DHCP host name at line 3002 of /c/hosts"
        );
    }
}

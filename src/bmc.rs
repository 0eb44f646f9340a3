//! Talking to nodes' BMCs for `ddc power`: the checks on the password file,
//! the `ipmitool` command line of a power action, and what its answer means.
//!
//! The password never leaves its file: ipmitool reads it there (`-f`), so it
//! is on no command line, in no environment and in no log. Imports the
//! config model and `process`; must not import recipes, engine or commands.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::config::{Bmc, Power, PowerDriver};
use crate::process::{self, Bounded, Cancel};

/// A chassis power action (`ipmitool chassis power ACTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    On,
    Off,
    Cycle,
    Reset,
    Status,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::On => "on",
            Action::Off => "off",
            Action::Cycle => "cycle",
            Action::Reset => "reset",
            Action::Status => "status",
        }
    }
}

/// What one node's BMC answered: `on`, `off`, `ok`, or the first line of
/// the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) ok: bool,
    pub(crate) result: String,
}

impl Outcome {
    pub(crate) fn failed(why: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            result: why.into(),
        }
    }
}

/// What a power run needs that validation could not check: the driver's
/// program, the user, and a password file only its owner can read.
pub(crate) struct Credentials {
    pub(crate) program: PathBuf,
    pub(crate) user: String,
    pub(crate) password_file: PathBuf,
}

/// Checks `[power]` (of the Ddcfile shown as `ddcfile`) for a run: the user
/// is set, the password file is a regular file of root or of this user that
/// no one else may read, and the driver's program is installed (unless
/// `need_program` is false: a dry run). Every problem, one a line.
pub(crate) fn credentials(
    power: &Power,
    ddcfile: &str,
    need_program: bool,
) -> Result<Credentials, String> {
    let at = &power.password_file_at;
    let mut problems = Vec::new();
    let user = power.user.clone().unwrap_or_else(|| {
        problems.push(format!(
            "{ddcfile}: power.user: not set; ddc power logs in to the BMCs as [power] user = \"NAME\""
        ));
        String::new()
    });
    let password_file = match &power.password_file {
        Some(f) => {
            if let Err(e) = check_password_file(f) {
                problems.push(format!("{at}: power.password_file: {e}"));
            }
            f.clone()
        }
        None => {
            problems.push(format!(
                "{at}: power.password_file: not set; write the BMC password alone in a file, chmod 600 it, and name it in [power] password_file = \"FILE\""
            ));
            PathBuf::new()
        }
    };
    let name = match power.driver {
        PowerDriver::Ipmitool => "ipmitool",
    };
    let program = process::which(name).unwrap_or_else(|| {
        if need_program {
            problems.push(format!(
                "{name} is not installed (or not in PATH): install it (apt-get install {name})"
            ));
        }
        PathBuf::from(name)
    });
    if problems.is_empty() {
        Ok(Credentials {
            program,
            user,
            password_file,
        })
    } else {
        Err(problems.join("\n"))
    }
}

/// The password file: a non-empty regular file, owned by root or by the
/// user running ddc, readable by its owner alone (0600 or stricter).
fn check_password_file(f: &Path) -> Result<(), String> {
    let shown = f.display();
    let m = std::fs::metadata(f).map_err(|e| {
        format!("cannot read {shown}: {e}; write the BMC password alone in it and chmod 600 it")
    })?;
    if !m.is_file() {
        return Err(format!(
            "{shown} is not a regular file; name a file that holds the BMC password alone"
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != me {
        return Err(format!(
            "{shown} is owned by uid {}, neither root nor you (uid {me}), who could change the password or read it; chown it to root or to yourself",
            m.uid()
        ));
    }
    let mode = m.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} is mode {mode:04o}, which lets others read or change the BMC password; run: chmod 600 {shown}"
        ));
    }
    if m.len() == 0 {
        return Err(format!(
            "{shown} is empty; write the BMC password in it (alone, on its first line)"
        ));
    }
    Ok(())
}

/// The command for `action` on `bmc`: `ipmitool -I lanplus -H ADDR [-p
/// PORT] -U USER -f FILE [-C N] chassis power ACTION`.
pub(crate) fn command_line(
    power: &Power,
    c: &Credentials,
    bmc: &Bmc,
    action: Action,
) -> Vec<String> {
    let mut v: Vec<String> = vec![
        c.program.display().to_string(),
        "-I".into(),
        power.interface.as_str().into(),
        "-H".into(),
        bmc.host.clone(),
    ];
    if let Some(p) = bmc.port {
        v.extend(["-p".into(), p.to_string()]);
    }
    v.extend([
        "-U".into(),
        c.user.clone(),
        "-f".into(),
        c.password_file.display().to_string(),
    ]);
    if let Some(cs) = power.cipher_suite {
        v.extend(["-C".into(), cs.to_string()]);
    }
    v.extend(["chassis".into(), "power".into(), action.as_str().into()]);
    v
}

/// Runs `action` on `bmc` within `power.timeout`, and reads the answer.
pub(crate) fn run(
    power: &Power,
    c: &Credentials,
    bmc: &Bmc,
    action: Action,
    cancel: &Cancel,
) -> Outcome {
    let args = command_line(power, c, bmc, action);
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..])
        // ipmitool reads IPMI_PASSWORD only with -E; none is passed on.
        .env_remove("IPMI_PASSWORD")
        .env("LC_ALL", "C");
    let timeout = Duration::from_secs(power.timeout);
    match process::run_bounded(&mut cmd, timeout, cancel) {
        Ok(b) => answer(action, b, power.timeout),
        Err(e) => Outcome::failed(format!("{e:#}")),
    }
}

/// What ipmitool's exit and output say.
fn answer(action: Action, b: Bounded, timeout: u64) -> Outcome {
    let (status, stdout, stderr) = match b {
        Bounded::Exited {
            status,
            stdout,
            stderr,
        } => (status, stdout, stderr),
        Bounded::TimedOut => {
            return Outcome::failed(format!(
                "no answer within {timeout}s (power.timeout): is the BMC's address right, and is it reachable?"
            ))
        }
        Bounded::Cancelled => return Outcome::failed("interrupted"),
    };
    let out = String::from_utf8_lossy(&stdout);
    let err = String::from_utf8_lossy(&stderr);
    let first = |t: &str| {
        t.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
    };
    if !status.success() {
        let why = first(&err)
            .or_else(|| first(&out))
            .unwrap_or_else(|| match status.code() {
                Some(c) => format!("ipmitool exited with status {c}"),
                None => "ipmitool was killed by a signal".to_string(),
            });
        return Outcome::failed(why);
    }
    if action != Action::Status {
        return Outcome {
            ok: true,
            result: "ok".into(),
        };
    }
    let state = out.lines().find_map(|l| {
        let l = l.trim().to_ascii_lowercase();
        let state = l.strip_prefix("chassis power is ")?;
        ["on", "off"].into_iter().find(|s| *s == state)
    });
    match state {
        Some(s) => Outcome {
            ok: true,
            result: s.into(),
        },
        None => Outcome::failed(format!(
            "unexpected answer from ipmitool: {}",
            first(&out).unwrap_or_else(|| "(nothing)".into())
        )),
    }
}

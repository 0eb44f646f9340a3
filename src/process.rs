//! Running step subprocesses: output to the task's log, each child in its own
//! process group (as root, a PID and mount namespace of its own: see
//! [`isolated`]), and cancellation (Ctrl-C, SIGTERM) that stops them so the
//! guards around them can unwind and unmount.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The build's cancellation state, shared by the signal thread and workers.
#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    groups: Mutex<HashSet<i32>>,
}

impl Cancel {
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Stops every running child: SIGTERM now, SIGKILL to what is left after
    /// a grace period.
    pub fn cancel(self: &Arc<Self>, signal_name: &str) {
        let first = !self.flag.swap(true, Ordering::SeqCst);
        let sig = if first {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        // Stop the steps first: a warning may not get out (a dropped SSH
        // connection takes stderr with it).
        self.signal_all(sig);
        tracing::warn!("{signal_name}: stopping running steps");
        if first {
            let me = Arc::clone(self);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(10));
                me.signal_all(Signal::SIGKILL);
            });
        }
    }

    fn signal_all(&self, sig: Signal) {
        for &g in self.groups.lock().expect("groups").iter() {
            let _ = killpg(Pid::from_raw(g), sig);
        }
    }
}

/// Installs SIGINT and SIGTERM handlers that cancel the build.
pub fn install_signal_handlers(cancel: &Arc<Cancel>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    // SIGHUP too: a build over SSH whose connection drops must unmount.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
    let cancel = Arc::clone(cancel);
    std::thread::spawn(move || {
        for s in signals.forever() {
            cancel.cancel(match s {
                SIGINT => "interrupted",
                SIGHUP => "hung up",
                _ => "terminated",
            });
        }
    });
    Ok(())
}

/// The PATH used when ddc has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where step scripts and the host programs ddc runs are looked up: ddc's
/// own `PATH` (the usual one when it has none). Steps get it as their
/// `PATH`, and the preflight searches exactly it.
pub fn search_path() -> String {
    match std::env::var("PATH") {
        Ok(p) if !p.is_empty() => p,
        _ => DEFAULT_PATH.to_string(),
    }
}

/// Where `program` is found in [`search_path`], as a step would find it.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&search_path())
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

/// Where `program` is in the usual folders, outside a `PATH` that lacks it.
pub fn elsewhere(program: &str) -> Option<PathBuf> {
    std::env::split_paths(DEFAULT_PATH)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A command for `program` that, as root, runs in a PID namespace and a
/// private mount namespace of its own (`unshare --pid --fork --kill-child
/// --mount`): when it ends, however it ends, every process it started is
/// gone (a `setsid cmd &` too: the kernel kills a namespace's processes with
/// its first), and every mount it made is gone with its namespace. It also
/// dies with ddc (`PR_SET_PDEATHSIG`), so a killed ddc leaves no step
/// running. Without root, the command runs as it is, in a process group.
pub fn isolated(program: &str) -> Command {
    if !nix::unistd::geteuid().is_root() {
        return Command::new(program);
    }
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--kill-child",
        "--mount",
        "--propagation",
        "private",
        "--",
        program,
    ]);
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child
    // before exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    cmd
}

/// The program a command runs, as messages name it: the one [`isolated`]
/// wraps, not `unshare`.
fn shown_program(cmd: &Command) -> String {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if program != "unshare" {
        return program;
    }
    let mut args = cmd.get_args().skip_while(|a| *a != "--").skip(1);
    args.next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or(program)
}

/// Runs a command with its output appended to `log`; fails on a non-zero exit.
pub fn run_logged(cmd: &mut Command, log: &File, cancel: &Cancel) -> Result<()> {
    if cancel.is_cancelled() {
        bail!("cancelled");
    }
    let program = shown_program(cmd);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let pid = child.id() as i32;
    cancel.groups.lock().expect("groups").insert(pid);
    if cancel.is_cancelled() {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let status = child.wait();
    cancel.groups.lock().expect("groups").remove(&pid);
    let status = status.with_context(|| format!("cannot wait for {program}"))?;
    if cancel.is_cancelled() {
        bail!("cancelled");
    }
    if !status.success() {
        match status.code() {
            Some(c) => bail!("{program} exited with status {c}"),
            None => bail!("{program} was killed by a signal"),
        }
    }
    Ok(())
}

/// How a [`run_bounded`] command ended.
#[derive(Debug)]
pub enum Bounded {
    /// It exited (or a signal ended it) in time, with this output.
    Exited {
        status: std::process::ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// It ran past its time; it and its process group were killed.
    TimedOut,
    /// The run was cancelled (Ctrl-C); it and its process group were killed.
    Cancelled,
}

/// Runs a short command (no input, output captured) in a process group of
/// its own, for at most `timeout`: past it, or when `cancel` fires, the whole
/// group is killed and waited for. The child also dies with ddc
/// (`PR_SET_PDEATHSIG`), so nothing is left behind however ddc ends.
pub fn run_bounded(cmd: &mut Command, timeout: Duration, cancel: &Cancel) -> Result<Bounded> {
    use std::io::Read;
    if cancel.is_cancelled() {
        return Ok(Bounded::Cancelled);
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child
    // before exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    let started = std::time::Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let pid = child.id() as i32;
    cancel.groups.lock().expect("groups").insert(pid);
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let outcome = std::thread::scope(|s| {
        let out = s.spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let err = s.spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        let mut pause = Duration::from_millis(2);
        // The leader is reaped only once its output has closed: until then
        // it stays a zombie, so its group id names no other group when
        // the group is killed.
        let end = loop {
            let exited = leader_exited(pid);
            if exited.as_ref().is_ok_and(|&e| e) && out.is_finished() && err.is_finished() {
                break child.wait().map(Some);
            }
            if let Err(e) = exited {
                break Err(e);
            }
            if cancel.is_cancelled() || started.elapsed() >= timeout {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = child.wait();
                break Ok(None);
            }
            std::thread::sleep(pause.min(timeout.saturating_sub(started.elapsed())));
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        end.map(|status| match status {
            // Cancel::cancel signalled it before this loop saw the flag.
            Some(status) if cancel.is_cancelled() && !status.success() => Bounded::Cancelled,
            Some(status) => Bounded::Exited {
                status,
                stdout,
                stderr,
            },
            None if cancel.is_cancelled() => Bounded::Cancelled,
            None => Bounded::TimedOut,
        })
    });
    cancel.groups.lock().expect("groups").remove(&pid);
    outcome.with_context(|| format!("cannot wait for {program}"))
}

/// Whether the child `pid` has ended, without reaping it (`WNOWAIT`).
fn leader_exited(pid: i32) -> std::io::Result<bool> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
        Ok(WaitStatus::StillAlive) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a process whose command line is exactly `words` runs.
    fn running(words: &str) -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == words)
        })
    }

    #[test]
    fn a_bounded_run_kills_the_whole_group_at_its_timeout() {
        // A child of the child, in the same group, outlives nothing.
        let marker = format!("sleep 31.{}", std::process::id());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("{marker} & echo started; wait")]);
        let t = std::time::Instant::now();
        let b = run_bounded(&mut cmd, Duration::from_millis(300), &Cancel::default()).unwrap();
        assert!(matches!(b, Bounded::TimedOut), "{b:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!running(&marker), "{marker} outlived its group");
    }

    #[test]
    fn a_bounded_run_ends_at_its_timeout_when_a_left_child_holds_its_output() {
        let marker = format!("sleep 32.{}", std::process::id());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("{marker} & echo started")]);
        let t = std::time::Instant::now();
        let b = run_bounded(&mut cmd, Duration::from_millis(300), &Cancel::default()).unwrap();
        assert!(matches!(b, Bounded::TimedOut), "{b:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!running(&marker), "{marker} outlived its group");
    }

    #[test]
    fn a_bounded_run_gives_the_output_and_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        match run_bounded(&mut cmd, Duration::from_secs(10), &Cancel::default()).unwrap() {
            Bounded::Exited {
                status,
                stdout,
                stderr,
            } => {
                assert_eq!(status.code(), Some(3));
                assert_eq!((&stdout[..], &stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cancelled_run_starts_nothing() {
        let cancel = Arc::new(Cancel::default());
        cancel.flag.store(true, Ordering::SeqCst);
        let mut cmd = Command::new("true");
        let b = run_bounded(&mut cmd, Duration::from_secs(1), &cancel).unwrap();
        assert!(matches!(b, Bounded::Cancelled), "{b:?}");
    }
}

//! A test project in a temporary folder: the tiny step scripts from
//! `tests/fixtures/tiny-tasks`, the real templates from `tasks/templates`, a
//! Ddcfile, and helpers that run the real `ddc` binary on it.
#![allow(dead_code)]

pub mod kill_loop;
pub mod netns;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const DDCFILE: &str = r#"tasks_dir = "tasks"

[cluster]
network = "192.0.2.0/24"
master  = "192.0.2.1"

[paths]
tftp_root = "out/tftp"
nfs_root  = "out/nfsroot"
exports   = "out/exports.d/ddc.exports"
ganesha   = "out/ganesha/ddc.conf"
dhcpd     = "out/dhcp/ddc.conf"
dnsmasq   = "out/dnsmasq.d/ddc.conf"

[images.default]
suite    = "bookworm"
arch     = "amd64"
packages = ["linux-image-amd64", "nfs-common"]
union    = "overlay"
cmdline  = "console=ttyS0"

[[nodes]]
hostname = "node01"
mac      = "52:54:00:12:34:56"
ip       = "192.0.2.11"

[[nodes]]
hostname = "node02"
mac      = "52:54:00:12:34:57"
ip       = "192.0.2.12"

# The tests never reach the host's daemons ("auto" would, through systemd):
# tests/apply.rs covers [apply] with daemons of its own.
[apply]
dnsmasq = "off"
dhcpd   = "off"
nfs     = "off"
rsyslog = "off"
"#;

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Drop for Project {
    /// Never delete a test folder through a mount a failed test left in it:
    /// unmount what is there, and keep the folder if anything stays mounted.
    fn drop(&mut self) {
        safe_cleanup(self.dir.path());
    }
}

/// Unmounts what is left under `dir`; if something stays mounted, moves the
/// folder out of the temporary folder's reach so its removal cannot touch it.
pub fn safe_cleanup(dir: &Path) {
    // unmount_leftovers takes the cache folder (it looks in its `images/`).
    ddc::chroot::unmount_leftovers(&dir.join("cache"));
    // Unknown (the mount table unreadable) counts as mounted.
    if ddc::fsutil::mounts_under(dir).map_or(true, |m| !m.is_empty()) {
        let keep = dir.with_extension("left-mounted");
        let _ = std::fs::rename(dir, &keep);
        eprintln!("test folder kept at {} (still mounted)", keep.display());
    }
}

/// A folder under /var/tmp for a real image build (`prefix` names it),
/// its package cache seeded with hard links from earlier runs' (which never
/// changes what is built, only the download time); unmounted and removed
/// safely when dropped.
pub struct ImageWork {
    dir: tempfile::TempDir,
    /// Whether earlier runs' packages were there to seed the cache.
    pub warm_debs: bool,
}

impl ImageWork {
    pub fn new(prefix: &str) -> ImageWork {
        let work = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = work.path();
        let debs = Path::new("/var/tmp/ddc-e2e-debs");
        std::fs::create_dir_all(d.join("cache/debs")).unwrap();
        let warm_debs = debs.is_dir();
        if warm_debs {
            let _ = std::process::Command::new("cp")
                .arg("-al")
                .arg(format!("{}/.", debs.display()))
                .arg(d.join("cache/debs"))
                .status();
        }
        ImageWork {
            dir: work,
            warm_debs,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ImageWork {
    fn drop(&mut self) {
        safe_cleanup(self.dir.path());
    }
}

/// A `ddc build --json` in `dir`: the tasks that ran, and how long it took.
pub struct Build {
    pub ran: Vec<String>,
    pub seconds: f64,
}

/// Runs `ddc build --json` in `dir`; fails the test if it fails.
pub fn build_json(dir: &Path) -> Build {
    let start = std::time::Instant::now();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(["build", "--json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "ddc build failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Build {
        ran: tasks_in(&stdout, "ran"),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Fails the test unless it runs as root, saying why it needs root.
pub fn require_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root ({why}): run it as root, e.g. sudo -E cargo test --test {}",
        env!("CARGO_CRATE_NAME")
    );
}

impl Project {
    /// The published generations of `image`, oldest first: the folders of
    /// `nfs_root/IMG` (`current`, manifests and the rollback record are not).
    pub fn generations(&self, image: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(&format!("out/nfsroot/{image}")))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The generation `current` names for `image`.
    pub fn current(&self, image: &str) -> String {
        std::fs::read_link(self.path(&format!("out/nfsroot/{image}/current")))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `cmd` to the end.
    pub fn of(cmd: &mut Command) -> Self {
        Self::from(cmd.output().unwrap())
    }

    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Project {
    pub fn new() -> Self {
        Self::with(DDCFILE)
    }

    pub fn with(ddcfile: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ddc-test-")
            .tempdir()
            .unwrap();
        copy_dir(
            &repo().join("tests/fixtures/tiny-tasks"),
            &dir.path().join("tasks"),
        );
        copy_dir(
            &repo().join("tasks/templates"),
            &dir.path().join("tasks/templates"),
        );
        std::fs::write(dir.path().join("Ddcfile.toml"), ddcfile).unwrap();
        Project { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Replaces `from` by `to` in a file, which must contain it.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let t = self.read(rel);
        assert!(t.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &t.replacen(from, to, 1));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ddc"));
        c.args(args).current_dir(self.dir.path());
        c
    }

    pub fn ddc(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// Runs `ddc build --json ARGS`, asserts success, and returns the ids of
    /// the tasks that ran, sorted.
    pub fn build(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["build", "--json"];
        all.extend_from_slice(args);
        let r = self.ddc(&all);
        assert_eq!(r.code, 0, "ddc build failed:\n{}\n{}", r.stdout, r.stderr);
        tasks_in(&r.stdout, "ran")
    }
}

/// The tasks in `--json` output that ended in `state`, sorted.
pub fn tasks_in(json_lines: &str, state: &str) -> Vec<String> {
    let mut out: Vec<String> = json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["state"] == state)
        .map(|v| v["task"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

pub fn strs(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

pub const ALL: &[&str] = &[
    "bootloader",
    "configure:default",
    "debootstrap:default",
    "dhcp",
    "exports",
    "initramfs:default",
    "packages:default",
    "publish:default",
    "pxe:node01",
    "pxe:node02",
];

/// Mount points at or below `dir`, read straight from the kernel's table
/// (not through ddc's own code, which the tests check).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(&dir))
        .collect()
}

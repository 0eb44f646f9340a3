//! A network namespace for tests that run daemons (dnsmasq, nfs-ganesha),
//! driven through tests/e2e/netboot.sh: dropping it stops what was started
//! and deletes the namespaces, also when the test fails. Nothing listens on
//! the host's network.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the programs are looked for: the tests may run with a PATH that
/// lacks the sbin folders.
pub const BIN_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

pub fn search_path() -> String {
    let mut p = BIN_DIRS.join(":");
    if let Some(old) = std::env::var_os("PATH") {
        p.push(':');
        p.push_str(&old.to_string_lossy());
    }
    p
}

/// The program's full path, or a failure naming the package to install.
pub fn require(program: &str, package: &str) -> PathBuf {
    BIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed: this test runs it; install the Debian package \
                 {package} (apt-get install {package})"
            )
        })
}

pub use super::require_root;

pub struct Netns {
    /// The namespace (the cluster network, br0 = 192.0.2.1/24).
    pub name: String,
    /// netboot.sh's NB_DIR: pids, logs, pid files, the daemons' private /run.
    pub state: tempfile::TempDir,
}

impl Netns {
    /// A namespace name and state folder; nothing is set up yet (the tests
    /// need the pid file paths before they build).
    pub fn new(tag: &str) -> Self {
        require_root("it creates network namespaces");
        for (program, package) in [("ip", "iproute2"), ("unshare", "util-linux")] {
            require(program, package);
        }
        let state = tempfile::Builder::new()
            .prefix("ddc-netns-")
            .tempdir()
            .unwrap();
        Netns {
            name: format!("ddca-{tag}-{}", std::process::id()),
            state,
        }
    }

    pub fn dir(&self) -> &Path {
        self.state.path()
    }

    /// Runs `script` in bash with netboot.sh sourced, NB_DIR set and the
    /// namespace's name in $NS: exit code and output.
    pub fn bash(&self, script: &str) -> (i32, String) {
        let lib = super::repo().join("tests/e2e/netboot.sh");
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!("source '{}' || exit 99\n{script}", lib.display()))
            .env("NB_DIR", self.state.path())
            .env("NS", &self.name)
            .env("PATH", search_path())
            .output()
            .expect("run bash");
        let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&o.stderr));
        (o.status.code().unwrap_or(-1), text)
    }

    /// Like [`Netns::bash`], failing the test when the script fails.
    pub fn must(&self, script: &str) -> String {
        let (code, out) = self.bash(script);
        assert_eq!(code, 0, "{script}\nfailed:\n{out}");
        out
    }

    /// A second machine on the cluster network: namespace `{name}-c` with
    /// eth0 cabled to br0, at `addr` (like 192.0.2.200/24); its name.
    pub fn host(&self, addr: &str) -> String {
        let host = format!("{}-c", self.name);
        self.must(&format!("nb_add_host \"$NS\" '{host}' {addr}"));
        host
    }

    /// What `busybox udhcpc` on `host`'s eth0, with no address and the MAC
    /// `mac`, is offered: `ip=… hostname=…`, or None if no server answers.
    pub fn lease(&self, host: &str, mac: &str) -> Option<String> {
        let script = self.state.path().join("udhcpc.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"lease ip=$ip hostname=$hostname\"\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let busybox = require("busybox", "busybox");
        let (code, out) = self.bash(&format!(
            "ip -n '{host}' addr flush dev eth0 && \
             ip -n '{host}' link set eth0 down && \
             ip -n '{host}' link set eth0 address {mac} && \
             ip -n '{host}' link set eth0 up && \
             ip netns exec '{host}' {} udhcpc -i eth0 -f -q -n -t 4 -T 1 -s '{}' 2>&1",
            busybox.display(),
            script.display()
        ));
        let lease = out.lines().find(|l| l.starts_with("lease "));
        match (code, lease) {
            (0, Some(l)) => Some(l.trim_start_matches("lease ").to_string()),
            _ => None,
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let (code, out) = self.bash("nb_cleanup");
        if code != 0 {
            eprintln!(
                "warning: netns {} may be left over (ip netns del {}):\n{out}",
                self.name, self.name
            );
        }
    }
}

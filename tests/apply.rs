//! `[apply]` without daemons: "auto" and "systemd" through a stand-in
//! `systemctl` that records the command lines ddc runs and says which units
//! are active; pid file mode with stand-in processes that log each SIGHUP.
//! The configs are checked by the real checkers (dnsmasq --test, dhcpd -t,
//! rsyslogd -N1). tests/apply_daemons.rs runs the real daemons.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Project, Run};

const BASE: &str = r#"tasks_dir = "tasks"

[cluster]
network = "192.0.2.0/24"
master  = "192.0.2.1"
syslog  = true

[images.default]
suite    = "bookworm"
packages = ["linux-image-amd64"]

[[nodes]]
hostname = "node01"
mac      = "52:54:00:12:34:56"
ip       = "192.0.2.11"
"#;

const NODE2: &str =
    "\n[[nodes]]\nhostname = \"node02\"\nmac = \"52:54:00:12:34:57\"\nip = \"192.0.2.12\"\n";

/// A project, its stand-in systemctl (in `bin/`) and what it was asked.
struct Setup {
    p: Project,
}

impl Setup {
    /// `apply` is the `[apply]` table's body (empty: every daemon "auto").
    fn new(apply: &str) -> Setup {
        let p = Project::with(&format!("{BASE}\n[apply]\n{apply}\n"));
        p.write(
            "bin/systemctl",
            "#!/bin/sh\n\
             echo \"$*\" >> \"$FAKE_SYSTEMCTL_LOG\"\n\
             if [ \"$1\" = is-active ]; then\n\
             \x20   grep -qx \"$3\" \"$FAKE_SYSTEMCTL_ACTIVE\" 2>/dev/null && exit 0\n\
             \x20   echo inactive; exit 3\n\
             fi\n",
        );
        chmod_x(&p.path("bin/systemctl"));
        p.write("systemctl.log", "");
        Setup { p }
    }

    /// The units the stand-in says are active.
    fn active(&self, units: &[&str]) {
        self.p
            .write("active-units", &format!("{}\n", units.join("\n")));
    }

    fn ddc(&self, args: &[&str]) -> Run {
        let o = self
            .p
            .command(args)
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                    self.p.path("bin").display()
                ),
            )
            .env("FAKE_SYSTEMCTL_LOG", self.p.path("systemctl.log"))
            .env("FAKE_SYSTEMCTL_ACTIVE", self.p.path("active-units"))
            .output()
            .unwrap();
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// A build that must succeed.
    fn build(&self) -> Run {
        let r = self.ddc(&["build"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        r
    }

    /// What systemctl was asked since the last call, one line a call.
    fn systemctl_calls(&self) -> Vec<String> {
        let text = self.p.read("systemctl.log");
        self.p.write("systemctl.log", "");
        text.lines().map(str::to_string).collect()
    }

    fn add_node2(&self) {
        let t = self.p.read("Ddcfile.toml");
        self.p.write(
            "Ddcfile.toml",
            &t.replace("\n[apply]", &format!("{NODE2}\n[apply]")),
        );
    }
}

fn chmod_x(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `ddc: ...` notes of a run.
fn notes(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("ddc: "))
        .collect()
}

/// The summary line's list of what was applied, or "" if none.
fn applied(r: &Run) -> &str {
    r.stdout
        .lines()
        .find(|l| l.starts_with("ddc: "))
        .and_then(|l| l.split_once("; applied: "))
        .map_or("", |(_, a)| a)
}

#[test]
fn auto_without_an_active_unit_installs_and_notes_each_daemon_once() {
    let s = Setup::new("");
    let r = s.build();
    let mut n = notes(&r);
    n.sort();
    assert_eq!(
        n,
        [
            "dhcpd is not running under systemd: restart it yourself, or set [apply] dhcpd",
            "dnsmasq is not running under systemd: restart it yourself, or set [apply] dnsmasq",
            "rsyslog is not running under systemd: restart it yourself, or set [apply] rsyslog",
            "the NFS server is not running under systemd: reload it yourself (nfs-ganesha: SIGHUP; kernel NFS: exportfs -ra), or set [apply] nfs",
        ],
        "{}",
        r.stderr
    );
    assert_eq!(applied(&r), "");
    assert!(s
        .p
        .read("out/dnsmasq/ddc.hosts")
        .contains("52:54:00:12:34:56,192.0.2.11,node01"));
    assert!(s.p.read("out/rsyslog.d/ddc.conf").contains("imudp"));
    let calls = s.systemctl_calls();
    assert!(
        calls.iter().all(|c| c.starts_with("is-active --quiet ")),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"is-active --quiet nfs-server".to_string()),
        "{calls:?}"
    );

    // Nothing changed: no task, no note, no question to systemd.
    let r = s.build();
    assert!(notes(&r).is_empty(), "{}", r.stderr);
    assert!(s.systemctl_calls().is_empty());

    // A node added: the two DHCP servers, and dnsmasq only needs a reload.
    s.add_node2();
    let r = s.build();
    let mut n = notes(&r);
    n.sort();
    assert_eq!(
        n,
        [
            "dhcpd is not running under systemd: restart it yourself, or set [apply] dhcpd",
            "dnsmasq is not running under systemd: reload it yourself, or set [apply] dnsmasq",
        ]
    );
    assert!(s.p.read("out/dhcp/ddc.conf").contains("host node02 {"));
}

#[test]
fn auto_uses_systemd_when_the_usual_unit_is_active() {
    let s = Setup::new("rsyslog = \"off\"");
    s.active(&["dnsmasq", "isc-dhcp-server", "nfs-ganesha"]);
    let r = s.build();
    assert!(notes(&r).is_empty(), "{}", r.stderr);
    assert_eq!(
        applied(&r),
        "dhcpd (systemctl restart isc-dhcp-server), dnsmasq (systemctl restart dnsmasq), nfs (systemctl reload-or-restart nfs-ganesha)"
    );
}

#[test]
fn systemd_mode_reloads_exactly_the_daemons_whose_config_changed() {
    let s = Setup::new(
        "dnsmasq = \"systemd\"\ndhcpd = { systemd = \"my-dhcpd\" }\nnfs = \"systemd\"\nrsyslog = \"systemd\"",
    );
    s.active(&["dnsmasq", "my-dhcpd", "nfs-server", "rsyslog"]);
    let r = s.build();
    assert_eq!(
        applied(&r),
        "dhcpd (systemctl restart my-dhcpd), dnsmasq (systemctl restart dnsmasq), nfs (systemctl reload-or-restart nfs-server), rsyslog (systemctl restart rsyslog)"
    );
    let mut calls = s.systemctl_calls();
    calls.retain(|c| !c.starts_with("is-active"));
    calls.sort();
    assert_eq!(
        calls,
        [
            "reload-or-restart nfs-server",
            "restart dnsmasq",
            "restart my-dhcpd",
            "restart rsyslog"
        ]
    );

    let r = s.build();
    assert_eq!(applied(&r), "");
    assert!(
        s.systemctl_calls().is_empty(),
        "a no-op build asked systemd"
    );

    // A node: dnsmasq's hosts file only (a reload), dhcpd's config (a restart).
    s.add_node2();
    let r = s.build();
    assert_eq!(
        applied(&r),
        "dhcpd (systemctl restart my-dhcpd), dnsmasq (systemctl reload-or-restart dnsmasq)"
    );
    // dnsmasq's main config only: dhcpd's task reruns and applies nothing.
    s.systemctl_calls();
    s.p.edit(
        "Ddcfile.toml",
        "syslog  = true",
        "syslog  = true\n\n[server]\ndnsmasq_tftp = false",
    );
    let r = s.build();
    assert!(r.stdout.contains("ran apply:dhcpd"), "{}", r.stdout);
    assert_eq!(applied(&r), "dnsmasq (systemctl restart dnsmasq)");
    assert!(!s.systemctl_calls().iter().any(|c| c.contains("my-dhcpd")));
}

#[test]
fn a_unit_that_is_not_active_fails_its_task_and_the_next_build_tries_again() {
    let s =
        Setup::new("dnsmasq = \"systemd\"\ndhcpd = \"systemd\"\nnfs = \"off\"\nrsyslog = \"off\"");
    s.active(&["dnsmasq", "isc-dhcp-server"]);
    s.build();
    s.active(&["isc-dhcp-server"]);
    s.add_node2();
    let r = s.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("error: apply:dnsmasq failed: dnsmasq is not active (systemctl is-active dnsmasq): start it; the checked config is installed and it reads it when it starts"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("1 failed") && applied(&r) == "dhcpd (systemctl restart isc-dhcp-server)",
        "{}",
        r.stdout
    );
    assert!(
        s.p.read("out/dnsmasq/ddc.hosts").contains("node02"),
        "the checked config is installed"
    );
    s.active(&["dnsmasq", "isc-dhcp-server"]);
    let r = s.build();
    assert_eq!(applied(&r), "dnsmasq (systemctl reload-or-restart dnsmasq)");

    let s = Setup::new("dnsmasq = \"off\"\ndhcpd = \"off\"\nnfs = \"systemd\"\nrsyslog = \"off\"");
    let r = s.ddc(&["build"]);
    assert!(
        r.stderr.contains("apply:nfs failed: neither nfs-ganesha nor nfs-server is active (systemctl is-active): start yours, or name its unit: [apply] nfs = { systemd = \"UNIT\" }"),
        "{}",
        r.stderr
    );
}

/// A stand-in daemon named `name` (its comm), which writes its pid to
/// `pidfile` and logs each SIGHUP to `hups`.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(p: &Project, name: &str) -> Daemon {
        let script = p.path(&format!("daemons/{name}"));
        if !script.exists() {
            p.write(
                &format!("daemons/{name}"),
                "#!/bin/bash\necho $$ > \"$1\"\ntrap 'echo HUP >> \"$2\"' HUP\nwhile :; do sleep 0.05; done\n",
            );
            chmod_x(&script);
        }
        let pidfile = p.path(&format!("{name}.pid"));
        let _ = std::fs::remove_file(&pidfile);
        let child = Command::new(&script)
            .arg(&pidfile)
            .arg(p.path(&format!("{name}.hups")))
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&pidfile).map_or(true, |t| !t.ends_with('\n')) {
            assert!(Instant::now() < end, "{name} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many SIGHUPs the stand-in `name` logged, after a moment for the last.
fn hups(p: &Project, name: &str) -> usize {
    std::thread::sleep(Duration::from_millis(300));
    std::fs::read_to_string(p.path(&format!("{name}.hups")))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn pid_file_mode_signals_a_sighup_and_waits_for_a_restart_it_cannot_do() {
    let s = Setup::new("dnsmasq = { pidfile = \"dnsmasq.pid\" }\ndhcpd = { pidfile = \"dhcpd.pid\" }\nnfs = \"off\"\nrsyslog = \"off\"");
    let (dnsmasq, dhcpd) = (Daemon::start(&s.p, "dnsmasq"), Daemon::start(&s.p, "dhcpd"));
    // Both started before ddc installed their main config: each must restart.
    for _ in 0..2 {
        let r = s.ddc(&["build"]);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        for (name, pid) in [("dnsmasq", dnsmasq.pid()), ("dhcpd", dhcpd.pid())] {
            let want = format!("error: apply:{name} failed: {name} (pid {pid}) reads this config only when it starts and ddc restarts only through systemd: restart it; the config passed the check and is installed, and the next ddc build sees the new process");
            assert!(r.stderr.contains(&want), "{want}\n{}", r.stderr);
        }
    }
    assert_eq!(hups(&s.p, "dnsmasq") + hups(&s.p, "dhcpd"), 0);
    drop((dnsmasq, dhcpd));
    let (dnsmasq, dhcpd) = (Daemon::start(&s.p, "dnsmasq"), Daemon::start(&s.p, "dhcpd"));
    let r = s.build();
    assert_eq!(
        applied(&r),
        format!(
            "dhcpd (read it at start, pid {}), dnsmasq (read it at start, pid {})",
            dhcpd.pid(),
            dnsmasq.pid()
        )
    );

    // A node: dnsmasq rereads its hosts file on SIGHUP; dhcpd must restart.
    s.add_node2();
    // -k: the node's entry is written whether or not dhcpd's task fails first.
    let r = s.ddc(&["build", "-k"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(applied(&r), "dnsmasq (SIGHUP)", "{}", r.stdout);
    assert!(r.stderr.contains(&format!(
        "apply:dhcpd failed: dhcpd (pid {}) reads this config",
        dhcpd.pid()
    )));
    assert_eq!((hups(&s.p, "dnsmasq"), hups(&s.p, "dhcpd")), (1, 0));

    // Nothing changed: dnsmasq gets nothing; dhcpd's task tries again.
    let r = s.ddc(&["build", "--json"]);
    assert_eq!(common::tasks_in(&r.stdout, "ran"), Vec::<String>::new());
    assert_eq!(common::tasks_in(&r.stdout, "failed"), ["apply:dhcpd"]);
    assert_eq!(hups(&s.p, "dnsmasq"), 1);
    drop(dhcpd);
    let dhcpd = Daemon::start(&s.p, "dhcpd");
    let r = s.build();
    assert_eq!(
        applied(&r),
        format!("dhcpd (read it at start, pid {})", dhcpd.pid())
    );
}

#[test]
fn a_stale_or_missing_pid_file_fails_the_task_and_signals_nobody() {
    let s = Setup::new("dnsmasq = { pidfile = \"dnsmasq.pid\" }\ndhcpd = \"off\"\nnfs = \"off\"\nrsyslog = \"off\"");
    let r = s.ddc(&["build"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "error: apply:dnsmasq failed: dnsmasq is not running (no live process in the pid file {}): start it; the checked config is installed and it reads it when it starts (or set [apply] dnsmasq = \"off\")",
            s.p.path("dnsmasq.pid").display()
        )),
        "{}",
        r.stderr
    );
    // The pid of a process that is not dnsmasq: never signalled.
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    s.p.write("dnsmasq.pid", &format!("{}\n", sleeper.id()));
    s.add_node2();
    let r = s.ddc(&["build"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "names pid {}, which is \"sleep\", not dnsmasq: the pid file is stale",
            sleeper.id()
        )),
        "{}",
        r.stderr
    );
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn turning_apply_on_with_a_rejected_config_keeps_the_installed_one() {
    let s = Setup::new("dnsmasq = \"off\"\ndhcpd = \"off\"\nnfs = \"off\"\nrsyslog = \"off\"");
    s.build();
    let main = s.p.read("out/dnsmasq.d/ddc.conf");
    s.p.edit(
        "Ddcfile.toml",
        "dnsmasq = \"off\"",
        "dnsmasq = { pidfile = \"dnsmasq.pid\" }",
    );
    let r = s.ddc(&["build", "-n"]);
    assert!(
        r.stdout
            .contains("would run dhcp: input changed: apply.dnsmasq"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("would run apply:dnsmasq: dependency would run: dhcp"),
        "{}",
        r.stdout
    );
    s.p.edit(
        "tasks/templates/dnsmasq.conf.j2",
        "dhcp-match=",
        "no-such-option\ndhcp-match=",
    );
    let r = s.ddc(&["build"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("apply:dnsmasq failed: dnsmasq rejects the new config"),
        "{}",
        r.stderr
    );
    // The file dhcp wrote in place, now apply:dnsmasq's to install: kept.
    assert_eq!(s.p.read("out/dnsmasq.d/ddc.conf"), main);
    assert!(s.p.path("out/dnsmasq/ddc.hosts").exists());
    // Off again: written in place as before, nothing left to apply.
    s.p.edit(
        "Ddcfile.toml",
        "dnsmasq = { pidfile = \"dnsmasq.pid\" }",
        "dnsmasq = \"off\"",
    );
    s.build();
    assert!(s
        .p
        .read("out/dnsmasq.d/ddc.conf")
        .contains("no-such-option"));
    assert!(!s.p.path("cache/staged/dnsmasq/main.conf").exists());
}

#[test]
fn a_dry_run_says_which_daemons_would_be_reloaded_and_why() {
    let s =
        Setup::new("dnsmasq = \"systemd\"\ndhcpd = \"off\"\nnfs = \"off\"\nrsyslog = \"systemd\"");
    s.active(&["dnsmasq", "rsyslog"]);
    s.build();
    s.systemctl_calls();
    s.add_node2();
    let r = s.ddc(&["build", "-n"]);
    assert!(
        r.stdout
            .contains("would run apply:dnsmasq: dependency would run: dhcp"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("apply:rsyslog"), "{}", r.stdout);
    assert!(s.systemctl_calls().is_empty(), "a dry run asked systemd");
}

#[test]
fn a_hosts_line_dnsmasq_rejects_is_named_by_its_line_in_the_hosts_file() {
    let s = Setup::new("dnsmasq = { pidfile = \"dnsmasq.pid\" }\ndhcpd = \"off\"\nnfs = \"off\"\nrsyslog = \"off\"");
    // 1,500 nodes: the hosts file is checked in blocks of 1,000 lines.
    let mut csv = String::from("hostname,mac,ip\n");
    for i in 0..1500 {
        csv.push_str(&format!(
            "n{i:04},52:54:01:00:{:02x}:{:02x},192.0.{}.{}\n",
            i >> 8,
            i & 0xff,
            3 + i / 250,
            1 + i % 250
        ));
    }
    s.p.write("nodes.csv", &csv);
    s.p.edit(
        "Ddcfile.toml",
        "tasks_dir = \"tasks\"",
        "tasks_dir = \"tasks\"\nnodes_file = \"nodes.csv\"",
    );
    s.p.edit(
        "Ddcfile.toml",
        "network = \"192.0.2.0/24\"",
        "network = \"192.0.0.0/16\"",
    );
    s.p.edit(
        "Ddcfile.toml",
        "master  = \"192.0.2.1\"",
        "master  = \"192.0.0.1\"",
    );
    s.p.edit(
        "tasks/templates/dnsmasq-hosts.j2",
        "{% endfor %}",
        "{% endfor %}\n52:54:00:aa:bb:cc,192.0.9.9,bad name\n",
    );
    let r = s.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    // 5 comment lines, node01 from the Ddcfile, 1,500 from the CSV, then it.
    let want = format!(
        "apply:dnsmasq failed: dnsmasq rejects the new config, which is not installed (the old one stays in place): dnsmasq: bad DHCP host name at line 1507 of {}",
        s.p.path("cache/staged/dnsmasq/hosts").display()
    );
    assert!(r.stderr.contains(&want), "{want}\n{}", r.stderr);
    assert!(!s.p.path("out/dnsmasq/ddc.hosts").exists());
}

/// A drop-in that leaves imudp to the master's main config is checked by
/// rsyslogd -N1 after a config that loads it, and installed; one that loads
/// imudp after a main config that does too would have been refused.
#[test]
fn the_rsyslog_drop_in_that_leaves_imudp_to_the_main_config_is_checked_and_installed() {
    let s = Setup::new("dnsmasq = \"off\"\ndhcpd = \"off\"\nnfs = \"off\"\nrsyslog = \"systemd\"");
    s.p.write(
        "rsyslog-main.conf",
        "module(load=\"imuxsock\")\nmodule(load=\"imudp\")\n",
    );
    s.p.edit(
        "Ddcfile.toml",
        "tasks_dir = \"tasks\"",
        "tasks_dir = \"tasks\"\n[paths]\nrsyslog_main = \"rsyslog-main.conf\"",
    );
    s.active(&["rsyslog"]);
    let r = s.build();
    assert_eq!(
        applied(&r),
        "rsyslog (systemctl restart rsyslog)",
        "{}",
        r.stdout
    );
    let installed = s.p.read("out/rsyslog.d/ddc.conf");
    assert!(!installed.contains("module(load=\"imudp\")"), "{installed}");
    assert!(installed.contains(&format!(
        "# imudp is loaded by {}",
        s.p.path("rsyslog-main.conf").display()
    )));
    assert!(s.systemctl_calls().contains(&"restart rsyslog".to_string()));
}

//! `ddc build` leaves the running servers serving what it built, with real
//! daemons in a network namespace of their own (root): dnsmasq, started from
//! ddc's config in pid file mode, answers a node added to the CSV after a
//! build, with nobody restarting it; a build with nothing changed sends no
//! signal; a template that dnsmasq rejects is never installed and the
//! running dnsmasq keeps serving. nfs-ganesha exports a new generation after
//! `ddc build`, with no SIGHUP by hand.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::netns::{require, Netns};
use common::Project;

/// A cluster whose `[apply]` reaches `key` through `pidfile`, and nothing
/// else: the host's own daemons are never touched.
fn ddcfile(key: &str, pidfile: &Path, nodes: &str) -> String {
    let mut apply = String::new();
    for k in ["dnsmasq", "dhcpd", "nfs", "rsyslog"] {
        if k == key {
            apply.push_str(&format!(
                "{k} = {{ pidfile = \"{}\" }}\n",
                pidfile.display()
            ));
        } else {
            apply.push_str(&format!("{k} = \"off\"\n"));
        }
    }
    format!(
        "tasks_dir = \"tasks\"\n{nodes}\n[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster  = \"192.0.2.1\"\n\n\
         [server]\ndnsmasq_interface = \"br0\"\n\n\
         [images.default]\nsuite    = \"bookworm\"\npackages = [\"linux-image-amd64\"]\n\n\
         [apply]\n{apply}"
    )
}

/// The process in a pid file: its pid and start time (clock ticks after
/// boot), which change when it is restarted.
fn process(pidfile: &Path) -> (i32, u64) {
    let pid: i32 = std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap();
    (pid, start.parse().unwrap())
}

/// How many times dnsmasq has read `hosts` (at start and on each SIGHUP).
fn reads(ns: &Netns, hosts: &Path) -> usize {
    let log = std::fs::read_to_string(ns.dir().join("dnsmasq/dnsmasq.log")).unwrap_or_default();
    let needle = format!("read {}", hosts.display());
    log.lines().filter(|l| l.contains(&needle)).count()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The daemons' users (dnsmasq drops root) read the project's files.
fn open_up(p: &Project) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

const CSV: &str = "hostname,mac,ip\nnode01,52:54:00:12:34:56,192.0.2.11\n";
const MAC2: &str = "52:54:00:12:34:57";

/// The first builds: nothing runs dnsmasq yet, so its task fails with the
/// checked config installed; dnsmasq started from it, the next build passes.
fn first_builds(ns: &Netns, p: &Project, main: &Path) {
    // Nothing runs dnsmasq yet: its task fails, the checked config is installed.
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "error: apply:dnsmasq failed: dnsmasq is not running (no live process in the pid file"
        ),
        "{}",
        r.stderr
    );
    assert!(p
        .read("out/dnsmasq/ddc.hosts")
        .contains("52:54:00:12:34:56,192.0.2.11,node01"));

    ns.must(&format!(
        "nb_setup \"$NS\" && nb_start_dnsmasq \"$NS\" '{}'",
        main.display()
    ));
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("; applied: dnsmasq (read it at start, pid"),
        "{}",
        r.stdout
    );
}

/// A template dnsmasq rejects, and a third node: nothing is installed, the
/// task fails with dnsmasq's own words, and dnsmasq keeps serving.
fn a_rejected_template_changes_nothing(
    ns: &Netns,
    p: &Project,
    host: &str,
    started: (i32, u64),
    pidfile: &Path,
) {
    let (main, hosts) = (
        p.path("out/dnsmasq.d/ddc.conf"),
        p.path("out/dnsmasq/ddc.hosts"),
    );
    let main_before = std::fs::read_to_string(&main).unwrap();
    let hosts_before = std::fs::read_to_string(&hosts).unwrap();
    p.edit(
        "tasks/templates/dnsmasq.conf.j2",
        "dhcp-match=",
        "dhcp-no-such-option=1\ndhcp-match=",
    );
    p.write(
        "nodes.csv",
        &format!("{CSV}node02,{MAC2},192.0.2.12\nnode03,52:54:00:12:34:58,192.0.2.13\n"),
    );
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("error: apply:dnsmasq failed: dnsmasq rejects the new config, which is not installed (the old one stays in place): dnsmasq: bad option at line"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&main).unwrap(), main_before);
    assert_eq!(std::fs::read_to_string(&hosts).unwrap(), hosts_before);
    assert_eq!(
        ns.lease(host, MAC2).as_deref(),
        Some("ip=192.0.2.12 hostname=node02"),
        "the old config no longer serves"
    );
    assert_eq!(
        ns.lease(host, "52:54:00:12:34:58"),
        None,
        "node03 was applied"
    );
    assert_eq!(process(pidfile), started);

    // The next build tries again: still rejected, still not installed.
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("dnsmasq: bad option at line"),
        "{}",
        r.stderr
    );
}

#[test]
fn dnsmasq_answers_a_node_added_to_the_csv_with_nobody_restarting_it() {
    require("dnsmasq", "dnsmasq-base");
    let ns = Netns::new("dns");
    let pidfile = ns.dir().join("dnsmasq/dnsmasq.pid");
    let p = Project::with(&ddcfile(
        "dnsmasq",
        &pidfile,
        "nodes_file = \"nodes.csv\"\n",
    ));
    open_up(&p);
    p.write("nodes.csv", CSV);
    let (main, hosts) = (
        p.path("out/dnsmasq.d/ddc.conf"),
        p.path("out/dnsmasq/ddc.hosts"),
    );

    first_builds(&ns, &p, &main);
    let started = process(&pidfile);
    let host = ns.host("192.0.2.250/24");
    assert_eq!(ns.lease(&host, MAC2), None, "node02 is not in the CSV yet");

    // A node added to the CSV: one build, one SIGHUP, and it gets its lease.
    p.write("nodes.csv", &format!("{CSV}node02,{MAC2},192.0.2.12\n"));
    let before = reads(&ns, &hosts);
    let r = p.ddc(&["build", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        common::tasks_in(&r.stdout, "ran"),
        common::strs(&["apply:dnsmasq", "dhcp", "pxe:node02"])
    );
    assert!(
        r.stderr.contains("; applied: dnsmasq (SIGHUP)"),
        "{}",
        r.stderr
    );
    wait_for(
        "dnsmasq to reread its hosts file",
        Duration::from_secs(10),
        || reads(&ns, &hosts) > before,
    );
    assert_eq!(
        ns.lease(&host, MAC2).as_deref(),
        Some("ip=192.0.2.12 hostname=node02")
    );
    assert_eq!(process(&pidfile), started, "dnsmasq was restarted");

    // Nothing changed: nothing runs, no signal.
    let before = reads(&ns, &hosts);
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("applied"), "{}", r.stdout);
    assert!(r.stdout.contains("ddc: 0 ran"), "{}", r.stdout);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        reads(&ns, &hosts),
        before,
        "a no-op build signalled dnsmasq"
    );
    assert_eq!(process(&pidfile), started);

    a_rejected_template_changes_nothing(&ns, &p, &host, started, &pidfile);
}

/// The generation `current` points at, as a path.
fn current(p: &Project) -> PathBuf {
    std::fs::canonicalize(p.path("out/nfsroot/default/current")).unwrap()
}

/// `nfs-cat` of `path` on the master's export, from `host`, as root (a
/// privileged port, as the initramfs mounts).
fn nfs_read(host: &str, path: &Path) -> Option<String> {
    let url = format!("nfs://192.0.2.1{}?version=3", path.display());
    let o = std::process::Command::new(require("ip", "iproute2"))
        .args(["netns", "exec", host])
        .arg(require("nfs-cat", "libnfs-utils"))
        .arg(&url)
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

const NODES: &str =
    "\n[[nodes]]\nhostname = \"node01\"\nmac = \"52:54:00:12:34:56\"\nip = \"192.0.2.11\"\n";

#[test]
fn a_new_generation_is_exported_after_ddc_build_with_no_sighup_by_hand() {
    require("ganesha.nfsd", "nfs-ganesha");
    require("rpcbind", "rpcbind");
    let ns = Netns::new("nfs");
    let pidfile = ns.dir().join("nfs/run/ganesha/ganesha.pid");
    let p = Project::with(&format!("{}{NODES}", ddcfile("nfs", &pidfile, "")));
    open_up(&p);
    let ganesha = p.path("out/ganesha/ddc.conf");

    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("error: apply:nfs failed: nfs-ganesha is not running"),
        "{}",
        r.stderr
    );
    ns.must(&format!(
        "nb_setup \"$NS\" && nb_start_nfs \"$NS\" '{0}' && nb_link_nfs_exports '{0}'",
        ganesha.display()
    ));
    let host = ns.host("192.0.2.200/24");
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("; applied: nfs-ganesha (SIGHUP)"),
        "{}",
        r.stdout
    );
    let gen1 = current(&p);
    assert_eq!(
        nfs_read(&host, &gen1.join("etc/debian_version")).as_deref(),
        Some("bookworm amd64\n")
    );

    // A new generation: exported by the running ganesha after one build.
    p.edit(
        "Ddcfile.toml",
        "packages = [\"linux-image-amd64\"]",
        "packages = [\"linux-image-amd64\", \"nfs-common\"]",
    );
    let started = process(&pidfile);
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("ran apply:nfs") && r.stdout.contains("; applied: nfs-ganesha (SIGHUP)"),
        "{}",
        r.stdout
    );
    let gen2 = current(&p);
    assert_ne!(gen1, gen2, "no new generation");
    let file = gen2.join("var/lib/dpkg/packages");
    wait_for(
        "ganesha to export the new generation",
        Duration::from_secs(20),
        || nfs_read(&host, &file).is_some(),
    );
    assert_eq!(
        nfs_read(&host, &file).as_deref(),
        Some("linux-image-amd64 nfs-common\n")
    );
    assert!(
        nfs_read(&host, &gen1.join("etc/debian_version")).is_some(),
        "the running generation is no longer exported"
    );
    assert_eq!(process(&pidfile), started, "ganesha was restarted");
}

//! `ddc rollout` planning at cluster scale: 10,000 nodes (NODES overrides)
//! in a CSV on the tiny step scripts, built twice (generation 1, which
//! every node reports running, then generation 2 current), so that every
//! node needs a reboot. A real `ddc serve` makes the node-state database;
//! the 10,000 reports are then written into it directly (the serve bench
//! measures receiving them). Times whole `ddc rollout -n --percent 10`
//! processes (SAMPLES, default 5; text, then `--json`) and prints median,
//! min and max against the target:
//!
//! | figure (10,000 nodes)             | target    |
//! |-----------------------------------|-----------|
//! | `ddc rollout -n --percent 10`     | ≤ 1000 ms |
//!
//! The plan is what a rollout computes before its first reboot (and what
//! every poll re-reads: the whole nodes table). Exits 1 when a median is
//! over its target times `DDC_BENCH_MARGIN` (default 1).
//!
//! Run: `cargo bench --bench rollout`.

#[path = "../tests/common/http.rs"]
mod http;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const TARGET_MS: f64 = 1000.0;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn ddc(dir: &Path, args: &[&str]) -> (f64, String) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "ddc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (secs, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ddcfile(packages: &str) -> String {
    format!(
        r#"nodes_file = "nodes.csv"
tasks_dir = "tasks"

[cluster]
network = "127.0.0.0/8"
master  = "127.0.0.1"

[paths]
tftp_root = "out/tftp"
nfs_root  = "out/nfsroot"
exports   = "out/exports.d/ddc.exports"
ganesha   = "out/ganesha/ddc.conf"
dhcpd     = "out/dhcp/ddc.conf"
dnsmasq   = "out/dnsmasq.d/ddc.conf"

[images.default]
suite    = "bookworm"
packages = [{packages}]

[power]
user = "admin"
password_file = "ipmi.pw"

[apply]
dnsmasq = "off"
dhcpd   = "off"
nfs     = "off"
rsyslog = "off"
"#
    )
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let n: usize = std::env::var("NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let samples: usize = std::env::var("SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let margin: f64 = std::env::var("DDC_BENCH_MARGIN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::Builder::new()
        .prefix("ddc-rollout-bench-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    copy_dir(&repo.join("tests/fixtures/tiny-tasks"), &d.join("tasks"));
    copy_dir(&repo.join("tasks/templates"), &d.join("tasks/templates"));
    std::fs::write(d.join("Ddcfile.toml"), ddcfile("\"linux-image-amd64\"")).unwrap();
    let mut csv = String::from("hostname,mac,ip,bmc\n");
    for i in 0..n {
        csv.push_str(&format!(
            "{},{},{},10.9.{}.{}\n",
            http::node_name(i),
            http::node_mac(i),
            http::node_ip(i),
            i / 250,
            i % 250 + 1
        ));
    }
    std::fs::write(d.join("nodes.csv"), csv).unwrap();
    std::fs::write(d.join("ipmi.pw"), "pw\n").unwrap();
    std::fs::set_permissions(
        d.join("ipmi.pw"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    ddc(d, &["build"]);
    let old = std::fs::read_link(d.join("out/nfsroot/default/current")).unwrap();
    let old = old.to_string_lossy().into_owned();

    // serve makes the database; the reports go in directly.
    let addr: SocketAddr = (Ipv4Addr::LOCALHOST, http::free_port()).into();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(["serve", "--listen", &addr.to_string()])
        .current_dir(d)
        .env("DDC_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(http::wait_listening(addr), "ddc serve did not start");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    serve.wait().unwrap();
    let mut db = rusqlite::Connection::open(d.join("cache/nodes.db")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let tx = db.transaction().unwrap();
    for i in 0..n {
        tx.execute(
            "INSERT INTO nodes (hostname, mac, image, generation, boot_id, kernel, uptime, \
             failed_units, report_at, report_ip) VALUES (?1,?2,'default',?3,?4,'6.1',100.0,'[]',?5,?6)",
            rusqlite::params![
                http::node_name(i),
                http::node_mac(i),
                old,
                format!("b{i}"),
                now,
                http::node_ip(i).to_string()
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(db);
    std::fs::write(
        d.join("Ddcfile.toml"),
        ddcfile("\"linux-image-amd64\", \"htop\""),
    )
    .unwrap();
    ddc(d, &["build"]);

    println!("ddc rollout -n, {n} nodes all needing a reboot, {samples} samples");
    let mut over = Vec::new();
    for (what, args) in [
        ("text", vec!["rollout", "-n", "--percent", "10"]),
        ("--json", vec!["rollout", "-n", "--percent", "10", "--json"]),
    ] {
        let mut times = Vec::new();
        let mut out = String::new();
        for _ in 0..samples {
            let (t, o) = ddc(d, &args);
            times.push(t * 1000.0);
            out = o;
        }
        if what == "text" {
            assert!(
                out.lines().count() < 20,
                "the plan of {n} nodes is not folded:\n{out}"
            );
        } else {
            assert_eq!(out.lines().count(), n, "one plan event per node");
        }
        let (med, min, max) = median(times);
        println!(
            "  {what:<7} median {med:7.1} ms  (min {min:.1}, max {max:.1})  target ≤ {TARGET_MS} ms"
        );
        if med > TARGET_MS * margin {
            over.push(what);
        }
    }
    if over.is_empty() {
        println!("all within their targets (× DDC_BENCH_MARGIN = {margin})");
    } else {
        println!("over target: {}", over.join(", "));
        std::process::exit(1);
    }
}

//! `ddc serve` through the real binary on loopback: the report endpoint's
//! refusals (source IP, MAC, unknown node, malformed and oversized bodies),
//! static files that never leave the document root, fetches and unknown
//! machines recorded, 1,000 concurrent clients, a SIGKILL mid-storm that
//! loses no acknowledged report, a corrupt database and its reset, the
//! config reloaded without a restart, `ddc status` (text and JSON) and gc
//! keeping a generation a node runs. Simulated nodes take their inventory
//! IPs from 127.0.0.0/8, which the test Ddcfile declares the cluster network.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/serve.rs"]
mod serve;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::Project;
use http::{request, Reply};
use serve::{loopback_project, rt, Serve, LOCAL};

const NODE01: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const NODE02: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);

/// A project whose inventory is `n` simulated nodes in nodes.csv.
fn storm_project(n: usize) -> Project {
    let p = loopback_project();
    let t = p.read("Ddcfile.toml");
    let head = t.split("[[nodes]]").next().unwrap().to_string();
    let tail = t.split_once("\n[apply]\n").unwrap().1;
    p.write(
        "Ddcfile.toml",
        &format!("nodes_file = \"nodes.csv\"\n{head}[apply]\n{tail}"),
    );
    p.write("nodes.csv", &http::inventory_csv(n));
    p
}

fn call(s: &Serve, from: Ipv4Addr, method: &str, path: &str, body: &str) -> Reply {
    rt().block_on(request(s.addr, from, method, path, body.as_bytes()))
        .unwrap()
}

fn report01(generation: &str) -> String {
    format!(
        r#"{{"hostname":"node01","mac":"52:54:00:12:34:56","image":"default","generation":"{generation}","boot_id":"6f1c","kernel":"6.1.0-28-amd64","uptime":100.0,"failed_units":["foo.service"]}}"#
    )
}

fn db(p: &Project) -> rusqlite::Connection {
    rusqlite::Connection::open(p.path("cache/nodes.db")).unwrap()
}

fn count(p: &Project, sql: &str) -> i64 {
    db(p).query_row(sql, [], |r| r.get(0)).unwrap()
}

fn status_json(p: &Project) -> Vec<serde_json::Value> {
    let r = p.ddc(&["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn reports_are_refused_unless_from_the_nodes_own_ip_and_mac() {
    let p = loopback_project();
    p.build(&[]);
    let g1 = p.current("default");
    let s = Serve::start(&p);
    let good = report01(&g1);
    let path = "/api/v1/report";
    let r = call(&s, NODE02, "POST", path, &good);
    assert_eq!(r.status, 403, "{r:?}");
    let r = call(&s, LOCAL, "POST", path, &good);
    assert_eq!(r.status, 403, "{r:?}");
    let wrong_mac = good.replace("52:54:00:12:34:56", "52:54:00:12:34:57");
    let r = call(&s, NODE01, "POST", path, &wrong_mac);
    assert_eq!(r.status, 403, "{r:?}");
    let r = call(&s, NODE01, "POST", path, &good.replace("node01", "node99"));
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.body.contains("node99"), "{r:?}");
    for bad in [
        "{",
        "[]",
        "null",
        &good.replace(&g1, "current"),
        &good.replace("100.0", "\"long\""),
    ] {
        let r = call(&s, NODE01, "POST", path, bad);
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert_eq!(r.body.trim().lines().count(), 1, "one line: {r:?}");
    }
    let units: Vec<String> = (0..2000).map(|i| format!("\"u{i}.service\"")).collect();
    let huge = good.replace("\"foo.service\"", &units.join(","));
    assert!(huge.len() > 16 * 1024);
    assert_eq!(call(&s, NODE01, "POST", path, &huge).status, 413);
    assert_eq!(
        count(&p, "SELECT count(*) FROM nodes"),
        0,
        "nothing refused is stored"
    );
    let r = call(&s, NODE01, "POST", path, &good);
    assert_eq!(r.status, 204, "{r:?}");
    let row: (String, String) = db(&p)
        .query_row(
            "SELECT generation, report_ip FROM nodes WHERE hostname = 'node01'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(row, (g1.clone(), "127.0.0.11".to_string()));
    let log = std::fs::read_to_string(p.path(&format!("serve-{}.log", s.addr.port()))).unwrap();
    assert!(
        log.contains("not from the node's IP") && log.contains("inventory_ip=127.0.0.11"),
        "{log}"
    );
    assert!(log.contains("not the node's MAC"), "{log}");
    assert!(log.contains("length limit exceeded"), "{log}");
    assert!(s.stop().success());
}

#[test]
fn files_never_leave_the_document_root_and_fetches_are_recorded() {
    let p = loopback_project();
    p.build(&[]);
    let g1 = p.current("default");
    p.write(
        "out/tftp/ipxe/52-54-00-12-34-57.ipxe",
        "#!ipxe\necho node02\n",
    );
    p.write("out/tftp/.secret", "hidden");
    p.write("outside.txt", "outside");
    std::os::unix::fs::symlink(p.path("outside.txt"), p.path("out/tftp/link-out")).unwrap();
    std::os::unix::fs::symlink("/etc", p.path("out/tftp/etc")).unwrap();
    std::os::unix::fs::symlink(format!("default/{g1}/vmlinuz"), p.path("out/tftp/inside")).unwrap();
    let s = Serve::start(&p);
    let kernel = p.read(&format!("out/tftp/default/{g1}/vmlinuz"));
    let r = call(&s, LOCAL, "GET", &format!("/default/{g1}/vmlinuz"), "");
    assert_eq!((r.status, r.body), (200, kernel.clone()));
    let r = call(&s, LOCAL, "HEAD", &format!("/default/{g1}/initrd.img"), "");
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(call(&s, LOCAL, "GET", "/inside", "").body, kernel);
    for refused in [
        "/../Ddcfile.toml",
        "/default/../../Ddcfile.toml",
        "/link-out",
        "/etc/passwd",
        "/.secret",
        "/default",
        "/default/",
        "/%2e%2e/Ddcfile.toml",
        "/nothing-here",
    ] {
        let r = call(&s, LOCAL, "GET", refused, "");
        assert_eq!(r.status, 404, "{refused}: {r:?}");
        assert!(!r.body.contains("outside") && !r.body.contains("root:"));
    }
    assert_eq!(call(&s, LOCAL, "POST", "/inside", "x").status, 405);
    let r = call(&s, NODE02, "GET", "/ipxe/52-54-00-12-34-57.ipxe", "");
    assert_eq!(r.status, 200);
    let st = status_json(&p);
    assert_eq!(st[1]["node"], "node02");
    assert_eq!(st[1]["state"], "booting", "{st:?}");
    assert_eq!(st[0]["state"], "never_seen", "{st:?}");
    // A machine not in the inventory: recorded once, told to boot on.
    let q = "/api/v1/unknown?mac=52-54-00-aa-bb-cc&platform=efi&arch=x86_64";
    for _ in 0..2 {
        let r = call(&s, Ipv4Addr::new(127, 0, 0, 99), "GET", q, "");
        assert_eq!(r.status, 200);
        assert!(
            r.body.starts_with("#!ipxe\n") && r.body.contains("not in the inventory"),
            "{r:?}"
        );
        assert!(r.body.trim_end().ends_with("exit"), "{r:?}");
    }
    let row: (String, String, String) = db(&p)
        .query_row("SELECT mac, platform, ip FROM discovered", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        row,
        (
            "52:54:00:aa:bb:cc".to_string(),
            "efi".to_string(),
            "127.0.0.99".to_string()
        )
    );
    let r = call(&s, LOCAL, "GET", "/api/v1/unknown?mac=zz&platform=efi", "");
    assert_eq!(r.status, 400);
    assert_eq!(count(&p, "SELECT count(*) FROM discovered"), 1);
}

#[test]
fn status_shows_reboot_needed_and_gc_keeps_the_running_generation() {
    let p = loopback_project();
    p.build(&[]);
    let g1 = p.current("default");
    let s = Serve::start(&p);
    assert_eq!(
        call(&s, NODE01, "POST", "/api/v1/report", &report01(&g1)).status,
        204
    );
    let st = status_json(&p);
    assert_eq!(st[0]["node"], "node01");
    assert_eq!(st[0]["state"], "up");
    assert_eq!(st[0]["running"], g1.as_str());
    assert_eq!(st[0]["target"], g1.as_str());
    assert_eq!(st[0]["reboot_needed"], false);
    assert_eq!(st[0]["failed_units"][0], "foo.service");
    assert!(st[0]["booted_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(st[1]["state"], "never_seen");
    assert!(st[1]["running"].is_null() && st[1]["booted_at"].is_null());
    // An image from before the system state sends none; a newer one does.
    assert!(st[0]["system"].is_null(), "{}", st[0]);
    let with_system = report01(&g1).replace("\"uptime\"", "\"system\":\"degraded\",\"uptime\"");
    assert_eq!(
        call(&s, NODE01, "POST", "/api/v1/report", &with_system).status,
        204
    );
    assert_eq!(status_json(&p)[0]["system"], "degraded");
    let text = p.ddc(&["status"]);
    assert!(text.stdout.contains("system degraded"), "{}", text.stdout);
    let bad = report01(&g1).replace("\"uptime\"", "\"system\":\"Up; rm\",\"uptime\"");
    let r = call(&s, NODE01, "POST", "/api/v1/report", &bad);
    assert_eq!(r.status, 400);
    // A new generation: node01 still runs the first.
    p.edit("Ddcfile.toml", "\"nfs-common\"", "\"nfs-common\", \"htop\"");
    p.build(&[]);
    let g2 = p.current("default");
    assert_ne!(g1, g2);
    let st = status_json(&p);
    assert_eq!(st[0]["target"], g2.as_str());
    assert_eq!(st[0]["reboot_needed"], true);
    let r = p.ddc(&["status"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = r.stdout.lines().find(|l| l.starts_with("node01")).unwrap();
    assert!(
        line.contains(" up ") && line.contains(&g1) && line.contains("reboot needed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("1 up (0 on current, 1 need a reboot), 1 never seen"),
        "{}",
        r.stdout
    );
    let r = p.ddc(&["status", "node02"]);
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    assert_eq!(p.ddc(&["status", "node77"]).code, 2);
    // Works with serve stopped.
    assert!(s.stop().success());
    assert_eq!(status_json(&p)[0]["running"], g1.as_str());
    let r = p.ddc(&["gc", "--keep", "0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("keep   default/{g1} (running on node01)")),
        "{}",
        r.stdout
    );
    assert!(p.generations("default").contains(&g1));
    let r = p.ddc(&["gc", "--keep", "0", "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("deleted default/{g1}")) && r.stdout.contains("breaks node01"),
        "{}",
        r.stdout
    );
    assert_eq!(p.generations("default"), vec![g2]);
}

#[test]
fn a_corrupt_database_is_named_with_its_reset() {
    let p = loopback_project();
    p.build(&[]);
    std::fs::write(p.path("cache/nodes.db"), vec![b'x'; 10_000]).unwrap();
    let file = p.path("cache/nodes.db").display().to_string();
    for args in [
        &["status"][..],
        &["serve", "--listen", "127.0.0.1:1"][..],
        &["gc"][..],
    ] {
        let r = p.ddc(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&file) && r.stderr.contains("ddc status --reset-db"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = p.ddc(&["status", "--reset-db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("aside"), "{}", r.stdout);
    assert_eq!(p.ddc(&["status"]).code, 0);
    let s = Serve::start(&p);
    let g1 = p.current("default");
    assert_eq!(
        call(&s, NODE01, "POST", "/api/v1/report", &report01(&g1)).status,
        204
    );
}

#[test]
fn a_node_added_to_the_inventory_is_accepted_without_a_restart() {
    let p = loopback_project();
    p.build(&[]);
    let g1 = p.current("default");
    let s = Serve::start(&p);
    let body = report01(&g1)
        .replace("node01", "node03")
        .replace("52:54:00:12:34:56", "52:54:00:12:34:58");
    let from = Ipv4Addr::new(127, 0, 0, 13);
    assert_eq!(call(&s, from, "POST", "/api/v1/report", &body).status, 404);
    p.edit(
        "Ddcfile.toml",
        "\n[apply]\n",
        "\n[[nodes]]\nhostname = \"node03\"\nmac = \"52:54:00:12:34:58\"\nip = \"127.0.0.13\"\n\n[apply]\n",
    );
    let mut status = 0;
    for _ in 0..50 {
        status = call(&s, from, "POST", "/api/v1/report", &body).status;
        if status == 204 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, 204, "the new node was not picked up within 5 s");
}

/// Sends every node's report until it is acknowledged (204), at most `tries`
/// rounds; returns the nodes acknowledged.
async fn storm(addr: SocketAddr, n: usize, generation: Arc<String>, tries: usize) -> Vec<usize> {
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let g = generation.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..tries {
                let body = http::report(i, &g);
                match request(
                    addr,
                    http::node_ip(i),
                    "POST",
                    "/api/v1/report",
                    body.as_bytes(),
                )
                .await
                {
                    Ok(r) if r.status == 204 => return Some(i),
                    Ok(r) => assert!(r.status >= 500, "node {i}: {r:?}"),
                    Err(_) => {}
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            None
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        if let Some(i) = t.await.unwrap() {
            acked.push(i);
        }
    }
    acked
}

#[test]
fn a_thousand_concurrent_clients_are_all_acknowledged_and_stored() {
    let p = storm_project(1000);
    p.build(&["exports"]);
    let s = Serve::start(&p);
    let acked = rt().block_on(storm(s.addr, 1000, Arc::new("0001-aaaaaaaaaaaa".into()), 1));
    assert_eq!(
        acked.len(),
        1000,
        "every client acknowledged at the first try"
    );
    assert_eq!(
        count(
            &p,
            "SELECT count(*) FROM nodes WHERE generation = '0001-aaaaaaaaaaaa'"
        ),
        1000
    );
}

#[test]
fn serve_killed_mid_storm_loses_no_acknowledged_report() {
    let p = storm_project(1000);
    p.build(&["exports"]);
    let port = http::free_port();
    let s = Serve::at(&p, port);
    let addr = s.addr;
    let rt = rt();
    // The storm retries until acknowledged; serve dies under it, then comes back.
    let storm = rt.spawn(storm(addr, 1000, Arc::new("0002-bbbbbbbbbbbb".into()), 400));
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.kill();
    let stored_at_kill = count(&p, "SELECT count(*) FROM nodes");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = Serve::at(&p, port);
    let acked = rt.block_on(storm).unwrap();
    assert_eq!(acked.len(), 1000, "every node acknowledged in the end");
    let conn = db(&p);
    let mut stmt = conn
        .prepare("SELECT hostname FROM nodes WHERE generation = '0002-bbbbbbbbbbbb'")
        .unwrap();
    let stored: std::collections::HashSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for i in acked {
        assert!(
            stored.contains(&http::node_name(i)),
            "acknowledged report of node {i} lost"
        );
    }
    eprintln!("{stored_at_kill} reports were on disk when serve was killed");
    assert!(s.stop().success());
}

/// `ddc serve` runs without transparent huge pages (its memory: mimalloc's
/// per-thread heaps in 2 MiB pages more than doubled its peak), as the
/// kernel says of the running process.
#[test]
fn serve_runs_without_transparent_huge_pages() {
    let p = Project::new();
    p.build(&[]);
    let s = Serve::start(&p);
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap();
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        eprintln!("this kernel does not say THP_enabled in /proc/PID/status: skipped");
        return;
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    s.stop();
}

//! `ddc rollout` through the real binary, with real parts: a running `ddc
//! serve` on loopback that stores the nodes' reports, and one `ipmi_sim`
//! BMC per node reached by the real `ipmitool`. The test plays the nodes:
//! when a BMC's chassis gets a power-off (the first half of a cycle), the
//! node "boots" and POSTs its report to serve, from its own inventory IP,
//! with the generation and failed units the test decides (or no report at
//! all). Covered: two nodes moved one at a time, a failing canary that
//! stops the rollout (the other BMC never called) and is pinned back and
//! rebooted, `-n` calling no BMC, `--resume` after a SIGKILL mid-wait that
//! never cycles a node twice, and serve storing reports all along.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/ipmi.rs"]
mod ipmi;
#[path = "common/serve.rs"]
mod serve;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Project, Run};
use ipmi::{Sim, PASSWORD};
use serve::{loopback_project, rt, Serve};

const NODES: [(&str, &str, Ipv4Addr); 2] = [
    ("node01", "52:54:00:12:34:56", Ipv4Addr::new(127, 0, 0, 11)),
    ("node02", "52:54:00:12:34:57", Ipv4Addr::new(127, 0, 0, 12)),
];

/// The loopback project with its two nodes in nodes.csv, each with a BMC,
/// and a [power] table; built once (generation 1).
fn project(sims: &[Sim; 2]) -> Project {
    let p = loopback_project();
    let t = p.read("Ddcfile.toml");
    let head = t.split("[[nodes]]").next().unwrap().to_string();
    let tail = t.split_once("\n[apply]\n").unwrap().1;
    p.write(
        "Ddcfile.toml",
        &format!(
            "nodes_file = \"nodes.csv\"\n{head}[apply]\n{tail}\n[power]\nuser = \"admin\"\n\
             password_file = \"ipmi.pw\"\ncipher_suite = 3\ntimeout = 10\n"
        ),
    );
    let mut csv = String::from("hostname,mac,ip,bmc\n");
    for ((name, mac, ip), sim) in NODES.iter().zip(sims) {
        csv.push_str(&format!("{name},{mac},{ip},{}\n", sim.addr()));
    }
    p.write("nodes.csv", &csv);
    p.write("ipmi.pw", &format!("{PASSWORD}\n"));
    std::fs::set_permissions(p.path("ipmi.pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    p.build(&[]);
    p
}

/// A new generation of the image (generation 2 becomes current).
fn change_image(p: &Project) {
    p.edit("Ddcfile.toml", "\"nfs-common\"", "\"nfs-common\", \"htop\"");
    p.build(&[]);
}

/// POSTs node `i`'s report: running `generation`, booted `uptime` seconds ago.
fn report(s: &Serve, i: usize, generation: &str, uptime: f64, failed: &[String]) {
    report_to(s.addr, i, generation, uptime, failed);
}

/// Each report is of a boot of its own: its boot id differs from the last
/// (ddc rollout never counts a report of the boot before a reboot).
static BOOTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn report_to(addr: SocketAddr, i: usize, generation: &str, uptime: f64, failed: &[String]) {
    let (name, mac, ip) = NODES[i];
    let body = serde_json::json!({
        "hostname": name, "mac": mac, "image": "default", "generation": generation,
        "boot_id": format!("boot-{generation}-{}", BOOTS.fetch_add(1, Ordering::SeqCst)),
        "kernel": "6.1.0-28-amd64",
        "uptime": uptime, "failed_units": failed, "system": "running",
    })
    .to_string();
    // A loaded machine may drop a connection: a node's report unit retries.
    let rt = rt();
    let mut last = None;
    for _ in 0..5 {
        match rt.block_on(http::request(
            addr,
            ip,
            "POST",
            "/api/v1/report",
            body.as_bytes(),
        )) {
            Ok(r) if r.status == 204 => return,
            Ok(r) => panic!("serve refused a report: {r:?}"),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("serve took no report: {last:?}");
}

/// How many power-offs (cycles) a BMC's chassis got.
fn cycles(sim: &Sim) -> usize {
    sim.calls().matches("set power 0").count()
}

/// What a node does after its `n`th power cycle: report (generation,
/// failed units), or stay silent (None).
type Behaviour = dyn Fn(usize, usize) -> Option<(String, Vec<String>)> + Send + Sync;

/// The nodes, played: a thread that watches the BMCs and reports to serve
/// after each power cycle, as `behave` says.
struct Nodes {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Nodes {
    fn play(s: &Serve, sims: &Arc<[Sim; 2]>, behave: Box<Behaviour>) -> Nodes {
        let sims = sims.clone();
        Nodes::watch(s, Box::new(move |i| cycles(&sims[i])), behave)
    }

    /// Reports as `behave` says each time `reboots(i)`, node `i`'s count of
    /// reboots, grows.
    fn watch(
        s: &Serve,
        reboots: Box<dyn Fn(usize) -> usize + Send>,
        behave: Box<Behaviour>,
    ) -> Nodes {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, addr) = (stop.clone(), s.addr);
        // Counted now: the thread may start after the first reboot.
        let mut seen = [reboots(0), reboots(1)];
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                for (i, was) in seen.iter_mut().enumerate() {
                    let n = reboots(i);
                    if n > *was {
                        *was = n;
                        if let Some((g, units)) = behave(i, n) {
                            report_to(addr, i, &g, 0.0, &units);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(30));
            }
        });
        Nodes {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() && !std::thread::panicking() {
                panic!("the thread playing the nodes failed (see its panic above)");
            }
        }
    }
}

/// Everything a rollout test starts from: two BMCs, the project built
/// twice (generation 1 reported by both nodes, then generation 2 current),
/// and serve running.
struct Setup {
    sims: Arc<[Sim; 2]>,
    p: Project,
    serve: Serve,
    old: String,
    new: String,
}

fn setup() -> Setup {
    let sims = Arc::new([Sim::start(PASSWORD), Sim::start(PASSWORD)]);
    let p = project(&sims);
    let serve = Serve::start(&p);
    let old = p.current("default");
    for i in 0..2 {
        report(&serve, i, &old, 100.0, &[]);
    }
    change_image(&p);
    let new = p.current("default");
    assert_ne!(old, new);
    Setup {
        sims,
        p,
        serve,
        old,
        new,
    }
}

/// The nodes as a broken generation leaves them: node01 comes up on the
/// new generation with a failed unit, and fine on the old one again;
/// node02 fine on the new one.
fn broken_canary(s: &Setup) -> Nodes {
    let (old, new) = (s.old.clone(), s.new.clone());
    Nodes::play(
        &s.serve,
        &s.sims,
        Box::new(move |i, n| match (i, n) {
            (0, 1) => Some((new.clone(), vec!["broken.service".to_string()])),
            (0, _) => Some((old.clone(), vec![])),
            _ => Some((new.clone(), vec![])),
        }),
    )
}

fn rollout(p: &Project, args: &[&str]) -> Run {
    let mut all = vec!["rollout"];
    all.extend_from_slice(args);
    Run::of(p.command(&all).env("DDC_ROLLOUT_POLL_MS", "50"))
}

/// The `--json` output: every line an event object.
fn events(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            assert!(v["event"].is_string() && v["time"].is_string(), "{l}");
            v
        })
        .collect()
}

/// `EVENT NODE GENERATION` of each event with a node, in order.
fn timeline(ev: &[serde_json::Value]) -> Vec<String> {
    ev.iter()
        .filter(|v| v["event"] != "plan" && v["node"].is_string())
        .map(|v| {
            format!(
                "{} {} {}",
                v["event"].as_str().unwrap(),
                v["node"].as_str().unwrap(),
                v["generation"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn status_running(p: &Project) -> Vec<(String, String)> {
    let r = p.ddc(&["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (
                v["running"].as_str().unwrap_or("-").to_string(),
                v["target"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[test]
fn two_nodes_move_one_at_a_time() {
    let s = setup();
    let new = s.new.clone();
    let _nodes = Nodes::play(
        &s.serve,
        &s.sims,
        Box::new(move |_, _| Some((new.clone(), vec![]))),
    );
    let r = rollout(&s.p, &["--batch", "1", "--json", "--timeout", "60s"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let ev = events(&r.stdout);
    let plan: Vec<(String, u64)> = ev
        .iter()
        .filter(|v| v["event"] == "plan")
        .map(|v| {
            (
                v["node"].as_str().unwrap().to_string(),
                v["batch"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(plan, [("node01".into(), 0), ("node02".into(), 1)]);
    let (n, o) = (&s.new, &s.old);
    assert_eq!(
        timeline(&ev),
        [
            format!("reboot node01 {n}"),
            format!("up node01 {n}"),
            format!("reboot node02 {n}"),
            format!("up node02 {n}"),
        ]
    );
    let done = ev.last().unwrap();
    assert_eq!(
        (done["event"].as_str(), done["outcome"].as_str()),
        (Some("done"), Some("succeeded"))
    );
    assert_eq!((cycles(&s.sims[0]), cycles(&s.sims[1])), (1, 1));
    assert_eq!(
        status_running(&s.p),
        [(n.clone(), n.clone()), (n.clone(), n.clone())]
    );
    assert_ne!(n, o);

    // Done: nothing left to do, and serve still takes reports.
    let r = rollout(&s.p, &[]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "nothing to do: 2 nodes run their entry's generation\n"),
        "{}",
        r.stderr
    );
    report(&s.serve, 0, &s.new, 5.0, &[]);
    assert_eq!((cycles(&s.sims[0]), cycles(&s.sims[1])), (1, 1));
}

#[test]
fn a_failing_canary_stops_the_rollout_and_is_rolled_back() {
    let s = setup();
    let _nodes = broken_canary(&s);
    let r = rollout(
        &s.p,
        &[
            "--batch",
            "1",
            "--json",
            "--timeout",
            "60s",
            "--rollback-on-failure",
        ],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let ev = events(&r.stdout);
    let (n, o) = (&s.new, &s.old);
    assert_eq!(
        timeline(&ev),
        [
            format!("reboot node01 {n}"),
            format!("failed node01 {n}"),
            format!("rollback node01 {o}"),
            format!("reboot node01 {o}"),
            format!("up node01 {o}"),
        ]
    );
    let failed = ev.iter().find(|v| v["event"] == "failed").unwrap();
    assert_eq!(
        failed["reason"].as_str(),
        Some(format!("booted {n} with failed units: broken.service").as_str())
    );
    assert_eq!(failed["last_report"]["failed_units"][0], "broken.service");
    let done = ev.last().unwrap();
    assert_eq!(done["outcome"], "failed");
    assert_eq!(done["rolled_back"][0], "node01");
    assert_eq!(done["not_rebooted"][0], "node02");
    // node02's BMC was never asked to power anything.
    assert!(
        !s.sims[1].calls().contains("set power"),
        "{}",
        s.sims[1].calls()
    );
    assert_eq!(cycles(&s.sims[0]), 2);
    // node01 is pinned in the CSV, and its entry rebuilt for the old generation.
    let csv = s.p.read("nodes.csv");
    assert_eq!(
        csv,
        format!(
            "hostname,mac,ip,bmc,image\nnode01,52:54:00:12:34:56,127.0.0.11,{},default@{o}\n\
             node02,52:54:00:12:34:57,127.0.0.12,{}\n",
            s.sims[0].addr(),
            s.sims[1].addr()
        )
    );
    assert_eq!(status_running(&s.p)[0], (o.clone(), o.clone()));
    // The next rollout leaves node01 (pinned, on its pin) and moves node02.
    let r = rollout(&s.p, &["-n"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("batch 1 (canary): node02 onto"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_dry_run_prints_the_plan_and_calls_no_bmc() {
    let sims = Arc::new([Sim::start(PASSWORD), Sim::start(PASSWORD)]);
    let p = project(&sims);
    // No serve has ever run: no database, nothing known of the nodes.
    let r = rollout(&p, &["-n"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("no `ddc serve` has run"), "{}", r.stderr);
    let serve = Serve::start(&p);
    let old = p.current("default");
    report(&serve, 0, &old, 100.0, &[]);
    report(&serve, 1, &old, 100.0, &[]);
    change_image(&p);
    let new = p.current("default");
    let r = rollout(&p, &["-n", "--batch", "1"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "would reboot 2 nodes in 2 batches, each to report up within 10m, at most 0 failed a batch\n  \
             batch 1 (canary): node01 onto {new}\n  batch 2: node02 onto {new}\n\
             rebooted through the BMC (ipmitool chassis power cycle): node01, node02\n"
        )
    );
    let r = rollout(&p, &["-n", "--json", "--canary", "node02"]);
    let ev = events(&r.stdout);
    assert_eq!(ev[0]["node"], "node02");
    assert_eq!(
        (ev[0]["event"].as_str(), ev[0]["batch"].as_u64()),
        (Some("plan"), Some(0))
    );
    assert_eq!(ev[0]["generation"].as_str(), Some(new.as_str()));
    assert_eq!(ev[0]["method"], "bmc");
    for s in sims.iter() {
        assert!(!s.calls().contains("set power"), "{}", s.calls());
    }
    // Not a rollout started: a real one may begin.
    let r = rollout(&p, &["--abandon"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no unfinished rollout"), "{}", r.stderr);
}

#[test]
fn resume_after_a_kill_mid_wait_never_cycles_a_node_again() {
    let s = setup();
    let new = s.new.clone();
    let quiet = Arc::new(Mutex::new(true));
    let q = quiet.clone();
    // node01 stays silent after its first cycle while the rollout waits.
    let _nodes = Nodes::play(
        &s.serve,
        &s.sims,
        Box::new(move |i, _| (i != 0 || !*q.lock().unwrap()).then(|| (new.clone(), vec![]))),
    );
    // node01's BMC holds the power request: ddc is killed while ipmitool
    // still waits for its answer, "rebooting" recorded, the cycle done.
    s.sims[0].slow(5);
    let mut child =
        s.p.command(&["rollout", "--batch", "1", "--json", "--timeout", "60s"])
            .env("DDC_ROLLOUT_POLL_MS", "50")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while cycles(&s.sims[0]) == 0 {
        assert!(Instant::now() < end, "node01 was not cycled");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let db = rusqlite::Connection::open(s.p.path("cache/nodes.db")).unwrap();
    let state: String = db
        .query_row(
            "SELECT state FROM rollout_nodes WHERE hostname = 'node01'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "rebooting");
    std::fs::remove_file(s.sims[0].dir.path().join("slow")).unwrap();

    // A new rollout is refused while this one is unfinished.
    let r = rollout(&s.p, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("`ddc rollout --resume` continues it"),
        "{}",
        r.stderr
    );

    // A build since moves the entries on: resuming would reboot nodes into
    // a generation the rollout does not wait for.
    s.p.edit("Ddcfile.toml", "\"htop\"", "\"htop\", \"vim\"");
    s.p.build(&[]);
    let r = rollout(&s.p, &["--resume"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "rollout 1 moves nodes to generations their entries no longer point at (a build, \
             `ddc rollback` or `ddc node set` since?): node01 ({g3} of image default, not {n}), node02 ({g3} of image default, not {n})",
            g3 = s.p.current("default"),
            n = s.new
        )),
        "{}",
        r.stderr
    );
    let r = s.p.ddc(&["rollback", "default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s.p.current("default"), s.new);

    // node01 comes up (its reboot went through before the kill).
    *quiet.lock().unwrap() = false;
    report(&s.serve, 0, &s.new, 0.0, &[]);
    let r = rollout(&s.p, &["--resume", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let n = &s.new;
    assert_eq!(
        timeline(&events(&r.stdout)),
        [
            format!("up node01 {n}"),
            format!("reboot node02 {n}"),
            format!("up node02 {n}"),
        ]
    );
    assert_eq!((cycles(&s.sims[0]), cycles(&s.sims[1])), (1, 1));
    let r = rollout(&s.p, &["--resume"]);
    assert_eq!(r.code, 2);
}

#[test]
fn a_failed_canary_is_named_with_its_last_report() {
    let s = setup();
    let old = s.old.clone();
    // node01 comes back on the old generation: its entry was not followed.
    let _nodes = Nodes::play(
        &s.serve,
        &s.sims,
        Box::new(move |_, _| Some((old.clone(), vec![]))),
    );
    let r = rollout(&s.p, &["--timeout", "30s"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let (n, o) = (&s.new, &s.old);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "rollout 1: rebooting 2 nodes in 2 batches, each to report up within 30s, at most 0 failed a batch",
            &format!("  batch 1 (canary): node01 onto {n}"),
            &format!("  batch 2: node02 onto {n}"),
            "rebooted through the BMC (ipmitool chassis power cycle): node01, node02",
        ]
    );
    assert_eq!(
        lines[4],
        "batch 1/2: rebooted node01; waiting for them to report up (at most 30s)"
    );
    let prefix = format!(
        "node01: FAILED: booted {o} of image default, not {n} of image default; last report: \
         state up, running {o} of image default, system running, last seen "
    );
    assert!(lines[5].starts_with(&prefix), "{}", lines[5]);
    assert_eq!(
        lines[6..],
        [
            "rollout 1 stopped: batch 1 had more than 0 failed: node01",
            "never rebooted: node02"
        ]
    );
    assert!(!s.sims[1].calls().contains("set power"));
    // Serve went on storing reports all along.
    let mut serve = s.serve;
    assert!(serve.child.try_wait().unwrap().is_none(), "serve died");
    report(&serve, 1, &s.old, 200.0, &[]);
    assert!(!serve.log(&s.p).contains("ERROR"), "{}", serve.log(&s.p));
}

#[test]
fn a_node_that_never_reports_fails_at_the_timeout_and_is_said_to_be_waited_for() {
    let s = setup();
    // node01 is cycled but never reports again.
    let _nodes = Nodes::play(&s.serve, &s.sims, Box::new(|_, _| None));
    let t = Instant::now();
    // Polls of 50 ms: the waiting line comes every 30 polls (1.5 s).
    let r = rollout(&s.p, &["--timeout", "4s"]);
    assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let waiting: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("batch 1/2: 0 of 1 up; waiting for node01 (at most "))
        .collect();
    assert!(!waiting.is_empty(), "{}", r.stdout);
    let failed = r
        .stdout
        .lines()
        .find(|l| l.starts_with("node01: FAILED"))
        .unwrap();
    assert!(
        failed.starts_with(&format!(
            "node01: FAILED: did not report up on {} within 4s; last report: state up, running {} of image default, system running, last seen ",
            s.new, s.old
        )),
        "{failed}"
    );
    assert_eq!((cycles(&s.sims[0]), cycles(&s.sims[1])), (1, 0));
}

#[test]
fn ctrl_c_stops_the_reboot_in_flight_and_leaves_the_rollout_resumable() {
    let s = setup();
    let new = s.new.clone();
    let _nodes = Nodes::play(
        &s.serve,
        &s.sims,
        Box::new(move |_, _| Some((new.clone(), vec![]))),
    );
    s.sims[0].slow(30);
    let child =
        s.p.command(&["rollout", "--batch", "1"])
            .env("DDC_ROLLOUT_POLL_MS", "50")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while cycles(&s.sims[0]) == 0 {
        assert!(Instant::now() < end, "node01 was not cycled");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second rollout meanwhile is refused by the lock.
    let r = rollout(&s.p, &["--resume"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("another ddc rollout is running"),
        "{}",
        r.stderr
    );
    let port = format!("-p {} ", s.sims[0].port);
    assert!(!ipmitools(&port).is_empty(), "no ipmitool running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("interrupted: rollout 1 is recorded; `ddc rollout --resume` continues it"),
        "{stdout}"
    );
    assert!(
        ipmitools(&port).is_empty(),
        "left running: {:?}",
        ipmitools(&port)
    );
    std::fs::remove_file(s.sims[0].dir.path().join("slow")).unwrap();
    let r = rollout(&s.p, &["--resume", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let n = &s.new;
    // node01 never reported: its reboot may have happened, so it is only
    // waited for; the test's node reports once it sees the cycle.
    assert_eq!(cycles(&s.sims[0]), 1);
    assert_eq!(
        timeline(&events(&r.stdout))[1..],
        [format!("reboot node02 {n}"), format!("up node02 {n}")]
    );
}

/// ipmitool processes whose command line holds `needle`.
fn ipmitools(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains("ipmitool") && c.contains(needle) {
                found.push(c);
            }
        }
    }
    found
}

#[test]
fn a_plan_that_cannot_run_is_refused_before_any_reboot() {
    let p = loopback_project();
    let serve = Serve::start(&p);
    p.build(&[]);
    let old = p.current("default");
    // Only node01 has reported: node02 is skipped.
    report(&serve, 0, &old, 100.0, &[]);
    change_image(&p);
    let r = rollout(&p, &["-n"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert_eq!(
        r.stderr,
        "error: cannot reboot node01: no bmc, and their image sets no ssh_authorized_keys; give \
         each node bmc = \"ADDR[:PORT]\" (in its [[nodes]] table or the nodes_file's bmc column) \
         with a [power] table, or set ssh_authorized_keys in its [images.IMG] table (ddc reboots \
         it with ssh root@IP systemctl reboot)\n"
    );
    p.edit(
        "Ddcfile.toml",
        "cmdline  = \"console=ttyS0\"",
        "cmdline  = \"console=ttyS0\"\nssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ test\"]",
    );
    p.build(&[]);
    let r = rollout(&p, &["-n", "--rollback-on-failure"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert_eq!(
        r.stderr,
        "error: --rollback-on-failure pins a failed node back in the nodes_file CSV, but these \
         are defined in [[nodes]] tables of the Ddcfile: node01 (Ddcfile.toml:24); move them to \
         the CSV (`ddc node add`), or roll out without --rollback-on-failure\n"
    );
    let r = rollout(&p, &["-n", "--canary", "node02"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            2,
            "error: --canary node02: node02 is not among the nodes to reboot: it is skipped (never seen)\n"
        )
    );
    let r = rollout(&p, &["-n"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.ends_with(
            "rebooted over ssh (ssh root@IP systemctl reboot): node01\n\
             skipped, never seen: no report yet; they are not rebooted: node02\n"
        ),
        "{}",
        r.stdout
    );
}

/// A real sshd on 127.0.0.11:22 and 127.0.0.12:22 standing in for the two
/// nodes: their host key is the one ddc keeps for the image, root logs in
/// with a key held by an ssh-agent of the test's own, and whatever command
/// is asked, sshd runs only a script that logs it (never `systemctl reboot`
/// on this machine) with the address it was asked on.
struct Sshd {
    sshd: std::process::Child,
    agent: std::process::Child,
    dir: tempfile::TempDir,
    pub_key: String,
}

impl Sshd {
    fn start(p: &Project) -> Sshd {
        let sshd = common::netns::require("sshd", "openssh-server");
        common::netns::require("ssh", "openssh-client");
        let dir = tempfile::Builder::new()
            .prefix("ddc-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let keygen = |file: &Path| {
            let ok = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(file)
                .status()
                .unwrap();
            assert!(ok.success());
        };
        let host_keys = p.path("cache/ssh-host-keys/default");
        std::fs::create_dir_all(&host_keys).unwrap();
        std::fs::set_permissions(&host_keys, std::fs::Permissions::from_mode(0o700)).unwrap();
        keygen(&host_keys.join("ssh_host_ed25519_key"));
        // sshd's own copy: the test changes the kept one.
        std::fs::copy(host_keys.join("ssh_host_ed25519_key"), d.join("host_key")).unwrap();
        std::fs::set_permissions(d.join("host_key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        keygen(&d.join("root_key"));
        let pub_key = std::fs::read_to_string(d.join("root_key.pub")).unwrap();
        std::fs::write(d.join("authorized_keys"), &pub_key).unwrap();
        std::fs::write(
            d.join("node.sh"),
            format!(
                "#!/bin/sh\nset -- $SSH_CONNECTION\necho \"$3 $SSH_ORIGINAL_COMMAND\" >> {}/calls\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(d.join("node.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.11:22\nListenAddress 127.0.0.12:22\nHostKey {}\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nForceCommand {d}/node.sh\nPidFile {d}/sshd.pid\n",
                d.join("host_key").display(),
                d = d.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = std::process::Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let sock = d.join("agent.sock");
        let agent = std::process::Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut s = Sshd {
            sshd,
            agent,
            dir,
            pub_key,
        };
        let end = Instant::now() + Duration::from_secs(10);
        while !sock.exists() || !http::wait_listening("127.0.0.12:22".parse().unwrap()) {
            assert!(
                Instant::now() < end,
                "sshd or ssh-agent did not start: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Listening, and this sshd: not another one already on port 22
        // (which would make it exit, unable to bind).
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            s.sshd.try_wait().unwrap().is_none(),
            "the test's sshd exited (is port 22 of 127.0.0.11 taken?): {}",
            s.log()
        );
        let added = std::process::Command::new("ssh-add")
            .arg(s.dir.path().join("root_key"))
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .unwrap();
        assert!(added.status.success(), "{added:?}");
        s
    }

    fn sock(&self) -> std::path::PathBuf {
        self.dir.path().join("agent.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The commands asked, `ADDRESS COMMAND` a line.
    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        for c in [&mut self.sshd, &mut self.agent] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn nodes_without_a_bmc_are_rebooted_over_ssh_with_their_host_key_checked() {
    common::require_root("sshd listens on port 22 of 127.0.0.11 and 127.0.0.12");
    let p = loopback_project();
    p.build(&[]);
    let ssh = Sshd::start(&p);
    p.edit(
        "Ddcfile.toml",
        "cmdline  = \"console=ttyS0\"",
        &format!(
            "cmdline  = \"console=ttyS0\"\nssh_authorized_keys = [\"{}\"]",
            ssh.pub_key.trim()
        ),
    );
    p.build(&[]);
    let serve = Serve::start(&p);
    let old = p.current("default");
    report(&serve, 0, &old, 100.0, &[]);
    report(&serve, 1, &old, 100.0, &[]);
    change_image(&p);
    let new = p.current("default");
    let calls_of = |d: std::path::PathBuf| {
        move |i: usize| {
            let ip = ["127.0.0.11 ", "127.0.0.12 "][i];
            std::fs::read_to_string(d.join("calls"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with(ip))
                .count()
        }
    };
    let g = new.clone();
    let nodes = Nodes::watch(
        &serve,
        Box::new(calls_of(ssh.dir.path().to_path_buf())),
        Box::new(move |_, _| Some((g.clone(), vec![]))),
    );
    let run = |args: &[&str]| {
        let mut all = vec!["rollout"];
        all.extend_from_slice(args);
        Run::of(
            p.command(&all)
                .env("DDC_ROLLOUT_POLL_MS", "50")
                .env("SSH_AUTH_SOCK", ssh.sock()),
        )
    };
    let r = run(&["--json", "--timeout", "30s"]);
    assert_eq!(r.code, 0, "{}\n{}\n{}", r.stdout, r.stderr, ssh.log());
    assert_eq!(
        timeline(&events(&r.stdout)),
        [
            format!("reboot node01 {new}"),
            format!("up node01 {new}"),
            format!("reboot node02 {new}"),
            format!("up node02 {new}"),
        ]
    );
    assert_eq!(
        ssh.calls(),
        "127.0.0.11 systemctl reboot\n127.0.0.12 systemctl reboot\n"
    );
    drop(nodes);

    // The node shows another host key than the image's: ssh refuses it,
    // and the node fails without being rebooted.
    p.edit("Ddcfile.toml", "\"htop\"", "\"htop\", \"vim\"");
    p.build(&[]);
    let key = p.path("cache/ssh-host-keys/default/ssh_host_ed25519_key");
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(key.with_extension("pub")).unwrap();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let r = run(&["--timeout", "30s"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("node01: FAILED: could not be rebooted: ssh root@127.0.0.11 systemctl reboot failed (exit status: 255): Host key verification failed."),
        "{}",
        r.stdout
    );
    assert_eq!(ssh.calls().lines().count(), 2);
}

#[test]
fn an_entry_moved_mid_rollout_stops_before_the_next_batch() {
    let s = setup();
    let new = s.new.clone();
    // While the canary boots, someone pins node02 back to the old
    // generation (`ddc node set`): the next batch would boot what no canary
    // tested.
    let pin = Mutex::new(Some(s.p.command(&[
        "node",
        "set",
        "node02",
        &format!("image=default@{}", s.old),
    ])));
    let _nodes = Nodes::play(
        &s.serve,
        &s.sims,
        Box::new(move |_, _| {
            if let Some(mut c) = pin.lock().unwrap().take() {
                let out = c.output().unwrap();
                assert!(out.status.success(), "{out:?}");
            }
            Some((new.clone(), vec![]))
        }),
    );
    let r = rollout(&s.p, &["--batch", "1", "--timeout", "60s"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("batch 1/2: up: node01"), "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "node02 ({} of image default, not {})",
            s.old, s.new
        )) && r.stderr.contains("batch 2/2 was not rebooted")
            && r.stderr.contains("ddc rollout --abandon"),
        "{}",
        r.stderr
    );
    assert_eq!((cycles(&s.sims[0]), cycles(&s.sims[1])), (1, 0));
    // Not resumable: --resume refuses alike, nothing rebooted.
    let r = rollout(&s.p, &["--resume"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("node02 ("), "{}", r.stderr);
    assert_eq!((cycles(&s.sims[0]), cycles(&s.sims[1])), (1, 0));
}

#[test]
fn a_rollback_interrupted_after_its_pin_resumes() {
    let s = setup();
    let _nodes = broken_canary(&s);
    let args = ["--timeout", "60s", "--rollback-on-failure"];
    let r = rollout(&s.p, &args);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(cycles(&s.sims[0]), 2);
    // Back to where it was after the pin was written to the CSV, before its
    // build finished (interrupted): stage pinning, node01 failed forward.
    let db = rusqlite::Connection::open(s.p.path("cache/nodes.db")).unwrap();
    db.execute_batch(
        "UPDATE rollouts SET stage = 'pinning', finished = NULL; \
         UPDATE rollout_nodes SET phase = 'forward', state = 'failed' WHERE hostname = 'node01';",
    )
    .unwrap();
    drop(db);
    let r = rollout(&s.p, &["--resume", "--json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let o = &s.old;
    assert_eq!(
        timeline(&events(&r.stdout)),
        [
            format!("rollback node01 {o}"),
            format!("reboot node01 {o}"),
            format!("up node01 {o}"),
        ]
    );
    assert_eq!((cycles(&s.sims[0]), cycles(&s.sims[1])), (3, 0));
}

#[test]
fn gc_keeps_what_an_unfinished_rollout_pins_back_to_and_a_rollback_needs_it_published() {
    let s = setup();
    let new = s.new.clone();
    // The canary comes up broken; the rollout stops. Made unfinished again,
    // as if interrupted before its rollback.
    let _nodes = Nodes::play(
        &s.serve,
        &s.sims,
        Box::new(move |_, _| Some((new.clone(), vec!["broken.service".to_string()]))),
    );
    let r = rollout(&s.p, &["--timeout", "60s"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let db = rusqlite::Connection::open(s.p.path("cache/nodes.db")).unwrap();
    db.execute_batch("UPDATE rollouts SET finished = NULL, stage = 'forward';")
        .unwrap();
    drop(db);
    // Even --force (node02 runs it) keeps the generation the rollout may
    // pin its nodes back to, saying why.
    let o = &s.old;
    let r = s.p.ddc(&["gc", "--keep", "0", "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "keep   default/{o} (rollout back-out: an unfinished rollout may pin node01, node02 back to it)"
        )),
        "{}",
        r.stdout
    );
    assert!(s.p.generations("default").contains(o));
    // Abandoned, the generation goes; a rollout that may pin node02 back to
    // it is refused before any reboot, naming node and generation.
    assert_eq!(rollout(&s.p, &["--abandon"]).code, 0);
    let r = s.p.ddc(&["gc", "--keep", "0", "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!s.p.generations("default").contains(o));
    let r = rollout(&s.p, &["--rollback-on-failure", "-n"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "no longer published: node02 (default@{o}: not published (deleted by ddc gc?))"
        )),
        "{}",
        r.stderr
    );
    assert_eq!((cycles(&s.sims[0]), cycles(&s.sims[1])), (1, 0));
}

#[test]
fn without_a_running_serve_no_node_is_rebooted() {
    // A stopped serve would hear no report: the canary would be rebooted
    // only to time out. Nothing is rebooted; once serve runs again, the
    // rollout resumes and moves both nodes.
    let s = setup();
    let Setup {
        sims,
        p,
        serve,
        new,
        ..
    } = s;
    assert!(serve.stop().success());
    let r = rollout(&p, &["--batch", "1", "--timeout", "60s"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no `ddc serve` runs for this cluster")
            && r.stderr.contains("batch 1/2 was not rebooted")
            && r.stderr.contains("ddc rollout --resume"),
        "{}",
        r.stderr
    );
    for s in sims.iter() {
        assert!(!s.calls().contains("set power"), "{}", s.calls());
    }
    let serve = Serve::start(&p);
    let n = new.clone();
    let _nodes = Nodes::play(
        &serve,
        &sims,
        Box::new(move |_, _| Some((n.clone(), vec![]))),
    );
    let r = rollout(&p, &["--resume", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!((cycles(&sims[0]), cycles(&sims[1])), (1, 1));
    assert_eq!(
        status_running(&p),
        [(new.clone(), new.clone()), (new.clone(), new.clone())]
    );
}

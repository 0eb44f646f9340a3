//! `ddc serve` under load, against the targets of issue 13, on loopback:
//! 10,000 simulated nodes (source addresses from 127.0.0.0/8, each its
//! inventory IP, so the report check passes), each fetching its iPXE script
//! and then posting a report.
//!
//! - sustained: the 20,000 requests at a fixed concurrency: requests/s
//!   (target ≥ 5,000) and p99 latency (≤ 50 ms);
//! - boot storm: all 10,000 scripts then reports at once (1,000 in flight):
//!   the scripts within 10 s, and no report lost (rows counted in the
//!   database against the acknowledgements);
//! - the same storm of script fetches served by nginx (nginx-light, started
//!   here on a loopback port with a config of its own) from the same files,
//!   and the ratio;
//! - serve's peak RSS (VmHWM), target ≤ 150 MiB.
//!
//! Exits 1 when a figure misses its target by more than `DDC_BENCH_MARGIN`
//! (default 1; CI runs it with 3), or when a report is lost (never allowed).
//! Every loop is bounded in count and time. NODES overrides 10,000.

#[path = "../tests/common/http.rs"]
mod http;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DDCFILE: &str = r#"nodes_file = "nodes.csv"

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
packages = ["linux-image-amd64"]

[apply]
dnsmasq = "off"
dhcpd   = "off"
nfs     = "off"
rsyslog = "off"
"#;

/// Requests in flight in the sustained phase, and in the storms.
const SUSTAINED: usize = 64;
const STORM: usize = 1000;
/// No phase runs longer than this.
const PHASE_LIMIT: Duration = Duration::from_secs(120);

/// The project: the Ddcfile, the inventory, and one static iPXE script per
/// node as `ddc build` writes them (`ipxe/<mac>.ipxe`).
fn project(n: usize) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ddc-serve-bench-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    std::fs::write(d.join("Ddcfile.toml"), DDCFILE).unwrap();
    std::fs::write(d.join("nodes.csv"), http::inventory_csv(n)).unwrap();
    let ipxe = d.join("out/tftp/ipxe");
    std::fs::create_dir_all(&ipxe).unwrap();
    std::fs::create_dir_all(d.join("out/nfsroot")).unwrap();
    for i in 0..n {
        let mac = http::node_mac(i).replace(':', "-");
        let script = format!(
            "#!ipxe\nkernel http://127.0.0.1/default/0001-aaaaaaaaaaaa/vmlinuz initrd=initrd.img \
             boot=nfs nfsroot=127.0.0.1:/srv/default/0001-aaaaaaaaaaaa ip=dhcp ro\n\
             initrd http://127.0.0.1/default/0001-aaaaaaaaaaaa/initrd.img\nboot\n# {}\n",
            http::node_name(i)
        );
        std::fs::write(ipxe.join(format!("{mac}.ipxe")), script).unwrap();
    }
    dir
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn start_serve(dir: &Path, addr: SocketAddr) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(["serve", "--listen", &addr.to_string()])
        .current_dir(dir)
        .env("DDC_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(http::wait_listening(addr), "ddc serve did not start");
    Proc(child)
}

fn start_nginx(dir: &Path, addr: SocketAddr) -> Option<Proc> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let conf = format!(
        "daemon off;\nuser root;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/nginx.err;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/nginx-tmp;\n\
         proxy_temp_path {d}/nginx-tmp;\n fastcgi_temp_path {d}/nginx-tmp;\n\
         uwsgi_temp_path {d}/nginx-tmp;\n scgi_temp_path {d}/nginx-tmp;\n\
         server {{ listen {addr} backlog=4096; root {d}/out/tftp; }}\n}}\n",
        d = dir.display()
    );
    // `user root`: the workers read the files as the bench wrote them, in
    // a folder only its owner may enter (mktemp's 0700 under CI's TMPDIR);
    // as another user nginx ignores the directive.
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx)
        .args(["-p", &dir.display().to_string(), "-c"])
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    http::wait_listening(addr).then_some(Proc(child))
}

/// What one phase measured.
#[derive(Default)]
struct Phase {
    /// Latency of each request that got its expected answer, in ms.
    latencies: Vec<f64>,
    failed: usize,
    reports_acked: usize,
    /// When the last script fetch ended, from the start.
    scripts_done: Duration,
    elapsed: Duration,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies.clone();
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    }
}

/// `n` nodes, `inflight` at a time: each fetches its script, then (with a
/// `generation`) posts its report once.
async fn run(addr: SocketAddr, n: usize, inflight: usize, generation: Option<&str>) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let generation = generation.map(str::to_string);
    let mut workers = Vec::new();
    for _ in 0..inflight.min(n) {
        let (next, generation) = (next.clone(), generation.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Phase::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || start.elapsed() > PHASE_LIMIT {
                    return out;
                }
                let from: Ipv4Addr = http::node_ip(i);
                let path = format!("/ipxe/{}.ipxe", http::node_mac(i).replace(':', "-"));
                let t = Instant::now();
                match http::request(addr, from, "GET", &path, b"").await {
                    Ok(r) if r.status == 200 => out.latencies.push(ms(t)),
                    _ => out.failed += 1,
                }
                out.scripts_done = out.scripts_done.max(start.elapsed());
                let Some(g) = &generation else { continue };
                let body = http::report(i, g);
                let t = Instant::now();
                match http::request(addr, from, "POST", "/api/v1/report", body.as_bytes()).await {
                    Ok(r) if r.status == 204 => {
                        out.latencies.push(ms(t));
                        out.reports_acked += 1;
                    }
                    _ => out.failed += 1,
                }
            }
        }));
    }
    let mut all = Phase::default();
    for w in workers {
        let p = w.await.unwrap();
        all.latencies.extend(p.latencies);
        all.failed += p.failed;
        all.reports_acked += p.reports_acked;
        all.scripts_done = all.scripts_done.max(p.scripts_done);
    }
    all.elapsed = start.elapsed();
    all
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn vm_hwm_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn rows_with(dir: &Path, generation: &str) -> i64 {
    let c = rusqlite::Connection::open(dir.join("cache/nodes.db")).unwrap();
    c.query_row(
        "SELECT count(*) FROM nodes WHERE generation = ?1",
        [generation],
        |r| r.get(0),
    )
    .unwrap()
}

fn margin() -> f64 {
    match std::env::var("DDC_BENCH_MARGIN") {
        Ok(m) => m
            .parse()
            .ok()
            .filter(|m: &f64| *m > 0.0)
            .unwrap_or_else(|| {
                eprintln!("DDC_BENCH_MARGIN={m:?}: expected a positive number");
                std::process::exit(2)
            }),
        Err(_) => 1.0,
    }
}

/// What the phases measured, for [`judge`].
struct Results {
    sustained: Phase,
    storm: Phase,
    stored: i64,
    rss: f64,
    ddc_scripts: Phase,
    nginx: Option<Phase>,
}

/// Prints the figures against their targets; returns those over.
fn judge(r: &Results, n: usize, margin: f64) -> Vec<String> {
    let Results {
        sustained,
        storm,
        stored,
        rss,
        ddc_scripts,
        nginx,
    } = r;
    let (stored, rss) = (*stored, *rss);
    let mut over = Vec::new();
    let mut check = |name: &str, value: f64, target: f64, higher_is_better: bool, unit: &str| {
        let ok = if higher_is_better {
            value >= target / margin
        } else {
            value <= target * margin
        };
        let cmp = if higher_is_better { "≥" } else { "≤" };
        println!(
            "  {name:<44} {value:>10.1} {unit:<6} (target {cmp} {target}){}",
            if ok { "" } else { "  OVER" }
        );
        if !ok {
            over.push(name.to_string());
        }
    };
    println!(
        "sustained ({SUSTAINED} in flight, {} requests, {} failed):",
        sustained.latencies.len() + sustained.failed,
        sustained.failed
    );
    check("requests/s", sustained.per_second(), 5000.0, true, "req/s");
    check("p99 latency", sustained.percentile(0.99), 50.0, false, "ms");
    println!(
        "  p50 latency {:.1} ms, max {:.1} ms",
        sustained.percentile(0.5),
        sustained.percentile(1.0)
    );
    println!(
        "boot storm ({STORM} in flight, {} failed, {:.1} req/s):",
        storm.failed,
        storm.per_second()
    );
    check(
        "all scripts served in",
        storm.scripts_done.as_secs_f64(),
        10.0,
        false,
        "s",
    );
    println!(
        "  storm p99 latency {:.1} ms (queueing behind {STORM} in flight; no target)",
        storm.percentile(0.99)
    );
    println!(
        "  reports acknowledged {}, rows in the database {stored}",
        storm.reports_acked
    );
    let lost = (stored as usize) < storm.reports_acked || storm.reports_acked < n;
    check("peak RSS of ddc serve (VmHWM)", rss, 150.0, false, "MiB");
    let t_ddc = ddc_scripts.scripts_done.as_secs_f64();
    println!(
        "script storm only ({STORM} in flight): ddc serve {t_ddc:.2} s ({:.0} req/s, p99 {:.1} ms, {} failed)",
        ddc_scripts.per_second(),
        ddc_scripts.percentile(0.99),
        ddc_scripts.failed
    );
    match nginx {
        Some(ng) => {
            let t_ng = ng.scripts_done.as_secs_f64();
            println!(
                "                                 nginx     {t_ng:.2} s ({:.0} req/s, p99 {:.1} ms, {} failed); ddc serve / nginx = {:.2}",
                ng.per_second(),
                ng.percentile(0.99),
                ng.failed,
                t_ddc / t_ng
            );
            if ng.failed > 0 {
                // An anchor that failed compares nothing: say so and fail.
                println!(
                    "  the nginx anchor failed {} requests: see nginx.err in the bench folder",
                    ng.failed
                );
                over.push("the nginx anchor answered every request".into());
            }
        }
        None => println!("  nginx not found (apt-get install nginx-light): no comparison"),
    }
    if lost {
        println!(
            "LOST: {} reports acknowledged, {stored} stored, of {n}",
            storm.reports_acked
        );
        over.push("no report lost".into());
    }
    over
}

fn main() {
    let n: usize = std::env::var("NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let margin = margin();
    let dir = project(n);
    let d = dir.path();
    let addr: SocketAddr = (Ipv4Addr::LOCALHOST, http::free_port()).into();
    let serve = start_serve(d, addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "ddc serve, {n} simulated nodes on loopback, database in {}",
        d.display()
    );
    let sustained = rt.block_on(run(addr, n, SUSTAINED, Some("0001-aaaaaaaaaaaa")));
    let storm = rt.block_on(run(addr, n, STORM, Some("0002-bbbbbbbbbbbb")));
    let rss = vm_hwm_mib(serve.0.id());
    drop(serve);
    let stored = rows_with(d, "0002-bbbbbbbbbbbb");
    let nginx_addr: SocketAddr = (Ipv4Addr::LOCALHOST, http::free_port()).into();
    let ddc_scripts = rt.block_on(async {
        let serve = start_serve(d, addr);
        let p = run(addr, n, STORM, None).await;
        drop(serve);
        p
    });
    let nginx = start_nginx(d, nginx_addr).map(|proc| {
        let p = rt.block_on(run(nginx_addr, n, STORM, None));
        drop(proc);
        p
    });
    let r = Results {
        sustained,
        storm,
        stored,
        rss,
        ddc_scripts,
        nginx,
    };
    let over = judge(&r, n, margin);
    println!("figures checked against the targets × DDC_BENCH_MARGIN = {margin}");
    if over.is_empty() {
        println!("all within their targets");
    } else {
        println!("over target: {}", over.join(", "));
        std::process::exit(1);
    }
}

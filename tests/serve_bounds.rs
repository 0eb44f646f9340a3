//! What a stranger on the cluster network can do to `ddc serve`, bounded:
//! slow headers dropped after the header time-out, at most 64 connections
//! from one IP while nodes still boot, SIGTERM that exits within its grace
//! with slow clients connected, a script fetch from a non-node IP not
//! recorded, and gc ignoring the report of a node removed from the
//! inventory. Real binary on loopback (127.0.0.0/8 is the cluster network).

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/serve.rs"]
mod serve;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use serve::{loopback_project, rt, Serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NODE02: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 66);

/// A connection from `from` that sent `sent` and nothing more.
async fn slow(server: SocketAddr, from: Ipv4Addr, sent: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(from, 0)))
        .unwrap();
    let mut s = socket.connect(server).await.unwrap();
    s.write_all(sent.as_bytes()).await.unwrap();
    s
}

/// How long until the server closes `s` (reads to the end), at most `limit`.
async fn closed_after(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut sink = Vec::new();
    tokio::time::timeout(limit, s.read_to_end(&mut sink))
        .await
        .ok()
        .map(|_| t.elapsed())
}

const HALF: &str = "GET /ipxe/52-54-00-12-34-57.ipxe HTTP/1.1\r\nHost: x\r\n";

#[test]
fn slow_headers_are_dropped_and_one_ip_cannot_starve_the_nodes() {
    let p = loopback_project();
    p.build(&[]);
    p.write("out/tftp/ipxe/52-54-00-12-34-57.ipxe", "#!ipxe\n");
    let s = Serve::start(&p);
    let addr = s.addr;
    rt().block_on(async move {
        let from = Ipv4Addr::new(127, 0, 0, 77);
        let mut conns = Vec::new();
        for _ in 0..200 {
            conns.push(slow(addr, from, HALF).await);
        }
        // A node still boots, at once, while 200 slow connections are open.
        let t = Instant::now();
        let r = http::request(addr, NODE02, "GET", "/ipxe/52-54-00-12-34-57.ipxe", b"")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let waits: Vec<_> = conns
            .into_iter()
            .map(|c| tokio::spawn(closed_after(c, Duration::from_secs(20))))
            .collect();
        let mut at_once = 0;
        for w in waits {
            let took = w
                .await
                .unwrap()
                .expect("a slow header kept its connection 20 s");
            assert!(took < Duration::from_secs(13), "closed after {took:?}");
            if took < Duration::from_secs(2) {
                at_once += 1;
            }
        }
        // 64 were served (then timed out); the rest closed at once.
        assert!(at_once >= 200 - 64, "{at_once} closed at once");
        assert!(at_once < 200, "none was let in");
    });
    let log = s.log(&p);
    let lines = log
        .matches("connections from this IP are open already")
        .count();
    assert_eq!(lines, 1, "logged once a minute: {log}");
}

#[test]
fn sigterm_with_slow_clients_connected_exits_within_the_grace() {
    let p = loopback_project();
    p.build(&[]);
    let mut s = Serve::start(&p);
    let addr = s.addr;
    let rt = rt();
    let half = rt.block_on(slow(addr, STRANGER, HALF));
    // A report whose body comes one byte a second: never idle, never done.
    let head = "POST /api/v1/report HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
    let mut body = rt.block_on(slow(addr, STRANGER, head));
    let trickle = rt.spawn(async move {
        for _ in 0..60 {
            if body.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = s.child.wait().unwrap();
    let took = t.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(12),
        "exited {took:?} after SIGTERM"
    );
    trickle.abort();
    drop(half);
}

#[test]
fn a_script_fetch_is_recorded_only_from_the_nodes_ip() {
    let p = loopback_project();
    p.build(&[]);
    p.write("out/tftp/ipxe/52-54-00-12-34-57.ipxe", "#!ipxe\n");
    let s = Serve::start(&p);
    let get = |from| {
        rt().block_on(http::request(
            s.addr,
            from,
            "GET",
            "/ipxe/52-54-00-12-34-57.ipxe",
            b"",
        ))
        .unwrap()
    };
    let fetched = || -> i64 {
        rusqlite::Connection::open(p.path("cache/nodes.db"))
            .unwrap()
            .query_row(
                "SELECT count(*) FROM nodes WHERE fetch_at IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let r = get(STRANGER);
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "#!ipxe\n"),
        "served anyway"
    );
    assert_eq!(fetched(), 0, "a stranger's fetch was recorded");
    assert_eq!(get(NODE02).status, 200);
    assert_eq!(fetched(), 1);
}

#[test]
fn gc_ignores_the_report_of_a_node_no_longer_in_the_inventory() {
    let p = loopback_project();
    p.build(&[]);
    let g1 = p.current("default");
    let s = Serve::start(&p);
    let report = format!(
        r#"{{"hostname":"node01","mac":"52:54:00:12:34:56","image":"default","generation":"{g1}","boot_id":"6f1c","kernel":"6.1.0-28-amd64","uptime":1.0,"failed_units":[]}}"#
    );
    let node01 = Ipv4Addr::new(127, 0, 0, 11);
    let r = rt()
        .block_on(http::request(
            s.addr,
            node01,
            "POST",
            "/api/v1/report",
            report.as_bytes(),
        ))
        .unwrap();
    assert_eq!(r.status, 204, "{r:?}");
    drop(s);
    p.edit(
        "Ddcfile.toml",
        "[[nodes]]\nhostname = \"node01\"\nmac      = \"52:54:00:12:34:56\"\nip       = \"127.0.0.11\"\n",
        "",
    );
    p.edit("Ddcfile.toml", "\"nfs-common\"", "\"nfs-common\", \"htop\"");
    p.build(&[]);
    let g2 = p.current("default");
    assert_ne!(g1, g2);
    let r = p.ddc(&["gc", "--keep", "0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let note = format!(
        "node01 reported {g1} of image default but is no longer in the inventory: not kept"
    );
    assert!(r.stdout.contains(&note), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("deleted default/{g1}")),
        "{}",
        r.stdout
    );
    assert_eq!(p.generations("default"), vec![g2]);
}

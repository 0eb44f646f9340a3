//! The node's report script (`tasks/configure/ddc-report`, installed in the
//! image as /usr/lib/ddc/report), run by bash on this machine against a real
//! TCP server on loopback that reads the HTTP request and answers as
//! `ddc serve` would: the request line, headers and JSON body it sends, the
//! escaping of what it reads from the kernel, and its exit code for each
//! answer.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/configure/ddc-report")
}

/// One HTTP request as the server saw it: request line, headers, body.
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A server on 127.0.0.1 that takes one request and answers `status`.
fn serve_once(status: &'static str) -> (u16, thread::JoinHandle<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').expect("a header line");
            headers.push((k.to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().expect("a numeric Content-Length"))
            .expect("a Content-Length header");
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let mut w = stream;
        write!(
            w,
            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        Request {
            line: line.trim_end().to_string(),
            headers,
            body,
        }
    });
    (port, h)
}

fn conf(dir: &Path, port: u16) -> PathBuf {
    let p = dir.join("ddc-report");
    std::fs::write(&p, format!("REPORT_HOST=127.0.0.1\nREPORT_PORT={port}\n")).unwrap();
    p
}

fn run(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("bash runs")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn first_line(p: &str) -> String {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_report_is_one_json_post_with_what_the_kernel_says() {
    let dir = tempfile::tempdir().unwrap();
    let (port, server) = serve_once("204 No Content");
    let out = run(&[conf(dir.path(), port).to_str().unwrap()]);
    let req = server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(req.line, "POST /api/v1/report HTTP/1.1");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    let v: serde_json::Value = serde_json::from_slice(&req.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&req.body)));
    let s = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("{k} is not a string: {v}"))
    };
    assert_eq!(s("hostname"), first_line("/proc/sys/kernel/hostname"));
    assert_eq!(s("kernel"), first_line("/proc/sys/kernel/osrelease"));
    assert_eq!(s("boot_id"), first_line("/proc/sys/kernel/random/boot_id"));
    // /proc/net/route (the main table) routes 127.0.0.1 through some
    // interface of this machine; the MAC is that interface's.
    let macs: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("address")).ok())
        .map(|m| m.trim().to_string())
        .collect();
    assert!(
        macs.iter().any(|m| m == s("mac")),
        "{} not in {macs:?}",
        s("mac")
    );
    assert!(v["uptime"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["failed_units"].is_array(), "{v}");
    // What systemd says of this machine (`offline` in a container without
    // it running), as `ddc rollout`'s health gate reads it.
    assert_eq!(s("system"), system_state(), "{v}");
    // This machine did not boot from an NFS root: no image, no generation.
    if !std::fs::read_to_string("/proc/cmdline")
        .unwrap()
        .contains("nfsroot=")
    {
        assert_eq!((s("image"), s("generation")), ("", ""));
    }
}

/// `systemctl is-system-running` on this machine ("" without systemctl).
fn system_state() -> String {
    Command::new("systemctl")
        .arg("is-system-running")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[test]
fn after_boot_it_waits_for_the_boot_then_reports_once() {
    // Here the boot is long over (or systemd is not running): it reports at once.
    let dir = tempfile::tempdir().unwrap();
    let (port, server) = serve_once("204 No Content");
    let out = run(&["--after-boot", conf(dir.path(), port).to_str().unwrap()]);
    let req = server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(v["system"], system_state().as_str(), "{v}");
}

#[test]
fn the_units_report_after_the_boot_has_finished() {
    let unit = |f: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tasks/configure")
                .join(f),
        )
        .unwrap()
    };
    let booted = unit("ddc-report-booted.service");
    // simple: its start job ends at once, so the boot it waits for ends.
    assert!(booted.contains("\nType=simple\n"), "{booted}");
    assert!(
        booted.contains("\nExecStart=/usr/lib/ddc/report --after-boot\n"),
        "{booted}"
    );
    assert!(
        booted.contains("\nWantedBy=multi-user.target\n"),
        "{booted}"
    );
    let configure = unit("../configure.sh");
    assert!(
        configure.contains("multi-user.target.wants/ddc-report-booted.service"),
        "configure.sh does not enable ddc-report-booted.service"
    );
}

#[test]
fn strings_are_escaped() {
    common::require_root("it sets a hostname with quotes in a UTS namespace of its own");
    let dir = tempfile::tempdir().unwrap();
    let (port, server) = serve_once("204 No Content");
    let conf = conf(dir.path(), port);
    let out = Command::new("unshare")
        .args(["--uts", "bash", "-c"])
        .arg("printf %s \"$1\" >/proc/sys/kernel/hostname && exec bash \"$2\" \"$3\"")
        .args(["-", "a\"b\\c\td\u{e9}", script().to_str().unwrap()])
        .arg(&conf)
        .output()
        .expect("unshare runs");
    let req = server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&req.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&req.body)));
    // Quote, backslash and tab kept (escaped); the non-ASCII bytes dropped.
    assert_eq!(v["hostname"], "a\"b\\c\td", "{v}");
}

#[test]
fn a_refused_report_fails_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    for status in ["403 Forbidden", "400 Bad Request", "404 Not Found"] {
        let (port, server) = serve_once(status);
        let out = run(&[conf(dir.path(), port).to_str().unwrap()]);
        server.join().unwrap();
        assert_eq!(out.status.code(), Some(1), "{status}: {}", text(&out));
        assert!(
            text(&out).contains(&format!(
                "report refused by 127.0.0.1:{port}: HTTP/1.1 {status}"
            )),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn no_server_is_not_a_failure() {
    // A port nothing listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[conf(dir.path(), port).to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "cannot connect to 127.0.0.1:{port}; report not sent"
        )),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_setting_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty");
    std::fs::write(&p, "").unwrap();
    let out = run(&[p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("REPORT_HOST is not set in {}", p.display())),
        "{}",
        text(&out)
    );
}

/// `cmd` run by bash, with its output; fails the test on an error.
fn sh(cmd: &str) -> String {
    let o = Command::new("bash").args(["-c", cmd]).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// In a network namespace of its own, the master at 192.0.2.1 on a link
/// whose MAC is known: the report names that MAC, and reaches a server
/// (busybox nc) listening there.
#[test]
fn the_mac_is_the_one_of_the_link_to_the_master() {
    common::require_root("it makes a network namespace");
    let ns = format!("ddc-report-{}", std::process::id());
    /// Deletes the namespace however the test ends.
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.0])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    let _gone = Gone(ns.clone());
    drop(Gone(ns.clone()));
    sh(&format!(
        "ip netns add {ns} && ip -n {ns} link set lo up && \
         ip -n {ns} link add d0 type veth peer name d0p && ip -n {ns} link set d0 address 52:54:00:ab:cd:ef && \
         ip -n {ns} link add d1 type veth peer name d1p && ip -n {ns} link set d1 address 52:54:00:00:00:01 && \
         ip -n {ns} addr add 192.0.2.1/24 dev d0 && ip -n {ns} addr add 198.51.100.1/24 dev d1 && \
         ip -n {ns} link set d0 up && ip -n {ns} link set d1 up && \
         ip -n {ns} link set d0p up && ip -n {ns} link set d1p up && \
         ip -n {ns} route add default dev d1"
    ));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::write(&conf, "REPORT_HOST=192.0.2.1\nREPORT_PORT=8080\n").unwrap();
    let got = dir.path().join("request");
    let out = sh(&format!(
        "printf 'HTTP/1.1 204 No Content\\r\\n\\r\\n' | \
           ip netns exec {ns} busybox nc -l -p 8080 >'{got}' & nc=$!
         for i in $(seq 50); do ip netns exec {ns} ss -Hltn 'sport = :8080' | grep -q . && break; sleep 0.1; done
         ip netns exec {ns} bash '{script}' '{conf}'; rc=$?
         wait $nc; echo \"exit $rc\"",
        got = got.display(),
        script = script().display(),
        conf = conf.display(),
    ));
    assert!(out.contains("exit 0"), "{out}");
    let req = std::fs::read_to_string(&got).unwrap();
    let body = req
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{req}"));
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {req}"));
    assert_eq!(v["mac"], "52:54:00:ab:cd:ef", "{v}");
}

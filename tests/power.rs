//! `ddc power` against real simulated BMCs: one `ipmi_sim` (Debian's
//! openipmi) per node on loopback, each on its own UDP port, reached by the
//! real `ipmitool` as ddc runs it. A chassis script keeps each simulated
//! machine's power state in a file and logs what the BMC asked of it.

mod common;
#[path = "common/ipmi.rs"]
mod ipmi;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::require;
use common::{Project, Run, DDCFILE};
use ipmi::{free_udp_port, Sim, PASSWORD};

/// The test Ddcfile with a bmc per node (`None`: none) and a [power] table.
fn project(bmcs: [Option<&str>; 2], timeout: u64) -> Project {
    let mut text = DDCFILE.to_string();
    for (ip, bmc) in [("192.0.2.11", bmcs[0]), ("192.0.2.12", bmcs[1])] {
        if let Some(b) = bmc {
            let line = format!("ip       = \"{ip}\"");
            text = text.replace(&line, &format!("{line}\nbmc      = \"{b}\""));
        }
    }
    text.push_str(&format!(
        "\n[power]\nuser = \"admin\"\npassword_file = \"ipmi.pw\"\ncipher_suite = 3\ntimeout = {timeout}\n"
    ));
    let p = Project::with(&text);
    write_password(&p, PASSWORD, 0o600);
    p
}

fn write_password(p: &Project, pw: &str, mode: u32) {
    p.write("ipmi.pw", &format!("{pw}\n"));
    std::fs::set_permissions(p.path("ipmi.pw"), std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The table's rows: node → (bmc, result).
fn rows(r: &Run) -> Vec<(String, String, String)> {
    r.stdout
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("power "))
        .map(|l| {
            let mut f = l.splitn(3, char::is_whitespace).filter(|s| !s.is_empty());
            let node = f.next().unwrap().to_string();
            let rest = l[node.len()..].trim_start();
            let (bmc, result) = rest.split_once("  ").unwrap();
            (node, bmc.to_string(), result.trim().to_string())
        })
        .collect()
}

fn results(r: &Run) -> Vec<String> {
    rows(r).into_iter().map(|(_, _, res)| res).collect()
}

fn summary(r: &Run) -> String {
    let last = r.stdout.lines().last().unwrap_or_default();
    // The time it took varies: drop " (1.2s)".
    last.rsplit_once(" (").map_or(last, |(s, _)| s).to_string()
}

#[test]
fn status_off_on_cycle_and_reset_reach_each_bmc() {
    let (a, b) = (Sim::start(PASSWORD), Sim::start(PASSWORD));
    let p = project([Some(&a.addr()), Some(&b.addr())], 10);

    let r = p.ddc(&["power", "status", "--all"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["node", "bmc", "result"]
    );
    assert_eq!(
        rows(&r),
        [
            ("node01".to_string(), a.addr(), "on".to_string()),
            ("node02".to_string(), b.addr(), "on".to_string())
        ]
    );
    assert_eq!(summary(&r), "power status: 2 nodes, 2 on, 0 off, 0 failed");

    let r = p.ddc(&["power", "off", "node01"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(results(&r), ["ok"]);
    assert_eq!(summary(&r), "power off: 1 node, 1 ok, 0 failed");
    assert_eq!(a.power(), "0");
    let r = p.ddc(&["power", "status", "node01", "node02"]);
    assert_eq!(results(&r), ["off", "on"]);

    let r = p.ddc(&["power", "on", "node01"]);
    assert_eq!((r.code, results(&r)), (0, vec!["ok".to_string()]));
    assert_eq!(a.power(), "1");

    // A cycle is off, then on a second later (ipmi_sim's power-on timer).
    let r = p.ddc(&["power", "cycle", "node02"]);
    assert_eq!((r.code, results(&r)), (0, vec!["ok".to_string()]));
    let end = Instant::now() + Duration::from_secs(10);
    while !b.calls().contains("set power 1") {
        assert!(
            Instant::now() < end,
            "no power-on after the cycle:\n{}",
            b.calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let calls = b.calls();
    let off = calls.find("set power 0").expect("a power-off in the cycle");
    assert!(off < calls.find("set power 1").unwrap(), "{calls}");
    assert!(!a.calls().contains("set power 0\nget power\nget power"));

    let r = p.ddc(&["power", "reset", "--all"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(a.calls().contains("set reset 1") && b.calls().contains("set reset 1"));

    b.set_power("0");
    let r = p.ddc(&["power", "status", "--all", "--json"]);
    assert_eq!(r.code, 0);
    let v: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["node"], "node01");
    assert_eq!(
        (v[0]["result"].as_str(), v[0]["ok"].as_bool()),
        (Some("on"), Some(true))
    );
    assert_eq!(
        (v[1]["result"].as_str(), v[1]["bmc"].as_str()),
        (Some("off"), Some(b.addr().as_str()))
    );
}

#[test]
fn a_wrong_password_fails_that_node_only() {
    let (a, b) = (Sim::start(PASSWORD), Sim::start("another-password"));
    let p = project([Some(&a.addr()), Some(&b.addr())], 10);
    let r = p.ddc(&["power", "off", "--all"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let res = results(&r);
    assert_eq!(res[0], "ok");
    assert!(
        res[1].contains("Unable to establish IPMI v2 / RMCP+ session"),
        "{res:?}"
    );
    assert_eq!(summary(&r), "power off: 2 nodes, 1 ok, 1 failed");
    assert_eq!((a.power(), b.power()), ("0".to_string(), "1".to_string()));
}

/// Processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                found.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn an_unreachable_bmc_times_out_and_leaves_no_process() {
    let a = Sim::start(PASSWORD);
    let silent = free_udp_port();
    let p = project([Some(&a.addr()), Some(&format!("127.0.0.1:{silent}"))], 2);
    let t = Instant::now();
    let r = p.ddc(&["power", "status", "--all"]);
    let took = t.elapsed();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        results(&r),
        [
            "on",
            "no answer within 2s (power.timeout): is the BMC's address right, and is it reachable?"
        ]
    );
    // ipmitool alone would try for 20 seconds.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let left = processes_with(&format!("-p {silent} "));
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn the_password_is_on_no_command_line_and_in_no_environment() {
    let a = Sim::start(PASSWORD);
    let silent = free_udp_port();
    let p = project([Some(&a.addr()), Some(&format!("127.0.0.1:{silent}"))], 3);
    let pw_file = p.path("ipmi.pw").canonicalize().unwrap();
    let mut child = p
        .command(&["power", "status", "--all"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen_ipmitool = false;
    while child.try_wait().unwrap().is_none() {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            for f in ["cmdline", "environ"] {
                let Ok(bytes) = std::fs::read(e.path().join(f)) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains(PASSWORD),
                    "the password is in /proc/{}/{f}",
                    e.file_name().to_string_lossy()
                );
                if f == "cmdline"
                    && text.contains("ipmitool")
                    && text.contains(&*pw_file.to_string_lossy())
                {
                    seen_ipmitool = true;
                }
            }
        }
    }
    assert!(
        seen_ipmitool,
        "no ipmitool was seen running: the check saw nothing"
    );
    // Nor in any file ddc wrote (its cache, its logs): only in its own.
    let grep = Command::new("grep")
        .args(["-rl", PASSWORD])
        .arg(p.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&grep.stdout).trim(),
        pw_file.display().to_string()
    );
}

#[test]
fn ctrl_c_stops_every_ipmitool() {
    let (s1, s2) = (free_udp_port(), free_udp_port());
    let p = project(
        [
            Some(&format!("127.0.0.1:{s1}")),
            Some(&format!("127.0.0.1:{s2}")),
        ],
        60,
    );
    let mut child = p
        .command(&["power", "status", "--all"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while processes_with(&format!("-p {s1} ")).is_empty()
        || processes_with(&format!("-p {s2} ")).is_empty()
    {
        assert!(Instant::now() < end, "the ipmitools did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "ddc did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(out.contains("interrupted"), "{out}");
    for port in [s1, s2] {
        let left = processes_with(&format!("-p {port} "));
        assert!(left.is_empty(), "left running: {left:?}");
    }
}

#[test]
fn power_config_errors_are_reported_before_anything_runs() {
    let p = project([Some("127.0.0.1:9"), None], 2);
    let file: PathBuf = p.path("ipmi.pw").canonicalize().unwrap();
    let f = file.display();

    write_password(&p, PASSWORD, 0o644);
    let r = p.ddc(&["power", "status", "--all"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stderr, format!("error: Ddcfile.toml:43:17: power.password_file: {f} is mode 0644, which lets others read or change the BMC password; run: chmod 600 {f}\n"));
    assert_eq!(r.stdout, "");

    std::fs::remove_file(&file).unwrap();
    let r = p.ddc(&["power", "status", "--all"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(&format!(
            "error: Ddcfile.toml:43:17: power.password_file: cannot read {f}: "
        )),
        "{}",
        r.stderr
    );

    write_password(&p, PASSWORD, 0o600);
    p.edit(
        "Ddcfile.toml",
        "user = \"admin\"",
        "user = \"admin\"\npassword = \"hunter2\"",
    );
    let r = p.ddc(&["power", "status", "--all"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: Ddcfile.toml:43:12: power.password: a password in the Ddcfile"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("hunter2"));
    p.edit("Ddcfile.toml", "password = \"hunter2\"\n", "");

    // A node without a bmc fails, with the fix; the other is still tried.
    let r = p.ddc(&["power", "status", "--all"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(results(&r)[1], "no bmc set: give the node bmc = \"ADDR[:PORT]\" in its [[nodes]] table, or a bmc column in the nodes_file CSV");

    let r = p.ddc(&["power", "status", "node09"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            2,
            "error: no node named node09 in the Ddcfile or its nodes_file\n"
        )
    );
}

#[test]
fn nodes_by_image_generation_and_csv_column_in_a_dry_run() {
    let p = project([Some("192.0.2.101"), Some("bmc02.example:6230")], 2);
    // Generation 1 for both, then 2, with node02 pinned to 1.
    p.build(&[]);
    p.edit("Ddcfile.toml", "\"nfs-common\"", "\"nfs-common\", \"htop\"");
    p.edit(
        "Ddcfile.toml",
        "ip       = \"192.0.2.12\"",
        "ip       = \"192.0.2.12\"\nimage    = \"default@1\"",
    );
    p.build(&[]);
    let f = p.path("ipmi.pw").canonicalize().unwrap();
    let r = p.ddc(&["power", "-n", "cycle", "--generation", "1"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let ipmitool = std::process::Command::new("sh")
        .args(["-c", "command -v ipmitool"])
        .env("PATH", common::netns::search_path())
        .output()
        .unwrap();
    let ipmitool = String::from_utf8_lossy(&ipmitool.stdout).trim().to_string();
    assert_eq!(
        r.stdout,
        format!("node02: would run: {ipmitool} -I lanplus -H bmc02.example -p 6230 -U admin -f {} -C 3 chassis power cycle\n", f.display())
    );
    let r = p.ddc(&["power", "-n", "status", "--generation", "2", "--json"]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        (v["node"].as_str(), v["bmc"].as_str()),
        (Some("node01"), Some("192.0.2.101"))
    );
    let r = p.ddc(&["power", "-n", "status", "--generation", "7"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            2,
            "error: no generation \"7\"; `ddc generations` lists them\n"
        )
    );
    let r = p.ddc(&["power", "-n", "on", "--image", "default"]);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);

    // An iPXE node's entry is its script: --generation finds it too, and
    // `ddc nodes` names the script, not a pxelinux entry.
    p.edit(
        "Ddcfile.toml",
        "ip       = \"192.0.2.11\"",
        "ip       = \"192.0.2.11\"\nboot     = \"ipxe\"",
    );
    p.build(&[]);
    let r = p.ddc(&["power", "-n", "status", "--generation", "2", "--json"]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["node"].as_str(), Some("node01"), "{}", r.stdout);
    let r = p.ddc(&["nodes", "--json"]);
    let node01: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert!(
        node01["entry"]
            .as_str()
            .unwrap()
            .ends_with("ipxe/52-54-00-12-34-56.ipxe"),
        "{}",
        r.stdout
    );

    // The bmc column of the CSV inventory.
    p.write("nodes.csv", "hostname,mac,ip,bmc\nnode03,52:54:00:12:34:60,192.0.2.13,192.0.2.103:6231\nnode04,52:54:00:12:34:61,192.0.2.14,\n");
    p.edit(
        "Ddcfile.toml",
        "tasks_dir = \"tasks\"",
        "tasks_dir = \"tasks\"\nnodes_file = \"nodes.csv\"",
    );
    let r = p.ddc(&["power", "-n", "off", "node03", "node04"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("node03: would run: ")
            && lines[0].contains(" -H 192.0.2.103 -p 6231 "),
        "{}",
        r.stdout
    );
    assert!(lines[1].starts_with("node04: no bmc set"), "{}", r.stdout);
    p.write(
        "nodes.csv",
        "hostname,mac,ip,bmc\nnode03,52:54:00:12:34:60,192.0.2.13,bmc 3\n",
    );
    let r = p.ddc(&["power", "-n", "off", "node03"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: nodes.csv: row 2: bmc: \"bmc 3\" is not a BMC address"),
        "{}",
        r.stderr
    );
}

/// A QEMU VM whose `ipmi-bmc-extern` device is connected to an ipmi_sim
/// that starts it (`startcmd`): power control reaches a real machine.
struct Vm {
    sim: Sim,
    serial: u16,
}

impl Vm {
    fn start() -> Vm {
        let qemu = require("qemu-system-x86_64", "qemu-system-x86");
        let serial = free_tcp_port();
        let sim = Sim::start_with(PASSWORD, |d| {
            format!(
                "serial 15 127.0.0.1 {serial} codec VM\n  \
                 startcmd \"{} -machine q35,accel=kvm:tcg -m 128 -display none -nodefaults -net none \
                 -pidfile {d}/qemu.pid -debugcon file:{d}/debugcon.log -global isa-debugcon.iobase=0x402 \
                 -chardev socket,id=ipmi0,host=127.0.0.1,port={serial},reconnect=1 \
                 -device ipmi-bmc-extern,chardev=ipmi0,id=bmc0 -device isa-ipmi-kcs,bmc=bmc0\"\n  \
                 startnow true\n  poweroff_wait 3\n  kill_wait 3",
                qemu.display(),
                d = d.display()
            )
        });
        let vm = Vm { sim, serial };
        vm.wait("the VM to start", || vm.pid().is_some() && vm.boots() > 0);
        vm.wait_connected();
        vm
    }

    /// Waits until QEMU's BMC device is connected to the simulator (until
    /// then the BMC cannot reach the machine).
    fn wait_connected(&self) {
        let port = format!("0100007F:{:04X}", self.serial);
        self.wait("QEMU to connect to the BMC", || {
            std::fs::read_to_string("/proc/net/tcp")
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && f[2] == port && f[3] == "01"
                })
        });
    }

    /// The running QEMU's pid.
    fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.sim.dir.path().join("qemu.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// How many times the firmware has gone through its start (to its
    /// memory map) since QEMU started.
    fn boots(&self) -> usize {
        std::fs::read_to_string(self.sim.dir.path().join("debugcon.log"))
            .unwrap_or_default()
            .matches("e820 map has")
            .count()
    }

    fn wait(&self, what: &str, done: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // ipmi_sim leaves its VM running when it is killed.
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
#[ignore = "starts QEMU VMs (qemu-system-x86); run with --include-ignored"]
fn power_reaches_a_qemu_vm_through_its_simulated_bmc() {
    let vm = Vm::start();
    let p = project([Some(&vm.sim.addr()), None], 20);
    let ok = |args: &[&str], want: &str| {
        let mut all = vec!["power"];
        all.extend_from_slice(args);
        all.push("node01");
        let r = p.ddc(&all);
        assert_eq!(
            (r.code, results(&r)),
            (0, vec![want.to_string()]),
            "{}\n{}",
            r.stdout,
            r.stderr
        );
    };
    ok(&["status"], "on");

    // reset: the same QEMU process, its firmware started again.
    let (pid, boots) = (vm.pid(), vm.boots());
    ok(&["reset"], "ok");
    vm.wait("the firmware to start again after the reset", || {
        vm.boots() > boots
    });
    assert_eq!(vm.pid(), pid);

    // cycle: the VM is powered off (QEMU ends) and on again (a new QEMU).
    ok(&["cycle"], "ok");
    vm.wait("a new VM after the cycle", || {
        vm.pid().is_some_and(|p| Some(p) != pid)
    });
    ok(&["status"], "on");

    ok(&["off"], "ok");
    vm.wait("the VM to stop", || vm.pid().is_none());
    ok(&["status"], "off");
    ok(&["on"], "ok");
    vm.wait("the VM to start", || vm.pid().is_some());
    ok(&["status"], "on");
}

#[test]
fn no_more_than_parallel_bmcs_are_asked_at_once() {
    let silent = free_udp_port();
    let p = project([None, None], 1);
    p.edit("Ddcfile.toml", "timeout = 1", "timeout = 1\nparallel = 2");
    let mut csv = String::from("hostname,mac,ip,bmc\n");
    for i in 0..6 {
        csv.push_str(&format!(
            "n{i},52:54:00:00:01:0{i},192.0.2.{},127.0.0.1:{silent}\n",
            100 + i
        ));
    }
    p.write("nodes.csv", &csv);
    p.edit(
        "Ddcfile.toml",
        "tasks_dir = \"tasks\"",
        "tasks_dir = \"tasks\"\nnodes_file = \"nodes.csv\"",
    );
    let mut child = p
        .command(&["power", "status", "--image", "default", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let needle = format!("-p {silent} ");
    let mut most = 0;
    while child.try_wait().unwrap().is_none() {
        most = most.max(processes_with(&needle).len());
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    // 8 nodes: the two of the Ddcfile have no bmc.
    assert_eq!(lines, 8);
    assert_eq!(most, 2, "at most 2 ipmitools at once, and 2 at some point");
}

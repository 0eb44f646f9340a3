//! A simulated BMC for the integration tests: `ipmi_sim` (Debian's
//! openipmi) with a LAN channel on loopback, reached by the real
//! `ipmitool`; its chassis script keeps the machine's power state in a file
//! and logs every request (`calls`), which tests watch. Included with
//! `#[path]` beside `common` (tests/power.rs, tests/rollout.rs).
#![allow(dead_code)]

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::netns::require;

/// The password of the simulated BMCs' `admin`.
pub const PASSWORD: &str = "Sim-pw-7f3e9a1c";

/// A simulated BMC: `ipmi_sim` with a LAN channel on 127.0.0.1:`port`, user
/// `admin` with `password`, and a chassis that is on.
pub struct Sim {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Sim {
    pub fn start(password: &str) -> Sim {
        Sim::start_with(password, |d| {
            format!("chassis_control \"{}\"", d.join("chassis.sh").display())
        })
    }

    /// `machine` gives the lan.conf lines of what the BMC controls, from
    /// the sim's folder.
    pub fn start_with(password: &str, machine: impl Fn(&Path) -> String) -> Sim {
        let sim = require("ipmi_sim", "openipmi");
        require("ipmitool", "ipmitool");
        let dir = tempfile::Builder::new()
            .prefix("ddc-bmc-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let port = free_udp_port();
        let chassis = d.join("chassis.sh");
        std::fs::write(
            &chassis,
            format!(
                r#"#!/bin/sh
# ipmi_sim's chassis_control: "get power" or "set power V" / "set reset V".
dir='{}'
echo "$*" >> "$dir/calls"
# A slow BMC: the test makes the file to hold ipmitool's power request.
if [ "$1" = set ] && [ -e "$dir/slow" ]; then sleep "$(cat "$dir/slow")"; fi
op=$1; shift
case "$op" in
get) echo "power:$(cat "$dir/power")" ;;
set) while [ $# -gt 1 ]; do
       case "$1" in power) echo "$2" > "$dir/power" ;; esac
       shift 2
     done ;;
esac
"#,
                d.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&chassis, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("power"), "1\n").unwrap();
        std::fs::write(
            d.join("lan.conf"),
            format!(
                r#"name "sim{port}"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  {}
  user 2 true "admin" "{password}" admin 10 none md2 md5 straight
"#,
                machine(d)
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("sim.emu"),
            "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n",
        )
        .unwrap();
        std::fs::create_dir(d.join("state")).unwrap();
        let child = Command::new(sim)
            .args(["-n", "-c", "lan.conf", "-f", "sim.emu", "-s", "state"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Sim { child, dir, port };
        let end = Instant::now() + Duration::from_secs(10);
        while !udp_bound(port) {
            assert!(Instant::now() < end, "ipmi_sim did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the BMC asked of the chassis, one request a line.
    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }

    /// Makes every power request take `seconds` more.
    pub fn slow(&self, seconds: u32) {
        std::fs::write(self.dir.path().join("slow"), format!("{seconds}\n")).unwrap();
    }

    pub fn power(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("power"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn set_power(&self, v: &str) {
        std::fs::write(self.dir.path().join("power"), format!("{v}\n")).unwrap();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port nothing listens on (bound, then freed).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn udp_bound(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

//! `ddc serve` for the integration tests: the test Ddcfile on loopback
//! (127.0.0.0/8 is its cluster network, node01 at 127.0.0.11, node02 at
//! 127.0.0.12) and a running serve that is killed when dropped. Included
//! with `#[path]` beside `common` and `http` (tests/serve.rs,
//! tests/serve_bounds.rs, tests/discover.rs).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Stdio};

use crate::common::{self, Project};
use crate::http;

pub const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The test Ddcfile on loopback: node01 at 127.0.0.11, node02 at 127.0.0.12.
pub fn loopback_project() -> Project {
    let text = common::DDCFILE
        .replace("192.0.2.0/24", "127.0.0.0/8")
        .replace("\"192.0.2.1\"", "\"127.0.0.1\"")
        .replace("192.0.2.11", "127.0.0.11")
        .replace("192.0.2.12", "127.0.0.12");
    Project::with(&text)
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A running `ddc serve` on 127.0.0.1, killed when dropped; its log is
/// `serve-PORT.log` in the project.
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Serve {
    pub fn start(p: &Project) -> Serve {
        Self::at(p, http::free_port())
    }

    pub fn at(p: &Project, port: u16) -> Serve {
        let addr: SocketAddr = (LOCAL, port).into();
        let log = Self::log_path(p, port);
        let child = p
            .command(&["serve", "--listen", &addr.to_string()])
            .env("DDC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        assert!(
            http::wait_listening(addr),
            "ddc serve did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Serve { child, addr }
    }

    fn log_path(p: &Project, port: u16) -> std::path::PathBuf {
        p.path(&format!("serve-{port}.log"))
    }

    /// What it logged so far.
    pub fn log(&self, p: &Project) -> String {
        std::fs::read_to_string(Self::log_path(p, self.addr.port())).unwrap_or_default()
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::forget(self);
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

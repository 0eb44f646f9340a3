//! A step's processes and mounts never outlive it (root): a step that leaves
//! `setsid sleep` behind and a tmpfs mounted, once it ends, once ddc is
//! interrupted, and once ddc is killed with SIGKILL.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Project;

/// A project whose packages step starts `sleep 1000` in a session of its
/// own, writes its pid (as the master sees it: /proc is the master's) to
/// `leftover.pid` in the project folder, mounts a
/// tmpfs in the image, and then `then` (shell).
fn project(then: &str) -> Project {
    let p = Project::new();
    let pidfile = p.path("leftover.pid");
    p.write(
        "tasks/packages.sh",
        &format!(
            "#!/bin/sh\n# ddc: root\nset -eu\n\
             setsid sh -c 'read -r me _ </proc/self/stat; echo $me > {pid}.tmp && mv {pid}.tmp {pid}; exec sleep 1000' </dev/null >/dev/null 2>&1 &\n\
             while [ ! -s {pid} ]; do sleep 0.05; done\n\
             mkdir -p \"$DDC_ROOTFS/mnt/left\" && mount -t tmpfs ddc-test \"$DDC_ROOTFS/mnt/left\"\n\
             mkdir -p \"$DDC_ROOTFS/var/lib/dpkg\" && echo \"$DDC_PACKAGES\" > \"$DDC_ROOTFS/var/lib/dpkg/packages\"\n\
             {then}\n",
            pid = pidfile.display()
        ),
    );
    p
}

fn leftover_pid(p: &Project) -> i32 {
    p.read("leftover.pid").trim().parse().expect("a pid")
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for this purpose: it runs nothing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn wait_gone(pid: i32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Asserts the process is gone (killing it if not, not to leave it behind).
fn assert_gone(pid: i32, after: &str) {
    let gone = wait_gone(pid);
    if !gone {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        gone,
        "the step's `setsid sleep` (pid {pid}) outlived {after}"
    );
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn no_test_mounts(p: &Project) {
    let left: Vec<String> = common::mounts_under(p.dir.path());
    assert!(left.is_empty(), "mounts left: {left:?}");
}

#[test]
fn a_finished_step_leaves_no_process_and_no_mount() {
    common::require_root("it mounts and uses namespaces");
    let p = project("exit 0");
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pid = leftover_pid(&p);
    assert_gone(pid, "it");
    no_test_mounts(&p);
}

#[test]
fn an_interrupted_step_leaves_no_process_and_no_mount() {
    common::require_root("it mounts and uses namespaces");
    let p = project("sleep 1000");
    let mut ddc = p
        .command(&["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&p.path("leftover.pid"));
    let pid = leftover_pid(&p);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ddc.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = ddc.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_gone(pid, "Ctrl-C");
    no_test_mounts(&p);
}

#[test]
fn a_killed_ddc_leaves_no_step_running() {
    common::require_root("it mounts and uses namespaces");
    let p = project("sleep 1000");
    let mut ddc = p
        .command(&["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&p.path("leftover.pid"));
    let pid = leftover_pid(&p);
    ddc.kill().unwrap();
    ddc.wait().unwrap();
    assert_gone(pid, "a killed ddc");
    // The next build undoes what the killed one left mounted, and goes on.
    std::fs::remove_file(p.path("leftover.pid")).unwrap();
    p.write(
        "tasks/packages.sh",
        &std::fs::read_to_string(common::repo().join("tests/fixtures/tiny-tasks/packages.sh"))
            .unwrap(),
    );
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    no_test_mounts(&p);
}

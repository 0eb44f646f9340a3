//! Messages and exit codes a user meets when something is off: each says
//! what actually fixes the problem, and the exit codes match the README.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Project;

#[test]
fn a_missing_current_link_points_at_the_fix_that_works() {
    let p = Project::new();
    p.build(&[]);
    std::fs::remove_file(p.path("out/nfsroot/default/current")).unwrap();
    p.edit(
        "Ddcfile.toml",
        "ip       = \"192.0.2.12\"",
        "ip       = \"192.0.2.13\"",
    );
    p.edit("Ddcfile.toml", "52:54:00:12:34:57", "52:54:00:12:34:58");
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`ddc rollforward default` points it at the newest"),
        "{}",
        r.stderr
    );
    // The advice works.
    let r = p.ddc(&["rollforward", "default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn no_wait_on_a_busy_cache_exits_2() {
    let p = Project::new();
    p.build(&[]);
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p.path("cache/lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let r = p.ddc(&["build", "--no-wait"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("drop --no-wait to wait"), "{}", r.stderr);
    drop(lock);
    assert_eq!(p.ddc(&["build", "--no-wait"]).code, 0);
}

#[test]
fn no_colour_codes_when_stderr_is_not_a_terminal() {
    let p = Project::new();
    let started = p.path("started");
    p.write(
        "tasks/packages.sh",
        &format!("#!/bin/sh\ntouch {}\nsleep 30\n", started.display()),
    );
    let mut ddc = p
        .command(&["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !started.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the step never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ddc.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut err = String::new();
    ddc.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(ddc.wait().unwrap().code(), Some(130), "{err}");
    assert!(err.contains("stopping running steps"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes on a pipe: {err:?}");
}

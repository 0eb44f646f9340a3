//! The chroot guard, for real (needs root): a build interrupted with SIGINT,
//! SIGTERM or SIGHUP in the middle of a chroot step leaves no mount behind, stops
//! the step's processes, and the next build completes.

mod common;

use std::time::{Duration, Instant};

use common::{mounts_under, Project};

fn interrupted_in_a_chroot_step(signal: nix::sys::signal::Signal, seconds: u32) {
    common::require_root("it mounts /proc, /sys and /dev in a chroot");
    let p = Project::new();
    // Each test sleeps for its own number of seconds, to find its own process.
    let sleep = format!("sleep {seconds}");
    p.write(
        "tasks/configure.sh",
        &format!("#!/bin/sh\n# ddc: chroot\nset -eu\ntest -e \"$DDC_ROOTFS/proc/self\"\necho step-running\n{sleep}\n"),
    );
    let mut child = p
        .command(&["build"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cache = p.path("cache");
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = p.path("cache/logs/configure:default.log");
    loop {
        let running = std::fs::read_to_string(&log).is_ok_and(|l| l.contains("step-running"));
        if running && mounts_under(&cache).len() >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the chroot step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        mounts_under(&cache),
        Vec::<String>::new(),
        "mounts left behind"
    );
    // The step's own processes are gone too.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("^{sleep}$")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "the step's sleep survived"
    );
    // What finished before is kept: the next build starts at configure.
    p.write(
        "tasks/configure.sh",
        "#!/bin/sh\n# ddc: chroot\nset -eu\ntest -e \"$DDC_ROOTFS/proc/self\"\n",
    );
    let ran = p.build(&[]);
    assert!(ran.contains(&"configure:default".to_string()), "{ran:?}");
    assert!(!ran.contains(&"packages:default".to_string()), "{ran:?}");
    assert_eq!(mounts_under(&cache), Vec::<String>::new());
}

#[test]
fn sigint_in_a_chroot_step_unmounts_everything() {
    interrupted_in_a_chroot_step(nix::sys::signal::Signal::SIGINT, 121);
}

#[test]
fn sigterm_in_a_chroot_step_unmounts_everything() {
    interrupted_in_a_chroot_step(nix::sys::signal::Signal::SIGTERM, 122);
}

/// A build over SSH whose connection drops gets SIGHUP: the same unwinding.
#[test]
fn sighup_in_a_chroot_step_unmounts_everything() {
    interrupted_in_a_chroot_step(nix::sys::signal::Signal::SIGHUP, 123);
}

/// An SSH connection that drops takes the terminal with it: ddc gets SIGHUP
/// and can no longer write to stderr. It must still stop the step, unmount
/// and exit 130.
#[test]
fn sighup_with_stderr_gone_still_unmounts_and_exits_130() {
    common::require_root("it mounts /proc, /sys and /dev in a chroot");
    let p = Project::new();
    p.write(
        "tasks/configure.sh",
        "#!/bin/sh\n# ddc: chroot\nset -eu\necho step-running\nsleep 124\n",
    );
    let mut child = p
        .command(&["build"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cache = p.path("cache");
    let log = p.path("cache/logs/configure:default.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(std::fs::read_to_string(&log).is_ok_and(|l| l.contains("step-running"))
        && mounts_under(&cache).len() >= 4)
    {
        assert!(Instant::now() < deadline, "the chroot step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The terminal goes away, then the hang-up arrives.
    drop(child.stderr.take());
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    // A hang detector, not a speed check: the step sleeps for minutes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let still_mounted = mounts_under(&cache);
    if status.is_none() {
        // Clean up what the bug leaves: ddc, then the step's processes.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    }
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 124$"])
        .output()
        .unwrap();
    let left: Vec<i32> = String::from_utf8_lossy(&ps.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    for &s in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        status.is_some(),
        "ddc did not exit within 30 s of SIGHUP with its stderr gone"
    );
    assert_eq!(status.unwrap().code(), Some(130));
    assert_eq!(still_mounted, Vec::<String>::new(), "mounts left behind");
    assert!(left.is_empty(), "the step's sleep survived");
}

#[test]
fn a_failing_chroot_step_unmounts_and_keeps_the_previous_output() {
    common::require_root("it mounts /proc, /sys and /dev in a chroot");
    let p = Project::new();
    p.build(&[]);
    let before = std::fs::read_dir(p.path("cache/images/default/configure"))
        .unwrap()
        .count();
    p.write(
        "tasks/configure.sh",
        "#!/bin/sh\n# ddc: chroot\nset -eu\ntouch \"$DDC_ROOTFS/half-done\"\nexit 3\n",
    );
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("configure:default failed: /bin/sh exited with status 3"),
        "{}",
        r.stderr
    );
    assert_eq!(mounts_under(&p.path("cache")), Vec::<String>::new());
    // The committed output of the step is the previous good one.
    assert!(!p.path("cache/images/default/configure/half-done").exists());
    assert_eq!(
        std::fs::read_dir(p.path("cache/images/default/configure"))
            .unwrap()
            .count(),
        before
    );
}

#[test]
fn a_mount_left_by_a_killed_run_is_cleaned_up_and_never_deleted_through() {
    common::require_root("it mounts /proc, /sys and /dev in a chroot");
    let p = Project::new();
    p.build(&[]);
    // A folder of the master's, with a file in it, bind-mounted where a
    // killed ddc (SIGKILL cannot be caught) would leave a mount behind. It
    // is on the same file system as the cache, so only the mount table can
    // tell that deleting the staging tree would reach into it.
    let outside = tempfile::Builder::new()
        .prefix("ddc-canary-")
        .tempdir()
        .unwrap();
    let canary = outside.path().join("canary");
    std::fs::write(&canary, "the master's own file\n").unwrap();
    let stage = p.path("cache/images/default/configure.staging");
    let target = stage.join("dev");
    std::fs::create_dir_all(&target).unwrap();
    nix::mount::mount(
        Some(outside.path()),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    // Unmounts the bind mount if the test fails before ddc does.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(target.clone());
    assert!(
        target.join("canary").is_file(),
        "the bind mount is not there"
    );
    // Removing the tree now must refuse, not delete through the mount.
    let removed = ddc::fsutil::safe_remove_dir_all(&stage);
    assert_eq!(
        std::fs::read_to_string(&canary).ok().as_deref(),
        Some("the master's own file\n"),
        "safe_remove_dir_all deleted through a mount ({removed:?})"
    );
    let err = format!("{:#}", removed.unwrap_err());
    assert!(err.contains("is mounted inside it"), "{err}");
    // The next build that reruns configure unmounts it, then clears the
    // staging folder: the canary is untouched.
    p.edit("tasks/configure.sh", "set -eu", "set -eu\n# changed");
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("left mounted by an earlier, interrupted run"),
        "{}",
        r.stderr
    );
    assert_eq!(mounts_under(&p.path("cache")), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(&canary).ok().as_deref(),
        Some("the master's own file\n"),
        "the build deleted through a mount"
    );
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        1,
        "the mounted folder changed"
    );
}

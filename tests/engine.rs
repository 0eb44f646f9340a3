//! The engine, through the real binary on the tiny step scripts: what reruns
//! after each kind of edit, outputs restored, failures, locking, cleaning.

mod common;

use common::{strs, tasks_in, Project, Run, ALL};

const ENTRY1: &str = "out/tftp/pxelinux.cfg/01-52-54-00-12-34-56";
const ENTRY2: &str = "out/tftp/pxelinux.cfg/01-52-54-00-12-34-57";

#[test]
fn first_build_runs_everything_and_second_runs_nothing() {
    let p = Project::new();
    assert_eq!(p.build(&[]), strs(ALL));
    assert_eq!(p.build(&[]), Vec::<String>::new());
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.trim_end().ends_with('s') && r.stdout.contains("0 ran, 10 cached, 0 failed in "),
        "{}",
        r.stdout
    );
}

#[test]
fn package_change_reruns_from_packages_on_never_debootstrap() {
    let p = Project::new();
    p.build(&[]);
    p.edit(
        "Ddcfile.toml",
        "\"nfs-common\"]",
        "\"nfs-common\", \"htop\"]",
    );
    assert_eq!(
        p.build(&[]),
        strs(&[
            "configure:default",
            "exports",
            "initramfs:default",
            "packages:default",
            "publish:default",
            "pxe:node01",
            "pxe:node02",
        ])
    );
}

#[test]
fn mac_change_reruns_that_node_and_dhcp_and_moves_the_entry() {
    let p = Project::new();
    p.build(&[]);
    let entry = p.read(ENTRY2);
    p.edit("Ddcfile.toml", "52:54:00:12:34:57", "52:54:00:AB:CD:EF");
    assert_eq!(p.build(&[]), strs(&["dhcp", "pxe:node02"]));
    assert!(!p.path(ENTRY2).exists(), "the old entry must be gone");
    assert_eq!(
        p.read("out/tftp/pxelinux.cfg/01-52-54-00-ab-cd-ef"),
        entry.replace("12:34:57", "ab:cd:ef")
    );
    assert!(p
        .path("out/tftp/efi64/pxelinux.cfg/01-52-54-00-ab-cd-ef")
        .exists());
    assert!(!p
        .path("out/tftp/efi64/pxelinux.cfg/01-52-54-00-12-34-57")
        .exists());
    assert!(p
        .read("out/dnsmasq/ddc.hosts")
        .contains("\n52:54:00:ab:cd:ef,192.0.2.12,node02\n"));
}

#[test]
fn ip_change_reruns_dhcp_only() {
    let p = Project::new();
    p.build(&[]);
    p.edit("Ddcfile.toml", "192.0.2.12", "192.0.2.99");
    assert_eq!(p.build(&[]), strs(&["dhcp"]));
    assert!(p
        .read("out/dhcp/ddc.conf")
        .contains("fixed-address 192.0.2.99;"));
}

#[test]
fn hostname_change_writes_the_entry_under_its_new_task_and_keeps_the_file() {
    let p = Project::new();
    p.build(&[]);
    p.edit("Ddcfile.toml", "\"node02\"", "\"node02b\"");
    assert_eq!(p.build(&[]), strs(&["dhcp", "pxe:node02b"]));
    assert!(p.read(ENTRY2).contains("node02b"));
    assert!(p.read("out/dnsmasq/ddc.hosts").contains(",node02b\n"));
    assert_eq!(p.build(&[]), Vec::<String>::new());
}

#[test]
fn adding_and_removing_a_node() {
    let p = Project::new();
    p.build(&[]);
    let mut text = p.read("Ddcfile.toml");
    text.push_str(
        "\n[[nodes]]\nhostname = \"node03\"\nmac = \"52:54:00:12:34:58\"\nip = \"192.0.2.13\"\n",
    );
    p.write("Ddcfile.toml", &text);
    assert_eq!(p.build(&[]), strs(&["dhcp", "pxe:node03"]));
    assert!(p
        .path("out/tftp/pxelinux.cfg/01-52-54-00-12-34-58")
        .exists());
    p.write("Ddcfile.toml", common::DDCFILE);
    let r = p.ddc(&["build", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(tasks_in(&r.stdout, "ran"), strs(&["dhcp"]));
    assert!(!p
        .path("out/tftp/pxelinux.cfg/01-52-54-00-12-34-58")
        .exists());
    assert!(!p
        .path("out/tftp/efi64/pxelinux.cfg/01-52-54-00-12-34-58")
        .exists());
    assert!(
        r.stderr.contains("pxe:node03 is no longer in the Ddcfile"),
        "{}",
        r.stderr
    );
    assert!(!p.read("out/dhcp/ddc.conf").contains("node03"));
    // The removal is done once: a file written there by hand afterwards stays.
    p.write(
        "out/tftp/pxelinux.cfg/01-52-54-00-12-34-58",
        "an administrator's own entry\n",
    );
    let r = p.ddc(&["build"]);
    assert!(!r.stderr.contains("removed"), "{}", r.stderr);
    assert!(p
        .path("out/tftp/pxelinux.cfg/01-52-54-00-12-34-58")
        .exists());
}

#[test]
fn editing_a_template_reruns_the_tasks_that_render_it() {
    let p = Project::new();
    p.build(&[]);
    p.edit("tasks/templates/pxelinux.cfg.j2", "TIMEOUT 0", "TIMEOUT 10");
    assert_eq!(p.build(&[]), strs(&["pxe:node01", "pxe:node02"]));
    assert!(p.read(ENTRY1).contains("TIMEOUT 10"));
    p.edit(
        "tasks/templates/dnsmasq.conf.j2",
        "enable-tftp",
        "enable-tftp\nlog-dhcp",
    );
    assert_eq!(p.build(&[]), strs(&["dhcp"]));
}

#[test]
fn editing_a_step_script_reruns_that_step_and_what_follows() {
    let p = Project::new();
    p.build(&[]);
    p.edit(
        "tasks/initramfs.sh",
        "initrd $DDC_UNION",
        "initrd v2 $DDC_UNION",
    );
    assert_eq!(
        p.build(&[]),
        strs(&[
            "exports",
            "initramfs:default",
            "publish:default",
            "pxe:node01",
            "pxe:node02"
        ])
    );
}

#[test]
fn a_step_rebuilt_to_identical_output_stops_the_ripple() {
    let p = Project::new();
    p.build(&[]);
    p.edit(
        "tasks/configure.sh",
        "set -eu",
        "set -eu\n# a comment changes nothing in the image",
    );
    assert_eq!(p.build(&[]), strs(&["configure:default"]));
}

#[test]
fn image_cmdline_change_rewrites_the_boot_entries_only() {
    let p = Project::new();
    p.build(&[]);
    p.edit(
        "Ddcfile.toml",
        "cmdline  = \"console=ttyS0\"",
        "cmdline  = \"console=ttyS0 quiet\"",
    );
    assert_eq!(p.build(&[]), strs(&["pxe:node01", "pxe:node02"]));
    assert!(p.read(ENTRY1).contains("ro console=ttyS0 quiet\n"));
}

#[test]
fn a_deleted_or_edited_output_is_restored() {
    let p = Project::new();
    p.build(&[]);
    let entry = p.read(ENTRY1);
    std::fs::remove_file(p.path(ENTRY1)).unwrap();
    let r = p.ddc(&["build", "-n"]);
    assert!(
        r.stdout.contains(
            "would run pxe:node01: output missing: out/tftp/pxelinux.cfg/01-52-54-00-12-34-56"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(p.build(&[]), strs(&["pxe:node01"]));
    assert_eq!(p.read(ENTRY1), entry);
    p.write("out/dhcp/ddc.conf", "garbage\n");
    assert_eq!(p.build(&[]), strs(&["dhcp"]));
    assert!(p.read("out/dhcp/ddc.conf").contains("host node01"));
}

#[test]
fn dry_run_says_why_and_runs_nothing() {
    let p = Project::new();
    p.build(&[]);
    p.edit(
        "Ddcfile.toml",
        "\"nfs-common\"]",
        "\"nfs-common\", \"htop\"]",
    );
    let r = p.ddc(&["build", "-n"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout
            .contains("would run packages:default: input changed: images.default.packages\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("ddc: dry run: 7 would run, 3 cached"),
        "{}",
        r.stdout
    );
    let r = p.ddc(&["build", "-n", "--json"]);
    assert_eq!(tasks_in(&r.stdout, "stale").len(), 7);
    assert_eq!(tasks_in(&r.stdout, "cached").len(), 3);
    // Nothing ran: the same 7 are still stale.
    let r = p.ddc(&["build", "-n", "--json"]);
    assert_eq!(tasks_in(&r.stdout, "stale").len(), 7);
}

#[test]
fn a_failing_step_exits_1_with_its_log_and_stops_dependents() {
    let p = Project::new();
    p.edit(
        "Ddcfile.toml",
        "\"nfs-common\"]",
        "\"nfs-common\", \"does-not-exist\"]",
    );
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("error: packages:default failed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("cache/logs/packages:default.log"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("E: Unable to locate package does-not-exist"),
        "{}",
        r.stderr
    );
    let log = p.read("cache/logs/packages:default.log");
    assert!(log.contains("Unable to locate package"));
    let r = p.ddc(&["build", "--json", "-k"]);
    assert_eq!(r.code, 1);
    assert_eq!(tasks_in(&r.stdout, "failed"), strs(&["packages:default"]));
    // Independent work finished with -k; dependents were skipped.
    assert!(tasks_in(&r.stdout, "skipped").contains(&"pxe:node01".to_string()));
    assert!(p.path("out/dhcp/ddc.conf").exists());
    // The good stage before is kept: fixing the list does not rerun debootstrap.
    p.write("Ddcfile.toml", common::DDCFILE);
    let ran = p.build(&[]);
    assert!(!ran.contains(&"debootstrap:default".to_string()), "{ran:?}");
}

#[test]
fn named_targets_build_only_what_they_need() {
    let p = Project::new();
    assert_eq!(p.build(&["dhcp"]), strs(&["dhcp"]));
    assert_eq!(
        p.build(&["pxe:node01"]),
        strs(&[
            "bootloader",
            "configure:default",
            "debootstrap:default",
            "initramfs:default",
            "packages:default",
            "publish:default",
            "pxe:node01"
        ])
    );
    let r = p.ddc(&["build", "nonsense:task"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no task \"nonsense:task\""),
        "{}",
        r.stderr
    );
}

#[test]
fn clean_forgets_so_the_next_build_reruns_but_keeps_what_nodes_use() {
    let p = Project::new();
    p.build(&[]);
    let r = p.ddc(&["clean", "packages:default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("forgot 7 task records"), "{}", r.stdout);
    assert!(p.path(ENTRY1).exists());
    assert_eq!(
        p.build(&[]),
        strs(&[
            "configure:default",
            "exports",
            "initramfs:default",
            "packages:default",
            "publish:default",
            "pxe:node01",
            "pxe:node02"
        ])
    );
    let r = p.ddc(&["clean"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("the next build reruns everything"),
        "{}",
        r.stdout
    );
    assert!(p.path(ENTRY1).exists() && p.path("out/nfsroot/default").exists());
    assert_eq!(p.build(&[]), strs(ALL));
}

/// A running `ddc build` whose step waits for a file: dropping it creates
/// the file and waits for the build, so a failed test leaves nothing running.
struct Held {
    child: Option<std::process::Child>,
    release: std::path::PathBuf,
}

impl Held {
    fn release(mut self) -> std::process::Output {
        std::fs::write(&self.release, "").unwrap();
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.release, "");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

/// Waits (up to a minute, a test failure) until `path` exists.
fn wait_for_file(path: &std::path::Path, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Starts a real build whose configure step says it started, then waits for
/// the test to release it; returns once the step runs (the lock is held).
fn hold(p: &Project) -> Held {
    let started = p.path("configure-started");
    let release = p.path("configure-release");
    p.write(
        "tasks/configure.sh",
        &format!(
            "#!/bin/sh\nset -eu\ntouch '{}'\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n",
            started.display(),
            release.display()
        ),
    );
    let holder = Held {
        child: Some(
            p.command(&["build"])
                .stderr(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        ),
        release,
    };
    wait_for_file(&started, "the holder's configure step");
    holder
}

#[test]
fn a_second_build_waits_for_the_first_or_fails_with_no_wait() {
    let p = Project::new();
    let holder = hold(&p);
    let holder_pid = holder.child.as_ref().unwrap().id();

    // --no-wait fails at once, naming the process that holds the lock.
    let r = p.ddc(&["build", "--no-wait"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("is in use by ddc (pid {holder_pid}: ")),
        "the message must name the holder, pid {holder_pid}:\n{}",
        r.stderr
    );

    // Without it, the second build says whom it waits for, and waits.
    let mut waiter = p
        .command(&["build", "--json"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(waiter.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(n > 0, "the second build ended without waiting:\n{said}");
        said.push_str(&line);
        if line.contains("waiting for") {
            break;
        }
    }
    assert!(
        said.contains(&format!("waiting for ddc (pid {holder_pid}: ")),
        "the second build must name the holder, pid {holder_pid}:\n{said}"
    );
    // It is blocked on the lock: the holder is still in its step.
    assert!(holder_still_running(holder_pid));
    let out = holder.release();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{said}{rest}");
    // It waited for the holder's build and found everything done.
    assert_eq!(
        tasks_in(&String::from_utf8_lossy(&out.stdout), "ran"),
        Vec::<String>::new()
    );
}

/// README: 2 when "the build cannot start"; 1 is for a failed task.
#[test]
fn no_wait_on_a_busy_cache_exits_2() {
    let p = Project::new();
    let holder = hold(&p);
    let r = p.ddc(&["build", "--no-wait"]);
    assert!(r.stderr.contains("is in use by ddc (pid"), "{}", r.stderr);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(holder.release().status.code(), Some(0));
}

/// Whether `pid` is a live process (not a zombie).
fn holder_still_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[test]
fn concurrent_builds_never_interleave() {
    let p = Project::new();
    let children: Vec<_> = (0..3)
        .map(|_| {
            p.command(&["build", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ran_total = 0;
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        ran_total += tasks_in(&String::from_utf8_lossy(&o.stdout), "ran").len();
    }
    // Serialized: the first ran everything, the others found it cached.
    assert_eq!(ran_total, ALL.len());
}

#[test]
fn graph_shows_state_and_renders_with_graphviz() {
    let p = Project::new();
    let r = p.ddc(&["graph"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains(
            "packages:default             stale (dependency would run: debootstrap:default"
        ),
        "{}",
        r.stdout
    );
    p.build(&[]);
    let r = p.ddc(&["graph"]);
    assert!(
        r.stdout
            .contains("pxe:node01                   fresh  <- publish:default, bootloader"),
        "{}",
        r.stdout
    );
    let r = p.ddc(&["graph", "--format", "dot"]);
    let svg = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(r.stdout.as_bytes())?;
            c.wait_with_output()
        })
        .expect("graphviz's dot must be installed (apt-get install graphviz)");
    assert!(svg.status.success());
    assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
    let r = p.ddc(&["graph", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), ALL.len());
}

#[test]
fn graph_folds_many_nodes() {
    let mut text = common::DDCFILE.to_string();
    for i in 3..40 {
        text.push_str(&format!(
            "\n[[nodes]]\nhostname = \"n{i}\"\nmac = \"52:54:00:00:00:{i:02x}\"\nip = \"192.0.2.{}\"\n",
            100 + i
        ));
    }
    let p = Project::with(&text);
    p.build(&[]);
    p.edit("Ddcfile.toml", "52:54:00:00:00:05", "52:54:00:00:01:05");
    let r = p.ddc(&["graph"]);
    assert!(
        r.stdout.contains("pxe: 39 nodes, 1 stale\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn nodes_from_a_csv_inventory() {
    let p = Project::new();
    p.edit(
        "Ddcfile.toml",
        "tasks_dir = \"tasks\"",
        "tasks_dir = \"tasks\"\nnodes_file = \"nodes.csv\"",
    );
    p.write("nodes.csv", "hostname,mac,ip\nrack1-01,52:54:00:aa:00:01,192.0.2.101\nrack1-02,52:54:00:aa:00:02,192.0.2.102\n");
    let ran = p.build(&[]);
    assert!(ran.contains(&"pxe:rack1-02".to_string()), "{ran:?}");
    assert!(p.read("out/dhcp/ddc.conf").contains("host rack1-01 {"));
    // A duplicate across both sources is caught, with both places.
    p.write(
        "nodes.csv",
        "hostname,mac,ip\nnode01,52:54:00:aa:00:01,192.0.2.101\n",
    );
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("error: nodes.csv: row 2: hostname: \"node01\" is already used by the node at Ddcfile.toml:"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_config_exits_2_naming_file_line_and_key() {
    let p = Project::new();
    p.edit("Ddcfile.toml", "52:54:00:12:34:57", "52:54:00:12:34");
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr.trim(),
        "error: Ddcfile.toml:29:12: mac: \"52:54:00:12:34\" is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)"
    );
    assert!(!p.path("cache").exists(), "nothing may run on a bad config");
    let r = p.ddc(&["-f", "nope.toml", "build"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("nope.toml: cannot read the Ddcfile"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_second_ddcfile_cannot_use_the_first_ones_cache() {
    let p = Project::new();
    p.build(&[]);
    p.write("other.toml", &common::DDCFILE.replace("out/", "out2/"));
    let r = p.ddc(&["-f", "other.toml", "build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("belongs to"), "{}", r.stderr);
    assert!(p
        .path("out/tftp/pxelinux.cfg/01-52-54-00-12-34-56")
        .exists());
    assert!(!p.path("out2").exists());
}

#[test]
fn a_kernel_that_is_a_symlink_in_the_image_is_not_published() {
    let p = Project::new();
    p.write(
        "tasks/initramfs.sh",
        "#!/bin/sh\nset -eu\nln -sf /etc/shadow \"$DDC_ROOTFS/boot/vmlinuz-9.9\"\nln -sf /etc/shadow \"$DDC_ROOTFS/boot/initrd.img-9.9\"\n",
    );
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("has no boot/vmlinuz-VERSION"),
        "{}",
        r.stderr
    );
    assert!(!p.path("out/tftp/default").exists());
}

#[test]
fn a_path_that_would_split_a_kernel_line_is_refused() {
    let p = Project::new();
    p.edit(
        "Ddcfile.toml",
        "nfs_root  = \"out/nfsroot\"",
        "nfs_root  = \"out/nfs root,x\"",
    );
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("Ddcfile.toml:9:13: paths.nfs_root: ")
            && r.stderr.contains("has ' ' in it"),
        "{}",
        r.stderr
    );
}

// ------------------------------------------------- the build cannot start

#[test]
fn not_root_exits_2_naming_root_and_the_tasks() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs ddc as nobody through setpriv: run it as root (CI does)"
    );
    let p = Project::new();
    p.edit("tasks/debootstrap.sh", "set -eu", "# ddc: root\nset -eu");
    // nobody may read and write the project: only the missing root stops it.
    let o = std::process::Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(p.dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_ddc"))
        .arg("build")
        .current_dir(p.dir.path())
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("root: debootstrap:default") && stderr.contains("run ddc build as root"),
        "{stderr}"
    );
    assert!(
        !p.path("cache/logs/debootstrap:default.log").exists(),
        "a task ran"
    );
    // The same project as root builds.
    assert!(p.build(&[]).contains(&"debootstrap:default".to_string()));
}

#[test]
fn a_missing_program_exits_2_naming_its_package() {
    let p = Project::new();
    // A PATH without mmdebstrap (the default bootstrapper) and rsync.
    let empty = tempfile::tempdir().unwrap();
    let r = Run::of(p.command(&["build"]).env("PATH", empty.path()));
    assert_eq!(r.code, 2, "{}", r.stderr);
    // Installed here but not in that PATH: named with the folder to add
    // (tests/install.rs hides them to see the packages named).
    for line in [
        "program mmdebstrap (debootstrap:default): not in PATH",
        "program rsync (publish:default): not in PATH",
    ] {
        assert!(r.stderr.contains(line), "{line:?} not in:\n{}", r.stderr);
    }
    assert!(!p.path("out").exists(), "a task ran");
    // Tasks that need no program still run when asked for alone.
    let r = Run::of(p.command(&["build", "dhcp"]).env("PATH", empty.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

// ------------------------------------------------------------ -j N

/// Three images, so three chains of heavy tasks could run side by side.
fn three_images() -> Project {
    let extra = "\n[images.b]\nsuite = \"bookworm\"\npackages = [\"linux-image-amd64\"]\n\
                 \n[images.c]\nsuite = \"bookworm\"\npackages = [\"linux-image-amd64\"]\n\n[[nodes]]";
    Project::with(&common::DDCFILE.replacen("\n[[nodes]]", extra, 1))
}

/// Makes `step`'s script mark itself running in `p/running/`, wait until
/// `want` steps are marked (or `tenths` tenths of a second), note the most
/// it saw marked in `p/counts`, and, if `leave`, unmark itself.
fn count_running(p: &Project, step: &str, want: usize, tenths: u32, leave: bool) {
    let running = p.path("running");
    let counts = p.path("counts");
    p.edit(
        &format!("tasks/{step}.sh"),
        "set -eu\n",
        &format!(
            "set -eu\n\
             r='{r}'; mkdir -p \"$r\"; me=\"$r/$DDC_IMAGE-{step}\"; : > \"$me\"\n\
             m=0; i=0\n\
             while :; do\n\
             \x20   n=$(ls \"$r\" | wc -l)\n\
             \x20   if [ \"$n\" -gt \"$m\" ]; then m=$n; fi\n\
             \x20   if [ \"$n\" -ge {want} ] || [ $i -ge {ticks} ]; then break; fi\n\
             \x20   sleep 0.05; i=$((i+1))\n\
             done\n\
             echo \"$DDC_IMAGE-{step} $m\" >> '{c}'\n\
             {unmark}\n",
            r = running.display(),
            c = counts.display(),
            ticks = tenths * 2,
            unmark = if leave { "rm -f \"$me\"" } else { "" },
        ),
    );
}

/// The counts noted, one per step run.
fn counts(p: &Project) -> Vec<(String, usize)> {
    p.read("counts")
        .lines()
        .map(|l| {
            let (step, n) = l.split_once(' ').unwrap();
            (step.to_string(), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn jobs_caps_how_many_heavy_tasks_run_at_once() {
    for jobs in [1usize, 2] {
        let p = three_images();
        for step in ["debootstrap", "packages", "configure", "initramfs"] {
            // Each step lingers until one more than allowed runs beside it.
            count_running(&p, step, jobs + 1, 3, true);
        }
        let n = jobs.to_string();
        let ran = p.build(&["-j", &n]);
        assert_eq!(ran.len(), 3 * 5 + 5, "{ran:?}");
        let c = counts(&p);
        assert_eq!(c.len(), 12, "every step of the three images ran: {c:?}");
        let most = c.iter().map(|(_, n)| *n).max().unwrap();
        assert!(
            most <= jobs,
            "-j {jobs}: {most} image steps ran at once: {c:?}"
        );
    }
}

/// The control: the steps above can see steps running beside them.
#[test]
fn jobs_3_runs_the_three_images_side_by_side() {
    let p = three_images();
    // Each debootstrap waits (a minute at most) until all three have
    // started; none leaves before, so all three run at that moment.
    count_running(&p, "debootstrap", 3, 600, false);
    p.build(&["-j", "3"]);
    let c = counts(&p);
    assert_eq!(c.len(), 3, "{c:?}");
    assert!(
        c.iter().all(|(_, n)| *n == 3),
        "-j 3 did not run the three debootstraps at once: {c:?}"
    );
}

// ------------------------------------------------------------ copy staging

/// Every entry of a tree: its type, mode and content (or link target).
fn tree(root: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(e.path()).unwrap().display())
            } else if m.is_dir() {
                "dir".to_string()
            } else {
                format!(
                    "file {}",
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap())
                )
            };
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            (rel, format!("{:o} {what}", m.permissions().mode()))
        })
        .collect()
}

/// The current generation of `default`, and its tree.
fn published(p: &Project) -> (String, std::collections::BTreeMap<String, String>) {
    let g = std::fs::read_link(p.path("out/nfsroot/default/current"))
        .unwrap()
        .display()
        .to_string();
    let t = tree(&p.path(&format!("out/nfsroot/default/{g}")));
    (g, t)
}

/// A boot entry with the project folder and generation name taken out.
fn entry_shape(p: &Project, generation: &str) -> String {
    p.read(ENTRY1)
        .replace(&p.dir.path().display().to_string(), "[DIR]")
        .replace(generation, "[GEN]")
}

/// `DDC_STAGING=copy` (the mode without root) gives what overlay layers give.
#[test]
fn copy_staging_publishes_what_layers_publish() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test compares overlayfs layers (root only) with copies: run it as root (CI does)"
    );
    let layers = Project::new();
    let copies = Project::new();
    let build = |p: &Project, copy: bool| {
        let mut c = p.command(&["build", "--json"]);
        if copy {
            c.env("DDC_STAGING", "copy");
        } else {
            c.env_remove("DDC_STAGING");
        }
        let r = Run::of(&mut c);
        assert_eq!(r.code, 0, "{}", r.stderr);
        tasks_in(&r.stdout, "ran")
    };
    assert_eq!(build(&layers, false), strs(ALL));
    assert_eq!(build(&copies, true), strs(ALL));
    // Each mode is what it says: a layer holds only what its step changed,
    // a copy the whole tree.
    let step_out = |p: &Project| p.path("cache/images/default/packages/etc/debian_version");
    assert!(!step_out(&layers).exists(), "packages is not a layer");
    assert!(step_out(&copies).exists(), "packages is not a copy");
    let (gl, tl) = published(&layers);
    let (gc, tc) = published(&copies);
    assert!(tl.contains_key("var/lib/dpkg/packages"), "{tl:?}");
    assert_eq!(tl, tc, "the published trees differ");
    assert_eq!(entry_shape(&layers, &gl), entry_shape(&copies, &gc));
    // The same edits rerun the same tasks and publish the same trees.
    for p in [&layers, &copies] {
        p.edit(
            "Ddcfile.toml",
            "\"nfs-common\"]",
            "\"nfs-common\", \"htop\"]",
        );
        p.edit(
            "tasks/configure.sh",
            "set -eu",
            "set -eu\nrm -f \"$DDC_ROOTFS/etc/debian_version\"",
        );
    }
    let (rl, rc) = (build(&layers, false), build(&copies, true));
    assert_eq!(rl, rc);
    assert!(rl.contains(&"packages:default".to_string()), "{rl:?}");
    let (gl2, tl) = published(&layers);
    let (gc2, tc) = published(&copies);
    assert!(gl2 != gl && gc2 != gc, "no new generation");
    assert!(
        !tl.contains_key("etc/debian_version"),
        "a deletion in a layer was not published"
    );
    assert_eq!(tl, tc, "the published trees differ after the edits");
    assert_eq!(entry_shape(&layers, &gl2), entry_shape(&copies, &gc2));
    // Nothing left to do in either mode.
    assert_eq!(build(&layers, false), Vec::<String>::new());
    assert_eq!(build(&copies, true), Vec::<String>::new());
}

/// A layer whose root's stamp moved (a chmod, an rsync) is hashed before it
/// is judged, never trusted and never taken as changed unseen: unchanged,
/// nothing reruns; a file changed inside it, its step reruns. (Cached heavy
/// tasks are decided on the scheduler's thread by stamps alone; this one
/// must be handed on and decided in full.)
#[test]
fn a_layer_whose_root_moved_is_hashed_before_it_is_judged() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    p.build(&[]);
    let layer = p.path("cache/images/default/packages");
    let touch_root = || {
        let mode = std::fs::metadata(&layer).unwrap().permissions().mode();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(&layer, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    touch_root();
    assert_eq!(p.build(&[]), Vec::<String>::new(), "same files, root moved");
    assert_eq!(p.build(&[]), Vec::<String>::new());
    let file = walkdir::WalkDir::new(&layer)
        .into_iter()
        .flatten()
        .find(|e| e.file_type().is_file())
        .expect("a file in the layer")
        .into_path();
    let mut text = std::fs::read(&file).unwrap();
    text.extend_from_slice(b"# edited by hand\n");
    std::fs::write(&file, text).unwrap();
    touch_root();
    let ran = p.build(&[]);
    assert!(ran.contains(&"packages:default".to_string()), "{ran:?}");
    assert!(!ran.contains(&"debootstrap:default".to_string()), "{ran:?}");
}

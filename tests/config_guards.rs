//! What the Ddcfile's validation guards against, through the real binary: a
//! copied cluster folder, the Ddcfile reached through a symlink, and outputs
//! that would overwrite the Ddcfile, the step scripts, the cache or each other.

mod common;

use std::path::Path;
use std::process::Command;

use common::{kill_loop::snapshot, strs, tasks_in, Project, ALL};

/// `cp -a FROM TO`, as an administrator copies a cluster folder.
fn cp_a(from: &Path, to: &Path) {
    let s = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(s.success(), "cp -a {} {}", from.display(), to.display());
}

/// A project whose folder is a `cp -a` copy of `p`'s.
fn copy_of(p: &Project) -> Project {
    let q = Project::new();
    std::fs::remove_dir_all(q.dir.path()).unwrap();
    cp_a(p.dir.path(), q.dir.path());
    q
}

#[test]
fn a_copied_cluster_folder_never_builds_the_original() {
    let a = Project::new();
    assert_eq!(a.build(&[]), strs(ALL));
    // The second run is the one that finds cache/ and keeps the config there.
    assert_eq!(a.build(&[]), Vec::<String>::new());
    assert!(a.path("cache/config.bin").exists());
    let a_out = snapshot(&a.path("out"));
    let a_cache = snapshot(&a.path("cache/state"));

    let b = copy_of(&a);
    std::fs::remove_dir_all(b.path("out")).unwrap();
    b.edit("Ddcfile.toml", "52:54:00:12:34:57", "52:54:00:ab:cd:ef");
    let r = b.ddc(&["build"]);
    assert!(!r.stdout.contains("0 ran"), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(snapshot(&a.path("out")), a_out, "the copy wrote into A");
    assert_eq!(snapshot(&a.path("cache/state")), a_cache);
    // The copied cache names A's files: B refuses it and says what to do.
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let b_cache = b.path("cache");
    let b_cache = std::fs::canonicalize(&b_cache).unwrap();
    assert!(
        r.stderr.contains("was copied or moved")
            && r.stderr.contains(&format!("rm -r {}", b_cache.display())),
        "{}",
        r.stderr
    );
    // The advice works: B then builds into its own folder, A stays as it was.
    std::fs::remove_dir_all(&b_cache).unwrap();
    assert_eq!(b.build(&[]), strs(ALL));
    assert!(b
        .path("out/tftp/pxelinux.cfg/01-52-54-00-ab-cd-ef")
        .exists());
    assert!(b
        .read("out/dnsmasq/ddc.hosts")
        .contains("52:54:00:ab:cd:ef,192.0.2.12,node02"));
    assert_eq!(snapshot(&a.path("out")), a_out, "B's build wrote into A");
    assert_eq!(a.build(&[]), Vec::<String>::new());
}

#[test]
fn the_ddcfile_through_a_symlink_is_the_same_ddcfile() {
    let p = Project::new();
    assert_eq!(p.build(&[]), strs(ALL));
    std::os::unix::fs::symlink("Ddcfile.toml", p.path("link.toml")).unwrap();
    let r = p.ddc(&["-f", "link.toml", "build", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(tasks_in(&r.stdout, "ran"), Vec::<String>::new());
    // From another folder too: the Ddcfile's own folder holds its outputs
    // and its cache.
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("cluster.toml");
    std::os::unix::fs::symlink(p.path("Ddcfile.toml"), &link).unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_ddc"))
        .arg("-f")
        .arg(&link)
        .args(["build", "--json"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(tasks_in(&stdout, "ran"), Vec::<String>::new());
    assert!(!elsewhere.path().join("cache").exists());
    assert!(!elsewhere.path().join("out").exists());
}

#[test]
fn a_files_tree_removed_after_a_build_is_reported_once_where_it_is_named() {
    let p = Project::new();
    std::fs::create_dir(p.path("files")).unwrap();
    p.edit(
        "Ddcfile.toml",
        "union    = \"overlay\"",
        "union    = \"overlay\"\nfiles    = \"files\"",
    );
    p.build(&[]);
    p.build(&[]);
    std::fs::remove_dir(p.path("files")).unwrap();
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let dir = std::fs::canonicalize(p.dir.path()).unwrap();
    assert_eq!(
        r.stderr.trim(),
        format!(
            "error: Ddcfile.toml:20:12: images.default.files: \"files\" is not a folder ({}/files); create it or remove the key",
            dir.display()
        )
    );
}

/// A built project whose Ddcfile then gets `to` for `from`: the build is
/// refused with exit 2 and a FILE:LINE:COL error containing `want`, and
/// nothing in the project folder changes (the Ddcfile, the step scripts,
/// the cache, the outputs).
fn refused(from: &str, to: &str, want: &str) {
    let p = Project::new();
    p.build(&[]);
    p.edit("Ddcfile.toml", from, to);
    let before = snapshot(p.dir.path());
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 2, "{to}: {}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.starts_with("error: Ddcfile.toml:") && r.stderr.contains(want),
        "{to}: {}",
        r.stderr
    );
    assert!(r.stderr.contains("give "), "says what to do: {}", r.stderr);
    let after = snapshot(p.dir.path());
    assert!(
        after == before,
        "{to}: the refused build changed {:?}",
        after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, _)| k)
            .chain(before.keys().filter(|k| !after.contains_key(*k)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn an_output_on_the_ddcfile_is_refused() {
    refused(
        "dhcpd     = \"out/dhcp/ddc.conf\"",
        "dhcpd     = \"Ddcfile.toml\"",
        ":12:13: paths.dhcpd: ",
    );
    refused(
        "dhcpd     = \"out/dhcp/ddc.conf\"",
        "dhcpd     = \"./out/../Ddcfile.toml\"",
        "Ddcfile.toml is the Ddcfile",
    );
}

#[test]
fn an_output_on_a_step_script_is_refused() {
    refused(
        "dnsmasq   = \"out/dnsmasq.d/ddc.conf\"",
        "dnsmasq   = \"tasks/configure.sh\"",
        ":13:13: paths.dnsmasq: ",
    );
    // Through a symlinked folder.
    let p = Project::new();
    std::os::unix::fs::symlink("tasks", p.path("scripts")).unwrap();
    p.edit(
        "Ddcfile.toml",
        "ganesha   = \"out/ganesha/ddc.conf\"",
        "ganesha   = \"scripts/packages.sh\"",
    );
    let script = p.read("tasks/packages.sh");
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(":11:13: paths.ganesha: ")
            && r.stderr.contains("is inside the tasks folder")
            && r.stderr.contains("(through symlinks: "),
        "{}",
        r.stderr
    );
    assert_eq!(p.read("tasks/packages.sh"), script);
}

#[test]
fn outputs_and_roots_in_the_cache_are_refused() {
    refused(
        "exports   = \"out/exports.d/ddc.exports\"",
        "exports   = \"cache/state/journal\"",
        ":10:13: paths.exports: ",
    );
    refused(
        "nfs_root  = \"out/nfsroot\"",
        "nfs_root  = \"cache/nfsroot\"",
        ":9:13: paths.nfs_root: ",
    );
}

#[test]
fn overlapping_outputs_and_roots_are_refused() {
    refused(
        "ganesha   = \"out/ganesha/ddc.conf\"",
        "ganesha   = \"out/exports.d/ddc.exports\"",
        ":11:13: paths.ganesha: ",
    );
    refused(
        "nfs_root  = \"out/nfsroot\"",
        "nfs_root  = \"out/tftp\"",
        ":9:13: paths.nfs_root: ",
    );
    refused(
        "dhcpd     = \"out/dhcp/ddc.conf\"",
        "dhcpd     = \"out/tftp/ddc.conf\"",
        "is inside the TFTP root",
    );
}

/// `nodes_file` naming a device or a FIFO: a clear error at once, never a
/// build that eats the memory or hangs.
#[test]
fn a_nodes_file_that_is_no_file_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("nodes.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for target in ["/dev/zero".to_string(), fifo.display().to_string()] {
        let p = common::Project::new();
        p.edit(
            "Ddcfile.toml",
            "tasks_dir = \"tasks\"",
            &format!("tasks_dir = \"tasks\"\nnodes_file = \"{target}\""),
        );
        let mut child = p
            .command(&["build", "-n"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A hang detector, not a speed check.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{target}: {err}");
        assert!(err.contains("not a regular file"), "{target}: {err}");
    }
}

//! The image pipeline for real (root, the Debian mirror, minutes): the
//! example image is built with the built-in step scripts (no tasks folder),
//! then a package change and an override of the init-bottom hook in
//! tasks_dir rerun exactly the steps they should.
//! Runs with `DDC_E2E=1` or in CI, like the end-to-end test; prints the
//! times and the cache's disk use for the README.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::{mounts_under, repo, tasks_in};

fn wanted() -> bool {
    std::env::var("DDC_E2E").is_ok_and(|v| v == "1") || std::env::var_os("CI").is_some()
}

fn du(path: &Path) -> String {
    let o = Command::new("du")
        .args(["-sh", "--one-file-system"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

/// Processes whose root directory is inside `dir`: a service started in the image.
fn processes_rooted_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(root) = std::fs::read_link(e.path().join("root")) {
            if root.starts_with(dir) {
                out.push(format!(
                    "{} {}",
                    e.file_name().to_string_lossy(),
                    root.display()
                ));
            }
        }
    }
    out
}

struct Build {
    ran: Vec<String>,
    seconds: f64,
}

fn build(dir: &Path) -> Build {
    let start = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(["build", "--json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "ddc build failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Build {
        ran: tasks_in(&stdout, "ran"),
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn lsinitramfs(root: &Path) -> String {
    let boot = root.join("boot");
    let initrd = std::fs::read_dir(&boot)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("initrd.img-")
        })
        .expect("an initrd in the published image");
    let o = Command::new("chroot")
        .arg(root)
        .arg("lsinitramfs")
        .arg(Path::new("/boot").join(initrd.file_name().unwrap()))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "lsinitramfs: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Overrides the init-bottom hook in a tasks_dir that holds nothing else.
fn override_the_hook(d: &Path) {
    let hook = d.join("tasks/initramfs/ddc-union");
    let text = std::fs::read_to_string(repo().join("tasks/initramfs/ddc-union")).unwrap();
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(
        &hook,
        text.replacen("PREREQ=\"\"", "# edited by the test\nPREREQ=\"\"", 1),
    )
    .unwrap();
    let with_less = std::fs::read_to_string(d.join("Ddcfile.toml")).unwrap();
    std::fs::write(
        d.join("Ddcfile.toml"),
        format!("tasks_dir = \"tasks\"\n{with_less}"),
    )
    .unwrap();
}

#[test]
fn the_example_image_builds_and_rebuilds_exactly_what_changed() {
    if !wanted() {
        eprintln!("image pipeline: not run (set DDC_E2E=1, as root): it builds a real image from the Debian mirror");
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the image pipeline test needs root"
    );
    let work = tempfile::Builder::new()
        .prefix("ddc-image-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let d = work.path();
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            common::safe_cleanup(self.0);
        }
    }
    let _unmount = Unmount(d);
    // The package cache of earlier runs, where there is one (it never changes what is built).
    let debs = Path::new("/var/tmp/ddc-e2e-debs");
    std::fs::create_dir_all(d.join("cache/debs")).unwrap();
    if debs.is_dir() {
        let _ = Command::new("cp")
            .arg("-al")
            .arg(format!("{}/.", debs.display()))
            .arg(d.join("cache/debs"))
            .status();
    }
    // No tasks folder: the built-in steps run.
    let ddcfile = std::fs::read_to_string(repo().join("Ddcfile.toml")).unwrap();
    std::fs::write(d.join("Ddcfile.toml"), &ddcfile).unwrap();

    let cold = build(d);
    for step in [
        "debootstrap",
        "packages",
        "configure",
        "initramfs",
        "publish",
    ] {
        assert!(
            cold.ran.contains(&format!("{step}:default")),
            "{:?}",
            cold.ran
        );
    }
    let cache = d.join("cache");
    assert_eq!(
        mounts_under(d),
        Vec::<String>::new(),
        "a mount was left behind"
    );
    assert_eq!(
        processes_rooted_in(d),
        Vec::<String>::new(),
        "a service was started in the image"
    );
    let gen_root = |d: &Path| std::fs::canonicalize(d.join("out/nfsroot/default/current")).unwrap();
    let root = gen_root(d);
    let listing = lsinitramfs(&root);
    assert!(
        listing.contains("overlay.ko"),
        "the initrd has no overlay module"
    );
    assert!(
        listing.contains("scripts/init-bottom/ddc-union"),
        "the initrd has no ddc-union hook"
    );
    assert_eq!(std::fs::read(root.join("etc/hostname")).unwrap(), b"");
    assert_eq!(std::fs::read(root.join("etc/machine-id")).unwrap(), b"");
    assert!(!root.join("usr/sbin/policy-rc.d").exists());
    let fstab = std::fs::read_to_string(root.join("etc/fstab")).unwrap();
    assert!(
        !fstab
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("/")),
        "fstab mounts /:\n{fstab}"
    );
    let disk_one = du(&cache);
    let published_one = du(&d.join("out/nfsroot"));

    let noop = build(d);
    assert_eq!(noop.ran, Vec::<String>::new());

    // A package more: debootstrap does not rerun, the package is installed.
    std::fs::write(
        d.join("Ddcfile.toml"),
        ddcfile.replace("\"systemd-sysv\"]", "\"systemd-sysv\", \"less\"]"),
    )
    .unwrap();
    let pkg = build(d);
    assert!(
        !pkg.ran.contains(&"debootstrap:default".to_string()),
        "{:?}",
        pkg.ran
    );
    assert!(
        pkg.ran.contains(&"packages:default".to_string()),
        "{:?}",
        pkg.ran
    );
    let root2 = gen_root(d);
    assert_ne!(root, root2, "a new generation");
    assert!(root2.join("usr/bin/less").exists(), "less is not installed");
    let disk_two = du(&cache);
    let published_two = du(&d.join("out/nfsroot"));

    // The init-bottom hook overridden in tasks_dir, its only file:
    // initramfs and publish rerun, and the boot entries and exports follow
    // the new generation; no earlier step reruns.
    override_the_hook(d);
    let edit = build(d);
    let mut image_side: Vec<String> = edit
        .ran
        .iter()
        .filter(|t| !t.starts_with("pxe:") && *t != "exports")
        .cloned()
        .collect();
    image_side.sort();
    assert_eq!(
        image_side,
        vec![
            "initramfs:default".to_string(),
            "publish:default".to_string()
        ],
        "{:?}",
        edit.ran
    );
    let root3 = gen_root(d);
    assert!(lsinitramfs(&root3).contains("scripts/init-bottom/ddc-union"));
    assert_eq!(
        mounts_under(d),
        Vec::<String>::new(),
        "a mount was left behind"
    );

    eprintln!("image pipeline on this machine:");
    eprintln!(
        "  cold build (warm .deb cache: {}): {:.0} s",
        debs.is_dir(),
        cold.seconds
    );
    eprintln!("  no-op build: {:.2} s", noop.seconds);
    eprintln!(
        "  package added (packages, configure, initramfs, publish): {:.0} s",
        pkg.seconds
    );
    eprintln!(
        "  init-bottom hook edited (initramfs, publish): {:.0} s",
        edit.seconds
    );
    eprintln!("  cache after one build: {disk_one}; after the package change: {disk_two}");
    eprintln!("  published generations: one {published_one}; two {published_two}");
}

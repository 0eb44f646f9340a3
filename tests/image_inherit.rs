//! Image inheritance for real (root, the Debian mirror, minutes): the
//! example image is built, then a child image `gpu` (`from = "default"`,
//! one more package) is added. The child's build must reuse the base's
//! layers (no `debootstrap:gpu`, no step of the base reruns), hold its
//! package and the base's in its dpkg status, and publish a generation that
//! shares most of its files with the base's by hard links. Then a package
//! added to the base reruns the child from the shared layer down.
//! Ignored by default (`cargo test --release -- --include-ignored` runs it);
//! prints the times and the disk use for the README.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{mounts_under, repo};

fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no {from:?} in:\n{text}");
    text.replacen(from, to, 1)
}

/// `du -sh` of the paths together (a file linked from two counts once).
fn du(paths: &[&Path]) -> String {
    let o = Command::new("du")
        .args(["-sch", "--one-file-system"])
        .args(paths)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let total = text.lines().last().unwrap_or("?");
    total.split_whitespace().next().unwrap_or("?").to_string()
}

/// The regular files of a tree by (device, inode), and how many there are.
fn inodes(root: &Path) -> HashSet<(u64, u64)> {
    walkdir::WalkDir::new(root)
        .same_file_system(true)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let m = e.metadata().unwrap();
            (m.dev(), m.ino())
        })
        .collect()
}

/// The packages dpkg has installed in the image at `root`.
fn installed(root: &Path) -> Vec<String> {
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    let mut out = Vec::new();
    let mut name = None;
    for line in status.lines() {
        if let Some(n) = line.strip_prefix("Package: ") {
            name = Some(n.to_string());
        } else if line == "Status: install ok installed" {
            out.extend(name.take());
        }
    }
    out
}

#[test]
#[ignore = "needs root and the Debian mirror, takes minutes: cargo test --release -- --include-ignored"]
fn a_child_image_reuses_its_base_layers() {
    common::require_root("it builds real images in a chroot");
    let work = common::ImageWork::new("ddc-inherit-");
    let d = work.path();
    let write = |text: &str| std::fs::write(d.join("Ddcfile.toml"), text).unwrap();
    let base_only = std::fs::read_to_string(repo().join("Ddcfile.toml")).unwrap();
    write(&base_only);
    let cold = common::build_json(d);
    assert!(cold.ran.contains(&"debootstrap:default".to_string()));

    // The child: one package more, booted by node02.
    let mut with_child = edit(
        &base_only,
        "[[nodes]]",
        "[images.gpu]\nfrom = \"default\"\npackages = [\"less\"]\n\n[[nodes]]",
    );
    with_child = edit(
        &with_child,
        "ip       = \"192.0.2.12\"",
        "ip       = \"192.0.2.12\"\nimage    = \"gpu\"",
    );
    write(&with_child);
    let child = common::build_json(d);
    let mut want = vec![
        "configure:gpu",
        "dhcp",
        "exports",
        "initramfs:gpu",
        "packages:gpu",
        "publish:gpu",
        "pxe:node02",
    ];
    want.sort();
    assert_eq!(child.ran, want, "only the child's steps run");
    let gen = |image: &str| -> PathBuf {
        std::fs::canonicalize(d.join(format!("out/nfsroot/{image}/current"))).unwrap()
    };
    let (base_gen, child_gen) = (gen("default"), gen("gpu"));
    let pkgs = installed(&child_gen);
    for p in ["less", "linux-image-amd64", "nfs-common", "systemd-sysv"] {
        assert!(pkgs.iter().any(|i| i == p), "{p} not installed in gpu");
    }
    assert!(
        !installed(&base_gen).iter().any(|i| i == "less"),
        "the base got the child's package"
    );
    let (bi, ci) = (inodes(&base_gen), inodes(&child_gen));
    let shared = bi.intersection(&ci).count();
    assert!(
        shared * 2 > ci.len(),
        "only {shared} of the child's {} files are shared with the base",
        ci.len()
    );
    let apart = (du(&[&base_gen]), du(&[&child_gen]));
    let together = du(&[&base_gen, &child_gen]);
    let child_layers = du(&[&d.join("cache/images/gpu")]);
    assert_eq!(mounts_under(d), Vec::<String>::new(), "a mount was left");

    // A package added to the base: the base from packages on, the child from
    // the shared layer down; no debootstrap.
    write(&edit(
        &with_child,
        "\"systemd-sysv\"]",
        "\"systemd-sysv\", \"file\"]",
    ));
    let base_edit = common::build_json(d);
    for t in [
        "packages:default",
        "packages:gpu",
        "configure:gpu",
        "initramfs:gpu",
        "publish:gpu",
    ] {
        assert!(
            base_edit.ran.contains(&t.to_string()),
            "{t}: {:?}",
            base_edit.ran
        );
    }
    assert!(
        !base_edit.ran.iter().any(|t| t.starts_with("debootstrap:")),
        "{:?}",
        base_edit.ran
    );
    let child_gen2 = gen("gpu");
    assert_ne!(child_gen2, child_gen, "a new generation of the child");
    let pkgs = installed(&child_gen2);
    assert!(pkgs.iter().any(|i| i == "file") && pkgs.iter().any(|i| i == "less"));
    assert_eq!(mounts_under(d), Vec::<String>::new(), "a mount was left");

    eprintln!("image inheritance on this machine:");
    eprintln!(
        "  base, cold (warm .deb cache: {}): {:.0} s",
        work.warm_debs, cold.seconds
    );
    eprintln!(
        "  child added (packages, configure, initramfs, publish of gpu): {:.0} s",
        child.seconds
    );
    eprintln!(
        "  a package added to the base (base and child rebuilt): {:.0} s",
        base_edit.seconds
    );
    eprintln!(
        "  generations: base {}, child {} apart; {together} together; {shared} of the child's {} files shared with the base",
        apart.0,
        apart.1,
        ci.len()
    );
    eprintln!("  the child's cache layers: {child_layers}");
}

//! The image pipeline for real (root, the Debian mirror, minutes): the
//! example image, with every image option set (root password hash, SSH
//! keys, NIS, logs to the master, a files tree with owners and modes), is
//! built with the built-in step scripts (no tasks folder) and checked file
//! by file; then a package change, an override of the init-bottom hook in
//! tasks_dir (its text must reach the initrd the nodes boot), `union =
//! "aufs"` on Debian's kernel (a clear refusal) and a switch to debootstrap
//! rerun exactly the steps they should.
//! Ignored by default (`cargo test --release -- --include-ignored` runs it,
//! as `.ci/run` does); prints the times and the cache's disk use for the
//! README.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{mounts_under, repo, strs, tasks_in};

const HASH: &str =
    "$6$ddctestsalt$UGrczPA5ZbGgyrHKMCK91F1gRvnqddVMI0K4JLYVLqPVXDior.niIU5bm/A4w4.S2OZOB0LOeuFfxjHXFtc2v0";
const KEYS: [&str; 2] = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDdcTestKeyDdcTestKeyDdcTestKeyDdcTest0 admin@master",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDdcTestKeyDdcTestKeyDdcTestKeyDdcTest1 backup@master",
];

/// `text` with `from` replaced by `to`; `text` must contain `from`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no {from:?} in:\n{text}");
    text.replacen(from, to, 1)
}

fn run_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
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
    run_ok(
        Command::new("chroot")
            .arg(root)
            .arg("lsinitramfs")
            .arg(Path::new("/boot").join(initrd.file_name().unwrap())),
    )
}

/// The text of `rel` (like `scripts/init-bottom/ddc-union`) in `initrd`,
/// unpacked on the host by unmkinitramfs, whatever the archive's make-up
/// (early cpio archives before the main one, zstd or gzip).
fn file_in_initrd(initrd: &Path, rel: &str) -> String {
    let into = tempfile::Builder::new()
        .prefix("ddc-initrd-")
        .tempdir_in("/var/tmp")
        .unwrap();
    run_ok(Command::new("unmkinitramfs").arg(initrd).arg(into.path()));
    let found: Vec<PathBuf> = walkdir::WalkDir::new(into.path())
        .into_iter()
        .flatten()
        .map(|e| e.into_path())
        .filter(|p| p.ends_with(rel))
        .collect();
    assert_eq!(found.len(), 1, "{rel} in {}: {found:?}", initrd.display());
    std::fs::read_to_string(&found[0]).unwrap()
}

/// uid, gid and permission bits (octal, like `0640`) of `path`, not
/// following a symlink.
fn owner_mode(path: &Path) -> (u32, u32, String) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid(), format!("{:04o}", m.mode() & 0o7777))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the configure step must have made of the image options.
fn check_image_options(root: &Path) {
    // root_password_hash: root's entry in /etc/shadow.
    let shadow = read(&root.join("etc/shadow"));
    let entry = shadow
        .lines()
        .find(|l| l.starts_with("root:"))
        .expect("root in /etc/shadow");
    assert_eq!(entry.split(':').nth(1), Some(HASH), "{entry}");
    // ssh_authorized_keys: root's authorized_keys, root's only.
    assert_eq!(owner_mode(&root.join("root/.ssh")), (0, 0, "0700".into()));
    let ak = root.join("root/.ssh/authorized_keys");
    assert_eq!(owner_mode(&ak), (0, 0, "0600".into()));
    assert_eq!(read(&ak), format!("{}\n{}\n", KEYS[0], KEYS[1]));
    // nis_domain: the domain and ypbind's server, the master.
    assert_eq!(read(&root.join("etc/defaultdomain")), "ddctest\n");
    assert_eq!(
        read(&root.join("etc/yp.conf")),
        "domain ddctest server 192.0.2.1\n"
    );
    // cluster.syslog: everything to the master over UDP, then nothing more:
    // the drop-in is read before rsyslog.conf's rules for the local files.
    let remote = read(&root.join("etc/rsyslog.d/ddc-remote.conf"));
    let rules: Vec<&str> = remote
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(rules, ["*.* @192.0.2.1:514", "& stop"], "{remote}");
    let conf = read(&root.join("etc/rsyslog.conf"));
    let include = conf
        .lines()
        .position(|l| l.contains("/etc/rsyslog.d/*.conf") && !l.starts_with('#'))
        .expect("rsyslog.conf includes rsyslog.d");
    let first_local = conf
        .lines()
        .position(|l| !l.starts_with('#') && l.contains("/var/log/"))
        .expect("rsyslog.conf logs to /var/log");
    assert!(
        include < first_local,
        "rsyslog.d is read after the local rules:\n{conf}"
    );
    run_ok(Command::new("chroot").arg(root).args(["rsyslogd", "-N1"]));
    // files: owners and modes as in the tree, the directory's too.
    assert_eq!(
        owner_mode(&root.join("etc/ddc-test")),
        (1234, 1234, "0750".into())
    );
    let secret = root.join("etc/ddc-test/secret.conf");
    assert_eq!(owner_mode(&secret), (1234, 1235, "0640".into()));
    assert_eq!(read(&secret), "from the files tree\n");
}

#[test]
#[ignore = "needs root and the Debian mirror, takes minutes: cargo test --release -- --include-ignored"]
fn the_example_image_builds_and_rebuilds_exactly_what_changed() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the image pipeline test needs root"
    );
    let work = common::ImageWork::new("ddc-image-");
    let d = work.path();
    // No tasks folder: the built-in steps run.
    // A files tree with owners and modes of its own.
    let tree = d.join("files/etc/ddc-test");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("secret.conf"), "from the files tree\n").unwrap();
    std::os::unix::fs::chown(tree.join("secret.conf"), Some(1234), Some(1235)).unwrap();
    std::os::unix::fs::chown(&tree, Some(1234), Some(1234)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(&tree.join("secret.conf"), 0o640).unwrap();
    mode(&tree, 0o750).unwrap();

    // The example Ddcfile with every image option set.
    let mut ddcfile = std::fs::read_to_string(repo().join("Ddcfile.toml")).unwrap();
    ddcfile = edit(&ddcfile, "# syslog  = true", "syslog  = true");
    ddcfile = edit(
        &ddcfile,
        "\"systemd-sysv\"]",
        "\"systemd-sysv\", \"rsyslog\"]",
    );
    ddcfile = edit(
        &ddcfile,
        "# files = \"tasks/files\"",
        &format!(
            "files = \"files\"\nroot_password_hash = \"{HASH}\"\n\
             ssh_authorized_keys = [\"{}\", \"{}\"]\nnis_domain = \"ddctest\"",
            KEYS[0], KEYS[1]
        ),
    );
    let write_ddcfile = |text: &str| std::fs::write(d.join("Ddcfile.toml"), text).unwrap();
    write_ddcfile(&ddcfile);

    let cold = common::build_json(d);
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
    check_image_options(&root);
    let disk_one = du(&cache);
    let published_one = du(&d.join("out/nfsroot"));

    let noop = common::build_json(d);
    assert_eq!(noop.ran, Vec::<String>::new());

    // A package more: debootstrap does not rerun, the package is installed.
    ddcfile = edit(&ddcfile, "\"rsyslog\"]", "\"rsyslog\", \"less\"]");
    write_ddcfile(&ddcfile);
    let pkg = common::build_json(d);
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

    // The init-bottom hook edited: initramfs and publish rerun, and the boot
    // entries and exports follow the new generation; nothing else runs. The
    // edit's own text must be in the initrd the nodes boot.
    let marker = format!(
        "ddc-test-marker-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // The hook overridden in tasks_dir, its only file: the other steps
    // stay built in.
    let hook = d.join("tasks/initramfs/ddc-union");
    let text = std::fs::read_to_string(repo().join("tasks/initramfs/ddc-union")).unwrap();
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(
        &hook,
        edit(&text, "PREREQ=\"\"", &format!("# {marker}\nPREREQ=\"\"")),
    )
    .unwrap();
    ddcfile = format!("tasks_dir = \"tasks\"\n{ddcfile}");
    write_ddcfile(&ddcfile);
    let hook_edit = common::build_json(d);
    assert_eq!(
        hook_edit.ran,
        strs(&[
            "exports",
            "initramfs:default",
            "publish:default",
            "pxe:node01",
            "pxe:node02"
        ])
    );
    let root3 = gen_root(d);
    assert_ne!(root3, root2, "a new generation");
    let gen = |root: &Path| root.file_name().unwrap().to_string_lossy().into_owned();
    let tftp_initrd = |root: &Path| {
        d.join("out/tftp/default")
            .join(gen(root))
            .join("initrd.img")
    };
    let hook_in = |root: &Path| file_in_initrd(&tftp_initrd(root), "scripts/init-bottom/ddc-union");
    assert!(
        hook_in(&root3).contains(&marker),
        "the edited hook is not in the new initrd"
    );
    assert!(
        !hook_in(&root2).contains(&marker),
        "the old initrd has the edit too: the check proves nothing"
    );
    for mac in ["52-54-00-12-34-56", "52-54-00-12-34-57"] {
        let entry = read(&d.join(format!("out/tftp/pxelinux.cfg/01-{mac}")));
        assert!(
            entry.contains(&format!("INITRD ::/default/{}/initrd.img", gen(&root3)))
                && entry.contains(&format!("nfsroot=192.0.2.1:{},", root3.display())),
            "{mac}'s entry does not boot the new generation:\n{entry}"
        );
    }
    let exports = read(&d.join("out/exports.d/ddc.exports"));
    let ganesha = read(&d.join("out/ganesha/ddc.conf"));
    for r in [&root, &root2, &root3] {
        assert!(
            exports
                .lines()
                .any(|l| l.starts_with(&format!("{} ", r.display()))),
            "{} is not exported:\n{exports}",
            r.display()
        );
        assert!(
            ganesha.contains(&format!("Path = \"{}\";", r.display())),
            "{} is not in the ganesha export:\n{ganesha}",
            r.display()
        );
    }
    assert_eq!(
        mounts_under(d),
        Vec::<String>::new(),
        "a mount was left behind"
    );

    // union = "aufs" on Debian's kernel (no aufs): the initramfs step
    // refuses at once, naming the key and what to do; nodes keep booting
    // the current generation.
    write_ddcfile(&edit(
        &ddcfile,
        "union    = \"overlay\"",
        "union    = \"aufs\"",
    ));
    let o = Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(["build", "--json"])
        .current_dir(d)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert_eq!(tasks_in(&out, "failed"), ["initramfs:default"], "{out}");
    assert!(
        err.contains("images.default.union = \"aufs\", but the image's kernel")
            && err.contains("set images.default.union = \"overlay\""),
        "the refusal does not say what is wrong and what to do:\n{err}"
    );
    let log = read(&d.join("cache/logs/initramfs:default.log"));
    assert!(
        !log.contains("building /boot/initrd.img"),
        "the refusal came after an initrd was built:\n{log}"
    );
    assert_eq!(
        gen_root(d),
        root3,
        "the failed build changed the current generation"
    );
    write_ddcfile(&ddcfile);
    let back = common::build_json(d);
    assert_eq!(back.ran, Vec::<String>::new(), "back to overlay");

    // debootstrap instead of mmdebstrap: every image step reruns, and the
    // image is as complete as before.
    ddcfile = edit(
        &ddcfile,
        "# bootstrapper = \"mmdebstrap\"",
        "bootstrapper = \"debootstrap\"",
    );
    write_ddcfile(&ddcfile);
    let deb = common::build_json(d);
    assert_eq!(
        deb.ran,
        strs(&[
            "configure:default",
            "debootstrap:default",
            "exports",
            "initramfs:default",
            "packages:default",
            "publish:default",
            "pxe:node01",
            "pxe:node02"
        ])
    );
    let log = read(&d.join("cache/logs/debootstrap:default.log"));
    assert!(
        log.contains("ddc: debootstrap bookworm/amd64")
            && log.contains("I: Base system installed successfully."),
        "debootstrap did not build the image:\n{log}"
    );
    let root4 = gen_root(d);
    assert_ne!(root4, root3, "a new generation");
    assert!(lsinitramfs(&root4).contains("overlay.ko"));
    assert!(hook_in(&root4).contains(&marker));
    assert!(root4.join("usr/bin/less").exists(), "less is not installed");
    check_image_options(&root4);
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

    eprintln!("image pipeline on this machine:");
    eprintln!(
        "  cold build (warm .deb cache: {}): {:.0} s",
        work.warm_debs, cold.seconds
    );
    eprintln!("  no-op build: {:.2} s", noop.seconds);
    eprintln!(
        "  package added (packages, configure, initramfs, publish): {:.0} s",
        pkg.seconds
    );
    eprintln!(
        "  init-bottom hook edited (initramfs, publish): {:.0} s",
        hook_edit.seconds
    );
    eprintln!("  rebuilt with debootstrap: {:.0} s", deb.seconds);
    eprintln!("  cache after one build: {disk_one}; after the package change: {disk_two}");
    eprintln!("  published generations: one {published_one}; two {published_two}");
}

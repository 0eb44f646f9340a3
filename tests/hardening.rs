//! Hardening of ddc's own folders, driven by the binary (issue 10, classes
//! 4 to 6): links planted in the cache or the output folders are refused,
//! never written or deleted through; paths inside an image are resolved
//! inside the image; what ddc creates has its own mode whatever the umask.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{Project, Run};

/// Every entry under `dir` (relative path), following no link.
fn entries(dir: &Path) -> Vec<String> {
    common::kill_loop::snapshot(dir).into_keys().collect()
}

fn generation(p: &Project) -> String {
    p.current("default")
}

/// The build refused `rel` as a link, naming it.
fn assert_refused(r: &Run, rel: &str) {
    assert_ne!(r.code, 0, "a build through {rel} succeeded:\n{}", r.stderr);
    assert!(
        r.stderr.contains(rel) && r.stderr.contains("symbolic link"),
        "the refusal does not name {rel} as a link:\n{}",
        r.stderr
    );
}

/// Class 4: the lock, the journal, the build mark, logs, records and trees
/// are never written through a link planted in the cache.
#[test]
fn links_planted_in_the_cache_are_refused_not_written_through() {
    let p = Project::new();
    p.build(&[]);
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    let mut round = 0;
    // Something runs each time, heavy tasks included (their logs, trees).
    let mut change = || {
        round += 1;
        p.write(
            "tasks/configure.sh",
            &format!(
                "{}\n# round {round}\n",
                std::fs::read_to_string(
                    common::repo().join("tests/fixtures/tiny-tasks/configure.sh")
                )
                .unwrap()
            ),
        );
    };
    for file in [
        "cache/lock",
        "cache/state/journal.jsonl",
        "cache/state/building",
    ] {
        std::fs::write(&victim, "precious\n").unwrap();
        let planted = p.path(file);
        let _ = std::fs::remove_file(&planted);
        symlink(&victim, &planted).unwrap();
        change();
        let r = p.ddc(&["build"]);
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "ddc wrote through {file}"
        );
        assert_refused(&r, file);
        std::fs::remove_file(&planted).unwrap();
    }
    for dir in ["cache/logs", "cache/state", "cache/trees"] {
        let target = outside.path().join(dir.replace('/', "-"));
        std::fs::create_dir(&target).unwrap();
        let planted = p.path(dir);
        let kept = p.path(&format!("{dir}.kept"));
        std::fs::rename(&planted, &kept).unwrap();
        symlink(&target, &planted).unwrap();
        change();
        let r = p.ddc(&["build"]);
        assert_eq!(
            entries(&target),
            Vec::<String>::new(),
            "ddc wrote through {dir}"
        );
        assert_refused(&r, dir);
        std::fs::remove_file(&planted).unwrap();
        std::fs::rename(&kept, &planted).unwrap();
    }
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// Class 4: a generation folder that became a link is refused before rsync
/// runs (`--delete` through it would empty the folder it points at).
#[test]
fn a_generation_folder_replaced_by_a_link_is_not_synced_into() {
    let p = Project::new();
    p.build(&[]);
    let gen = generation(&p);
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    let published = p.path(&format!("out/nfsroot/default/{gen}"));
    std::fs::rename(&published, &victim).unwrap();
    std::fs::write(victim.join("precious"), "keep me\n").unwrap();
    symlink(&victim, &published).unwrap();
    // Publish reruns: its kernel is missing.
    std::fs::remove_file(p.path(&format!("out/tftp/default/{gen}/vmlinuz"))).unwrap();
    let r = p.ddc(&["build"]);
    assert!(
        victim.join("precious").exists(),
        "rsync --delete ran through the link"
    );
    assert!(victim.join("etc/debian_version").exists());
    assert_refused(&r, &format!("out/nfsroot/default/{gen}"));
}

/// Class 4: the folders of the TFTP root and the nfs_root ddc writes in are
/// never reached through a link: nothing lands outside.
#[test]
fn links_planted_in_the_output_folders_get_nothing_written_through_them() {
    let p = Project::new();
    p.build(&[]);
    let gen = generation(&p);
    let outside = tempfile::tempdir().unwrap();
    let cases = [
        format!("out/tftp/default/{gen}"),
        "out/tftp/default".to_string(),
        "out/tftp/pxelinux.cfg".to_string(),
        "out/tftp/efi64".to_string(),
        "out/nfsroot/default".to_string(),
    ];
    for (i, rel) in cases.iter().enumerate() {
        let target = outside.path().join(format!("case{i}"));
        std::fs::create_dir(&target).unwrap();
        let planted = p.path(rel);
        let kept = p.path(&format!("{rel}.kept"));
        std::fs::rename(&planted, &kept).unwrap();
        symlink(&target, &planted).unwrap();
        let r = p.ddc(&["build"]);
        assert_eq!(
            entries(&target),
            Vec::<String>::new(),
            "ddc wrote through {rel}:\n{}",
            r.stderr
        );
        assert_refused(&r, rel);
        std::fs::remove_file(&planted).unwrap();
        std::fs::rename(&kept, &planted).unwrap();
    }
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// Class 4: an output that is no longer produced is never deleted through a
/// link: the file of the same name where the link points stays.
#[test]
fn outputs_are_never_deleted_through_a_link() {
    let p = Project::new();
    p.build(&[]);
    let outside = tempfile::tempdir().unwrap();
    let moved = outside.path().join("pxelinux.cfg");
    std::fs::rename(p.path("out/tftp/pxelinux.cfg"), &moved).unwrap();
    symlink(&moved, p.path("out/tftp/pxelinux.cfg")).unwrap();
    // node02 leaves: its entry is to be removed.
    p.edit(
        "Ddcfile.toml",
        "[[nodes]]\nhostname = \"node02\"\nmac      = \"52:54:00:12:34:57\"\nip       = \"192.0.2.12\"\n",
        "",
    );
    let r = p.ddc(&["build"]);
    assert!(
        moved.join("01-52-54-00-12-34-57").exists(),
        "a file was deleted through out/tftp/pxelinux.cfg:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("out/tftp/pxelinux.cfg") && r.stderr.contains("symbolic link"),
        "{}",
        r.stderr
    );
}

/// The master's folder an image's `/boot` points at: a kernel and an initrd
/// only root may read.
fn master_boot() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["vmlinuz-6.6.6", "initrd.img-6.6.6"] {
        let p = d.path().join(f);
        std::fs::write(&p, "MASTER SECRET\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    d
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    common::kill_loop::snapshot(dir)
        .into_iter()
        .filter(|(_, v)| String::from_utf8_lossy(v).contains(needle))
        .map(|(k, _)| k)
        .collect()
}

/// Class 5: an image whose `/boot` is a link to a folder of the master
/// (absolute, or relative with enough `..` to leave the image) publishes
/// nothing of that folder: paths in the image resolve inside the image.
#[test]
fn an_image_boot_link_never_reaches_the_master() {
    let master = master_boot();
    let depth = "../".repeat(40);
    let outside = master.path().display().to_string();
    for link in [outside.clone(), format!("{depth}{}", &outside[1..])] {
        let p = Project::new();
        p.write(
            "tasks/initramfs.sh",
            &format!("#!/bin/sh\nset -eu\nrm -rf \"$DDC_ROOTFS/boot\"\nln -s '{link}' \"$DDC_ROOTFS/boot\"\n"),
        );
        let r = p.ddc(&["build"]);
        assert_eq!(r.code, 1, "{link}: {}", r.stderr);
        assert!(
            r.stderr.contains("has no boot/vmlinuz-VERSION")
                && r.stderr.contains("inside the image"),
            "{link}: {}",
            r.stderr
        );
        assert_eq!(
            files_containing(&p.path("out"), "MASTER SECRET"),
            Vec::<String>::new(),
            "{link}: the master's files reached the outputs"
        );
        assert!(!p.path("out/tftp/default").exists(), "{link}");
    }
    for f in ["vmlinuz-6.6.6", "initrd.img-6.6.6"] {
        let m = std::fs::metadata(master.path().join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }
}

/// Class 5: a link inside the image that stays inside it is resolved there,
/// as the node would: `/boot -> /realboot` publishes the image's own kernel.
#[test]
fn an_image_boot_link_inside_the_image_is_resolved_inside_it() {
    let p = Project::new();
    p.write(
        "tasks/initramfs.sh",
        "#!/bin/sh\nset -eu\nmkdir -p \"$DDC_ROOTFS/realboot\"\necho kernel > \"$DDC_ROOTFS/realboot/vmlinuz-6.1.0-test\"\n\
         echo initrd > \"$DDC_ROOTFS/realboot/initrd.img-6.1.0-test\"\nrm -rf \"$DDC_ROOTFS/boot\"\nln -s /realboot \"$DDC_ROOTFS/boot\"\n",
    );
    p.build(&[]);
    let gen = generation(&p);
    assert_eq!(
        p.read(&format!("out/tftp/default/{gen}/vmlinuz")),
        "kernel\n"
    );
}

/// Class 5: a chroot step's mount points are folders of the image, opened
/// without following a link: an image whose `/dev` links to a folder of the
/// master is refused, and nothing is mounted outside the image.
#[test]
fn a_chroot_mount_point_that_links_out_of_the_image_is_refused() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts in a chroot: run it as root"
    );
    let outside = tempfile::tempdir().unwrap();
    let p = Project::new();
    p.edit(
        "tasks/debootstrap.sh",
        "set -eu",
        &format!(
            "set -eu\nmkdir -p \"$DDC_ROOTFS\"\nln -s '{}' \"$DDC_ROOTFS/dev\"",
            outside.path().display()
        ),
    );
    p.edit("tasks/packages.sh", "set -eu", "# ddc: chroot\nset -eu");
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("refusing to mount on") && r.stderr.contains("symlink in the image"),
        "{}",
        r.stderr
    );
    assert_eq!(common::mounts_under(outside.path()), Vec::<String>::new());
    assert_eq!(entries(outside.path()), Vec::<String>::new());
}

/// The entries under `dir` (following no link) whose mode lets the group or
/// others write, with their modes.
fn writable_by_others(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = std::fs::symlink_metadata(&d).unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        if m.permissions().mode() & 0o022 != 0 {
            out.push((d.clone(), m.permissions().mode() & 0o7777));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

fn mode(p: &Project, rel: &str) -> u32 {
    std::fs::symlink_metadata(p.path(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

/// Class 6: under `umask 000`, nothing ddc creates is group or world
/// writable, and each kind of file and folder has its documented mode.
#[test]
fn the_callers_umask_does_not_change_what_ddc_creates() {
    let p = Project::new();
    // Twice: the second writes the config cache (cache/config.bin).
    for _ in 0..2 {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 000; exec \"$DDC\" build")
            .env("DDC", env!("CARGO_BIN_EXE_ddc"))
            .current_dir(p.dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let mut bad = writable_by_others(&p.path("cache"));
    bad.extend(writable_by_others(&p.path("out")));
    assert_eq!(bad, Vec::<(PathBuf, u32)>::new(), "group or world writable");
    let gen = generation(&p);
    for (rel, want) in [
        ("cache", 0o755),
        ("cache/state", 0o755),
        ("cache/logs", 0o755),
        ("cache/trees", 0o755),
        ("cache/images", 0o755),
        ("cache/debs", 0o755),
        ("cache/lock", 0o644),
        ("cache/ddcfile", 0o644),
        ("cache/config.bin", 0o600),
        ("cache/state/records.bin", 0o644),
        ("cache/logs/publish:default.log", 0o600),
        ("cache/images/default/initramfs", 0o755),
        ("out", 0o755),
        ("out/tftp", 0o755),
        ("out/tftp/pxelinux.cfg", 0o755),
        ("out/tftp/pxelinux.cfg/01-52-54-00-12-34-56", 0o644),
        ("out/tftp/default", 0o755),
        (&format!("out/tftp/default/{gen}") as &str, 0o755),
        (&format!("out/tftp/default/{gen}/vmlinuz") as &str, 0o644),
        ("out/nfsroot", 0o755),
        ("out/nfsroot/default", 0o755),
        (&format!("out/nfsroot/default/{gen}") as &str, 0o755),
        ("out/dhcp", 0o755),
        ("out/dhcp/ddc.conf", 0o644),
        ("out/exports.d/ddc.exports", 0o644),
    ] {
        assert_eq!(mode(&p, rel), want, "{rel}: {:o}", mode(&p, rel));
    }
}

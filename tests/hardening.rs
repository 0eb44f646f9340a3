//! Hardening of ddc's own folders, driven by the binary (issue 10): links
//! planted in the cache or the output folders are refused, never written
//! or deleted through.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::{Project, Run};

/// Every entry under `dir` (relative path), following no link.
fn entries(dir: &Path) -> Vec<String> {
    common::kill_loop::snapshot(dir).into_keys().collect()
}

fn generation(p: &Project) -> String {
    std::fs::read_link(p.path("out/nfsroot/default/current"))
        .unwrap()
        .display()
        .to_string()
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

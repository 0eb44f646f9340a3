//! Published generations are ddc's own and written once: a no-op trusts
//! their roots (and the image layers'), `ddc verify` and `ddc build
//! --verify` look inside, and `ddc diff` compares two generations' manifests.

mod common;

use common::Project;

fn current(p: &Project) -> String {
    p.current("default")
}

#[test]
fn verify_names_edited_added_and_deleted_files() {
    let p = Project::new();
    p.build(&[]);
    let r = p.ddc(&["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("as published"), "{}", r.stdout);
    let root = format!("out/nfsroot/default/{}", current(&p));
    p.write(&format!("{root}/etc/debian_version"), "edited\n");
    p.write(&format!("{root}/etc/planted"), "x\n");
    std::fs::remove_file(p.path(&format!("{root}/etc/ddc-master"))).unwrap();
    let r = p.ddc(&["verify", "default"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    for line in [
        "changed  /etc/debian_version",
        "added    /etc/planted",
        "removed  /etc/ddc-master",
    ] {
        assert!(r.stdout.contains(line), "no {line:?} in:\n{}", r.stdout);
    }
}

#[test]
fn a_no_op_trusts_trees_and_build_verify_looks_inside() {
    let p = Project::new();
    p.build(&[]);
    // Edits deep inside a layer and a generation leave their roots alone.
    let gen = format!("out/nfsroot/default/{}/etc/debian_version", current(&p));
    p.write(&gen, "edited by hand\n");
    p.write(
        "cache/images/default/packages/var/lib/dpkg/packages",
        "edited\n",
    );
    assert!(p.build(&[]).is_empty(), "a no-op looked inside the trees");
    let r = p.ddc(&["build", "--verify", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ran = common::tasks_in(&r.stdout, "ran");
    assert!(
        ran.contains(&"packages:default".to_string())
            && ran.contains(&"publish:default".to_string()),
        "{ran:?}\n{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("output changed: cache/images/default/packages"),
        "{}",
        r.stdout
    );
    // Repaired: the generation is as published again.
    assert_eq!(p.read(&gen).trim(), "bookworm amd64");
    assert!(p.build(&[]).is_empty());
    assert_eq!(p.ddc(&["verify"]).code, 0);
}

#[test]
fn diff_shows_an_added_package_by_name_and_version() {
    let p = Project::new();
    p.build(&[]);
    p.edit("Ddcfile.toml", "\"nfs-common\"", "\"nfs-common\", \"htop\"");
    p.build(&[]);
    let r = p.ddc(&["diff", "default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("  + htop 1.0-test (amd64)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("changed  /var/lib/dpkg/status"),
        "{}",
        r.stdout
    );
    let r = p.ddc(&["diff", "default", "--json"]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["packages"]["added"][0]["name"], "htop");
    assert_eq!(v["packages"]["added"][0]["version"], "1.0-test");
}

/// A project whose image gets `files/` copied over it: a link among them.
fn with_a_link() -> Project {
    let ddcfile = common::DDCFILE.replace(
        "cmdline  = \"console=ttyS0\"",
        "cmdline  = \"console=ttyS0\"\nfiles    = \"files\"",
    );
    let p = Project::with(&ddcfile);
    p.write("files/etc/motd.real", "hello\n");
    std::os::unix::fs::symlink("motd.real", p.path("files/etc/motd")).unwrap();
    p.build(&[]);
    assert_eq!(p.ddc(&["verify"]).code, 0);
    p
}

#[test]
fn verify_sees_a_same_size_edit_with_its_mtime_put_back_a_mode_and_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let p = with_a_link();
    let root = p.path(&format!("out/nfsroot/default/{}", current(&p)));
    // One byte flipped, same size, the old mtime restored (as `touch -r`).
    let f = root.join("etc/debian_version");
    let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replacen("bookworm", "bookwork", 1)).unwrap();
    let file = std::fs::File::options().write(true).open(&f).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), mtime);
    assert_eq!(std::fs::read_to_string(&f).unwrap().len(), text.len());
    // A mode changed, nothing else.
    let m = root.join("etc/ddc-master");
    let mode = std::fs::metadata(&m).unwrap().permissions();
    std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A link pointed elsewhere, and one pointed at a folder outside the tree
    // with files in it: reported as a link, never walked into.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret-file"), "x").unwrap();
    std::fs::remove_file(root.join("etc/motd")).unwrap();
    std::os::unix::fs::symlink("motd.other", root.join("etc/motd")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("etc/outside")).unwrap();
    let r = p.ddc(&["verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "  changed  /etc/ddc-master",
            "  changed  /etc/debian_version",
            "  changed  /etc/motd",
            "  added    /etc/outside",
        ],
        "{}",
        r.stdout
    );
    // Put back as published: as published again.
    std::fs::write(&f, &text).unwrap();
    std::fs::set_permissions(&m, mode).unwrap();
    std::fs::remove_file(root.join("etc/motd")).unwrap();
    std::os::unix::fs::symlink("motd.real", root.join("etc/motd")).unwrap();
    std::fs::remove_file(root.join("etc/outside")).unwrap();
    let r = p.ddc(&["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn verify_sees_an_owner_change() {
    common::require_root("it gives a file of the generation another owner");
    let p = Project::new();
    p.build(&[]);
    let root = p.path(&format!("out/nfsroot/default/{}", current(&p)));
    let f = root.join("etc/ddc-master");
    let before = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&f).unwrap());
    std::os::unix::fs::chown(&f, Some(before + 4242), None).unwrap();
    let r = p.ddc(&["verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("changed  /etc/ddc-master"),
        "{}",
        r.stdout
    );
    std::os::unix::fs::chown(&f, Some(before), None).unwrap();
    std::os::unix::fs::chown(root.join("etc"), None, Some(4242)).unwrap();
    let r = p.ddc(&["verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout.lines().skip(1).collect::<Vec<_>>(),
        ["  changed  /etc"],
        "{}",
        r.stdout
    );
}

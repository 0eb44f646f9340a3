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

//! Image generations through the real binary on the tiny step scripts:
//! a changed image is a new generation, boot entries follow `current`,
//! rollback rewrites only the boot entries, gc keeps what is referenced, and
//! pinned nodes stay where they are.

mod common;

use common::{strs, tasks_in, Project};

const ENTRY1: &str = "out/tftp/pxelinux.cfg/01-52-54-00-12-34-56";
const ENTRY2: &str = "out/tftp/pxelinux.cfg/01-52-54-00-12-34-57";

fn generations(p: &Project) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p.path("out/nfsroot/default"))
        .unwrap()
        .map(|e| e.unwrap())
        // Generations are the folders; `current`, manifests and the rollback
        // record are not.
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn current(p: &Project) -> String {
    std::fs::read_link(p.path("out/nfsroot/default/current"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn add_package(p: &Project, name: &str) {
    p.edit(
        "Ddcfile.toml",
        "\"nfs-common\"",
        &format!("\"nfs-common\", \"{name}\""),
    );
}

#[test]
fn a_changed_image_is_a_new_generation_and_entries_move_to_it() {
    let p = Project::new();
    p.build(&[]);
    let g = generations(&p);
    assert_eq!(g.len(), 1);
    assert!(g[0].starts_with("0001-"), "{g:?}");
    assert_eq!(current(&p), g[0]);
    assert!(p
        .read(ENTRY1)
        .contains(&format!("default/{}/vmlinuz", g[0])));
    add_package(&p, "htop");
    p.build(&[]);
    let g = generations(&p);
    assert_eq!(g.len(), 2);
    assert!(g[1].starts_with("0002-"), "{g:?}");
    assert_eq!(current(&p), g[1]);
    assert!(p
        .read(ENTRY1)
        .contains(&format!("nfsroot/default/{},vers=3", g[1])));
    assert!(p
        .path(&format!("out/tftp/default/{}/initrd.img", g[1]))
        .exists());
    // The old generation stays exported for the nodes still running on it.
    let exports = p.read("out/exports.d/ddc.exports");
    assert!(
        exports.contains(&g[0]) && exports.contains(&g[1]),
        "{exports}"
    );
    // Unchanged files are shared with the previous generation.
    let a = std::fs::metadata(p.path(&format!("out/nfsroot/default/{}/etc/debian_version", g[0])))
        .unwrap();
    let b = std::fs::metadata(p.path(&format!("out/nfsroot/default/{}/etc/debian_version", g[1])))
        .unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&a),
        std::os::unix::fs::MetadataExt::ino(&b)
    );
}

#[test]
fn an_identical_rebuild_publishes_nothing_new() {
    let p = Project::new();
    p.build(&[]);
    let before = generations(&p);
    let r = p.ddc(&["clean"]);
    assert_eq!(r.code, 0);
    assert!(p.build(&[]).contains(&"publish:default".to_string()));
    assert_eq!(generations(&p), before);
    // Back to an earlier content: its generation is current again, none is added.
    add_package(&p, "htop");
    p.build(&[]);
    p.write("Ddcfile.toml", common::DDCFILE);
    p.build(&[]);
    let g = generations(&p);
    assert_eq!(g.len(), 2, "{g:?}");
    assert_eq!(current(&p), before[0]);
}

#[test]
fn rollback_rewrites_only_the_boot_entries_and_holds() {
    let p = Project::new();
    p.build(&[]);
    add_package(&p, "htop");
    p.build(&[]);
    let g = generations(&p);
    let r = p.ddc(&["rollback", "default", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        tasks_in(&r.stdout, "ran"),
        strs(&["pxe:node01", "pxe:node02"])
    );
    assert!(
        r.stderr
            .contains(&format!("default: current is now {} (was {})", g[0], g[1])),
        "{}",
        r.stderr
    );
    assert_eq!(current(&p), g[0]);
    assert!(p.read(ENTRY1).contains(&g[0]) && p.read(ENTRY2).contains(&g[0]));
    // A build afterwards keeps the rollback: nothing changed in the Ddcfile.
    assert_eq!(p.build(&[]), Vec::<String>::new());
    // Forward again by name.
    let r = p.ddc(&["rollback", "default", "2", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(current(&p), g[1]);
    assert!(p.read(ENTRY1).contains(&g[1]));
    // Nothing before the first.
    p.ddc(&["rollback", "default", "1"]);
    let r = p.ddc(&["rollback", "default"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("has no generation before the current one"),
        "{}",
        r.stderr
    );
    // Rolling back rebuilds nothing even when the image is stale.
    add_package(&p, "vim");
    let r = p.ddc(&["rollback", "default", "2", "--json"]);
    assert_eq!(
        tasks_in(&r.stdout, "ran"),
        strs(&["pxe:node01", "pxe:node02"])
    );
}

#[test]
fn pinned_nodes_stay_on_their_generation() {
    let p = Project::new();
    p.build(&[]);
    let g1 = generations(&p)[0].clone();
    p.edit(
        "Ddcfile.toml",
        "ip       = \"192.0.2.12\"",
        "ip       = \"192.0.2.12\"\nimage    = \"default@1\"",
    );
    // Pinned to the generation it boots already: nothing to rewrite.
    assert_eq!(p.build(&[]), Vec::<String>::new());
    add_package(&p, "htop");
    p.build(&[]);
    let g2 = generations(&p)[1].clone();
    assert!(p.read(ENTRY1).contains(&g2), "node01 follows current");
    assert!(
        p.read(ENTRY2).contains(&g1),
        "node02 is pinned to generation 1"
    );
    // Rollback leaves the pinned node alone.
    let r = p.ddc(&["rollback", "default", "--json"]);
    assert_eq!(tasks_in(&r.stdout, "ran"), strs(&["pxe:node01"]));
    // A pin to a generation that does not exist fails that node's task, naming it.
    p.edit("Ddcfile.toml", "default@1", "default@7");
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("generation \"7\" of image default is not published"),
        "{}",
        r.stderr
    );
}

#[test]
fn gc_keeps_current_pinned_and_referenced_generations() {
    let p = Project::new();
    p.build(&[]);
    for pkg in ["htop", "vim", "curl"] {
        add_package(&p, pkg);
        p.build(&[]);
    }
    let g = generations(&p);
    assert_eq!(g.len(), 4);
    p.edit(
        "Ddcfile.toml",
        "ip       = \"192.0.2.12\"",
        "ip       = \"192.0.2.12\"\nimage    = \"default@2\"",
    );
    p.build(&[]);
    let r = p.ddc(&["gc", "--keep", "1", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("would delete default/{}", g[0])),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("keep   default/{} (pinned by node02)", g[1])),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("would delete default/{}", g[2])),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("keep   default/{} (current)", g[3])),
        "{}",
        r.stdout
    );
    assert_eq!(generations(&p).len(), 4, "a dry run deletes nothing");
    let r = p.ddc(&["gc", "--keep", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("freed "), "{}", r.stdout);
    assert_eq!(generations(&p), vec![g[1].clone(), g[3].clone()]);
    assert!(!p.path(&format!("out/tftp/default/{}", g[0])).exists());
    let exports = p.read("out/exports.d/ddc.exports");
    assert!(
        !exports.contains(&g[0]) && exports.contains(&g[1]),
        "{exports}"
    );
    assert_eq!(
        p.build(&[]),
        Vec::<String>::new(),
        "gc left the exports up to date"
    );
    let r = p.ddc(&["generations"]);
    assert!(r.stdout.contains(&format!("* {}", g[3])), "{}", r.stdout);
    assert!(r.stdout.contains("node02"), "{}", r.stdout);
}

/// A rollback is a decision builds respect: republishing the content rolled
/// back from (after gc deleted it, or after `ddc clean`) does not make it
/// current again; `ddc rollforward` does, and new content does.
#[test]
fn a_rollback_holds_until_rolled_forward() {
    let p = Project::new();
    p.build(&[]);
    add_package(&p, "htop");
    p.build(&[]);
    let g = generations(&p);
    assert_eq!(current(&p), g[1]);
    let r = p.ddc(&["rollback", "default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(current(&p), g[0]);

    // gc deletes the generation rolled back from; the build republishes it.
    let r = p.ddc(&["gc", "--keep", "0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(generations(&p), vec![g[0].clone()]);
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(current(&p), g[0], "the rebuild must not undo the rollback");
    assert!(
        r.stderr.contains("rolled back from") && r.stderr.contains("ddc rollforward default"),
        "{}",
        r.stderr
    );
    assert!(p
        .read(ENTRY1)
        .contains(&format!("nfsroot/default/{},", g[0])));
    let listed = p.ddc(&["generations", "default"]).stdout;
    assert!(listed.contains(&format!("x {}", g[1])), "{listed}");

    // Nor after `ddc clean`.
    assert_eq!(p.ddc(&["clean"]).code, 0);
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        current(&p),
        g[0],
        "a clean rebuild must not undo the rollback"
    );

    // Rolling forward makes the newest current and rewrites the entries.
    let r = p.ddc(&["rollforward", "default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let newest = generations(&p).pop().unwrap();
    assert_eq!(current(&p), newest);
    assert!(p
        .read(ENTRY1)
        .contains(&format!("nfsroot/default/{newest},")));
    let r = p.ddc(&["build", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(current(&p), newest);

    // After a rollback, new content becomes current as usual.
    assert_eq!(p.ddc(&["rollback", "default", "1"]).code, 0);
    add_package(&p, "tmux");
    p.build(&[]);
    let newest = generations(&p).pop().unwrap();
    assert_eq!(current(&p), newest);
}

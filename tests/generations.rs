//! Image generations through the real binary on the tiny step scripts:
//! a changed image is a new generation, boot entries follow `current`,
//! rollback rewrites only the boot entries, gc keeps what is referenced,
//! pinned nodes stay where they are, and a generation's ganesha Export_Id
//! never changes while it is exported.

mod common;

use common::{strs, tasks_in, Project};

const ENTRY1: &str = "out/tftp/pxelinux.cfg/01-52-54-00-12-34-56";
const ENTRY2: &str = "out/tftp/pxelinux.cfg/01-52-54-00-12-34-57";

fn generations(p: &Project) -> Vec<String> {
    p.generations("default")
}

fn current(p: &Project) -> String {
    p.current("default")
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
    // A changed file is not: the old generation keeps its old content, for
    // the nodes still running on it.
    let list = |g: &str| format!("out/nfsroot/default/{g}/var/lib/dpkg/packages");
    assert_eq!(p.read(&list(&g[0])), "linux-image-amd64 nfs-common\n");
    assert_eq!(p.read(&list(&g[1])), "linux-image-amd64 nfs-common htop\n");
    let a = std::fs::metadata(p.path(&list(&g[0]))).unwrap();
    let b = std::fs::metadata(p.path(&list(&g[1]))).unwrap();
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&a),
        std::os::unix::fs::MetadataExt::ino(&b),
        "a changed file shares its inode with the old generation"
    );
    // A third generation changes it again: neither older one moves.
    add_package(&p, "vim");
    p.build(&[]);
    let g = generations(&p);
    assert_eq!(g.len(), 3, "{g:?}");
    assert_eq!(p.read(&list(&g[0])), "linux-image-amd64 nfs-common\n");
    assert_eq!(p.read(&list(&g[1])), "linux-image-amd64 nfs-common htop\n");
    assert_eq!(
        p.read(&list(&g[2])),
        "linux-image-amd64 nfs-common vim htop\n"
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
    // Back to the first by number.
    let r = p.ddc(&["rollback", "default", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(current(&p), g[0]);
    // Nothing before the first: exit 2, and nothing moves.
    let entry = p.read(ENTRY1);
    let r = p.ddc(&["rollback", "default"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("has no generation before the current one"),
        "{}",
        r.stderr
    );
    assert_eq!(current(&p), g[0], "a refused rollback moved current");
    assert_eq!(p.read(ENTRY1), entry);
    // Nor to a generation that does not exist, or an image that does not.
    let r = p.ddc(&["rollback", "default", "9"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("has no generation \"9\""), "{}", r.stderr);
    assert_eq!(current(&p), g[0]);
    let r = p.ddc(&["rollback", "nope"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no image \"nope\""), "{}", r.stderr);
    assert_eq!(current(&p), g[0]);
    // Rolling back rebuilds nothing even when the image is stale.
    add_package(&p, "vim");
    let r = p.ddc(&["rollback", "default", "2", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        tasks_in(&r.stdout, "ran"),
        strs(&["pxe:node01", "pxe:node02"])
    );
    assert_eq!(current(&p), g[1]);
    assert_eq!(generations(&p), g, "a rollback published something");
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

#[test]
fn gc_keeps_a_generation_a_boot_entry_still_points_at() {
    let p = Project::new();
    p.build(&[]);
    let g1 = generations(&p)[0].clone();
    // node02 is pinned to generation 1, then the pin is dropped from the
    // Ddcfile without a build: its entry still boots generation 1.
    p.edit(
        "Ddcfile.toml",
        "ip       = \"192.0.2.12\"",
        "ip       = \"192.0.2.12\"\nimage    = \"default@1\"",
    );
    for pkg in ["htop", "vim"] {
        add_package(&p, pkg);
        p.build(&[]);
    }
    let g = generations(&p);
    assert_eq!(g.len(), 3);
    assert!(p.read(ENTRY2).contains(&g1));
    p.edit("Ddcfile.toml", "\nimage    = \"default@1\"", "");
    // Not current, not pinned, not among the newest 1: only the entry keeps it.
    let r = p.ddc(&["gc", "--keep", "1", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "keep   default/{g1} (boot entry 01-52-54-00-12-34-57 points at it)"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("would delete default/{}", g[1])),
        "{}",
        r.stdout
    );
    let r = p.ddc(&["gc", "--keep", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(generations(&p), vec![g1.clone(), g[2].clone()]);
    // What the entry boots is all still there.
    assert!(p.path(&format!("out/tftp/default/{g1}/vmlinuz")).exists());
    assert!(p
        .path(&format!("out/nfsroot/default/{g1}/etc/debian_version"))
        .exists());
    assert!(p.read("out/exports.d/ddc.exports").contains(&g1));
    // Once the entry moves on, the generation goes.
    assert_eq!(p.build(&[]), strs(&["pxe:node02"]));
    assert!(p.read(ENTRY2).contains(&g[2]));
    let r = p.ddc(&["gc", "--keep", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("deleted default/{g1}")),
        "{}",
        r.stdout
    );
    assert_eq!(generations(&p), vec![g[2].clone()]);
    assert!(!p.read("out/exports.d/ddc.exports").contains(&g1));
}

// ------------------------------------------------------------ export ids

/// `Path → Export_Id` of every EXPORT block of the ganesha file.
fn export_ids(p: &Project) -> std::collections::BTreeMap<String, u32> {
    let conf = p.read("out/ganesha/ddc.conf");
    let mut out = std::collections::BTreeMap::new();
    let mut id = None;
    for l in conf.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("Export_Id = ") {
            id = Some(v.trim_end_matches(';').parse::<u32>().unwrap());
        } else if let Some(v) = l.strip_prefix("Path = \"") {
            let path = v.trim_end_matches("\";").to_string();
            let id = id.take().expect("Export_Id before Path");
            assert!(
                out.insert(path, id).is_none(),
                "a path exported twice:\n{conf}"
            );
        }
    }
    let mut seen: Vec<u32> = out.values().copied().collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), out.len(), "two exports share an id:\n{conf}");
    out
}

/// Asserts that every path of `before` still exported in `after` kept its id.
fn survivors_kept_their_ids(
    before: &std::collections::BTreeMap<String, u32>,
    after: &std::collections::BTreeMap<String, u32>,
    what: &str,
) -> usize {
    let mut kept = 0;
    for (path, id) in before {
        if let Some(now) = after.get(path) {
            assert_eq!(
                now, id,
                "{what}: the export id of {path} changed from {id} to {now}: \
                 ganesha puts it in every file handle, so the nodes running on it get stale handles"
            );
            kept += 1;
        }
    }
    kept
}

/// Ganesha's Export_Id is in every NFS file handle: a running node's root
/// breaks if the id of its generation changes while it runs.
#[test]
fn export_ids_of_surviving_generations_never_change() {
    let p = Project::new();
    p.build(&[]);
    let mut before = export_ids(&p);
    assert_eq!(before.len(), 1);
    for pkg in ["htop", "vim", "curl"] {
        add_package(&p, pkg);
        p.build(&[]);
        let now = export_ids(&p);
        assert_eq!(now.len(), before.len() + 1);
        assert_eq!(survivors_kept_their_ids(&before, &now, pkg), before.len());
        before = now;
    }
    // A second image: its generation is added to the exports.
    let mut text = p.read("Ddcfile.toml");
    text = text.replacen(
        "\n[[nodes]]",
        "\n[images.base]\nsuite = \"bookworm\"\npackages = [\"linux-image-amd64\"]\n\n[[nodes]]",
        1,
    );
    p.write("Ddcfile.toml", &text);
    p.build(&[]);
    let now = export_ids(&p);
    assert_eq!(now.len(), 5, "{now:?}");
    assert!(now.keys().any(|k| k.contains("/nfsroot/base/")), "{now:?}");
    assert_eq!(survivors_kept_their_ids(&before, &now, "a new image"), 4);
    before = now;
    // gc removes the older generations of default.
    let r = p.ddc(&["gc", "--keep", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let now = export_ids(&p);
    assert_eq!(now.len(), 2, "{now:?}");
    assert_eq!(survivors_kept_their_ids(&before, &now, "gc"), 2);
    before = now;
    // The image leaves the Ddcfile: its generation stays exported, same id.
    p.write(
        "Ddcfile.toml",
        &text.replace("[images.base]", "[images.renamed]"),
    );
    p.build(&[]);
    let now = export_ids(&p);
    assert_eq!(now.len(), 3, "{now:?}");
    assert_eq!(
        survivors_kept_their_ids(&before, &now, "an image renamed"),
        2
    );
}

/// ddc's id of an export path, as `src/recipes/exports.rs` computes it
/// before moving past collisions (checked against the file below).
fn hashed_id(path: &str) -> u32 {
    let h = blake3::hash(path.as_bytes());
    100 + u32::from_le_bytes(h.as_bytes()[..4].try_into().unwrap()) % 60000
}

/// A generation of another image whose path hashes to the same id as a
/// running one, and sorts before it (an image `base` beside `default`).
#[test]
fn a_colliding_export_does_not_renumber_a_running_generation() {
    let p = Project::new();
    p.build(&[]);
    let ids = export_ids(&p);
    let (running, &id) = ids.iter().next().unwrap();
    assert_eq!(
        hashed_id(running),
        id,
        "the test's copy of the id formula is out of date with src/recipes/exports.rs"
    );
    // Another image's generation, hashing to the same id, sorting first.
    let nfs_root = running.rsplitn(3, '/').nth(2).unwrap().to_string();
    let base = format!("{nfs_root}/base");
    let name = (0u64..)
        .map(|i| format!("0001-{i:012x}"))
        .find(|n| hashed_id(&format!("{base}/{n}")) == id)
        .unwrap();
    let other = format!("{base}/{name}");
    assert!(other < *running);
    std::fs::create_dir_all(&other).unwrap();
    assert!(p.build(&[]).contains(&"exports".to_string()));
    let now = export_ids(&p);
    assert_eq!(now.len(), 2, "{now:?}");
    assert_ne!(now[&other], now[running.as_str()]);
    survivors_kept_their_ids(&ids, &now, "a colliding export added");
    // And when it goes again.
    std::fs::remove_dir(&other).unwrap();
    p.build(&[]);
    survivors_kept_their_ids(&now, &export_ids(&p), "a colliding export removed");
}

/// A file of the `files` tree changed to content of the same size: the
/// reproducible step clamps both versions' mtimes to SOURCE_DATE_EPOCH, so
/// size and mtime match the previous generation's file. The new generation
/// must still hold the new content (publish compares contents, so rsync's
/// --link-dest never links the old file in its place), and the old one
/// keeps its own.
#[test]
fn a_same_size_change_with_clamped_mtimes_is_a_new_generation() {
    let p = Project::with(&common::DDCFILE.replace(
        "cmdline  = \"console=ttyS0\"",
        "cmdline  = \"console=ttyS0\"\nfiles    = \"files\"\nsource_date_epoch = 1700000000",
    ));
    p.write("files/etc/marker", "generation 1\n");
    p.build(&[]);
    p.write("files/etc/marker", "generation 2\n");
    p.build(&[]);
    let g = generations(&p);
    assert_eq!(g.len(), 2, "the same-size change published nothing: {g:?}");
    assert_eq!(current(&p), g[1]);
    let marker = |g: &str| format!("out/nfsroot/default/{g}/etc/marker");
    assert_eq!(p.read(&marker(&g[0])), "generation 1\n");
    assert_eq!(p.read(&marker(&g[1])), "generation 2\n");
}

//! The whole-build early cutoff (ninja's no-op): a build whose inputs and
//! outputs are all as the last build left them says "all cached" without
//! planning the nodes or reading the records; every kind of change still
//! reruns exactly what it must, through the full build. Each case checks
//! both: the change is not taken for a no-op, and the build after it is one
//! by the cutoff again.

mod common;

use common::{require_root, strs, tasks_in, Project, ALL};

const SAID: &str = "a no-op by the whole-build cutoff";

/// Runs `ddc build --json` with the debug log: the tasks that ran, and
/// whether the cutoff decided (it says so in the log).
fn build(p: &Project) -> (Vec<String>, bool) {
    let o = p
        .command(&["build", "--json"])
        .env("DDC_LOG", "debug")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "ddc build failed:\n{stdout}\n{stderr}");
    (tasks_in(&stdout, "ran"), stderr.contains(SAID))
}

/// Builds after a change: it must rerun `want` (not be a cutoff no-op),
/// and the build after it must be a no-op by the cutoff.
fn reruns(p: &Project, want: &[&str]) {
    let (ran, cut) = build(p);
    assert_eq!(ran, strs(want));
    assert!(!cut, "a build that ran tasks was taken for a no-op");
    assert_eq!(build(p), (Vec::new(), true), "the build after it");
}

#[test]
fn a_no_op_is_the_cutoffs_and_says_what_a_full_one_says() {
    let p = Project::new();
    assert_eq!(build(&p), (strs(ALL), false));
    let fast = p.ddc(&["build", "--json"]);
    // --verify never takes the cutoff: the full build's no-op.
    let full = p.ddc(&["build", "--json", "--verify"]);
    assert_eq!(fast.code, 0, "{}", fast.stderr);
    assert_eq!(tasks_in(&fast.stdout, "cached"), strs(ALL));
    assert_eq!(
        tasks_in(&fast.stdout, "cached"),
        tasks_in(&full.stdout, "cached")
    );
    assert_eq!(fast.stdout.lines().count(), ALL.len());
    let plain = p.ddc(&["build"]);
    assert!(
        plain.stdout.contains("ddc: 0 ran, 10 cached, 0 failed in "),
        "{}",
        plain.stdout
    );
    assert_eq!(build(&p), (Vec::new(), true));
}

#[test]
fn config_and_tasks_folder_changes_rerun_what_they_must() {
    let p = Project::new();
    build(&p);
    p.edit("Ddcfile.toml", "52:54:00:12:34:57", "52:54:00:ab:cd:ef");
    reruns(&p, &["dhcp", "pxe:node02"]);
    p.edit("Ddcfile.toml", "192.0.2.12", "192.0.2.13");
    reruns(&p, &["dhcp"]);
    // The same bytes written again: nothing to do, by the cutoff.
    p.write("Ddcfile.toml", &p.read("Ddcfile.toml"));
    assert_eq!(build(&p), (Vec::new(), true));
    p.edit("tasks/templates/pxelinux.cfg.j2", "APPEND", "APPEND  ");
    reruns(&p, &["pxe:node01", "pxe:node02"]);
    let script = p.read("tasks/configure.sh");
    p.write("tasks/configure.sh", &format!("{script}\n# edited\n"));
    // Its output is the same: the ripple stops there.
    reruns(&p, &["configure:default"]);
    // A file the tasks folder adds, which no task uses: no task reruns, but
    // only the full build could tell.
    p.write("tasks/notes.txt", "x\n");
    let (ran, cut) = build(&p);
    assert_eq!((ran, cut), (Vec::new(), false));
    assert_eq!(build(&p), (Vec::new(), true));
}

#[test]
fn nodes_file_changes_rerun_that_node() {
    let p = Project::new();
    p.edit(
        "Ddcfile.toml",
        "tasks_dir = \"tasks\"",
        "tasks_dir = \"tasks\"\nnodes_file = \"nodes.csv\"",
    );
    p.write(
        "nodes.csv",
        "hostname,mac,ip\nrack1-01,52:54:00:aa:00:01,192.0.2.101\nrack1-02,52:54:00:aa:00:02,192.0.2.102\n",
    );
    assert!(!build(&p).0.is_empty());
    assert_eq!(build(&p), (Vec::new(), true));
    p.edit("nodes.csv", "52:54:00:aa:00:01", "52:54:00:aa:00:09");
    reruns(&p, &["dhcp", "pxe:rack1-01"]);
}

#[test]
fn outputs_deleted_or_edited_and_records_forgotten_rerun() {
    let p = Project::new();
    build(&p);
    let entry = "out/tftp/pxelinux.cfg/01-52-54-00-12-34-56";
    std::fs::remove_file(p.path(entry)).unwrap();
    reruns(&p, &["pxe:node01"]);
    // The same size, another content: its stamp moved.
    let text = p.read("out/dhcp/ddc.conf");
    p.write("out/dhcp/ddc.conf", &"#".repeat(text.len()));
    reruns(&p, &["dhcp"]);
    let r = p.ddc(&["clean", "pxe:node02"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    reruns(&p, &["pxe:node02"]);
}

#[test]
fn a_hand_edited_generation_is_trusted_by_both_and_found_by_verify() {
    let p = Project::new();
    build(&p);
    let gen = format!(
        "out/nfsroot/default/{}/etc/debian_version",
        p.current("default")
    );
    p.write(&gen, "edited by hand\n");
    // Deep inside a tree: its root's stamp holds, for the full build too.
    assert_eq!(build(&p), (Vec::new(), true));
    let r = p.ddc(&["build", "--json", "--verify"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        tasks_in(&r.stdout, "ran").contains(&"publish:default".to_string()),
        "{}",
        r.stdout
    );
    assert_eq!(build(&p), (Vec::new(), true));
}

#[test]
fn a_removed_generation_and_a_moved_current_rerun_what_lists_them() {
    let p = Project::new();
    build(&p);
    let first = p.current("default");
    p.edit(
        "Ddcfile.toml",
        "\"nfs-common\"]",
        "\"nfs-common\", \"htop\"]",
    );
    build(&p);
    assert_ne!(p.current("default"), first);
    assert_eq!(build(&p), (Vec::new(), true));
    // `ddc rollback` points current back at the first generation: the
    // entries and the exports follow; then a build is a no-op again.
    let r = p.ddc(&["rollback", "default", &first]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let (_, cut) = build(&p);
    assert!(!cut, "a build after a rollback must look at its tasks");
    assert_eq!(build(&p), (Vec::new(), true));
}

/// A host file a task reads (pxelinux.0, for the bootloader), changed in a
/// mount namespace of the test's own: the host's file is never touched.
#[test]
fn a_changed_host_file_reruns_the_task_that_reads_it() {
    require_root("a private mount namespace over /usr/lib/PXELINUX");
    let p = Project::new();
    build(&p);
    assert_eq!(build(&p), (Vec::new(), true));
    let other = p.path("pxelinux.0");
    std::fs::write(&other, "another pxelinux.0\n").unwrap();
    let script = format!(
        "mount --make-rprivate / && mount --bind {} /usr/lib/PXELINUX/pxelinux.0 && DDC_LOG=debug {} build --json",
        other.display(),
        env!("CARGO_BIN_EXE_ddc")
    );
    let o = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .current_dir(p.path(""))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    // What copies it, and the entries that depend on it.
    let want = strs(&["bootloader", "pxe:node01", "pxe:node02"]);
    assert_eq!(tasks_in(&stdout, "ran"), want, "{stderr}");
    assert!(!stderr.contains(SAID));
    // Back on the host's file: they rerun again.
    assert_eq!(build(&p), (want, false));
    assert_eq!(build(&p), (Vec::new(), true));
}

/// A tree the cluster's tasks read while they are planned (an image's
/// `files`): an edit inside it reruns the image step that copies it.
#[test]
fn an_edited_files_tree_reruns_the_step_that_copies_it() {
    let p = Project::new();
    p.write("files/etc/motd", "hello\n");
    p.edit(
        "Ddcfile.toml",
        "cmdline  = \"console=ttyS0\"",
        "cmdline  = \"console=ttyS0\"\nfiles    = \"files\"",
    );
    build(&p);
    assert_eq!(build(&p), (Vec::new(), true));
    p.write("files/etc/motd", "hello again\n");
    let (ran, cut) = build(&p);
    assert!(ran.contains(&"configure:default".to_string()), "{ran:?}");
    assert!(!cut);
    assert_eq!(build(&p), (Vec::new(), true));
}

#[test]
fn a_tasks_file_linked_from_elsewhere_is_checked_through_its_link() {
    // The planner reads through links; so must the cutoff's digest: an edit
    // of the linked file (or of a file in a linked folder) reruns the pxe
    // entries, never a cutoff no-op.
    let p = Project::new();
    let shared = p.path("shared");
    std::fs::create_dir_all(shared.join("templates")).unwrap();
    let tpl = p.path("tasks/templates/pxelinux.cfg.j2");
    std::fs::rename(&tpl, shared.join("pxelinux.cfg.j2")).unwrap();
    std::os::unix::fs::symlink(shared.join("pxelinux.cfg.j2"), &tpl).unwrap();
    build(&p);
    assert_eq!(build(&p), (Vec::new(), true));
    p.edit("shared/pxelinux.cfg.j2", "APPEND", "APPEND  ");
    reruns(&p, &["pxe:node01", "pxe:node02"]);
    // A whole folder linked in.
    let templates = p.path("tasks/templates");
    for e in std::fs::read_dir(&templates).unwrap() {
        let e = e.unwrap();
        let to = shared.join("templates").join(e.file_name());
        match std::fs::read_link(e.path()) {
            Ok(target) => std::os::unix::fs::symlink(target, &to).unwrap(),
            Err(_) => std::fs::rename(e.path(), &to).unwrap(),
        }
    }
    std::fs::remove_dir_all(&templates).unwrap();
    std::os::unix::fs::symlink(shared.join("templates"), &templates).unwrap();
    let (_, cut) = build(&p);
    assert!(!cut, "a moved tasks folder is not a cutoff no-op");
    assert_eq!(build(&p), (Vec::new(), true));
    p.edit("shared/pxelinux.cfg.j2", "APPEND  ", "APPEND ");
    reruns(&p, &["pxe:node01", "pxe:node02"]);
}

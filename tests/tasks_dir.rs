//! The built-in step scripts and templates, and `tasks_dir` as an override:
//! a Ddcfile outside the repository builds with no tasks folder of its own
//! but the fake steps; a file in `tasks_dir` replaces exactly the built-in
//! file of its name, and only the tasks that use it (and their dependents)
//! rerun; the keys hash the bytes used, so a built-in file and an override
//! of the same bytes are the same input.

mod common;

use common::{repo, strs, Project, ALL, DDCFILE};

/// A project whose `tasks_dir` holds only the four tiny step scripts: the
/// templates and the initramfs hook are built in.
fn steps_only() -> Project {
    let p = Project::new();
    std::fs::remove_dir_all(p.path("tasks/templates")).unwrap();
    p
}

/// `ddc build -n --json`: (task, state, reason) of each task, sorted.
fn dry_run(p: &Project) -> Vec<(String, String, String)> {
    let r = p.ddc(&["build", "-n", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let mut v: Vec<(String, String, String)> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            (s("task"), s("state"), s("reason"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_ddcfile_outside_the_repository_builds_with_the_built_in_templates() {
    let p = steps_only();
    assert!(!p.path("").starts_with(repo()));
    assert_eq!(p.build(&[]), strs(ALL));
    let dhcpd = p.read("out/dhcp/ddc.conf");
    assert!(dhcpd.contains("fixed-address 192.0.2.11;"), "{dhcpd}");
    assert_eq!(p.build(&[]), Vec::<String>::new());
    // `ddc tasks` says where each file comes from.
    let r = p.ddc(&["tasks"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = |rel: &str| {
        r.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(rel))
            .unwrap_or_else(|| panic!("no {rel} in {}", r.stdout))
            .to_string()
    };
    assert!(line("templates/dhcpd.conf.j2").ends_with("built in"));
    assert!(line("initramfs/ddc-union").ends_with("built in"));
    assert!(line("configure.sh").ends_with(&format!("{}", p.path("tasks/configure.sh").display())));
}

#[test]
fn a_built_in_template_and_an_override_of_the_same_bytes_are_the_same_input() {
    // Project::new copies the real templates into tasks_dir: overrides of
    // the same bytes. Removing them changes no key.
    let p = Project::new();
    p.build(&[]);
    std::fs::remove_dir_all(p.path("tasks/templates")).unwrap();
    assert_eq!(p.build(&[]), Vec::<String>::new());
    // One template overridden: exactly the task that renders it reruns.
    let builtin = std::fs::read_to_string(repo().join("tasks/templates/dhcpd.conf.j2")).unwrap();
    p.write(
        "tasks/templates/dhcpd.conf.j2",
        &format!("# site override\n{builtin}"),
    );
    assert_eq!(p.build(&[]), strs(&["dhcp"]));
    assert!(p.read("out/dhcp/ddc.conf").starts_with("# site override\n"));
    // Removed again: back to the built-in file, and dhcp says why it reruns.
    std::fs::remove_file(p.path("tasks/templates/dhcpd.conf.j2")).unwrap();
    let dhcp = dry_run(&p).into_iter().find(|t| t.0 == "dhcp").unwrap();
    assert_eq!(
        dhcp,
        (
            "dhcp".into(),
            "stale".into(),
            "file changed: templates/dhcpd.conf.j2 (built in)".into()
        )
    );
    assert_eq!(p.build(&[]), strs(&["dhcp"]));
    assert!(!p.read("out/dhcp/ddc.conf").contains("# site override"));
}

#[test]
fn an_override_replaces_exactly_one_step_and_only_it_and_its_dependents_rerun() {
    let p = steps_only();
    // The tiny initramfs step installs its folder's hook (built in here)
    // from DDC_TASKS_DIR, as the real one does.
    p.write(
        "tasks/initramfs.sh",
        "#!/bin/sh\nset -eu\necho kernel > \"$DDC_ROOTFS/boot/vmlinuz-6.1.0-test\"\n\
         echo initrd > \"$DDC_ROOTFS/boot/initrd.img-6.1.0-test\"\n\
         cp \"$DDC_TASKS_DIR/initramfs/ddc-union\" \"$DDC_ROOTFS/boot/hook\"\n",
    );
    p.build(&[]);
    let published = || p.read("out/nfsroot/default/current/boot/hook");
    let builtin = std::fs::read_to_string(repo().join("tasks/initramfs/ddc-union")).unwrap();
    assert_eq!(
        published(),
        builtin,
        "the built-in hook is what the step got"
    );

    // The hook overridden: initramfs and what depends on it, nothing before.
    p.write(
        "tasks/initramfs/ddc-union",
        "#!/bin/sh\n# the site's hook\n",
    );
    assert_eq!(
        p.build(&[]),
        strs(&[
            "exports",
            "initramfs:default",
            "publish:default",
            "pxe:node01",
            "pxe:node02"
        ])
    );
    assert_eq!(published(), "#!/bin/sh\n# the site's hook\n");

    // The configure override removed: the built-in configure.sh replaces
    // it, so configure would rerun, and what follows it; nothing before it.
    std::fs::remove_file(p.path("tasks/configure.sh")).unwrap();
    let states = dry_run(&p);
    let stale: Vec<&str> = states
        .iter()
        .filter(|t| t.1 == "stale")
        .map(|t| t.0.as_str())
        .collect();
    assert_eq!(
        stale,
        [
            "configure:default",
            "exports",
            "initramfs:default",
            "publish:default",
            "pxe:node01",
            "pxe:node02"
        ]
    );
    let configure = states.iter().find(|t| t.0 == "configure:default").unwrap();
    assert_eq!(configure.2, "file changed: configure.sh (built in)");
}

#[test]
fn eject_writes_the_built_in_files_and_never_overwrites() {
    let p = steps_only();
    let r = p.ddc(&["tasks", "--eject", "mine"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for rel in [
        "debootstrap.sh",
        "initramfs/ddc-union",
        "templates/pxelinux.cfg.j2",
        "README.md",
    ] {
        assert_eq!(
            std::fs::read(p.path(&format!("mine/{rel}"))).unwrap(),
            std::fs::read(repo().join("tasks").join(rel)).unwrap(),
            "{rel}"
        );
    }
    p.write("mine/packages.sh", "edited");
    let r = p.ddc(&["tasks", "--eject", "mine"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not overwriting"), "{}", r.stderr);
    assert_eq!(p.read("mine/packages.sh"), "edited");
}

#[test]
fn a_tasks_dir_that_is_not_a_folder_is_named() {
    let p = Project::with(&DDCFILE.replace("tasks_dir = \"tasks\"", "tasks_dir = \"nowhere\""));
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("nowhere is not a folder") && r.stderr.contains("ddc tasks --eject"),
        "{}",
        r.stderr
    );
}

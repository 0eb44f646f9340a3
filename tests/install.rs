//! ddc as an installed tool, outside its source tree: the binary alone in
//! an empty folder with an `init`ed Ddcfile; the commands that only read,
//! run as an unprivileged user on a master without the host tools; the
//! preflight that names everything missing at once; the completions and
//! the man page. The user switches and the hidden host files need root
//! (a private mount namespace per command, never the host's mounts).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Project, Run};

/// The master's bootloader folders (pxelinux, syslinux-efi, syslinux-common).
const LOADERS: &[&str] = &[
    "/usr/lib/PXELINUX",
    "/usr/lib/SYSLINUX.EFI",
    "/usr/lib/syslinux",
];

/// How one command runs.
struct Env<'a> {
    /// As `nobody`, or as root.
    nobody: bool,
    /// Folders hidden under an empty tmpfs.
    hide: &'a [&'a str],
    /// Files hidden under /dev/null (no longer a program).
    null: &'a [&'a str],
    path: &'a str,
}

/// Runs `ddc ARGS` in `dir` in a mount namespace of its own, with `env`.
fn ddc_in(dir: &Path, ddc: &Path, env: &Env, args: &[&str]) -> Run {
    let mut script = String::from("set -e\n");
    for h in env.hide {
        script.push_str(&format!("mount -t tmpfs ddc-test {h}\n"));
    }
    for n in env.null {
        script.push_str(&format!("mount --bind /dev/null {n}\n"));
    }
    let user = if env.nobody {
        "/usr/bin/setpriv --reuid=nobody --regid=nogroup --clear-groups "
    } else {
        ""
    };
    // $0 is the binary, "$@" its arguments.
    script.push_str(&format!(
        "exec {user}/usr/bin/env -i PATH={} HOME=/nonexistent \"$0\" \"$@\"\n",
        env.path
    ));
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
        .arg(script)
        .arg(ddc)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// An empty folder outside the repository, readable by everyone, holding
/// a copy of the binary (`ddc`) and `ddc init`'s cluster (`cluster/`).
fn installed() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix("ddc-install-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ddc = d.path().join("ddc");
    std::fs::copy(env!("CARGO_BIN_EXE_ddc"), &ddc).unwrap();
    let cluster = d.path().join("cluster");
    let o = Command::new(&ddc)
        .arg("init")
        .arg(&cluster)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (d, ddc, cluster)
}

fn chown_nobody(dir: &Path) {
    let o = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(o.success());
}

#[test]
fn an_inited_folder_with_the_binary_alone_reads_as_an_unprivileged_user_without_host_tools() {
    common::require_root("it switches users and hides host files in a mount namespace");
    let (_d, ddc, cluster) = installed();
    assert_eq!(
        std::fs::read_dir(&cluster).unwrap().count(),
        2,
        "a Ddcfile.toml and a nodes.csv, nothing else"
    );
    let env = Env {
        nobody: true,
        hide: LOADERS,
        null: &[],
        path: "/nonexistent",
    };
    let r = ddc_in(&cluster, &ddc, &env, &["build", "-n"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("dry run: 13 would run, 0 cached"),
        "{}",
        r.stdout
    );
    // What a build would lack is said, not failed on.
    assert!(
        r.stderr.contains("ddc build would not start"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("apt-get install pxelinux"),
        "{}",
        r.stderr
    );
    let r = ddc_in(&cluster, &ddc, &env, &["graph"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("bootloader") && l.contains("stale")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("debootstrap:default"), "{}", r.stdout);
    for args in [&["generations"][..], &["gc", "-n"], &["tasks"]] {
        let r = ddc_in(&cluster, &ddc, &env, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    // Nothing was written by the user who could not have.
    assert!(!cluster.join("cache").exists());
}

#[test]
fn read_only_commands_show_a_built_project_to_a_user_as_to_root() {
    common::require_root("it switches users and hides host files in a mount namespace");
    let p = Project::new();
    p.build(&[]);
    std::fs::set_permissions(p.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ddc = p.path("ddc");
    std::fs::copy(env!("CARGO_BIN_EXE_ddc"), &ddc).unwrap();
    let root = Env {
        nobody: false,
        hide: &[],
        null: &[],
        path: "/usr/bin:/bin",
    };
    let user = Env {
        nobody: true,
        ..root
    };
    let graph = ddc_in(&p.path(""), &ddc, &root, &["graph", "--format", "json"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    let seen = ddc_in(&p.path(""), &ddc, &user, &["graph", "--format", "json"]);
    assert_eq!(seen.code, 0, "{}", seen.stderr);
    assert_eq!(seen.stdout, graph.stdout, "the user sees what root sees");
    assert!(graph.stdout.contains("fresh"), "{}", graph.stdout);
    let r = ddc_in(&p.path(""), &ddc, &user, &["build", "-n"]);
    assert!(
        r.stdout.contains("0 would run, 10 cached"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let r = ddc_in(&p.path(""), &ddc, &user, &["generations"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("node01, node02"), "{}", r.stdout);

    // A layer the user cannot read: skipped with a note, taken as recorded.
    let layer = p.path("cache/images/default/packages");
    std::fs::set_permissions(&layer, std::fs::Permissions::from_mode(0o700)).unwrap();
    let r = ddc_in(&p.path(""), &ddc, &user, &["build", "-n"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("0 would run, 10 cached"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("skipped cache/images/default/packages: this user cannot read"),
        "{}",
        r.stderr
    );
    // Records the user cannot read: skipped with a note, never a failure.
    for e in std::fs::read_dir(p.path("cache/state")).unwrap() {
        let f = e.unwrap().path();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let r = ddc_in(&p.path(""), &ddc, &user, &["graph"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("skipped the records"), "{}", r.stderr);
    assert!(r.stdout.contains("not built yet"), "{}", r.stdout);
    // Root, who can read it all, finds nothing to do.
    std::fs::set_permissions(&layer, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(p.build(&[]), Vec::<String>::new());
}

#[test]
fn the_preflight_names_every_missing_tool_and_file_at_once() {
    common::require_root("it switches users and hides host files in a mount namespace");
    let (_d, ddc, cluster) = installed();
    chown_nobody(&cluster);
    let which = |p: &str| format!("/usr/bin/{p}");
    let (mmdebstrap, rsync) = (which("mmdebstrap"), which("rsync"));
    for p in [&mmdebstrap, &rsync] {
        assert!(
            Path::new(p).is_file(),
            "{p} is installed where this test hides it"
        );
    }
    let env = Env {
        nobody: true,
        hide: LOADERS,
        null: &[&mmdebstrap, &rsync],
        path: "/usr/bin:/bin",
    };
    let r = ddc_in(&cluster, &ddc, &env, &["build"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "error: this master lacks what the build needs:",
            "error:   root: debootstrap:default, packages:default, configure:default, initramfs:default build a root file system in a chroot: run ddc build as root (sudo ddc build)",
            "error:   program chroot (packages:default, configure:default, initramfs:default): not in PATH, though /usr/sbin/chroot is: add /usr/sbin to PATH",
            "error:   program mmdebstrap (debootstrap:default): not in PATH (package mmdebstrap)",
            "error:   program rsync (publish:default): not in PATH (package rsync)",
            "error:   file /usr/lib/PXELINUX/pxelinux.0 (bootloader): missing (package pxelinux)",
            "error:   file /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi (bootloader): missing (package syslinux-efi)",
            "error:   file /usr/lib/syslinux/modules/bios/ldlinux.c32 (bootloader): missing (package syslinux-common)",
            "error:   file /usr/lib/syslinux/modules/efi64/ldlinux.e64 (bootloader): missing (package syslinux-common)",
            "error: install every missing package at once: apt-get install mmdebstrap rsync pxelinux syslinux-efi syslinux-common",
        ]
    );
    assert!(!cluster.join("out").exists(), "nothing ran");
    assert!(!cluster.join("cache/images").exists(), "nothing ran");

    // As root with a PATH that has nothing: the namespaces' unshare too.
    let env = Env {
        nobody: false,
        path: "/nonexistent",
        ..env
    };
    let r = ddc_in(&cluster, &ddc, &env, &["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("root:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("program unshare (debootstrap:default, packages:default, configure:default, initramfs:default): not in PATH, though /usr/bin/unshare is"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .lines()
            .last()
            .unwrap()
            .ends_with("apt-get install mmdebstrap rsync pxelinux syslinux-efi syslinux-common"),
        "{}",
        r.stderr
    );
    assert!(!cluster.join("out").exists(), "nothing ran");
}

fn ddc(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

const SUBCOMMANDS: &[&str] = &[
    "build",
    "graph",
    "generations",
    "rollback",
    "rollforward",
    "gc",
    "clean",
    "init",
    "completions",
    "man",
    "tasks",
    "power",
    "nodes",
    "show",
    "node",
    "serve",
    "status",
    "discover",
    "rollout",
];

#[test]
fn the_completions_complete_in_bash_and_name_every_command() {
    let bash = ddc(&["completions", "bash"]);
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("ddc.bash");
    std::fs::write(&file, &bash).unwrap();
    // Completing `ddc ro` and `ddc build --dr` with the generated function.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}\n\
             COMP_WORDS=(ddc ro); COMP_CWORD=1; _ddc ddc ro ddc; echo \"${{COMPREPLY[*]}}\"\n\
             COMP_WORDS=(ddc build --dr); COMP_CWORD=2; _ddc ddc --dr build; echo \"${{COMPREPLY[*]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(out, "rollback rollforward rollout\n--dry-run\n");
    let zsh = ddc(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef ddc"), "{zsh}");
    let fish = ddc(&["completions", "fish"]);
    for sub in SUBCOMMANDS {
        assert!(zsh.contains(&format!("'{sub}:")), "zsh lacks {sub}");
        assert!(fish.contains(&format!("-a \"{sub}\"")), "fish lacks {sub}");
    }
}

#[test]
fn the_man_page_describes_every_command_and_groff_reads_it_without_a_warning() {
    let page = ddc(&["man"]);
    let title = page.lines().find(|l| l.starts_with(".TH"));
    assert_eq!(
        title,
        Some(format!(".TH ddc 1  \"ddc {}\" ", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble");
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!(".SS \"ddc {sub}")),
            "no section for ddc {sub}"
        );
    }
    for section in ["EXIT STATUS", "FILES", "ENVIRONMENT", "SEE ALSO"] {
        assert!(
            page.contains(&format!(".SH \"{section}\""))
                || page.contains(&format!(".SH {section}")),
            "no {section}"
        );
    }
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("ddc.1");
    std::fs::write(&file, &page).unwrap();
    let o = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output()
        .expect("groff must be installed (apt-get install groff-base)");
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "groff warnings");
}

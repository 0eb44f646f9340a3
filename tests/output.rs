//! What a build prints on a cluster of 50 nodes: per-node lines folded and
//! sorted (listed with -v), failures repeated at the end with skipped
//! dependents counted, reasons with old -> new values, a step that is never
//! silent on a pipe; and the CLI's rollback `latest` and gc's reasons.

mod common;

use common::{Project, DDCFILE};

const NODES: usize = 50;

/// The test Ddcfile with 50 nodes instead of 2, written in a scrambled order.
fn fifty() -> Project {
    let start = DDCFILE.find("[[nodes]]").unwrap();
    let end = DDCFILE.find("# The tests never reach").unwrap();
    let mut nodes = String::new();
    for k in 0..NODES {
        let i = (k * 17) % NODES + 1;
        nodes.push_str(&format!(
            "[[nodes]]\nhostname = \"node{i:02}\"\nmac      = \"52:54:00:aa:00:{i:02x}\"\nip       = \"192.0.2.{}\"\n\n",
            100 + i
        ));
    }
    let text = format!("{}{nodes}{}", &DDCFILE[..start], &DDCFILE[end..]);
    let p = Project::with(&text);
    p.build(&[]);
    p
}

/// The lines of `out` but the closing summary, whose time varies.
fn lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| !l.starts_with("ddc: ")).collect()
}

#[test]
fn per_node_lines_fold_in_sorted_order_and_v_lists_them() {
    let p = fifty();
    p.edit("Ddcfile.toml", "console=ttyS0", "console=ttyS1");
    let r = p.ddc(&["build", "-n"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        lines(&r.stdout),
        [
            "would run pxe: 50 nodes (node01 … node50): input changed: images.default.cmdline console=ttyS0 -> console=ttyS1"
        ],
        "{}",
        r.stdout
    );
    let r = p.ddc(&["build", "-n", "-v"]);
    let listed: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("would run pxe:"))
        .collect();
    let want: Vec<String> = (1..=NODES)
        .map(|i| format!("would run pxe:node{i:02}: input changed: images.default.cmdline console=ttyS0 -> console=ttyS1"))
        .collect();
    assert_eq!(listed, want, "{}", r.stdout);
    // The build itself folds the same way.
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        lines(&r.stdout),
        ["ran pxe: 50 nodes (node01 … node50): input changed: images.default.cmdline console=ttyS0 -> console=ttyS1"],
        "{}",
        r.stdout
    );
    assert!(
        !r.stderr.contains('\u{1b}'),
        "escape codes on a pipe: {:?}",
        r.stderr
    );
}

#[test]
fn a_failure_is_repeated_at_the_end_and_skipped_nodes_are_counted() {
    let p = fifty();
    p.write(
        "tasks/configure.sh",
        "#!/bin/sh\necho 'E: cannot configure the image' >&2\nexit 3\n",
    );
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("50 skipped because pxe's dependency configure:default failed\n"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("skipped pxe:node"), "{}", r.stdout);
    // The error block, then at the very end the failed task again, by name.
    let err = &r.stderr;
    let block = err.find("error: configure:default failed").expect(err);
    let recap = err
        .find("ddc: 1 task failed:\n  configure:default: ")
        .expect(err);
    assert!(block < recap, "{err}");
    let log = p.path("cache/logs/configure:default.log");
    assert!(
        err[recap..].ends_with(&format!(
            "  configure:default: /bin/sh exited with status 3\n    log: {}\n",
            log.display()
        )),
        "{err}"
    );
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("ddc: 0 ran, 4 cached, 1 failed, 53 skipped in "),
        "{last}"
    );
    // -v lists them.
    let r = p.ddc(&["build", "-v"]);
    let listed = r
        .stdout
        .lines()
        .filter(|l| {
            l.starts_with("skipped pxe:node") && l.ends_with("dependency failed: configure:default")
        })
        .count();
    assert_eq!(listed, NODES, "{}", r.stdout);
}

#[test]
fn many_failed_nodes_print_three_errors_and_count_the_rest() {
    let p = fifty();
    let t = p
        .read("Ddcfile.toml")
        .replace("ip       = ", "image    = \"default@7\"\nip       = ");
    p.write("Ddcfile.toml", &t);
    let r = p.ddc(&["build", "-k"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let blocks = r.stderr.matches("error: pxe:node").count();
    assert_eq!(blocks, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("failed pxe: 47 more nodes ("),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ddc: 50 tasks failed:\n"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("\n  and 40 more (their errors are in their logs, or with -v)\n"),
        "{}",
        r.stderr
    );
    let r = p.ddc(&["build", "-k", "-v"]);
    assert_eq!(
        r.stderr.matches("error: pxe:node").count(),
        50,
        "{}",
        r.stderr
    );
}

#[test]
fn reasons_show_old_and_new_values_but_never_a_secret() {
    let p = fifty();
    p.edit("Ddcfile.toml", "52:54:00:aa:00:05", "52:54:00:aa:00:f5");
    let r = p.ddc(&["build", "-n"]);
    assert!(
        r.stdout.contains(
            "would run pxe:node05: input changed: node.mac 52:54:00:aa:00:05 -> 52:54:00:aa:00:f5\n"
        ),
        "{}",
        r.stdout
    );
    let r = p.ddc(&["build", "--json"]);
    assert!(
        r.stdout
            .contains("node.mac 52:54:00:aa:00:05 -> 52:54:00:aa:00:f5"),
        "{}",
        r.stdout
    );
    let hash = "$6$ddctestsalt$UGrczPA5ZbGgyrHKMCK91F1gRvnqddVMI0K4JLYVLqPVXDior.niIU5bm/A4w4.S2OZOB0LOeuFfxjHXFtc2v0";
    p.edit(
        "Ddcfile.toml",
        "cmdline  = \"console=ttyS0\"",
        &format!("cmdline  = \"console=ttyS0\"\nroot_password_hash = \"{hash}\""),
    );
    p.build(&[]);
    let other = hash.replace("ddctestsalt", "othersalt00");
    p.edit("Ddcfile.toml", hash, &other);
    let r = p.ddc(&["build", "-n"]);
    assert!(
        r.stdout.contains(
            "would run configure:default: input changed: images.default.root_password_hash (a secret: not shown)\n"
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("ddctestsalt") && !r.stdout.contains("othersalt00"));
    // The journal keeps no secret either.
    let journal = std::fs::read_to_string(p.path("cache/state/journal.jsonl")).unwrap_or_default();
    assert!(!journal.contains("ddctestsalt"), "a secret in the journal");
}

#[test]
fn a_slow_step_on_a_pipe_says_it_started_and_beats() {
    let p = Project::new();
    p.write(
        "tasks/packages.sh",
        "#!/bin/sh\nset -eu\nmkdir -p \"$DDC_ROOTFS/var/lib/dpkg\"\necho 'Get:1 fetching nfs-common'\nsleep 12\n",
    );
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("running packages:default\n"),
        "{}",
        r.stderr
    );
    let beat = r
        .stderr
        .lines()
        .find(|l| l.starts_with("still running packages:default ("))
        .unwrap_or_else(|| panic!("no heartbeat: {}", r.stderr));
    assert!(beat.ends_with("s): Get:1 fetching nfs-common"), "{beat}");
    assert!(
        !r.stderr.contains('\u{1b}'),
        "escape codes on a pipe: {:?}",
        r.stderr
    );
}

#[test]
fn rollback_latest_goes_to_the_newest_generation() {
    let p = Project::new();
    p.build(&[]);
    p.edit("Ddcfile.toml", "\"nfs-common\"", "\"nfs-common\", \"htop\"");
    p.build(&[]);
    let g = p.generations("default");
    assert_eq!(g.len(), 2);
    let r = p.ddc(&["rollback", "default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(p.current("default"), g[0]);
    let r = p.ddc(&["rollback", "default", "latest"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(p.current("default"), g[1]);
    assert!(
        r.stderr
            .contains(&format!("default: current is now {} (was {})", g[1], g[0])),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.starts_with("ran pxe: 2 nodes (node01, node02)"),
        "{}",
        r.stdout
    );
}

#[test]
fn gc_names_a_pin_before_being_one_of_the_newest() {
    let p = Project::new();
    p.build(&[]);
    p.edit("Ddcfile.toml", "\"nfs-common\"", "\"nfs-common\", \"htop\"");
    p.build(&[]);
    let g = p.generations("default");
    p.edit(
        "Ddcfile.toml",
        "ip       = \"192.0.2.12\"",
        "ip       = \"192.0.2.12\"\nimage    = \"default@1\"",
    );
    p.build(&[]);
    let r = p.ddc(&["gc", "--keep", "2", "-n"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "keep   default/{} (pinned by node02)\nkeep   default/{} (current)\nwould free 0 B\n",
            g[0], g[1]
        )
    );
}

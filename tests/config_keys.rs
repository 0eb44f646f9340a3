//! The optional keys of the Ddcfile and the CSV inventory, through the real
//! binary on the tiny step scripts: each one's effect on the files it must
//! reach, and on no other.

mod common;

use common::{strs, Project};

const ENTRY1: &str = "out/tftp/pxelinux.cfg/01-52-54-00-12-34-56";
const ENTRY2: &str = "out/tftp/pxelinux.cfg/01-52-54-00-12-34-57";
const EFI_ENTRY1: &str = "out/tftp/efi64/pxelinux.cfg/01-52-54-00-12-34-56";
const EFI_ENTRY2: &str = "out/tftp/efi64/pxelinux.cfg/01-52-54-00-12-34-57";

/// The `APPEND` line of a boot entry.
fn append(p: &Project, entry: &str) -> String {
    let text = p.read(entry);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("APPEND "))
        .unwrap_or_else(|| panic!("{entry} has no APPEND line:\n{text}"))
        .to_string()
}

/// The only generation of `image`.
fn generation(p: &Project, image: &str) -> String {
    let gens = p.generations(image);
    assert_eq!(gens.len(), 1, "{image}: {gens:?}");
    gens[0].clone()
}

/// A second image, `big`, beside `default`, with its own packages and
/// command line.
const BIG: &str = "\n[images.big]\nsuite    = \"bookworm\"\narch     = \"amd64\"\npackages = [\"linux-image-amd64\", \"nfs-common\", \"slurmd\"]\ncmdline  = \"console=ttyS1\"\n";

fn with_big(ddcfile: &str) -> String {
    ddcfile.replacen("\n[[nodes]]", &format!("{BIG}\n[[nodes]]"), 1)
}

#[test]
fn a_nodes_cmdline_is_in_its_own_entries_only() {
    let p = Project::with(&common::DDCFILE.replace(
        "ip       = \"192.0.2.12\"",
        "ip       = \"192.0.2.12\"\ncmdline  = \"nomodeset\"",
    ));
    p.build(&[]);
    for entry in [ENTRY2, EFI_ENTRY2] {
        assert!(
            append(&p, entry).ends_with(" ro console=ttyS0 nomodeset"),
            "{entry}: {}",
            append(&p, entry)
        );
    }
    for entry in [ENTRY1, EFI_ENTRY1] {
        assert!(
            append(&p, entry).ends_with(" ro console=ttyS0"),
            "{entry}: {}",
            append(&p, entry)
        );
    }
    // Editing it rewrites that node's entry, nothing else.
    p.edit("Ddcfile.toml", "\"nomodeset\"", "\"nomodeset quiet\"");
    assert_eq!(p.build(&[]), strs(&["pxe:node02"]));
    assert!(append(&p, ENTRY2).ends_with(" ro console=ttyS0 nomodeset quiet"));
    assert!(!p.read(ENTRY1).contains("quiet"));
}

#[test]
fn two_images_build_side_by_side_with_their_own_entries() {
    let p = Project::with(&with_big(common::DDCFILE).replace(
        "ip       = \"192.0.2.12\"",
        "ip       = \"192.0.2.12\"\nimage    = \"big\"",
    ));
    let ran = p.build(&[]);
    for t in [
        "debootstrap:default",
        "debootstrap:big",
        "publish:default",
        "publish:big",
    ] {
        assert!(ran.contains(&t.to_string()), "{t} did not run: {ran:?}");
    }
    let (gd, gb) = (generation(&p, "default"), generation(&p, "big"));
    assert_eq!(
        p.read(&format!("out/nfsroot/big/{gb}/var/lib/dpkg/packages")),
        "linux-image-amd64 nfs-common slurmd\n"
    );
    assert_eq!(
        p.read(&format!("out/nfsroot/default/{gd}/var/lib/dpkg/packages")),
        "linux-image-amd64 nfs-common\n"
    );
    // Each node boots its own image, with that image's command line.
    let e1 = p.read(ENTRY1);
    assert!(
        e1.contains(&format!("KERNEL ::/default/{gd}/vmlinuz"))
            && e1.contains(&format!("/out/nfsroot/default/{gd},vers=3"))
            && e1.contains(" ro console=ttyS0\n"),
        "{e1}"
    );
    let e2 = p.read(ENTRY2);
    assert!(
        e2.contains(&format!("KERNEL ::/big/{gb}/vmlinuz"))
            && e2.contains(&format!("INITRD ::/big/{gb}/initrd.img"))
            && e2.contains(&format!("/out/nfsroot/big/{gb},vers=3"))
            && e2.contains(" ro console=ttyS1\n"),
        "{e2}"
    );
    assert!(p.path(&format!("out/tftp/big/{gb}/vmlinuz")).exists());
    let exports = p.read("out/exports.d/ddc.exports");
    assert!(
        exports.contains(&format!("/out/nfsroot/default/{gd} "))
            && exports.contains(&format!("/out/nfsroot/big/{gb} ")),
        "{exports}"
    );
    // A change to one image rebuilds that image and its nodes only.
    p.edit("Ddcfile.toml", "\"slurmd\"]", "\"slurmd\", \"munge\"]");
    assert_eq!(
        p.build(&[]),
        strs(&[
            "configure:big",
            "exports",
            "initramfs:big",
            "packages:big",
            "publish:big",
            "pxe:node02",
        ])
    );
    assert_eq!(generation(&p, "default"), gd);
    assert!(p.read(ENTRY1).contains(&gd));
    assert!(
        !p.read(ENTRY2).contains(&gb),
        "node02 moved to big's new generation"
    );
}

#[test]
fn the_csv_image_and_cmdline_columns() {
    let p = Project::with(&with_big(common::DDCFILE).replace(
        "tasks_dir = \"tasks\"",
        "tasks_dir = \"tasks\"\nnodes_file = \"nodes.csv\"",
    ));
    p.write(
        "nodes.csv",
        "hostname,mac,ip,image,cmdline\n\
         rack-01,52:54:00:aa:00:01,192.0.2.101,big,quiet splash\n\
         rack-02,52:54:00:aa:00:02,192.0.2.102,,\n\
         rack-03,52:54:00:aa:00:03,192.0.2.103,default,nomodeset\n",
    );
    p.build(&[]);
    let (gd, gb) = (generation(&p, "default"), generation(&p, "big"));
    let entry = |mac: &str| format!("out/tftp/pxelinux.cfg/01-52-54-00-aa-00-{mac}");
    let a = append(&p, &entry("01"));
    assert!(
        a.contains(&format!("/out/nfsroot/big/{gb},vers=3"))
            && a.ends_with(" ro console=ttyS1 quiet splash"),
        "rack-01: {a}"
    );
    // Empty columns: the default image, no extra arguments.
    let a = append(&p, &entry("02"));
    assert!(
        a.contains(&format!("/out/nfsroot/default/{gd},vers=3"))
            && a.ends_with(" ro console=ttyS0"),
        "rack-02: {a}"
    );
    let a = append(&p, &entry("03"));
    assert!(
        a.contains(&format!("/out/nfsroot/default/{gd},vers=3"))
            && a.ends_with(" ro console=ttyS0 nomodeset"),
        "rack-03: {a}"
    );
    // A row's cmdline edited in the CSV: that node's entry only.
    p.edit("nodes.csv", "quiet splash", "quiet");
    assert_eq!(p.build(&[]), strs(&["pxe:rack-01"]));
    // An image the Ddcfile does not have is an error naming the row.
    p.edit("nodes.csv", "192.0.2.103,default", "192.0.2.103,nope");
    let r = p.ddc(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("error: nodes.csv: row 4: image: names image \"nope\", which is not defined"),
        "{}",
        r.stderr
    );
}

#[test]
fn dnsmasq_tftp_false_removes_the_tftp_lines() {
    let p = Project::new();
    p.build(&[]);
    let with = p.read("out/dnsmasq.d/ddc.conf");
    let tftp_root = format!("tftp-root={}", p.path("out/tftp").display());
    assert!(with.contains("\nenable-tftp\n"), "{with}");
    assert!(
        with.lines()
            .any(|l| l.starts_with("tftp-root=") && l.ends_with("/out/tftp")),
        "{with}\n(expected {tftp_root})"
    );
    p.edit(
        "Ddcfile.toml",
        "\n[images.default]",
        "\n[server]\ndnsmasq_tftp = false\n\n[images.default]",
    );
    assert_eq!(p.build(&[]), strs(&["dhcp"]));
    let without = p.read("out/dnsmasq.d/ddc.conf");
    assert!(
        !without.contains("enable-tftp") && !without.contains("tftp-root"),
        "{without}"
    );
    // Only those lines go: the boot file names and hosts stay.
    let removed: Vec<&str> = with
        .lines()
        .filter(|l| !without.lines().any(|w| w == *l))
        .collect();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(removed[0].starts_with("# Written by ddc"), "{removed:?}");
    assert_eq!(removed[1], "enable-tftp");
    assert!(removed[2].starts_with("tftp-root="), "{removed:?}");
    assert!(without.contains("dhcp-boot=tag:!efi64,pxelinux.0,,192.0.2.1\n"));
    assert!(without.contains("dhcp-hostsfile="), "{without}");
}

#[test]
fn custom_export_options_reach_the_exports_file() {
    let p = Project::new();
    p.build(&[]);
    p.edit(
        "Ddcfile.toml",
        "\n[images.default]",
        "\n[server]\nexport_options = \"ro,sync,root_squash,no_subtree_check,fsid=7\"\n\n[images.default]",
    );
    let dhcp = p.read("out/dhcp/ddc.conf");
    let ran = p.build(&[]);
    // (dhcp reruns too: its key holds all of [server]; its output is the same.)
    assert!(
        ran.contains(&"exports".to_string()) && ran.iter().all(|t| t == "exports" || t == "dhcp"),
        "{ran:?}"
    );
    assert_eq!(p.read("out/dhcp/ddc.conf"), dhcp);
    let exports = p.read("out/exports.d/ddc.exports");
    let line = exports
        .lines()
        .find(|l| l.contains("/out/nfsroot/default/"))
        .unwrap_or_else(|| panic!("no export line:\n{exports}"));
    assert!(
        line.ends_with(" 192.0.2.0/24(ro,secure,sync,root_squash,no_subtree_check,fsid=7)"),
        "{line}"
    );
}

//! Image inheritance (`from = "BASE"`) and retired images, through the real
//! binary on the tiny step scripts: the child's graph starts from its base's
//! packages layer, a base edit reruns the child from there, the generations
//! share files by hard links; `from` errors; an image removed from the
//! Ddcfile keeps its layers until `ddc gc`, and adding it back reuses them.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{strs, tasks_in, Project};

const CHILD: &str = "[images.gpu]\nfrom = \"default\"\npackages = [\"nvidia-driver\", \"nfs-common\"]\nnis_domain = \"gpus\"\n\n";

/// The test Ddcfile with a child image `gpu` of `default`, booted by node02.
fn ddcfile() -> String {
    common::DDCFILE
        .replacen("[[nodes]]", &format!("{CHILD}[[nodes]]"), 1)
        .replace(
            "ip       = \"192.0.2.12\"",
            "ip       = \"192.0.2.12\"\nimage    = \"gpu\"",
        )
}

/// The test Ddcfile as it was before the child (node02 back on default).
fn without_child() -> String {
    common::DDCFILE.to_string()
}

/// (device, inode) of every regular file under `root`.
fn inodes(root: &Path) -> HashSet<(u64, u64)> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let m = e.metadata().unwrap();
            (m.dev(), m.ino())
        })
        .collect()
}

fn graph(p: &Project) -> serde_json::Value {
    let r = p.ddc(&["graph", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

fn deps_of(g: &serde_json::Value, id: &str) -> Vec<String> {
    let t = g["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {g:#}"));
    t["deps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_child_starts_from_its_base_packages_layer() {
    let p = Project::with(&ddcfile());
    let g = graph(&p);
    let ids: Vec<&str> = g["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"debootstrap:gpu"), "{ids:?}");
    assert_eq!(deps_of(&g, "packages:gpu"), ["packages:default"]);
    assert_eq!(deps_of(&g, "configure:gpu"), ["packages:gpu"]);
    assert_eq!(deps_of(&g, "initramfs:gpu"), ["configure:gpu"]);
    assert_eq!(deps_of(&g, "publish:gpu"), ["initramfs:gpu"]);

    let ran = p.build(&[]);
    assert!(!ran.iter().any(|t| t == "debootstrap:gpu"), "{ran:?}");
    for t in [
        "packages:gpu",
        "configure:gpu",
        "initramfs:gpu",
        "publish:gpu",
    ] {
        assert!(ran.iter().any(|r| r == t), "{t} did not run: {ran:?}");
    }
    let child = p.path(&format!("out/nfsroot/gpu/{}", p.current("gpu")));
    let base = p.path(&format!("out/nfsroot/default/{}", p.current("default")));
    // The base's tree with the child's own packages (only those the base lacks)
    // and its own settings on top.
    assert_eq!(
        p.read(&format!(
            "out/nfsroot/gpu/{}/var/lib/dpkg/packages",
            p.current("gpu")
        )),
        "nvidia-driver\n"
    );
    assert_eq!(
        std::fs::read_to_string(child.join("etc/debian_version")).unwrap(),
        "bookworm amd64\n"
    );
    assert!(
        std::fs::read_to_string(child.join("boot/initrd.img-6.1.0-test"))
            .unwrap()
            .contains("overlay"),
        "union is inherited"
    );
    // The generations share what the child did not change.
    let shared = inodes(&child).intersection(&inodes(&base)).count();
    assert!(
        shared >= 2,
        "the child's generation shares {shared} files with the base's"
    );
    // The child inherits the base's cmdline.
    assert!(p
        .read("out/tftp/pxelinux.cfg/01-52-54-00-12-34-57")
        .contains(&format!("/gpu/{}", p.current("gpu"))));
    assert!(p
        .read("out/tftp/pxelinux.cfg/01-52-54-00-12-34-57")
        .contains("ro console=ttyS0\n"));
    assert_eq!(p.build(&[]), Vec::<String>::new());

    // A base package: the base reruns from packages, the child from the
    // shared layer down; never a debootstrap. The tiny packages step of the
    // child writes the dpkg files over the base's, so the child's tree comes
    // out as before: its publish finds it identical to its generation and
    // publishes nothing, and node02's entry stays (reproducible builds).
    let gpu_before = p.current("gpu");
    p.edit(
        "Ddcfile.toml",
        "\"nfs-common\"]\nunion",
        "\"nfs-common\", \"htop\"]\nunion",
    );
    assert_eq!(
        p.build(&[]),
        strs(&[
            "configure:default",
            "configure:gpu",
            "exports",
            "initramfs:default",
            "initramfs:gpu",
            "packages:default",
            "packages:gpu",
            "publish:default",
            "publish:gpu",
            "pxe:node01",
        ])
    );
    assert_eq!(p.current("gpu"), gpu_before);
    // A key the child sets itself: the base's configure alone (the tiny
    // configure step ignores it: early cutoff), never the child's.
    p.edit(
        "Ddcfile.toml",
        "cmdline  = \"console=ttyS0\"",
        "cmdline  = \"console=ttyS0\"\nnis_domain = \"cpus\"",
    );
    assert_eq!(p.build(&[]), strs(&["configure:default"]));
    // An inherited key: both images' boot entries.
    p.edit("Ddcfile.toml", "console=ttyS0\"", "console=ttyS1\"");
    assert_eq!(p.build(&[]), strs(&["pxe:node01", "pxe:node02"]));
    // The child's own package list: the child alone.
    p.edit("Ddcfile.toml", "\"nvidia-driver\"", "\"nvidia-smi\"");
    assert_eq!(
        p.build(&[]),
        strs(&[
            "configure:gpu",
            "exports",
            "initramfs:gpu",
            "packages:gpu",
            "publish:gpu",
            "pxe:node02",
        ])
    );
}

/// Without overlays (DDC_STAGING=copy) the child's packages step starts
/// from a copy of the base's packages tree, and publishes the same image.
#[test]
fn a_child_in_copy_staging_publishes_what_layers_publish() {
    let layers = Project::with(&ddcfile());
    layers.build(&[]);
    let copy = Project::with(&ddcfile());
    let r = copy
        .command(&["build", "--json"])
        .env("DDC_STAGING", "copy")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let published = |p: &Project| tree(&p.path(&format!("out/nfsroot/gpu/{}", p.current("gpu"))));
    let (l, c) = (published(&layers), published(&copy));
    assert!(l.contains_key("etc/debian_version"), "{l:?}");
    assert_eq!(l, c, "the published trees differ");
    assert!(
        !copy.path("cache/images/gpu/debootstrap").exists(),
        "a debootstrap of the child"
    );
}

/// Every entry of a tree: its type, mode and content (or link target).
fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(e.path()).unwrap().display())
            } else if m.is_dir() {
                "dir".to_string()
            } else {
                format!(
                    "file {}",
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap())
                )
            };
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            (rel, format!("{:o} {what}", m.permissions().mode()))
        })
        .collect()
}

fn errors(p: &Project) -> String {
    let r = p.ddc(&["graph"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    r.stderr
}

#[test]
fn from_errors_name_the_key_and_what_to_do() {
    let base = ddcfile();
    let p = Project::with(&base.replace(
        "from = \"default\"\n",
        "from = \"default\"\nsuite = \"trixie\"\narch = \"arm64\"\n",
    ));
    let e = errors(&p);
    assert!(
        e.contains("Ddcfile.toml:24:9: images.gpu.suite: \"trixie\" differs from \"bookworm\", the suite of images.default, which gpu starts from (from = \"default\"): an image built on another's packages layer has its suite; remove the key, or remove from to build gpu from scratch"),
        "{e}"
    );
    assert!(
        e.contains("Ddcfile.toml:25:8: images.gpu.arch: \"arm64\" differs from \"amd64\""),
        "{e}"
    );

    let p = Project::with(&base.replace(
        "[images.gpu]",
        "[images.cpu]\nfrom = \"gpu\"\n\n[images.gpu]",
    ));
    p.edit("Ddcfile.toml", "from = \"default\"", "from = \"cpu\"");
    let e = errors(&p);
    assert!(
        e.contains("images.gpu.from: \"cpu\" leads back to gpu: a cycle (cpu → gpu → cpu); one of them must set suite instead of from"),
        "{e}"
    );
    assert_eq!(e.matches("cycle").count(), 1, "one error a cycle: {e}");

    let p = Project::with(&base.replace("from = \"default\"", "from = \"defualt\""));
    let e = errors(&p);
    assert!(
        e.contains("Ddcfile.toml:23:8: images.gpu.from: names image \"defualt\", which is not defined; did you mean \"default\"? (defined: default, gpu; or define [images.defualt])"),
        "{e}"
    );

    let p = Project::with(&base.replace("from = \"default\"\n", ""));
    let e = errors(&p);
    assert!(
        e.contains("images.gpu.suite: missing: set suite (a Debian suite like bookworm), or from = \"IMAGE\" to start from another image's packages"),
        "{e}"
    );
}

#[test]
fn a_retired_image_stays_until_gc_and_comes_back_without_a_rebuild() {
    let p = Project::with(&ddcfile());
    p.build(&[]);
    let generation = p.current("gpu");
    let layers = p.path("cache/images/gpu");

    // Removed from the Ddcfile: its layers and generations stay.
    p.write("Ddcfile.toml", &without_child());
    let r = p.ddc(&["build", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        tasks_in(&r.stdout, "ran"),
        strs(&["dhcp", "exports", "pxe:node02"])
    );
    assert!(
        r.stderr.contains("image gpu is retired (no longer in the Ddcfile): its cache layers and generations stay until `ddc gc`; adding it back reuses them"),
        "{}",
        r.stderr
    );
    for step in ["packages", "configure", "initramfs"] {
        assert!(layers.join(step).is_dir(), "{step} layer deleted");
    }
    assert_eq!(p.current("gpu"), generation);

    // Listed as retired, by itself too.
    let r = p.ddc(&["generations"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("gpu (retired: no longer in the Ddcfile; `ddc gc` deletes its generations and cache layers):")
            && r.stdout.contains(&generation),
        "{}",
        r.stdout
    );
    let r = p.ddc(&["generations", "gpu", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        (
            v["image"].as_str(),
            v["id"].as_str(),
            v["retired"].as_bool()
        ),
        (Some("gpu"), Some(generation.as_str()), Some(true)),
        "{}",
        r.stdout
    );
    let r = p.ddc(&["generations", "gpu"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&generation) && !r.stdout.contains("default"),
        "{}",
        r.stdout
    );

    // Added back: nothing of the image reruns.
    p.write("Ddcfile.toml", &ddcfile());
    assert_eq!(p.build(&[]), strs(&["dhcp", "exports", "pxe:node02"]));
    assert_eq!(p.current("gpu"), generation);

    // Removed again, then collected by gc (-n first: it says, deletes nothing).
    p.write("Ddcfile.toml", &without_child());
    p.build(&[]);
    let r = p.ddc(&["gc", "-n"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("would delete gpu/{generation} (frees "))
            && r.stdout.contains(", retired image)")
            && r.stdout.contains(
                "would delete the cache layers of retired image gpu: cache/images/gpu (frees "
            ),
        "{}",
        r.stdout
    );
    assert!(layers.is_dir() && p.path("out/nfsroot/gpu").is_dir());
    let r = p.ddc(&["gc"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("deleted gpu/{generation} (freed "))
            && r.stdout.contains(
                "deleted the cache layers of retired image gpu: cache/images/gpu (freed "
            ),
        "{}",
        r.stdout
    );
    assert!(!layers.exists(), "the layers are still there");
    assert!(!p.path("out/nfsroot/gpu").exists());
    assert!(!p.path("out/tftp/gpu").exists());
    assert!(!p.read("out/exports.d/ddc.exports").contains("/gpu/"));
    // The base is untouched, and nothing is retired any more.
    assert!(p.path("cache/images/default/packages").is_dir());
    let r = p.ddc(&["build"]);
    assert!(!r.stderr.contains("retired"), "{}", r.stderr);
    let r = p.ddc(&["generations", "gpu"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    // Added back after gc: built again, from the base's packages layer.
    p.write("Ddcfile.toml", &ddcfile());
    let ran = p.build(&[]);
    assert!(ran.iter().any(|t| t == "packages:gpu"), "{ran:?}");
    assert!(!ran.iter().any(|t| t == "packages:default"), "{ran:?}");
}

/// An image that is still in the Ddcfile but no longer runs a step (it
/// now starts from another) loses that step's layer at once.
#[test]
fn a_layer_an_image_no_longer_uses_is_removed() {
    let p = Project::with(&ddcfile().replace("from = \"default\"\n", "suite = \"bookworm\"\n"));
    p.build(&[]);
    assert!(p.path("cache/images/gpu/debootstrap").is_dir());
    p.write("Ddcfile.toml", &ddcfile());
    let ran = p.build(&[]);
    assert!(ran.iter().any(|t| t == "packages:gpu"), "{ran:?}");
    assert!(!p.path("cache/images/gpu/debootstrap").exists());
}

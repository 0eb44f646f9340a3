//! Reproducible generations, for real (root, the Debian mirror, minutes):
//! the example image is built from clean twice (`ddc clean` between), and
//! the second build must publish nothing: the same generation, `current`
//! where it was, the message saying so. The image the second build made
//! (its step layers, mounted read-only) must be the first generation bit
//! for bit: paths, types, modes, owners, contents and mtimes. Prints what
//! differs and its size when it fails, for the README's figure.
//! Ignored by default: `cargo test --release --test reproducible -- --ignored`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::{require_root, tasks_in};

/// One entry of a tree: type and mode, owner, size, mtime, content (a
/// file's blake3, a link's target).
type Listing = BTreeMap<String, (u32, u32, u32, u64, i64, i64, String)>;

fn listing(root: &Path) -> Listing {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).same_file_system(true) {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let content = if m.is_file() {
            blake3::hash(&std::fs::read(e.path()).unwrap())
                .to_hex()
                .to_string()
        } else if m.file_type().is_symlink() {
            std::fs::read_link(e.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        };
        let rel = e.path().strip_prefix(root).unwrap();
        out.insert(
            rel.to_string_lossy().into_owned(),
            (
                m.mode(),
                m.uid(),
                m.gid(),
                if m.is_dir() { 0 } else { m.size() },
                m.mtime(),
                m.mtime_nsec(),
                content,
            ),
        );
    }
    out
}

/// The paths that differ between two listings, and their bytes (the
/// larger of the two sizes).
fn differences(a: &Listing, b: &Listing) -> (Vec<String>, u64) {
    let mut paths = Vec::new();
    let mut bytes = 0;
    for p in a.keys().chain(b.keys().filter(|p| !a.contains_key(*p))) {
        let (x, y) = (a.get(p), b.get(p));
        if x != y {
            let size = |e: Option<&(u32, u32, u32, u64, i64, i64, String)>| e.map_or(0, |e| e.3);
            bytes += size(x).max(size(y));
            paths.push(format!("{p}: {x:?} -> {y:?}"));
        }
    }
    (paths, bytes)
}

fn ddc(dir: &Path, args: &[&str]) -> (String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "ddc {args:?} failed:\n{out}\n{err}");
    (out, err)
}

fn generations(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("out/nfsroot/default"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn current(dir: &Path) -> String {
    std::fs::read_link(dir.join("out/nfsroot/default/current"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The image the last build made, from its step layers in the cache,
/// mounted read-only at `at` (unmounted on drop).
struct Merged<'a>(&'a Path);

impl<'a> Merged<'a> {
    fn mount(dir: &Path, at: &'a Path) -> Merged<'a> {
        let layers = dir.join("cache/images/default");
        let lower: Vec<String> = ["initramfs", "configure", "packages", "debootstrap"]
            .iter()
            .map(|s| layers.join(s).display().to_string())
            .collect();
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("ro,lowerdir={}", lower.join(":")))
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount the layers at {}", at.display());
        Merged(at)
    }
}

impl Drop for Merged<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
#[ignore = "needs root and the Debian mirror, takes minutes: cargo test --release --test reproducible -- --ignored"]
fn a_clean_rebuild_publishes_nothing_new() {
    require_root("builds the example image twice, in a chroot");
    let work = common::ImageWork::new("ddc-repro-");
    let d = work.path();
    std::fs::copy(common::repo().join("Ddcfile.toml"), d.join("Ddcfile.toml")).unwrap();

    let (first, _) = ddc(d, &["build", "--json"]);
    assert!(tasks_in(&first, "ran").contains(&"publish:default".to_string()));
    let gens = generations(d);
    assert_eq!(gens.len(), 1, "{gens:?}");
    let g1 = gens[0].clone();
    assert_eq!(current(d), g1);
    let published = listing(&d.join("out/nfsroot/default").join(&g1));
    let manifest = std::fs::read(d.join(format!("out/nfsroot/default/{g1}.manifest"))).unwrap();
    let entry = std::fs::read(d.join("out/tftp/pxelinux.cfg/01-52-54-00-12-34-56")).unwrap();

    ddc(d, &["clean"]);
    let (second, err) = ddc(d, &["build", "--json"]);
    for step in [
        "debootstrap",
        "packages",
        "configure",
        "initramfs",
        "publish",
    ] {
        assert!(
            tasks_in(&second, "ran").contains(&format!("{step}:default")),
            "{step} did not run again after ddc clean:\n{second}"
        );
    }
    // The image the second build made is the first generation, bit for bit.
    let at = d.join("merged");
    let rebuilt = {
        let _m = Merged::mount(d, &at);
        listing(&at)
    };
    let (differ, bytes) = differences(&published, &rebuilt);
    println!(
        "two clean builds: {} paths differ, {bytes} bytes ({:.1} MiB)",
        differ.len(),
        bytes as f64 / 1048576.0
    );
    assert!(
        differ.is_empty(),
        "{} paths differ ({bytes} bytes):\n{}",
        differ.len(),
        differ.join("\n")
    );
    // ...so nothing was published: same generation, same current, same
    // manifest, same boot entry, and the build said so.
    let said = format!("identical to {g1}, nothing published");
    assert!(
        second.contains(&said) || err.contains(&said),
        "no {said:?} in:\n{second}\n{err}"
    );
    assert_eq!(generations(d), std::slice::from_ref(&g1));
    assert_eq!(current(d), g1);
    assert_eq!(
        std::fs::read(d.join(format!("out/nfsroot/default/{g1}.manifest"))).unwrap(),
        manifest
    );
    assert_eq!(
        std::fs::read(d.join("out/tftp/pxelinux.cfg/01-52-54-00-12-34-56")).unwrap(),
        entry
    );
    // And the generation is as its manifest says.
    ddc(d, &["verify", "default"]);
}

//! `from`: what a child inherits, what it adds, and the order images are
//! built in.

use super::*;

const IMAGES: &str = r#"[cluster]
network = "192.0.2.0/24"
master = "192.0.2.1"

[images.zbase]
suite = "bookworm"
packages = ["linux-image-amd64", "nfs-common"]
union = "aufs"
cmdline = "console=ttyS0"
nis_domain = "all"
mirror = "http://mirror.invalid/other"

[images.mid]
from = "zbase"
packages = ["nfs-common", "less"]
nis_domain = "mid"

[images.aleaf]
from = "mid"
packages = ["less", "htop", "linux-image-amd64"]
cmdline = "quiet"
"#;

#[test]
fn a_child_inherits_what_it_does_not_set_and_adds_packages() {
    let c = parse_str(IMAGES).unwrap();
    let (mid, leaf) = (&c.images["mid"], &c.images["aleaf"]);
    assert_eq!(mid.from.as_deref(), Some("zbase"));
    assert_eq!(leaf.from.as_deref(), Some("mid"));
    // Only what the bases lack.
    assert_eq!(mid.packages, ["less"]);
    assert_eq!(leaf.packages, ["htop"]);
    for i in [mid, leaf] {
        assert_eq!(i.suite, "bookworm");
        assert_eq!(i.mirror, "http://mirror.invalid/other");
        assert_eq!(i.union, Union::Aufs);
    }
    assert_eq!(mid.cmdline, "console=ttyS0");
    assert_eq!(leaf.cmdline, "quiet");
    assert_eq!(mid.nis_domain.as_deref(), Some("mid"));
    assert_eq!(leaf.nis_domain.as_deref(), Some("mid"));
    assert_eq!(c.images["zbase"].from, None);
    assert_eq!(c.bases_of("aleaf").len(), 2);
    // Bases before the images that start from them, whatever their names.
    let order: Vec<&str> = c
        .images_in_build_order()
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(order, ["zbase", "mid", "aleaf"]);
}

#[test]
fn a_child_may_repeat_the_base_fixed_keys_but_not_change_them() {
    let same = IMAGES.replace(
        "from = \"zbase\"\n",
        "from = \"zbase\"\nsuite = \"bookworm\"\narch = \"amd64\"\nmirror = \"http://mirror.invalid/other\"\n",
    );
    assert!(parse_str(&same).is_ok());
    let other = IMAGES.replace(
        "from = \"mid\"\n",
        "from = \"mid\"\nbootstrapper = \"debootstrap\"\n",
    );
    assert_eq!(
        errors(&other),
        "Ddcfile.toml:20:16: images.aleaf.bootstrapper: \"debootstrap\" differs from \"mmdebstrap\", the bootstrapper of images.mid, which aleaf starts from (from = \"mid\"): an image built on another's packages layer has its bootstrapper; remove the key, or remove from to build aleaf from scratch"
    );
    let mirror = IMAGES.replace(
        "from = \"mid\"\n",
        "from = \"mid\"\nmirror = \"http://mirror.invalid/debian\"\n",
    );
    assert!(errors(&mirror).contains("images.aleaf.mirror: \"http://mirror.invalid/debian\" differs from \"http://mirror.invalid/other\""));
}

#[test]
fn a_self_reference_is_a_cycle() {
    let e = errors(&IMAGES.replace("from = \"zbase\"", "from = \"mid\""));
    assert_eq!(
        e,
        "Ddcfile.toml:14:8: images.mid.from: an image cannot start from itself; set suite (and its packages) instead"
    );
}

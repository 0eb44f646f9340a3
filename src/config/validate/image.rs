//! The [images.NAME] tables: what each image is built from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::archive::DEFAULT_ARCH;
use super::rules::{
    ARCH, AUTHORIZED_KEY, CMDLINE, CRYPT_HASH, IMAGE_NAME, MIRROR, NIS_DOMAIN, PACKAGE, SUITE,
};
use super::Validator;
use crate::config::model::{Boot, Image};
use crate::config::origin::{Origin, Sourced};
use crate::config::raw::{Choice, RawImage};

/// What ddc itself puts at the top of the TFTP root besides an image's
/// folder (recipes/bootloader.rs; `pxelinux.cfg` and the loaders have a dot,
/// which no image name has): an image of that name would publish there.
const TFTP_OWN: &[&str] = &["efi64"];

/// What resolving the images' `from` keys carries along.
struct Resolver<'r> {
    drafts: &'r BTreeMap<String, Draft>,
    declared: &'r BTreeSet<String>,
    done: &'r mut BTreeMap<String, Option<Resolved>>,
    /// The images being resolved, outermost first (a cycle comes back to one).
    path: Vec<String>,
    mirror_default: &'r mut dyn FnMut() -> String,
}

/// An image as its own table gives it, before inheritance: its values
/// (defaults where a key is absent), and where the keys a child may not
/// change were set.
struct Draft {
    image: Image,
    from: Option<Sourced<String>>,
    /// Where suite, arch, mirror and bootstrapper were set, if they were.
    fixed: Vec<(&'static str, Origin)>,
    /// The inheritable keys this table sets.
    set: Vec<&'static str>,
    /// The mirror, if the table names one.
    mirror: Option<String>,
    /// The suite and arch to check against the mirror once it is known,
    /// when they passed their own rules.
    archive_check: Option<(Sourced<String>, Option<Sourced<String>>)>,
}

/// A validated image with every package its image holds (its bases' too).
#[derive(Clone)]
struct Resolved {
    image: Image,
    all_packages: Vec<String>,
}

impl Validator<'_> {
    /// The images without errors; `mirror_default` is asked only for images
    /// that name no mirror and start from no other image.
    pub(super) fn images(
        &mut self,
        raw: BTreeMap<Spanned<String>, RawImage>,
        base: &Path,
        cluster_boot: Boot,
        mirror_default: &mut dyn FnMut() -> String,
    ) -> BTreeMap<String, Image> {
        let declared: BTreeSet<String> = raw.keys().map(|k| k.get_ref().clone()).collect();
        let mut drafts = BTreeMap::new();
        for (name, img) in raw {
            let name = self.sourced(name);
            if let Some(d) = self.image(&name, img, base, cluster_boot) {
                drafts.insert(name.value, d);
            }
        }
        let mut done: BTreeMap<String, Option<Resolved>> = BTreeMap::new();
        let names: Vec<String> = drafts.keys().cloned().collect();
        for name in &names {
            let mut r = Resolver {
                drafts: &drafts,
                declared: &declared,
                done: &mut done,
                path: Vec::new(),
                mirror_default: &mut *mirror_default,
            };
            self.resolve(name, &mut r);
        }
        done.into_iter()
            .filter_map(|(n, r)| Some((n, r?.image)))
            .collect()
    }

    /// Resolves `name` (its bases first): its inherited keys, or its cycle
    /// or unknown base reported at its `from`.
    fn resolve(&mut self, name: &str, r: &mut Resolver) -> Option<Resolved> {
        if let Some(done) = r.done.get(name) {
            return done.clone();
        }
        let d = r.drafts.get(name)?;
        let Some(from) = &d.from else {
            let mut image = d.image.clone();
            image.mirror = d.mirror.clone().unwrap_or_else(&mut *r.mirror_default);
            if let Some((suite, arch)) = &d.archive_check {
                self.check_archive(name, suite, arch.as_ref(), &image.mirror);
            }
            let resolved = Resolved {
                all_packages: image.packages.clone(),
                image,
            };
            r.done.insert(name.to_string(), Some(resolved.clone()));
            return Some(resolved);
        };
        let key = format!("images.{name}.from");
        let cycle_start = r.path.iter().position(|p| *p == from.value);
        let result = if from.value == name {
            self.error(
                from.origin.clone(),
                key,
                "an image cannot start from itself; set suite (and its packages) instead",
            );
            None
        } else if let Some(start) = cycle_start {
            let mut cycle: Vec<&str> = r.path[start..].iter().map(String::as_str).collect();
            cycle.extend([name, from.value.as_str()]);
            self.error(
                from.origin.clone(),
                key,
                format!(
                    "{:?} leads back to {name}: a cycle ({}); one of them must set suite instead of from",
                    from.value,
                    cycle.join(" → ")
                ),
            );
            None
        } else if !r.declared.contains(&from.value) {
            self.check_image_exists(&from.origin, &key, &from.value, r.declared);
            None
        } else {
            r.path.push(name.to_string());
            let base = self.resolve(&from.value, r);
            r.path.pop();
            base.map(|b| self.inherit(d, &b))
        };
        r.done.insert(name.to_string(), result.clone());
        result
    }

    /// `d` on top of its base `b`: the keys it does not set are `b`'s, its
    /// packages are those `b` lacks; suite, arch, mirror and bootstrapper
    /// must be `b`'s (a child is built on `b`'s packages layer).
    fn inherit(&mut self, d: &Draft, b: &Resolved) -> Resolved {
        let base = &b.image;
        let name = &d.image.name;
        let mine = &d.image;
        let ours: [(&str, &str, &str); 4] = [
            ("suite", &mine.suite, &base.suite),
            ("arch", &mine.arch, &base.arch),
            (
                "mirror",
                d.mirror.as_deref().unwrap_or(&base.mirror),
                &base.mirror,
            ),
            (
                "bootstrapper",
                mine.bootstrapper.as_str(),
                base.bootstrapper.as_str(),
            ),
        ];
        for (key, at) in &d.fixed {
            let Some((_, v, bv)) = ours.iter().find(|(k, _, _)| k == key) else {
                continue;
            };
            if v != bv {
                self.error(
                    at.clone(),
                    format!("images.{name}.{key}"),
                    format!(
                        "{v:?} differs from {bv:?}, the {key} of images.{}, which {name} starts from (from = {:?}): an image built on another's packages layer has its {key}; remove the key, or remove from to build {name} from scratch",
                        base.name, base.name
                    ),
                );
            }
        }
        let set = |k: &str| d.set.contains(&k);
        let mut image = Image {
            name: name.clone(),
            from: Some(base.name.clone()),
            suite: base.suite.clone(),
            arch: base.arch.clone(),
            packages: Vec::new(),
            union: if set("union") { mine.union } else { base.union },
            cmdline: if set("cmdline") {
                mine.cmdline.clone()
            } else {
                base.cmdline.clone()
            },
            mirror: base.mirror.clone(),
            bootstrapper: base.bootstrapper,
            files: if set("files") {
                mine.files.clone()
            } else {
                base.files.clone()
            },
            root_password_hash: if set("root_password_hash") {
                mine.root_password_hash.clone()
            } else {
                base.root_password_hash.clone()
            },
            ssh_authorized_keys: if set("ssh_authorized_keys") {
                mine.ssh_authorized_keys.clone()
            } else {
                base.ssh_authorized_keys.clone()
            },
            boot: if set("boot") { mine.boot } else { base.boot },
            nis_domain: if set("nis_domain") {
                mine.nis_domain.clone()
            } else {
                base.nis_domain.clone()
            },
            // The steps a child runs are on its base's layers: their epoch
            // unless the child sets its own; the snapshot is the mirror's.
            source_date_epoch: mine.source_date_epoch.or(base.source_date_epoch),
            snapshot: base.snapshot.clone(),
        };
        let mut all = b.all_packages.clone();
        for p in &mine.packages {
            if !all.contains(p) {
                all.push(p.clone());
                image.packages.push(p.clone());
            }
        }
        if !set("cmdline") {
            if let Some(o) = self.cmdline_origins.get(&base.name).cloned() {
                self.cmdline_origins.insert(name.clone(), o);
            }
        }
        Resolved {
            image,
            all_packages: all,
        }
    }

    fn image(
        &mut self,
        name: &Sourced<String>,
        mut raw: RawImage,
        base: &Path,
        cluster_boot: Boot,
    ) -> Option<Draft> {
        let before = self.errors.len();
        let key = |k: &str| format!("images.{}.{}", name.value, k);
        if self.check(name, &format!("images.{}", name.value), &IMAGE_NAME)
            && TFTP_OWN.contains(&name.value.as_str())
        {
            self.error(
                name.origin.clone(),
                format!("images.{}", name.value),
                format!(
                    "ddc keeps the UEFI boot loader in the TFTP root's {:?} folder, where this image's kernels would be published; choose another image name",
                    name.value
                ),
            );
        }
        let pin = self.reproducible(&name.value, &mut raw);
        let (mut fixed, set) = self.keys_set(&raw);
        let from = raw.from.map(|f| self.sourced(f));
        let suite = self.suite(name, raw.suite.take(), from.is_some(), &mut fixed);
        let arch = raw.arch.take().map(|a| self.sourced(a));
        let arch_ok = match &arch {
            Some(a) => self.check(a, &key("arch"), &ARCH),
            None => true,
        };
        // Checked against the mirror once it is known (see `resolve`).
        let archive_check = suite
            .clone()
            .filter(|s| arch_ok && (SUITE.ok)(&s.value))
            .map(|s| (s, arch.clone()));
        let packages = self.each(raw.packages, &key("packages"), &PACKAGE);
        let union = self.choice(raw.union, &key("union"), |v| {
            format!("{v:?} is not a union filesystem; use \"overlay\" or \"aufs\"")
        });
        if let Some(c) = &raw.cmdline {
            let origin = self.origin(c);
            self.cmdline_origins.insert(name.value.clone(), origin);
        }
        let cmdline = self.optional(raw.cmdline, &key("cmdline"), &CMDLINE);
        let mirror = self.optional(raw.mirror, &key("mirror"), &MIRROR);
        let mirror = pin.mirror.or(mirror);
        let bootstrapper = self.choice(raw.bootstrapper, &key("bootstrapper"), |v| {
            format!("{v:?} is not a bootstrapper; use \"debootstrap\" or \"mmdebstrap\"")
        });
        let files = raw.files.map(|f| self.folder(f, &key("files"), base));
        let root_password_hash = self.optional(
            raw.root_password_hash,
            &key("root_password_hash"),
            &CRYPT_HASH,
        );
        let ssh_authorized_keys = self.each(
            raw.ssh_authorized_keys,
            &key("ssh_authorized_keys"),
            &AUTHORIZED_KEY,
        );
        let nis_domain = self.optional(raw.nis_domain, &key("nis_domain"), &NIS_DOMAIN);
        let boot = match raw.boot {
            Some(b) => self.choice(Some(b), &key("boot"), super::cluster::boot_says),
            None => cluster_boot,
        };
        (self.errors.len() == before).then(|| Draft {
            image: Image {
                name: name.value.clone(),
                from: None,
                suite: suite.map(|s| s.value).unwrap_or_default(),
                arch: arch.map_or_else(|| DEFAULT_ARCH.to_string(), |a| a.value),
                packages,
                union,
                cmdline: cmdline.unwrap_or_default(),
                mirror: String::new(),
                bootstrapper,
                files,
                root_password_hash,
                ssh_authorized_keys,
                nis_domain,
                boot,
                source_date_epoch: pin.source_date_epoch,
                snapshot: pin.snapshot,
            },
            from,
            fixed,
            set,
            archive_check,
            mirror,
        })
    }

    /// The image's `suite`, checked; missing only where it has `from`.
    fn suite(
        &mut self,
        name: &Sourced<String>,
        raw: Option<Spanned<String>>,
        has_from: bool,
        fixed: &mut Vec<(&'static str, Origin)>,
    ) -> Option<Sourced<String>> {
        let key = format!("images.{}.suite", name.value);
        match raw {
            Some(s) => {
                let s = self.sourced(s);
                self.check(&s, &key, &SUITE);
                fixed.insert(0, ("suite", s.origin.clone()));
                Some(s)
            }
            None if has_from => None,
            None => {
                self.error(
                    name.origin.clone(),
                    key,
                    "missing: set suite (a Debian suite like bookworm), or from = \"IMAGE\" to start from another image's packages",
                );
                None
            }
        }
    }

    /// Where the keys a child may not change (arch, mirror, bootstrapper)
    /// are set, and which inheritable keys the table sets.
    fn keys_set(&self, raw: &RawImage) -> (Vec<(&'static str, Origin)>, Vec<&'static str>) {
        let mut fixed: Vec<(&'static str, Origin)> = Vec::new();
        for (k, s) in [("arch", &raw.arch), ("mirror", &raw.mirror)] {
            if let Some(s) = s {
                fixed.push((k, self.origin(s)));
            }
        }
        if let Some(b) = &raw.bootstrapper {
            fixed.push(("bootstrapper", self.origin(b)));
        }
        let set = [
            (raw.union.is_some(), "union"),
            (raw.cmdline.is_some(), "cmdline"),
            (raw.files.is_some(), "files"),
            (raw.root_password_hash.is_some(), "root_password_hash"),
            (!raw.ssh_authorized_keys.is_empty(), "ssh_authorized_keys"),
            (raw.nis_domain.is_some(), "nis_domain"),
            (raw.boot.is_some(), "boot"),
        ]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
        (fixed, set)
    }

    /// A value of a closed set, its default when the key is absent.
    pub(super) fn choice<T: Default>(
        &mut self,
        raw: Option<Spanned<Choice<T>>>,
        key: &str,
        says: fn(&str) -> String,
    ) -> T {
        let Some(raw) = raw else {
            return T::default();
        };
        let origin = self.origin(&raw);
        match raw.into_inner() {
            Choice::Known(t) => t,
            Choice::Unknown(name) => {
                self.error(origin, key, says(&name));
                T::default()
            }
        }
    }

    /// A folder that must exist, relative to the Ddcfile's.
    fn folder(&mut self, raw: Spanned<String>, key: &str, base: &Path) -> PathBuf {
        let f = self.sourced(raw);
        let p = self.path_value(&f, key, base);
        if !p.is_dir() {
            self.error(
                f.origin.clone(),
                key,
                format!(
                    "{:?} is not a folder ({}); create it or remove the key",
                    f.value,
                    p.display()
                ),
            );
        }
        p
    }
}

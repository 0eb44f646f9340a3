//! The [images.NAME] tables: what each image is built from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::archive::DEFAULT_ARCH;
use super::rules::{
    ARCH, AUTHORIZED_KEY, CMDLINE, CRYPT_HASH, IMAGE_NAME, MIRROR, NIS_DOMAIN, PACKAGE, SUITE,
};
use super::Validator;
use crate::config::model::{Boot, Image};
use crate::config::origin::Sourced;
use crate::config::raw::{Choice, RawImage};

/// What ddc itself puts at the top of the TFTP root besides an image's
/// folder (recipes/bootloader.rs; `pxelinux.cfg` and the loaders have a dot,
/// which no image name has): an image of that name would publish there.
const TFTP_OWN: &[&str] = &["efi64"];

impl Validator<'_> {
    /// The images without errors; `mirror_default` is asked only for images
    /// that name no mirror.
    pub(super) fn images(
        &mut self,
        raw: BTreeMap<Spanned<String>, RawImage>,
        base: &Path,
        cluster_boot: Boot,
        mirror_default: &mut dyn FnMut() -> String,
    ) -> BTreeMap<String, Image> {
        let mut images = BTreeMap::new();
        for (name, img) in raw {
            let name = self.sourced(name);
            if let Some(image) = self.image(&name, img, base, cluster_boot, mirror_default) {
                images.insert(name.value, image);
            }
        }
        images
    }

    fn image(
        &mut self,
        name: &Sourced<String>,
        raw: RawImage,
        base: &Path,
        cluster_boot: Boot,
        mirror_default: &mut dyn FnMut() -> String,
    ) -> Option<Image> {
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
        let suite = self.sourced(raw.suite);
        let suite_ok = self.check(&suite, &key("suite"), &SUITE);
        let arch = raw.arch.map(|a| self.sourced(a));
        let arch_ok = match &arch {
            Some(a) => self.check(a, &key("arch"), &ARCH),
            None => true,
        };
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
        let mirror = mirror.unwrap_or_else(mirror_default);
        if suite_ok && arch_ok {
            self.check_archive(&name.value, &suite, arch.as_ref(), &mirror);
        }
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
        (self.errors.len() == before).then(|| Image {
            name: name.value.clone(),
            suite: suite.value,
            arch: arch.map_or_else(|| DEFAULT_ARCH.to_string(), |a| a.value),
            packages,
            union,
            cmdline: cmdline.unwrap_or_default(),
            mirror,
            bootstrapper,
            files,
            root_password_hash,
            ssh_authorized_keys,
            nis_domain,
            boot,
        })
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

//! `bootloader`: the BIOS and UEFI syslinux files, copied from the master's
//! packages into the TFTP root, and the link through which syslinux.efi
//! finds the BIOS entries.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Kind, LateMemo, Need, Planner, Produced, Recipe, RunCtx, Subject, TaskSpec};
use crate::config::{Config, Image};
use crate::fingerprint::{hash_file, Fingerprint, Input};

/// Where syslinux.efi finds its entries: a link to the BIOS entries.
const EFI_ENTRIES_LINK: &str = "efi64/pxelinux.cfg";
use crate::fsutil::{self, atomic_write, Folder};

pub(crate) struct Bootloader;

impl Recipe for Bootloader {
    fn name(&self) -> &'static str {
        "bootloader"
    }

    fn plan(&self, p: &mut Planner, _image: Option<&Image>) -> Result<()> {
        let inputs = vec![Planner::value("paths.tftp_root", &p.cfg.paths.tftp_root)];
        p.push(Planner::task(
            Kind::Bootloader,
            None,
            vec![],
            inputs,
            Subject::Cluster,
        ));
        Ok(())
    }

    /// The master's bootloader files, read only when the task is judged: a
    /// command that only reads works on a master without them. A missing
    /// one hashes as missing (the preflight names its package).
    fn late_inputs(&self, _task: &TaskSpec, _cfg: &Config, _memo: &LateMemo) -> Vec<Input> {
        loader_files()
            .into_iter()
            .map(|(_, src)| Input {
                name: format!("host:{}", src.path.display()).into(),
                hash: hash_file(&src.path)
                    .unwrap_or_else(|_| Fingerprint::of(b"(missing or unreadable)")),
            })
            .collect()
    }

    fn needs(&self, _task: &TaskSpec, _cfg: &Config) -> Vec<Need> {
        loader_files()
            .into_iter()
            .map(|(_, src)| Need::File {
                path: src.path,
                package: src.package,
            })
            .collect()
    }

    fn outputs(&self, _task: &TaskSpec, cfg: &Config) -> Vec<PathBuf> {
        let tftp = &cfg.paths.tftp_root;
        let mut out: Vec<PathBuf> = loader_files()
            .iter()
            .map(|(rel, _)| tftp.join(rel))
            .collect();
        out.push(tftp.join(EFI_ENTRIES_LINK));
        out
    }

    fn run(&self, _task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
        run_bootloader(ctx)
    }
}

/// A bootloader file on the master, with the package that ships it.
pub(crate) struct LoaderSource {
    pub(crate) path: PathBuf,
    pub(crate) package: &'static str,
}

/// (path in the TFTP root, source on the master).
pub(crate) fn loader_files() -> Vec<(&'static str, LoaderSource)> {
    let src = |p: &str, package| LoaderSource {
        path: PathBuf::from(p),
        package,
    };
    vec![
        (
            "pxelinux.0",
            src("/usr/lib/PXELINUX/pxelinux.0", "pxelinux"),
        ),
        (
            "ldlinux.c32",
            src(
                "/usr/lib/syslinux/modules/bios/ldlinux.c32",
                "syslinux-common",
            ),
        ),
        (
            "efi64/syslinux.efi",
            src("/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi", "syslinux-efi"),
        ),
        (
            "efi64/ldlinux.e64",
            src(
                "/usr/lib/syslinux/modules/efi64/ldlinux.e64",
                "syslinux-common",
            ),
        ),
    ]
}

fn run_bootloader(ctx: &mut RunCtx) -> Result<Produced> {
    let mut out = Produced::default();
    for (rel, src) in loader_files() {
        let bytes = std::fs::read(&src.path).with_context(|| {
            format!(
                "cannot read {}: install the Debian package {}",
                src.path.display(),
                src.package
            )
        })?;
        let dest = ctx.cfg.paths.tftp_root.join(rel);
        atomic_write(&dest, &bytes, false)?;
        out.files.push(dest);
    }
    // syslinux.efi looks for its entries in pxelinux.cfg/ beside itself: one
    // link serves it the BIOS entries, so each node's entry is one file.
    // Made and replaced in efi64/, never followed (fsutil).
    let tftp = Folder::make(&ctx.cfg.paths.tftp_root)?;
    tftp.make_dir("pxelinux.cfg", fsutil::DIR_MODE)?;
    let efi = tftp.make_dir("efi64", fsutil::DIR_MODE)?;
    let link = ctx.cfg.paths.tftp_root.join(EFI_ENTRIES_LINK);
    let target = Path::new("../pxelinux.cfg");
    if efi.read_link("pxelinux.cfg").as_deref() != Some(target) {
        if let Some(dir) = efi.sub_dir("pxelinux.cfg").ok().flatten() {
            if !dir.entries()?.is_empty() {
                anyhow::bail!(
                    "{} is a folder with files in it; ddc makes it a link to ../pxelinux.cfg so UEFI nodes find their entries: move your files into pxelinux.cfg/ and remove it",
                    link.display()
                );
            }
        }
        efi.remove("pxelinux.cfg")?;
        efi.symlink(target, "pxelinux.cfg")?;
    }
    out.files.push(link);
    Ok(out)
}

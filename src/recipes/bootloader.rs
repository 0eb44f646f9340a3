//! `bootloader`: the BIOS and UEFI syslinux files, copied from the master's
//! packages into the TFTP root, and the link through which syslinux.efi
//! finds the BIOS entries. When any machine boots through iPXE, also the
//! iPXE binaries and `ipxe/boot.ipxe`, the script every iPXE client chains.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::ipxe;
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

    fn templates(&self) -> &'static [&'static str] {
        &[BOOT_TEMPLATE]
    }

    fn plan(&self, p: &mut Planner, _image: Option<&Image>) -> Result<()> {
        let cfg = p.cfg;
        let mut inputs = vec![Planner::value("paths.tftp_root", &cfg.paths.tftp_root)];
        // Only what boot.ipxe reads, and only when it is written: a cluster
        // without iPXE keeps its key.
        if ipxe::used(cfg) {
            inputs.extend(p.templates(Kind::Bootloader)?);
            inputs.push(Planner::value("server.http", &cfg.server.http));
            inputs.push(Planner::value(
                "ipxe.default_entry",
                &ipxe::default_entry_is_ipxe(cfg),
            ));
        }
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
    fn late_inputs(&self, _task: &TaskSpec, cfg: &Config, _memo: &LateMemo) -> Vec<Input> {
        all_loader_files(cfg)
            .into_iter()
            .map(|(_, src)| Input {
                name: format!("host:{}", src.path.display()).into(),
                hash: hash_file(&src.path)
                    .unwrap_or_else(|_| Fingerprint::of(b"(missing or unreadable)")),
            })
            .collect()
    }

    fn needs(&self, _task: &TaskSpec, cfg: &Config) -> Vec<Need> {
        all_loader_files(cfg)
            .into_iter()
            .map(|(_, src)| Need::File {
                path: src.path,
                package: src.package,
            })
            .collect()
    }

    fn outputs(&self, _task: &TaskSpec, cfg: &Config) -> Vec<PathBuf> {
        let tftp = &cfg.paths.tftp_root;
        let mut out: Vec<PathBuf> = all_loader_files(cfg)
            .iter()
            .map(|(rel, _)| tftp.join(rel))
            .collect();
        out.push(tftp.join(EFI_ENTRIES_LINK));
        if ipxe::used(cfg) {
            out.push(tftp.join(ipxe::BOOT_SCRIPT));
        }
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

/// The syslinux files, and the iPXE ones when iPXE is used.
fn all_loader_files(cfg: &Config) -> Vec<(&'static str, LoaderSource)> {
    let mut files = loader_files();
    if ipxe::used(cfg) {
        files.extend(ipxe_loader_files());
    }
    files
}

/// The template of `ipxe/boot.ipxe`.
const BOOT_TEMPLATE: &str = "templates/boot.ipxe.j2";

/// Writes `ipxe/boot.ipxe`: the node's own script by MAC, else a report of
/// the unknown MAC, then the default entry or the next boot device.
fn write_boot_script(ctx: &mut RunCtx, out: &mut Produced) -> Result<()> {
    let cfg = ctx.cfg;
    let data = serde_json::json!({
        "http": ipxe::base_url(cfg),
        "default": ipxe::default_entry_is_ipxe(cfg).then_some(ipxe::DEFAULT_SCRIPT),
    });
    let text = ctx.templates.render(BOOT_TEMPLATE, &data)?;
    let dest = cfg.paths.tftp_root.join(ipxe::BOOT_SCRIPT);
    atomic_write(&dest, text.as_bytes(), false)?;
    out.files.push(dest);
    Ok(())
}

fn run_bootloader(ctx: &mut RunCtx) -> Result<Produced> {
    let mut out = Produced::default();
    if ipxe::used(ctx.cfg) {
        write_boot_script(ctx, &mut out)?;
    }
    for (rel, src) in all_loader_files(ctx.cfg) {
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

/// (path in the TFTP root, source on the master) of the iPXE binaries.
fn ipxe_loader_files() -> Vec<(&'static str, LoaderSource)> {
    [ipxe::BIOS_LOADER, ipxe::EFI_LOADER, "ipxe.efi"]
        .into_iter()
        .map(|f| {
            (
                f,
                LoaderSource {
                    path: Path::new("/usr/lib/ipxe").join(f),
                    package: "ipxe",
                },
            )
        })
        .collect()
}

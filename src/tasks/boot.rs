//! The TFTP side: bootloader files copied from the master's packages, and one
//! pxelinux entry per node, found by MAC, for BIOS and for UEFI.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::{Config, Image};
use crate::fsutil::atomic_write;
use crate::generations;
use crate::task::{Produced, RunCtx};

/// A bootloader file on the master, with the package that ships it.
pub struct LoaderSource {
    pub path: PathBuf,
    pub package: &'static str,
}

/// (path in the TFTP root, source on the master).
pub fn loader_files() -> Vec<(&'static str, LoaderSource)> {
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

pub fn run_bootloader(ctx: &mut RunCtx) -> Result<Produced> {
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
    let link = ctx.cfg.paths.tftp_root.join("efi64/pxelinux.cfg");
    let target = Path::new("../pxelinux.cfg");
    std::fs::create_dir_all(ctx.cfg.paths.tftp_root.join("pxelinux.cfg"))?;
    if std::fs::read_link(&link).ok().as_deref() != Some(target) {
        if link.is_dir() && std::fs::read_dir(&link).is_ok_and(|mut d| d.next().is_some()) {
            anyhow::bail!(
                "{} is a folder with files in it; ddc makes it a link to ../pxelinux.cfg so UEFI nodes find their entries: move your files into pxelinux.cfg/ and remove it",
                link.display()
            );
        }
        crate::fsutil::remove_path(&link)?;
        let tmp = ctx.cfg.paths.tftp_root.join("efi64/.pxelinux.cfg.ddc-tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp)?;
        std::fs::rename(&tmp, &link)?;
    }
    out.files.push(link);
    Ok(out)
}

/// Where a node's entry is: pxelinux.0 reads it there, and syslinux.efi
/// through the `efi64/pxelinux.cfg` link the bootloader task makes.
pub fn entry_paths(tftp_root: &Path, name: &str) -> [PathBuf; 1] {
    [tftp_root.join("pxelinux.cfg").join(name)]
}

#[derive(Serialize)]
struct EntryContext<'a> {
    label: &'a str,
    hostname: Option<&'a str>,
    mac: Option<&'a str>,
    image: &'a str,
    generation: &'a str,
    kernel: &'a str,
    initrd: &'a str,
    append: String,
}

/// The kernel arguments of an entry: the NFS root, then the image's and the
/// node's own arguments.
pub fn append_line(cfg: &Config, root: &str, img: &Image, node_cmdline: &str) -> String {
    let mut s = format!(
        "boot=nfs nfsroot={}:{},vers=3,tcp ip=dhcp ro",
        cfg.cluster.master, root
    );
    for extra in [img.cmdline.as_str(), node_cmdline] {
        if !extra.trim().is_empty() {
            s.push(' ');
            s.push_str(extra.trim());
        }
    }
    s
}

/// The generation a boot entry points at: the node's pin, else `current`.
pub fn boot_generation(cfg: &Config, image: &str, pin: Option<&str>) -> Result<String> {
    match pin {
        Some(p) => {
            let gens = generations::list(&cfg.paths.nfs_root, image);
            generations::resolve(&gens, p).map(|g| g.name.clone()).with_context(|| {
                format!(
                    "generation {p:?} of image {image} is not published (or is ambiguous); `ddc generations {image}` lists them"
                )
            })
        }
        None => generations::current(&cfg.paths.nfs_root, image).with_context(|| {
            format!("image {image} has no current generation yet: build publish:{image} first")
        }),
    }
}

/// Writes a node's entry (or the default one, for `node == None`).
pub fn run_pxe(ctx: &mut RunCtx, node: Option<usize>) -> Result<Produced> {
    let cfg = ctx.cfg;
    let (name, image, cmdline, hostname, mac) = match node {
        Some(i) => {
            let n = &cfg.nodes[i];
            (
                n.pxe_name(),
                n.image.as_str(),
                n.cmdline.as_str(),
                Some(n.hostname.as_str()),
                Some(n.mac.as_str()),
            )
        }
        None => (
            "default".to_string(),
            cfg.server.default_entry.as_deref().unwrap_or_default(),
            "",
            None,
            None,
        ),
    };
    let pin = node.and_then(|i| cfg.nodes[i].pin.as_deref());
    let generation = boot_generation(cfg, image, pin)?;
    let img = &cfg.images[image];
    let root = cfg.paths.nfs_root.join(image).join(&generation);
    let kernel = format!("{image}/{generation}/vmlinuz");
    let initrd = format!("{image}/{generation}/initrd.img");
    let ctx_data = EntryContext {
        label: hostname.unwrap_or("default"),
        hostname,
        mac,
        image,
        generation: &generation,
        kernel: &kernel,
        initrd: &initrd,
        append: append_line(cfg, &root.display().to_string(), img, cmdline),
    };
    let text = ctx
        .templates
        .render("templates/pxelinux.cfg.j2", &ctx_data)?;
    let mut out = Produced::default();
    for p in entry_paths(&cfg.paths.tftp_root, &name) {
        atomic_write(&p, text.as_bytes(), false)?;
        out.files.push(p);
    }
    Ok(out)
}

//! The image steps and publish.
//!
//! Each step works in a staging folder and is committed by rename, so a
//! failed step leaves the previous good output untouched. Two staging modes:
//! `layers` (as root: each step's output is an overlayfs upper layer over the
//! steps before it, so a step costs only what it changed) and `copy` (without
//! root: each step starts from a reflink-where-possible copy of the last).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::chroot::MountGuard;
use crate::config::Image;
use crate::fsutil::{atomic_write, safe_remove_dir_all};
use crate::generations;
use crate::process::run_logged;
use crate::task::{Kind, Produced, RunCtx, Step, TaskSpec};

/// `layers` when running as root on a kernel with overlayfs, else `copy`.
/// `DDC_STAGING=copy` forces copies (for file systems overlayfs cannot use).
pub fn staging_mode() -> &'static str {
    static MODE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    MODE.get_or_init(|| {
        if std::env::var("DDC_STAGING").is_ok_and(|v| v == "copy") {
            return "copy";
        }
        let root = nix::unistd::geteuid().is_root();
        let listed = || {
            std::fs::read_to_string("/proc/filesystems")
                .is_ok_and(|s| s.lines().any(|l| l.ends_with("\toverlay")))
        };
        // overlay may be a module not loaded yet: load it rather than let
        // the mode (part of every image step's key) depend on what ran before.
        if root && !listed() {
            let _ = std::process::Command::new("modprobe")
                .arg("overlay")
                .stderr(std::process::Stdio::null())
                .status();
        }
        if root && listed() {
            "layers"
        } else {
            "copy"
        }
    })
}

pub fn image_dir(cache: &Path, image: &str) -> PathBuf {
    cache.join("images").join(image)
}

fn step_index(step: Step) -> usize {
    Step::ALL.iter().position(|s| *s == step).expect("a step")
}

/// The committed outputs of the steps before `step`, newest first.
fn lower_layers(dir: &Path, step: Step) -> Vec<PathBuf> {
    Step::ALL[..step_index(step)]
        .iter()
        .rev()
        .map(|s| dir.join(s.name()))
        .collect()
}

fn env_for(ctx: &RunCtx, img: &Image, rootfs: &Path) -> Vec<(&'static str, String)> {
    let c = ctx.cfg;
    vec![
        ("DDC_ROOTFS", rootfs.display().to_string()),
        ("DDC_IMAGE", img.name.clone()),
        ("DDC_SUITE", img.suite.clone()),
        ("DDC_ARCH", img.arch.clone()),
        ("DDC_MIRROR", img.mirror.clone()),
        ("DDC_BOOTSTRAPPER", img.bootstrapper.as_str().to_string()),
        ("DDC_PACKAGES", img.packages.join(" ")),
        (
            "DDC_UNION",
            match img.union {
                crate::config::Union::Overlay => "overlay",
                crate::config::Union::Aufs => "aufs",
            }
            .to_string(),
        ),
        (
            "DDC_FILES",
            img.files
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
        ),
        ("DDC_MASTER", c.cluster.master.to_string()),
        ("DDC_NETWORK", c.cluster.network.to_string()),
        (
            "DDC_SYSLOG",
            if c.cluster.syslog { "1" } else { "0" }.to_string(),
        ),
        (
            "DDC_ROOT_PASSWORD_HASH",
            img.root_password_hash.clone().unwrap_or_default(),
        ),
        (
            "DDC_SSH_AUTHORIZED_KEYS",
            img.ssh_authorized_keys.join("\n"),
        ),
        ("DDC_NIS_DOMAIN", img.nis_domain.clone().unwrap_or_default()),
        ("DDC_TASKS_DIR", c.tasks_dir.display().to_string()),
        (
            "DDC_PKG_CACHE",
            ctx.cache_dir.join("debs").display().to_string(),
        ),
    ]
}

pub fn run_step(ctx: &mut RunCtx, spec: &TaskSpec, image: &str, step: Step) -> Result<Produced> {
    let img = &ctx.cfg.images[image];
    let script = spec
        .script
        .as_ref()
        .context("internal error: a step without a script")?;
    let dir = image_dir(ctx.cache_dir, image);
    let out = dir.join(step.name());
    let staging = dir.join(format!("{}.staging", step.name()));
    let work = dir.join(format!("{}.work", step.name()));
    let merged = dir.join(format!("{}.root", step.name()));
    for leftover in [&staging, &work] {
        safe_remove_dir_all(leftover)?;
    }
    std::fs::create_dir_all(ctx.cache_dir.join("debs"))?;
    let layered = staging_mode() == "layers";
    let mut overlay = None;
    let rootfs = if step == Step::Debootstrap {
        std::fs::create_dir_all(&staging)?;
        staging.clone()
    } else if layered {
        std::fs::create_dir_all(&staging)?;
        std::fs::create_dir_all(&work)?;
        overlay = Some(MountGuard::overlay(
            &merged,
            &lower_layers(&dir, step),
            Some((&staging, &work)),
        )?);
        merged.clone()
    } else {
        let prev = dir.join(Step::ALL[step_index(step) - 1].name());
        writeln!(
            ctx.log,
            "ddc: copying {} to {}",
            prev.display(),
            staging.display()
        )?;
        run_logged(
            Command::new("cp")
                .arg("-a")
                .arg("--reflink=auto")
                .arg(&prev)
                .arg(&staging),
            ctx.log,
            ctx.cancel,
        )?;
        staging.clone()
    };
    let guard = if script.chroot {
        Some(MountGuard::chroot(&rootfs)?)
    } else {
        None
    };
    writeln!(
        ctx.log,
        "ddc: running {} with DDC_ROOTFS={}",
        script.path.display(),
        rootfs.display()
    )?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg(&script.path)
        .current_dir(&ctx.cfg.base_dir)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LC_ALL", "C.UTF-8");
    for k in ["http_proxy", "https_proxy", "no_proxy", "HOME"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    for (k, v) in env_for(ctx, img, &rootfs) {
        cmd.env(k, v);
    }
    let result = run_logged(&mut cmd, ctx.log, ctx.cancel);
    if let Some(g) = guard {
        g.release()?;
    }
    if let Some(o) = overlay {
        o.release()?;
    }
    result?;
    safe_remove_dir_all(&work)?;
    let _ = std::fs::remove_dir(&merged);
    safe_remove_dir_all(&out)?;
    std::fs::rename(&staging, &out).with_context(|| format!("cannot commit {}", out.display()))?;
    Ok(Produced {
        dirs: vec![out],
        layered: true,
        ..Default::default()
    })
}

/// Compares kernel versions: numbers numerically, the rest as text.
fn version_key(v: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut num = String::new();
    let mut text = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((0, std::mem::take(&mut text)));
            }
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((num.parse().unwrap_or(u64::MAX), String::new()));
                num.clear();
            }
            text.push(c);
        }
    }
    if !num.is_empty() {
        out.push((num.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        out.push((0, text));
    }
    out
}

/// The newest kernel version in `root/boot` that has an initrd.
pub fn find_kernel(root: &Path) -> Option<String> {
    let boot = root.join("boot");
    let mut versions: Vec<String> = std::fs::read_dir(&boot)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v = name.strip_prefix("vmlinuz-")?.to_string();
            // Regular files only: a symlink in the image could name a file
            // of the master, which publish would copy into the TFTP root.
            let regular = |p: PathBuf| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
            (regular(boot.join(&name)) && regular(boot.join(format!("initrd.img-{v}"))))
                .then_some(v)
        })
        .collect();
    versions.sort_by_key(|v| version_key(v));
    versions.pop()
}

pub fn run_publish(ctx: &mut RunCtx, image: &str) -> Result<Produced> {
    let dep = ctx
        .dep(Kind::Initramfs)
        .context("internal error: publish without initramfs")?;
    let content = dep.out_hash.short();
    let dir = image_dir(ctx.cache_dir, image);
    let layered = staging_mode() == "layers";
    let merged = dir.join("publish.root");
    let (source, view) = if layered {
        let layers = lower_layers(&dir, Step::Initramfs);
        let mut all = vec![dir.join(Step::Initramfs.name())];
        all.extend(layers);
        let g = MountGuard::overlay(&merged, &all, None)?;
        (merged.clone(), Some(g))
    } else {
        (dir.join(Step::Initramfs.name()), None)
    };
    let result = publish_from(ctx, image, &source, &content);
    if let Some(v) = view {
        v.release()?;
        let _ = std::fs::remove_dir(&merged);
    }
    result
}

fn publish_from(ctx: &mut RunCtx, image: &str, source: &Path, content: &str) -> Result<Produced> {
    let cfg = ctx.cfg;
    let version = find_kernel(source).with_context(|| {
        format!(
            "the image {image} has no boot/vmlinuz-VERSION with a matching boot/initrd.img-VERSION; add a kernel (linux-image-amd64) to images.{image}.packages"
        )
    })?;
    let base = cfg.paths.nfs_root.join(image);
    std::fs::create_dir_all(&base)?;
    let gens = generations::list(&cfg.paths.nfs_root, image);
    let existing = gens
        .iter()
        .find(|g| g.name.ends_with(content))
        .map(|g| g.name.clone());
    let generation = match existing {
        Some(g) => g,
        None => format!(
            "{:04}-{content}",
            gens.last().map(|g| g.seq + 1).unwrap_or(1)
        ),
    };
    let root = base.join(&generation);
    // Share unchanged files with the generation nodes boot now, else the newest.
    let previous = generations::current(&cfg.paths.nfs_root, image)
        .map(|g| base.join(g))
        .into_iter()
        .chain(gens.iter().rev().map(|g| base.join(&g.name)))
        .find(|g| *g != root && g.is_dir());
    // Publish into a staging folder (or repair an existing generation in
    // place), sharing unchanged files with the previous generation by hard links.
    let target = if root.is_dir() {
        root.clone()
    } else {
        let staging = base.join(format!(".{generation}.staging"));
        safe_remove_dir_all(&staging)?;
        staging
    };
    let mut cmd = Command::new("rsync");
    cmd.args(["-aH", "--numeric-ids", "--delete"]);
    if let Some(p) = &previous {
        cmd.arg(format!("--link-dest={}", p.display()));
    }
    cmd.arg(format!("{}/", source.display())).arg(&target);
    writeln!(ctx.log, "ddc: publishing {} as {}", image, root.display())?;
    run_logged(&mut cmd, ctx.log, ctx.cancel)?;
    let tftp_rel = format!("{image}/{generation}");
    let tftp_dir = cfg.paths.tftp_root.join(&tftp_rel);
    let kernel = tftp_dir.join("vmlinuz");
    let initrd = tftp_dir.join("initrd.img");
    atomic_write(
        &kernel,
        &std::fs::read(source.join(format!("boot/vmlinuz-{version}")))?,
        true,
    )?;
    atomic_write(
        &initrd,
        &std::fs::read(source.join(format!("boot/initrd.img-{version}")))?,
        true,
    )?;
    // rsync does not fsync: make the tree durable before `current` can name it.
    let dir = std::fs::File::open(&target)?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir))
        .with_context(|| format!("cannot sync {}", target.display()))?;
    if target != root {
        crate::fsutil::fsync_dir(&base)?;
        std::fs::rename(&target, &root)
            .with_context(|| format!("cannot commit {}", root.display()))?;
        crate::fsutil::fsync_dir(&base)?;
    }
    if !root.is_dir() {
        bail!("internal error: {} was not published", root.display());
    }
    // Boot entries follow `current`: switch it in one rename.
    generations::set_current(&cfg.paths.nfs_root, image, &generation)?;
    writeln!(ctx.log, "ddc: {image}/current -> {generation}")?;
    let mut warnings = Vec::new();
    let secrets = crate::secrets::secret_files(&root, cfg.images[image].files.as_deref());
    if !secrets.is_empty() {
        writeln!(
            ctx.log,
            "ddc: files in {} that root on any machine of the cluster network can read over NFS:",
            root.display()
        )?;
        for s in &secrets {
            writeln!(ctx.log, "ddc:   /{} ({})", s.path.display(), s.why)?;
        }
        warnings.push(format!(
            "{image}/{generation} holds {} secret-bearing file{} that root on any machine of the cluster network can read over NFS (listed in {}); see README, Security",
            secrets.len(),
            if secrets.len() == 1 { "" } else { "s" },
            ctx.log_path.display()
        ));
    }
    Ok(Produced {
        warnings,
        files: vec![kernel, initrd],
        dirs: vec![root.clone()],
        layered: false,
        meta: serde_json::json!({
            "generation": generation,
            "root": root.display().to_string(),
            "kernel": format!("{tftp_rel}/vmlinuz"),
            "initrd": format!("{tftp_rel}/initrd.img"),
            "kernel_version": version,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_kernel_with_an_initrd() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("boot");
        std::fs::create_dir(&b).unwrap();
        for f in [
            "vmlinuz-6.1.0-9-amd64",
            "initrd.img-6.1.0-9-amd64",
            "vmlinuz-6.1.0-10-amd64",
            "initrd.img-6.1.0-10-amd64",
            "vmlinuz-6.1.0-11-amd64",
        ] {
            std::fs::write(b.join(f), "").unwrap();
        }
        assert_eq!(find_kernel(d.path()).as_deref(), Some("6.1.0-10-amd64"));
    }
}

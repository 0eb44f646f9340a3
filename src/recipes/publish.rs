//! `publish:IMG`: the finished image becomes a new generation in
//! `nfs_root/IMG/NNNN-HASH` (sharing unchanged files with the previous one by
//! hard links), its kernel and initrd go to `tftp_root/IMG/NNNN-HASH/`, and
//! `current` moves to it in one rename. A rebuild to identical content
//! publishes nothing new.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::image::{image_dir, lower_layers, staging_mode, Staging, Step};
use super::{Kind, Need, Planner, Produced, Recipe, RunCtx, Scope, Subject, TaskSpec};
use crate::chroot::MountGuard;
use crate::config::{Config, Image};
use crate::fsutil::{atomic_write, safe_remove_dir_all};
use crate::generations;
use crate::process::run_logged;

pub(crate) struct Publish;

impl Recipe for Publish {
    fn name(&self) -> &'static str {
        "publish"
    }

    fn heavy(&self) -> bool {
        true
    }

    fn scope(&self) -> Scope {
        Scope::Image
    }

    fn plan(&self, p: &mut Planner, image: Option<&Image>) -> Result<()> {
        let img = image.context("internal error: publish without an image")?;
        let inputs = vec![
            Planner::value("paths.nfs_root", &p.cfg.paths.nfs_root),
            Planner::value("paths.tftp_root", &p.cfg.paths.tftp_root),
        ];
        let deps = p
            .find(Kind::Initramfs, Some(&img.name))
            .into_iter()
            .collect();
        p.push(Planner::task(
            Kind::Publish,
            Some(&img.name),
            deps,
            inputs,
            Subject::Image(img.name.clone()),
        ));
        Ok(())
    }

    fn needs(&self, _task: &TaskSpec, _cfg: &Config) -> Vec<Need> {
        vec![Need::Program {
            program: "rsync".into(),
            package: "rsync",
        }]
    }

    fn keeps_outputs(&self) -> bool {
        true
    }

    fn run(&self, task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
        let image = task
            .image()
            .context("internal error: publish without an image")?;
        run_publish(ctx, image)
    }
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
pub(crate) fn find_kernel(root: &Path) -> Option<String> {
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

fn run_publish(ctx: &mut RunCtx, image: &str) -> Result<Produced> {
    let dep = ctx
        .dep(Kind::Initramfs)
        .context("internal error: publish without initramfs")?;
    let content = dep.out_hash.short();
    let dir = image_dir(ctx.cache_dir, image);
    let layered = staging_mode() == Staging::Layers;
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
    let (kernel, initrd) = boot_files(source, &cfg.paths.tftp_root.join(&tftp_rel), &version)?;
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
    let mut warnings = secret_warnings(ctx, image, &generation, &root)?;
    let refused = generations::rolled_back(&cfg.paths.nfs_root, image).contains(content);
    let now = generations::current(&cfg.paths.nfs_root, image);
    if refused && now.is_some() {
        let now = now.unwrap_or_default();
        writeln!(
            ctx.log,
            "ddc: {image}/current stays {now}: {generation} was rolled back from"
        )?;
        warnings.push(format!(
            "{image}/{generation} has the content of a generation that was rolled back from, so current stays {now}; `ddc rollforward {image}` makes it current"
        ));
    } else {
        // Boot entries follow `current`: switch it in one rename.
        generations::set_current(&cfg.paths.nfs_root, image, &generation)?;
        writeln!(ctx.log, "ddc: {image}/current -> {generation}")?;
    }
    Ok(Produced {
        warnings,
        files: vec![kernel, initrd],
        dirs: vec![root.clone()],
        layered: false,
        facts: serde_json::json!({
            "generation": generation,
            "root": root.display().to_string(),
            "kernel": format!("{tftp_rel}/vmlinuz"),
            "initrd": format!("{tftp_rel}/initrd.img"),
            "kernel_version": version,
        }),
        ..Default::default()
    })
}

/// Copies the image's kernel and initrd into `dir` of the TFTP root.
fn boot_files(source: &Path, dir: &Path, version: &str) -> Result<(PathBuf, PathBuf)> {
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.img");
    for (to, from) in [(&kernel, "vmlinuz"), (&initrd, "initrd.img")] {
        let bytes = std::fs::read(source.join(format!("boot/{from}-{version}")))?;
        atomic_write(to, &bytes, true)?;
    }
    Ok((kernel, initrd))
}

/// One warning line about the secret-bearing files of a new generation;
/// the files themselves go to the log.
fn secret_warnings(
    ctx: &mut RunCtx,
    image: &str,
    generation: &str,
    root: &Path,
) -> Result<Vec<String>> {
    let secrets = crate::secrets::secret_files(root, ctx.cfg.images[image].files.as_deref());
    if secrets.is_empty() {
        return Ok(Vec::new());
    }
    writeln!(
        ctx.log,
        "ddc: files in {} that root on any machine of the cluster network can read over NFS:",
        root.display()
    )?;
    for s in &secrets {
        writeln!(ctx.log, "ddc:   /{} ({})", s.path.display(), s.why)?;
    }
    Ok(vec![format!(
        "{image}/{generation} holds {} secret-bearing file{} that root on any machine of the cluster network can read over NFS (listed in {}); see README, Security",
        secrets.len(),
        if secrets.len() == 1 { "" } else { "s" },
        ctx.log_path.display()
    )])
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

//! The image steps `debootstrap → packages → configure → initramfs`: each
//! runs its script (built in, or from `tasks_dir`) on the image's root file
//! system. The script and the files of its folder are written to the cache
//! first, as its key hashed them, and run from there.
//!
//! A step's script gets exactly the `DDC_*` values that are in its key (see
//! `step_env`), plus the context every step gets, so no value can reach a
//! step without being hashed.
//!
//! Each step works in a staging folder and is committed by rename, so a
//! failed step leaves the previous good output untouched. Two staging modes:
//! [`Staging::Layers`] (as root: each step's output is an overlayfs upper
//! layer over the steps before it, so a step costs only what it changed) and
//! [`Staging::Copy`] (without root: each step starts from a
//! reflink-where-possible copy of the last).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::dpkg::tool_version;
use super::reproducible;
use super::step::{image_dir, lower_layers, runs_step, staging_mode, Staging, Step};
use super::step_env::{step_env, step_vars, StepDirs};
use super::{Need, Planner, Produced, Recipe, RunCtx, Scope, Script, Subject, TaskSpec};
use crate::chroot::MountGuard;
use crate::config::{Config, Image};
use crate::fsutil::{self, safe_remove_dir_all, Folder};
use crate::process::run_logged;
use crate::tasks_dir::{Origin, TaskFile};

/// The mode of a step's working tree: it becomes the image's `/` (and the
/// published generation's folder), which everyone on a node must reach.
const IMAGE_ROOT_MODE: u32 = 0o755;

impl Recipe for Step {
    fn name(&self) -> &'static str {
        Step::name(*self)
    }

    /// 2: the tree is normalised for `SOURCE_DATE_EPOCH` after the script.
    fn version(&self) -> u32 {
        2
    }

    fn heavy(&self) -> bool {
        true
    }

    fn scope(&self) -> Scope {
        Scope::Image
    }

    fn plan(&self, p: &mut Planner, image: Option<&Image>) -> Result<()> {
        let img = image.context("internal error: an image step without an image")?;
        let step = *self;
        if !runs_step(p.cfg, &img.name, step) {
            return Ok(());
        }
        let (mut inputs, script) = p.step_files(step.name())?;
        inputs.extend(step_vars(step, p.cfg, img)?.into_iter().map(|v| v.input));
        if step == Step::Debootstrap {
            let tool = img.bootstrapper.as_str();
            inputs.push(Planner::value(format!("tool:{tool}"), &tool_version(tool)));
        }
        inputs.push(Planner::value("staging", &p.staging));
        // An image with `from` starts on its base's packages layer.
        let deps = match (step.index(), img.from.as_deref()) {
            (0, _) => None,
            (1, Some(base)) => p.find(Step::Packages.kind(), Some(base)),
            (i, _) => p.find(Step::ALL[i - 1].kind(), Some(&img.name)),
        };
        let deps = deps.into_iter().collect();
        let mut task = Planner::task(
            step.kind(),
            Some(&img.name),
            deps,
            inputs,
            Subject::Image(img.name.clone()),
        );
        task.script = Some(script);
        p.push(task);
        Ok(())
    }

    fn needs(&self, task: &TaskSpec, cfg: &Config) -> Vec<Need> {
        let mut needs = Vec::new();
        let program = |p: &str, package| Need::Program {
            program: p.into(),
            package,
        };
        if let Some(s) = &task.script {
            if s.needs_root {
                needs.push(Need::Root);
            }
            if s.chroot {
                needs.push(program("chroot", "coreutils"));
            }
        }
        // As root every step runs in namespaces of its own (process::isolated).
        if nix::unistd::geteuid().is_root() {
            needs.push(program("unshare", "util-linux"));
        }
        if *self != Step::Debootstrap && staging_mode() == Staging::Copy {
            needs.push(program("cp", "coreutils"));
        }
        if *self == Step::Debootstrap {
            if let Some(img) = task.image().and_then(|i| cfg.images.get(i)) {
                let b = img.bootstrapper.as_str();
                needs.push(Need::Program {
                    program: b.into(),
                    package: b,
                });
            }
        }
        needs
    }

    fn cache_dir(&self, task: &TaskSpec, cache: &Path) -> Option<PathBuf> {
        Some(image_dir(cache, task.image()?).join(self.name()))
    }

    fn run(&self, task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
        run_step(ctx, task, *self)
    }
}

/// The tree a step works on, and the overlay that makes it, if any.
fn working_tree(
    ctx: &mut RunCtx,
    image: &str,
    step: Step,
    staging: &Path,
) -> Result<(PathBuf, Option<MountGuard>)> {
    let dir = image_dir(ctx.cache_dir, image);
    let lower = lower_layers(ctx.cache_dir, ctx.cfg, image, step);
    let work = dir.join(format!("{}.work", step.name()));
    let merged = dir.join(format!("{}.root", step.name()));
    if step == Step::Debootstrap {
        fsutil::make_dir_mode(staging, IMAGE_ROOT_MODE)?;
        return Ok((staging.to_path_buf(), None));
    }
    if staging_mode() == Staging::Layers {
        fsutil::make_dir_mode(staging, IMAGE_ROOT_MODE)?;
        fsutil::make_dir(&work)?;
        let overlay = MountGuard::overlay(&merged, &lower, Some((staging, &work)))?;
        return Ok((merged, Some(overlay)));
    }
    let prev = lower
        .first()
        .context("internal error: a step with nothing to start from")?;
    // `cp -a` would copy a link as a link, and the step write through it.
    Folder::open(prev)?;
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
            .arg(prev)
            .arg(staging),
        ctx.log,
        ctx.cancel,
    )?;
    Ok((staging.to_path_buf(), None))
}

fn run_step(ctx: &mut RunCtx, task: &TaskSpec, step: Step) -> Result<Produced> {
    let image = task
        .image()
        .context("internal error: a step without an image")?;
    let img = &ctx.cfg.images[image];
    let script = task
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
    // 0755, not the cache's 0700: the steps bind-mount it as apt's archive
    // folder, where apt downloads as its own user (_apt).
    fsutil::make_dir_mode(&ctx.cache_dir.join("debs"), 0o755)?;
    fsutil::make_dir(&dir)?;
    let (rootfs, overlay) = working_tree(ctx, image, step, &staging)?;
    let guard = if script.chroot {
        Some(MountGuard::chroot(&rootfs)?)
    } else {
        None
    };
    let tasks = dir.join(format!("{}.tasks", step.name()));
    let script_path = write_step_files(&tasks, script)?;
    writeln!(
        ctx.log,
        "ddc: running {} ({}) with DDC_ROOTFS={}",
        script_path.display(),
        shown_origin(&script.files[0]),
        rootfs.display()
    )?;
    let mut cmd = crate::process::isolated("/bin/sh");
    cmd.arg(&script_path)
        .current_dir(&ctx.cfg.base_dir)
        .env_clear()
        .env("PATH", crate::process::search_path())
        .env("LC_ALL", "C.UTF-8");
    for k in ["http_proxy", "https_proxy", "no_proxy", "HOME"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    // The epoch as set, else as the bootstrap derived it (in its layer).
    let epoch = match (img.source_date_epoch, step) {
        (Some(e), _) => Some(e),
        (None, Step::Debootstrap) => None,
        (None, _) => Some(reproducible::read_epoch(&rootfs)?),
    };
    let dirs = StepDirs {
        rootfs: &rootfs,
        tasks: &tasks,
        cache: ctx.cache_dir,
        epoch,
    };
    cmd.envs(step_env(step, ctx.cfg, img, &dirs)?);
    let result = run_logged(&mut cmd, ctx.log, ctx.cancel);
    if let Some(g) = guard {
        g.release()?;
    }
    let result = result.and_then(|()| make_reproducible(ctx.log, step, &rootfs, epoch));
    if let Some(o) = overlay {
        o.release()?;
    }
    result?;
    safe_remove_dir_all(&work)?;
    let _ = fsutil::remove_empty_dir(&merged);
    let folder = Folder::open(&dir)?;
    folder.remove(step.name())?;
    folder
        .rename(format!("{}.staging", step.name()), step.name())
        .with_context(|| format!("cannot commit {}", out.display()))?;
    Ok(Produced {
        dirs: vec![out],
        layered: true,
        ..Default::default()
    })
}

/// After a step's script: the bootstrap derives the epoch (unless set) and
/// records it in the image; every step normalises the tree for it.
fn make_reproducible(
    log: &mut std::fs::File,
    step: Step,
    rootfs: &Path,
    epoch: Option<i64>,
) -> Result<()> {
    let epoch = match epoch {
        Some(e) => e,
        None => {
            let e = reproducible::derive_epoch(rootfs)?;
            writeln!(
                log,
                "ddc: SOURCE_DATE_EPOCH={e}, the newest Date: of the mirror's Release files"
            )?;
            e
        }
    };
    if step == Step::Debootstrap {
        reproducible::write_epoch(rootfs, epoch)?;
    }
    reproducible::normalise(rootfs, epoch, log)?;
    Ok(())
}

/// Writes a step's script and the files of its folder, as its key hashed
/// them, under `dir` (the step's `DDC_TASKS_DIR`); returns the script's path.
fn write_step_files(dir: &Path, script: &Script) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    safe_remove_dir_all(dir)?;
    for f in &script.files {
        let path = dir.join(&f.rel);
        std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
        std::fs::write(&path, &f.bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))?;
    }
    let first = script
        .files
        .first()
        .context("internal error: a step without a script")?;
    Ok(dir.join(&first.rel))
}

fn shown_origin(f: &TaskFile) -> String {
    match &f.origin {
        Origin::BuiltIn => "built in".into(),
        Origin::Override(p) => format!("from {}", p.display()),
    }
}

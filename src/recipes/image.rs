//! The image steps `debootstrap → packages → configure → initramfs`: each
//! runs its script from the tasks folder on the image's root file system.
//!
//! A step's script gets exactly the `DDC_*` values that are in its key (see
//! [`step_vars`]), plus the context every step gets ([`CONTEXT_VARS`]), so no
//! value can reach a step without being hashed.
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
use serde::Serialize;

use super::plan::tool_version;
use super::{Kind, Need, Planner, Produced, Recipe, RunCtx, Scope, Subject, TaskSpec};
use crate::chroot::MountGuard;
use crate::config::{Config, Image};
use crate::fingerprint::{scan_tree, Fingerprint, Input};
use crate::fsutil::{self, safe_remove_dir_all, Folder};
use crate::process::run_logged;

/// The mode of a step's working tree: it becomes the image's `/` (and the
/// published generation's folder), which everyone on a node must reach.
const IMAGE_ROOT_MODE: u32 = 0o755;

/// How a step's working tree is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Staging {
    Layers,
    Copy,
}

/// [`Staging::Layers`] when running as root on a kernel with overlayfs,
/// else [`Staging::Copy`]. `DDC_STAGING=copy` forces copies (for file
/// systems overlayfs cannot use).
pub(crate) fn staging_mode() -> Staging {
    static MODE: std::sync::OnceLock<Staging> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        if std::env::var("DDC_STAGING").is_ok_and(|v| v == "copy") {
            return Staging::Copy;
        }
        let root = nix::unistd::geteuid().is_root();
        let listed = || {
            std::fs::read_to_string("/proc/filesystems")
                .is_ok_and(|s| s.lines().any(|l| l.ends_with("\toverlay")))
        };
        // overlay may be a module not loaded yet: load it rather than let
        // the mode (part of every image step's key) depend on what ran before.
        if root && !listed() {
            let _ = Command::new("modprobe")
                .arg("overlay")
                .stderr(std::process::Stdio::null())
                .status();
        }
        if root && listed() {
            Staging::Layers
        } else {
            Staging::Copy
        }
    })
}

pub(crate) fn image_dir(cache: &Path, image: &str) -> PathBuf {
    cache.join("images").join(image)
}

/// The steps of an image, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Debootstrap,
    Packages,
    Configure,
    Initramfs,
}

impl Step {
    pub(crate) const ALL: [Step; 4] = [
        Step::Debootstrap,
        Step::Packages,
        Step::Configure,
        Step::Initramfs,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Debootstrap => "debootstrap",
            Step::Packages => "packages",
            Step::Configure => "configure",
            Step::Initramfs => "initramfs",
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Step::Debootstrap => Kind::Debootstrap,
            Step::Packages => Kind::Packages,
            Step::Configure => Kind::Configure,
            Step::Initramfs => Kind::Initramfs,
        }
    }

    fn index(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).expect("a step")
    }
}

/// The committed outputs of the steps before `step`, newest first.
pub(crate) fn lower_layers(dir: &Path, step: Step) -> Vec<PathBuf> {
    Step::ALL[..step.index()]
        .iter()
        .rev()
        .map(|s| dir.join(s.name()))
        .collect()
}

/// The environment every step gets: where it works, not what it makes.
/// The files of the tasks folder a step reads are key inputs of their own.
pub(crate) const CONTEXT_VARS: [&str; 4] =
    ["DDC_ROOTFS", "DDC_IMAGE", "DDC_TASKS_DIR", "DDC_PKG_CACHE"];

/// A value a step reads: hashed into its key under `key`, and given to its
/// script as the environment variable `env`.
pub(crate) struct StepVar {
    pub(crate) env: &'static str,
    pub(crate) input: Input,
    pub(crate) text: String,
}

fn var<T: Serialize>(env: &'static str, key: String, value: &T, text: String) -> StepVar {
    StepVar {
        env,
        input: Planner::value(key, value),
        text,
    }
}

/// The values `step` of `img` reads, in key order. The one list that both
/// the key and the script's environment come from.
pub(crate) fn step_vars(step: Step, cfg: &Config, img: &Image) -> Result<Vec<StepVar>> {
    let k = |f: &str| format!("images.{}.{f}", img.name);
    let c = &cfg.cluster;
    Ok(match step {
        Step::Debootstrap => vec![
            var("DDC_SUITE", k("suite"), &img.suite, img.suite.clone()),
            var("DDC_ARCH", k("arch"), &img.arch, img.arch.clone()),
            var("DDC_MIRROR", k("mirror"), &img.mirror, img.mirror.clone()),
            var(
                "DDC_BOOTSTRAPPER",
                k("bootstrapper"),
                &img.bootstrapper,
                img.bootstrapper.as_str().to_string(),
            ),
        ],
        Step::Packages => vec![
            var(
                "DDC_PACKAGES",
                k("packages"),
                &img.packages,
                img.packages.join(" "),
            ),
            var("DDC_MIRROR", k("mirror"), &img.mirror, img.mirror.clone()),
        ],
        Step::Configure => {
            let files = match &img.files {
                Some(dir) => scan_tree(dir, None)
                    .with_context(|| format!("cannot read the files tree {}", dir.display()))?
                    .0
                    .fingerprint(),
                None => Fingerprint([0; 32]),
            };
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            vec![
                StepVar {
                    env: "DDC_FILES",
                    input: Input {
                        name: k("files").into(),
                        hash: files,
                    },
                    text: img
                        .files
                        .as_ref()
                        .map(|f| f.display().to_string())
                        .unwrap_or_default(),
                },
                var(
                    "DDC_ROOT_PASSWORD_HASH",
                    k("root_password_hash"),
                    &img.root_password_hash,
                    text(&img.root_password_hash),
                ),
                var(
                    "DDC_SSH_AUTHORIZED_KEYS",
                    k("ssh_authorized_keys"),
                    &img.ssh_authorized_keys,
                    img.ssh_authorized_keys.join("\n"),
                ),
                var(
                    "DDC_NIS_DOMAIN",
                    k("nis_domain"),
                    &img.nis_domain,
                    text(&img.nis_domain),
                ),
                var(
                    "DDC_MASTER",
                    "cluster.master".into(),
                    &c.master,
                    c.master.to_string(),
                ),
                var(
                    "DDC_NETWORK",
                    "cluster.network".into(),
                    &c.network,
                    c.network.to_string(),
                ),
                var(
                    "DDC_SYSLOG",
                    "cluster.syslog".into(),
                    &c.syslog,
                    if c.syslog { "1" } else { "0" }.into(),
                ),
            ]
        }
        Step::Initramfs => vec![var(
            "DDC_UNION",
            k("union"),
            &img.union,
            img.union.as_str().to_string(),
        )],
    })
}

/// The environment of a step's script: its values and the context.
fn step_env(
    step: Step,
    cfg: &Config,
    img: &Image,
    rootfs: &Path,
    cache: &Path,
) -> Result<Vec<(&'static str, String)>> {
    let context = [
        rootfs.display().to_string(),
        img.name.clone(),
        cfg.tasks_dir.display().to_string(),
        cache.join("debs").display().to_string(),
    ];
    let mut env: Vec<(&'static str, String)> = CONTEXT_VARS.into_iter().zip(context).collect();
    env.extend(
        step_vars(step, cfg, img)?
            .into_iter()
            .map(|v| (v.env, v.text)),
    );
    Ok(env)
}

impl Recipe for Step {
    fn name(&self) -> &'static str {
        Step::name(*self)
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
        let (mut inputs, script) = p.step_files(step.name())?;
        inputs.extend(step_vars(step, p.cfg, img)?.into_iter().map(|v| v.input));
        if step == Step::Debootstrap {
            let tool = img.bootstrapper.as_str();
            inputs.push(Planner::value(format!("tool:{tool}"), &tool_version(tool)));
        }
        inputs.push(Planner::value("staging", &staging_mode()));
        let deps = match step.index() {
            0 => Vec::new(),
            i => p
                .find(Step::ALL[i - 1].kind(), Some(&img.name))
                .into_iter()
                .collect(),
        };
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
        if let Some(s) = &task.script {
            if s.needs_root {
                needs.push(Need::Root);
            }
            if s.chroot {
                needs.push(Need::Program {
                    program: "chroot".into(),
                    package: "coreutils",
                });
            }
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
    dir: &Path,
    step: Step,
    staging: &Path,
) -> Result<(PathBuf, Option<MountGuard>)> {
    let work = dir.join(format!("{}.work", step.name()));
    let merged = dir.join(format!("{}.root", step.name()));
    if step == Step::Debootstrap {
        fsutil::make_dir_mode(staging, IMAGE_ROOT_MODE)?;
        return Ok((staging.to_path_buf(), None));
    }
    if staging_mode() == Staging::Layers {
        fsutil::make_dir_mode(staging, IMAGE_ROOT_MODE)?;
        fsutil::make_dir(&work)?;
        let overlay =
            MountGuard::overlay(&merged, &lower_layers(dir, step), Some((staging, &work)))?;
        return Ok((merged, Some(overlay)));
    }
    let prev = dir.join(Step::ALL[step.index() - 1].name());
    // `cp -a` would copy a link as a link, and the step write through it.
    Folder::open(&prev)?;
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
    let (rootfs, overlay) = working_tree(ctx, &dir, step, &staging)?;
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
    let mut cmd = crate::process::isolated("/bin/sh");
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
    cmd.envs(step_env(step, ctx.cfg, img, &rootfs, ctx.cache_dir)?);
    let result = run_logged(&mut cmd, ctx.log, ctx.cancel);
    if let Some(g) = guard {
        g.release()?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn cfg() -> Config {
        crate::config::parse(
            "[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster = \"192.0.2.1\"\n\n[images.default]\nsuite = \"bookworm\"\npackages = [\"linux-image-amd64\"]\n",
            "Ddcfile.toml",
            Path::new("/nonexistent"),
            &|| "http://mirror.invalid/debian".to_string(),
        )
        .expect("valid")
    }

    /// The `DDC_*` names a text mentions.
    fn ddc_vars(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("DDC_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            out.insert(name);
        }
        out
    }

    /// A step's script and the files of its folder may read only what the
    /// step hashes (and the context): any other `DDC_*` would be unset.
    #[test]
    fn built_in_steps_read_only_hashed_values() {
        let cfg = cfg();
        let img = &cfg.images["default"];
        let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks");
        for step in Step::ALL {
            let given: BTreeSet<String> =
                step_env(step, &cfg, img, Path::new("/r"), Path::new("/c"))
                    .unwrap()
                    .into_iter()
                    .map(|(k, _)| k.to_string())
                    .collect();
            let mut read = ddc_vars(
                &std::fs::read_to_string(tasks.join(format!("{}.sh", step.name()))).unwrap(),
            );
            for e in walkdir::WalkDir::new(tasks.join(step.name()))
                .into_iter()
                .flatten()
            {
                if e.file_type().is_file() {
                    read.extend(ddc_vars(&std::fs::read_to_string(e.path()).unwrap()));
                }
            }
            let unhashed: Vec<_> = read.difference(&given).collect();
            assert!(
                unhashed.is_empty(),
                "{} reads {unhashed:?}, which are not in its key: add them to step_vars",
                step.name()
            );
        }
    }

    /// The environment holds exactly the key's values and the context.
    #[test]
    fn the_environment_is_the_key() {
        let cfg = cfg();
        let img = &cfg.images["default"];
        for step in Step::ALL {
            let env: Vec<&str> = step_env(step, &cfg, img, Path::new("/r"), Path::new("/c"))
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let vars = step_vars(step, &cfg, img).unwrap();
            let mut want: Vec<&str> = CONTEXT_VARS.to_vec();
            want.extend(vars.iter().map(|v| v.env));
            assert_eq!(env, want, "{}", step.name());
            for v in &vars {
                assert!(
                    v.input.name.starts_with("images.default.")
                        || v.input.name.starts_with("cluster."),
                    "{} hashes {} under an unnamed key",
                    v.env,
                    v.input.name
                );
            }
        }
    }

    #[test]
    fn debootstrap_does_not_see_configure_values() {
        let cfg = cfg();
        let img = &cfg.images["default"];
        let env = step_env(
            Step::Debootstrap,
            &cfg,
            img,
            Path::new("/r"),
            Path::new("/c"),
        )
        .unwrap();
        assert!(env
            .iter()
            .all(|(k, _)| *k != "DDC_MASTER" && *k != "DDC_PACKAGES"));
    }
}

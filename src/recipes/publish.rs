//! `publish:IMG`: the finished image becomes a new generation in
//! `nfs_root/IMG/NNNN-HASH` (sharing unchanged files with the previous one by
//! hard links), its kernel and initrd go to `tftp_root/IMG/NNNN-HASH/`, and
//! `current` moves to it in one rename. A rebuild to identical content
//! publishes nothing new.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::step::{image_dir, lower_layers, staging_mode, Staging, Step};
use super::{Kind, Need, Planner, Produced, Recipe, RunCtx, Scope, Subject, TaskSpec};
use crate::chroot::MountGuard;
use crate::config::{Config, Image};
use crate::fsutil::{self, Folder};
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
            // The boot files' mtime (derived: with the initramfs layer).
            Planner::value(
                format!("images.{}.source_date_epoch", img.name),
                &img.source_date_epoch,
            ),
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

/// The kernel and initrd a generation boots: the newest version in the
/// image's `/boot` that has both, as regular files.
struct Kernel {
    /// The image's `/boot`, opened inside the image.
    boot: OwnedFd,
    version: String,
}

/// Opens `rel` in the image whose root is `root` as the node would see it:
/// links are resolved against the image's root, never the master's, so
/// none leads out of the image (`openat2` with `RESOLVE_IN_ROOT`). On a
/// kernel without openat2, a link on the way is refused instead.
fn open_in_image(root: BorrowedFd, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC;
    match rfs::openat2(
        root,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Err(Errno::NOSYS) | Err(Errno::PERM) => {}
        r => return r,
    }
    let mut names: Vec<&str> = rel.split('/').filter(|n| !n.is_empty()).collect();
    let last = names.pop().unwrap_or(".");
    let mut dir: Option<OwnedFd> = None;
    for n in names {
        let at = dir.as_ref().map_or(root, |d| d.as_fd());
        let next = rfs::openat(
            at,
            n,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        dir = Some(next);
    }
    let at = dir.as_ref().map_or(root, |d| d.as_fd());
    rfs::openat(at, last, flags | OFlags::NOFOLLOW, Mode::empty())
}

/// Finds the kernel in the image at `root` (the folder ddc built it in).
fn find_kernel(root: &Path, image: &str) -> Result<Kernel> {
    let top = Folder::open(root)?;
    let boot = match open_in_image(top.fd(), "boot", OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => Some(fd),
        Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => None,
        Err(e) => {
            return Err(std::io::Error::from_raw_os_error(e.raw_os_error()))
                .with_context(|| format!("cannot open /boot in the image {image}"))
        }
    };
    let version = boot.as_ref().and_then(|b| newest_kernel(b.as_fd()));
    match (boot, version) {
        (Some(boot), Some(version)) => Ok(Kernel { boot, version }),
        _ => {
            const MISSING: &str =
                "has no boot/vmlinuz-VERSION with a matching boot/initrd.img-VERSION";
            // A /boot that is a link says where it was looked for.
            match top.read_link("boot") {
                Some(to) => bail!(
                    "the image {image} {MISSING}: its /boot is a symbolic link to {}, which ddc resolves inside the image, as a node would (never on the master); make /boot a folder of the image, or a link to one inside it",
                    to.display()
                ),
                None => bail!(
                    "the image {image} {MISSING}; add a kernel (linux-image-amd64) to images.{image}.packages"
                ),
            }
        }
    }
}

fn newest_kernel(boot: BorrowedFd) -> Option<String> {
    let entries = fsutil::list(boot).ok()?;
    let regular = |name: &str| {
        rfs::statat(boot, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
    };
    let mut versions: Vec<String> = entries
        .into_iter()
        .filter(|(_, kind)| *kind == FileType::RegularFile)
        .filter_map(|(name, _)| {
            let v = name.to_str()?.strip_prefix("vmlinuz-")?.to_string();
            regular(&format!("initrd.img-{v}")).then_some(v)
        })
        .collect();
    versions.sort_by_key(|v| version_key(v));
    versions.pop()
}

impl Kernel {
    /// The bytes of `boot/NAME-VERSION`, a regular file of the image.
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let file = format!("{name}-{}", self.version);
        let fd = rfs::openat(
            &self.boot,
            file.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        .with_context(|| format!("cannot open boot/{file} in the image"))?;
        let mut f = std::fs::File::from(fd);
        if !f.metadata()?.is_file() {
            bail!("boot/{file} in the image is not a regular file");
        }
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read boot/{file} in the image"))?;
        Ok(bytes)
    }
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
        let layers = lower_layers(ctx.cache_dir, ctx.cfg, image, Step::Initramfs);
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
        let _ = fsutil::remove_empty_dir(&merged);
    }
    result
}

/// Refuses a link where publish writes, before rsync runs: `--delete`
/// through a generation folder that became a link would empty the folder
/// it points at. The image's folder in the nfs_root and the kernel folder
/// in the TFTP root are reached without following a link (`fsutil`).
fn publish_from(ctx: &mut RunCtx, image: &str, source: &Path, content: &str) -> Result<Produced> {
    let cfg = ctx.cfg;
    let kernel = find_kernel(source, image)?;
    let base_path = cfg.paths.nfs_root.join(image);
    let base = Folder::make(&base_path)?;
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
    let tftp_of = |g: &str| cfg.paths.tftp_root.join(image).join(g);
    // Only checked here (a link on the way is refused); made after rsync.
    Folder::find(&tftp_of(&generation))?;
    // Publish into a staging folder (or repair an existing generation in
    // place), sharing unchanged files with the previous generation by hard links.
    let in_place = base.has_dir(&generation)?;
    let target_name = if in_place {
        generation.clone()
    } else {
        let staging = format!(".{generation}.staging");
        base.remove(&staging)?;
        staging
    };
    let target = base_path.join(&target_name);
    let previous = previous_generation(cfg, image, &base, &gens, &generation);
    // An image with `from` shares what it did not change with its bases'.
    let links: Vec<PathBuf> = previous
        .into_iter()
        .chain(base_generations(cfg, image))
        .collect();
    let shown = base_path.join(&generation);
    writeln!(ctx.log, "ddc: publishing {image} as {}", shown.display())?;
    rsync(ctx, source, &target, in_place, &links)?;
    // rsync does not fsync: make the tree durable before `current` can name it.
    base.sub_dir(&target_name)?
        .with_context(|| format!("rsync did not create {}", target.display()))?
        .sync_fs()?;
    let manifest = crate::manifest::Manifest::scan(&target)?;
    // A rebuild that came out bit for bit as the newest generation (or, in
    // place, as this one was) publishes nothing: nodes need no reboot.
    let compared = if in_place {
        Some(generation.clone())
    } else {
        gens.last().map(|g| g.name.clone())
    };
    let identical = compared.as_ref().is_some_and(|g| {
        same_generation(&base_path.join(g), &tftp_of(g), &manifest, &kernel).unwrap_or(false)
    });
    let generation = match (identical, in_place) {
        (true, false) => {
            base.remove(&target_name)?;
            compared.unwrap_or_default()
        }
        (false, false) => commit(&base, &target_name, generation)?,
        (_, true) => generation,
    };
    let root = base_path.join(&generation);
    if !base.has_dir(&generation)? {
        bail!("internal error: {} was not published", root.display());
    }
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    if identical {
        let said = format!("{image}: identical to {generation}, nothing published");
        writeln!(ctx.log, "ddc: {said}")?;
        notes.push(said);
    } else {
        manifest.save(&root)?;
        warnings = secret_warnings(ctx, image, &generation, &root)?;
    }
    let tftp_path = tftp_of(&generation);
    let (kernel_path, initrd_path) = if identical && !in_place {
        (tftp_path.join("vmlinuz"), tftp_path.join("initrd.img"))
    } else {
        let epoch = boot_epoch(ctx.cfg.images[image].source_date_epoch, source);
        boot_files(&kernel, &tftp_path, epoch)?
    };
    let content = generations::content(&generation).to_string();
    let warnings = move_current(ctx, image, &generation, &content, warnings)?;
    Ok(Produced {
        warnings,
        notes,
        scanned: vec![(root.clone(), manifest.tree)],
        files: vec![kernel_path, initrd_path],
        dirs: vec![root.clone()],
        layered: false,
        facts: facts(image, &generation, &root, &kernel),
        ..Default::default()
    })
}

/// What the pxe tasks read of a published generation.
fn facts(image: &str, generation: &str, root: &Path, kernel: &Kernel) -> serde_json::Value {
    let tftp_rel = format!("{image}/{generation}");
    serde_json::json!({
        "generation": generation,
        "root": root.display().to_string(),
        "kernel": format!("{tftp_rel}/vmlinuz"),
        "initrd": format!("{tftp_rel}/initrd.img"),
        "kernel_version": kernel.version,
    })
}

/// The current generations of the images `image` starts from, nearest
/// first (rsync takes at most 20 `--link-dest`s; the previous generation is one).
fn base_generations(cfg: &Config, image: &str) -> Vec<PathBuf> {
    cfg.bases_of(image)
        .into_iter()
        .filter_map(|b| {
            // Only a generation folder, reached without following a link.
            let g = generations::current(&cfg.paths.nfs_root, &b.name)?;
            let folder = Folder::open(&cfg.paths.nfs_root.join(&b.name)).ok()?;
            let listed = generations::list(&cfg.paths.nfs_root, &b.name)
                .iter()
                .any(|l| l.name == g);
            (listed && folder.has_dir(&g).ok()?).then(|| folder.path().join(&g))
        })
        .take(19)
        .collect()
}

/// The generation to share unchanged files with: the one nodes boot now,
/// else the newest.
fn previous_generation(
    cfg: &Config,
    image: &str,
    base: &Folder,
    gens: &[generations::Generation],
    generation: &str,
) -> Option<PathBuf> {
    generations::current(&cfg.paths.nfs_root, image)
        .into_iter()
        .chain(gens.iter().rev().map(|g| g.name.clone()))
        .find(|g| g != generation && base.has_dir(g).unwrap_or(false))
        .map(|g| cfg.paths.nfs_root.join(image).join(g))
}

/// Copies the image's tree to `target` with rsync.
fn rsync(
    ctx: &mut RunCtx,
    source: &Path,
    target: &Path,
    in_place: bool,
    links: &[PathBuf],
) -> Result<()> {
    let mut cmd = Command::new("rsync");
    cmd.args(["-aH", "--numeric-ids", "--delete"]);
    if in_place || !links.is_empty() {
        // Compare contents, never size and mtime alone: a repair may meet a
        // hand edit that kept both, and the reproducible step clamps every
        // new mtime to SOURCE_DATE_EPOCH, so a changed file of the same size
        // has the old one's size and mtime, and --link-dest would link the
        // previous generation's file in its place (the change silently lost).
        cmd.arg("--checksum");
    }
    for p in links {
        cmd.arg(format!("--link-dest={}", p.display()));
    }
    cmd.arg(format!("{}/", source.display())).arg(target);
    run_logged(&mut cmd, ctx.log, ctx.cancel)
}

/// Whether the generation at `root` (its kernel and initrd in `tftp`) is
/// what `manifest` and `kernel` describe: the same paths, types, modes,
/// owners, contents and mtimes, the same packages, and the same boot files.
fn same_generation(
    root: &Path,
    tftp: &Path,
    manifest: &crate::manifest::Manifest,
    kernel: &Kernel,
) -> Result<bool> {
    let Ok(old) = crate::manifest::Manifest::load(root) else {
        return Ok(false);
    };
    if !crate::manifest::identical(&old, manifest) {
        return Ok(false);
    }
    for name in ["vmlinuz", "initrd.img"] {
        match std::fs::read(tftp.join(name)) {
            Ok(bytes) if bytes == kernel.read(name)? => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Moves `current` to `generation`, unless it has the content of a
/// generation that was rolled back from; returns `warnings` with why not.
fn move_current(
    ctx: &mut RunCtx,
    image: &str,
    generation: &str,
    content: &str,
    mut warnings: Vec<String>,
) -> Result<Vec<String>> {
    let cfg = ctx.cfg;
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
    } else if now.as_deref() != Some(generation) {
        // Boot entries follow `current`: switch it in one rename.
        generations::set_current(&cfg.paths.nfs_root, image, generation)?;
        writeln!(ctx.log, "ddc: {image}/current -> {generation}")?;
    }
    Ok(warnings)
}

/// Renames the staged tree `staged` of `base` to `generation`, durably.
fn commit(base: &Folder, staged: &str, generation: String) -> Result<String> {
    base.sync()?;
    base.rename(staged, &generation)
        .with_context(|| format!("cannot commit {}", base.path().join(&generation).display()))?;
    base.sync()?;
    Ok(generation)
}

/// The boot files' mtime: the image's own `source_date_epoch` when it sets
/// one (a child with `from` may differ from its base, whose bootstrap wrote
/// the epoch file its tree holds), else the epoch file of the image at
/// `source`; None for an image built by an older ddc, which has none.
fn boot_epoch(configured: Option<i64>, source: &Path) -> Option<i64> {
    configured.or_else(|| super::reproducible::read_epoch(source).ok())
}

/// Copies the image's kernel and initrd into `dir` of the TFTP root (0644:
/// the TFTP server reads them as another user), with `epoch` (when known)
/// as their mtime.
fn boot_files(kernel: &Kernel, dir: &Path, epoch: Option<i64>) -> Result<(PathBuf, PathBuf)> {
    let folder = Folder::make(dir)?;
    for name in ["vmlinuz", "initrd.img"] {
        folder.write(name, &kernel.read(name)?, true, 0o644)?;
        if let Some(e) = epoch {
            super::reproducible::set_mtime(&dir.join(name), e)?;
        }
    }
    Ok((dir.join("vmlinuz"), dir.join("initrd.img")))
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
    fn boot_files_take_the_images_own_epoch_first() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(boot_epoch(None, d.path()), None);
        assert_eq!(boot_epoch(Some(5), d.path()), Some(5));
        // The tree's epoch file, as the base's bootstrap wrote it.
        super::super::reproducible::write_epoch(d.path(), 1_700_000_000).unwrap();
        assert_eq!(boot_epoch(None, d.path()), Some(1_700_000_000));
        assert_eq!(boot_epoch(Some(5), d.path()), Some(5));
        // And the files get it.
        let b = d.path().join("boot");
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("vmlinuz-6.1.0-10-amd64"), "k").unwrap();
        std::fs::write(b.join("initrd.img-6.1.0-10-amd64"), "i").unwrap();
        let k = find_kernel(d.path(), "default").unwrap();
        let tftp = d.path().join("tftp");
        let (vmlinuz, initrd) = boot_files(&k, &tftp, boot_epoch(Some(5), d.path())).unwrap();
        for f in [vmlinuz, initrd] {
            let m = std::fs::metadata(f).unwrap().modified().unwrap();
            assert_eq!(m, std::time::UNIX_EPOCH + std::time::Duration::from_secs(5));
        }
    }

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
        let k = find_kernel(d.path(), "default").unwrap();
        assert_eq!(k.version, "6.1.0-10-amd64");
        assert_eq!(k.read("vmlinuz").unwrap(), b"");
    }
}

//! The files of the tasks folder: step scripts, the files of each step's
//! folder (the initramfs hook) and the templates. All are built into the
//! binary from `tasks/`; a Ddcfile's `tasks_dir` may hold files that replace
//! the built-in file of the same name (or add files to a step's folder),
//! and the others stay built in.
//!
//! Each file is read once per process: the bytes a task's key hashes are the
//! bytes the task uses. Knows nothing of the config or the recipes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{bail, Context, Result};

/// Every file under `tasks/`, compiled in: (path in the folder, bytes, mode).
/// A unit test checks that this is exactly what `tasks/` holds.
pub(crate) const BUILT_IN: &[(&str, &[u8], u32)] = &[
    ("README.md", include_bytes!("../tasks/README.md"), 0o644),
    (
        "configure.sh",
        include_bytes!("../tasks/configure.sh"),
        0o755,
    ),
    (
        "configure/ddc-report",
        include_bytes!("../tasks/configure/ddc-report"),
        0o755,
    ),
    (
        "configure/ddc-report-booted.service",
        include_bytes!("../tasks/configure/ddc-report-booted.service"),
        0o644,
    ),
    (
        "configure/ddc-report.service",
        include_bytes!("../tasks/configure/ddc-report.service"),
        0o644,
    ),
    (
        "configure/ssh-host-keys",
        include_bytes!("../tasks/configure/ssh-host-keys"),
        0o755,
    ),
    (
        "debootstrap.sh",
        include_bytes!("../tasks/debootstrap.sh"),
        0o755,
    ),
    (
        "initramfs.sh",
        include_bytes!("../tasks/initramfs.sh"),
        0o755,
    ),
    (
        "initramfs/ddc-union",
        include_bytes!("../tasks/initramfs/ddc-union"),
        0o755,
    ),
    ("packages.sh", include_bytes!("../tasks/packages.sh"), 0o755),
    (
        "templates/boot.ipxe.j2",
        include_bytes!("../tasks/templates/boot.ipxe.j2"),
        0o644,
    ),
    (
        "templates/dhcpd.conf.j2",
        include_bytes!("../tasks/templates/dhcpd.conf.j2"),
        0o644,
    ),
    (
        "templates/dnsmasq-hosts.j2",
        include_bytes!("../tasks/templates/dnsmasq-hosts.j2"),
        0o644,
    ),
    (
        "templates/dnsmasq.conf.j2",
        include_bytes!("../tasks/templates/dnsmasq.conf.j2"),
        0o644,
    ),
    (
        "templates/exports.j2",
        include_bytes!("../tasks/templates/exports.j2"),
        0o644,
    ),
    (
        "templates/ganesha.conf.j2",
        include_bytes!("../tasks/templates/ganesha.conf.j2"),
        0o644,
    ),
    (
        "templates/node.ipxe.j2",
        include_bytes!("../tasks/templates/node.ipxe.j2"),
        0o644,
    ),
    (
        "templates/pxelinux.cfg.j2",
        include_bytes!("../tasks/templates/pxelinux.cfg.j2"),
        0o644,
    ),
    (
        "templates/rsyslog.conf.j2",
        include_bytes!("../tasks/templates/rsyslog.conf.j2"),
        0o644,
    ),
];

/// Where a file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    BuiltIn,
    /// A file of `tasks_dir`, which replaces (or adds to) the built-in files.
    Override(PathBuf),
}

/// One file of the tasks folder, as used.
#[derive(Clone, Debug)]
pub(crate) struct TaskFile {
    /// Its path in the folder (`initramfs/ddc-union`).
    pub(crate) rel: String,
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) mode: u32,
    pub(crate) origin: Origin,
}

/// The built-in files with the overrides of one `tasks_dir`, each read once.
pub(crate) struct TasksDir {
    over: Option<PathBuf>,
    read: Mutex<HashMap<String, TaskFile>>,
}

impl TasksDir {
    /// The built-in files, replaced by those of `over` where it has them.
    pub(crate) fn new(over: Option<&Path>) -> Result<Self> {
        if let Some(d) = over {
            if !d.is_dir() {
                bail!(
                    "tasks_dir {} is not a folder: create it (`ddc tasks --eject {}` writes the built-in files there), or remove tasks_dir to use the built-in files",
                    d.display(),
                    d.display()
                );
            }
        }
        Ok(TasksDir {
            over: over.map(Path::to_path_buf),
            read: Mutex::new(HashMap::new()),
        })
    }

    /// The file `rel`: from `tasks_dir` when it is there, else built in.
    pub(crate) fn get(&self, rel: &str) -> Result<TaskFile> {
        if let Some(f) = self.read.lock().expect("tasks files").get(rel) {
            return Ok(f.clone());
        }
        let f = self.load(rel)?;
        self.read
            .lock()
            .expect("tasks files")
            .insert(rel.to_string(), f.clone());
        Ok(f)
    }

    fn load(&self, rel: &str) -> Result<TaskFile> {
        if let Some(dir) = &self.over {
            let path = dir.join(rel);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(&path)
                        .map(|m| m.permissions().mode() & 0o777)
                        .unwrap_or(0o644);
                    return Ok(TaskFile {
                        rel: rel.to_string(),
                        bytes: bytes.into(),
                        mode,
                        origin: Origin::Override(path),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            }
        }
        let Some((_, bytes, mode)) = BUILT_IN.iter().find(|(r, _, _)| *r == rel) else {
            match &self.over {
                Some(d) => bail!(
                    "{} is missing: it is not built in, so tasks_dir must have it",
                    d.join(rel).display()
                ),
                None => {
                    bail!("{rel} is not a built-in file: set tasks_dir to a folder that has it")
                }
            }
        };
        Ok(TaskFile {
            rel: rel.to_string(),
            bytes: Arc::from(*bytes),
            mode: *mode,
            origin: Origin::BuiltIn,
        })
    }

    /// The files under `folder/` (`initramfs`, `templates`; "" for all),
    /// built in or added by `tasks_dir`, sorted; editor leftovers are not
    /// among them.
    pub(crate) fn list(&self, folder: &str) -> Result<Vec<String>> {
        let prefix = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        let mut rels: Vec<String> = BUILT_IN
            .iter()
            .filter(|(r, _, _)| r.starts_with(&prefix))
            .map(|(r, _, _)| r.to_string())
            .collect();
        if let Some(dir) = &self.over {
            let sub = dir.join(folder);
            if sub.is_dir() {
                for e in walkdir::WalkDir::new(&sub).sort_by_file_name() {
                    let e = e.with_context(|| format!("cannot read {}", sub.display()))?;
                    if e.file_type().is_file() && !ignored_files().is_match(e.file_name()) {
                        let rel = e.path().strip_prefix(dir)?;
                        rels.push(rel.to_string_lossy().into_owned());
                    }
                }
            }
        }
        rels.sort();
        rels.dedup();
        Ok(rels)
    }

    /// How a file is named to the user: the override's path relative to
    /// `base_dir`, or `REL (built in)`.
    pub(crate) fn shown(&self, rel: &str, base_dir: &Path) -> String {
        match self.get(rel).map(|f| f.origin) {
            Ok(Origin::Override(p)) => crate::fsutil::shown(&p, base_dir),
            _ => format!("{rel} (built in)"),
        }
    }
}

/// A digest of everything in a `tasks_dir` override (every path, type,
/// mode, file's bytes and link's target, editor leftovers too), or of
/// nothing when the built-in files are used (they are this binary's). What
/// the whole-build cutoff checks instead of planning: any change at all in
/// the folder means a full build. Links are followed, as the planner reads
/// through them: a file or folder linked from elsewhere is hashed by what
/// it holds, and the link by its target too.
pub(crate) fn digest(over: Option<&Path>) -> crate::fingerprint::Fingerprint {
    use std::os::unix::fs::PermissionsExt;
    let mut h = blake3::Hasher::new();
    if let Some(dir) = over {
        for e in walkdir::WalkDir::new(dir)
            .follow_links(true)
            .sort_by_file_name()
        {
            let e = match e {
                Ok(e) => e,
                Err(err) => {
                    h.update(b"(unreadable)");
                    if let Some(p) = err.path() {
                        h.update(p.as_os_str().as_encoded_bytes());
                    }
                    continue;
                }
            };
            h.update(e.path().as_os_str().as_encoded_bytes());
            h.update(b"\0");
            if e.path_is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap_or_default();
                h.update(b"-> ");
                h.update(target.as_os_str().as_encoded_bytes());
                h.update(b"\0");
            }
            let Ok(m) = e.metadata() else {
                h.update(b"(unreadable)");
                continue;
            };
            h.update(&m.permissions().mode().to_le_bytes());
            if m.is_file() {
                match std::fs::read(e.path()) {
                    Ok(bytes) => h.update(blake3::hash(&bytes).as_bytes()),
                    Err(_) => h.update(b"(unreadable)"),
                };
            }
            h.update(b"\n");
        }
    }
    crate::fingerprint::Fingerprint(*h.finalize().as_bytes())
}

/// Writes every built-in file under `dir`, refusing (and writing nothing)
/// if any of them is there already. Returns the files written.
pub(crate) fn eject(dir: &Path) -> Result<Vec<PathBuf>> {
    let targets: Vec<PathBuf> = BUILT_IN.iter().map(|(r, _, _)| dir.join(r)).collect();
    let present: Vec<String> = targets
        .iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !present.is_empty() {
        bail!(
            "not overwriting {}: eject into an empty folder, or move them away first",
            present.join(", ")
        );
    }
    for ((_, bytes, mode), path) in BUILT_IN.iter().zip(&targets) {
        use std::os::unix::fs::PermissionsExt;
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))?;
    }
    Ok(targets)
}

/// Editor leftovers in a step's folder, which are not inputs.
fn ignored_files() -> &'static globset::GlobSet {
    static SET: OnceLock<globset::GlobSet> = OnceLock::new();
    SET.get_or_init(|| {
        let mut b = globset::GlobSetBuilder::new();
        for p in ["*~", ".*.swp", ".*.swo", "#*#", ".#*", "*.orig", "*.rej"] {
            b.add(globset::Glob::new(p).expect("valid glob"));
        }
        b.build().expect("valid glob set")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is exactly the repository's `tasks/`, byte for byte: a file
    /// added there and not here would silently not be built in.
    #[test]
    fn the_table_is_the_tasks_folder() {
        use std::os::unix::fs::PermissionsExt;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks");
        let mut on_disk = Vec::new();
        for e in walkdir::WalkDir::new(&root).sort_by_file_name() {
            let e = e.unwrap();
            if e.file_type().is_file() {
                let rel = e.path().strip_prefix(&root).unwrap();
                let mode = e.metadata().unwrap().permissions().mode() & 0o111;
                on_disk.push((
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                    mode != 0,
                ));
            }
        }
        on_disk.sort();
        let table: Vec<(String, Vec<u8>, bool)> = BUILT_IN
            .iter()
            .map(|(r, b, m)| (r.to_string(), b.to_vec(), m & 0o111 != 0))
            .collect();
        assert_eq!(table, on_disk, "BUILT_IN must list every file of tasks/");
    }

    #[test]
    fn an_override_replaces_one_file_and_adds_to_a_folder() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("initramfs")).unwrap();
        std::fs::write(d.path().join("configure.sh"), "mine").unwrap();
        std::fs::write(d.path().join("initramfs/extra"), "x").unwrap();
        std::fs::write(d.path().join("initramfs/extra~"), "editor").unwrap();
        let t = TasksDir::new(Some(d.path())).unwrap();
        let f = t.get("configure.sh").unwrap();
        assert_eq!(&*f.bytes, b"mine");
        assert_eq!(f.origin, Origin::Override(d.path().join("configure.sh")));
        let f = t.get("packages.sh").unwrap();
        assert_eq!(f.origin, Origin::BuiltIn);
        assert!(f.bytes.starts_with(b"#!/bin/sh"));
        assert_eq!(
            t.list("initramfs").unwrap(),
            ["initramfs/ddc-union", "initramfs/extra"]
        );
        assert_eq!(t.shown("configure.sh", d.path()), "configure.sh");
        assert_eq!(t.shown("packages.sh", d.path()), "packages.sh (built in)");
        // Read once: a later edit is not seen by this process.
        std::fs::write(d.path().join("configure.sh"), "changed").unwrap();
        assert_eq!(&*t.get("configure.sh").unwrap().bytes, b"mine");
        assert!(TasksDir::new(Some(&d.path().join("none"))).is_err());
    }

    #[test]
    fn eject_writes_every_file_and_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let written = eject(d.path()).unwrap();
        assert_eq!(written.len(), BUILT_IN.len());
        let hook = d.path().join("initramfs/ddc-union");
        assert_eq!(
            std::fs::read(&hook).unwrap(),
            TasksDir::new(None)
                .unwrap()
                .get("initramfs/ddc-union")
                .unwrap()
                .bytes
                .to_vec()
        );
        std::fs::write(&hook, "edited").unwrap();
        std::fs::remove_file(d.path().join("packages.sh")).unwrap();
        let e = eject(d.path()).unwrap_err().to_string();
        assert!(e.contains("ddc-union"), "{e}");
        assert_eq!(std::fs::read(&hook).unwrap(), b"edited");
        assert!(!d.path().join("packages.sh").exists(), "nothing is written");
    }
}

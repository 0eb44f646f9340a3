//! One policy for the paths ddc writes, checked before anything runs: an
//! output never overlaps another output, ddc's inputs (the Ddcfile, the node
//! inventory, the tasks folder, an image's files tree) or the cache folder;
//! the TFTP and NFS roots never nest in each other or in the cache; and no
//! output file lies in a root, where ddc puts only what it publishes.
//!
//! Two paths overlap when one is the other or lies inside it, compared twice:
//! lexically (absolute, `.` and `..` resolved as written) and by real path
//! (the longest existing part resolved through its symlinks, the rest
//! appended), so `./out/../Ddcfile.toml` and a folder linked into the cache
//! are both caught.
//!
//! A function of the config alone: run by the validator, which places each
//! problem at the key that set the path, and again on a cached config
//! (symlinks can change while the Ddcfile does not).

use std::path::{Component, Path, PathBuf};

use crate::config::model::{Config, Paths};

/// What a path is to ddc.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A file ddc writes (a server config).
    Output,
    /// A folder ddc publishes into and deletes from (TFTP, NFS).
    Root,
    /// Something ddc reads: the Ddcfile, the inventory, the tasks folder,
    /// an image's files tree.
    Input,
    /// `cache/` beside the Ddcfile.
    Cache,
}

impl Role {
    fn writes(self) -> bool {
        matches!(self, Role::Output | Role::Root)
    }
}

/// One path of the policy.
struct Spot {
    /// The key that sets it; None for the Ddcfile and the cache.
    key: Option<String>,
    /// What it is, for messages ("the tasks folder"); a key when it is
    /// just a key's path.
    name: String,
    role: Role,
    /// Absolute, `.` and `..` resolved as written.
    lexical: PathBuf,
    /// Through the symlinks that exist now.
    real: PathBuf,
    /// The default of its key, relative to the Ddcfile's folder.
    default: Option<&'static str>,
}

impl Spot {
    fn new(key: Option<&str>, name: &str, role: Role, path: &Path) -> Spot {
        Spot {
            key: key.map(str::to_string),
            name: name.to_string(),
            role,
            lexical: normalize(path),
            real: real_path(path),
            default: None,
        }
    }

    fn key_or_name(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.name)
    }

    /// "the tasks folder /c/tasks (tasks_dir)", without the path if not `at`.
    fn shown(&self, at: bool) -> String {
        let mut s = self.name.clone();
        if at {
            s.push_str(&format!(" {}", self.lexical.display()));
        }
        match &self.key {
            Some(k) if *k != self.name => s.push_str(&format!(" ({k})")),
            _ => {}
        }
        s
    }

    /// Which overlap to tell first when a key has several: inputs, then
    /// the cache, the roots, the outputs.
    fn rank(&self) -> u8 {
        match self.role {
            Role::Input => 0,
            Role::Cache => 1,
            Role::Root => 2,
            Role::Output => 3,
        }
    }
}

/// The default of each path key under [paths], relative to the Ddcfile.
pub(super) const DEFAULTS: &[(&str, &str)] = &[
    ("tftp_root", "out/tftp"),
    ("nfs_root", "out/nfsroot"),
    ("exports", "out/exports.d/ddc.exports"),
    ("ganesha", "out/ganesha/ddc.conf"),
    ("dhcpd", "out/dhcp/ddc.conf"),
    ("dnsmasq", "out/dnsmasq.d/ddc.conf"),
    ("dnsmasq_hosts", "out/dnsmasq/ddc.hosts"),
    ("rsyslog", "out/rsyslog.d/ddc.conf"),
    // Read, never written: the master's own.
    ("rsyslog_main", "/etc/rsyslog.conf"),
];

pub(super) fn default_of(key: &str) -> &'static str {
    DEFAULTS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, d)| *d)
        .expect("a [paths] key")
}

/// The paths the policy looks at: a config's, or the validator's pieces
/// of one before it is whole.
pub(super) struct Layout<'a> {
    pub paths: &'a Paths,
    /// Whether the rsyslog drop-in is written.
    pub syslog: bool,
    pub file: &'a Path,
    pub nodes_file: Option<&'a Path>,
    pub tasks_dir: Option<&'a Path>,
    /// Each image's files tree.
    pub files: Vec<(&'a str, &'a Path)>,
    pub base_dir: &'a Path,
}

impl<'a> Layout<'a> {
    pub(super) fn of(cfg: &'a Config) -> Self {
        Layout {
            paths: &cfg.paths,
            syslog: cfg.cluster.syslog,
            file: &cfg.file,
            nodes_file: cfg.nodes_file.as_deref(),
            tasks_dir: cfg.tasks_dir.as_deref(),
            files: cfg
                .images
                .values()
                .filter_map(|i| Some((i.name.as_str(), i.files.as_deref()?)))
                .collect(),
            base_dir: &cfg.base_dir,
        }
    }
}

/// The paths of a layout, in the order their keys are checked.
fn spots(l: &Layout) -> Vec<Spot> {
    let p = l.paths;
    let writer = |key: &str, name: &str, role: Role, path: &Path| {
        let full = format!("paths.{key}");
        let mut s = Spot::new(
            Some(&full),
            if name.is_empty() { &full } else { name },
            role,
            path,
        );
        s.default = Some(default_of(key));
        s
    };
    let mut v = vec![
        writer("tftp_root", "the TFTP root", Role::Root, &p.tftp_root),
        writer("nfs_root", "the NFS root", Role::Root, &p.nfs_root),
        writer("exports", "", Role::Output, &p.exports),
        writer("ganesha", "", Role::Output, &p.ganesha),
        writer("dhcpd", "", Role::Output, &p.dhcpd),
        writer("dnsmasq", "", Role::Output, &p.dnsmasq),
        writer("dnsmasq_hosts", "", Role::Output, &p.dnsmasq_hosts),
    ];
    if l.syslog {
        v.push(writer("rsyslog", "", Role::Output, &p.rsyslog));
        v.push(Spot::new(
            Some("paths.rsyslog_main"),
            "the master's rsyslog config",
            Role::Input,
            &p.rsyslog_main,
        ));
    }
    v.push(Spot::new(None, "the Ddcfile", Role::Input, l.file));
    if let Some(n) = l.nodes_file {
        v.push(Spot::new(
            Some("nodes_file"),
            "the node inventory",
            Role::Input,
            n,
        ));
    }
    if let Some(t) = l.tasks_dir {
        v.push(Spot::new(
            Some("tasks_dir"),
            "the tasks folder",
            Role::Input,
            t,
        ));
    }
    for (image, f) in &l.files {
        let key = format!("images.{image}.files");
        let name = format!("the files tree of image {image}");
        v.push(Spot::new(Some(&key), &name, Role::Input, f));
    }
    v.push(Spot::new(
        None,
        "the cache folder",
        Role::Cache,
        &l.base_dir.join("cache"),
    ));
    v
}

/// How two paths overlap, from the first one's side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overlap {
    Same,
    Inside,
    Holds,
}

impl Overlap {
    fn between(a: &Path, b: &Path) -> Option<Overlap> {
        if a == b {
            Some(Overlap::Same)
        } else if a.starts_with(b) {
            Some(Overlap::Inside)
        } else if b.starts_with(a) {
            Some(Overlap::Holds)
        } else {
            None
        }
    }

    fn flip(self) -> Overlap {
        match self {
            Overlap::Same => Overlap::Same,
            Overlap::Inside => Overlap::Holds,
            Overlap::Holds => Overlap::Inside,
        }
    }
}

/// A path the policy refuses: the key to report it at (the first of
/// `keys` the Ddcfile sets, else the first) and what to say.
pub(super) struct Violation {
    pub keys: Vec<String>,
    pub message: String,
}

/// The overlaps the policy refuses, one per key told (the first of its
/// overlaps, naming the others); `is_set` says whether the Ddcfile sets a
/// key: a problem is told from the side of a key the user wrote.
pub(super) fn violations(l: &Layout, is_set: &dyn Fn(&str) -> bool) -> Vec<Violation> {
    let spots = spots(l);
    // (told, other, relation from the told side, symlink note, keys)
    let mut found: Vec<(&Spot, &Spot, Overlap, String, bool)> = Vec::new();
    for (j, b) in spots.iter().enumerate() {
        for a in &spots[..j] {
            // Of two writers, an output file is told before a root, and
            // else the later key (the earlier one came first).
            let (writer, other) = match (a.role.writes(), b.role.writes()) {
                (false, false) => continue,
                (true, false) => (a, b),
                (false, true) => (b, a),
                _ if a.role == Role::Output && b.role == Role::Root => (a, b),
                _ => (b, a),
            };
            let Some((rel, via)) = relation(writer, other) else {
                continue;
            };
            let writer_set = writer.key.as_deref().is_some_and(is_set);
            let other_set = other.key.as_deref().is_some_and(is_set);
            if writer_set || !other_set {
                found.push((writer, other, rel, via, true));
            } else {
                found.push((other, writer, rel.flip(), via, false));
            }
        }
    }
    let mut out: Vec<Violation> = Vec::new();
    let mut told: Vec<&str> = Vec::new();
    for (subject, ..) in &found {
        let key = subject.key_or_name();
        if told.contains(&key) {
            continue;
        }
        told.push(key);
        let mut mine: Vec<_> = found.iter().filter(|f| f.0.key_or_name() == key).collect();
        mine.sort_by_key(|f| f.1.rank());
        let (_, other, rel, via, subject_writes) = mine[0];
        let mut message = if *subject_writes {
            writer_message(subject, other, *rel, via)
        } else {
            input_message(subject, other, *rel, via)
        };
        if mine.len() > 1 {
            let also: Vec<String> = mine[1..].iter().map(|f| f.1.shown(false)).collect();
            message.push_str(&format!(" (it also overlaps {})", also.join(", ")));
        }
        let keys = [subject.key.clone(), other.key.clone()];
        out.push(Violation {
            keys: keys.into_iter().flatten().collect(),
            message,
        });
    }
    out
}

/// How `a` overlaps `b`, and, when only their real paths do, a note saying so.
fn relation(a: &Spot, b: &Spot) -> Option<(Overlap, String)> {
    if let Some(rel) = Overlap::between(&a.lexical, &b.lexical) {
        return Some((rel, String::new()));
    }
    let rel = Overlap::between(&a.real, &b.real)?;
    let via = if rel == Overlap::Same {
        format!(" (through symlinks, both are {})", a.real.display())
    } else {
        format!(
            " (through symlinks: {} and {})",
            a.real.display(),
            b.real.display()
        )
    };
    Some((rel, via))
}

/// `subject` overlapping `other`, said from the subject's side.
fn relation_text(subject: &Spot, other: &Spot, rel: Overlap, via: &str) -> String {
    let rel_text = match rel {
        Overlap::Same if other.role.writes() => "is also",
        Overlap::Same => "is",
        Overlap::Inside => "is inside",
        Overlap::Holds => "holds",
    };
    format!(
        "{} {rel_text} {}{via}",
        subject.lexical.display(),
        other.shown(rel != Overlap::Same)
    )
}

/// Why `writer` may not overlap `other` (`rel` from the writer's side).
fn why(writer: &Spot, other: &Spot, rel: Overlap) -> &'static str {
    match (writer.role, other.role) {
        (Role::Root, Role::Root) => {
            "the TFTP root and the NFS root must be two folders, neither inside the other"
        }
        (_, Role::Cache) => {
            "the cache is ddc's own (its records, logs and image layers; `ddc clean` deletes in it)"
        }
        (Role::Output, Role::Output) => "one would overwrite the other",
        (_, Role::Root) | (_, Role::Output) => {
            "a root holds only what ddc publishes there, and ddc deletes old generations from it"
        }
        (Role::Root, _) if rel == Overlap::Holds => {
            "ddc publishes into a root and deletes from it, so it must not hold ddc's inputs"
        }
        _ if other.key.as_deref() == Some("tasks_dir") => {
            "ddc runs the step scripts and templates there as root and must never write over them"
        }
        _ if other.key.as_deref().is_some_and(|k| k.ends_with(".files")) => {
            "ddc copies it into the image and must never write into it"
        }
        _ if rel == Overlap::Same => "ddc would overwrite it",
        _ => "ddc must never write over its own inputs",
    }
}

/// Told at the writer's key: give it a path of its own.
fn writer_message(writer: &Spot, other: &Spot, rel: Overlap, via: &str) -> String {
    let what = relation_text(writer, other, rel, via);
    let why = why(writer, other, rel);
    let key = writer.key_or_name();
    match writer.default {
        Some(d) => format!("{what}: {why}; give {key} a path of its own, like the default {d}"),
        None => format!("{what}: {why}; give {key} a path of its own"),
    }
}

/// Told at an input's key when the writer's path is its default.
fn input_message(input: &Spot, writer: &Spot, rel: Overlap, via: &str) -> String {
    let what = relation_text(input, writer, rel, via);
    let why = why(writer, input, rel.flip());
    format!(
        "{what}, where ddc writes by default: {why}; move {} elsewhere, or set {} to a path outside it",
        input.key_or_name(),
        writer.key_or_name()
    )
}

/// `path` made absolute with `.` and `..` resolved as written.
pub(super) fn normalize(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The real path of `path` as far as it exists, the rest appended as written.
fn real_path(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    let mut at = path.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            let mut p = real;
            for c in rest.iter().rev() {
                p.push(c);
            }
            return normalize(&p);
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                at = parent;
            }
            // A `..` or the root: nothing more exists to resolve.
            _ => return normalize(&path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_as_written() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), Path::new("/a/c"));
        assert_eq!(normalize(Path::new("/a/../../c")), Path::new("/c"));
    }

    #[test]
    fn real_path_resolves_what_exists() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
        assert_eq!(real_path(&base.join("link/x/y")), base.join("real/x/y"));
        assert_eq!(real_path(&base.join("link/../z")), base.join("z"));
        assert_eq!(real_path(&base.join("none/../z")), base.join("z"));
    }
}

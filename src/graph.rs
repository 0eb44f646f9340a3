//! Turns a [`Config`] into the task DAG: per image `debootstrap → packages →
//! configure → initramfs → publish`, the `bootloader`, one `pxe:NODE` per
//! node, and the aggregate `exports`, `dhcp` and `rsyslog` tasks.
//!
//! Each task gets its static inputs here: the config values it reads, the
//! fingerprints of the `tasks/` files it uses and the host tool versions that
//! change its output. Node data never reaches an image task.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use crate::config::{Config, Image};
use crate::fingerprint::{hash_file, scan_tree, Fingerprint, Input};
use crate::task::{Action, Kind, Script, Step, TaskId, TaskSpec};
use crate::tasks::boot;

/// The task graph: specs in a topological order, and the petgraph view.
pub struct Graph {
    pub tasks: Vec<TaskSpec>,
    /// The key input name of each task as a dependency (`dep:packages:default`).
    pub dep_name: Vec<Cow<'static, str>>,
    pub index: HashMap<TaskId, usize>,
    pub dag: DiGraph<usize, ()>,
}

/// Templates a kind renders, relative to the tasks folder.
pub fn templates_of(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pxe | Kind::PxeDefault => &["templates/pxelinux.cfg.j2"],
        Kind::Exports => &["templates/exports.j2", "templates/ganesha.conf.j2"],
        Kind::Dhcp => &["templates/dhcpd.conf.j2", "templates/dnsmasq.conf.j2"],
        Kind::Rsyslog => &["templates/rsyslog.conf.j2"],
        _ => &[],
    }
}

struct Builder<'a> {
    cfg: &'a Config,
    tasks: Vec<TaskSpec>,
    files: HashMap<PathBuf, Fingerprint>,
}

impl Builder<'_> {
    fn value<T: Serialize>(name: impl Into<Cow<'static, str>>, v: &T) -> Input {
        let name = match name.into() {
            Cow::Owned(s) => intern(s),
            b => b,
        };
        Input {
            name,
            hash: Fingerprint::of_json(v),
        }
    }

    /// A string value, hashed as it is (the per-node inputs: 10,000 of each).
    fn text(name: &'static str, v: &str) -> Input {
        Input {
            name: Cow::Borrowed(name),
            hash: Fingerprint::of(v.as_bytes()),
        }
    }

    /// Fingerprint of a file in the tasks folder, read once per build.
    fn file(&mut self, rel: &str) -> Result<Input> {
        let path = self.cfg.tasks_dir.join(rel);
        let hash = match self.files.get(&path) {
            Some(h) => *h,
            None => {
                let h = hash_file(&path).with_context(|| {
                    format!(
                        "{} is missing: it is part of the recipe (restore it from the ddc repository, or point tasks_dir at a folder that has it)",
                        path.display()
                    )
                })?;
                self.files.insert(path.clone(), h);
                h
            }
        };
        Ok(Input {
            name: intern(format!("file:{rel}")),
            hash,
        })
    }

    /// The step's script and every file in `tasks/<step>/`.
    fn step_files(&mut self, step: &str) -> Result<(Vec<Input>, Script)> {
        let script_rel = format!("{step}.sh");
        let script_path = self.cfg.tasks_dir.join(&script_rel);
        let text = std::fs::read_to_string(&script_path).with_context(|| {
            format!(
                "cannot read the step script {}: restore it, or point tasks_dir at a folder that has {script_rel}",
                script_path.display()
            )
        })?;
        let script = Script::from_text(script_path, &text);
        let mut inputs = vec![self.file(&script_rel)?];
        let dir = self.cfg.tasks_dir.join(step);
        if dir.is_dir() {
            let ignore = ignored_files();
            let mut rels = Vec::new();
            for e in walkdir::WalkDir::new(&dir).sort_by_file_name() {
                let e = e?;
                if e.file_type().is_file() && !ignore.is_match(e.file_name()) {
                    let rel = e.path().strip_prefix(&self.cfg.tasks_dir)?;
                    rels.push(rel.to_string_lossy().into_owned());
                }
            }
            for rel in rels {
                inputs.push(self.file(&rel)?);
            }
        }
        Ok((inputs, script))
    }

    fn push(
        &mut self,
        id: TaskId,
        kind: Kind,
        deps: Vec<usize>,
        inputs: Vec<Input>,
        action: Action,
        script: Option<Script>,
    ) -> usize {
        self.tasks.push(TaskSpec {
            id,
            kind,
            deps,
            inputs,
            action,
            script,
        });
        self.tasks.len() - 1
    }

    fn image(&mut self, img: &Image) -> Result<usize> {
        let c = self.cfg;
        let mut prev: Option<usize> = None;
        for step in Step::ALL {
            let (mut inputs, script) = self.step_files(step.name())?;
            let k = |f: &str| format!("images.{}.{f}", img.name);
            match step {
                Step::Debootstrap => {
                    inputs.push(Self::value(k("suite"), &img.suite));
                    inputs.push(Self::value(k("arch"), &img.arch));
                    inputs.push(Self::value(k("mirror"), &img.mirror));
                    inputs.push(Self::value(k("bootstrapper"), &img.bootstrapper));
                    let tool = img.bootstrapper.as_str();
                    inputs.push(Self::value(format!("tool:{tool}"), &tool_version(tool)));
                }
                Step::Packages => {
                    inputs.push(Self::value(k("packages"), &img.packages));
                    inputs.push(Self::value(k("mirror"), &img.mirror));
                }
                Step::Configure => {
                    let files = match &img.files {
                        Some(dir) => scan_tree(dir, None)
                            .with_context(|| {
                                format!("cannot read the files tree {}", dir.display())
                            })?
                            .0
                            .fingerprint(),
                        None => Fingerprint([0; 32]),
                    };
                    inputs.push(Input {
                        name: k("files").into(),
                        hash: files,
                    });
                    inputs.push(Self::value(
                        k("root_password_hash"),
                        &img.root_password_hash,
                    ));
                    inputs.push(Self::value(
                        k("ssh_authorized_keys"),
                        &img.ssh_authorized_keys,
                    ));
                    inputs.push(Self::value(k("nis_domain"), &img.nis_domain));
                    inputs.push(Self::value("cluster.master", &c.cluster.master));
                    inputs.push(Self::value("cluster.network", &c.cluster.network));
                    inputs.push(Self::value("cluster.syslog", &c.cluster.syslog));
                }
                Step::Initramfs => {
                    inputs.push(Self::value(k("union"), &img.union));
                }
            }
            inputs.push(Self::value("staging", &crate::tasks::image::staging_mode()));
            let id = TaskId::new(step.kind(), Some(&img.name));
            let i = self.push(
                id,
                step.kind(),
                prev.into_iter().collect(),
                inputs,
                Action::ImageStep {
                    image: img.name.clone(),
                    step,
                },
                Some(script),
            );
            prev = Some(i);
        }
        let inputs = vec![
            Self::value("paths.nfs_root", &c.paths.nfs_root),
            Self::value("paths.tftp_root", &c.paths.tftp_root),
        ];
        Ok(self.push(
            TaskId::new(Kind::Publish, Some(&img.name)),
            Kind::Publish,
            prev.into_iter().collect(),
            inputs,
            Action::Publish {
                image: img.name.clone(),
            },
            None,
        ))
    }

    fn templates(&mut self, kind: Kind) -> Result<Vec<Input>> {
        templates_of(kind).iter().map(|t| self.file(t)).collect()
    }
}

/// A name shared by many inputs, stored once for the process: names come
/// from the Ddcfile's images and the tasks folder, so there are few.
fn intern(s: String) -> Cow<'static, str> {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().expect("names");
    if let Some(n) = names.get(s.as_str()) {
        return Cow::Borrowed(n);
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    names.insert(leaked);
    Cow::Borrowed(leaked)
}

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

/// The installed version of a Debian package, or "unknown".
pub fn tool_version(package: &str) -> String {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().expect("tool cache");
    cache
        .entry(package.to_string())
        .or_insert_with(|| {
            std::process::Command::new("dpkg-query")
                .args(["-W", "-f", "${Version}", package])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".to_string())
        })
        .clone()
}

/// Builds the graph for a config.
pub fn build(cfg: &Config) -> Result<Graph> {
    let mut b = Builder {
        cfg,
        tasks: Vec::new(),
        files: HashMap::new(),
    };
    let mut publish: BTreeMap<String, usize> = BTreeMap::new();
    for img in cfg.images.values() {
        let p = b.image(img)?;
        publish.insert(img.name.clone(), p);
    }
    let mut inputs = vec![Builder::value("paths.tftp_root", &cfg.paths.tftp_root)];
    for (rel, src) in boot::loader_files() {
        inputs.push(Input {
            name: format!("host:{}", src.path.display()).into(),
            hash: hash_file(Path::new(&src.path)).with_context(|| {
                format!(
                    "{} is missing on this master: install the Debian package {} (apt-get install {}) so that {rel} can be served",
                    src.path.display(),
                    src.package,
                    src.package
                )
            })?,
        });
    }
    let bootloader = b.push(
        TaskId::new(Kind::Bootloader, None),
        Kind::Bootloader,
        vec![],
        inputs,
        Action::Bootloader,
        None,
    );
    let pxe_templates = b.templates(Kind::Pxe)?;
    let common = [
        Builder::value("cluster.master", &cfg.cluster.master),
        Builder::value("paths.tftp_root", &cfg.paths.tftp_root),
    ];
    let image_cmdline: HashMap<&str, Input> = cfg
        .images
        .values()
        .map(|img| {
            (
                img.name.as_str(),
                Builder::value(format!("images.{}.cmdline", img.name), &img.cmdline),
            )
        })
        .collect();
    let pxe: Vec<TaskSpec> = {
        use rayon::prelude::*;
        cfg.nodes
            .par_iter()
            .enumerate()
            .map(|(i, n)| {
                let mut inputs = Vec::with_capacity(pxe_templates.len() + 7);
                inputs.extend(pxe_templates.iter().cloned());
                inputs.extend(common.iter().cloned());
                inputs.push(Builder::text("node.hostname", &n.hostname));
                inputs.push(Builder::text("node.mac", &n.mac));
                inputs.push(Builder::text("node.image", &n.image));
                inputs.push(Builder::text("node.cmdline", &n.cmdline));
                inputs.push(image_cmdline[n.image.as_str()].clone());
                TaskSpec {
                    id: TaskId::new(Kind::Pxe, Some(&n.hostname)),
                    kind: Kind::Pxe,
                    deps: vec![publish[&n.image], bootloader],
                    inputs,
                    action: Action::Pxe { node: i },
                    script: None,
                }
            })
            .collect()
    };
    b.tasks.extend(pxe);
    if let Some(image) = &cfg.server.default_entry {
        let img = &cfg.images[image];
        let mut inputs = pxe_templates.clone();
        inputs.extend(common.iter().cloned());
        inputs.push(Builder::value("server.default_entry", image));
        inputs.push(Builder::value(
            format!("images.{}.cmdline", img.name),
            &img.cmdline,
        ));
        b.push(
            TaskId::new(Kind::PxeDefault, None),
            Kind::PxeDefault,
            vec![publish[image], bootloader],
            inputs,
            Action::PxeDefault,
            None,
        );
    }
    let mut inputs = b.templates(Kind::Exports)?;
    inputs.push(Builder::value("cluster.network", &cfg.cluster.network));
    inputs.push(Builder::value("cluster.master", &cfg.cluster.master));
    inputs.push(Builder::value(
        "server.export_options",
        &cfg.server.export_options,
    ));
    inputs.push(Builder::value("paths.exports", &cfg.paths.exports));
    inputs.push(Builder::value("paths.ganesha", &cfg.paths.ganesha));
    b.push(
        TaskId::new(Kind::Exports, None),
        Kind::Exports,
        publish.values().copied().collect(),
        inputs,
        Action::Exports,
        None,
    );
    let mut inputs = b.templates(Kind::Dhcp)?;
    inputs.push(Builder::value("cluster", &cfg.cluster));
    inputs.push(Builder::value("server", &cfg.server));
    inputs.push(Builder::value("paths.dhcpd", &cfg.paths.dhcpd));
    inputs.push(Builder::value("paths.dnsmasq", &cfg.paths.dnsmasq));
    inputs.push(Builder::value("paths.tftp_root", &cfg.paths.tftp_root));
    inputs.push(Input {
        name: "nodes".into(),
        hash: nodes_fingerprint(cfg),
    });
    b.push(
        TaskId::new(Kind::Dhcp, None),
        Kind::Dhcp,
        vec![],
        inputs,
        Action::Dhcp,
        None,
    );
    if cfg.cluster.syslog {
        let mut inputs = b.templates(Kind::Rsyslog)?;
        inputs.push(Builder::value("cluster.network", &cfg.cluster.network));
        inputs.push(Builder::value("cluster.master", &cfg.cluster.master));
        inputs.push(Builder::value("paths.rsyslog", &cfg.paths.rsyslog));
        b.push(
            TaskId::new(Kind::Rsyslog, None),
            Kind::Rsyslog,
            vec![],
            inputs,
            Action::Rsyslog,
            None,
        );
    }
    let tasks = b.tasks;
    let mut dag = DiGraph::with_capacity(tasks.len(), tasks.len() * 2);
    let nodes: Vec<NodeIndex> = (0..tasks.len()).map(|i| dag.add_node(i)).collect();
    for (i, t) in tasks.iter().enumerate() {
        for &d in &t.deps {
            dag.add_edge(nodes[d], nodes[i], ());
        }
    }
    if petgraph::algo::is_cyclic_directed(&dag) {
        bail!("internal error: the task graph has a cycle");
    }
    let index = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.clone(), i))
        .collect();
    let mut is_dep = vec![false; tasks.len()];
    for t in &tasks {
        for &d in &t.deps {
            is_dep[d] = true;
        }
    }
    let dep_name = tasks
        .iter()
        .zip(is_dep)
        .map(|(t, dep)| {
            if dep {
                intern(format!("dep:{}", t.id))
            } else {
                Cow::Borrowed("")
            }
        })
        .collect();
    Ok(Graph {
        tasks,
        dep_name,
        index,
        dag,
    })
}

/// The fingerprint of what DHCP reads of the nodes, in Ddcfile order.
fn nodes_fingerprint(cfg: &Config) -> Fingerprint {
    let mut h = blake3::Hasher::new();
    for n in &cfg.nodes {
        h.update(n.hostname.as_bytes());
        h.update(b"\0");
        h.update(n.mac.as_bytes());
        h.update(b"\0");
        h.update(&n.ip.octets());
        h.update(n.image.as_bytes());
        h.update(b"\n");
    }
    Fingerprint(*h.finalize().as_bytes())
}

impl Graph {
    /// The tasks named by ids (`pxe:node01`) or kinds (`pxe`): what
    /// `ddc build`, `clean` and `rollback` accept.
    pub fn select(&self, names: &[String]) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for t in names {
            match self.index.get(&TaskId(t.clone())) {
                Some(&i) => out.push(i),
                None => {
                    let before = out.len();
                    out.extend((0..self.tasks.len()).filter(|&i| self.tasks[i].kind.name() == t));
                    if out.len() == before {
                        bail!(crate::error::NotStarted(format!(
                            "no task {t:?} in this build; `ddc graph` lists the tasks (ids look like packages:default or pxe:node01)"
                        )));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The named tasks and everything they need, as a mask over `tasks`.
    pub fn closure(&self, targets: &[String]) -> Result<Vec<bool>> {
        let mut want = vec![targets.is_empty(); self.tasks.len()];
        let mut stack = self.select(targets)?;
        while let Some(i) = stack.pop() {
            if !want[i] {
                want[i] = true;
                stack.extend(self.tasks[i].deps.iter().copied());
            }
        }
        Ok(want)
    }

    /// The tasks that depend, directly or not, on any of `roots` (included).
    pub fn dependents(&self, roots: &[usize]) -> Vec<bool> {
        let mut mark = vec![false; self.tasks.len()];
        let mut rdeps: Vec<Vec<usize>> = vec![Vec::new(); self.tasks.len()];
        for (i, t) in self.tasks.iter().enumerate() {
            for &d in &t.deps {
                rdeps[d].push(i);
            }
        }
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(i) = stack.pop() {
            if !mark[i] {
                mark[i] = true;
                stack.extend(rdeps[i].iter().copied());
            }
        }
        mark
    }
}

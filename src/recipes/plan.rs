//! The planner that recipes add their tasks to, with the helpers that turn
//! config values, files of the tasks folder and host tools into key inputs.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Kind, Script, Subject, TaskId, TaskSpec};
use crate::config::Config;
use crate::fingerprint::{hash_file, Fingerprint, Input};

/// Collects the tasks of a build, in a topological order.
pub(crate) struct Planner<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) tasks: Vec<TaskSpec>,
    /// Fingerprints of the tasks folder's files, each read once.
    files: HashMap<PathBuf, Fingerprint>,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(cfg: &'a Config) -> Self {
        Planner {
            cfg,
            tasks: Vec::new(),
            files: HashMap::new(),
        }
    }

    /// Adds a task; returns its index.
    pub(crate) fn push(&mut self, task: TaskSpec) -> usize {
        self.tasks.push(task);
        self.tasks.len() - 1
    }

    /// A task of the build, not of a node.
    pub(crate) fn task(
        kind: Kind,
        instance: Option<&str>,
        deps: Vec<usize>,
        inputs: Vec<Input>,
        subject: Subject,
    ) -> TaskSpec {
        TaskSpec {
            id: TaskId::new(kind, instance),
            kind,
            deps,
            inputs,
            subject,
            script: None,
        }
    }

    /// The index of a task planned before, by kind and instance.
    pub(crate) fn find(&self, kind: Kind, instance: Option<&str>) -> Option<usize> {
        let id = TaskId::new(kind, instance);
        self.tasks.iter().position(|t| t.id == id)
    }

    /// The `publish` task of each image, in image order.
    pub(crate) fn publish_tasks(&self) -> HashMap<&'a str, usize> {
        self.cfg
            .images
            .keys()
            .filter_map(|i| Some((i.as_str(), self.find(Kind::Publish, Some(i))?)))
            .collect()
    }

    /// A config value, hashed as canonical JSON.
    pub(crate) fn value<T: Serialize>(name: impl Into<Cow<'static, str>>, v: &T) -> Input {
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
    pub(crate) fn text(name: &'static str, v: &str) -> Input {
        Input {
            name: Cow::Borrowed(name),
            hash: Fingerprint::of(v.as_bytes()),
        }
    }

    /// Fingerprint of a file in the tasks folder, read once per build.
    pub(crate) fn file(&mut self, rel: &str) -> Result<Input> {
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

    /// The templates a kind renders, as inputs.
    pub(crate) fn templates(&mut self, kind: Kind) -> Result<Vec<Input>> {
        kind.recipe()
            .templates()
            .iter()
            .map(|t| self.file(t))
            .collect()
    }

    /// A step's script and every file in `tasks/<step>/`, as inputs.
    pub(crate) fn step_files(&mut self, step: &str) -> Result<(Vec<Input>, Script)> {
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
}

/// A name shared by many inputs, stored once for the process: names come
/// from the Ddcfile's images and the tasks folder, so there are few.
pub(crate) fn intern(s: String) -> Cow<'static, str> {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().expect("names");
    if let Some(n) = names.get(s.as_str()) {
        return Cow::Borrowed(n);
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    names.insert(leaked);
    Cow::Borrowed(leaked)
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

/// The installed version of a Debian package, or "unknown".
pub(crate) fn tool_version(package: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().expect("tools");
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

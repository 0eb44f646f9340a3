//! The planner that recipes add their tasks to, with the helpers that turn
//! config values, files of the tasks folder and host tools into key inputs.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use anyhow::Result;
use serde::Serialize;

use super::step::Staging;
use super::{Kind, Script, Subject, TaskId, TaskSpec};
use crate::config::Config;
use crate::fingerprint::{Fingerprint, Input};
use crate::tasks_dir::TasksDir;

/// Collects the tasks of a build, in a topological order.
pub(crate) struct Planner<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) tasks: Vec<TaskSpec>,
    /// The files of the tasks folder, built in or overridden.
    pub(crate) files: TasksDir,
    /// Their fingerprints, each computed once.
    hashes: HashMap<String, Fingerprint>,
    /// How image steps stage their trees (part of their keys).
    pub(crate) staging: Staging,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(cfg: &'a Config, staging: Staging) -> Result<Self> {
        Ok(Planner {
            cfg,
            tasks: Vec::new(),
            files: TasksDir::new(cfg.tasks_dir.as_deref())?,
            hashes: HashMap::new(),
            staging,
        })
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

    /// A file of the tasks folder (built in, or its override), as an input
    /// named `file:REL`: the bytes hashed are the bytes the task uses.
    pub(crate) fn file(&mut self, rel: &str) -> Result<Input> {
        let hash = match self.hashes.get(rel) {
            Some(h) => *h,
            None => {
                let f = self.files.get(rel)?;
                let h = Fingerprint::of(&f.bytes);
                self.hashes.insert(rel.to_string(), h);
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

    /// A step's script and every file in `tasks/<step>/`, as inputs, and
    /// the script with those files, as the step will run them.
    pub(crate) fn step_files(&mut self, step: &str) -> Result<(Vec<Input>, Script)> {
        let script_rel = format!("{step}.sh");
        let script = self.files.get(&script_rel)?;
        let mut inputs = vec![self.file(&script_rel)?];
        let mut files = vec![script.clone()];
        for rel in self.files.list(step)? {
            inputs.push(self.file(&rel)?);
            files.push(self.files.get(&rel)?);
        }
        let text = String::from_utf8_lossy(&script.bytes);
        Ok((inputs, Script::from_text(files, &text)))
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

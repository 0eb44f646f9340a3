//! Renders the templates of `tasks/templates/` (built in, or replaced by
//! `tasks_dir`) with minijinja.
//!
//! Templates are the bytes the keys hashed. Undefined variables are errors, so a
//! typo in an edited template fails its task instead of writing a config
//! with a hole in it. Every value placed in a context was validated by
//! `config`, so no newline, quote or path separator reaches a config file.

use anyhow::{Context, Result};
use minijinja::{Environment, UndefinedBehavior};

use crate::tasks_dir::TasksDir;

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Loads every `templates/*.j2` file, built in or from `tasks_dir`.
    pub(crate) fn load(files: &TasksDir) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        for name in files.list("templates")? {
            if !name.ends_with(".j2") {
                continue;
            }
            let f = files.get(&name)?;
            let text = String::from_utf8(f.bytes.to_vec())
                .with_context(|| format!("template {name} is not UTF-8"))?;
            env.add_template_owned(name.clone(), text)
                .with_context(|| format!("template {name} does not parse"))?;
        }
        Ok(Templates { env })
    }

    pub fn render<S: serde::Serialize>(&self, name: &str, ctx: S) -> Result<String> {
        self.render_sized(name, ctx, 0)
    }

    /// [`Self::render`] into room for `size` bytes made at once: a
    /// 10,000-host file grown by doubling touches twice its size in fresh
    /// memory.
    pub fn render_sized<S: serde::Serialize>(
        &self,
        name: &str,
        ctx: S,
        size: usize,
    ) -> Result<String> {
        let t = self
            .env
            .get_template(name)
            .with_context(|| format!("the template {name} is missing from the tasks folder"))?;
        let mut out = Vec::with_capacity(size);
        t.render_captured_to(ctx, &mut out)
            .map_err(|e| anyhow::anyhow!("{}", render_error(&e)))
            .with_context(|| format!("cannot render {name}"))?;
        String::from_utf8(out).with_context(|| format!("{name} rendered bytes that are not UTF-8"))
    }
}

fn render_error(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

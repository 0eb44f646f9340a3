//! Renders the templates in `tasks/templates/` with minijinja.
//!
//! Templates are read once per build. Undefined variables are errors, so a
//! typo in an edited template fails its task instead of writing a config
//! with a hole in it. Every value placed in a context was validated by
//! `config`, so no newline, quote or path separator reaches a config file.

use std::path::Path;

use anyhow::{Context, Result};
use minijinja::{Environment, UndefinedBehavior};

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Loads every `*.j2` file of `tasks_dir/templates`.
    pub fn load(tasks_dir: &Path) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        let dir = tasks_dir.join("templates");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "j2") {
                    let name = format!("templates/{}", e.file_name().to_string_lossy());
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))?;
                    env.add_template_owned(name, text)
                        .with_context(|| format!("template {} does not parse", p.display()))?;
                }
            }
        }
        Ok(Templates { env })
    }

    pub fn render<S: serde::Serialize>(&self, name: &str, ctx: S) -> Result<String> {
        let t = self
            .env
            .get_template(name)
            .with_context(|| format!("the template {name} is missing from the tasks folder"))?;
        t.render(ctx)
            .map_err(|e| anyhow::anyhow!("{}", render_error(&e)))
            .with_context(|| format!("cannot render {name}"))
    }
}

fn render_error(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

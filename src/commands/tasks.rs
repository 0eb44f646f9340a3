//! `ddc tasks`: lists the step scripts and templates with where each comes
//! from (built in, or the Ddcfile's `tasks_dir`); `--eject DIR` writes the
//! built-in files out for editing. Must not import `cli`.

use std::path::Path;

use crate::config;
use crate::error::{Error, NotStarted};
use crate::tasks_dir::{self, Origin, TasksDir};

pub(crate) fn run(file: &Path, eject: Option<&Path>) -> Result<(), Error> {
    if let Some(dir) = eject {
        let written = tasks_dir::eject(dir).map_err(|e| NotStarted(format!("{e:#}")))?;
        println!(
            "wrote {} files under {}: point tasks_dir at that folder to use them; a file deleted there is built in again",
            written.len(),
            dir.display()
        );
        return Ok(());
    }
    // Without a Ddcfile, the built-in files.
    let over = if file.exists() {
        config::load(file)?.tasks_dir
    } else {
        None
    };
    let files = TasksDir::new(over.as_deref()).map_err(|e| NotStarted(format!("{e:#}")))?;
    let rels = files.list("")?;
    let width = rels.iter().map(String::len).max().unwrap_or(0);
    for rel in rels {
        let from = match files.get(&rel)?.origin {
            Origin::BuiltIn => "built in".to_string(),
            Origin::Override(p) => p.display().to_string(),
        };
        println!("{rel:width$}  {from}");
    }
    Ok(())
}

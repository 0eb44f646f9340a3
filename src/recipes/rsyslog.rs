//! `rsyslog`: the master's rsyslog drop-in that receives the nodes' logs
//! (only with `cluster.syslog = true`); in place, or as the candidate that
//! `apply:rsyslog` checks and installs. It loads imudp unless the master's
//! own rsyslog config (`paths.rsyslog_main`) already does: rsyslog refuses
//! a second load, in either syntax.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::apply::{destination, staging, wiring, wiring_input, Daemon, Role};
use super::{Kind, Planner, Produced, Recipe, RunCtx, Subject, TaskSpec};
use crate::config::{Config, Image};
use crate::fsutil::atomic_write;

pub(crate) struct Rsyslog;

impl Recipe for Rsyslog {
    fn name(&self) -> &'static str {
        "rsyslog"
    }

    fn templates(&self) -> &'static [&'static str] {
        &["templates/rsyslog.conf.j2"]
    }

    fn plan(&self, p: &mut Planner, _image: Option<&Image>) -> Result<()> {
        let cfg = p.cfg;
        if !cfg.cluster.syslog {
            return Ok(());
        }
        let mut inputs = p.templates(Kind::Rsyslog)?;
        inputs.push(Planner::value("cluster.network", &cfg.cluster.network));
        inputs.push(Planner::value("cluster.master", &cfg.cluster.master));
        inputs.push(Planner::value("paths.rsyslog", &cfg.paths.rsyslog));
        inputs.push(staging(cfg, Daemon::Rsyslog));
        inputs.push(wiring_input(cfg, Daemon::Rsyslog));
        inputs.push(Planner::value(
            "paths.rsyslog_main",
            &cfg.paths.rsyslog_main,
        ));
        inputs.push(Planner::value(
            "rsyslog.imudp_loaded_by",
            &imudp_loaded_by(&cfg.paths.rsyslog_main, &cfg.paths.rsyslog),
        ));
        p.push(Planner::task(
            Kind::Rsyslog,
            None,
            vec![],
            inputs,
            Subject::Cluster,
        ));
        Ok(())
    }

    fn outputs(&self, _task: &TaskSpec, cfg: &Config) -> Vec<std::path::PathBuf> {
        vec![destination(cfg, Role::Rsyslog)]
    }

    fn run(&self, _task: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
        run_rsyslog(ctx)
    }
}

fn run_rsyslog(ctx: &mut RunCtx) -> Result<Produced> {
    let cfg = ctx.cfg;
    let data = serde_json::json!({
        "network": cfg.cluster.network.to_string(),
        "master": cfg.cluster.master.to_string(),
        "ddcfile": cfg.file.display().to_string(),
        "wiring": wiring(cfg, Role::Rsyslog),
        "imudp_loaded_by": imudp_loaded_by(&cfg.paths.rsyslog_main, &cfg.paths.rsyslog),
        "rsyslog_main": cfg.paths.rsyslog_main.display().to_string(),
    });
    let text = ctx.templates.render("templates/rsyslog.conf.j2", &data)?;
    let path = destination(cfg, Role::Rsyslog);
    atomic_write(&path, text.as_bytes(), true)?;
    Ok(Produced {
        files: vec![path],
        ..Default::default()
    })
}

/// Where the master's rsyslog config loads imudp, if it does: its main file
/// (`main`) or a file it includes, ddc's own drop-in (`own`) aside. rsyslog
/// refuses a module loaded twice (`module 'imudp' already in this config`,
/// whether by `module(load=…)` or `$ModLoad`, measured with rsyslogd -N1),
/// so the drop-in loads it only when nothing else does.
fn imudp_loaded_by(main: &Path, own: &Path) -> Option<String> {
    let own = std::fs::canonicalize(own).unwrap_or_else(|_| own.to_path_buf());
    let mut todo = vec![main.to_path_buf()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(f) = todo.pop() {
        let real = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
        if real == own || !seen.insert(real) || seen.len() > 256 {
            continue;
        }
        // A config of the master's: a few KiB; more is not one.
        let Ok(text) = std::fs::read(&f).map(|b| String::from_utf8_lossy(&b).into_owned()) else {
            continue;
        };
        let mut code = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let lower = line.to_ascii_lowercase();
            let words: Vec<&str> = lower.split_whitespace().collect();
            match words.as_slice() {
                ["$modload", m, ..] if m.trim_end_matches(".so") == "imudp" => {
                    return Some(f.display().to_string())
                }
                ["$includeconfig", pattern, ..] => todo.extend(included(pattern)),
                _ => {}
            }
            code.extend(line.chars().filter(|c| !c.is_whitespace()));
        }
        if code.contains("module(load=\"imudp\"") {
            return Some(f.display().to_string());
        }
        for part in code.split("include(").skip(1) {
            if let Some(pattern) = part
                .strip_prefix("file=\"")
                .and_then(|p| p.split('"').next())
            {
                todo.extend(included(pattern));
            }
        }
    }
    None
}

/// The files an include names: a path, or a glob in its last part.
fn included(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return vec![];
    };
    let Ok(glob) = globset::Glob::new(&name.to_string_lossy()).map(|g| g.compile_matcher()) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| glob.is_match(e.file_name()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imudp_is_found_in_the_main_config_or_what_it_includes() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("rsyslog.conf");
        let dropins = d.path().join("rsyslog.d");
        std::fs::create_dir(&dropins).unwrap();
        let own = dropins.join("ddc.conf");
        std::fs::write(&own, "module(load=\"imudp\")\n").unwrap();
        let include = format!("$IncludeConfig {}/*.conf\n", dropins.display());
        std::fs::write(
            &main,
            format!("module(load=\"imuxsock\")\n#module(load=\"imudp\")\n{include}"),
        )
        .unwrap();
        assert_eq!(imudp_loaded_by(&main, &own), None);
        std::fs::write(&main, format!("module(\n  load=\"imudp\"\n)\n{include}")).unwrap();
        assert_eq!(
            imudp_loaded_by(&main, &own),
            Some(main.display().to_string())
        );
        std::fs::write(&main, "$ModLoad imudp\n").unwrap();
        assert_eq!(
            imudp_loaded_by(&main, &own),
            Some(main.display().to_string())
        );
        let other = dropins.join("remote.conf");
        std::fs::write(&other, "$ModLoad imudp.so\n").unwrap();
        std::fs::write(
            &main,
            format!("include(file=\"{}/*.conf\")\n", dropins.display()),
        )
        .unwrap();
        assert_eq!(
            imudp_loaded_by(&main, &own),
            Some(other.display().to_string())
        );
        assert_eq!(imudp_loaded_by(&d.path().join("none"), &own), None);
    }
}

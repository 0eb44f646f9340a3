//! `rsyslog`: the master's rsyslog drop-in that receives the nodes' logs
//! (only with `cluster.syslog = true`); in place, or as the candidate that
//! `apply:rsyslog` checks and installs.

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
    });
    let text = ctx.templates.render("templates/rsyslog.conf.j2", &data)?;
    let path = destination(cfg, Role::Rsyslog);
    atomic_write(&path, text.as_bytes(), true)?;
    Ok(Produced {
        files: vec![path],
        ..Default::default()
    })
}

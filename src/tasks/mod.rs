//! The actions behind each task kind.

pub mod boot;
pub mod image;
pub mod server;

use anyhow::Result;

use crate::task::{Action, Produced, RunCtx, TaskSpec};

/// Runs a task's action.
pub fn run(spec: &TaskSpec, ctx: &mut RunCtx) -> Result<Produced> {
    match &spec.action {
        Action::ImageStep { image, step } => image::run_step(ctx, spec, image, *step),
        Action::Publish { image } => image::run_publish(ctx, image),
        Action::Bootloader => boot::run_bootloader(ctx),
        Action::Pxe { node } => boot::run_pxe(ctx, Some(*node)),
        Action::PxeDefault => boot::run_pxe(ctx, None),
        Action::Exports => server::run_exports(ctx),
        Action::Dhcp => server::run_dhcp(ctx),
        Action::Rsyslog => server::run_rsyslog(ctx),
    }
}

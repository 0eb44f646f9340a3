//! ddc builds and keeps up to date everything a diskless Debian cluster
//! boots from, as a DAG of tasks cached by the blake3 hash of their inputs.

pub mod build;
pub mod cache;
pub mod chroot;
mod cli;
mod commands;
pub mod config;
mod error;
pub mod fingerprint;
pub mod fsutil;
pub mod generations;
pub mod graph;
pub mod inventory;
pub mod process;
mod render;
pub mod reporter;
pub mod scheduler;
pub mod secrets;
pub mod task;
pub mod tasks;
pub mod template;

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = match cli::parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DDC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    match cli::dispatch(cli) {
        Ok(()) => error::SUCCESS,
        Err(e) => e.report(),
    }
}

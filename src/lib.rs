//! ddc builds and keeps up to date everything a diskless Debian cluster
//! boots from, as a DAG of tasks cached by the blake3 hash of their inputs.

mod cache;
pub mod chroot;
mod cli;
mod commands;
mod config;
mod docs;
mod engine;
mod error;
mod fingerprint;
pub mod fsutil;
mod generations;
mod graph;
mod hostnet;
mod process;
mod recipes;
mod render;
mod reporter;
mod scheduler;
mod secrets;
mod tasks_dir;
mod template;

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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    match cli::dispatch(cli) {
        Ok(()) => error::SUCCESS,
        Err(e) => e.report(),
    }
}

//! ddc builds and keeps up to date everything a diskless Debian cluster
//! boots from, as a DAG of tasks cached by the blake3 hash of their inputs.

pub mod build;
pub mod cache;
pub mod chroot;
pub mod clean;
pub mod cli;
pub mod config;
pub mod exit;
pub mod fingerprint;
pub mod fsutil;
pub mod generations;
pub mod graph;
pub mod process;
pub mod render;
pub mod reporter;
pub mod scheduler;
pub mod secrets;
pub mod task;
pub mod tasks;
pub mod template;

use clap::Parser;

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DDC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    match cli::main(cli) {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}

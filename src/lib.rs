//! ddc builds and keeps up to date everything a diskless Debian cluster
//! boots from, as a DAG of tasks cached by the blake3 hash of their inputs.

mod bmc;
mod cache;
pub mod chroot;
mod cli;
mod commands;
mod config;
mod docs;
mod engine;
mod epoch;
mod error;
mod fingerprint;
pub mod fsutil;
mod generations;
mod graph;
mod hostnet;
mod manifest;
mod names;
mod nodestate;
mod process;
mod recipes;
mod render;
mod reporter;
mod rollout;
mod scheduler;
mod secrets;
mod serve;
mod tasks_dir;
mod template;

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    // Every file and folder ddc creates gets an explicit mode (fsutil); the
    // steps' scripts create the image with this umask, whatever the
    // caller's (which no task key includes).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let cli = match cli::parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DDC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(|| QuietStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Asked-for logs (DDC_LOG) carry the time since start, which is what
    // finding where a build's milliseconds go needs; warnings do not.
    if std::env::var_os("DDC_LOG").is_some() {
        logs.with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        logs.without_time().init();
    }
    match cli::dispatch(cli) {
        Ok(()) => error::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Standard error for log lines that never fails: with the terminal gone
/// (SIGHUP after a dropped SSH connection), ddc must still stop its steps,
/// unmount and exit, not panic on a write.
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

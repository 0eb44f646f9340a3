//! `ddc serve`: loads the config and hands it to `crate::serve`, which runs
//! the node-facing HTTP service in the foreground. Must not import `cli`.

use std::net::SocketAddrV4;
use std::path::Path;

use crate::config;
use crate::error::Error;

/// Runs the service until SIGTERM or SIGINT.
pub(crate) fn run(file: &Path, listen: Option<SocketAddrV4>) -> Result<(), Error> {
    // No transparent huge pages for this long-lived process: mimalloc asks
    // for them, and each thread's heap then holds 2 MiB pages it barely
    // uses (the serve bench's peak RSS: 142 MiB with them, 60 MiB without).
    // A build, short-lived, keeps them: zeroing fewer, larger pages is
    // faster there. Best effort: an old kernel only costs memory.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cfg = config::load(file)?;
    crate::serve::run(file, cfg, listen)?;
    Ok(())
}

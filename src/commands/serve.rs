//! `ddc serve`: loads the config and hands it to `crate::serve`, which runs
//! the node-facing HTTP service in the foreground. Must not import `cli`.

use std::net::SocketAddrV4;
use std::path::Path;

use crate::config;
use crate::error::Error;

/// Runs the service until SIGTERM or SIGINT.
pub(crate) fn run(file: &Path, listen: Option<SocketAddrV4>) -> Result<(), Error> {
    let cfg = config::load(file)?;
    crate::serve::run(file, cfg, listen)?;
    Ok(())
}

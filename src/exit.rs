//! Exit codes, and the one place errors become them.
//!
//! 0: success. 1: a task failed. 2: bad config or usage, or the build could
//! not start (a missing tool, no root). 130: interrupted (SIGINT, SIGTERM,
//! SIGHUP); what finished is recorded.

use crate::config::ConfigErrors;

pub const SUCCESS: i32 = 0;
pub const FAILED: i32 = 1;
pub const USAGE: i32 = 2;

/// Prints an error with its whole chain and returns its exit code.
pub fn report(e: &anyhow::Error) -> i32 {
    if let Some(c) = e.downcast_ref::<ConfigErrors>() {
        for line in c.to_string().lines() {
            eprintln!("error: {line}");
        }
        return USAGE;
    }
    if let Some(n) = e.downcast_ref::<NotStarted>() {
        for line in n.to_string().lines() {
            eprintln!("error: {line}");
        }
        return USAGE;
    }
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    FAILED
}

/// The work could not start (a missing tool, no root, an unknown task or
/// generation): exit code 2, like bad config.
#[derive(Debug)]
pub struct NotStarted(pub String);

impl std::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotStarted {}

//! Exit codes, and the typed errors that decide them: the one place an error
//! becomes lines on stderr and a process exit code.
//!
//! 0: success. 1: a task failed. 2: bad config or usage, or the build could
//! not start (a missing tool, no root). 130: interrupted (SIGINT, SIGTERM,
//! SIGHUP); what finished is recorded. Commands return [`Error`]; what must
//! exit with 2 is a [`NotStarted`] or [`ConfigErrors`] from where it is
//! raised on, and any other `anyhow` error is a failure (1). This module imports only
//! `config` (for [`ConfigErrors`]); it must not import `cli` or `commands`.

use std::fmt;
use std::io::Write;

use crate::config::ConfigErrors;

pub(crate) const SUCCESS: i32 = 0;
pub(crate) const FAILED: i32 = 1;
pub(crate) const USAGE: i32 = 2;
pub(crate) const INTERRUPTED: i32 = 130;

/// Why a command did not succeed; each variant has its exit code.
#[derive(Debug)]
pub(crate) enum Error {
    /// The Ddcfile is wrong (2): one `error:` line per problem.
    Config(ConfigErrors),
    /// The work could not start (2): one `error:` line per problem.
    NotStarted(NotStarted),
    /// A task failed (1); the reporter has already said which.
    TasksFailed,
    /// A signal stopped the build (130); the reporter has already said so.
    Interrupted,
    /// A check found differences (1); the command has printed them.
    Differs,
    /// Some nodes failed (`ddc power`) (1); the command has printed which.
    NodesFailed,
    /// Anything else (1), printed with its whole chain.
    Failed(anyhow::Error),
}

impl Error {
    /// Prints the error (with its whole chain) on stderr and returns its exit code.
    pub(crate) fn report(&self) -> i32 {
        match self {
            Error::Config(c) => {
                error_lines(&c.to_string());
                USAGE
            }
            Error::NotStarted(n) => {
                error_lines(&n.0);
                USAGE
            }
            Error::TasksFailed | Error::Differs | Error::NodesFailed => FAILED,
            Error::Interrupted => INTERRUPTED,
            Error::Failed(e) => {
                let _ = writeln!(std::io::stderr(), "error: {e}");
                for cause in e.chain().skip(1) {
                    let _ = writeln!(std::io::stderr(), "  caused by: {cause}");
                }
                FAILED
            }
        }
    }
}

fn error_lines(text: &str) {
    for line in text.lines() {
        let _ = writeln!(std::io::stderr(), "error: {line}");
    }
}

impl From<ConfigErrors> for Error {
    fn from(e: ConfigErrors) -> Error {
        Error::Config(e)
    }
}

impl From<NotStarted> for Error {
    fn from(e: NotStarted) -> Error {
        Error::NotStarted(e)
    }
}

/// Any other error: a task or the host failed (exit code 1). Whatever must
/// exit with 2 is a [`NotStarted`] or [`ConfigErrors`] from its source on.
impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        Error::Failed(e)
    }
}

/// The work could not start (a missing tool, no root, an unknown task or
/// generation): exit code 2, like bad config.
#[derive(Debug)]
pub(crate) struct NotStarted(pub(crate) String);

impl fmt::Display for NotStarted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotStarted {}

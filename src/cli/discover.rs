//! `ddc discover`'s arguments, and the call they make.

use clap::Args;

use crate::commands;
use crate::error::Error;

/// `ddc discover`'s arguments.
#[derive(Args)]
pub(crate) struct Discover {
    /// Hostnames for the listed machines, in order of first seen: names,
    /// or ranges like 'node{03..10}' or 'node[03-10]'.
    #[arg(long, value_name = "NAMES", num_args = 1..)]
    add: Vec<String>,
    /// The image of the rows added (default: the image named default,
    /// or the only one); IMG@GEN pins a generation.
    #[arg(long, value_name = "IMG", requires = "add")]
    image: Option<String>,
    /// With --add: print what would be assigned; write nothing.
    #[arg(short = 'n', long, requires = "add")]
    dry_run: bool,
    /// One JSON object per machine (per row added with --add) per line.
    #[arg(long)]
    json: bool,
}

impl Discover {
    pub(super) fn run(self, file: &std::path::Path) -> Result<(), Error> {
        commands::discover::run(
            file,
            commands::discover::Options {
                add: self.add,
                image: self.image,
                dry_run: self.dry_run,
                json: self.json,
            },
        )
    }
}

//! The command line: clap definitions, and dispatch to `commands`, one
//! function per subcommand. Owns parsing and nothing else: no command's
//! work happens here. May import `commands`, `docs` (the man page and
//! completions made from these definitions), `error` and `render` (for the
//! graph format); nothing else.

use std::path::PathBuf;

mod discover;
use discover::Discover;
mod rollout;
use rollout::Rollout;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::error::{self, Error};
use crate::render;

#[derive(Parser)]
#[command(
    name = "ddc",
    version,
    about = "Builds and keeps up to date everything a diskless Debian cluster boots from",
    long_about = "Builds and keeps up to date everything a diskless Debian cluster boots from: \
the worker root file system (exported read-only over NFS), its initramfs, the PXE \
entries, the NFS exports and the DHCP configs, as a graph of tasks cached by the hash \
of their inputs, all from one file, Ddcfile.toml. `ddc init` writes one for this \
master; `ddc build -n` shows what would run and why; `sudo ddc build` builds."
)]
pub(crate) struct Cli {
    /// The Ddcfile to use.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "Ddcfile.toml"
    )]
    pub(crate) file: PathBuf,
    /// Before the command (`ddc -v build`): as the command's own -v.
    #[arg(short, long, hide = true)]
    pub(crate) verbose: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Build everything, or the named tasks (or task kinds) and what they need.
    Build {
        /// Task ids (packages:default, pxe:node01) or kinds (pxe).
        tasks: Vec<String>,
        /// Print what would run and why; run nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// One JSON object per task per line on stdout.
        #[arg(long)]
        json: bool,
        /// How many heavy tasks run at once (default: the core count).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Let independent tasks finish after a failure.
        #[arg(short, long)]
        keep_going: bool,
        /// Fail instead of waiting when another ddc holds the cache.
        #[arg(long)]
        no_wait: bool,
        /// Re-hash the image layers and published generations in depth (a
        /// normal build trusts their roots: ddc writes them once).
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        verbose: Verbose,
    },
    /// Show the task graph and each task's state against the cache.
    Graph {
        /// text (one line per task), dot (Graphviz) or json.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List each image's generations: age, size, which nodes boot them;
    /// images no longer in the Ddcfile are listed as retired.
    Generations {
        /// Only this image (a retired one too).
        image: Option<String>,
        /// One JSON object per generation per line (image, id, current,
        /// pinned_by, nodes, created, size).
        #[arg(long)]
        json: bool,
    },
    /// List the nodes, sorted by hostname: MAC, IP, image, the generation
    /// each boots, its boot entry and where it is defined.
    Nodes {
        /// Only the nodes of this image.
        #[arg(long, value_name = "IMG")]
        image: Option<String>,
        /// One JSON object per node per line.
        #[arg(long)]
        json: bool,
    },
    /// Show a node's effective settings, each with where it comes from, its
    /// boot entry as built and its DHCP lines.
    Show {
        /// The node's hostname.
        node: String,
    },
    /// Add, change or remove nodes in the nodes_file CSV (in place, every
    /// other line kept as it is; validated before it is written).
    #[command(subcommand)]
    Node(NodeCommand),
    /// List the machines that asked `ddc serve` for an iPXE script but are
    /// not in the inventory, first seen first; --add gives them hostnames
    /// and free addresses, in rows appended to the nodes_file CSV.
    Discover(Discover),
    /// Make an earlier generation current (the previous one by default) and
    /// rewrite the boot entries; nothing is rebuilt.
    Rollback(Switch),
    /// Re-hash published generations against their manifests (default: the
    /// current one of each image) and name what changed; exit 1 if anything did.
    Verify {
        /// The image (a name under [images]); none is every image.
        image: Option<String>,
        /// Its name, number or hash prefix.
        generation: Option<String>,
    },
    /// What changed between two generations: packages, then files (default:
    /// the one before the current against the current).
    Diff {
        /// The image (a name under [images]).
        image: String,
        /// The older generation: its name, number or hash prefix (default:
        /// the one before the current).
        from: Option<String>,
        /// The newer generation (default: the current one).
        to: Option<String>,
        /// The differences as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Make the newest (or named) generation current again after a rollback,
    /// and rewrite the boot entries; nothing is rebuilt. Builds do not make
    /// a rolled-back-from generation current until it is rolled forward.
    /// `ddc rollback IMG latest` does the same as `ddc rollforward IMG`.
    Rollforward(Switch),
    /// Delete old generations (never the current one, a pinned one, or one a
    /// boot entry points at) and what retired images (no longer in the
    /// Ddcfile) left: their generations and cache layers; rewrite the
    /// exports without them.
    Gc {
        /// How many of the newest generations of each image to keep.
        #[arg(long, default_value_t = 2)]
        keep: usize,
        /// Show what would be deleted.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Fail instead of waiting when another ddc holds the cache.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        verbose: Verbose,
        /// Delete generations that nodes report running too, and name the
        /// nodes whose root goes (the current, pinned and entry-referenced
        /// ones are still kept).
        #[arg(long)]
        force: bool,
    },
    /// Run the node-facing HTTP service in the foreground: the TFTP root's
    /// files (iPXE scripts, kernels, initrds), the nodes' reports, machines
    /// not in the inventory. Stops on SIGTERM or SIGINT.
    Serve {
        /// Listen here instead of [server] http (default MASTER:8080).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddrV4>,
    },
    /// Each node's state (never seen, booting, up, silent), the generation
    /// it runs and the one its entry points at, from the node-state database.
    Status {
        /// Only these nodes.
        nodes: Vec<String>,
        /// One JSON object per node per line.
        #[arg(long)]
        json: bool,
        /// Move the node-state database aside (when it is corrupt) so that
        /// `ddc serve` starts an empty one; stop `ddc serve` first.
        #[arg(long)]
        reset_db: bool,
    },
    /// Forget the cache (all, or the named tasks and their dependents).
    Clean {
        /// Task ids or kinds; none is all.
        tasks: Vec<String>,
        /// Fail instead of waiting when another ddc holds the cache.
        #[arg(long)]
        no_wait: bool,
    },
    /// Write a commented Ddcfile.toml for this master and an example
    /// nodes.csv into DIR (never overwrites).
    Init {
        /// The cluster's folder, made if missing.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print the completion script of a shell (bash: save it as
    /// /usr/share/bash-completion/completions/ddc).
    Completions {
        /// bash, zsh or fish.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page, ddc(1), in roff (man -l <(ddc man) shows it).
    Man,
    /// Power nodes on or off, power-cycle or reset them, or ask their power
    /// state, through their BMCs (IPMI over LAN with ipmitool; see [power]
    /// in the Ddcfile). Prints a table of the results; exit 1 if any failed.
    Power(PowerArgs),
    /// Reboot the nodes whose running generation (from `ddc serve`'s
    /// reports) differs from their entry's: canaries first, then in
    /// batches, each through its BMC or over ssh, waiting for every node
    /// of a batch to report up on its new generation before the next;
    /// stops at a batch with more than --max-failed failures (exit 1).
    Rollout(Rollout),
    /// List the step scripts and templates and where each comes from
    /// (built in, or the Ddcfile's tasks_dir, whose files replace them).
    Tasks {
        /// Write the built-in files into DIR for editing (never overwrites).
        #[arg(long, value_name = "DIR")]
        eject: Option<PathBuf>,
    },
}

/// `ddc node add|set|rm`.
#[derive(Subcommand)]
pub(crate) enum NodeCommand {
    /// Add a row for a new node (or a range, like 'node[03-52]', whose MAC
    /// and IP count up) at the end of the CSV.
    Add {
        /// Its hostname, or a range.
        host: String,
        /// Its MAC address (the first of a range).
        #[arg(long)]
        mac: String,
        /// Its IPv4 address (the first of a range).
        #[arg(long)]
        ip: String,
        /// Its image (default: the image named default, or the only one);
        /// IMG@GEN pins a generation.
        #[arg(long, value_name = "IMG")]
        image: Option<String>,
        /// Kernel arguments added to the image's.
        #[arg(long, allow_hyphen_values = true)]
        cmdline: Option<String>,
    },
    /// Change a node's row: KEY=VALUE for any column (hostname, mac, ip,
    /// image, cmdline); KEY= clears an optional one.
    Set {
        /// Its hostname (or a range row's, like 'node[03-52]').
        host: String,
        /// The changes, KEY=VALUE each.
        #[arg(required = true, value_name = "KEY=VALUE", allow_hyphen_values = true)]
        changes: Vec<String>,
    },
    /// Remove nodes' rows.
    Rm {
        /// Their hostnames (or a range row's, like 'node[03-52]').
        #[arg(required = true)]
        hosts: Vec<String>,
    },
}

impl NodeCommand {
    fn run(self, file: &std::path::Path) -> Result<(), Error> {
        use commands::node::Edit;
        let edit = match self {
            NodeCommand::Add {
                host,
                mac,
                ip,
                image,
                cmdline,
            } => {
                let mut v = vec![("mac".to_string(), mac), ("ip".to_string(), ip)];
                v.extend(image.map(|i| ("image".to_string(), i)));
                v.extend(cmdline.map(|c| ("cmdline".to_string(), c)));
                Edit::Add(host, v)
            }
            NodeCommand::Set { host, changes } => Edit::Set(host, changes),
            NodeCommand::Rm { hosts } => Edit::Rm(hosts),
        };
        commands::node::run(file, edit)
    }
}

/// The arguments of `ddc power`.
#[derive(Args)]
#[command(
    override_usage = "ddc power [OPTIONS] <ACTION> <NODE...|--all|--image IMG|--generation G>"
)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true)
    .args(["nodes", "all", "image", "generation"])))]
pub(crate) struct PowerArgs {
    /// on, off, cycle (off, then on), reset (hard reset) or status.
    #[arg(value_enum)]
    action: PowerAction,
    /// The nodes, by hostname.
    #[arg(conflicts_with_all = ["all", "image", "generation"])]
    nodes: Vec<String>,
    /// Every node.
    #[arg(long, conflicts_with_all = ["image", "generation"])]
    all: bool,
    /// The nodes of this image (pinned ones too).
    #[arg(long, value_name = "IMG")]
    image: Option<String>,
    /// The nodes whose boot entry points at this generation (its name,
    /// number or hash prefix; with --image when several images have it).
    #[arg(long, value_name = "G")]
    generation: Option<String>,
    /// Print the command each node would run; run nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// One JSON object per node per line on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PowerAction {
    On,
    Off,
    Cycle,
    Reset,
    Status,
}

impl PowerArgs {
    fn run(self, file: &std::path::Path) -> Result<(), Error> {
        use commands::power::Action;
        let action = match self.action {
            PowerAction::On => Action::On,
            PowerAction::Off => Action::Off,
            PowerAction::Cycle => Action::Cycle,
            PowerAction::Reset => Action::Reset,
            PowerAction::Status => Action::Status,
        };
        commands::power::run(
            file,
            commands::power::Options {
                action,
                nodes: self.nodes,
                all: self.all,
                image: self.image,
                generation: self.generation,
                dry_run: self.dry_run,
                json: self.json,
            },
        )
    }
}

/// The shells ddc writes completions for.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `-v`, on the commands that print tasks (a build, and the commands that
/// rewrite boot entries or exports through one).
#[derive(Args)]
pub(crate) struct Verbose {
    /// Print every task: cached ones too, and each node's task on a line
    /// of its own instead of one line per kind.
    #[arg(short, long)]
    verbose: bool,
}

/// The arguments of `rollback` and `rollforward`.
#[derive(Args)]
pub(crate) struct Switch {
    /// The image (a name under [images]).
    image: String,
    /// Its name, number or hash prefix (`ddc generations` lists them);
    /// `latest` is the newest.
    generation: Option<String>,
    /// One JSON object per task per line on stdout.
    #[arg(long)]
    json: bool,
    /// Fail instead of waiting when another ddc holds the cache.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    verbose: Verbose,
}

impl Switch {
    fn run(self, file: &std::path::Path, verbose: bool, forward: bool) -> Result<(), Error> {
        let verbose = verbose || self.verbose.verbose;
        commands::rollback::run(
            file,
            commands::rollback::Options {
                image: self.image,
                generation: self.generation,
                json: self.json,
                no_wait: self.no_wait,
                verbose,
                forward,
            },
        )
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Text,
    Dot,
    Json,
}

impl From<Format> for render::Format {
    fn from(f: Format) -> render::Format {
        match f {
            Format::Text => render::Format::Text,
            Format::Dot => render::Format::Dot,
            Format::Json => render::Format::Json,
        }
    }
}

/// Parses the command line. On `--help`, `--version` or a usage error clap
/// has printed, returns the exit code instead.
pub(crate) fn parse() -> Result<Cli, i32> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            error::USAGE
        } else {
            error::SUCCESS
        }
    })
}

/// Runs the subcommand `cli` names.
pub(crate) fn dispatch(cli: Cli) -> Result<(), Error> {
    let file = cli.file.as_path();
    let verbose = cli.verbose;
    match cli.command {
        Command::Build {
            tasks,
            dry_run,
            json,
            jobs,
            keep_going,
            no_wait,
            verify,
            verbose: v,
        } => commands::build::run(
            file,
            commands::build::Options {
                tasks,
                dry_run,
                verify,
                json,
                jobs,
                keep_going,
                no_wait,
                verbose: verbose || v.verbose,
            },
        ),
        Command::Graph { format } => commands::graph::run(file, format.into()),
        Command::Generations { image, json } => {
            commands::generations::run(file, image.as_deref(), json)
        }
        Command::Nodes { image, json } => commands::nodes::list(file, image.as_deref(), json),
        Command::Show { node } => commands::node_show::show(file, &node),
        Command::Node(c) => c.run(file),
        Command::Discover(d) => d.run(file),
        Command::Rollback(s) => s.run(file, verbose, false),
        Command::Verify { image, generation } => {
            commands::verify::run(file, image.as_deref(), generation.as_deref())
        }
        Command::Diff {
            image,
            from,
            to,
            json,
        } => commands::diff::run(
            file,
            commands::diff::Options {
                image,
                from,
                to,
                json,
            },
        ),
        Command::Rollforward(s) => s.run(file, verbose, true),
        Command::Gc {
            keep,
            dry_run,
            no_wait,
            verbose: v,
            force,
        } => commands::gc::run(
            file,
            commands::gc::Options {
                keep,
                dry_run,
                no_wait,
                verbose: verbose || v.verbose,
                force,
            },
        ),
        Command::Serve { listen } => commands::serve::run(file, listen),
        Command::Status {
            nodes,
            json,
            reset_db,
        } => commands::status::run(
            file,
            commands::status::Options {
                nodes,
                json,
                reset_db,
            },
        ),
        Command::Clean { tasks, no_wait } => commands::clean::run(file, &tasks, no_wait),
        Command::Init { dir } => commands::init::run(&dir),
        Command::Completions { shell } => {
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            crate::docs::completions(Cli::command(), shell, &mut std::io::stdout());
            Ok(())
        }
        Command::Man => crate::docs::man(Cli::command(), &mut std::io::stdout())
            .map_err(|e| Error::Failed(anyhow::anyhow!("cannot write the man page: {e}"))),
        Command::Tasks { eject } => commands::tasks::run(file, eject.as_deref()),
        Command::Power(p) => p.run(file),
        Command::Rollout(r) => r.run(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag and argument of every command says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "ddc", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    /// `-v` is offered where it changes what is printed, and only there.
    #[test]
    fn verbose_only_where_it_does_something() {
        let cmd = Cli::command();
        let with: Vec<&str> = cmd
            .get_subcommands()
            .filter(|s| s.get_arguments().any(|a| a.get_id() == "verbose"))
            .map(|s| s.get_name())
            .collect();
        assert_eq!(with, ["build", "rollback", "rollforward", "gc"]);
        // Before the command, as earlier versions took it.
        assert!(Cli::try_parse_from(["ddc", "-v", "build"]).is_ok());
        assert!(Cli::try_parse_from(["ddc", "graph", "-v"]).is_err());
    }
}

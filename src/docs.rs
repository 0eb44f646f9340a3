//! The man page and the shell completions, generated from the clap
//! definitions `cli` hands over (`clap::Command`), so they never disagree
//! with the command line. Imports nothing of ddc.

use std::io::Write;

use roff::{bold, roman, Roff};

/// Writes the completion script of `shell` for the command line `cmd`.
pub(crate) fn completions(
    mut cmd: clap::Command,
    shell: clap_complete::Shell,
    out: &mut dyn Write,
) {
    clap_complete::generate(shell, &mut cmd, "ddc", out);
}

/// Sections clap does not describe, as (heading, paragraphs).
const EXTRA: &[(&str, &[&str])] = &[
    (
        "EXIT STATUS",
        &[
            "0: success.",
            "1: a task failed; its log path and last lines are printed, the whole log is in cache/logs/TASK.log.",
            "1 (ddc power): a node failed; the table says which and why.",
            "2: bad config or usage, or the build cannot start (not root, missing programs or files: all are named, with one apt-get install line).",
            "130: interrupted by SIGINT, SIGTERM or SIGHUP; finished tasks are kept.",
        ],
    ),
    (
        "FILES",
        &[
            "Ddcfile.toml: the cluster (ddc init writes one); relative paths start from its folder.",
            "cache/: the records, logs, image layers and package cache of that Ddcfile.",
            "out/: the outputs, unless [paths] points them elsewhere (/srv/tftp, /etc/exports.d, ...).",
            "tasks_dir: files that replace the built-in step scripts and templates (ddc tasks --eject DIR writes them out).",
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            "PATH: where the host programs are looked up, by the preflight and by the steps, which get it as their PATH.",
            "DDC_LOG: log filter (warn, debug, ...). DDC_STAGING=copy: copy image trees instead of overlay layers.",
            "http_proxy, https_proxy, no_proxy, HOME: passed to the steps.",
        ],
    ),
];

/// Writes ddc(1): the command, its global options, every subcommand with
/// its options, exit status, files and environment.
pub(crate) fn man(cmd: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let mut page = Vec::new();
    write_man(cmd, &mut page)?;
    // Each rendered piece starts with the same two-line preamble: keep one.
    let text = String::from_utf8_lossy(&page);
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        if !line.starts_with(".ie \\n(.g") && !line.starts_with(".el .ds Aq") || seen.insert(line) {
            writeln!(w, "{line}")?;
        }
    }
    Ok(())
}

fn write_man(cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = cmd.disable_help_subcommand(true);
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    Roff::new().control("SH", ["COMMANDS"]).to_writer(out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("ddc {}", sub.get_name());
        let usage = sub.clone().bin_name(&name).render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ").to_string();
        let mut r = Roff::new();
        r.control("SS", [usage.as_str()]);
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            r.text([roman(about.to_string())]);
        }
        r.to_writer(out)?;
        if sub
            .get_arguments()
            .any(|a| !a.is_hide_set() && !a.is_global_set())
        {
            let mut opts = Vec::new();
            clap_mangen::Man::new(sub.clone().disable_help_flag(true))
                .render_options_section(&mut opts)?;
            // Its entries, under this command's heading rather than a section.
            let text = String::from_utf8_lossy(&opts);
            let body: String = text
                .lines()
                .filter(|l| !l.starts_with(".SH"))
                .map(|l| format!("{l}\n"))
                .collect();
            out.write_all(body.as_bytes())?;
        }
    }
    for (heading, paragraphs) in EXTRA {
        let mut r = Roff::new();
        r.control("SH", [*heading]);
        for p in *paragraphs {
            r.control("PP", []).text([roman(*p)]);
        }
        r.to_writer(out)?;
    }
    let mut r = Roff::new();
    r.control("SH", ["SEE ALSO"])
        .text([bold("mmdebstrap"), roman("(1), "), bold("debootstrap")])
        .text([
            roman("(8), "),
            bold("exports"),
            roman("(5), "),
            bold("dnsmasq"),
        ])
        .text([roman("(8), "), bold("dhcpd.conf"), roman("(5)")]);
    r.to_writer(out)?;
    page.render_version_section(out)
}

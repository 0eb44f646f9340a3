//! `ddc node add|set|rm`: edits the `nodes_file` CSV in place (every other
//! row, comment, blank line and line ending kept byte for byte: see
//! `config::edit`), validates the whole config with the edit applied, and
//! only then writes the file, atomically, its mode and owner kept. A node
//! of a `[[nodes]]` table is the Ddcfile's: it is named, never edited.
//! Must not import `cli`.

use std::path::Path;

use super::nodes::did_you_mean;
use crate::cache::Lock;
use crate::config::{self, edit::Inventory, Config};
use crate::error::{Error, NotStarted};
use crate::fsutil;

/// What to do to the inventory.
pub(crate) enum Edit {
    /// A new row: the hostname, then `(column, value)` pairs.
    Add(String, Vec<(String, String)>),
    /// New values for a node's row: `KEY=VALUE` each.
    Set(String, Vec<String>),
    /// Rows to remove.
    Rm(Vec<String>),
}

fn refuse(msg: String) -> Error {
    NotStarted(msg).into()
}

/// Runs an edit of the inventory of the Ddcfile at `file`.
pub(crate) fn run(file: &Path, edit: Edit) -> Result<(), Error> {
    let Some(said) = apply(file, edit)? else {
        return Ok(());
    };
    for s in said {
        println!("{s}");
    }
    println!("run `ddc build` to write the boot entries and DHCP configs (`ddc build -n` shows what would run)");
    Ok(())
}

/// Applies an edit of the inventory of the Ddcfile at `file`, and returns
/// what changed, a line each (None, having said so, when nothing did).
/// `ddc rollout` pins nodes back through it.
pub(crate) fn apply(file: &Path, edit: Edit) -> Result<Option<Vec<String>>, Error> {
    let cfg = config::load(file)?;
    let Some(csv) = cfg.nodes_file.clone() else {
        return Err(refuse(format!(
            "{} names no nodes_file: `ddc node` edits the CSV inventory, and [[nodes]] tables are edited by hand. \
To keep nodes in a CSV, add nodes_file = \"nodes.csv\" at the top of {} (before any [table]) and create nodes.csv with the header row {}",
            file.display(),
            file.display(),
            config::columns::names()
        )));
    };
    let shown = fsutil::shown(&csv, &cfg.base_dir);
    let _lock = lock_inventory(&cfg)?;
    // A link is followed to the file it names, which is the one edited.
    let real = std::fs::canonicalize(&csv).unwrap_or_else(|_| csv.clone());
    let bytes = std::fs::read(&real).map_err(|e| refuse(format!("cannot read {shown}: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|_| refuse(format!("{shown} is not UTF-8 text")))?;
    let mut inv = Inventory::parse(&text).map_err(|e| refuse(format!("{shown}: {e}")))?;
    let mut said = Vec::new();
    match edit {
        Edit::Add(host, values) => add(&cfg, &mut inv, &shown, &host, &values, &mut said)?,
        Edit::Set(host, pairs) => set(&cfg, &mut inv, &shown, &host, &pairs, &mut said)?,
        Edit::Rm(hosts) => {
            let mut rows = Vec::new();
            for h in &hosts {
                let row = row_of(&cfg, &inv, &shown, h)?;
                said.push(format!(
                    "{shown}: removed row {}: {}",
                    row.line,
                    inv.row_text(row.index)
                ));
                rows.push(row.index);
            }
            rows.sort_unstable();
            rows.dedup();
            for r in rows.into_iter().rev() {
                inv.remove(r);
            }
        }
    }
    let new = inv.text();
    if new == text {
        println!("{shown}: nothing changed");
        return Ok(None);
    }
    check_and_write(file, &real, &shown, &text, new)?;
    Ok(Some(
        inv.said
            .iter()
            .map(|s| format!("{shown}: {s}"))
            .chain(said)
            .collect(),
    ))
}

/// Takes the inventory lock (`cache/inventory.lock`), held from reading
/// the CSV to writing it: two edits at once wait for one another instead of
/// one losing the other's rows.
pub(crate) fn lock_inventory(cfg: &Config) -> Result<Lock, Error> {
    Lock::inventory(&crate::engine::cache_dirs(cfg), &|s| eprintln!("{s}"))
}

/// Validates the config with `new` as the inventory, then writes it, if
/// the file still holds `old`: an edit made meanwhile by hand (an editor
/// does not take ddc's lock) is never overwritten.
pub(crate) fn check_and_write(
    file: &Path,
    real: &Path,
    shown: &str,
    old: &str,
    new: String,
) -> Result<(), Error> {
    if let Err(errors) = config::check_with_inventory(file, new.clone().into_bytes()) {
        return Err(refuse(format!(
            "{errors}\nthe edit would leave the config invalid: {shown} is unchanged"
        )));
    }
    if std::fs::read(real).ok().as_deref() != Some(old.as_bytes()) {
        return Err(refuse(format!(
            "{shown} changed while ddc was editing it (another editor saved it): nothing written; run the command again"
        )));
    }
    fsutil::replace_keeping(real, new.as_bytes())
        .map_err(|e| Error::Failed(e.context(format!("cannot write {shown}"))))
}

/// Where `host` is defined, if not in the inventory: an error naming it.
fn defined_elsewhere(cfg: &Config, host: &str) -> Option<Error> {
    let i = cfg
        .nodes
        .iter()
        .position(|n| n.hostname.eq_ignore_ascii_case(host))?;
    let o = &cfg.node_origins[i];
    if o.csv {
        return None;
    }
    Some(refuse(format!(
        "node {host:?} is defined in {} (a [[nodes]] table): `ddc node` edits only the nodes_file CSV; edit it there, or move it to the CSV",
        o.shown(cfg)
    )))
}

/// The inventory row of `host`: a row that names it, or a range's row
/// when `host` is written as that range (`node[03-52]`).
fn row_of(
    cfg: &Config,
    inv: &Inventory,
    shown: &str,
    host: &str,
) -> Result<config::edit::Row, Error> {
    if let Some(e) = defined_elsewhere(cfg, host) {
        return Err(e);
    }
    if let Some(r) = inv.find(host) {
        return Ok(r);
    }
    let counted = cfg
        .nodes
        .iter()
        .zip(&cfg.node_origins)
        .find(|(n, o)| o.csv && o.range.is_some() && n.hostname.eq_ignore_ascii_case(host));
    if let Some((_, o)) = counted {
        return Err(refuse(format!(
            "node {host:?} is one of the range {} ({}): edit or remove the whole range by that name, or split the row",
            o.range.as_deref().unwrap_or_default(),
            o.shown(cfg)
        )));
    }
    let names = inv
        .rows()
        .into_iter()
        .map(|r| r.hostname)
        .collect::<Vec<_>>();
    Err(refuse(format!(
        "no node {host:?} in {shown}{} (`ddc nodes` lists them)",
        did_you_mean(host, names.iter().map(String::as_str))
    )))
}

fn add(
    cfg: &Config,
    inv: &mut Inventory,
    shown: &str,
    host: &str,
    values: &[(String, String)],
    said: &mut Vec<String>,
) -> Result<(), Error> {
    if let Some(e) = defined_elsewhere(cfg, host) {
        return Err(e);
    }
    if let Some(i) = cfg
        .nodes
        .iter()
        .position(|n| n.hostname.eq_ignore_ascii_case(host))
    {
        return Err(refuse(format!(
            "node {host:?} is already in {}: change it with `ddc node set {host} KEY=VALUE`",
            cfg.node_origins[i].shown(cfg)
        )));
    }
    let mut all: Vec<(&str, &str)> = vec![("hostname", host)];
    all.extend(values.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let line = inv.add(&all).map_err(refuse)?;
    let index = inv.rows().last().map(|r| r.index).unwrap_or_default();
    said.push(format!(
        "{shown}: added row {line}: {}",
        inv.row_text(index)
    ));
    Ok(())
}

fn set(
    cfg: &Config,
    inv: &mut Inventory,
    shown: &str,
    host: &str,
    pairs: &[String],
    said: &mut Vec<String>,
) -> Result<(), Error> {
    let row = row_of(cfg, inv, shown, host)?;
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            refuse(format!(
                "{pair:?} is not KEY=VALUE (like image=gpu, or cmdline= to clear it)"
            ))
        })?;
        let old = inv.set(row.index, key.trim(), value).map_err(refuse)?;
        let old = if old.is_empty() {
            "(none)".to_string()
        } else {
            old
        };
        let new = if value.is_empty() { "(none)" } else { value };
        said.push(format!(
            "{shown} row {}: {host}: {}: {old} -> {new}",
            row.line,
            key.trim()
        ));
    }
    Ok(())
}

//! `ddc nodes` and `ddc show NODE`: the nodes of the validated config, each
//! with the generation it boots, its boot entry and where it was given;
//! `show` adds each effective setting's origin, the entry as built and the
//! DHCP lines the dhcp task renders for it. Read only: any user who can
//! read the folder may run them. Must not import `cli`.

use std::collections::HashMap;
use std::path::Path;

use crate::config::{self, Config, Node};
use crate::error::{Error, NotStarted};
use crate::fsutil;
use crate::generations;
use crate::names::natural_cmp;
use crate::recipes;

/// `; did you mean "node05"?` when one of `names` is close to `name`.
pub(crate) fn did_you_mean<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> String {
    let best = names
        .map(|n| {
            (
                strsim::levenshtein(&name.to_ascii_lowercase(), &n.to_ascii_lowercase()),
                n,
            )
        })
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, n)) if d <= (name.len() / 3).max(2) => format!("; did you mean {n:?}?"),
        _ => String::new(),
    }
}

/// The node called `name` (any case), or the error that says there is none.
pub(crate) fn find_node(cfg: &Config, name: &str) -> Result<usize, Error> {
    cfg.nodes
        .iter()
        .position(|n| n.hostname.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            NotStarted(format!(
                "no node {name:?}{} (`ddc nodes` lists them)",
                did_you_mean(name, cfg.nodes.iter().map(|n| n.hostname.as_str()))
            ))
            .into()
        })
}

/// The generation each node boots, as `ddc nodes` shows it.
struct Boots {
    /// The generation's name, if there is one.
    name: Option<String>,
    /// How it was chosen: `current`, `pinned`, or what is missing.
    how: &'static str,
}

/// Finds the generations nodes boot, reading each image's folder once.
struct Generations<'a> {
    cfg: &'a Config,
    current: HashMap<String, Option<String>>,
    lists: HashMap<String, Vec<generations::Generation>>,
}

impl<'a> Generations<'a> {
    fn new(cfg: &'a Config) -> Self {
        Generations {
            cfg,
            current: HashMap::new(),
            lists: HashMap::new(),
        }
    }

    fn of(&mut self, n: &Node) -> Boots {
        let root = &self.cfg.paths.nfs_root;
        match &n.pin {
            Some(pin) => {
                let gens = self
                    .lists
                    .entry(n.image.clone())
                    .or_insert_with(|| generations::list(root, &n.image));
                match generations::resolve(gens, pin) {
                    Some(g) => Boots {
                        name: Some(g.name.clone()),
                        how: "pinned",
                    },
                    None => Boots {
                        name: None,
                        how: "pinned, not published",
                    },
                }
            }
            None => {
                let name = self
                    .current
                    .entry(n.image.clone())
                    .or_insert_with(|| generations::current(root, &n.image))
                    .clone();
                let how = if name.is_some() {
                    "current"
                } else {
                    "not built yet"
                };
                Boots { name, how }
            }
        }
    }
}

/// The path of a node's boot entry, shown from the Ddcfile's folder.
fn entry_shown(cfg: &Config, n: &Node) -> String {
    fsutil::shown(&recipes::node_entry(cfg, n), &cfg.base_dir)
}

/// `ddc nodes [--image IMG] [--json]`.
pub(crate) fn list(file: &Path, image: Option<&str>, json: bool) -> Result<(), Error> {
    let cfg = config::load(file)?;
    if let Some(i) = image {
        if !cfg.images.contains_key(i) {
            return Err(NotStarted(format!(
                "no image {i:?} in the Ddcfile{}; images: {}",
                did_you_mean(i, cfg.images.keys().map(String::as_str)),
                cfg.images.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
            .into());
        }
    }
    let mut order: Vec<usize> = (0..cfg.nodes.len())
        .filter(|&i| image.is_none_or(|img| cfg.nodes[i].image == img))
        .collect();
    order.sort_by(|&a, &b| natural_cmp(&cfg.nodes[a].hostname, &cfg.nodes[b].hostname));
    let mut gens = Generations::new(&cfg);
    let mut rows: Vec<[String; 7]> = Vec::with_capacity(order.len() + 1);
    rows.push(
        [
            "hostname",
            "mac",
            "ip",
            "image",
            "generation",
            "entry",
            "defined",
        ]
        .map(String::from),
    );
    let mut out = String::new();
    for i in order {
        let n = &cfg.nodes[i];
        let boots = gens.of(n);
        let origin = &cfg.node_origins[i];
        if json {
            let v = serde_json::json!({
                "hostname": n.hostname,
                "mac": n.mac,
                "ip": n.ip.to_string(),
                "image": n.image,
                "generation": boots.name,
                "pin": n.pin,
                "entry": entry_shown(&cfg, n),
                "defined": origin.shown(&cfg),
                "range": origin.range,
                "bmc": n.bmc.as_ref().map(|b| b.to_string()),
            });
            out.push_str(&format!("{v}\n"));
            continue;
        }
        let generation = match (&boots.name, &n.pin) {
            (Some(g), None) => g.clone(),
            (Some(g), Some(_)) => format!("{g} (pinned)"),
            (None, Some(p)) => format!("@{p} ({})", boots.how),
            (None, None) => format!("- ({})", boots.how),
        };
        rows.push([
            n.hostname.clone(),
            n.mac.clone(),
            n.ip.to_string(),
            n.image.clone(),
            generation,
            entry_shown(&cfg, n),
            origin.shown(&cfg),
        ]);
    }
    if !json {
        out = aligned(&rows);
    }
    print!("{out}");
    Ok(())
}

/// Rows as columns two spaces apart, the last one unpadded.
fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

/// The generation a node boots, and how `ddc show` says it.
pub(crate) fn boots(cfg: &Config, n: &Node) -> (Option<String>, String) {
    let b = Generations::new(cfg).of(n);
    let shown = match &b.name {
        Some(g) => format!("{g} ({})", b.how),
        None => format!("- ({})", b.how),
    };
    (b.name, shown)
}

/// Rows as aligned columns (for `ddc show`).
pub(crate) fn aligned_rows(rows: &[[String; 3]]) -> String {
    aligned(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested() {
        let names = ["node05", "node06", "gpu01"];
        assert_eq!(
            did_you_mean("nod05", names.into_iter()),
            "; did you mean \"node05\"?"
        );
        assert_eq!(did_you_mean("zzzzzz", names.into_iter()), "");
    }
}

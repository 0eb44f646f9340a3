//! `ddc diff IMG [GEN_A] [GEN_B]`: what changed between two generations of an
//! image, from their manifests: packages added, removed or upgraded, then
//! files changed, added or removed. By default the one before the current
//! against the current. `--json` for one object. Must not import `cli`.

use std::path::Path;

use serde_json::json;

use crate::error::{Error, NotStarted};
use crate::generations;
use crate::manifest::{diff_packages, diff_trees, Manifest};

use super::{load, Loaded};

/// The options of `ddc diff`.
pub(crate) struct Options {
    pub(crate) image: String,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) json: bool,
}

pub(crate) fn run(file: &Path, o: Options) -> Result<(), Error> {
    let Loaded { cfg, .. } = load(file)?;
    let nfs = &cfg.paths.nfs_root;
    let image = o.image.as_str();
    let gens = generations::list(nfs, image);
    let current = generations::current(nfs, image);
    let pick = |spec: Option<&String>, default: Option<String>, which: &str| {
        match spec {
            Some(s) => generations::resolve(&gens, s).map(|g| g.name.clone()),
            None => default,
        }
        .ok_or_else(|| {
            NotStarted(match spec {
                Some(s) => format!(
                    "{image} has no generation {s:?} (or it is ambiguous); `ddc generations {image}` lists them"
                ),
                None => format!(
                    "{image} has no {which} generation to compare; `ddc generations {image}` lists them"
                ),
            })
        })
    };
    let to = pick(o.to.as_ref(), current.clone(), "current")?;
    let before =
        generations::rollback_target(&gens, Some(to.as_str()), None).map(|g| g.name.clone());
    let from = pick(o.from.as_ref(), before, "earlier")?;
    let load_one = |g: &str| {
        Manifest::load(&nfs.join(image).join(g)).map_err(|e| NotStarted(format!("{e:#}")))
    };
    let (a, b) = (load_one(&from)?, load_one(&to)?);
    let packages = diff_packages(&a.packages, &b.packages);
    let files = diff_trees(&a.tree, &b.tree);
    if o.json {
        let v =
            json!({"image": image, "from": from, "to": to, "packages": packages, "files": files});
        println!("{v}");
        return Ok(());
    }
    println!("{image}: {from} -> {to}");
    for p in &packages.added {
        println!("  + {} {} ({})", p.name, p.version, p.arch);
    }
    for p in &packages.removed {
        println!("  - {} {} ({})", p.name, p.version, p.arch);
    }
    for (name, a, b) in &packages.upgraded {
        println!("  ~ {name} {a} -> {b}");
    }
    let counts = format!(
        "files: {} changed, {} added, {} removed",
        files.changed.len(),
        files.added.len(),
        files.removed.len()
    );
    println!("  {counts}");
    for (word, paths) in [
        ("changed", &files.changed),
        ("added", &files.added),
        ("removed", &files.removed),
    ] {
        for p in paths {
            println!("    {word:<8} /{p}");
        }
    }
    Ok(())
}

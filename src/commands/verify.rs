//! `ddc verify [IMG] [GEN]`: re-hashes published generations against their
//! manifests and names every path changed, added or removed (a hand edit in
//! the NFS root, a disk fault). By default the current generation of each
//! image. Exit 1 if anything differs. Must not import `cli`.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, NotStarted};
use crate::fingerprint::scan_tree;
use crate::generations;
use crate::manifest::{diff_trees, Manifest};

pub(crate) fn run(file: &Path, image: Option<&str>, generation: Option<&str>) -> Result<(), Error> {
    // The config only: no task graph, records or tool versions to gather.
    let cfg = crate::config::load(file)?;
    let mut differs = false;
    for (image, gen) in chosen(&cfg, image, generation)? {
        let root = cfg.paths.nfs_root.join(&image).join(&gen);
        let manifest = Manifest::load(&root).map_err(|e| NotStarted(format!("{e:#}")))?;
        // Every file re-read (no stat stamp trusted), in parallel; the
        // packages are not listed again: the files of dpkg's database are.
        let (now, _) = scan_tree(&root, None)?;
        let d = diff_trees(&manifest.tree, &now);
        if d.is_empty() {
            println!("{image}/{gen}: as published ({} paths)", now.entries.len());
            continue;
        }
        differs = true;
        println!("{image}/{gen}: differs from its manifest");
        for (word, paths) in [
            ("changed", &d.changed),
            ("added", &d.added),
            ("removed", &d.removed),
        ] {
            for p in paths {
                println!("  {word:<8} /{p}");
            }
        }
    }
    if differs {
        Err(Error::Differs)
    } else {
        Ok(())
    }
}

/// (image, generation) pairs to check.
fn chosen(
    cfg: &Config,
    image: Option<&str>,
    generation: Option<&str>,
) -> Result<Vec<(String, String)>, Error> {
    let nfs = &cfg.paths.nfs_root;
    let images: Vec<String> = match image {
        Some(i) => vec![i.to_string()],
        None => generations::published_images(nfs),
    };
    let mut out = Vec::new();
    for image in images {
        let gens = generations::list(nfs, &image);
        let gen = match generation {
            Some(spec) => generations::resolve(&gens, spec).map(|g| g.name.clone()),
            None => generations::current(nfs, &image),
        };
        let Some(gen) = gen else {
            return Err(NotStarted(format!(
                "{image} has no generation {}; `ddc generations {image}` lists them",
                generation.map_or("current".to_string(), |g| format!("{g:?}"))
            ))
            .into());
        };
        out.push((image, gen));
    }
    Ok(out)
}

//! `ddc generations`: lists each image's generations (age, size, which nodes
//! boot them), as text or one JSON object per generation. The listing
//! itself is `crate::generations`. Must not import `cli`.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, NotStarted};
use crate::generations as gens;
use crate::names::natural_cmp;

use super::{load, Loaded};

/// Prints the generations of `image`, or of every image.
pub(crate) fn run(file: &Path, image: Option<&str>, json: bool) -> Result<(), Error> {
    let Loaded { cfg, .. } = load(file)?;
    let layers = crate::engine::cache_dirs(&cfg).root.join("images");
    let retired = gens::retired(&cfg, &layers);
    if json {
        print!("{}", report_json(&cfg, image, &retired)?);
    } else {
        print!("{}", gens::report(&cfg, image, &retired)?);
    }
    Ok(())
}

/// One JSON object per generation per line: image, id, current,
/// pinned_by, nodes (every one whose entry boots it), created, size, and
/// whether the image is retired (no longer in the Ddcfile).
fn report_json(cfg: &Config, only: Option<&str>, retired: &[String]) -> Result<String, Error> {
    let known = |i: &str| cfg.images.contains_key(i) || retired.iter().any(|r| r == i);
    if let Some(i) = only.filter(|i| !known(i)) {
        return Err(NotStarted(format!(
            "no image {i:?} in the Ddcfile{}; images: {}",
            super::nodes::did_you_mean(i, cfg.images.keys().map(String::as_str)),
            cfg.images.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    let entries = gens::entries_by_generation(cfg);
    let names = gens::hostnames(cfg);
    let mut out = String::new();
    let images = cfg.images.keys().chain(retired);
    for image in images.filter(|i| only.is_none_or(|o| o == *i)) {
        let list = gens::list(&cfg.paths.nfs_root, image);
        let current = gens::current(&cfg.paths.nfs_root, image);
        let refused = gens::rolled_back(&cfg.paths.nfs_root, image);
        let sizes = gens::sizes(&cfg.paths.nfs_root, image, &list);
        for (g, size) in list.iter().zip(sizes) {
            let mut nodes: Vec<String> = entries
                .get(&(image.clone(), g.name.clone()))
                .map(|v| {
                    v.iter()
                        .map(|f| names.get(f).unwrap_or(f).clone())
                        .collect()
                })
                .unwrap_or_default();
            nodes.sort_by(|a, b| natural_cmp(a, b));
            let mut pinned_by: Vec<&str> = cfg
                .nodes
                .iter()
                .filter(|n| &n.image == image)
                .filter(|n| n.pin.as_deref().and_then(|p| gens::resolve(&list, p)) == Some(g))
                .map(|n| n.hostname.as_str())
                .collect();
            pinned_by.sort_by(|a, b| natural_cmp(a, b));
            let created = gens::published_at(&cfg.paths.nfs_root.join(image).join(&g.name))
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| iso8601(d.as_secs() as i64));
            let v = serde_json::json!({
                "image": image,
                "id": g.name,
                "seq": g.seq,
                "current": current.as_deref() == Some(g.name.as_str()),
                "rolled_back_from": refused.contains(gens::content(&g.name)),
                "pinned_by": pinned_by,
                "nodes": nodes,
                "created": created,
                "size": size,
                "retired": retired.contains(image),
            });
            out.push_str(&format!("{v}\n"));
        }
    }
    Ok(out)
}

/// A Unix time as `2026-11-27T22:00:00Z`.
fn iso8601(secs: i64) -> String {
    crate::nodestate::rfc3339(secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso8601(1_795_737_600), "2026-11-27T00:00:00Z");
        assert_eq!(super::iso8601(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    }
}

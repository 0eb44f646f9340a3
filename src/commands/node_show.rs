//! The text of `ddc show NODE`: the node's effective settings, each with
//! where it comes from (the node's own line or row, its image, the
//! cluster), the boot entry as built, and the DHCP lines the dhcp task
//! renders for it (its own code and templates). Must not import `cli`.

use anyhow::Result;

use super::nodes::{aligned_rows, boots, find_node};
use crate::config::{kernel_append, Config};
use crate::fsutil;
use crate::recipes;
use crate::tasks_dir::TasksDir;
use crate::template::Templates;

/// What `ddc show` prints for node `i`.
/// `ddc show NODE`.
pub(crate) fn show(file: &std::path::Path, name: &str) -> Result<(), crate::error::Error> {
    let cfg = crate::config::load(file)?;
    let i = find_node(&cfg, name)?;
    let text = text(&cfg, i).map_err(crate::error::Error::Failed)?;
    print!("{text}");
    Ok(())
}

pub(crate) fn text(cfg: &Config, i: usize) -> Result<String> {
    let n = &cfg.nodes[i];
    let o = &cfg.node_origins[i];
    let img = &cfg.images[&n.image];
    let at = o.shown(cfg);
    let own = match &o.range {
        Some(r) => format!("node ({at}, range {r})"),
        None => format!("node ({at})"),
    };
    let image_default = format!("image default ([images.{}])", n.image);
    let cluster = |key: &str| format!("cluster default ({key})");
    let mut rows: Vec<[String; 3]> = vec![
        ["hostname".into(), n.hostname.clone(), own.clone()],
        ["mac".into(), n.mac.clone(), own.clone()],
        ["ip".into(), n.ip.to_string(), own.clone()],
    ];
    let image_from = if o.image_given {
        own.clone()
    } else {
        "cluster default (the node names no image)".into()
    };
    rows.push(["image".into(), n.image.clone(), image_from]);
    let (generation, boots) = boots(cfg, n);
    let boots_from = match &n.pin {
        Some(p) => format!("node: pinned @{p} ({at})"),
        None => format!("{image_default}: its current generation"),
    };
    rows.push(["generation".into(), boots, boots_from]);
    for (key, value) in [
        ("suite", img.suite.clone()),
        ("arch", img.arch.clone()),
        ("union", img.union.as_str().to_string()),
        ("cmdline", img.cmdline.clone()),
    ] {
        rows.push([key.into(), value, image_default.clone()]);
    }
    if !n.cmdline.is_empty() {
        rows.push([
            "cmdline".into(),
            n.cmdline.clone(),
            format!("{own}, after the image's"),
        ]);
    }
    if let Some(b) = &n.bmc {
        rows.push(["bmc".into(), b.to_string(), own.clone()]);
    }
    rows.push([
        "boot".into(),
        serde_json::to_value(n.boot)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        "the node's, else its image's, else the cluster's".into(),
    ]);
    rows.push([
        "master".into(),
        cfg.cluster.master.to_string(),
        cluster("[cluster] master"),
    ]);
    let root = cfg
        .paths
        .nfs_root
        .join(&n.image)
        .join(generation.as_deref().unwrap_or("GENERATION"));
    let root = root.display().to_string();
    rows.push(["nfs root".into(), root.clone(), cluster("[paths] nfs_root")]);
    let append = kernel_append(cfg.cluster.master, &root, &img.cmdline, &n.cmdline);
    let mut out = format!("{}\n", n.hostname);
    for line in aligned_rows(&rows).lines() {
        out.push_str(&format!("  {}\n", line.trim_end()));
    }
    out.push_str(&format!("\nkernel line (from the above):\n  {append}\n"));
    let entry = recipes::node_entry(cfg, n);
    out.push_str(&format!(
        "\nboot entry {}:\n",
        fsutil::shown(&entry, &cfg.base_dir)
    ));
    match std::fs::read_to_string(&entry) {
        Ok(t) => out.extend(t.lines().map(|l| format!("  {l}\n"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.push_str("  not built yet (`ddc build` writes it)\n")
        }
        Err(e) => out.push_str(&format!("  cannot read it: {e}\n")),
    }
    let templates = Templates::load(&TasksDir::new(cfg.tasks_dir.as_deref())?)?;
    for (path, lines) in recipes::node_lines(cfg, &templates, n)? {
        out.push_str(&format!(
            "\nDHCP, {}:\n",
            fsutil::shown(&path, &cfg.base_dir)
        ));
        out.extend(lines.lines().map(|l| format!("  {l}\n")));
    }
    Ok(out)
}

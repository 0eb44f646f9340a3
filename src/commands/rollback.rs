//! `ddc rollback` and `ddc rollforward`: make an earlier generation of an
//! image current (the previous one by default), or a later one again (the
//! newest by default), under the cache lock, then rewrite that image's boot
//! entries; nothing is rebuilt. A rollback is a recorded decision: builds do
//! not make the content rolled back from current until it is rolled forward.
//! Which generation is `crate::generations`'s to say. Must not import `cli`.

use std::path::Path;

use crate::config::Config;
use crate::engine::BuildOptions;
use crate::error::{Error, NotStarted};
use crate::generations;

use super::{load, run_build, Loaded, Run};

/// The options of `ddc rollback`.
pub(crate) struct Options {
    pub(crate) image: String,
    /// Its name, number or hash prefix; none is the one before the current
    /// (`latest`: the newest, as `rollforward`).
    pub(crate) generation: Option<String>,
    pub(crate) json: bool,
    pub(crate) no_wait: bool,
    pub(crate) verbose: bool,
    /// `ddc rollforward`: to the newest generation by default.
    pub(crate) forward: bool,
}

pub(crate) fn run(file: &Path, mut o: Options) -> Result<(), Error> {
    // `ddc rollback IMG latest` is `ddc rollforward IMG`.
    if o.generation.as_deref() == Some("latest") {
        o.generation = None;
        o.forward = true;
    }
    let Loaded { cfg, graph, .. } = load(file)?;
    let image = o.image.as_str();
    if !cfg.images.contains_key(image) {
        return Err(NotStarted(format!(
            "no image {image:?} in the Ddcfile{} (images: {})",
            crate::config::did_you_mean(image, cfg.images.keys().map(String::as_str)),
            cfg.images.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    // Only the boot entries of this image run; nothing is rebuilt.
    let opts = BuildOptions {
        targets: boot_entries(&cfg, image),
        dry_run: false,
        jobs: 1,
        keep_going: true,
        no_deps: true,
        verify: false,
        cutoff: None,
    };
    let nfs_root = &cfg.paths.nfs_root;
    let spec = o.generation.as_deref();
    let switch = |say: &dyn Fn(String)| switch(nfs_root, image, spec, o.forward, say);
    let run = Run {
        json: o.json,
        verbose: o.verbose,
        no_wait: o.no_wait,
        state: None,
        before: &switch,
    };
    run_build(&cfg, &graph, &opts, run)
}

/// The boot entry tasks of the nodes booting `image` (pinned ones excepted),
/// and the default entry if it boots `image`.
fn boot_entries(cfg: &Config, image: &str) -> Vec<String> {
    let mut targets: Vec<String> = cfg
        .nodes
        .iter()
        .filter(|n| n.image == image && n.pin.is_none())
        .map(|n| format!("pxe:{}", n.hostname))
        .collect();
    if cfg.server.default_entry.as_deref() == Some(image) {
        targets.push("pxe-default".into());
    }
    targets
}

/// Makes the generation `spec` names (or the one before the current) current.
fn switch(
    nfs_root: &Path,
    image: &str,
    spec: Option<&str>,
    forward: bool,
    say: &dyn Fn(String),
) -> Result<(), Error> {
    let gens = generations::list(nfs_root, image);
    let current = generations::current(nfs_root, image);
    let was = current.as_deref().unwrap_or("none");
    let target = match (forward, spec) {
        (false, _) => generations::rollback_target(&gens, current.as_deref(), spec),
        (true, Some(spec)) => generations::resolve(&gens, spec),
        (true, None) => gens.last(),
    };
    let target = target.ok_or_else(|| {
        NotStarted(match spec {
            Some(spec) => format!(
                "{image} has no generation {spec:?} (or it is ambiguous); `ddc generations {image}` lists them"
            ),
            None if forward => format!("{image} has no generation yet: run ddc build"),
            None => format!(
                "{image} has no generation before the current one ({was}); `ddc generations {image}` lists them"
            ),
        })
    })?;
    generations::set_current(nfs_root, image, &target.name)?;
    // Rolling back refuses the content left until it is rolled forward;
    // going to a generation, either way, accepts its content again.
    let from = current
        .as_deref()
        .filter(|_| !forward)
        .map(generations::content);
    generations::record_rollback(nfs_root, image, from, generations::content(&target.name))?;
    say(format!(
        "{image}: current is now {} (was {was}); rewriting its boot entries",
        target.name
    ));
    Ok(())
}

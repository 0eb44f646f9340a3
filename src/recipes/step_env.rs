//! What an image step's script sees: the values of its key, as environment
//! variables (`step_vars`, the one list both come from), and the context
//! every step gets (`CONTEXT_VARS`). No value reaches a step without being
//! hashed into its key.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::step::Step;
use super::Planner;
use crate::config::{Config, Image};
use crate::fingerprint::{scan_tree, Fingerprint, Input};

/// The environment every step gets: where it works, not what it makes.
/// The files of the tasks folder a step reads are key inputs of their own.
/// `DDC_SSH_HOST_KEYS` is the image's folder of kept SSH host keys (ddc's
/// state, like the package cache: what the step finds there it installs).
pub(crate) const CONTEXT_VARS: [&str; 5] = [
    "DDC_ROOTFS",
    "DDC_IMAGE",
    "DDC_TASKS_DIR",
    "DDC_PKG_CACHE",
    "DDC_SSH_HOST_KEYS",
];

/// A value a step reads: hashed into its key under `key`, and given to its
/// script as the environment variable `env`.
pub(crate) struct StepVar {
    pub(crate) env: &'static str,
    pub(crate) input: Input,
    pub(crate) text: String,
}

fn var<T: Serialize>(env: &'static str, key: String, value: &T, text: String) -> StepVar {
    StepVar {
        env,
        input: Planner::value(key, value),
        text,
    }
}

/// The values `step` of `img` reads, in key order. The one list that both
/// the key and the script's environment come from.
pub(crate) fn step_vars(step: Step, cfg: &Config, img: &Image) -> Result<Vec<StepVar>> {
    let k = |f: &str| format!("images.{}.{f}", img.name);
    let mut vars = own_vars(step, cfg, img)?;
    // Every step: the epoch as set (or the snapshot's time); when derived
    // from the mirror, it comes with the debootstrap layer (its output
    // hash is in every later step's key).
    vars.push(var(
        "SOURCE_DATE_EPOCH",
        k("source_date_epoch"),
        &img.source_date_epoch,
        img.source_date_epoch
            .map(|e| e.to_string())
            .unwrap_or_default(),
    ));
    if matches!(step, Step::Debootstrap | Step::Packages) {
        vars.push(var(
            "DDC_SNAPSHOT",
            k("snapshot"),
            &img.snapshot,
            img.snapshot.clone().unwrap_or_default(),
        ));
    }
    Ok(vars)
}

/// The values only `step` reads.
fn own_vars(step: Step, cfg: &Config, img: &Image) -> Result<Vec<StepVar>> {
    let k = |f: &str| format!("images.{}.{f}", img.name);
    Ok(match step {
        Step::Debootstrap => vec![
            var("DDC_SUITE", k("suite"), &img.suite, img.suite.clone()),
            var("DDC_ARCH", k("arch"), &img.arch, img.arch.clone()),
            var("DDC_MIRROR", k("mirror"), &img.mirror, img.mirror.clone()),
            var(
                "DDC_BOOTSTRAPPER",
                k("bootstrapper"),
                &img.bootstrapper,
                img.bootstrapper.as_str().to_string(),
            ),
        ],
        Step::Packages => vec![
            var(
                "DDC_PACKAGES",
                k("packages"),
                &img.packages,
                img.packages.join(" "),
            ),
            var("DDC_MIRROR", k("mirror"), &img.mirror, img.mirror.clone()),
        ],
        Step::Configure => configure_vars(cfg, img)?,
        Step::Initramfs => vec![var(
            "DDC_UNION",
            k("union"),
            &img.union,
            img.union.as_str().to_string(),
        )],
    })
}

/// The configure step's variables: the image's files tree and accounts, and
/// what the node's own services need of the cluster and of `ddc serve`.
fn configure_vars(cfg: &Config, img: &Image) -> Result<Vec<StepVar>> {
    let k = |f: &str| format!("images.{}.{f}", img.name);
    let c = &cfg.cluster;
    let files = match &img.files {
        Some(dir) => scan_tree(dir, None)
            .with_context(|| format!("cannot read the files tree {}", dir.display()))?
            .0
            .fingerprint(),
        None => Fingerprint([0; 32]),
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let vars = vec![
        StepVar {
            env: "DDC_FILES",
            input: Input {
                name: k("files").into(),
                hash: files,
            },
            text: img
                .files
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
        },
        var(
            "DDC_ROOT_PASSWORD_HASH",
            k("root_password_hash"),
            &img.root_password_hash,
            text(&img.root_password_hash),
        ),
        var(
            "DDC_SSH_AUTHORIZED_KEYS",
            k("ssh_authorized_keys"),
            &img.ssh_authorized_keys,
            img.ssh_authorized_keys.join("\n"),
        ),
        var(
            "DDC_NIS_DOMAIN",
            k("nis_domain"),
            &img.nis_domain,
            text(&img.nis_domain),
        ),
        var(
            "DDC_MASTER",
            "cluster.master".into(),
            &c.master,
            c.master.to_string(),
        ),
        var(
            "DDC_NETWORK",
            "cluster.network".into(),
            &c.network,
            c.network.to_string(),
        ),
        var(
            "DDC_SYSLOG",
            "cluster.syslog".into(),
            &c.syslog,
            if c.syslog { "1" } else { "0" }.into(),
        ),
        var(
            "DDC_HTTP",
            "server.http".into(),
            &cfg.server.http,
            cfg.server.http.to_string(),
        ),
        var(
            "DDC_HEARTBEAT",
            "server.heartbeat".into(),
            &cfg.server.heartbeat,
            cfg.server.heartbeat.to_string(),
        ),
    ];
    Ok(vars)
}

/// Where a step runs: its root file system, the folder its script and
/// files are written to (`DDC_TASKS_DIR`), and the cache.
pub(crate) struct StepDirs<'a> {
    pub(crate) rootfs: &'a Path,
    pub(crate) tasks: &'a Path,
    pub(crate) cache: &'a Path,
    /// The epoch the image's bootstrap derived, when none is set.
    pub(crate) epoch: Option<i64>,
}

/// The environment of a step's script: its values and the context.
pub(crate) fn step_env(
    step: Step,
    cfg: &Config,
    img: &Image,
    dirs: &StepDirs,
) -> Result<Vec<(&'static str, String)>> {
    let context = [
        dirs.rootfs.display().to_string(),
        img.name.clone(),
        dirs.tasks.display().to_string(),
        dirs.cache.join("debs").display().to_string(),
        dirs.cache
            .join("ssh-host-keys")
            .join(&img.name)
            .display()
            .to_string(),
    ];
    let mut env: Vec<(&'static str, String)> = CONTEXT_VARS.into_iter().zip(context).collect();
    env.extend(step_vars(step, cfg, img)?.into_iter().map(|v| {
        let text = match (v.env, dirs.epoch) {
            ("SOURCE_DATE_EPOCH", Some(e)) if v.text.is_empty() => e.to_string(),
            _ => v.text,
        };
        (v.env, text)
    }));
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipes::Staging;
    use crate::tasks_dir::Origin;
    use std::collections::BTreeSet;

    fn dirs() -> StepDirs<'static> {
        StepDirs {
            rootfs: Path::new("/r"),
            tasks: Path::new("/t"),
            cache: Path::new("/c"),
            epoch: None,
        }
    }

    fn cfg() -> Config {
        crate::config::parse(
            "[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster = \"192.0.2.1\"\n\n[images.default]\nsuite = \"bookworm\"\npackages = [\"linux-image-amd64\"]\n",
            "Ddcfile.toml",
            Path::new("/nonexistent"),
            &|| "http://mirror.invalid/debian".to_string(),
        )
        .expect("valid")
    }

    /// The `DDC_*` names a text mentions.
    fn ddc_vars(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("DDC_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            out.insert(name);
        }
        out
    }

    /// A step's script and the files of its folder may read only what the
    /// step hashes (and the context): any other `DDC_*` would be unset.
    #[test]
    fn built_in_steps_read_only_hashed_values() {
        let cfg = cfg();
        let img = &cfg.images["default"];
        let mut p = Planner::new(&cfg, Staging::Copy).unwrap();
        for step in Step::ALL {
            let given: BTreeSet<String> = step_env(step, &cfg, img, &dirs())
                .unwrap()
                .into_iter()
                .map(|(k, _)| k.to_string())
                .collect();
            let (_, script) = p.step_files(step.name()).unwrap();
            let mut read = BTreeSet::new();
            for f in &script.files {
                assert_eq!(f.origin, Origin::BuiltIn);
                read.extend(ddc_vars(&String::from_utf8_lossy(&f.bytes)));
            }
            let unhashed: Vec<_> = read.difference(&given).collect();
            assert!(
                unhashed.is_empty(),
                "{} reads {unhashed:?}, which are not in its key: add them to step_vars",
                step.name()
            );
        }
    }

    /// The environment holds exactly the key's values and the context.
    #[test]
    fn the_environment_is_the_key() {
        let cfg = cfg();
        let img = &cfg.images["default"];
        for step in Step::ALL {
            let env: Vec<&str> = step_env(step, &cfg, img, &dirs())
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let vars = step_vars(step, &cfg, img).unwrap();
            let mut want: Vec<&str> = CONTEXT_VARS.to_vec();
            want.extend(vars.iter().map(|v| v.env));
            assert_eq!(env, want, "{}", step.name());
            for v in &vars {
                assert!(
                    v.input.name.starts_with("images.default.")
                        || v.input.name.starts_with("cluster.")
                        || v.input.name.starts_with("server."),
                    "{} hashes {} under an unnamed key",
                    v.env,
                    v.input.name
                );
            }
        }
    }

    #[test]
    fn debootstrap_does_not_see_configure_values() {
        let cfg = cfg();
        let img = &cfg.images["default"];
        let env = step_env(Step::Debootstrap, &cfg, img, &dirs()).unwrap();
        assert!(env
            .iter()
            .all(|(k, _)| *k != "DDC_MASTER" && *k != "DDC_PACKAGES"));
    }
}

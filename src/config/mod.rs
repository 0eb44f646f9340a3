//! The Ddcfile: its structs, loading with source positions, and validation.
//!
//! Everything a user can get wrong is caught here, before any task runs, and
//! reported as `FILE:LINE:COL: KEY: message` (or `FILE: row N` for the CSV
//! inventory). Once a [`Config`] exists, every value in it is safe to put in a
//! path, a task id or a generated config file.
//!
//! Modules, from the bottom up; each imports only modules below it:
//! `origin` (positions, errors) and `model` (the validated types); `raw`
//! (the TOML as read), `inventory` (the CSV rows), `mirror` (the master's apt
//! mirror), `release` (known suites and architectures, a mirror's Release
//! files), `suggest` ("did you mean"), `toml_errors` (syntax errors) and
//! `memo` (the cached config); `columns` (the inventory's columns) and
//! `range` (host ranges); `validate` (raw and rows to the model); `edit`
//! (`ddc node`'s in-place edits of the inventory); this one (loading). The
//! rest of ddc sees the model, `load`,
//! `base_dir` and [`ConfigErrors`].

pub(crate) mod columns;
pub(crate) mod edit;
mod inventory;
mod memo;
mod mirror;
mod model;
mod origin;
pub(crate) mod range;
mod raw;
mod read;
mod release;
mod suggest;
mod toml_errors;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use model::*;
pub use origin::ConfigErrors;

pub(crate) use memo::{binary_id, sources_fingerprint};
use memo::{cached, remember};
pub(crate) use mirror::system_mirror;
use origin::{ConfigError, Origin, Place};
use raw::RawDdcfile;
pub(crate) use suggest::did_you_mean;

/// Loads and validates a Ddcfile and the inventory it names, or takes the
/// config validated from the same bytes, at the same place, last time
/// (`cache/config.bin`).
pub(crate) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let shown = path.display().to_string();
    let ddcfile = ddcfile_path(path);
    let cache = folder_of(&ddcfile).join("cache/config.bin");
    if let Some(c) = cached(&cache, &ddcfile, &shown) {
        // What validation saw of the file system (folders, links) may have
        // changed without any source file changing.
        if validate::still_valid(&c) {
            return Ok(c);
        }
    }
    let config = load_uncached(path, &ddcfile)?;
    if cache.parent().is_some_and(Path::is_dir) {
        remember(&cache, &ddcfile, &shown, &config);
    }
    Ok(config)
}

/// Loads and validates a Ddcfile (`path` as given, `ddcfile` where it is)
/// and the inventory it names.
fn load_uncached(path: &Path, ddcfile: &Path) -> Result<Config, ConfigErrors> {
    let text = read_text(path)?;
    asking_mirrors(ddcfile, |archive| {
        parse_at(
            &text,
            &path.display().to_string(),
            ddcfile,
            &system_mirror,
            archive,
            None,
        )
    })
}

/// Runs `parse` with the mirrors' Release answers remembered in
/// `cache/releases.json` (each mirror asked at most once a run).
fn asking_mirrors<T>(ddcfile: &Path, parse: impl FnOnce(release::Archive) -> T) -> T {
    let remembered = release::Remembered::load(&folder_of(ddcfile).join("cache/releases.json"));
    let archive = |mirror: &str, suite: &str| remembered.ask(mirror, suite, &release::fetch);
    let out = parse(&archive);
    remembered.save();
    out
}

/// Validates the Ddcfile at `path` as [`load`] does, with `inventory` as
/// the bytes of its `nodes_file`: an edit checked before it is written.
pub(crate) fn check_with_inventory(
    path: &Path,
    inventory: Vec<u8>,
) -> Result<Config, ConfigErrors> {
    let text = read_text(path)?;
    let shown = path.display().to_string();
    let ddcfile = ddcfile_path(path);
    asking_mirrors(&ddcfile, |archive| {
        parse_at(
            &text,
            &shown,
            &ddcfile,
            &system_mirror,
            archive,
            Some(inventory),
        )
    })
}

/// The Ddcfile's text.
fn read_text(path: &Path) -> Result<String, ConfigErrors> {
    let text = read::read_bounded(path)
        .and_then(|b| String::from_utf8(b).map_err(|_| "it is not UTF-8 text".to_string()));
    text.map_err(|e| {
        ConfigErrors(vec![ConfigError {
            origin: Origin {
                file: path.display().to_string().into(),
                place: Place::File,
            },
            key: String::new(),
            message: format!("cannot read the Ddcfile: {e} (use -f PATH to name another one)"),
        }])
    })
}

/// Where a Ddcfile is: its absolute path with every symlink resolved, the
/// file itself included, so that the same file reached another way (`-f` a
/// link to it) is the same Ddcfile with the same folder and cache. A file
/// that does not exist keeps its name in its folder's real path.
pub(crate) fn ddcfile_path(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = std::fs::canonicalize(&dir)
        .or_else(|_| std::path::absolute(&dir))
        .unwrap_or(dir);
    dir.join(path.file_name().unwrap_or_default())
}

/// The folder of a Ddcfile, which relative paths and the cache start from.
pub(crate) fn base_dir(ddcfile: &Path) -> PathBuf {
    folder_of(&ddcfile_path(ddcfile))
}

fn folder_of(ddcfile: &Path) -> PathBuf {
    ddcfile
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Parses and validates Ddcfile text; `mirror_default` gives the mirror to
/// use when an image names none. The Ddcfile is `file` in `base_dir`.
#[cfg(test)]
pub(crate) fn parse(
    text: &str,
    file: &str,
    base_dir: &Path,
    mirror_default: &dyn Fn() -> String,
) -> Result<Config, ConfigErrors> {
    parse_with(text, file, base_dir, mirror_default, &|_, _| {
        release::Answer::Unreachable("no mirror is asked in unit tests".into())
    })
}

/// [`parse`], asking `archive` about suites and architectures ddc does not know.
#[cfg(test)]
pub(crate) fn parse_with(
    text: &str,
    file: &str,
    base_dir: &Path,
    mirror_default: &dyn Fn() -> String,
    archive: release::Archive,
) -> Result<Config, ConfigErrors> {
    let name = Path::new(file).file_name().unwrap_or_default();
    parse_at(
        text,
        file,
        &base_dir.join(name),
        mirror_default,
        archive,
        None,
    )
}

/// Parses and validates the text of the Ddcfile at `ddcfile` (absolute),
/// shown as `file` in messages; `archive` answers for the suites and
/// architectures ddc does not know.
fn parse_at(
    text: &str,
    file: &str,
    ddcfile: &Path,
    mirror_default: &dyn Fn() -> String,
    archive: release::Archive,
    inventory: Option<Vec<u8>>,
) -> Result<Config, ConfigErrors> {
    let raw: RawDdcfile = toml::from_str(text).map_err(|e| toml_errors::explain(text, file, &e))?;
    validate::validate(raw, text, file, ddcfile, mirror_default, archive, inventory)
}

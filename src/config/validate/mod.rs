//! Validation: turns the raw TOML and the inventory's rows into the model,
//! collecting every problem with its position instead of stopping at the
//! first. `cluster` checks the [cluster], [paths] and [server] tables, `image`
//! the images, `nodes` the nodes, `apply` the [apply] table, `power` the
//! [power] table and the nodes' BMCs; `rules` says
//! what single values may be.
//!
//! Imports the layers below it (origin, raw, model, inventory, mirror);
//! none of them imports it.

mod apply;
mod archive;
mod cluster;
mod cmdline;
mod discovery;
mod exports;
mod image;
mod nodes;
mod paths;
mod power;
mod reproducible;
mod rules;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use toml::Spanned;

use super::mirror::apt_sources;
use super::model::{Boot, Config};
use super::origin::{ConfigError, ConfigErrors, Lines, Origin, Place, Sourced};
use super::raw::RawDdcfile;
use super::release::Archive;
use rules::Rule;

#[cfg(test)]
pub(super) use rules::is_dns_label;

/// Validates a parsed Ddcfile (`text`, at `ddcfile`, shown as `file`): the
/// config, or every problem found in it and in the inventory it names
/// (`inventory`: these bytes instead of the file's, for an edit not yet
/// written).
pub(super) fn validate(
    raw: RawDdcfile,
    text: &str,
    file: &str,
    ddcfile: &Path,
    mirror_default: &dyn Fn() -> String,
    archive: Archive,
    inventory: Option<Vec<u8>>,
) -> Result<Config, ConfigErrors> {
    let mut v = Validator {
        inventory,
        archive,
        warnings: Vec::new(),
        file: file.into(),
        lines: Lines::new(text),
        errors: Vec::new(),
        path_keys: HashMap::new(),
        cmdline_origins: HashMap::new(),
    };
    let cfg = v.config(raw, ddcfile, mirror_default);
    if v.errors.is_empty() {
        Ok(cfg.expect("a config without errors"))
    } else {
        Err(ConfigErrors(v.errors))
    }
}

struct Validator<'a> {
    /// The inventory's bytes, when given instead of the file's.
    inventory: Option<Vec<u8>>,
    /// Asks an image's mirror about a suite ddc does not know.
    archive: Archive<'a>,
    /// What could not be checked: reported, but no error.
    warnings: Vec<ConfigError>,
    file: std::sync::Arc<str>,
    lines: Lines<'a>,
    errors: Vec<ConfigError>,
    /// Where each path key the Ddcfile sets was given.
    path_keys: HashMap<String, Origin>,
    /// Where each image's `cmdline` was given.
    cmdline_origins: HashMap<String, Origin>,
}

impl Validator<'_> {
    /// The Ddcfile as a whole, for a problem with no key of its own there.
    fn file_origin(&self) -> Origin {
        Origin {
            file: self.file.clone(),
            place: Place::File,
        }
    }

    fn origin<T>(&self, s: &Spanned<T>) -> Origin {
        let (l, c) = self.lines.line_col(s.span().start);
        Origin {
            file: self.file.clone(),
            place: Place::LineCol(l, c),
        }
    }

    fn sourced(&self, s: Spanned<String>) -> Sourced<String> {
        let origin = self.origin(&s);
        Sourced {
            value: s.into_inner(),
            origin,
        }
    }

    fn error(&mut self, origin: Origin, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            origin,
            key: key.into(),
            message: message.into(),
        });
    }

    fn config(
        &mut self,
        raw: RawDdcfile,
        ddcfile: &Path,
        mirror_default: &dyn Fn() -> String,
    ) -> Option<Config> {
        let base_dir = ddcfile.parent().unwrap_or(Path::new("/"));
        let syslog = raw.cluster.syslog.unwrap_or(false);
        let cluster = self.cluster(raw.cluster);
        let hosts_origin = raw.paths.dnsmasq_hosts.as_ref().map(|s| self.origin(s));
        let paths = self.paths(raw.paths, base_dir);
        self.check_hosts_file(&paths, hosts_origin);
        let apply = self.apply(raw.apply, base_dir);
        let power = self.power(raw.power, base_dir);
        let tasks_dir = raw.tasks_dir.map(|t| self.path(t, "tasks_dir", base_dir));
        let declared: BTreeSet<String> = raw.images.keys().map(|k| k.get_ref().clone()).collect();
        let file = ddcfile.to_path_buf();
        let mut sources = vec![file.clone()];
        let mut mirror_cache: Option<String> = None;
        let cluster_boot = cluster.as_ref().map(|c| c.boot).unwrap_or_default();
        let images = self.images(raw.images, base_dir, cluster_boot, &mut || {
            mirror_cache.get_or_insert_with(mirror_default).clone()
        });
        let mut raw_server = raw.server;
        let raw_discovery = raw_server.discovery.take();
        let mut server = self.server(raw_server, &declared, cluster.as_ref().map(|c| c.master));
        let mut inputs: Vec<_> = raw.nodes.into_iter().map(|n| self.node_input(n)).collect();
        let mut nodes_file = None;
        if let Some(raw_nodes_file) = raw.nodes_file {
            let (path, more) = self.inventory(raw_nodes_file, base_dir);
            sources.push(path.clone());
            nodes_file = Some(path);
            if inputs.is_empty() {
                inputs = more;
            } else {
                inputs.extend(more);
            }
        }
        let kernel_lines = cluster.as_ref().map(|c| {
            let origins = std::mem::take(&mut self.cmdline_origins);
            self.kernel_lines(c.master, &paths.nfs_root, &images, &origins)
        });
        let boots: HashMap<&str, Boot> =
            images.values().map(|i| (i.name.as_str(), i.boot)).collect();
        let (nodes, node_origins) = self.nodes(
            inputs,
            cluster.as_ref(),
            &declared,
            &boots,
            kernel_lines.as_ref(),
        );
        server.discovery = raw_discovery.and_then(|d| {
            self.discovery(d, cluster.as_ref()?, &server, &nodes, &node_origins, &boots)
        });
        if mirror_cache.is_some() {
            sources.extend(apt_sources());
        }
        self.path_policy(&paths::Layout {
            paths: &paths,
            syslog,
            file: &file,
            nodes_file: nodes_file.as_deref(),
            tasks_dir: tasks_dir.as_deref(),
            files: images
                .values()
                .filter_map(|i| Some((i.name.as_str(), i.files.as_deref()?)))
                .collect(),
            base_dir,
        });
        Some(Config {
            file,
            base_dir: base_dir.to_path_buf(),
            tasks_dir,
            nodes_file,
            cluster: cluster?,
            paths,
            server,
            images,
            nodes,
            node_origins,
            apply,
            power,
            sources,
            warnings: self.warnings.iter().map(ToString::to_string).collect(),
        })
    }

    /// Reports every overlap of the paths ddc writes (see `paths`), each at
    /// the key the Ddcfile sets, or the Ddcfile as a whole.
    fn path_policy(&mut self, layout: &paths::Layout) {
        let found = paths::violations(layout, &|k| self.path_keys.contains_key(k));
        for v in found {
            let at = v
                .keys
                .iter()
                .find_map(|k| Some((k, self.path_keys.get(k)?)));
            let (key, origin) = match at {
                Some((k, o)) => (k.clone(), o.clone()),
                None => (
                    v.keys.first().cloned().unwrap_or_default(),
                    self.file_origin(),
                ),
            };
            self.error(origin, key, v.message);
        }
    }

    /// Reports `s` under `key` if it fails `rule`; true when it passes.
    fn check(&mut self, s: &Sourced<String>, key: &str, rule: &Rule) -> bool {
        let ok = (rule.ok)(&s.value);
        if !ok {
            self.error(s.origin.clone(), key, (rule.says)(&s.value));
        }
        ok
    }

    /// A value, checked. A value that fails is kept: the load fails anyway.
    fn checked(&mut self, raw: Spanned<String>, key: &str, rule: &Rule) -> String {
        let s = self.sourced(raw);
        self.check(&s, key, rule);
        s.value
    }

    fn optional(&mut self, raw: Option<Spanned<String>>, key: &str, rule: &Rule) -> Option<String> {
        raw.map(|s| self.checked(s, key, rule))
    }

    fn each(&mut self, raw: Vec<Spanned<String>>, key: &str, rule: &Rule) -> Vec<String> {
        raw.into_iter()
            .map(|s| self.checked(s, key, rule))
            .collect()
    }

    fn ipv4(&mut self, s: &Sourced<String>, key: &str) -> Option<Ipv4Addr> {
        match s.value.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.error(
                    s.origin.clone(),
                    key,
                    format!(
                        "{:?} is not an IPv4 address (expected four numbers like 192.0.2.11)",
                        s.value
                    ),
                );
                None
            }
        }
    }

    /// An address of a host on the cluster network, once the network is known.
    fn host_ip(
        &mut self,
        s: &Sourced<String>,
        key: &str,
        net: Option<Ipv4Net>,
    ) -> Option<Ipv4Addr> {
        let ip = self.ipv4(s, key)?;
        if let Some(net) = net {
            self.check_host_in(&s.origin, key, ip, net);
        }
        Some(ip)
    }

    fn check_host_in(&mut self, origin: &Origin, key: &str, ip: Ipv4Addr, net: Ipv4Net) {
        if !net.contains(&ip) {
            self.error(
                origin.clone(),
                key,
                format!("{ip} is outside the cluster network {net}"),
            );
        } else if net.prefix_len() < 31 && (ip == net.network() || ip == net.broadcast()) {
            let what = if ip == net.network() {
                "network"
            } else {
                "broadcast"
            };
            self.error(
                origin.clone(),
                key,
                format!("{ip} is the {what} address of {net}; give a host address"),
            );
        }
    }

    /// A path from the Ddcfile, relative to its folder.
    fn path(&mut self, raw: Spanned<String>, key: &str, base_dir: &Path) -> PathBuf {
        let s = self.sourced(raw);
        self.path_value(&s, key, base_dir)
    }

    fn path_value(&mut self, s: &Sourced<String>, key: &str, base_dir: &Path) -> PathBuf {
        self.path_keys.insert(key.to_string(), s.origin.clone());
        self.check(s, key, &rules::PATH);
        base_dir.join(&s.value)
    }

    /// Reports a `name` (from `key`) that is not one of the declared images.
    fn check_image_exists(
        &mut self,
        origin: &Origin,
        key: &str,
        name: &str,
        images: &BTreeSet<String>,
    ) {
        if images.contains(name) {
            return;
        }
        let message = match super::suggest::nearest(name, images.iter().map(String::as_str)) {
            Some(near) => format!(
                "names image {name:?}, which is not defined; did you mean {near:?}? (defined: {}; or define [images.{name}])",
                image_list(images)
            ),
            None => format!(
                "names image {name:?}, which is not defined; define [images.{name}] or use one of: {}",
                image_list(images)
            ),
        };
        self.error(origin.clone(), key, message);
    }
}

fn image_list(images: &BTreeSet<String>) -> String {
    if images.is_empty() {
        "(none defined)".to_string()
    } else {
        images.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Whether what validation found on the file system still holds for a
/// config validated earlier (the memo): if not, the Ddcfile is validated
/// again and the problem reported with its position.
pub(super) fn still_valid(cfg: &Config) -> bool {
    cfg.images
        .values()
        .filter_map(|i| i.files.as_deref())
        .all(Path::is_dir)
        && paths::violations(&paths::Layout::of(cfg), &|_| true).is_empty()
}

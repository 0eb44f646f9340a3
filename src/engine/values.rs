//! The values behind a task's scalar inputs (`node.mac`, `cluster.master`),
//! kept short in its record so that a reason can say `input changed:
//! node.mac 52:54:00:aa:00:05 -> 52:54:00:aa:00:06`. Secrets are never kept
//! nor shown. Values are looked up only for a task that runs (to record
//! them) or whose reason is reported: a no-op build never reads them.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::cache::Record;
use crate::config::Config;
use crate::recipes::{Subject, TaskSpec};

/// The longest value kept, in characters; a longer one keeps its ends.
const MAX_CHARS: usize = 60;

/// Whether an input holds a secret, whose value is never kept nor shown.
pub(crate) fn is_secret(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    ["password", "secret", "token", "private"]
        .iter()
        .any(|w| last.contains(w))
}

/// Looks up the current values of inputs; the config's own values (the
/// same for every task) are looked up once a build.
pub(crate) struct Values<'a> {
    cfg: &'a Config,
    shared: Mutex<HashMap<String, Option<String>>>,
}

impl<'a> Values<'a> {
    pub(crate) fn new(cfg: &'a Config) -> Self {
        Values {
            cfg,
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// The value of input `name` of `spec` now, shortened; None for an
    /// input that is not a scalar config value, or a secret.
    pub(crate) fn current(&self, spec: &TaskSpec, name: &str) -> Option<String> {
        if is_secret(name) {
            return None;
        }
        if let Some(field) = name.strip_prefix("node.") {
            let Subject::Node(i) = spec.subject else {
                return None;
            };
            let n = self.cfg.nodes.get(i)?;
            return match field {
                "hostname" => Some(shorten(&n.hostname)),
                "mac" => Some(shorten(&n.mac)),
                "ip" => Some(n.ip.to_string()),
                "image" => Some(shorten(&n.image)),
                "cmdline" => Some(shorten(&n.cmdline)),
                _ => None,
            };
        }
        let mut shared = self.shared.lock().expect("values");
        shared
            .entry(name.to_string())
            .or_insert_with(|| config_value(self.cfg, name))
            .clone()
    }

    /// The values of a record's inputs, one line each in the order of its
    /// names: `=VALUE`, or empty for none.
    pub(crate) fn encode<'n>(
        &self,
        spec: &TaskSpec,
        names: impl Iterator<Item = &'n str>,
    ) -> String {
        let mut out = String::new();
        for (k, name) in names.enumerate() {
            if k > 0 {
                out.push('\n');
            }
            if let Some(v) = self.current(spec, name) {
                out.push('=');
                out.push_str(&v);
            }
        }
        out
    }

    /// `old -> new` for input `name`, when both are known; `(secret, not
    /// shown)` for a secret.
    pub(crate) fn change(&self, spec: &TaskSpec, old: &Record, name: &str) -> Option<String> {
        if is_secret(name) {
            return Some("(a secret: not shown)".into());
        }
        let before = recorded(old, name)?;
        let now = self.current(spec, name)?;
        Some(format!("{} -> {}", quoted(before), quoted(&now)))
    }
}

/// A value as shown: empty ones as `""`.
fn quoted(v: &str) -> String {
    if v.is_empty() || v.contains(' ') {
        format!("{v:?}")
    } else {
        v.to_string()
    }
}

/// The value `old` recorded for input `name`.
fn recorded<'r>(old: &'r Record, name: &str) -> Option<&'r str> {
    let k = old.inputs().position(|(n, _)| n == name)?;
    old.input_values.split('\n').nth(k)?.strip_prefix('=')
}

/// A scalar of the config by its dotted name (`cluster.master`,
/// `images.default.cmdline`), as text.
fn config_value(cfg: &Config, name: &str) -> Option<String> {
    let mut parts = name.split('.');
    let section = match parts.next()? {
        "cluster" => serde_json::to_value(&cfg.cluster),
        "paths" => serde_json::to_value(&cfg.paths),
        "server" => serde_json::to_value(&cfg.server),
        "apply" => serde_json::to_value(&cfg.apply),
        "images" => serde_json::to_value(cfg.images.get(parts.next()?)?),
        _ => return None,
    }
    .ok()?;
    let mut v = &section;
    for p in parts {
        v = v.get(p)?;
    }
    match v {
        serde_json::Value::String(s) => Some(shorten(s)),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Null => Some("none".into()),
        _ => None,
    }
}

/// A value on one line, at most [`MAX_CHARS`] long: a longer one keeps its
/// start and end around `…`.
pub(crate) fn shorten(v: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let n = v.chars().count();
    if n <= MAX_CHARS {
        return clean(v);
    }
    let half = (MAX_CHARS - 1) / 2;
    let head: String = v.chars().take(half).collect();
    let tail: String = v.chars().skip(n - half).collect();
    format!("{}…{}", clean(&head), clean(&tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_keep_their_ends_on_one_line() {
        assert_eq!(shorten("console=ttyS0"), "console=ttyS0");
        let long = format!("a\n{}z", "b".repeat(100));
        let s = shorten(&long);
        assert_eq!(s.chars().count(), 59);
        assert!(s.starts_with("a b") && s.ends_with("bz") && s.contains('…'));
    }

    #[test]
    fn secrets_are_known_by_name() {
        assert!(is_secret("images.default.root_password_hash"));
        assert!(!is_secret("images.default.ssh_authorized_keys"));
        assert!(!is_secret("node.mac"));
    }
}

//! The Ddcfile as TOML gives it: structs that mirror its tables, each value
//! with its span so that validation can name where a problem is.
//!
//! Unknown keys are refused here (`deny_unknown_fields`); everything else is
//! left to `validate`. Imports only the model's closed sets (enums).

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Deserializer, IntoDeserializer};
use serde::Deserialize;
use toml::Spanned;

use super::model::{Boot, Bootstrapper, IpmiInterface, PowerDriver, Union};

/// A string naming one value of a closed set `T` (a serde enum of unit
/// variants), or the string itself when it names none. Reading never fails
/// on an unknown name: the validator reports it with its key, next to every
/// other problem, rather than as a lone TOML error without a key.
pub(super) enum Choice<T> {
    Known(T),
    Unknown(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let name: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            s.as_str().into_deserializer();
        Ok(match T::deserialize(name) {
            Ok(t) => Choice::Known(t),
            Err(_) => Choice::Unknown(s),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDdcfile {
    pub(super) nodes_file: Option<Spanned<String>>,
    pub(super) tasks_dir: Option<Spanned<String>>,
    pub(super) cluster: RawCluster,
    #[serde(default)]
    pub(super) paths: RawPaths,
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) images: BTreeMap<Spanned<String>, RawImage>,
    #[serde(default)]
    pub(super) nodes: Vec<RawNode>,
    #[serde(default)]
    pub(super) apply: RawApply,
    #[serde(default)]
    pub(super) power: RawPower,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) network: Spanned<String>,
    pub(super) master: Spanned<String>,
    pub(super) gateway: Option<Spanned<String>>,
    pub(super) dns: Option<Vec<Spanned<String>>>,
    pub(super) domain: Option<Spanned<String>>,
    pub(super) syslog: Option<bool>,
    pub(super) boot: Option<Spanned<Choice<Boot>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPaths {
    pub(super) tftp_root: Option<Spanned<String>>,
    pub(super) nfs_root: Option<Spanned<String>>,
    pub(super) exports: Option<Spanned<String>>,
    pub(super) ganesha: Option<Spanned<String>>,
    pub(super) dhcpd: Option<Spanned<String>>,
    pub(super) dnsmasq: Option<Spanned<String>>,
    pub(super) dnsmasq_hosts: Option<Spanned<String>>,
    pub(super) rsyslog: Option<Spanned<String>>,
    pub(super) rsyslog_main: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) export_options: Option<Spanned<String>>,
    pub(super) allow_insecure_ports: Option<bool>,
    pub(super) dnsmasq_tftp: Option<bool>,
    pub(super) dnsmasq_interface: Option<Spanned<String>>,
    pub(super) dnsmasq_dns: Option<bool>,
    pub(super) default_entry: Option<Spanned<String>>,
    pub(super) http: Option<Spanned<String>>,
    pub(super) heartbeat: Option<Spanned<i64>>,
    pub(super) discovery: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImage {
    /// Another image whose packages layer this one starts from.
    pub(super) from: Option<Spanned<String>>,
    /// Required unless `from` is set (then inherited, and must not differ).
    pub(super) suite: Option<Spanned<String>>,
    pub(super) arch: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) packages: Vec<Spanned<String>>,
    pub(super) union: Option<Spanned<Choice<Union>>>,
    pub(super) cmdline: Option<Spanned<String>>,
    pub(super) mirror: Option<Spanned<String>>,
    pub(super) bootstrapper: Option<Spanned<Choice<Bootstrapper>>>,
    pub(super) files: Option<Spanned<String>>,
    pub(super) root_password_hash: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) ssh_authorized_keys: Vec<Spanned<String>>,
    pub(super) nis_domain: Option<Spanned<String>>,
    pub(super) boot: Option<Spanned<Choice<Boot>>>,
    pub(super) source_date_epoch: Option<Spanned<i64>>,
    pub(super) snapshot: Option<Spanned<String>>,
    pub(super) snapshot_archive: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) hostname: Spanned<String>,
    pub(super) mac: Spanned<String>,
    pub(super) ip: Spanned<String>,
    pub(super) image: Option<Spanned<String>>,
    pub(super) cmdline: Option<Spanned<String>>,
    pub(super) boot: Option<Spanned<String>>,
    pub(super) bmc: Option<Spanned<String>>,
}

/// `[apply]`: how ddc reaches each daemon. A value is a string (`"auto"`,
/// `"systemd"`, `"off"`) or a table (`{ systemd = "UNIT" }`, `{ pidfile =
/// "PATH" }`), so it is read as any TOML value and sorted out by the
/// validator, with its position.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApply {
    pub(super) dnsmasq: Option<Spanned<toml::Value>>,
    pub(super) dhcpd: Option<Spanned<toml::Value>>,
    pub(super) nfs: Option<Spanned<toml::Value>>,
    pub(super) rsyslog: Option<Spanned<toml::Value>>,
}

/// `[power]`: how `ddc power` reaches the nodes' BMCs. `password` is read
/// only to be refused at its line (the password belongs in `password_file`),
/// as any TOML value, so that no value of it gets printed.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPower {
    pub(super) driver: Option<Spanned<Choice<PowerDriver>>>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
    pub(super) password: Option<Spanned<toml::Value>>,
    pub(super) interface: Option<Spanned<Choice<IpmiInterface>>>,
    pub(super) cipher_suite: Option<Spanned<i64>>,
    pub(super) timeout: Option<Spanned<i64>>,
    pub(super) parallel: Option<Spanned<i64>>,
}

//! The `[power]` table (how `ddc power` reaches the BMCs) and each node's
//! `bmc`. A password is never taken from the Ddcfile: `password` is refused
//! at its line; the password file itself is checked when power is used.

use std::net::Ipv4Addr;
use std::path::Path;

use toml::Spanned;

use super::rules::{DNS_DOMAIN, PATH};
use super::Validator;
use crate::config::model::{Bmc, Power};
use crate::config::origin::Sourced;
use crate::config::raw::RawPower;

/// The defaults of `[power] timeout` (seconds) and `parallel`.
const DEFAULT_TIMEOUT: u64 = 10;
const DEFAULT_PARALLEL: usize = 32;

impl Validator<'_> {
    pub(super) fn power(&mut self, raw: RawPower, base: &Path) -> Power {
        if let Some(p) = &raw.password {
            let origin = self.origin(p);
            self.error(
                origin,
                "power.password",
                "a password in the Ddcfile is readable by whoever reads the Ddcfile (and its copies, backups and history); put the password alone in a file of mode 0600 and name that file instead: password_file = \"ipmi-password\"",
            );
        }
        let driver = self.choice(raw.driver, "power.driver", |v| {
            format!("{v:?} is not a power driver; use \"ipmitool\"")
        });
        let interface = self.choice(raw.interface, "power.interface", |v| {
            format!(
                "{v:?} is not an IPMI interface; use \"lanplus\" (IPMI 2.0) or \"lan\" (IPMI 1.5)"
            )
        });
        let user = raw.user.map(|u| {
            let u = self.sourced(u);
            if !is_ipmi_user(&u.value) {
                self.error(
                    u.origin.clone(),
                    "power.user",
                    format!(
                        "{:?} is not an IPMI user name (1 to 16 printable characters, no spaces, not starting with '-')",
                        u.value
                    ),
                );
            }
            u.value
        });
        let (password_file, password_file_at) = match raw.password_file {
            Some(f) => {
                let f = self.sourced(f);
                self.check(&f, "power.password_file", &PATH);
                (Some(base.join(&f.value)), f.origin.to_string())
            }
            None => (None, self.file_origin().to_string()),
        };
        let cipher_suite = self
            .number(
                raw.cipher_suite,
                "power.cipher_suite",
                0,
                17,
                "an RMCP+ cipher suite",
            )
            .map(|n| n as u8);
        let timeout = self.number(raw.timeout, "power.timeout", 1, 3600, "seconds");
        let parallel = self.number(raw.parallel, "power.parallel", 1, 1024, "nodes at once");
        Power {
            driver,
            user,
            password_file,
            password_file_at,
            interface,
            cipher_suite,
            timeout: timeout.map_or(DEFAULT_TIMEOUT, |t| t as u64),
            parallel: parallel.map_or(DEFAULT_PARALLEL, |p| p as usize),
        }
    }

    /// An integer from `min` to `max` (`what` it counts), if given.
    fn number(
        &mut self,
        raw: Option<Spanned<i64>>,
        key: &str,
        min: i64,
        max: i64,
        what: &str,
    ) -> Option<i64> {
        let raw = raw?;
        let origin = self.origin(&raw);
        let n = raw.into_inner();
        if (min..=max).contains(&n) {
            Some(n)
        } else {
            self.error(
                origin,
                key,
                format!("{n} is out of range: give {min} to {max} ({what})"),
            );
            None
        }
    }

    /// A node's `bmc`: `ADDR` or `ADDR:PORT`.
    pub(super) fn bmc(&mut self, s: &Sourced<String>) -> Option<Bmc> {
        match parse_bmc(&s.value) {
            Ok(b) => Some(b),
            Err(why) => {
                self.error(s.origin.clone(), "bmc", format!("{:?} {why}", s.value));
                None
            }
        }
    }
}

/// `ADDR` or `ADDR:PORT`, ADDR an IPv4 address or a DNS name.
fn parse_bmc(v: &str) -> Result<Bmc, String> {
    const WHAT: &str = "give an IPv4 address or a DNS name, with :PORT when the BMC does not listen on 623 (like 192.0.2.101 or node01-bmc:6230)";
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("has no port number after ':' (1 to 65535); {WHAT}"))?;
            (h, Some(port))
        }
        None => (v, None),
    };
    let numeric = !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let ok = if numeric {
        host.parse::<Ipv4Addr>().is_ok()
    } else {
        (DNS_DOMAIN.ok)(host)
    };
    if !ok {
        return Err(format!("is not a BMC address: {WHAT}"));
    }
    Ok(Bmc {
        host: host.to_string(),
        port,
    })
}

/// An IPMI user name: 1 to 16 printable ASCII characters, no space, and no
/// leading '-' (ipmitool would read it as an option).
fn is_ipmi_user(u: &str) -> bool {
    (1..=16).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_graphic()) && !u.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmc_addresses() {
        let b = parse_bmc("192.0.2.101").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("192.0.2.101", None));
        let b = parse_bmc("node01-bmc.example:6230").unwrap();
        assert_eq!(b.to_string(), "node01-bmc.example:6230");
        for bad in [
            "",
            "192.0.2.300",
            "a b",
            "x:0",
            "x:70000",
            "x:",
            "-x",
            "[::1]:623",
            "::1",
        ] {
            assert!(parse_bmc(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ipmi_users() {
        assert!(is_ipmi_user("ADMIN"));
        assert!(!is_ipmi_user(""));
        assert!(!is_ipmi_user("a user"));
        assert!(!is_ipmi_user("-h"));
        assert!(!is_ipmi_user("seventeen-chars-x"));
    }
}

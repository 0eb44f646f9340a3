//! Host ranges: a hostname `node[03-52]` (in a `[[nodes]]` table or a CSV
//! row) stands for 50 nodes, `node03` to `node52`, whose counting columns
//! (`columns::Count`: the MAC, the address) count up from the values the
//! row gives. Zero-padded numbers keep their width (`[03-52]`: `node03`;
//! `[3-52]`: `node3`).
//!
//! Imports `origin` and `columns`; the validator calls it before it checks
//! the nodes, so each counted node is checked like any other.

use std::net::Ipv4Addr;

use super::columns::{Count, COLUMNS};
use super::origin::{ConfigError, NodeInput, Sourced};

/// The most nodes one range may stand for.
pub(crate) const MAX_NODES: u64 = 65_536;

/// A parsed `PREFIX[FIRST-LAST]SUFFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    prefix: String,
    first: u64,
    last: u64,
    /// The digits of each number, zero-padded (the width of FIRST when it
    /// starts with 0).
    width: usize,
    suffix: String,
}

impl Range {
    /// `None` when `s` has no `[`; an error when it has one but is no range.
    pub(crate) fn parse(s: &str) -> Option<Result<Range, String>> {
        let open = s.find('[')?;
        Some(Self::parse_at(s, open))
    }

    fn parse_at(s: &str, open: usize) -> Result<Range, String> {
        let bad = || {
            format!(
                "{s:?} is not a host range (expected a name with one [FIRST-LAST] of decimal numbers, like node[03-52])"
            )
        };
        let close = s[open..].find(']').map(|i| open + i).ok_or_else(bad)?;
        let (prefix, inner, suffix) = (&s[..open], &s[open + 1..close], &s[close + 1..]);
        if suffix.contains(['[', ']']) || prefix.contains(']') {
            return Err(bad());
        }
        let (a, b) = inner.split_once('-').ok_or_else(bad)?;
        let digits =
            |x: &str| !x.is_empty() && x.len() <= 9 && x.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(bad());
        }
        let (first, last): (u64, u64) =
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if last < first {
            return Err(format!(
                "{s:?}: the range counts down ({first} to {last}); write the lower number first"
            ));
        }
        if last - first + 1 > MAX_NODES {
            return Err(format!(
                "{s:?} stands for {} nodes; a range may stand for at most {MAX_NODES}: split it",
                last - first + 1
            ));
        }
        let width = if a.len() > 1 && a.starts_with('0') {
            a.len()
        } else {
            1
        };
        Ok(Range {
            prefix: prefix.to_string(),
            first,
            last,
            width,
            suffix: suffix.to_string(),
        })
    }

    /// How many nodes it stands for.
    pub(crate) fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The name of its `i`th node (0-based).
    pub(crate) fn name(&self, i: u64) -> String {
        format!(
            "{}{:0w$}{}",
            self.prefix,
            self.first + i,
            self.suffix,
            w = self.width
        )
    }
}

/// The nodes a range row stands for, each with its counted values; a row
/// without a range is itself. Errors name the row and the column.
pub(crate) fn expand(n: NodeInput) -> Result<Vec<NodeInput>, ConfigError> {
    let range = match Range::parse(&n.hostname.value) {
        None => return Ok(vec![n]),
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(error(&n.hostname, "hostname", e)),
    };
    let spec = n.hostname.value.clone();
    let count = range.len();
    // Each counting column's first value, checked for room for every node.
    let mut starts = Vec::new();
    for c in COLUMNS.iter().filter(|c| c.count != Count::Same) {
        let Some(v) = (c.get)(&n) else { continue };
        // An address may carry a port (`bmc = "192.0.2.211:623"`), kept as is.
        let (value, port) = match v.value.split_once(':') {
            Some((a, p)) if c.count == Count::Ipv4 => (a, format!(":{p}")),
            _ => (v.value.as_str(), String::new()),
        };
        let start = first_value(c.count, value, &spec, count).map_err(|e| error(v, c.name, e))?;
        starts.push((c, start, port));
    }
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let mut m = n.clone();
        m.hostname.value = range.name(i);
        m.range = Some(spec.clone());
        for (c, start, port) in &starts {
            let mut v = (c.get)(&n).expect("counted above").clone();
            v.value = format!("{}{port}", shown(c.count, start + i));
            (c.set)(&mut m, v);
        }
        out.push(m);
    }
    Ok(out)
}

fn error(v: &Sourced<String>, key: &str, message: String) -> ConfigError {
    ConfigError {
        origin: v.origin.clone(),
        key: key.to_string(),
        message,
    }
}

/// The value a range counts from, as a number, if `count` values fit.
fn first_value(kind: Count, v: &str, spec: &str, count: u64) -> Result<u64, String> {
    match kind {
        Count::Mac => {
            let parts: Vec<&str> = v.split([':', '-']).collect();
            let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2);
            let n = ok
                .then(|| u64::from_str_radix(&parts.concat(), 16).ok())
                .flatten()
                .ok_or_else(|| {
                    format!(
                        "{:?} is not a MAC address (expected six hex pairs like 52:54:00:12:34:56); the range {spec} counts up from it",
                        v
                    )
                })?;
            if (n & 0xff_ffff) + count - 1 > 0xff_ffff {
                return Err(format!(
                    "the range {spec} counts {count} MAC addresses up from {}, past {}: the vendor prefix (the first three bytes) would change; start lower",
                    v,
                    shown(Count::Mac, n | 0xff_ffff)
                ));
            }
            Ok(n)
        }
        Count::Ipv4 => {
            let ip: Ipv4Addr = v.parse().map_err(|_| {
                format!(
                    "{v:?} is not an IPv4 address (expected four numbers like 192.0.2.11); the range {spec} counts up from it"
                )
            })?;
            let n = u64::from(u32::from(ip));
            if n + count - 1 > u64::from(u32::MAX) {
                return Err(format!(
                    "the range {spec} counts {count} addresses up from {ip}, past 255.255.255.255"
                ));
            }
            Ok(n)
        }
        Count::Same => Ok(0),
    }
}

/// A counted value as the column writes it.
fn shown(kind: Count, n: u64) -> String {
    match kind {
        Count::Mac => (0..6)
            .rev()
            .map(|b| format!("{:02x}", (n >> (8 * b)) & 0xff))
            .collect::<Vec<_>>()
            .join(":"),
        Count::Ipv4 => Ipv4Addr::from(n as u32).to_string(),
        Count::Same => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::origin::{Origin, Place};

    fn input(hostname: &str, mac: &str, ip: &str) -> NodeInput {
        let origin = Origin {
            file: "nodes.csv".into(),
            place: Place::Row(7),
        };
        let s = |v: &str| Sourced {
            value: v.to_string(),
            origin: origin.clone(),
        };
        NodeInput {
            hostname: s(hostname),
            mac: s(mac),
            ip: s(ip),
            image: Some(s("default")),
            cmdline: None,
            boot: None,
            bmc: Some(s("192.0.2.211:623")),
            origin: origin.clone(),
            range: None,
        }
    }

    #[test]
    fn a_range_counts_names_macs_and_addresses_up() {
        let nodes = expand(input("node[03-52]", "52:54:00:aa:00:03", "192.0.2.13")).unwrap();
        assert_eq!(nodes.len(), 50);
        let last = &nodes[49];
        assert_eq!(last.hostname.value, "node52");
        assert_eq!(last.mac.value, "52:54:00:aa:00:34");
        assert_eq!(last.ip.value, "192.0.2.62");
        assert_eq!(last.image.as_ref().unwrap().value, "default");
        assert_eq!(last.range.as_deref(), Some("node[03-52]"));
        assert_eq!(last.bmc.as_ref().unwrap().value, "192.0.3.4:623");
        assert_eq!(nodes[0].hostname.value, "node03");
    }

    proptest::proptest! {
        #[test]
        fn no_range_panics(h in "[a0-9\\[\\]-]{0,14}", mac in "[0-9a-f:]{0,17}", ip in "[0-9.]{0,15}") {
            if let Ok(v) = expand(input(&h, &mac, &ip)) {
                proptest::prop_assert!(!v.is_empty() && v.len() as u64 <= MAX_NODES);
            }
        }
    }

    #[test]
    fn widths_and_suffixes() {
        let r = Range::parse("rack1-n[008-010]-a").unwrap().unwrap();
        assert_eq!(
            (r.name(0), r.name(2)),
            ("rack1-n008-a".into(), "rack1-n010-a".into())
        );
        let r = Range::parse("n[8-10]").unwrap().unwrap();
        assert_eq!((r.name(0), r.name(2)), ("n8".into(), "n10".into()));
        assert_eq!(Range::parse("node01"), None);
    }

    #[test]
    fn bad_ranges_are_refused_with_the_reason() {
        let msg =
            |h: &str, mac: &str, ip: &str| expand(input(h, mac, ip)).err().unwrap().to_string();
        assert_eq!(
            msg("node[5-3]", "52:54:00:aa:00:03", "192.0.2.13"),
            "nodes.csv: row 7: hostname: \"node[5-3]\": the range counts down (5 to 3); write the lower number first"
        );
        assert!(msg("node[a-b]", "52:54:00:aa:00:03", "192.0.2.13").contains("is not a host range"));
        assert!(msg("node[1-3", "52:54:00:aa:00:03", "192.0.2.13").contains("is not a host range"));
        assert_eq!(
            msg("node[1-3]", "52:54:00:ff:ff:fe", "192.0.2.13"),
            "nodes.csv: row 7: mac: the range node[1-3] counts 3 MAC addresses up from 52:54:00:ff:ff:fe, past 52:54:00:ff:ff:ff: the vendor prefix (the first three bytes) would change; start lower"
        );
        assert!(msg("node[1-3]", "52:54:00:aa:00:03", "255.255.255.254")
            .contains("past 255.255.255.255"));
        assert!(msg("node[1-3]", "nope", "192.0.2.1")
            .starts_with("nodes.csv: row 7: mac: \"nope\" is not a MAC address"));
        assert!(msg("node[1-99999]", "52:54:00:aa:00:03", "10.0.0.1").contains("at most 65536"));
    }
}

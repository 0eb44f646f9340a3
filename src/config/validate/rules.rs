//! What a single string value may look like, and what to say when it does
//! not: one [`Rule`] a kind of value, shared by every key that holds one.
//!
//! Pure functions on `&str`: imports only the model's defaults.

use crate::config::model::DEFAULT_EXPORT_OPTIONS;

/// A check on one value and the message for a value that fails it.
pub(super) struct Rule {
    pub ok: fn(&str) -> bool,
    pub says: fn(&str) -> String,
}

pub(super) const IMAGE_NAME: Rule = Rule {
    ok: is_image_name,
    says: |_| {
        "an image name is lowercase letters, digits, '-' and '_', starting with a letter or digit"
            .to_string()
    },
};

pub(super) const SUITE: Rule = Rule {
    ok: is_suite,
    says: |v| {
        format!("{v:?} is not a Debian suite or codename: write one like bookworm, trixie, stable or bookworm-backports (lowercase letters and digits, starting with a letter, in parts joined by '-' or '.')")
    },
};

pub(super) const ARCH: Rule = Rule {
    ok: |v| is_word(v, ""),
    says: |v| format!("{v:?} is not a Debian architecture (like amd64 or arm64)"),
};

pub(super) const PACKAGE: Rule = Rule {
    ok: |v| {
        v.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && v.len() > 1
            && is_word(v, "+.-:=~/")
    },
    says: |v| format!("{v:?} is not a Debian package name"),
};

pub(super) const CMDLINE: Rule = Rule {
    ok: |v| !v.chars().any(|ch| ch.is_control()),
    says: |_| "kernel arguments are one line: remove the newline or control character".to_string(),
};

pub(super) const MIRROR: Rule = Rule {
    ok: |v| mirror_problem(v).is_none(),
    says: |v| {
        format!(
            "{v:?} is not a mirror URL: {}; write one like http://mirror.example/debian, https://… or file:/srv/debian-mirror",
            mirror_problem(v).unwrap_or_default()
        )
    },
};

pub(super) const CRYPT_HASH: Rule = Rule {
    ok: |v| crypt_problem(v).is_none(),
    says: |v| crypt_problem(v).unwrap_or_default(),
};

pub(super) const AUTHORIZED_KEY: Rule = Rule {
    ok: |v| !v.trim().is_empty() && !v.chars().any(|c| c.is_control()),
    says: |_| {
        "each key is one line of an authorized_keys file (like \"ssh-ed25519 AAAA… user@host\")"
            .to_string()
    },
};

pub(super) const NIS_DOMAIN: Rule = Rule {
    ok: is_dns_name,
    says: |v| format!("{v:?} is not a NIS domain name"),
};

pub(super) const DNS_DOMAIN: Rule = Rule {
    ok: is_dns_name,
    says: |v| {
        format!(
            "{v:?} is not a DNS domain name (letters, digits and '-' in labels separated by dots)"
        )
    },
};

pub(super) const HOSTNAME: Rule = Rule {
    ok: is_dns_label,
    says: |v| {
        format!("{v:?} is not a valid hostname (1 to 63 letters, digits and '-', not starting or ending with '-')")
    },
};

/// A hostname that dnsmasq reads as a name in the node's `dhcp-host=MAC,IP,NAME`
/// line (see [`dnsmasq_misreading`]).
pub(super) const DNSMASQ_NAME: Rule = Rule {
    ok: |v| dnsmasq_misreading(v).is_none(),
    says: |v| dnsmasq_misreading(v).unwrap_or_default(),
};

pub(super) const EXPORT_OPTIONS: Rule = Rule {
    ok: |v| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_,=:".contains(c))
    },
    says: |v| format!("{v:?} is not a list of export options (like {DEFAULT_EXPORT_OPTIONS})"),
};

pub(super) const INTERFACE: Rule = Rule {
    ok: |v| {
        !v.is_empty()
            && v.len() < 16
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    },
    says: |v| format!("{v:?} is not a network interface name"),
};

/// A path relative to the Ddcfile's folder: one line, not empty.
pub(super) const PATH: Rule = Rule {
    ok: |v| !v.is_empty() && !v.contains(['\n', '\r', '\0']),
    says: |v| format!("{v:?} is not a usable path"),
};

/// A Debian suite or codename: `bookworm`, `stable`, `bookworm-backports`.
fn is_suite(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.split(['-', '.']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// What is wrong with a mirror URL, if anything: http(s) with a host, or
/// file: with a local folder, on one line without quotes.
fn mirror_problem(v: &str) -> Option<&'static str> {
    if v.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
    {
        return Some("it has a space, a quote or a control character");
    }
    if let Some(rest) = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
    {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port, v6) = match host_port.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((h, after)) if h.parse::<std::net::Ipv6Addr>().is_ok() => (h, after, true),
                _ => return Some("its [IPv6 address] is not one"),
            },
            None => match host_port.find(':') {
                Some(i) => (&host_port[..i], &host_port[i..], false),
                None => (host_port, "", false),
            },
        };
        if host.is_empty() {
            return Some("it names no host");
        }
        let name_ok = host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !v6 && !name_ok {
            return Some("its host is not a host name or an address");
        }
        let port_ok = port.is_empty()
            || port
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p > 0);
        if !port_ok {
            return Some("its port is not a number from 1 to 65535");
        }
        return None;
    }
    if let Some(path) = v.strip_prefix("file:") {
        // file:/srv/mirror or file:///srv/mirror: apt reads file: URLs on this machine.
        let path = path.strip_prefix("//").unwrap_or(path);
        if !path.starts_with('/') {
            return Some("a file: URL names a folder on this machine (file:/PATH or file:///PATH)");
        }
        if path.trim_matches('/').is_empty() {
            return Some("it names no folder");
        }
        return None;
    }
    Some("it is not http://, https:// or file:")
}

/// Characters of crypt(3)'s base64.
fn is_b64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

/// What is wrong with a crypt(3) hash, if anything. The methods taken are
/// those crypt(5) (libxcrypt) does not call too weak for new passphrases,
/// each in the exact form crypt(5) gives; the weak ones are named and
/// refused, since every node's /etc/shadow can be read by root on any
/// machine of the cluster network. A locked password (`!…`, `*`) is no hash.
fn crypt_problem(v: &str) -> Option<String> {
    const MAKE: &str =
        "make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`";
    if v.starts_with(['!', '*']) {
        return Some(format!(
            "a leading '!' or '*' marks a locked password, not a hash; remove the key to leave root without a password (as the image has it), or give a hash: {MAKE}"
        ));
    }
    // crypt(5): always printable ASCII, without whitespace or : ; * ! \
    let chars_ok = v
        .chars()
        .all(|c| c.is_ascii_graphic() && !":;*!\\".contains(c));
    let parts: Vec<&str> = v.split('$').collect();
    let rounds_ok = |r: &str| {
        r.len() >= 2
            && r.starts_with(|c: char| ('1'..='9').contains(&c))
            && r.bytes().all(|b| b.is_ascii_digit())
    };
    let (name, form, ok) = match parts.as_slice() {
        _ if !chars_ok => {
            return Some(format!(
                "is not a crypt(3) hash; never put a plain password here: {MAKE}"
            ))
        }
        ["", id @ ("y" | "gy"), params, salt, hash] => (
            if *id == "y" { "yescrypt" } else { "gost-yescrypt" },
            "$y$PARAMS$SALT$HASH, the salt up to 86 and the hash 43 characters of ./0-9A-Za-z",
            !params.is_empty()
                && is_b64(params)
                && salt.len() <= 86
                && is_b64(salt)
                && hash.len() == 43
                && is_b64(hash),
        ),
        ["", "7", salt, hash] => (
            "scrypt",
            "$7$SALT$HASH, the salt 11 to 97 and the hash 43 characters of ./0-9A-Za-z",
            (11..=97).contains(&salt.len()) && is_b64(salt) && hash.len() == 43 && is_b64(hash),
        ),
        ["", "2a" | "2b" | "2x" | "2y", cost, rest] => (
            "bcrypt",
            "$2b$NN$ then 53 characters of ./0-9A-Za-z, NN from 04 to 31",
            cost.len() == 2
                && cost.parse::<u8>().is_ok_and(|c| (4..=31).contains(&c))
                && rest.len() == 53
                && is_b64(rest),
        ),
        ["", id @ ("5" | "6"), rest @ ..] => {
            let (name, len, form) = if *id == "6" {
                ("sha512crypt", 86, "$6$[rounds=N$]SALT$HASH, the salt 1 to 16 characters, the hash 86 of ./0-9A-Za-z")
            } else {
                ("sha256crypt", 43, "$5$[rounds=N$]SALT$HASH, the salt 1 to 16 characters, the hash 43 of ./0-9A-Za-z")
            };
            let rest = match rest {
                [r, more @ ..] if r.starts_with("rounds=") => {
                    if rounds_ok(&r["rounds=".len()..]) {
                        more
                    } else {
                        &[][..]
                    }
                }
                _ => rest,
            };
            let ok = matches!(rest, [salt, hash]
                if (1..=16).contains(&salt.len()) && hash.len() == len && is_b64(hash));
            (name, form, ok)
        }
        ["", weak @ ("1" | "sha1" | "3"), ..] => {
            let name = match *weak {
                "1" => "md5crypt",
                "sha1" => "sha1crypt",
                _ => "NT",
            };
            return Some(weak_hash(name, MAKE));
        }
        ["", md5, ..] if md5.starts_with("md5") => return Some(weak_hash("SunMD5", MAKE)),
        [one] if one.starts_with('_') || (13..=178).contains(&one.len()) && is_b64(one) => {
            return Some(format!(
                "is a DES-based crypt(3) hash or a plain password: never put a plain password here, and crypt(5) says DES-based hashes are too weak for new passphrases (every node's /etc/shadow can be read by root on any machine of the cluster network): {MAKE}"
            ))
        }
        _ => {
            return Some(format!(
                "is not a crypt(3) hash; never put a plain password here: {MAKE}"
            ))
        }
    };
    (!ok).then(|| {
        format!("starts like a {name} hash but is not a whole one ({form}); copy the whole hash, or {MAKE}")
    })
}

fn weak_hash(name: &str, make: &str) -> String {
    format!(
        "is hashed with {name}, which crypt(5) says should not be used for new passphrases, and every node's /etc/shadow can be read by root on any machine of the cluster network; {make}"
    )
}

/// Why dnsmasq would not read `name` as a name in a `dhcp-host` line, if
/// it would not. Its documented syntax is
/// `dhcp-host=[hwaddr][,id:…][,set:…][,ipaddr][,hostname][,lease_time][,ignore]`:
/// each field is told by its form, not its place. A lease time is digits,
/// optionally followed by one unit (s, m, h, d, w; 45m, 1h, 2d, 1w), and
/// `infinite`; `ignore` makes dnsmasq ignore the machine. A hostname of such
/// a form is taken for what it looks like, and the node gets no name (or, for
/// `ignore`, no answer at all). dnsmasq removes quotes before it splits the
/// line, so no quoting makes such a field a name: these are refused.
/// (`dnsmasq --test` cannot see this: the line is valid, it just means
/// something else.) Keywords are refused in any case, though dnsmasq 2.90
/// compares them exactly: a name that differs only by case is one to avoid.
pub(super) fn dnsmasq_misreading(name: &str) -> Option<String> {
    const NO_QUOTING: &str = "choose another hostname (dnsmasq has no way to quote it)";
    let lower = name.to_ascii_lowercase();
    if lower == "ignore" {
        return Some(format!(
            "{name:?} is a keyword to dnsmasq: in this node's dhcp-host line it means \"ignore this machine\", so the node would never get an answer; {NO_QUOTING}"
        ));
    }
    if lower == "infinite" {
        return Some(format!(
            "{name:?} is a keyword to dnsmasq: in this node's dhcp-host line it is a lease time, so the node would get no hostname; {NO_QUOTING}"
        ));
    }
    let digits = match lower.strip_suffix(['s', 'm', 'h', 'd', 'w']) {
        Some(d) if name.len() > 1 => d,
        _ => &lower,
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "{name:?} reads as a lease time to dnsmasq (digits, optionally ending in s, m, h, d or w): in this node's dhcp-host line it would set the lease, and the node would get no hostname; add a letter, like n{name} (dnsmasq has no way to quote it)"
        ));
    }
    None
}

/// A DNS label: 1–63 letters, digits and '-', not at either end.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_image_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_word(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
}

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
    ok: |v| is_word(v, "-."),
    says: |v| format!("{v:?} is not a Debian suite name (like bookworm or trixie)"),
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
    ok: |v| {
        ["http://", "https://", "file:/"]
            .iter()
            .any(|p| v.starts_with(p))
            && !v
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
    },
    says: |v| format!("{v:?} is not a mirror URL (expected http://, https:// or file:/)"),
};

pub(super) const CRYPT_HASH: Rule = Rule {
    ok: |v| {
        v.starts_with('$') && v.matches('$').count() >= 3 && v.chars().all(|c| c.is_ascii_graphic())
    },
    says: |_| {
        "is not a crypt(3) hash; never put a plain password here: make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`".to_string()
    },
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

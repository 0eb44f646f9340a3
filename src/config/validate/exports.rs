//! `server.export_options`: the kernel's `exports` options, which ddc gives
//! nfs-ganesha too. Every option either maps onto ganesha's EXPORT block,
//! changes nothing ganesha would do differently, or is refused, so that both
//! servers export the image the same way.
//!
//! | kernel (exports(5))                    | nfs-ganesha                     |
//! |----------------------------------------|---------------------------------|
//! | `ro`, `rw` (default `ro`)              | CLIENT `Access_Type = RO / RW`  |
//! | `root_squash` (default), `no_root_squash`, `all_squash`, `no_all_squash` | `Squash = Root_Squash / No_Root_Squash / All_Squash` |
//! | `anonuid=N`, `anongid=N`               | `Anonymous_Uid`, `Anonymous_Gid`|
//! | `sec=sys[:krb5:krb5i:krb5p]`           | `SecType = sys, krb5, …`        |
//! | `secure`, `insecure`                   | `PrivilegedPort = true / false` |
//! | `async`, `sync`, `wdelay`, `no_wdelay`, `no_subtree_check`, `hide`, `secure_locks`, `auth_nlm` | nothing to say: ganesha always works so, or the option has no effect on a read of a generation |
//! | `fsid=N`, `fsid=UUID` (N from 1)       | nothing: ganesha names the file system itself |
//!
//! Refused: `subtree_check` (ganesha has none), `nohide` and `crossmnt`
//! (ganesha never crosses into another file system), `insecure_locks` and
//! `no_auth_nlm`, `fsid=0` and `fsid=root` (the NFSv4 root, which only one
//! export may be), and anything else ganesha has no counterpart for.

use toml::Spanned;

use super::rules::EXPORT_OPTIONS;
use super::Validator;
use crate::config::model::{GaneshaOptions, DEFAULT_EXPORT_OPTIONS};

const KEY: &str = "server.export_options";

/// What ddc takes, for messages.
const TAKEN: &str = "ro, rw, root_squash, no_root_squash, all_squash, no_all_squash, anonuid=N, anongid=N, sec=sys[:krb5:krb5i:krb5p], secure, async, sync, wdelay, no_wdelay, no_subtree_check, hide, secure_locks, fsid=N";

/// Pairs of options that contradict each other.
const OPPOSITES: &[(&str, &str)] = &[
    ("ro", "rw"),
    ("root_squash", "no_root_squash"),
    ("all_squash", "no_all_squash"),
    ("async", "sync"),
    ("wdelay", "no_wdelay"),
];

/// Options with no ganesha setting that change nothing between the two
/// servers: ganesha always works as they say, or they only tune writes.
const KERNEL_ONLY: &[&str] = &[
    "async",
    "sync",
    "wdelay",
    "no_wdelay",
    "no_subtree_check",
    "hide",
    "secure_locks",
    "auth_nlm",
];

impl Validator<'_> {
    /// The kernel options (always saying `secure` or `insecure`) and the
    /// same for ganesha.
    pub(super) fn export_options(
        &mut self,
        raw: Option<Spanned<String>>,
        allow_insecure_ports: bool,
    ) -> (String, GaneshaOptions) {
        let Some(s) = raw.map(|s| self.sourced(s)) else {
            let options = port_option(DEFAULT_EXPORT_OPTIONS, allow_insecure_ports);
            let ganesha = ganesha_options(DEFAULT_EXPORT_OPTIONS).expect("the default maps");
            return (options, ganesha);
        };
        if !self.check(&s, KEY, &EXPORT_OPTIONS) {
            return (s.value, GaneshaOptions::default());
        }
        let value = &s.value;
        if !allow_insecure_ports && value.split(',').any(|o| o == "insecure") {
            self.error(
                s.origin.clone(),
                KEY,
                format!(
                    "{value:?} has \"insecure\": it lets any unprivileged process on the cluster network claim uid 0 and read every file of the image (/etc/shadow, SSH host keys); remove it, or set server.allow_insecure_ports = true if you really mean it"
                ),
            );
        }
        let ganesha = match ganesha_options(value) {
            Ok(g) => g,
            Err(problems) => {
                for p in problems {
                    self.error(s.origin.clone(), KEY, format!("{value:?} has {p}"));
                }
                GaneshaOptions::default()
            }
        };
        (port_option(value, allow_insecure_ports), ganesha)
    }
}

/// The ganesha settings of kernel export options, or what is wrong with
/// them (each message follows "OPTIONS has ").
fn ganesha_options(options: &str) -> Result<GaneshaOptions, Vec<String>> {
    let list: Vec<&str> = options.split(',').collect();
    let has = |o: &str| list.contains(&o);
    let mut problems = Vec::new();
    for (a, b) in OPPOSITES {
        if has(a) && has(b) {
            problems.push(format!(
                "both {a:?} and {b:?}, which contradict each other; keep one"
            ));
        }
    }
    let mut g = GaneshaOptions {
        access_type: if has("rw") { "RW" } else { "RO" }.to_string(),
        squash: if has("all_squash") {
            "All_Squash"
        } else if has("no_root_squash") {
            "No_Root_Squash"
        } else {
            "Root_Squash"
        }
        .to_string(),
        sec_type: "sys".to_string(),
        anonymous_uid: None,
        anonymous_gid: None,
    };
    for o in &list {
        let mapped = matches!(
            *o,
            "ro" | "rw"
                | "root_squash"
                | "no_root_squash"
                | "all_squash"
                | "no_all_squash"
                | "secure"
                | "insecure"
        ) || KERNEL_ONLY.contains(o);
        if mapped {
            continue;
        }
        let problem = if let Some(n) = o.strip_prefix("anonuid=") {
            anon_id(o, n, &mut g.anonymous_uid)
        } else if let Some(n) = o.strip_prefix("anongid=") {
            anon_id(o, n, &mut g.anonymous_gid)
        } else if let Some(flavors) = o.strip_prefix("sec=") {
            sec_type(o, flavors, &mut g.sec_type)
        } else if let Some(id) = o.strip_prefix("fsid=") {
            fsid(o, id)
        } else {
            Some(refused(o))
        };
        problems.extend(problem);
    }
    if problems.is_empty() {
        Ok(g)
    } else {
        Err(problems)
    }
}

fn anon_id(option: &str, n: &str, to: &mut Option<u32>) -> Option<String> {
    match n.parse::<u32>() {
        Ok(id) => {
            *to = Some(id);
            None
        }
        Err(_) => Some(format!(
            "{option:?}, whose id is not a number from 0 to 4294967295; write it like anonuid=65534"
        )),
    }
}

fn sec_type(option: &str, flavors: &str, to: &mut String) -> Option<String> {
    let list: Vec<&str> = flavors.split(':').collect();
    if let Some(bad) = list
        .iter()
        .find(|f| !["sys", "krb5", "krb5i", "krb5p"].contains(f))
    {
        return Some(format!(
            "{option:?}, and {bad:?} is not a security flavor both servers know; use sys, krb5, krb5i or krb5p, separated by ':'"
        ));
    }
    if !list.contains(&"sys") {
        return Some(format!(
            "{option:?} without sys: the nodes' initramfs mounts the root with AUTH_SYS, so no node could boot; put sys in the list (like sec=sys:{flavors})"
        ));
    }
    *to = list.join(", ");
    None
}

/// `fsid=`: how the kernel names the file system of the exports when it
/// has no UUID or device of its own. Every generation lies on the NFS root's
/// file system, so one number or UUID for all of them is right; ganesha
/// finds the file system itself. `0` and `root` instead make an export the
/// NFSv4 pseudo-root, which only one export may be.
fn fsid(option: &str, id: &str) -> Option<String> {
    if id == "0" || id == "root" {
        return Some(format!(
            "{option:?}, which makes an export the NFSv4 root, and only one may be: ddc exports every generation with these options; remove it, or name the file system with a number from 1 (fsid=1)"
        ));
    }
    let number = id.parse::<u32>().is_ok_and(|n| n > 0);
    let uuid = id.bytes().filter(u8::is_ascii_hexdigit).count() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'_');
    (!number && !uuid).then(|| {
        format!("{option:?}, which is neither a number nor a UUID of 32 hex digits; write it like fsid=1")
    })
}

/// Why an option ddc cannot give ganesha is refused.
fn refused(option: &str) -> String {
    let why = match option.split('=').next().unwrap_or_default() {
        "subtree_check" => {
            "nfs-ganesha has no subtree check (its exports all work as no_subtree_check), so the two servers would differ; write no_subtree_check or remove it"
        }
        "nohide" | "crossmnt" => {
            "nfs-ganesha never crosses into a file system mounted below an export, and a generation has none; remove it"
        }
        "insecure_locks" | "no_auth_nlm" => {
            "nfs-ganesha checks lock requests like any other and has no way to say otherwise; remove it"
        }
        "" => "an empty option between two commas; remove the extra comma",
        _ => {
            return format!(
                "{option:?}, which nfs-ganesha has no counterpart for (or which is not an exports(5) option); remove it. ddc takes: {TAKEN}"
            )
        }
    };
    format!("{option:?}: {why}")
}

/// `options` with the source-port option said explicitly: `secure` (requests
/// only from privileged ports, which only root on a client can use) unless
/// insecure ports are allowed, then `insecure`.
fn port_option(options: &str, allow_insecure_ports: bool) -> String {
    let wanted = if allow_insecure_ports {
        "insecure"
    } else {
        "secure"
    };
    let mut out: Vec<&str> = options
        .split(',')
        .filter(|o| *o != "secure" && *o != "insecure")
        .collect();
    let at = out
        .iter()
        .position(|o| *o == "ro" || *o == "rw")
        .map_or(0, |i| i + 1);
    out.insert(at, wanted);
    out.join(",")
}

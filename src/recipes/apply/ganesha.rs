//! A strict parse of the EXPORT blocks ddc writes for nfs-ganesha, which has
//! no check mode: what ganesha would refuse (a syntax error, an unknown
//! parameter, a bad value, a missing folder, two exports with one id) is
//! refused here, before the file is installed and ganesha told to reread it.
//!
//! The syntax is ganesha's: `NAME { ... }` blocks, `Key = value, ...;`
//! parameters, `#` comments, quoted strings; names are case-insensitive.

use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    Eq,
    Semi,
    Comma,
    Word(String),
    Str(String),
}

/// A parameter or a block, with its line.
#[derive(Debug)]
enum Item {
    Param {
        name: String,
        values: Vec<String>,
        line: usize,
    },
    Block {
        name: String,
        items: Vec<Item>,
        line: usize,
    },
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        let tok = match c {
            '\n' => {
                line += 1;
                continue;
            }
            c if c.is_whitespace() => continue,
            '#' => {
                while chars.next_if(|c| *c != '\n').is_some() {}
                continue;
            }
            '{' => Tok::Open,
            '}' => Tok::Close,
            '=' => Tok::Eq,
            ';' => Tok::Semi,
            ',' => Tok::Comma,
            '"' | '\'' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\n') | None => {
                            return Err(format!("line {line}: unterminated string"))
                        }
                        Some(ch) => s.push(ch),
                    }
                }
                Tok::Str(s)
            }
            c => {
                let mut s = String::from(c);
                while let Some(ch) =
                    chars.next_if(|ch| !ch.is_whitespace() && !"{}=;,#\"'".contains(*ch))
                {
                    s.push(ch);
                }
                Tok::Word(s)
            }
        };
        out.push((tok, line));
    }
    Ok(out)
}

/// Items until a `}` (inside a block) or the end (at the top).
fn items(toks: &[(Tok, usize)], at: &mut usize, nested: bool) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    loop {
        let Some((tok, line)) = toks.get(*at) else {
            return if nested {
                Err("a block is not closed: '}' missing at the end".into())
            } else {
                Ok(out)
            };
        };
        let line = *line;
        *at += 1;
        let name = match tok {
            Tok::Close if nested => return Ok(out),
            Tok::Word(w) => w.clone(),
            other => return Err(format!("line {line}: {other:?} where a name was expected")),
        };
        match toks.get(*at).map(|t| &t.0) {
            Some(Tok::Open) => {
                *at += 1;
                let inner = items(toks, at, true)?;
                out.push(Item::Block {
                    name,
                    items: inner,
                    line,
                });
            }
            Some(Tok::Eq) => {
                *at += 1;
                let values = values(toks, at, &name, line)?;
                out.push(Item::Param { name, values, line });
            }
            _ => return Err(format!("line {line}: '=' or '{{' expected after {name}")),
        }
    }
}

/// `value (, value)* ;`
fn values(
    toks: &[(Tok, usize)],
    at: &mut usize,
    name: &str,
    line: usize,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    loop {
        match toks.get(*at).map(|t| &t.0) {
            Some(Tok::Word(v) | Tok::Str(v)) => out.push(v.clone()),
            _ => return Err(format!("line {line}: {name} has no value")),
        }
        *at += 1;
        match toks.get(*at).map(|t| &t.0) {
            Some(Tok::Comma) => *at += 1,
            Some(Tok::Semi) => {
                *at += 1;
                return Ok(out);
            }
            _ => return Err(format!("line {line}: ';' expected after {name}")),
        }
    }
}

/// Parameters of EXPORT and CLIENT blocks (ganesha's export permissions).
const PERMISSIONS: &[&str] = &[
    "access_type",
    "protocols",
    "transports",
    "anonymous_uid",
    "anonymous_gid",
    "sectype",
    "privilegedport",
    "manage_gids",
    "squash",
    "nfs_commit",
    "delegations",
    "disable_acl",
];

/// Parameters of an EXPORT block besides the permissions.
const EXPORT_ONLY: &[&str] = &[
    "export_id",
    "path",
    "pseudo",
    "tag",
    "maxread",
    "maxwrite",
    "prefread",
    "prefwrite",
    "prefreaddir",
    "maxoffsetwrite",
    "maxoffsetread",
    "usecookieverifier",
    "disablereaddirplus",
    "trust_readdir_negative_cache",
    "filesystem_id",
    "attr_expiration_time",
    "security_label",
    "expire_time_attr",
];

/// A closed set of values, by parameter.
fn allowed(name: &str) -> Option<&'static [&'static str]> {
    const BOOL: &[&str] = &["true", "false", "yes", "no", "on", "off", "1", "0"];
    Some(match name {
        "access_type" => &["none", "rw", "ro", "mdonly", "mdonly_ro"],
        "protocols" => &["3", "4", "nfs3", "nfs4", "v3", "v4", "nfsv3", "nfsv4", "9p"],
        "transports" => &["tcp", "udp"],
        "sectype" => &["none", "sys", "krb5", "krb5i", "krb5p"],
        "squash" => &[
            "root",
            "root_squash",
            "rootsquash",
            "all",
            "all_squash",
            "allsquash",
            "no_root_squash",
            "none",
            "noidsquash",
            "root_id_squash",
            "rootidsquash",
            "no_all_squash",
        ],
        "privilegedport"
        | "manage_gids"
        | "disable_acl"
        | "usecookieverifier"
        | "disablereaddirplus"
        | "trust_readdir_negative_cache"
        | "security_label" => BOOL,
        _ => return None,
    })
}

/// What ganesha would refuse in a file of EXPORT blocks; empty if nothing.
pub(super) fn check(text: &str) -> Vec<String> {
    let toks = match lex(text) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let top = match items(&toks, &mut 0, false) {
        Ok(i) => i,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    let mut pseudos = HashSet::new();
    for item in &top {
        match item {
            Item::Block { name, items, line } if name.eq_ignore_ascii_case("export") => {
                export(items, *line, &mut ids, &mut pseudos, &mut problems)
            }
            Item::Block { name, line, .. } | Item::Param { name, line, .. } => problems.push(
                format!("line {line}: {name} at the top: ddc's file holds EXPORT blocks only"),
            ),
        }
    }
    problems
}

fn export(
    items: &[Item],
    line: usize,
    ids: &mut HashSet<u32>,
    pseudos: &mut HashSet<String>,
    problems: &mut Vec<String>,
) {
    let known = |n: &str| PERMISSIONS.contains(&n) || EXPORT_ONLY.contains(&n);
    let own = params(items, "EXPORT", &known, problems);
    let mut fsals = 0;
    for item in items {
        match item {
            Item::Block { name, items, line } if name.eq_ignore_ascii_case("fsal") => {
                fsals += 1;
                let p = params(items, "FSAL", &|_| true, problems);
                if !p.iter().any(|(n, _, _)| n == "name") {
                    problems.push(format!("line {line}: FSAL without Name"));
                }
                nested_blocks(items, "FSAL", problems);
            }
            Item::Block { name, items, line } if name.eq_ignore_ascii_case("client") => {
                let p = params(
                    items,
                    "CLIENT",
                    &|n| PERMISSIONS.contains(&n) || n == "clients",
                    problems,
                );
                if !p.iter().any(|(n, _, _)| n == "clients") {
                    problems.push(format!("line {line}: CLIENT without Clients"));
                }
                nested_blocks(items, "CLIENT", problems);
            }
            Item::Block { name, line, .. } => {
                problems.push(format!("line {line}: unknown block {name} in EXPORT"))
            }
            Item::Param { .. } => {}
        }
    }
    if fsals != 1 {
        problems.push(format!(
            "line {line}: EXPORT needs one FSAL block, it has {fsals}"
        ));
    }
    let get = |key: &str| own.iter().find(|(n, _, _)| n == key);
    match get("export_id") {
        None => problems.push(format!("line {line}: EXPORT without Export_Id")),
        Some((_, v, l)) => match v.parse::<u32>() {
            Ok(id) if (1..=65535).contains(&id) => {
                if !ids.insert(id) {
                    problems.push(format!("line {l}: Export_Id {id} is used twice"));
                }
            }
            _ => problems.push(format!(
                "line {l}: Export_Id {v:?} is not a number from 1 to 65535"
            )),
        },
    }
    match get("path") {
        None => problems.push(format!("line {line}: EXPORT without Path")),
        Some((_, v, l)) if !v.starts_with('/') || !Path::new(v).is_dir() => {
            problems.push(format!("line {l}: Path {v:?} is not an existing folder"))
        }
        Some(_) => {}
    }
    if let Some((_, v, l)) = get("pseudo") {
        if !v.starts_with('/') {
            problems.push(format!("line {l}: Pseudo {v:?} is not an absolute path"));
        } else if !pseudos.insert(v.clone()) {
            problems.push(format!("line {l}: Pseudo {v:?} is used twice"));
        }
    }
}

/// The block's parameters as (lowercase name, first value, line), with
/// unknown, repeated and badly valued ones reported.
fn params(
    items: &[Item],
    block: &str,
    known: &dyn Fn(&str) -> bool,
    problems: &mut Vec<String>,
) -> Vec<(String, String, usize)> {
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for item in items {
        let Item::Param { name, values, line } = item else {
            continue;
        };
        let key = name.to_ascii_lowercase();
        if !known(&key) {
            problems.push(format!(
                "line {line}: unknown parameter {name} in {block}, which ganesha refuses"
            ));
        } else if out.iter().any(|(n, _, _)| *n == key) {
            problems.push(format!("line {line}: {name} is set twice in {block}"));
        }
        if let Some(set) = allowed(&key) {
            for v in values {
                if !set.contains(&v.to_ascii_lowercase().as_str()) {
                    problems.push(format!(
                        "line {line}: {name} = {v} is not one of {}",
                        set.join(", ")
                    ));
                }
            }
        }
        out.push((key, values[0].clone(), *line));
    }
    out
}

fn nested_blocks(items: &[Item], block: &str, problems: &mut Vec<String>) {
    for item in items {
        if let Item::Block { name, line, .. } = item {
            problems.push(format!("line {line}: unknown block {name} in {block}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An export as ddc's template writes it, of `path`.
    fn export(id: u32, path: &str) -> String {
        format!(
            "EXPORT {{\n    Export_Id = {id};\n    Path = \"{path}\";\n    Pseudo = \"{path}\";\n    \
             Protocols = 3;\n    Transports = TCP, UDP;\n    Access_Type = None;\n    \
             Squash = No_Root_Squash;\n    SecType = sys;\n    PrivilegedPort = true;\n    \
             FSAL {{\n        Name = VFS;\n    }}\n    CLIENT {{\n        Clients = 192.0.2.0/24;\n        \
             Access_Type = RO; # read-only\n        PrivilegedPort = true;\n        Protocols = 3;\n    }}\n}}\n"
        )
    }

    #[test]
    fn ddcs_exports_pass() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let text = format!(
            "# header\n{}{}",
            export(100, a.to_str().unwrap()),
            export(101, b.to_str().unwrap())
        );
        assert_eq!(check(&text), Vec::<String>::new());
        assert_eq!(check("# no exports at all\n"), Vec::<String>::new());
    }

    #[test]
    fn what_ganesha_refuses_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_str().unwrap().to_string();
        let good = export(100, &p);
        let cases: Vec<(String, &str)> = vec![
            (
                good.replace("Squash = No_Root_Squash;", "Squash = No_Root_Squash"),
                "line 8: ';' expected after Squash",
            ),
            (
                good.replace("SecType = sys;", "SecType = sys;\n    Foo = 1;"),
                "line 10: unknown parameter Foo in EXPORT, which ganesha refuses",
            ),
            (
                good.replace("Access_Type = RO;", "Access_Type = RX;"),
                "line 16: Access_Type = RX is not one of none, rw, ro, mdonly, mdonly_ro",
            ),
            (
                good.replace(
                    &format!("Path = \"{p}\""),
                    &format!("Path = \"{p}/missing\""),
                ),
                "Path",
            ),
            (
                good.replace("Export_Id = 100;", "Export_Id = 70000;"),
                "line 2: Export_Id \"70000\" is not a number from 1 to 65535",
            ),
            (
                format!("{good}{}", good.replace("Pseudo", "Tag")),
                "line 22: Export_Id 100 is used twice",
            ),
            (
                good.replace("Name = VFS;", ""),
                "line 11: FSAL without Name",
            ),
            (
                good.trim_end().trim_end_matches('}').to_string(),
                "a block is not closed",
            ),
            (
                good.replace("Path = \"", "Path = \"x"),
                "is not an existing folder",
            ),
            (
                format!("NFS_CORE_PARAM {{ Protocols = 3; }}\n{good}"),
                "line 1: NFS_CORE_PARAM at the top: ddc's file holds EXPORT blocks only",
            ),
            (
                good.replace("Transports = TCP, UDP;", "Transports = TCP, \"UDP;"),
                "unterminated string",
            ),
        ];
        for (text, want) in cases {
            let got = check(&text);
            assert!(
                got.iter().any(|p| p.contains(want)),
                "want {want:?} in {got:?} for:\n{text}"
            );
        }
    }
}

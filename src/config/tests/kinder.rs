//! The "did you mean" and syntax messages, as exact-text tables; suites and
//! architectures checked against a mirror's answers.

use super::*;
use crate::config::release::{Answer, Release};

/// What a mirror that has bookworm (amd64, arm64) and nothing else answers.
fn mirror(_: &str, suite: &str) -> Answer {
    match suite {
        "bookworm" => Answer::Found(Release {
            suite: "stable".into(),
            codename: "bookworm".into(),
            architectures: vec!["all".into(), "amd64".into(), "arm64".into()],
        }),
        _ => Answer::Missing(format!(
            "http://mirror.invalid/debian/dists/{suite}/Release answered 404 Not Found"
        )),
    }
}

fn offline(_: &str, _: &str) -> Answer {
    Answer::Unreachable("connection refused".into())
}

fn parse_asking(
    text: &str,
    archive: crate::config::release::Archive,
) -> Result<Config, ConfigErrors> {
    parse_with(
        text,
        "Ddcfile.toml",
        Path::new("/nonexistent"),
        &|| "http://mirror.invalid/debian".to_string(),
        archive,
    )
}

/// Whether `got` is `want`, where each `…` of `want` stands for any text
/// (the lists of expected keys, which grow with the Ddcfile).
fn matches(got: &str, want: &str) -> bool {
    let parts: Vec<&str> = want.split('…').collect();
    let mut rest = got;
    for (i, part) in parts.iter().enumerate() {
        let found = if i == 0 {
            rest.strip_prefix(part).map(|r| (0, r))
        } else if i == parts.len() - 1 {
            rest.ends_with(part).then_some((0, ""))
        } else {
            rest.find(part).map(|at| (at, &rest[at + part.len()..]))
        };
        match found {
            Some((_, r)) => rest = r,
            None => return false,
        }
    }
    parts.len() > 1 || rest.is_empty()
}

#[test]
fn near_names_are_suggested() {
    let two_images = BASE.replacen(
        "[[nodes]]",
        "[images.gpu]\nsuite = \"bookworm\"\n\n[[nodes]]",
        1,
    );
    // (Ddcfile, replace this, with that) → exact message
    let table: &[(&str, &str, &str, &str)] = &[
        (BASE, "packages = [", "pakages = [",
         "Ddcfile.toml:7:1: unknown field `pakages`, expected one of `from`, `suite`, `arch`, `packages`, `union`, `cmdline`, `mirror`, `bootstrapper`, `files`, `root_password_hash`, `ssh_authorized_keys`, `nis_domain`…; did you mean `packages`?"),
        (BASE, "master = ", "mastr = ",
         "Ddcfile.toml:3:1: unknown field `mastr`, expected one of `network`, `master`, `gateway`, `dns`, `domain`, `syslog`…; did you mean `master`?"),
        (BASE, "hostname = ", "hostnme = ",
         "Ddcfile.toml:10:1: unknown field `hostnme`, expected one of `hostname`, `mac`, `ip`, `image`, `cmdline`…; did you mean `hostname`?"),
        (&two_images, "ip = \"192.0.2.11\"", "ip = \"192.0.2.11\"\nimage = \"defualt\"",
         "Ddcfile.toml:16:9: image: names image \"defualt\", which is not defined; did you mean \"default\"? (defined: default, gpu; or define [images.defualt])"),
        (&two_images, "ip = \"192.0.2.11\"", "ip = \"192.0.2.11\"\n\n[server]\ndefault_entry = \"gpus\"",
         "Ddcfile.toml:18:17: server.default_entry: names image \"gpus\", which is not defined; did you mean \"gpu\"? (defined: default, gpu; or define [images.gpus])"),
        (BASE, "suite = \"bookworm\"", "suite = \"bookwrm\"",
         "Ddcfile.toml:6:9: images.default.suite: \"bookwrm\" is not a suite of http://mirror.invalid/debian (http://mirror.invalid/debian/dists/bookwrm/Release answered 404 Not Found); did you mean \"bookworm\"?"),
        (BASE, "suite = \"bookworm\"", "suite = \"bookworm\"\narch = \"amd46\"",
         "Ddcfile.toml:7:8: images.default.arch: \"amd46\" is not an architecture of bookworm in http://mirror.invalid/debian (it has amd64, arm64); did you mean \"amd64\"?"),
    ];
    for (base, from, to, want) in table {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        match parse_asking(&text, &mirror) {
            Ok(_) => panic!("no error for {to:?}"),
            Err(e) => assert!(
                matches(&e.to_string(), want),
                "for {to:?}:\n{e}\nwant:\n{want}"
            ),
        }
    }
}

#[test]
fn known_suites_and_arches_ask_no_mirror_and_unknown_ones_offline_are_warnings() {
    let never = |_: &str, _: &str| -> Answer { panic!("a known name was looked up") };
    for (suite, arch) in [
        ("trixie", "arm64"),
        ("bookworm-backports", "riscv64"),
        ("sid", "loong64"),
    ] {
        let text = BASE.replacen(
            "suite = \"bookworm\"",
            &format!("suite = \"{suite}\"\narch = \"{arch}\""),
            1,
        );
        let c = parse_asking(&text, &never).unwrap();
        assert!(c.warnings.is_empty());
    }
    let text = BASE.replacen(
        "suite = \"bookworm\"",
        "suite = \"bookwrm\"\narch = \"amd46\"",
        1,
    );
    let c = parse_asking(&text, &offline).unwrap();
    assert_eq!(
        c.warnings,
        [
            "Ddcfile.toml:6:9: images.default.suite: \"bookwrm\" is not a Debian suite ddc knows, and http://mirror.invalid/debian could not be asked (connection refused); did you mean \"bookworm\"?",
            "Ddcfile.toml:7:8: images.default.arch: \"amd46\" is not a Debian architecture ddc knows, and http://mirror.invalid/debian could not be asked (connection refused); did you mean \"amd64\"?",
        ]
    );
    // A suite the mirror has, though ddc does not know it (Ubuntu's, say).
    let jammy = |_: &str, s: &str| {
        assert_eq!(s, "jammy");
        Answer::Found(Release {
            suite: "jammy".into(),
            codename: "jammy".into(),
            architectures: vec!["amd64".into()],
        })
    };
    let text = BASE.replacen("suite = \"bookworm\"", "suite = \"jammy\"", 1);
    assert!(parse_asking(&text, &jammy).unwrap().warnings.is_empty());
}

#[test]
fn toml_syntax_errors_are_all_shown_with_their_line() {
    let text = BASE
        .replacen("master = \"192.0.2.1\"", "master = \"192.0.2.1", 1)
        .replacen("ip = \"192.0.2.11\"", "ip = 192.0.2.11", 1);
    assert_eq!(
        errors(&text),
        "Ddcfile.toml:3:20: TOML syntax: invalid basic string, expected `\"`\n 3 | master = \"192.0.2.1\n   |                    ^\n\
         Ddcfile.toml:12:11: TOML syntax: invalid float, expected nothing\n 12 | ip = 192.0.2.11\n    |           ^\n\
         Ddcfile.toml: fix these 2 syntax errors and run again: keys and values are checked once the file reads as TOML, and a line read wrongly may hide another error"
    );
    // An unclosed array takes the lines after it in: the first error in it
    // is the last one shown.
    let text = BASE.replacen(
        "packages = [\"linux-image-amd64\"]",
        "packages = [\"linux-image-amd64\"",
        1,
    );
    assert_eq!(
        errors(&text),
        "Ddcfile.toml:9:1: TOML syntax: missing comma between array elements, expected `,`\n 9 | [[nodes]]\n   | ^\n\
         Ddcfile.toml: fix this syntax error and run again: keys and values are checked once the file reads as TOML, and a line read wrongly may hide another error"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// Broken TOML of any kind, multibyte characters included, gets its
    /// syntax errors, each with a line, and never a panic.
    #[test]
    fn broken_toml_never_panics(cut in 0usize..400, insert in "[\\[\\]\"'={}é\\n ]{1,6}") {
        let mut text = BASE.replace("node01", "nødé01");
        let mut at = cut.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.insert_str(at, &insert);
        let _ = parse_str(&text);
    }
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    let text = BASE
        .replacen("master = ", "mastr = ", 1)
        .replacen("packages = [", "pakages = [", 1)
        .replacen("hostname = ", "hostnme = ", 1);
    let got = errors(&text);
    assert!(matches(&got,
        "Ddcfile.toml:3:1: unknown field `mastr`, expected one of `network`, `master`, `gateway`, `dns`, `domain`, `syslog`…; did you mean `master`?\n\
         Ddcfile.toml:7:1: unknown field `pakages`, expected one of `from`, `suite`, `arch`, `packages`, `union`, `cmdline`, `mirror`, `bootstrapper`, `files`, `root_password_hash`, `ssh_authorized_keys`, `nis_domain`…; did you mean `packages`?\n\
         Ddcfile.toml:10:1: unknown field `hostnme`, expected one of `hostname`, `mac`, `ip`, `image`, `cmdline`…; did you mean `hostname`?"
    ), "{got}");
}

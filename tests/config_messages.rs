//! Config mistakes through the binary: "did you mean" for keys, image
//! names, task names, suites and architectures (asked of a real mirror: a
//! `file:` one on disk, an http one on the loopback), and TOML syntax
//! errors with their line. Exit 2 for each error; a mirror out of reach is
//! a warning, and an answer found is never asked for again.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{Project, DDCFILE};

/// A `file:` mirror in the project with bookworm for amd64 and arm64.
fn with_file_mirror(p: &Project) -> String {
    p.write(
        "mirror/dists/bookworm/Release",
        "Origin: Debian\nSuite: stable\nCodename: bookworm\nArchitectures: all amd64 arm64\nMD5Sum:\n 0 0 main/Release\n",
    );
    format!("file:{}", p.path("mirror").display())
}

#[test]
fn mistakes_get_the_nearest_name() {
    let p = Project::new();
    let mirror = with_file_mirror(&p);
    let image = |extra: &str| {
        DDCFILE.replacen(
            "cmdline  = \"console=ttyS0\"",
            &format!("cmdline  = \"console=ttyS0\"\nmirror   = \"{mirror}\"\n{extra}"),
            1,
        )
    };
    let dir = p.path("").display().to_string();
    // (Ddcfile, the line of stderr that must be there)
    let table: Vec<(String, String)> = vec![
        (
            DDCFILE.replacen("packages = [", "pakages = [", 1),
            "error: Ddcfile.toml:18:1: unknown field `pakages`, expected one of `from`, `suite`, `arch`, `packages`, `union`, `cmdline`, `mirror`, `bootstrapper`, `files`, `root_password_hash`, `ssh_authorized_keys`, `nis_domain`…; did you mean `packages`?".into(),
        ),
        (
            DDCFILE.replacen("ip       = \"192.0.2.12\"", "ip       = \"192.0.2.12\"\nimage    = \"defualt\"", 1),
            "error: Ddcfile.toml:31:12: image: names image \"defualt\", which is not defined; did you mean \"default\"? (defined: default; or define [images.defualt])".into(),
        ),
        (
            image("").replacen("suite    = \"bookworm\"", "suite    = \"bookwrm\"", 1),
            format!("error: Ddcfile.toml:16:12: images.default.suite: \"bookwrm\" is not a suite of {mirror} (there is no {dir}mirror/dists/bookwrm/Release); did you mean \"bookworm\"?"),
        ),
        (
            image("").replacen("arch     = \"amd64\"", "arch     = \"amd46\"", 1),
            format!("error: Ddcfile.toml:17:12: images.default.arch: \"amd46\" is not an architecture of bookworm in {mirror} (it has amd64, arm64); did you mean \"amd64\"?"),
        ),
        (
            DDCFILE.replacen("master  = \"192.0.2.1\"", "master  = \"192.0.2.1", 1),
            "error: Ddcfile.toml:5:21: TOML syntax: invalid basic string, expected `\"`\nerror:  5 | master  = \"192.0.2.1\nerror:    |                     ^\nerror: Ddcfile.toml: fix this syntax error and run again: keys and values are checked once the file reads as TOML, and a line read wrongly may hide another error".into(),
        ),
    ];
    for (ddcfile, want) in &table {
        p.write("Ddcfile.toml", ddcfile);
        let r = p.ddc(&["graph"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        // `…`: any text (the lists of keys grow with the Ddcfile).
        assert!(
            want.split('…').all(|part| r.stderr.contains(part)),
            "want:\n{want}\ngot:\n{}",
            r.stderr
        );
    }
    p.write("Ddcfile.toml", DDCFILE);
    let r = p.ddc(&["build", "-n", "pakages:defualt"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "no task \"pakages:defualt\" in this build; did you mean \"packages:default\"?"
        ),
        "{}",
        r.stderr
    );
}

/// An http mirror on the loopback that has `jammy` (a suite ddc does not
/// know), counting the requests it answers.
fn http_mirror() -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            counted.fetch_add(1, Ordering::SeqCst);
            let body = "Suite: jammy\nCodename: jammy\nArchitectures: amd64 arm64\n";
            let reply = if request.starts_with("GET /debian/dists/jammy/Release ") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (format!("http://{addr}/debian"), count)
}

#[test]
fn a_suite_ddc_does_not_know_is_asked_of_the_mirror_once() {
    let (mirror, asked) = http_mirror();
    let ddcfile = DDCFILE
        .replacen("suite    = \"bookworm\"", "suite    = \"jammy\"", 1)
        .replacen(
            "cmdline  = \"console=ttyS0\"",
            &format!("cmdline  = \"console=ttyS0\"\nmirror   = \"{mirror}\""),
            1,
        );
    let p = Project::with(&ddcfile);
    // The answers are kept in cache/, which the first build makes.
    p.build(&[]);
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    p.edit("Ddcfile.toml", "52:54:00:12:34:57", "52:54:00:12:34:58");
    p.build(&[]);
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert!(p.read("cache/releases.json").contains("jammy"));
    // Each edit validates the Ddcfile again, and a no-op takes the
    // validated config: neither asks again.
    p.edit("Ddcfile.toml", "52:54:00:12:34:58", "52:54:00:12:34:59");
    p.build(&[]);
    p.build(&[]);
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    // A suite it does not have: an error, naming the nearest Debian one.
    p.edit("Ddcfile.toml", "\"jammy\"", "\"bookwrm\"");
    let r = p.ddc(&["graph"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("images.default.suite: \"bookwrm\" is not a suite of {mirror} ({mirror}/dists/bookwrm/Release answered 404 Not Found); did you mean \"bookworm\"?")),
        "{}",
        r.stderr
    );
}

#[test]
fn a_mirror_out_of_reach_makes_an_unknown_suite_a_warning() {
    // Nobody listens on port 1 of the loopback.
    let ddcfile = DDCFILE
        .replacen("suite    = \"bookworm\"", "suite    = \"bookwrm\"", 1)
        .replacen(
            "cmdline  = \"console=ttyS0\"",
            "cmdline  = \"console=ttyS0\"\nmirror   = \"http://127.0.0.1:1/debian\"",
            1,
        );
    let p = Project::with(&ddcfile);
    let r = p.ddc(&["graph"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warning = r
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: Ddcfile.toml:16:12: images.default.suite: \"bookwrm\" is not a Debian suite ddc knows, and http://127.0.0.1:1/debian could not be asked ("))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        warning.ends_with("; did you mean \"bookworm\"?"),
        "{warning}"
    );
}

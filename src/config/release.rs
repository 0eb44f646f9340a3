//! Suites and architectures: the Debian names ddc knows, and what a mirror's
//! `dists/SUITE/Release` says of a name it does not know.
//!
//! A suite or architecture of the known lists is taken as it is, without
//! asking anyone (a build works offline). Any other is looked up in the
//! image's mirror: a `file:` mirror on disk, an `http(s)://` one with a
//! short timeout. The answers found are kept in `cache/releases.json`, so a
//! Ddcfile validated again asks the network nothing it asked before.
//!
//! Imports only `fsutil` and `read` (bounded reads).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Debian's suites and codenames, old and new: a name of these is a suite.
pub(crate) const SUITES: &[&str] = &[
    "stable",
    "testing",
    "unstable",
    "oldstable",
    "oldoldstable",
    "experimental",
    "sid",
    "rc-buggy",
    "proposed-updates",
    "hamm",
    "slink",
    "potato",
    "woody",
    "sarge",
    "etch",
    "lenny",
    "squeeze",
    "wheezy",
    "jessie",
    "stretch",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
];

/// What may follow a suite's name after a '-' (`bookworm-backports`).
const SUITE_PARTS: &[&str] = &[
    "backports",
    "backports-sloppy",
    "updates",
    "proposed-updates",
    "security",
];

/// Debian's architectures, official and ports.
pub(crate) const ARCHES: &[&str] = &[
    "amd64",
    "arm64",
    "armel",
    "armhf",
    "i386",
    "mips64el",
    "mipsel",
    "ppc64el",
    "riscv64",
    "s390x",
    "loong64",
    "alpha",
    "hppa",
    "ia64",
    "m68k",
    "powerpc",
    "ppc64",
    "sh4",
    "sparc64",
    "x32",
    "hurd-i386",
    "hurd-amd64",
];

/// Whether `suite` is a known suite or codename, or one with a known suffix.
pub(crate) fn known_suite(suite: &str) -> bool {
    SUITES.contains(&suite)
        || SUITES.iter().any(|s| {
            suite
                .strip_prefix(s)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| SUITE_PARTS.contains(&rest))
        })
}

/// What a Release file says of its suite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Release {
    pub(crate) suite: String,
    pub(crate) codename: String,
    pub(crate) architectures: Vec<String>,
}

/// What asking a mirror for a suite's Release gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Found(Release),
    /// The mirror answered: it has no such suite (why, for the message).
    Missing(String),
    /// The mirror could not be asked (offline, a timeout, TLS): why.
    Unreachable(String),
}

/// How validation asks a mirror about a suite: `(mirror, suite)`.
pub(crate) type Archive<'a> = &'a dyn Fn(&str, &str) -> Answer;

/// The fields of a Release file's head that name its suite.
pub(crate) fn parse_release(text: &str) -> Release {
    let mut r = Release::default();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "Suite" => r.suite = v.to_string(),
            "Codename" => r.codename = v.to_string(),
            "Architectures" => r.architectures = v.split_whitespace().map(String::from).collect(),
            _ => {}
        }
    }
    r
}

/// The most of a Release file read: the fields come first, the (long)
/// lists of index hashes after them.
const HEAD: u64 = 64 * 1024;

/// How long asking a mirror may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Asks `mirror` for `dists/SUITE/Release`.
pub(crate) fn fetch(mirror: &str, suite: &str) -> Answer {
    let mirror = mirror.trim_end_matches('/');
    if mirror.is_empty() {
        return Answer::Unreachable("the image has no mirror to ask".into());
    }
    if let Some(path) = mirror.strip_prefix("file:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        let file = Path::new(path).join("dists").join(suite).join("Release");
        return match std::fs::File::open(&file) {
            Ok(f) => {
                let mut text = String::new();
                match f.take(HEAD).read_to_string(&mut text) {
                    Ok(_) => Answer::Found(parse_release(&text)),
                    Err(e) => Answer::Unreachable(format!("{}: {e}", file.display())),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Answer::Missing(format!("there is no {}", file.display()))
            }
            Err(e) => Answer::Unreachable(format!("{}: {e}", file.display())),
        };
    }
    let url = format!("{mirror}/dists/{suite}/Release");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(&url).call() {
        Ok(resp) if resp.status().is_success() => {
            let mut text = String::new();
            match resp
                .into_body()
                .into_reader()
                .take(HEAD)
                .read_to_string(&mut text)
            {
                Ok(_) => Answer::Found(parse_release(&text)),
                Err(e) => Answer::Unreachable(format!("{url}: {e}")),
            }
        }
        Ok(resp) if matches!(resp.status().as_u16(), 404 | 410) => {
            Answer::Missing(format!("{url} answered {}", resp.status()))
        }
        Ok(resp) => Answer::Unreachable(format!("{url} answered {}", resp.status())),
        Err(ureq::Error::Timeout(_)) => {
            Answer::Unreachable(format!("{url}: no answer within {} s", TIMEOUT.as_secs()))
        }
        Err(e) => Answer::Unreachable(format!("{url}: {e}")),
    }
}

/// The answers found before, kept in the cache: `MIRROR SUITE` → Release.
/// Only answers that found a Release are kept: a missing suite is an error
/// the user fixes, and a mirror out of reach is asked again next time.
pub(crate) struct Remembered {
    path: PathBuf,
    found: RefCell<BTreeMap<String, Release>>,
    added: RefCell<bool>,
    /// Every answer of this run: two images of one mirror and suite ask
    /// once, even when the mirror is out of reach.
    this_run: RefCell<BTreeMap<String, Answer>>,
}

impl Remembered {
    pub(crate) fn load(path: &Path) -> Remembered {
        let found = super::read::read_bounded(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Remembered {
            path: path.to_path_buf(),
            found: RefCell::new(found),
            added: RefCell::new(false),
            this_run: RefCell::new(BTreeMap::new()),
        }
    }

    /// The remembered answer, or `fetch`'s (remembered if found).
    pub(crate) fn ask(&self, mirror: &str, suite: &str, fetch: Archive) -> Answer {
        let key = format!("{mirror} {suite}");
        if let Some(r) = self.found.borrow().get(&key) {
            return Answer::Found(r.clone());
        }
        if let Some(a) = self.this_run.borrow().get(&key) {
            return a.clone();
        }
        let answer = fetch(mirror, suite);
        self.this_run
            .borrow_mut()
            .insert(key.clone(), answer.clone());
        if let Answer::Found(r) = &answer {
            self.found.borrow_mut().insert(key, r.clone());
            *self.added.borrow_mut() = true;
        }
        answer
    }

    /// Writes the answers down when one was added and the cache folder exists.
    pub(crate) fn save(&self) {
        if !*self.added.borrow() || !self.path.parent().is_some_and(Path::is_dir) {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec_pretty(&*self.found.borrow()) {
            // Only a speed-up: a failure to write it changes nothing.
            let _ = crate::fsutil::atomic_write_mode(&self.path, &bytes, false, 0o644);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn a_mirror_out_of_reach_is_asked_once_a_run_and_not_remembered() {
        let d = tempfile::tempdir().unwrap();
        let memo = d.path().join("releases.json");
        let asked = std::cell::Cell::new(0);
        let offline = |_: &str, _: &str| {
            asked.set(asked.get() + 1);
            Answer::Unreachable("connection refused".into())
        };
        let r = Remembered::load(&memo);
        for _ in 0..3 {
            assert!(matches!(
                r.ask("http://m/debian", "jammy", &offline),
                Answer::Unreachable(_)
            ));
        }
        assert_eq!(asked.get(), 1);
        r.save();
        assert!(!memo.exists());
        let again = Remembered::load(&memo);
        again.ask("http://m/debian", "jammy", &offline);
        assert_eq!(asked.get(), 2);
    }

    #[test]
    fn known_suites_and_their_suffixes() {
        for s in [
            "bookworm",
            "stable",
            "sid",
            "bookworm-backports",
            "trixie-security",
        ] {
            assert!(known_suite(s), "{s}");
        }
        for s in ["bookwrm", "bookworm-foo", "jammy", "stable-"] {
            assert!(!known_suite(s), "{s}");
        }
    }

    #[test]
    fn a_file_mirror_is_read_from_disk() {
        let d = tempfile::tempdir().unwrap();
        let dists = d.path().join("dists/bookworm");
        std::fs::create_dir_all(&dists).unwrap();
        std::fs::write(
            dists.join("Release"),
            "Origin: Debian\nSuite: stable\nCodename: bookworm\nArchitectures: all amd64 arm64\nMD5Sum:\n abc 12 main/Release\n",
        )
        .unwrap();
        let mirror = format!("file:{}", d.path().display());
        assert_eq!(
            fetch(&mirror, "bookworm"),
            Answer::Found(Release {
                suite: "stable".into(),
                codename: "bookworm".into(),
                architectures: vec!["all".into(), "amd64".into(), "arm64".into()],
            })
        );
        assert!(
            matches!(fetch(&mirror, "bookwrm"), Answer::Missing(m) if m.contains("dists/bookwrm/Release"))
        );
    }

    /// A one-request HTTP server on the loopback answering `response`.
    fn serve_once(response: &'static str) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(response.as_bytes());
            }
        });
        format!("http://{addr}/debian")
    }

    #[test]
    fn an_http_mirror_is_asked_and_its_answers_remembered() {
        let body = "Suite: testing\nCodename: trixie\nArchitectures: amd64 riscv64\n";
        let ok: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let mirror = serve_once(ok);
        let d = tempfile::tempdir().unwrap();
        let memo = d.path().join("releases.json");
        let remembered = Remembered::load(&memo);
        let Answer::Found(r) = remembered.ask(&mirror, "trixie", &fetch) else {
            panic!("not found");
        };
        assert_eq!(r.architectures, ["amd64", "riscv64"]);
        remembered.save();
        // The server is gone: the answer comes from the memo.
        let again = Remembered::load(&memo);
        assert_eq!(again.ask(&mirror, "trixie", &fetch), Answer::Found(r));

        let missing =
            serve_once("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        assert!(matches!(fetch(&missing, "bookwrm"), Answer::Missing(m) if m.contains("404")));
        // Nobody listens on port 1 of the loopback.
        assert!(matches!(
            fetch("http://127.0.0.1:1/debian", "bookwrm"),
            Answer::Unreachable(_)
        ));
    }
}

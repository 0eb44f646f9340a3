//! Finds the files of a published image that hold secrets: whoever is root on
//! a machine of the cluster network can read them over NFS, since the export
//! trusts the uid that a privileged port claims.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A secret-bearing file, relative to the image root, and why it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub path: PathBuf,
    pub why: String,
}

/// The secret-bearing files of the image at `root`: an `/etc/shadow` with a
/// password hash, SSH host private keys, and the files that came from the
/// image's `files` tree (at `files`, on the master) and are not
/// world-readable in the image.
pub fn secret_files(root: &Path, files: Option<&Path>) -> Vec<Secret> {
    let mut out = Vec::new();
    if let Some(users) = shadow_hashes(&root.join("etc/shadow")) {
        out.push(Secret {
            path: "etc/shadow".into(),
            why: format!("password hash of {}", users.join(", ")),
        });
    }
    if let Ok(dir) = std::fs::read_dir(root.join("etc/ssh")) {
        let mut keys: Vec<String> = dir
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ssh_host_") && n.ends_with("_key"))
            .collect();
        keys.sort();
        out.extend(keys.into_iter().map(|k| Secret {
            path: Path::new("etc/ssh").join(k),
            why: "SSH host private key".into(),
        }));
    }
    if let Some(files) = files {
        for entry in walkdir::WalkDir::new(files)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(files) else {
                continue;
            };
            // Mode as in the image (the files tree keeps its modes).
            let Ok(m) = std::fs::symlink_metadata(root.join(rel)) else {
                continue;
            };
            let mode = m.permissions().mode() & 0o7777;
            let hidden = m.is_file() && mode & 0o004 == 0;
            // The few found above (shadow, host keys) may come from the tree too.
            if hidden && !out.iter().any(|s| s.path == rel) {
                out.push(Secret {
                    path: rel.to_path_buf(),
                    why: format!("from the files tree, mode {mode:04o}"),
                });
            }
        }
    }
    out
}

/// The users of a shadow file whose password field holds a hash (a locked
/// `!hash` included: the hash is still there to crack).
fn shadow_hashes(shadow: &Path) -> Option<Vec<String>> {
    let meta = std::fs::symlink_metadata(shadow).ok()?;
    if !meta.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(shadow).ok()?;
    let users: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(':');
            let user = fields.next()?;
            let hash = fields.next()?.trim_start_matches('!');
            let real = !hash.is_empty() && hash != "*" && hash != "x";
            real.then(|| user.to_string())
        })
        .collect();
    (!users.is_empty()).then_some(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(root: &Path, rel: &str, text: &str, mode: u32) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn finds_hashes_host_keys_and_private_files() {
        let image = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let r = image.path();
        write(
            r,
            "etc/shadow",
            "root:$y$j9T$abc$def:19000:0:99999:7:::\ndaemon:*:19000::::::\nlocked:!$6$x$y:1::::::\nnobody:!:1::::::\n",
            0o640,
        );
        write(r, "etc/ssh/ssh_host_ed25519_key", "k", 0o600);
        write(r, "etc/ssh/ssh_host_ed25519_key.pub", "k", 0o644);
        write(r, "etc/ssh/sshd_config", "x", 0o644);
        for (rel, mode) in [("etc/app/token", 0o600), ("etc/app/public", 0o644)] {
            write(files.path(), rel, "x", mode);
            write(r, rel, "x", mode);
        }
        let found = secret_files(r, Some(files.path()));
        let paths: Vec<_> = found.iter().map(|s| s.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "etc/shadow",
                "etc/ssh/ssh_host_ed25519_key",
                "etc/app/token"
            ]
        );
        assert_eq!(found[0].why, "password hash of root, locked");
        assert_eq!(found[2].why, "from the files tree, mode 0600");
    }

    #[test]
    fn a_shadow_without_hashes_is_no_secret() {
        let image = tempfile::tempdir().unwrap();
        write(
            image.path(),
            "etc/shadow",
            "root:*:19000:0:99999:7:::\nnobody:!:1::::::\n",
            0o640,
        );
        assert!(secret_files(image.path(), None).is_empty());
    }
}

//! The configure step's SSH host keys (`tasks/configure/ssh-host-keys`), run
//! by `sh` as configure.sh runs it, against crafted root filesystems: a
//! symbolic link in the image (`/etc/ssh`, a key file) or in the keys folder
//! that leads to a stand-in for the master's own keys makes the step fail
//! and name the link, and leaves the master's files and the keys folder
//! untouched; without links the keys are kept, then installed. And the
//! whole configure.sh refuses an image whose /etc is a link before it
//! writes anything.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/configure/ssh-host-keys")
}

/// A temporary folder with `rootfs/` (the image), `master/etc/ssh/` (the
/// master's keys, standing in for /etc/ssh) and `cache/ssh-host-keys/img`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(f.root().join("etc")).unwrap();
        fs::create_dir_all(f.master()).unwrap();
        fs::create_dir_all(f.keys().parent().unwrap()).unwrap();
        write_pair(&f.master(), "ed25519", "MASTER");
        f
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
    fn master(&self) -> PathBuf {
        self.dir.path().join("master/etc/ssh")
    }
    fn keys(&self) -> PathBuf {
        self.dir.path().join("cache/ssh-host-keys/img")
    }
    fn run(&self) -> Output {
        Command::new("sh")
            .arg(script())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("DDC_ROOTFS", self.root())
            .env("DDC_SSH_HOST_KEYS", self.keys())
            .output()
            .unwrap()
    }
    /// The master's key files, unchanged: names and contents.
    fn assert_master_untouched(&self) {
        let mut names: Vec<String> = fs::read_dir(self.master())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]);
        let key = fs::read_to_string(self.master().join("ssh_host_ed25519_key")).unwrap();
        assert_eq!(key, "MASTER private ed25519\n");
    }
    /// Whether the keys folder holds any file mentioning MASTER.
    fn keys_hold_master(&self) -> bool {
        let Ok(rd) = fs::read_dir(self.keys()) else {
            return false;
        };
        rd.map(|e| e.unwrap().path())
            .any(|p| fs::read_to_string(p).is_ok_and(|s| s.contains("MASTER")))
    }
}

fn write_pair(dir: &Path, kind: &str, who: &str) {
    let key = dir.join(format!("ssh_host_{kind}_key"));
    fs::write(&key, format!("{who} private {kind}\n")).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(
        dir.join(format!("ssh_host_{kind}_key.pub")),
        format!("{who} public {kind}\n"),
    )
    .unwrap();
}

fn assert_refused(out: &Output, link: &Path) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the step must fail; stderr: {err}");
    let want = format!("{} is a symbolic link", link.display());
    assert!(err.contains(&want), "stderr names {want:?}: {err}");
    assert!(err.contains("master's own keys"), "says why: {err}");
}

#[test]
fn image_etc_ssh_linked_to_the_masters_is_refused_on_first_build() {
    let f = Fixture::new();
    let link = f.root().join("etc/ssh");
    symlink(f.master(), &link).unwrap();
    let out = f.run();
    assert_refused(&out, &link);
    f.assert_master_untouched();
    assert!(!f.keys_hold_master(), "the master's key reached the cache");
}

#[test]
fn image_etc_ssh_linked_to_the_masters_is_refused_with_kept_keys() {
    // The install direction would remove the master's keys and write the
    // image's over them.
    let f = Fixture::new();
    fs::create_dir_all(f.keys()).unwrap();
    write_pair(&f.keys(), "ed25519", "KEPT");
    let link = f.root().join("etc/ssh");
    symlink(f.master(), &link).unwrap();
    let out = f.run();
    assert_refused(&out, &link);
    f.assert_master_untouched();
}

#[test]
fn image_etc_linked_out_is_refused() {
    let f = Fixture::new();
    fs::remove_dir(f.root().join("etc")).unwrap();
    let link = f.root().join("etc");
    symlink(f.master().parent().unwrap(), &link).unwrap();
    let out = f.run();
    assert_refused(&out, &link);
    f.assert_master_untouched();
    assert!(!f.keys_hold_master());
}

#[test]
fn image_key_file_linked_to_the_masters_is_refused() {
    let f = Fixture::new();
    let ssh = f.root().join("etc/ssh");
    fs::create_dir_all(&ssh).unwrap();
    write_pair(&ssh, "rsa", "IMAGE");
    let link = ssh.join("ssh_host_ed25519_key");
    symlink(f.master().join("ssh_host_ed25519_key"), &link).unwrap();
    fs::write(ssh.join("ssh_host_ed25519_key.pub"), "IMAGE public\n").unwrap();
    let out = f.run();
    assert_refused(&out, &link);
    f.assert_master_untouched();
    assert!(!f.keys_hold_master(), "the master's key reached the cache");
}

#[test]
fn public_key_link_is_refused_too() {
    let f = Fixture::new();
    let ssh = f.root().join("etc/ssh");
    fs::create_dir_all(&ssh).unwrap();
    fs::write(ssh.join("ssh_host_ed25519_key"), "IMAGE private\n").unwrap();
    let link = ssh.join("ssh_host_ed25519_key.pub");
    symlink(f.master().join("ssh_host_ed25519_key"), &link).unwrap();
    let out = f.run();
    assert_refused(&out, &link);
    assert!(!f.keys_hold_master());
}

#[test]
fn keys_folder_linked_to_the_masters_is_refused() {
    let f = Fixture::new();
    let ssh = f.root().join("etc/ssh");
    fs::create_dir_all(&ssh).unwrap();
    write_pair(&ssh, "ed25519", "IMAGE");
    symlink(f.master(), f.keys()).unwrap();
    let out = f.run();
    assert_refused(&out, &f.keys());
    f.assert_master_untouched();
    let image_key = fs::read_to_string(ssh.join("ssh_host_ed25519_key")).unwrap();
    assert_eq!(image_key, "IMAGE private ed25519\n");
}

#[test]
fn kept_key_linked_to_the_masters_is_refused() {
    let f = Fixture::new();
    let ssh = f.root().join("etc/ssh");
    fs::create_dir_all(&ssh).unwrap();
    write_pair(&ssh, "ed25519", "IMAGE");
    fs::create_dir_all(f.keys()).unwrap();
    let link = f.keys().join("ssh_host_ed25519_key");
    symlink(f.master().join("ssh_host_ed25519_key"), &link).unwrap();
    fs::write(f.keys().join("ssh_host_ed25519_key.pub"), "x\n").unwrap();
    let out = f.run();
    assert_refused(&out, &link);
    f.assert_master_untouched();
    let image_key = fs::read_to_string(ssh.join("ssh_host_ed25519_key")).unwrap();
    assert_eq!(
        image_key, "IMAGE private ed25519\n",
        "the master's key reached the image"
    );
}

#[test]
fn keys_are_kept_then_installed_without_links() {
    common::require_root("it installs the keys owned by root (install -o 0 -g 0)");
    let f = Fixture::new();
    let ssh = f.root().join("etc/ssh");
    fs::create_dir_all(&ssh).unwrap();
    write_pair(&ssh, "ed25519", "FIRST");
    let out = f.run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept = fs::read_to_string(f.keys().join("ssh_host_ed25519_key")).unwrap();
    assert_eq!(kept, "FIRST private ed25519\n");
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(f.keys()), 0o700);
    assert_eq!(mode(f.keys().join("ssh_host_ed25519_key")), 0o600);
    assert_eq!(mode(f.keys().join("ssh_host_ed25519_key.pub")), 0o644);

    // A later build: the image has new keys; the kept ones replace them.
    fs::remove_file(ssh.join("ssh_host_ed25519_key")).unwrap();
    fs::remove_file(ssh.join("ssh_host_ed25519_key.pub")).unwrap();
    write_pair(&ssh, "ed25519", "SECOND");
    let out = f.run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = fs::read_to_string(ssh.join("ssh_host_ed25519_key")).unwrap();
    assert_eq!(installed, "FIRST private ed25519\n");
    assert_eq!(mode(ssh.join("ssh_host_ed25519_key")), 0o600);
    assert_eq!(mode(ssh.join("ssh_host_ed25519_key.pub")), 0o644);
    f.assert_master_untouched();
}

#[test]
fn image_without_keys_needs_no_keys_folder() {
    let f = Fixture::new();
    let out = Command::new("sh")
        .arg(script())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("DDC_ROOTFS", f.root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!f.keys().exists());
}

#[test]
fn configure_refuses_an_image_etc_linked_out_before_writing() {
    // The whole configure.sh: its first write (/etc/fstab) would go
    // through the link to the master's /etc.
    let f = Fixture::new();
    fs::remove_dir(f.root().join("etc")).unwrap();
    let link = f.root().join("etc");
    symlink(f.master().parent().unwrap(), &link).unwrap();
    let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks");
    let out = Command::new("sh")
        .arg(tasks.join("configure.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("DDC_ROOTFS", f.root())
        .env("DDC_TASKS_DIR", &tasks)
        .env("DDC_SSH_HOST_KEYS", f.keys())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let want = format!("{} is a symbolic link", link.display());
    assert!(err.contains(&want), "stderr names {want:?}: {err}");
    assert!(!f.master().parent().unwrap().join("fstab").exists());
    f.assert_master_untouched();
}

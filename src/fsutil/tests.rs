//! Tests of the file system primitives.

use super::mounts::unescape_mount;
use super::*;
use std::os::unix::fs::symlink;
use std::os::unix::fs::PermissionsExt;

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn unescapes_octal_in_mountinfo() {
    assert_eq!(unescape_mount("/a\\040b"), "/a b");
    assert_eq!(unescape_mount("/plain"), "/plain");
}

#[test]
fn atomic_write_replaces_content() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x/y.conf");
    atomic_write(&p, b"one", true).unwrap();
    atomic_write(&p, b"two", false).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"two");
    assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    assert_eq!(mode_of(&p), 0o644);
}

#[test]
fn removes_a_tree() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    fs::create_dir_all(t.join("a/b")).unwrap();
    fs::write(t.join("a/b/f"), "x").unwrap();
    symlink("/etc", t.join("link")).unwrap();
    safe_remove_dir_all(&t).unwrap();
    assert!(!t.exists());
    assert!(Path::new("/etc").exists());
}

/// Below an owned folder, a link where ddc expects a folder or a file is
/// refused for writes and deletions alike; the way to the owned folder
/// (itself a link here) is followed.
#[test]
fn links_below_an_owned_folder_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let real = d.path().join("real");
    fs::create_dir(&real).unwrap();
    let root = d.path().join("root");
    symlink(&real, &root).unwrap();
    own(&root, 0o755);
    let outside = d.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("f"), "precious").unwrap();

    atomic_write(&root.join("a/b/ok"), b"x", false).unwrap();
    assert_eq!(fs::read(real.join("a/b/ok")).unwrap(), b"x");

    symlink(&outside, root.join("a/link")).unwrap();
    for err in [
        atomic_write(&root.join("a/link/f"), b"y", false).unwrap_err(),
        open_file(&root.join("a/link/f"), Open::Append, 0o600).unwrap_err(),
        make_dir(&root.join("a/link/sub")).unwrap_err(),
        remove_path(&root.join("a/link/f")).unwrap_err(),
    ] {
        let e = format!("{err:#}");
        assert!(e.contains("a/link") && e.contains("symbolic link"), "{e}");
    }
    symlink(outside.join("f"), root.join("a/file-link")).unwrap();
    let e = format!(
        "{:#}",
        atomic_write(&root.join("a/file-link"), b"y", false).unwrap_err()
    );
    assert!(e.contains("symbolic link"), "{e}");
    let e = format!(
        "{:#}",
        open_file(&root.join("a/file-link"), Open::Truncate, 0o600).unwrap_err()
    );
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(fs::read(outside.join("f")).unwrap(), b"precious");
    // Removing the link removes the link only.
    assert!(remove_path(&root.join("a/link")).unwrap());
    assert!(outside.join("f").exists());
    // `..` never climbs out.
    assert!(atomic_write(&root.join("a/../../x"), b"y", false).is_err());
}

#[test]
fn files_with_other_hard_links_are_not_opened() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f");
    fs::write(&f, "precious").unwrap();
    fs::hard_link(&f, d.path().join("log")).unwrap();
    assert!(open_file(&d.path().join("log"), Open::Truncate, 0o600).is_err());
    assert_eq!(fs::read(&f).unwrap(), b"precious");
}

/// Folders get the owned folder's mode, files their writer's (the umask
/// is tested through the binary: changing it here would race other tests).
#[test]
fn modes_are_explicit() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("cache");
    own(&root, 0o700);
    open_file(&root.join("logs/x.log"), Open::Truncate, 0o600).unwrap();
    make_dir_mode(&root.join("images/img/step"), 0o755).unwrap();
    atomic_write_mode(&root.join("state/records"), b"r", false, 0o600).unwrap();
    atomic_write(&d.path().join("other/conf"), b"c", false).unwrap();
    assert_eq!(mode_of(&root), 0o700);
    assert_eq!(mode_of(&root.join("logs")), 0o700);
    assert_eq!(mode_of(&root.join("logs/x.log")), 0o600);
    assert_eq!(mode_of(&root.join("images/img")), 0o700);
    assert_eq!(mode_of(&root.join("images/img/step")), 0o755);
    assert_eq!(mode_of(&root.join("state/records")), 0o600);
    assert_eq!(mode_of(&d.path().join("other")), 0o755);
    assert_eq!(mode_of(&d.path().join("other/conf")), 0o644);
}

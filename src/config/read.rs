//! Reading the files a config comes from, bounded: a regular file of at most
//! [`LIMIT`] bytes. `nodes_file = "/dev/zero"` must not eat the memory, nor a
//! FIFO hang the build.

use std::io::Read;
use std::path::Path;

/// 64 MiB: a 100,000-node inventory is about 5 MiB.
pub(crate) const LIMIT: u64 = 64 * 1024 * 1024;

/// The bytes of `path`, or why they cannot be read.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(
            "it is not a regular file (a device, a FIFO or a folder cannot be read as one)".into(),
        );
    }
    if meta.len() > LIMIT {
        return Err(format!(
            "it is {} bytes, more than the {} MiB ddc reads (a Ddcfile or an inventory of 100,000 nodes is a few MiB): is it the right file?",
            meta.len(),
            LIMIT >> 20
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(LIMIT + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > LIMIT {
        return Err(format!(
            "it grew past the {} MiB ddc reads while it was read",
            LIMIT >> 20
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_folders_are_refused() {
        for p in ["/dev/zero", "/dev/null", "/tmp"] {
            assert!(
                read_bounded(Path::new(p))
                    .unwrap_err()
                    .contains("not a regular file"),
                "{p}"
            );
        }
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(read_bounded(&fifo)
            .unwrap_err()
            .contains("not a regular file"));
        let f = d.path().join("f");
        std::fs::write(&f, "x").unwrap();
        assert_eq!(read_bounded(&f).unwrap(), b"x");
    }
}

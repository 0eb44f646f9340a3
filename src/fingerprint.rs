//! Keys, output hashes and the stat cache.
//!
//! A task's [`CacheKey`] is a blake3 hash over a canonical list of named
//! inputs (config values serialized as JSON with sorted keys, file bytes,
//! tool versions, dependency output hashes). Outputs are fingerprinted by
//! content; a stat snapshot (size, mtime, ctime, inode) lets a no-op build
//! trust a recorded hash without reading the file again.

mod scan;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A blake3 hash, printed as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Self {
        Fingerprint(*blake3::hash(bytes).as_bytes())
    }

    pub fn of_json<T: Serialize>(value: &T) -> Self {
        // Config values are structs, strings, lists and BTreeMaps: their JSON
        // has one order, so it is canonical as serialized.
        Fingerprint::of(&serde_json::to_vec(value).expect("config values serialize"))
    }

    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// The first 8 bytes, enough to tell which input changed.
    pub fn prefix64(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }

    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Fingerprint(out))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.short())
    }
}

/// Hex in JSON (the journal, `--json`), 32 raw bytes in the binary snapshot.
impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Fingerprint::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad fingerprint"))
        } else {
            <[u8; 32]>::deserialize(d).map(Fingerprint)
        }
    }
}

/// The key of one task: what its result depends on.
pub type CacheKey = Fingerprint;

/// One named input of a task key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub name: std::borrow::Cow<'static, str>,
    pub hash: Fingerprint,
}

/// Computes a key from the task kind, its recipe version and its inputs.
///
/// The bytes are gathered first and hashed in one call: at 10,000 tasks of
/// a dozen inputs each, three `Hasher::update` calls an input cost a no-op
/// more than the hashing itself. The byte stream, and so every key, is the
/// same as hashing them one by one.
pub fn cache_key_of<'a>(
    kind: &str,
    recipe: u32,
    inputs: impl IntoIterator<Item = &'a Input>,
) -> CacheKey {
    let inputs = inputs.into_iter();
    let mut buf = Vec::with_capacity(64 + 72 * inputs.size_hint().0);
    buf.extend_from_slice(b"ddc-key-v1\0");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(&recipe.to_le_bytes());
    for i in inputs {
        buf.extend_from_slice(&(i.name.len() as u64).to_le_bytes());
        buf.extend_from_slice(i.name.as_bytes());
        buf.extend_from_slice(&i.hash.0);
    }
    Fingerprint(*blake3::hash(&buf).as_bytes())
}

/// The stat fields that change whenever a file's content may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatStamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

impl StatStamp {
    pub fn of(m: &fs::Metadata) -> Self {
        StatStamp {
            size: m.size(),
            mtime_ns: m
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ctime_ns: m
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

/// The fingerprint of an output: a file's content, or a symlink's target.
pub fn hash_output(path: &Path) -> Result<Fingerprint> {
    let m =
        fs::symlink_metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if m.file_type().is_symlink() {
        let t = fs::read_link(path)?;
        Ok(Fingerprint::of(t.as_os_str().as_encoded_bytes()))
    } else {
        hash_file(path)
    }
}

/// A file's content hash, read through this thread's reusable buffer.
pub fn hash_file(path: &Path) -> Result<Fingerprint> {
    let f = fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    scan::hash_fd(std::os::fd::AsFd::as_fd(&f))
        .with_context(|| format!("cannot read {}", path.display()))
}

/// One entry of a tree's stat cache.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub stamp: StatStamp,
    /// Mode, uid, gid, and for devices the device number.
    pub meta: (u32, u32, u32, u64),
    /// Content hash of a file, of a link's target, or zero for a folder.
    pub hash: Fingerprint,
}

/// A whole tree's fingerprint, with the stat cache that lets the next check
/// skip reading unchanged files.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct TreeStamp {
    pub entries: Vec<TreeEntry>,
}

impl TreeStamp {
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = blake3::Hasher::new();
        h.update(b"ddc-tree-v1\0");
        for e in &self.entries {
            h.update(e.path.as_bytes());
            h.update(b"\0");
            h.update(&e.meta.0.to_le_bytes());
            h.update(&e.meta.1.to_le_bytes());
            h.update(&e.meta.2.to_le_bytes());
            h.update(&e.meta.3.to_le_bytes());
            h.update(&e.hash.0);
        }
        Fingerprint(*h.finalize().as_bytes())
    }
}

/// Scans a tree, reusing hashes from `previous` for entries whose stat stamp
/// is unchanged. Returns the new stamp and whether anything was rehashed.
/// Never follows a link below `root` (`root` itself, if a link, is
/// followed); does not enter a folder on another file system; hashes in
/// parallel on rayon's pool (see [`scan`]).
pub fn scan_tree(root: &Path, previous: Option<&TreeStamp>) -> Result<(TreeStamp, bool)> {
    let known: HashMap<&str, &TreeEntry> = previous
        .map(|p| p.entries.iter().map(|e| (e.path.as_str(), e)).collect())
        .unwrap_or_default();
    let (entries, rehashed) = scan::scan(root, &known)?;
    Ok((TreeStamp { entries }, rehashed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, v: &str) -> Input {
        Input {
            name: name.to_string().into(),
            hash: Fingerprint::of(v.as_bytes()),
        }
    }

    #[test]
    fn key_depends_on_every_part() {
        let base = cache_key_of("pxe", 1, [input("node.mac", "a"), input("x", "b")].iter());
        // The same bytes hashed one update at a time: keys recorded before
        // the one-call hashing stay valid.
        let mut h = blake3::Hasher::new();
        h.update(b"ddc-key-v1\0");
        h.update(b"pxe");
        h.update(&1u32.to_le_bytes());
        for i in [input("node.mac", "a"), input("x", "b")] {
            h.update(&(i.name.len() as u64).to_le_bytes());
            h.update(i.name.as_bytes());
            h.update(&i.hash.0);
        }
        assert_eq!(base, Fingerprint(*h.finalize().as_bytes()));
        assert_eq!(
            base,
            cache_key_of("pxe", 1, [input("node.mac", "a"), input("x", "b")].iter())
        );
        assert_ne!(
            base,
            cache_key_of("dhcp", 1, &[input("node.mac", "a"), input("x", "b")])
        );
        assert_ne!(
            base,
            cache_key_of("pxe", 2, &[input("node.mac", "a"), input("x", "b")])
        );
        assert_ne!(
            base,
            cache_key_of("pxe", 1, &[input("node.mac", "c"), input("x", "b")])
        );
        // Names are length-prefixed: moving a byte between name and value differs.
        assert_ne!(
            cache_key_of("k", 1, &[input("ab", "c")]),
            cache_key_of("k", 1, &[input("a", "bc")])
        );
    }

    #[test]
    fn json_fingerprint_is_canonical() {
        let mut a = std::collections::BTreeMap::new();
        a.insert("b", 2);
        a.insert("a", 1);
        let mut b = std::collections::BTreeMap::new();
        b.insert("a", 1);
        b.insert("b", 2);
        assert_eq!(Fingerprint::of_json(&a), Fingerprint::of_json(&b));
        assert_ne!(
            Fingerprint::of_json(&"x"),
            Fingerprint::of_json(&Some("x").map(|_| 1))
        );
    }

    #[test]
    fn hex_round_trips() {
        let f = Fingerprint::of(b"x");
        assert_eq!(Fingerprint::from_hex(&f.hex()), Some(f));
    }

    #[test]
    fn tree_scan_sees_changes_and_reuses_stamps() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("a")).unwrap();
        fs::write(d.path().join("a/f"), "one").unwrap();
        let (t1, _) = scan_tree(d.path(), None).unwrap();
        let (t2, rehashed) = scan_tree(d.path(), Some(&t1)).unwrap();
        assert!(!rehashed);
        assert_eq!(t1.fingerprint(), t2.fingerprint());
        fs::write(d.path().join("a/f"), "two").unwrap();
        let (t3, rehashed) = scan_tree(d.path(), Some(&t2)).unwrap();
        assert!(rehashed);
        assert_ne!(t1.fingerprint(), t3.fingerprint());
    }
}

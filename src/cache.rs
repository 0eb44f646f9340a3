//! Durable task records and the build lock.
//!
//! State lives in `cache/state/`: a snapshot (`records.bin`, every record,
//! postcard after a format tag) and a journal (`journal.jsonl`) that each finished task is appended
//! to at once, fsynced in small groups by one writer thread. A crash loses at
//! most the tasks that were running. At the end of a build the journal is
//! folded into a new snapshot written atomically (write, fsync, rename).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fingerprint::{Fingerprint, StatStamp, TreeStamp};
use crate::fsutil::{atomic_write_mode, make_dir, open_file, own, remove_path, Open};

/// The mode of the files ddc keeps in its cache (see `fsutil`: its folders
/// are 0700): records, trees, the lock, the build mark and the owner.
/// Records, journal, trees, lock: readable, so that read-only commands work
/// for any user; never writable by others.
const FILE_MODE: u32 = 0o644;

/// One output of a finished task.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutputRecord {
    pub path: PathBuf,
    pub hash: Fingerprint,
    /// For a file its stat stamp; for a tree the stamps are in `cache/trees`.
    #[serde(default)]
    pub stamp: StatStamp,
    #[serde(default)]
    pub dir: bool,
}

/// What ddc remembers of a finished task.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub task: String,
    pub key: Fingerprint,
    /// The names of the key's inputs, one a line, and a short hash of each,
    /// to say which one changed (one string, not ten, per record: 10,000
    /// records load in milliseconds).
    pub input_names: String,
    pub input_hashes: Vec<u64>,
    pub outputs: Vec<OutputRecord>,
    pub out_hash: Fingerprint,
    #[serde(default)]
    pub seconds: f64,
    /// Outputs of this task's previous record that this one no longer
    /// produces, to be removed at the end of the build. Journaled with the
    /// record, so a build killed before its end still removes them next time.
    #[serde(default)]
    pub replaced: Vec<PathBuf>,
    /// The values of the scalar inputs, shortened, one line per name
    /// (`=VALUE`, or empty): what a reason shows as `old -> new`.
    #[serde(default)]
    pub input_values: String,
}

impl Record {
    /// The recorded inputs: (name, short hash).
    pub fn inputs(&self) -> impl Iterator<Item = (&str, u64)> {
        self.input_names
            .split('\n')
            .filter(|n| !n.is_empty())
            .zip(self.input_hashes.iter().copied())
    }
}

mod compat;
use compat::{RecordV1, RecordV2};

/// The snapshot's first bytes: format and version. The body is chunks of
/// records, each a little-endian u64 byte count and then the chunk's records
/// as one postcard list, so that the chunks decode in parallel: at 10,000
/// records, decoding was the longest part of a no-op.
const SNAPSHOT_MAGIC: &[u8; 8] = b"ddcrec03";
/// The earlier formats (one postcard list of records without values; the
/// first with unused task data), still read: a build after an upgrade reruns
/// nothing.
pub(crate) const SNAPSHOT_MAGIC_V2: &[u8; 8] = b"ddcrec02";
pub(crate) const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"ddcrec01";
/// Records a chunk of the snapshot.
const SNAPSHOT_CHUNK: usize = 1024;

/// A journal line. Snapshot lines are bare records.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Record(Box<Record>),
    Forget(String),
    /// The outputs a task's record replaced are gone.
    Swept(String),
    /// A task is about to write these paths. Written before it does, so that
    /// a build killed before the task's record is kept still knows of them.
    Intent {
        task: String,
        paths: Vec<PathBuf>,
    },
}

/// The cache folder layout.
#[derive(Clone, Debug)]
pub struct CacheDirs {
    pub root: PathBuf,
}

impl CacheDirs {
    /// The cache at `root`, declared one of ddc's own folders: nothing in
    /// it is written or deleted through a link, and what ddc creates in it
    /// is for root only (folders 0700, files 0600).
    pub fn new(root: PathBuf) -> Self {
        own(&root, crate::fsutil::CACHE_DIR_MODE);
        CacheDirs { root }
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log(&self, task: &str) -> PathBuf {
        self.logs().join(format!("{task}.log"))
    }
    pub fn tree(&self, task: &str, index: usize) -> PathBuf {
        self.root.join("trees").join(format!("{task}.{index}.json"))
    }
}

/// Records by task id, hashed with foldhash: a build of 10,000 nodes
/// looks each up several times, and the ids are ddc's own.
pub type Records = HashMap<String, Record, foldhash::fast::RandomState>;

/// All records, loaded from the snapshot and the journal.
#[derive(Default)]
pub struct State {
    pub records: Records,
    /// Lines read from the journal: when they grow, fold them into the snapshot.
    pub journal_lines: usize,
    /// The state files as they were when read (see [`State::is_current`]).
    pub stamp: Vec<Option<crate::fingerprint::StatStamp>>,
    /// Paths a task meant to write in a build that was killed before the
    /// task's record was kept, and that has no record to name them: (task,
    /// path). The sweep removes those no task claims.
    pub orphans: Vec<(String, PathBuf)>,
}

impl State {
    pub(crate) fn stamp_of(dirs: &CacheDirs) -> Vec<Option<crate::fingerprint::StatStamp>> {
        ["records.bin", "journal.jsonl"]
            .iter()
            .map(|n| {
                fs::metadata(dirs.state().join(n))
                    .ok()
                    .map(|m| crate::fingerprint::StatStamp::of(&m))
            })
            .collect()
    }

    /// Whether the state files are still as they were when this was loaded
    /// (it was loaded before the lock was taken, while the Ddcfile parsed).
    pub fn is_current(&self, dirs: &CacheDirs) -> bool {
        self.stamp == Self::stamp_of(dirs)
    }

    pub fn load(dirs: &CacheDirs) -> Result<Self> {
        let mut st = State {
            stamp: Self::stamp_of(dirs),
            ..Default::default()
        };
        let snapshot = dirs.state().join("records.bin");
        match fs::read(&snapshot) {
            Ok(bytes) => {
                // A snapshot this version cannot read is ignored: the tasks rerun.
                let records = if let Some(body) = bytes.strip_prefix(SNAPSHOT_MAGIC) {
                    decode_chunks(body)
                } else if let Some(body) = bytes.strip_prefix(SNAPSHOT_MAGIC_V2) {
                    postcard::from_bytes::<Vec<RecordV2>>(body)
                        .ok()
                        .map(|v| v.into_iter().map(Record::from).collect())
                } else if let Some(body) = bytes.strip_prefix(SNAPSHOT_MAGIC_V1) {
                    postcard::from_bytes::<Vec<RecordV1>>(body)
                        .ok()
                        .map(|v| v.into_iter().map(Record::from).collect())
                } else {
                    None
                };
                st.records.reserve(records.as_ref().map_or(0, Vec::len));
                for r in records.into_iter().flatten() {
                    st.records.insert(r.task.clone(), r);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", snapshot.display())),
        }
        let path = dirs.state().join("journal.jsonl");
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(st),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        st.replay(&text);
        Ok(st)
    }

    /// Applies the journal's lines to the snapshot's records.
    fn replay(&mut self, text: &[u8]) {
        let st = self;
        let mut intents: HashMap<String, Vec<PathBuf>> = HashMap::new();
        {
            for line in BufReader::new(text).lines() {
                let Ok(line) = line else { break };
                st.journal_lines += 1;
                // A torn last line (a crash mid-append) is skipped.
                {
                    match serde_json::from_str::<Line>(&line) {
                        Ok(Line::Record(r)) => {
                            intents.remove(&r.task);
                            st.records.insert(r.task.clone(), *r);
                        }
                        Ok(Line::Forget(task)) => {
                            st.records.remove(&task);
                        }
                        Ok(Line::Swept(task)) => {
                            intents.remove(&task);
                            if let Some(r) = st.records.get_mut(&task) {
                                r.replaced.clear();
                            }
                        }
                        Ok(Line::Intent { task, paths }) => {
                            intents.entry(task).or_default().extend(paths);
                        }
                        Err(_) => continue,
                    }
                }
            }
        }
        // Intents without a later record: the task was killed after it may
        // have written them.
        for (task, paths) in intents {
            match st.records.get_mut(&task) {
                Some(r) => {
                    r.replaced.extend(paths);
                    r.replaced.sort();
                    r.replaced.dedup();
                }
                None => st
                    .orphans
                    .extend(paths.into_iter().map(|p| (task.clone(), p))),
            }
        }
        st.orphans.sort();
    }

    /// Whether the journal, `added` lines longer after this build, is worth
    /// folding into the snapshot. Rewriting a 10,000-record snapshot for a
    /// one-node change would cost more than the change itself.
    pub fn should_compact(&self, added: usize) -> bool {
        let lines = self.journal_lines + added;
        lines > 0 && (lines >= 1000 || lines * 4 >= self.records.len())
    }

    /// Writes all records as the new snapshot and empties the journal.
    pub fn compact(&self, dirs: &CacheDirs) -> Result<()> {
        let mut records: Vec<&Record> = self.records.values().collect();
        records.sort_by(|a, b| a.task.cmp(&b.task));
        let mut out = SNAPSHOT_MAGIC.to_vec();
        for chunk in records.chunks(SNAPSHOT_CHUNK) {
            let bytes = postcard::to_stdvec(chunk).context("cannot encode the records")?;
            out.extend((bytes.len() as u64).to_le_bytes());
            out.extend(bytes);
        }
        atomic_write_mode(&dirs.state().join("records.bin"), &out, true, FILE_MODE)?;
        if remove_path(&dirs.state().join("journal.jsonl"))? {
            crate::fsutil::fsync_dir(&dirs.state())?;
        }
        Ok(())
    }
}

/// The records of a third-format body, its chunks decoded in parallel; None
/// if any chunk is torn or undecodable (the snapshot is then ignored, as a
/// torn second-format one was).
fn decode_chunks(mut body: &[u8]) -> Option<Vec<Record>> {
    use rayon::prelude::*;
    let mut chunks = Vec::new();
    while !body.is_empty() {
        let (len, rest) = body.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        if len > rest.len() {
            return None;
        }
        let (chunk, rest) = rest.split_at(len);
        chunks.push(chunk);
        body = rest;
    }
    let decoded: Option<Vec<Vec<Record>>> = chunks
        .par_iter()
        .map(|c| postcard::from_bytes::<Vec<Record>>(c).ok())
        .collect();
    Some(decoded?.into_iter().flatten().collect())
}

pub fn load_tree(path: &Path) -> Option<TreeStamp> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn save_tree(path: &Path, t: &TreeStamp) -> Result<()> {
    atomic_write_mode(path, &serde_json::to_vec(t)?, true, FILE_MODE)
}

/// Appends records to the journal from a writer thread, fsyncing once per
/// group of records that arrived together.
pub struct Journal {
    tx: Option<mpsc::Sender<String>>,
    thread: Option<JoinHandle<Result<()>>>,
    /// The same file, for intents, written at once from the caller's thread.
    direct: std::sync::Mutex<File>,
}

impl Journal {
    pub fn open(dirs: &CacheDirs) -> Result<Self> {
        let mut f = open_file(&dirs.state().join("journal.jsonl"), Open::Append, FILE_MODE)?;
        let direct = std::sync::Mutex::new(f.try_clone()?);
        let (tx, rx) = mpsc::channel::<String>();
        let thread = std::thread::spawn(move || -> Result<()> {
            while let Ok(first) = rx.recv() {
                let mut buf = first;
                while let Ok(more) = rx.try_recv() {
                    buf.push_str(&more);
                }
                f.write_all(buf.as_bytes())?;
                f.sync_data()?;
            }
            Ok(())
        });
        Ok(Journal {
            tx: Some(tx),
            thread: Some(thread),
            direct,
        })
    }

    pub fn record(&self, r: &Record) {
        self.line(&Line::Record(Box::new(r.clone())));
    }

    pub fn forget(&self, task: &str) {
        self.line(&Line::Forget(task.to_string()));
    }

    /// Says which paths `task` is about to write, before it writes them: in
    /// the file when this returns (one append; no fsync: a killed process
    /// loses nothing the kernel has).
    pub fn intent(&self, task: &str, paths: &[PathBuf]) -> Result<()> {
        let line = Line::Intent {
            task: task.to_string(),
            paths: paths.to_vec(),
        };
        let mut s = serde_json::to_string(&line)?;
        s.push('\n');
        let mut f = self.direct.lock().expect("journal");
        f.write_all(s.as_bytes())
            .context("cannot write the cache journal")
    }

    pub fn swept(&self, task: &str) {
        self.line(&Line::Swept(task.to_string()));
    }

    fn line(&self, line: &Line) {
        let mut s = serde_json::to_string(line).expect("json");
        s.push('\n');
        if let Some(tx) = &self.tx {
            let _ = tx.send(s);
        }
    }

    /// Waits until everything sent is on disk.
    pub fn close(mut self) -> Result<()> {
        drop(self.tx.take());
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r.context("cannot write the cache journal"),
            Some(Err(_)) => bail!("the journal writer panicked"),
            None => Ok(()),
        }
    }
}

/// Marks a build as running until [`end_build`]: a build that finds the
/// mark was killed, and sweeps what its atomic writes left (returns true).
pub fn begin_build(dirs: &CacheDirs) -> Result<bool> {
    make_dir(&dirs.state())?;
    let mark = dirs.state().join("building");
    let killed = fs::symlink_metadata(&mark).is_ok();
    // Not an atomic write: its temporary file could be what a kill leaves.
    open_file(&mark, Open::Truncate, FILE_MODE)?
        .write_all(std::process::id().to_string().as_bytes())
        .with_context(|| format!("cannot write {}", mark.display()))?;
    Ok(killed)
}

/// The build ended (finished, failed or interrupted, not killed).
pub fn end_build(dirs: &CacheDirs) -> Result<()> {
    remove_path(&dirs.state().join("building")).map(drop)
}

/// Makes sure the cache belongs to this Ddcfile: two Ddcfiles in one folder
/// would take each other's outputs for vanished tasks and remove them.
pub fn claim(dirs: &CacheDirs, ddcfile: &Path) -> Result<(), crate::error::Error> {
    let owner = dirs.root.join("ddcfile");
    let me = ddcfile.display().to_string();
    match fs::read_to_string(&owner) {
        Ok(o) if o.trim() == me => Ok(()),
        // The cache's folder was copied or moved: its records name the
        // original's files, which a build here would overwrite and remove.
        Ok(o) if Path::new(o.trim()).parent() != dirs.root.parent() => {
            Err(crate::error::NotStarted(format!(
                "the cache {} was made for {}: this folder was copied or moved from there, and the cache's records name that folder's files, so a build here would write and delete there; remove the copied cache (`rm -r {}`) and build again (what was copied with it, like out/, is not known to the new cache: remove it too if it holds only old outputs)",
                dirs.root.display(),
                o.trim(),
                dirs.root.display(),
            ))
            .into())
        }
        Ok(o) => Err(crate::error::NotStarted(format!(
            "the cache {} belongs to {}, not {me}: give each Ddcfile a folder of its own (or `rm -r {}` if {} is gone)",
            dirs.root.display(),
            o.trim(),
            dirs.root.display(),
            o.trim()
        ))
        .into()),
        Err(_) => Ok(atomic_write_mode(
            &owner,
            format!("{me}\n").as_bytes(),
            true,
            FILE_MODE,
        )?),
    }
}

/// The exclusive build lock, `cache/lock`, holding the holder's pid and command.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock; if another ddc holds it, says who and waits, or fails
    /// with `no_wait` (exit code 2: the build did not start).
    pub fn acquire(
        dirs: &CacheDirs,
        no_wait: bool,
        say: &dyn Fn(String),
    ) -> Result<Lock, crate::error::Error> {
        Lock::take(&dirs.root.join("lock"), no_wait, say, |path, holder| {
            format!(
                "the cache {} is in use by {holder}; wait for it to finish, or drop --no-wait to wait",
                path.display()
            )
        })
    }

    /// The inventory lock, `cache/inventory.lock`: held by whoever edits the
    /// `nodes_file` CSV (`ddc node`, `ddc discover --add`) from reading it to
    /// writing it, so that two edits never lose one another. Waits, saying
    /// who holds it. Separate from the build lock: an edit need not wait for
    /// a long image build.
    pub fn inventory(dirs: &CacheDirs, say: &dyn Fn(String)) -> Result<Lock, crate::error::Error> {
        Lock::take(&dirs.root.join("inventory.lock"), false, say, |_, _| {
            String::new()
        })
    }

    fn take(
        path: &Path,
        no_wait: bool,
        say: &dyn Fn(String),
        busy: impl Fn(&Path, &str) -> String,
    ) -> Result<Lock, crate::error::Error> {
        let mut f = open_file(path, Open::Keep, FILE_MODE)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(path).unwrap_or_default();
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another ddc"
                } else {
                    holder
                };
                if no_wait {
                    return Err(crate::error::NotStarted(busy(path, holder)).into());
                }
                say(format!(
                    "waiting for {holder} to finish (it holds {})",
                    path.display()
                ));
                f.lock()
                    .with_context(|| format!("cannot lock {}", path.display()))?;
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot lock {}", path.display()))
                    .into())
            }
        }
        let cmd: Vec<String> = std::env::args().collect();
        f.set_len(0)
            .and_then(|_| write!(f, "ddc (pid {}: {})", std::process::id(), cmd.join(" ")))
            .and_then(|_| f.flush())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Lock { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn rec(task: &str) -> Record {
        Record {
            task: task.into(),
            key: Fingerprint::of(task.as_bytes()),
            input_names: "a\nb".into(),
            input_hashes: vec![1, 2],
            outputs: vec![],
            out_hash: Fingerprint::of(b"o"),
            seconds: 0.0,
            replaced: vec![],
            input_values: String::new(),
        }
    }

    /// A compaction writes the snapshot in chunks, which reads back the same; a torn chunk drops the snapshot
    /// rather than half of it.
    #[test]
    fn snapshot_chunks_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let dirs = CacheDirs::new(d.path().to_path_buf());
        let j = Journal::open(&dirs).unwrap();
        for i in 0..2500 {
            j.record(&rec(&format!("pxe:n{i:05}")));
        }
        j.close().unwrap();
        let st = State::load(&dirs).unwrap();
        assert_eq!(st.records.len(), 2500);
        st.compact(&dirs).unwrap();
        let written = fs::read(dirs.state().join("records.bin")).unwrap();
        assert!(written.starts_with(SNAPSHOT_MAGIC));
        let again = State::load(&dirs).unwrap();
        assert_eq!(again.records, st.records);
        fs::write(
            dirs.state().join("records.bin"),
            &written[..written.len() - 3],
        )
        .unwrap();
        assert!(State::load(&dirs).unwrap().records.is_empty());
    }

    #[test]
    fn journal_survives_without_compaction_and_ignores_torn_lines() {
        let d = tempfile::tempdir().unwrap();
        let dirs = CacheDirs::new(d.path().to_path_buf());
        let j = Journal::open(&dirs).unwrap();
        j.record(&rec("a"));
        j.record(&rec("b"));
        j.forget("a");
        j.close().unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dirs.state().join("journal.jsonl"))
            .unwrap();
        f.write_all(b"{\"task\":\"c\",\"ke").unwrap();
        let st = State::load(&dirs).unwrap();
        assert_eq!(st.records.len(), 1);
        assert_eq!(st.records["b"], rec("b"));
        st.compact(&dirs).unwrap();
        let st2 = State::load(&dirs).unwrap();
        assert_eq!(st2.records.len(), 1);
        assert!(!dirs.state().join("journal.jsonl").exists());
    }
}

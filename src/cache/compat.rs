//! Records as snapshots of earlier formats hold them, still read: a build
//! after an upgrade reruns nothing.

use std::path::PathBuf;

use serde::Deserialize;

use super::{OutputRecord, Record};
use crate::fingerprint::Fingerprint;

/// A record as snapshots of the second format hold it: without values.
#[derive(Deserialize)]
pub(super) struct RecordV2 {
    task: String,
    key: Fingerprint,
    input_names: String,
    input_hashes: Vec<u64>,
    outputs: Vec<OutputRecord>,
    out_hash: Fingerprint,
    seconds: f64,
    replaced: Vec<PathBuf>,
}

impl From<RecordV2> for Record {
    fn from(r: RecordV2) -> Self {
        Record {
            task: r.task,
            key: r.key,
            input_names: r.input_names,
            input_hashes: r.input_hashes,
            outputs: r.outputs,
            out_hash: r.out_hash,
            seconds: r.seconds,
            replaced: r.replaced,
            input_values: String::new(),
        }
    }
}

/// A record as snapshots of the first format hold it: with task data that
/// nothing read, kept as JSON text.
#[derive(Deserialize)]
pub(super) struct RecordV1 {
    task: String,
    key: Fingerprint,
    input_names: String,
    input_hashes: Vec<u64>,
    outputs: Vec<OutputRecord>,
    out_hash: Fingerprint,
    _meta: String,
    seconds: f64,
}

impl From<RecordV1> for Record {
    fn from(r: RecordV1) -> Self {
        Record {
            task: r.task,
            key: r.key,
            input_names: r.input_names,
            input_hashes: r.input_hashes,
            outputs: r.outputs,
            out_hash: r.out_hash,
            seconds: r.seconds,
            replaced: Vec::new(),
            input_values: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use serde::Serialize;

    use super::super::tests::rec;
    use super::super::*;

    /// A snapshot of the second format (records without values) is read:
    /// an upgrade reruns nothing, and the reasons lack only old values.
    #[test]
    fn second_format_snapshots_are_read() {
        #[derive(Serialize)]
        struct V2<'a> {
            task: &'a str,
            key: Fingerprint,
            input_names: &'a str,
            input_hashes: Vec<u64>,
            outputs: Vec<OutputRecord>,
            out_hash: Fingerprint,
            seconds: f64,
            replaced: Vec<PathBuf>,
        }
        let d = tempfile::tempdir().unwrap();
        let dirs = CacheDirs::new(d.path().to_path_buf());
        let r = rec("pxe:node01");
        let old = V2 {
            task: &r.task,
            key: r.key,
            input_names: &r.input_names,
            input_hashes: r.input_hashes.clone(),
            outputs: vec![],
            out_hash: r.out_hash,
            seconds: 0.0,
            replaced: vec![],
        };
        let mut bytes = SNAPSHOT_MAGIC_V2.to_vec();
        bytes.extend(postcard::to_stdvec(&vec![old]).unwrap());
        fs::create_dir_all(dirs.state()).unwrap();
        fs::write(dirs.state().join("records.bin"), bytes).unwrap();
        let st = State::load(&dirs).unwrap();
        assert_eq!(st.records["pxe:node01"], r);
        let valued = Record {
            input_values: "=x\n".into(),
            ..r
        };
        let st = State {
            records: [(valued.task.clone(), valued.clone())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        st.compact(&dirs).unwrap();
        assert_eq!(State::load(&dirs).unwrap().records[&valued.task], valued);
    }

    /// A snapshot written before records lost their unused task data is
    /// still read: an upgrade reruns nothing.
    #[test]
    fn first_format_snapshots_are_read() {
        #[derive(Serialize)]
        struct V1<'a> {
            task: &'a str,
            key: Fingerprint,
            input_names: &'a str,
            input_hashes: Vec<u64>,
            outputs: Vec<OutputRecord>,
            out_hash: Fingerprint,
            meta: &'a str,
            seconds: f64,
        }
        let d = tempfile::tempdir().unwrap();
        let dirs = CacheDirs::new(d.path().to_path_buf());
        let r = rec("publish:default");
        let old = V1 {
            task: &r.task,
            key: r.key,
            input_names: &r.input_names,
            input_hashes: r.input_hashes.clone(),
            outputs: vec![],
            out_hash: r.out_hash,
            meta: "{\"generation\":\"0001-abc\"}",
            seconds: 1.5,
        };
        let mut bytes = SNAPSHOT_MAGIC_V1.to_vec();
        bytes.extend(postcard::to_stdvec(&vec![old]).unwrap());
        fs::create_dir_all(dirs.state()).unwrap();
        fs::write(dirs.state().join("records.bin"), bytes).unwrap();
        let st = State::load(&dirs).unwrap();
        assert_eq!(st.records["publish:default"], Record { seconds: 1.5, ..r });
        st.compact(&dirs).unwrap();
        let again = State::load(&dirs).unwrap();
        assert_eq!(again.records, st.records);
    }
}

//! The CSV node inventory named by `nodes_file`: a header row
//! `hostname,mac,ip` and optionally `image`, `cmdline`, `boot` and `bmc`
//! (for `ddc power`), in any order, then one node a row.
//!
//! Rows become the same unvalidated node inputs as `[[nodes]]` tables, so both
//! sources are validated together (duplicates across them are caught).
//! Imports only `origin`: the validator calls it, never the other way round.

use std::path::Path;

use super::origin::{NodeInput, Origin, Place, Sourced};

const COLUMNS: &[&str] = &["hostname", "mac", "ip", "image", "cmdline", "boot", "bmc"];

/// Reads the inventory; `shown` is the name to print in messages.
pub(crate) fn read(path: &Path, shown: &str) -> Result<Vec<NodeInput>, String> {
    let bytes = super::read::read_bounded(path)
        .map_err(|e| format!("cannot read the node inventory {}: {e}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(&bytes[..]);
    let headers = reader
        .headers()
        .map_err(|e| format!("{shown}: cannot read the header row: {e}"))?
        .clone();
    let mut index = [None; COLUMNS.len()];
    for (i, h) in headers.iter().enumerate() {
        match COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(h)) {
            Some(c) if index[c].is_some() => {
                return Err(format!(
                    "{shown}: row 1: the header row names column {:?} twice (columns {} and {}), and only one would be read; keep one",
                    COLUMNS[c],
                    index[c].unwrap_or_default() + 1,
                    i + 1
                ))
            }
            Some(c) => index[c] = Some(i),
            None => {
                return Err(format!(
                    "{shown}: unknown column {h:?} in the header row; the columns are hostname,mac,ip and optionally image, cmdline, boot, bmc"
                ))
            }
        }
    }
    for (c, name) in COLUMNS.iter().enumerate().take(3) {
        if index[c].is_none() {
            return Err(format!(
                "{shown}: the header row has no {name:?} column; the first row must be hostname,mac,ip[,image]"
            ));
        }
    }
    let mut nodes = Vec::new();
    for (n, record) in reader.records().enumerate() {
        // Row 1 is the header; data rows start at 2 (the line, without comments).
        let row = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map(|p| p.line() as usize)
            .unwrap_or(n + 2);
        let origin = Origin {
            file: shown.to_string(),
            place: Place::Row(row),
        };
        let record = record.map_err(|e| format!("{shown}: row {row}: {e}"))?;
        let field = |c: usize| -> Option<Sourced<String>> {
            let v = record.get(index[c]?)?;
            if v.is_empty() && c >= 3 {
                return None;
            }
            Some(Sourced {
                value: v.to_string(),
                origin: origin.clone(),
            })
        };
        let empty = || Sourced {
            value: String::new(),
            origin: origin.clone(),
        };
        nodes.push(NodeInput {
            hostname: field(0).unwrap_or_else(empty),
            mac: field(1).unwrap_or_else(empty),
            ip: field(2).unwrap_or_else(empty),
            image: field(3),
            cmdline: field(4),
            boot: field(5),
            bmc: field(6),
            origin: origin.clone(),
        });
    }
    Ok(nodes)
}

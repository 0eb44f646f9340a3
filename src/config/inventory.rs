//! The CSV node inventory named by `nodes_file`: a header row
//! `hostname,mac,ip` and optionally `image`, `cmdline`, `boot` and `bmc`
//! (for `ddc power`), in any order (the columns: `columns`), then one node
//! (or a range of nodes, `node[03-52]`) a row; `#` starts a comment line,
//! and a row may leave out its trailing optional columns.
//!
//! Rows become the same unvalidated node inputs as `[[nodes]]` tables, so both
//! sources are validated together (duplicates across them are caught).
//! Imports only `origin` and `columns`: the validator calls it, never the other way round.

use std::path::Path;

use super::columns::{self, COLUMNS};
use super::origin::{NodeInput, Origin, Place, Sourced};

/// Reads the inventory; `shown` is the name to print in messages.
pub(crate) fn read(path: &Path, shown: &str) -> Result<Vec<NodeInput>, String> {
    let bytes = super::read::read_bounded(path)
        .map_err(|e| format!("cannot read the node inventory {}: {e}", path.display()))?;
    parse(&bytes, shown)
}

/// The header's columns: for each of [`COLUMNS`], its field in a row.
fn header(reader: &mut csv::Reader<&[u8]>, shown: &str) -> Result<Vec<Option<usize>>, String> {
    let headers = reader
        .headers()
        .map_err(|e| format!("{shown}: cannot read the header row: {e}"))?
        .clone();
    let mut index = vec![None; COLUMNS.len()];
    for (i, h) in headers.iter().enumerate() {
        match columns::column(h) {
            Some(c) if index[c].is_some() => {
                return Err(format!(
                    "{shown}: row 1: the header row names column {:?} twice (columns {} and {}), and only one would be read; keep one",
                    COLUMNS[c].name,
                    index[c].unwrap_or_default() + 1,
                    i + 1
                ))
            }
            Some(c) => index[c] = Some(i),
            None => {
                return Err(format!(
                    "{shown}: unknown column {h:?} in the header row; the columns are {}",
                    columns::header_shown()
                ))
            }
        }
    }
    for (c, col) in COLUMNS.iter().enumerate() {
        if col.required && index[c].is_none() {
            return Err(format!(
                "{shown}: the header row has no {:?} column; the first row must be {}",
                col.name,
                columns::header_shown()
            ));
        }
    }
    Ok(index)
}

/// Reads the inventory's bytes. Rows may leave out trailing optional
/// columns; a row with more fields than the header names is refused.
pub(crate) fn parse(bytes: &[u8], shown: &str) -> Result<Vec<NodeInput>, String> {
    // The csv crate reads a comment on the last line, without a line
    // break after it, as a row: give it one.
    let last = bytes.rsplit(|&b| b == b'\n').next().unwrap_or_default();
    let ended;
    let bytes = if last.first() == Some(&b'#') {
        ended = [bytes, b"\n"].concat();
        &ended[..]
    } else {
        bytes
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(bytes);
    let index = header(&mut reader, shown)?;
    let width = reader.headers().map(|h| h.len()).unwrap_or_default();
    // A row is named by the line it starts on, as an editor shows it
    // (comment and blank lines counted; the reader's own count skips them).
    let lines = super::edit::data_lines(&String::from_utf8_lossy(bytes));
    let mut nodes = Vec::with_capacity(lines.len());
    let file: std::sync::Arc<str> = shown.into();
    for (n, record) in reader.records().enumerate() {
        let row = lines.get(n + 1).copied().unwrap_or(n + 2);
        let origin = Origin {
            file: file.clone(),
            place: Place::Row(row),
        };
        let record = record.map_err(|e| format!("{shown}: row {row}: {e}"))?;
        if record.len() > width {
            return Err(format!(
                "{shown}: row {row}: {} fields, but the header row names {width} columns ({}); remove the extra ones (a value with a comma needs double quotes)",
                record.len(),
                reader.headers().map(|h| h.iter().collect::<Vec<_>>().join(",")).unwrap_or_default()
            ));
        }
        let field = |c: usize| -> Option<Sourced<String>> {
            let v = record.get(index[c]?)?;
            if v.is_empty() && !COLUMNS[c].required {
                return None;
            }
            Some(Sourced {
                value: v.to_string(),
                origin: origin.clone(),
            })
        };
        if let Some(c) = (0..COLUMNS.len()).find(|&c| COLUMNS[c].required && field(c).is_none()) {
            return Err(format!(
                "{shown}: row {row}: no {} (the row has {} fields; {} are required in every row)",
                COLUMNS[c].name,
                record.len(),
                COLUMNS
                    .iter()
                    .filter(|c| c.required)
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let empty = Sourced {
            value: String::new(),
            origin: origin.clone(),
        };
        let mut node = NodeInput {
            hostname: empty.clone(),
            mac: empty.clone(),
            ip: empty,
            image: None,
            cmdline: None,
            boot: None,
            bmc: None,
            origin: origin.clone(),
            range: None,
        };
        for (c, col) in COLUMNS.iter().enumerate() {
            if let Some(v) = field(c) {
                (col.set)(&mut node, v);
            }
        }
        nodes.push(node);
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    /// A comment on the last line, with no line break after it, is a
    /// comment (the csv crate alone reads it as a row), CRLF or not.
    #[test]
    fn a_last_comment_without_a_line_break_is_no_row() {
        for t in [
            "hostname,mac,ip\nn1,52:54:00:00:00:01,192.0.2.11\n# spare",
            "# rack\r\nhostname,mac,ip\r\n\r\nn1,52:54:00:00:00:01,192.0.2.11\r\n# spare",
            "hostname,mac,ip\nn1,52:54:00:00:00:01,192.0.2.11",
        ] {
            let nodes = super::parse(t.as_bytes(), "nodes.csv").unwrap();
            assert_eq!(nodes.len(), 1, "{t:?}");
            assert_eq!(nodes[0].ip.value, "192.0.2.11");
        }
    }
}

//! In-place edits of the CSV inventory for `ddc node add|set|rm`: the file
//! is split into its records (a quoted field may hold a line break), each
//! kept as bytes with its own line ending, so that every row, comment and
//! blank line not edited is written back byte for byte. An edited row keeps
//! its untouched fields as written; a new row follows the header's column
//! order and the file's line ending.
//!
//! Plain text work: imports only `columns`. The inventory reader takes
//! its row numbers from here ([`data_lines`]). The caller validates the
//! result (the whole config, `config::check_with_inventory`) and writes it.

use super::columns::{self, COLUMNS};

/// One record of the file, with its line ending.
#[derive(Debug, Clone)]
struct Record {
    text: String,
    /// The line the record starts on (the CSV reader's row number).
    line: usize,
}

impl Record {
    /// The record without its line ending.
    fn body(&self) -> &str {
        self.text.trim_end_matches(['\n', '\r'])
    }

    fn ending(&self) -> &str {
        &self.text[self.body().len()..]
    }

    /// A row (or the header), as the CSV reader sees it: not a comment,
    /// not an empty line.
    fn is_data(&self) -> bool {
        let b = self.body();
        !b.is_empty() && !b.starts_with('#')
    }
}

/// An inventory as records, ready for edits.
#[derive(Debug)]
pub(crate) struct Inventory {
    records: Vec<Record>,
    /// The index of the header record.
    header: usize,
    /// The header's column names, lowercase.
    columns: Vec<String>,
    /// The file's line ending: the header's, or `\n`.
    eol: String,
    /// What an edit did, one line each, for the user.
    pub(crate) said: Vec<String>,
}

/// A data row, as [`Inventory::rows`] gives it.
pub(crate) struct Row {
    /// Its position among the records (for [`Inventory::set`], [`Inventory::remove`]).
    pub(crate) index: usize,
    /// Its row number, as messages name it.
    pub(crate) line: usize,
    /// Its hostname as written (a name, or a range such as `node[03-52]`).
    pub(crate) hostname: String,
}

impl Inventory {
    pub(crate) fn parse(text: &str) -> Result<Inventory, String> {
        let records = split(text);
        let header = records.iter().position(Record::is_data).ok_or(
            "it has no header row; its first row must name the columns, like hostname,mac,ip",
        )?;
        let columns: Vec<String> = fields(records[header].body())
            .iter()
            .map(|f| value(f).to_ascii_lowercase())
            .collect();
        let eol = match records[header].ending() {
            "" => "\n".to_string(),
            e => e.to_string(),
        };
        Ok(Inventory {
            records,
            header,
            columns,
            eol,
            said: Vec::new(),
        })
    }

    pub(crate) fn text(&self) -> String {
        self.records.iter().map(|r| r.text.as_str()).collect()
    }

    /// The data rows, in file order.
    pub(crate) fn rows(&self) -> Vec<Row> {
        let host = self
            .columns
            .iter()
            .position(|c| c == "hostname")
            .unwrap_or(0);
        self.records
            .iter()
            .enumerate()
            .filter(|(i, r)| *i > self.header && r.is_data())
            .map(|(index, r)| Row {
                index,
                line: r.line,
                hostname: fields(r.body())
                    .get(host)
                    .map(|f| value(f))
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The data row whose hostname is written as `name` (any case).
    pub(crate) fn find(&self, name: &str) -> Option<Row> {
        self.rows()
            .into_iter()
            .find(|r| r.hostname.eq_ignore_ascii_case(name))
    }

    /// The field of column `key` in the header, added at the end of the
    /// header when it has none (rows that leave it out stay as they are).
    fn column(&mut self, key: &str) -> Result<usize, String> {
        let c = columns::column(key)
            .ok_or_else(|| format!("no column {key:?}; the columns are {}", columns::names()))?;
        let name = COLUMNS[c].name;
        if let Some(i) = self.columns.iter().position(|h| h == name) {
            return Ok(i);
        }
        let r = &mut self.records[self.header];
        let ending = r.ending().to_string();
        r.text = format!("{},{name}{ending}", r.body());
        self.columns.push(name.to_string());
        self.said
            .push(format!("added the column {name} to the header row"));
        Ok(self.columns.len() - 1)
    }

    /// Sets `key` to `val` in the row at `index`; its other fields stay as
    /// written. Returns the value it had.
    pub(crate) fn set(&mut self, index: usize, key: &str, val: &str) -> Result<String, String> {
        let c = self.column(key)?;
        let r = &mut self.records[index];
        let mut f: Vec<String> = fields(r.body()).into_iter().map(String::from).collect();
        let old = f.get(c).map(|x| value(x)).unwrap_or_default();
        if f.len() <= c {
            f.resize(c + 1, String::new());
        }
        f[c] = quoted(val);
        while f.len() > 3 && f.last().is_some_and(|x| value(x).is_empty()) {
            f.pop();
        }
        let ending = r.ending().to_string();
        r.text = format!("{}{ending}", f.join(","));
        Ok(old)
    }

    /// Adds a row after the last record, its fields in the header's order,
    /// trailing empty ones left out.
    pub(crate) fn add(&mut self, values: &[(&str, &str)]) -> Result<usize, String> {
        let mut f: Vec<String> = Vec::new();
        for (key, val) in values.iter().filter(|(_, v)| !v.is_empty()) {
            let c = self.column(key)?;
            if f.len() <= c {
                f.resize(c + 1, String::new());
            }
            f[c] = quoted(val);
        }
        let last = self.records.len() - 1;
        if self.records[last].ending().is_empty() {
            self.records[last].text.push_str(&self.eol);
        }
        let line = self.records[last].line + self.records[last].text.matches('\n').count();
        self.records.push(Record {
            text: format!("{}{}", f.join(","), self.eol),
            line,
        });
        Ok(line)
    }

    /// Removes the record at `index`; the others keep their bytes.
    pub(crate) fn remove(&mut self, index: usize) {
        self.records.remove(index);
    }

    /// The row at `index` as written, without its line ending.
    pub(crate) fn row_text(&self, index: usize) -> &str {
        self.records[index].body()
    }
}

/// The line each row of a CSV text starts on, the header first.
pub(crate) fn data_lines(text: &str) -> Vec<usize> {
    split(text)
        .into_iter()
        .filter(Record::is_data)
        .map(|r| r.line)
        .collect()
}

/// The records of a CSV text: a line break inside double quotes does not
/// end one; a comment line (`#`) ends at its line break.
fn split(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let (mut start, mut line, mut quoted) = (0, 1, false);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let comment = i == start && bytes[i] == b'#';
        match bytes[i] {
            b'"' if !comment => quoted = !quoted,
            b'\n' if !quoted => {
                out.push(Record {
                    text: text[start..=i].to_string(),
                    line,
                });
                line += text[start..=i].matches('\n').count();
                start = i + 1;
            }
            _ => {}
        }
        if comment {
            // Up to its line break, quotes and all.
            i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        i += 1;
    }
    if start < text.len() {
        out.push(Record {
            text: text[start..].to_string(),
            line,
        });
    }
    out
}

/// The raw fields of a record, split at the commas outside double quotes.
fn fields(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, b) in body.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&body[start..]);
    out
}

/// A raw field's value: trimmed, its quotes taken off.
fn value(raw: &str) -> String {
    let t = raw.trim();
    match t.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\"").trim().to_string(),
        None => t.to_string(),
    }
}

/// A value as a field: quoted when CSV needs it.
fn quoted(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) || v.starts_with('#') || v.trim() != v {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "# the rack\r\nhostname, mac ,ip,image\r\n\r\nn1,52:54:00:00:00:01,192.0.2.11\r\n# a \"quoted\" comment, with commas\r\n\"n2\",52:54:00:00:00:02,192.0.2.12,\"default\"\r\nn3,52:54:00:00:00:03,192.0.2.13";

    #[test]
    fn rows_are_found_with_their_numbers() {
        let inv = Inventory::parse(CSV).unwrap();
        let rows: Vec<(usize, String)> = inv
            .rows()
            .into_iter()
            .map(|r| (r.line, r.hostname))
            .collect();
        assert_eq!(
            rows,
            vec![(4, "n1".into()), (6, "n2".into()), (7, "n3".into())]
        );
        assert_eq!(inv.text(), CSV);
    }

    #[test]
    fn a_set_touches_one_field_of_one_row() {
        let mut inv = Inventory::parse(CSV).unwrap();
        let r = inv.find("N2").unwrap();
        assert_eq!(inv.set(r.index, "ip", "192.0.2.99").unwrap(), "192.0.2.12");
        assert_eq!(inv.text(), CSV.replace("192.0.2.12", "192.0.2.99"));
        let r = inv.find("n1").unwrap();
        inv.set(r.index, "cmdline", "quiet, splash").unwrap();
        assert_eq!(
            inv.text(),
            CSV.replace("192.0.2.12", "192.0.2.99")
                .replace("ip,image\r\n", "ip,image,cmdline\r\n")
                .replace("192.0.2.11\r\n", "192.0.2.11,,\"quiet, splash\"\r\n")
        );
    }

    #[test]
    fn a_new_row_follows_the_header_and_the_line_ending() {
        let mut inv = Inventory::parse(CSV).unwrap();
        let line = inv
            .add(&[
                ("hostname", "n4"),
                ("ip", "192.0.2.14"),
                ("mac", "52:54:00:00:00:04"),
                ("image", ""),
            ])
            .unwrap();
        assert_eq!(line, 8);
        assert_eq!(
            inv.text(),
            format!("{CSV}\r\nn4,52:54:00:00:00:04,192.0.2.14\r\n")
        );
        inv.remove(inv.find("n1").unwrap().index);
        assert!(!inv.text().contains("n1,"));
        assert!(inv
            .text()
            .starts_with("# the rack\r\nhostname, mac ,ip,image\r\n\r\n# a"));
    }

    proptest::proptest! {
        /// Any text: parsing keeps it byte for byte, no edit panics, and
        /// the reader gives every row a line number.
        #[test]
        fn any_text_round_trips_and_nothing_panics(text in "(#|\"|,|\r|\n|a|b|1| |\\[|-|\\]){0,60}") {
            let _ = crate::config::inventory::parse(text.as_bytes(), "nodes.csv");
            if let Ok(mut inv) = Inventory::parse(&text) {
                proptest::prop_assert_eq!(inv.text(), text.clone());
                if let Some(r) = inv.rows().first().map(|r| r.index) {
                    let _ = inv.set(r, "cmdline", "a, \"b\"");
                    let _ = inv.set(r, "nope", "x");
                    inv.remove(r);
                }
                let _ = inv.add(&[("hostname", "n"), ("mac", "m"), ("ip", "")]);
                let _ = inv.text();
            }
        }
    }

    #[test]
    fn a_quoted_line_break_stays_in_its_record() {
        let inv = Inventory::parse("hostname,mac,ip,cmdline\nn1,m,i,\"a\nb\"\nn2,m,i\n").unwrap();
        let rows: Vec<(usize, String)> = inv
            .rows()
            .into_iter()
            .map(|r| (r.line, r.hostname))
            .collect();
        assert_eq!(rows, vec![(2, "n1".into()), (4, "n2".into())]);
    }
}

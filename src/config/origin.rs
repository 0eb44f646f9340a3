//! Where user input came from and what is wrong with it: source positions
//! (`FILE:LINE:COL`, `FILE: row N`), the errors reported against them, and
//! values carried with their position until validation.
//!
//! The bottom of `config`: it imports nothing from the other config modules.

use std::fmt;

/// A position in a source file, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// Shared: every value of a 10,000-row inventory names the same file.
    pub file: std::sync::Arc<str>,
    /// 1-based line and column, or a CSV row.
    pub place: Place,
}

/// Where in the file: a TOML value, a CSV row, or the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    LineCol(usize, usize),
    Row(usize),
    File,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.place {
            Place::LineCol(l, c) => write!(f, "{}:{}:{}", self.file, l, c),
            Place::Row(r) => write!(f, "{}: row {}", self.file, r),
            Place::File => write!(f, "{}", self.file),
        }
    }
}

/// One problem in the user's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub origin: Origin,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.message)
        }
    }
}

/// All the problems found in one load, printed one a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub(crate) Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where a value came from, before validation.
#[derive(Clone)]
pub(crate) struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// One node as given, in a `[[nodes]]` table or an inventory row.
#[derive(Clone)]
pub(crate) struct NodeInput {
    pub hostname: Sourced<String>,
    pub mac: Sourced<String>,
    pub ip: Sourced<String>,
    pub image: Option<Sourced<String>>,
    pub cmdline: Option<Sourced<String>>,
    pub boot: Option<Sourced<String>>,
    pub bmc: Option<Sourced<String>>,
    /// Where the node as a whole was given, for messages about the whole
    /// node (it names no image and there is no default).
    pub origin: Origin,
    /// The range (`node[03-52]`) this node was counted from, if any.
    pub range: Option<String>,
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut start = offset;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..start].chars().count() + 1;
    (line, col)
}

/// A text's line starts, to place many offsets in O(log n) each: a
/// 10,000-node Ddcfile has 50,000 values.
pub(crate) struct Lines<'a> {
    text: &'a str,
    /// Byte offset of each line's start.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Lines {
            text,
            starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        }
    }

    /// What [`line_col`] says, without counting the lines before.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&st| st <= offset);
        let start = self.starts[line - 1];
        let (_, c) = line_col(&self.text[start..], offset - start);
        (line, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 3), (2, 1));
        assert_eq!(line_col("x", 99), (1, 2));
    }

    #[test]
    fn lines_agree_with_line_col() {
        let text = "ab\ncd\n\né\nx";
        let lines = Lines::new(text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(lines.line_col(offset), line_col(text, offset), "{offset}");
        }
    }
}

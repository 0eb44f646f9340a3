//! Why a Ddcfile is not TOML, or not a Ddcfile's TOML: every syntax error
//! with its line and a caret, and every unknown key with the nearest known
//! one, rather than the one error the parser and serde stop at.
//!
//! Imports `origin`, `raw` and `suggest`.

use super::origin::{line_col, ConfigError, ConfigErrors, Origin, Place};
use super::raw::RawDdcfile;
use super::suggest;

/// Why `text` is no Ddcfile. A syntax error is reported with every other
/// one the TOML parser recovers from, each with its line and a caret under
/// the column; a well-formed file that does not fit with the problem serde
/// stops at (a missing key, a wrong type), or every unknown key, each with
/// the nearest known one.
pub(super) fn explain(text: &str, file: &str, e: &toml::de::Error) -> ConfigErrors {
    let at = |span: Option<std::ops::Range<usize>>| Origin {
        file: file.into(),
        place: match span {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                Place::LineCol(l, c)
            }
            None => Place::File,
        },
    };
    let syntax = syntax_errors(text);
    if syntax.is_empty() {
        let mut errors = vec![ConfigError {
            origin: at(e.span()),
            key: String::new(),
            message: toml_message(e),
        }];
        if suggest::unknown_field(e.message().trim()).is_some() {
            errors.extend(unknown_keys(text, e).iter().map(|(offset, e)| ConfigError {
                origin: at(Some(*offset..*offset)),
                key: String::new(),
                message: toml_message(e),
            }));
        }
        return ConfigErrors(errors);
    }
    let count = syntax.len();
    let mut errors: Vec<ConfigError> = syntax
        .into_iter()
        .map(|(offset, message)| ConfigError {
            origin: at(Some(offset..offset)),
            key: String::new(),
            message: format!("TOML syntax: {message}{}", quote_line(text, offset)),
        })
        .collect();
    let what = match count {
        1 => "this syntax error".to_string(),
        n if n >= MAX_SYNTAX_ERRORS => format!("these first {n} syntax errors"),
        n => format!("these {n} syntax errors"),
    };
    errors.push(ConfigError {
        origin: at(None),
        key: String::new(),
        message: format!(
            "fix {what} and run again: keys and values are checked once the file reads as TOML, and a line read wrongly may hide another error"
        ),
    });
    ConfigErrors(errors)
}

/// The most syntax errors reported at once.
const MAX_SYNTAX_ERRORS: usize = 10;

/// The syntax errors of `text`, one a line, in order: the first error the
/// parser finds, then the first once that line is blanked out, and so on,
/// up to an error in an array or inline table, which may span lines.
/// (The parser's own recovery goes on after an error, but an unclosed
/// string or bracket makes it report every following line as broken.)
fn syntax_errors(text: &str) -> Vec<(usize, String)> {
    let mut text = text.to_string();
    let mut found = Vec::new();
    while found.len() < MAX_SYNTAX_ERRORS {
        let (_, errors) = toml::de::DeTable::parse_recoverable(&text);
        let Some((offset, message)) = errors
            .iter()
            .filter_map(|e| Some((e.span()?.start, e.message().trim().to_string())))
            .min_by_key(|(offset, _)| *offset)
        else {
            break;
        };
        // An open bracket takes the lines after it in: what the parser
        // says of them is about the bracket, not about them.
        let spans_lines = ["array", "inline table", "unclosed"]
            .iter()
            .any(|w| message.contains(w));
        found.push((offset, message));
        if spans_lines {
            break;
        }
        if !blank_line(&mut text, offset) {
            break;
        }
    }
    found
}

/// Makes the line of `offset` a comment of the same length, so that every
/// other offset stays; false when it is empty.
fn blank_line(text: &mut String, offset: usize) -> bool {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    if start == end {
        return false;
    }
    let blank = format!("#{}", " ".repeat(end - start - 1));
    text.replace_range(start..end, &blank);
    true
}

/// Every unknown key, when serde stopped at one: the file is read again
/// with the key renamed to the nearest known one (the likely typo; its line
/// made a comment when none is near), as long as what stops serde is
/// another unknown key further on (up to [`MAX_SYNTAX_ERRORS`]). Any other
/// error is left for the next run: the change may have caused it.
fn unknown_keys(text: &str, first: &toml::de::Error) -> Vec<(usize, toml::de::Error)> {
    let mut text = text.to_string();
    let mut found = Vec::new();
    // Bytes the renames added: each is before the next error.
    let mut shift = 0isize;
    let mut e = first.clone();
    while found.len() + 1 < MAX_SYNTAX_ERRORS {
        let Some(at) = e.span().map(|s| s.start) else {
            break;
        };
        let Some((field, expected)) = suggest::unknown_field(e.message().trim()) else {
            break;
        };
        match suggest::nearest(field, expected.iter().copied()) {
            Some(near) if text.get(at..at + field.len()) == Some(field) => {
                let near = near.to_string();
                text.replace_range(at..at + field.len(), &near);
                shift += near.len() as isize - field.len() as isize;
            }
            _ => {
                if !blank_line(&mut text, at) {
                    break;
                }
            }
        }
        match toml::from_str::<RawDdcfile>(&text) {
            Err(next) if suggest::unknown_field(next.message().trim()).is_some() => {
                let Some(next_at) = next.span().map(|s| s.start).filter(|&n| n > at) else {
                    break;
                };
                found.push(((next_at as isize - shift).max(0) as usize, next.clone()));
                e = next;
            }
            _ => break,
        }
    }
    found
}

/// The line of `offset`, with its number and a caret under its column.
fn quote_line(text: &str, offset: usize) -> String {
    let (line, col) = line_col(text, offset);
    let shown = text.lines().nth(line - 1).unwrap_or_default();
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    // Tabs stay tabs under the caret, so that it lines up in a terminal.
    let lead: String = shown
        .chars()
        .take(col - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("\n {number} | {shown}\n {pad} | {lead}^")
}

fn toml_message(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    if let Some((field, expected)) = suggest::unknown_field(&msg) {
        match suggest::nearest(field, expected.iter().copied()) {
            Some(near) => format!("{msg}; did you mean `{near}`?"),
            None => format!("{msg}; remove it or check its spelling"),
        }
    } else if msg.starts_with("missing field") {
        format!("{msg}; add it")
    } else {
        msg
    }
}

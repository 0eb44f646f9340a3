//! "Did you mean": the nearest of a set of names to a misspelt one, by
//! edit distance (Damerau–Levenshtein: `amd46` is one swap from `amd64`).
//!
//! Pure functions on strings: imports nothing from the other config modules.

/// The candidate nearest to `word`, if one is near enough to be a likely
/// typo: at most 1 edit for words of up to 5 characters, 2 up to 9, else 3
/// (`jammy`, Ubuntu's, is 2 from Debian's ancient `hamm`: no typo of it).
/// Ties go to the first candidate given.
pub(crate) fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let len = word.chars().count();
    let limit = match len {
        0..=5 => 1,
        6..=9 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let d = strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase());
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `"; did you mean \"NAME\"?"` for the nearest candidate, or nothing.
pub(crate) fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    nearest(word, candidates)
        .map(|c| format!("; did you mean {c:?}?"))
        .unwrap_or_default()
}

/// serde's `unknown field `X`, expected one of `A`, `B`` (or `expected `A`
/// or `B``): the field and the expected ones.
pub(crate) fn unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty())
        .collect();
    Some((field, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested_and_far_ones_are_not() {
        let keys = ["suite", "arch", "packages", "union", "cmdline"];
        assert_eq!(nearest("pakages", keys), Some("packages"));
        assert_eq!(nearest("archh", keys), Some("arch"));
        assert_eq!(nearest("kernel", keys), None);
        assert_eq!(nearest("amd46", ["amd64", "arm64"]), Some("amd64"));
        assert_eq!(
            nearest("bookwrm", ["bullseye", "bookworm"]),
            Some("bookworm")
        );
        assert_eq!(nearest("defualt", ["default", "gpu"]), Some("default"));
        assert_eq!(nearest("x", ["default"]), None);
        assert_eq!(nearest("jammy", ["hamm", "bookworm"]), None);
        assert_eq!(did_you_mean("gpus", ["gpu"]), "; did you mean \"gpu\"?");
    }

    #[test]
    fn serde_unknown_field_messages_are_read() {
        assert_eq!(
            unknown_field("unknown field `pakages`, expected one of `suite`, `packages`"),
            Some(("pakages", vec!["suite", "packages"]))
        );
        assert_eq!(
            unknown_field("unknown field `x`, expected `a` or `b`"),
            Some(("x", vec!["a", "b"]))
        );
        assert_eq!(unknown_field("missing field `cluster`"), None);
    }
}

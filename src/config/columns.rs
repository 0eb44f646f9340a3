//! The node columns of the CSV inventory, one line each: its name, whether
//! a row must give it, whether a host range counts it up, and where its
//! value goes in a [`NodeInput`]. The inventory reader, the range expansion
//! and `ddc node set` all read this table, so a new column is one line here
//! (and its field in `NodeInput` and the model).
//!
//! Imports only `origin`.

use super::origin::{NodeInput, Sourced};

/// How a range row (`node[03-52]`) gives each of its nodes a value of this
/// column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Count {
    /// The same value for every node of the range.
    Same,
    /// A MAC address counted up from the row's (in its last three bytes).
    Mac,
    /// An IPv4 address counted up from the row's (a `:PORT` after it
    /// stays the same).
    Ipv4,
}

/// One column of the inventory.
pub(crate) struct Column {
    pub name: &'static str,
    /// Every row must give it (the header too).
    pub required: bool,
    pub count: Count,
    pub get: fn(&NodeInput) -> Option<&Sourced<String>>,
    pub set: fn(&mut NodeInput, Sourced<String>),
}

/// The columns, in the order a new inventory lists them. `hostname` comes
/// first: a range is written there.
#[rustfmt::skip]
pub(crate) const COLUMNS: &[Column] = &[
    Column { name: "hostname", required: true, count: Count::Same, get: |n| Some(&n.hostname), set: |n, v| n.hostname = v },
    Column { name: "mac", required: true, count: Count::Mac, get: |n| Some(&n.mac), set: |n, v| n.mac = v },
    Column { name: "ip", required: true, count: Count::Ipv4, get: |n| Some(&n.ip), set: |n, v| n.ip = v },
    Column { name: "image", required: false, count: Count::Same, get: |n| n.image.as_ref(), set: |n, v| n.image = Some(v) },
    Column { name: "cmdline", required: false, count: Count::Same, get: |n| n.cmdline.as_ref(), set: |n, v| n.cmdline = Some(v) },
    Column { name: "boot", required: false, count: Count::Same, get: |n| n.boot.as_ref(), set: |n, v| n.boot = Some(v) },
    Column { name: "bmc", required: false, count: Count::Ipv4, get: |n| n.bmc.as_ref(), set: |n, v| n.bmc = Some(v) },
];

/// The column called `name` (any case).
pub(crate) fn column(name: &str) -> Option<usize> {
    COLUMNS
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
}

/// The header a new inventory gets, and messages show:
/// `hostname,mac,ip[,image[,cmdline]]`.
pub(crate) fn header_shown() -> String {
    let mut s = String::new();
    let mut optional = 0;
    for (i, c) in COLUMNS.iter().enumerate() {
        if i > 0 && !c.required {
            s.push('[');
            optional += 1;
        }
        if i > 0 {
            s.push(',');
        }
        s.push_str(c.name);
    }
    s.push_str(&"]".repeat(optional));
    s
}

/// The names of the columns, comma separated.
pub(crate) fn names() -> String {
    COLUMNS.iter().map(|c| c.name).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_optional_columns() {
        assert_eq!(
            header_shown(),
            "hostname,mac,ip[,image[,cmdline[,boot[,bmc]]]]"
        );
        assert_eq!(column("MAC"), Some(1));
    }
}

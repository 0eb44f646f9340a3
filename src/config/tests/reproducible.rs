//! `source_date_epoch`, `snapshot` and `snapshot_archive`: what they set,
//! and their errors, each at its line and column.

use super::*;

const ARCHIVE: &str = "http://snapshot.invalid/archive/debian";

fn image_with(lines: &str) -> String {
    with(IMG, &format!("{IMG}\n{lines}"))
}

#[test]
fn the_epoch_is_the_key_else_the_snapshot_else_derived() {
    let img = |text: &str| parse_str(text).unwrap().images["default"].clone();
    let plain = img(BASE);
    assert_eq!(plain.source_date_epoch, None);
    assert_eq!(plain.snapshot, None);
    let set = img(&image_with("source_date_epoch = 1700000000"));
    assert_eq!(set.source_date_epoch, Some(1_700_000_000));
    let pinned = img(&image_with(&format!(
        "snapshot = \"20240101T000000Z\"\nsnapshot_archive = \"{ARCHIVE}/\""
    )));
    assert_eq!(pinned.source_date_epoch, Some(1_704_067_200));
    assert_eq!(pinned.snapshot.as_deref(), Some("20240101T000000Z"));
    assert_eq!(pinned.mirror, format!("{ARCHIVE}/20240101T000000Z/"));
    let both = img(&image_with(&format!(
        "snapshot = \"20240101T000000Z\"\nsnapshot_archive = \"{ARCHIVE}\"\nsource_date_epoch = 5"
    )));
    assert_eq!(both.source_date_epoch, Some(5));
}

#[test]
fn reproducibility_key_errors() {
    let table: Vec<(String, String)> = vec![
        (image_with("source_date_epoch = -1"),
         "Ddcfile.toml:7:21: images.default.source_date_epoch: -1 is not a time ddc can use: write seconds since 1970-01-01 00:00 UTC, from 0 to 253402300799 (like 1704067200; `date +%s` prints the current one)".into()),
        (image_with("source_date_epoch = \"1700000000\""),
         "Ddcfile.toml:7:21: invalid type: string \"1700000000\", expected i64".into()),
        (image_with(&format!("snapshot = \"2024-01-01\"\nsnapshot_archive = \"{ARCHIVE}\"")),
         "Ddcfile.toml:7:12: images.default.snapshot: \"2024-01-01\" is not a snapshot time: write it in UTC as YYYYMMDDTHHMMSSZ, like \"20240101T000000Z\"".into()),
        (image_with(&format!("snapshot = \"20230229T000000Z\"\nsnapshot_archive = \"{ARCHIVE}\"")),
         "Ddcfile.toml:7:12: images.default.snapshot: \"20230229T000000Z\" is not a snapshot time: write it in UTC as YYYYMMDDTHHMMSSZ, like \"20240101T000000Z\"".into()),
        (image_with("snapshot = \"20240101T000000Z\""),
         "Ddcfile.toml:7:12: images.default.snapshot: needs snapshot_archive, the base URL of Debian's snapshot archive (ddc appends /TIMESTAMP/ to it): add snapshot_archive = \"URL\"".into()),
        (image_with(&format!("snapshot_archive = \"{ARCHIVE}\"")),
         "Ddcfile.toml:7:20: images.default.snapshot_archive: is used only with a snapshot: add snapshot = \"YYYYMMDDTHHMMSSZ\" (the moment to pin the mirror to), or remove snapshot_archive".into()),
        (image_with("snapshot = \"20240101T000000Z\"\nsnapshot_archive = \"ftp://x.invalid/debian\""),
         "Ddcfile.toml:8:20: images.default.snapshot_archive: \"ftp://x.invalid/debian\" is not a mirror URL: it is not http://, https:// or file:; write one like http://mirror.example/debian, https://… or file:/srv/debian-mirror".into()),
        (image_with(&format!("mirror = \"http://m.invalid/debian\"\nsnapshot = \"20240101T000000Z\"\nsnapshot_archive = \"{ARCHIVE}\"")),
         "Ddcfile.toml:7:10: images.default.mirror: and snapshot both say where the packages come from: remove mirror (with a snapshot, the mirror is snapshot_archive at that moment)".into()),
    ];
    for (text, want) in table {
        assert_eq!(errors(&text), want, "for:\n{text}");
    }
}

#[test]
fn a_child_image_inherits_its_bases_snapshot_and_may_not_set_one() {
    let base = format!("{IMG}\nsnapshot = \"20240101T000000Z\"\nsnapshot_archive = \"{ARCHIVE}\"");
    let child = |lines: &str| {
        let text = with(
            IMG,
            &format!("{base}\n\n[images.kid]\nfrom = \"default\"\n{lines}"),
        );
        (text.clone(), errors(&text))
    };
    let ok = with(IMG, &format!("{base}\n\n[images.kid]\nfrom = \"default\""));
    let kid = parse_str(&ok).unwrap().images["kid"].clone();
    assert_eq!(kid.snapshot.as_deref(), Some("20240101T000000Z"));
    assert_eq!(kid.mirror, format!("{ARCHIVE}/20240101T000000Z/"));
    let (text, err) = child("snapshot = \"20250101T000000Z\"");
    assert_eq!(
        err,
        "Ddcfile.toml:12:12: images.kid.snapshot: kid inherits its base's snapshot (from = \"default\"): remove snapshot, or set it in images.default",
        "for:\n{text}"
    );
    let (text, err) = child(&format!(
        "snapshot = \"20250101T000000Z\"\nsnapshot_archive = \"{ARCHIVE}\""
    ));
    assert_eq!(
        err,
        "Ddcfile.toml:12:12: images.kid.snapshot: kid inherits its base's snapshot (from = \"default\"): remove snapshot, or set it in images.default\n\
         Ddcfile.toml:13:20: images.kid.snapshot_archive: kid inherits its base's snapshot (from = \"default\"): remove snapshot_archive, or set it in images.default",
        "for:\n{text}"
    );
}

//! Times as `SOURCE_DATE_EPOCH` needs them: seconds since 1970-01-01 UTC
//! from a snapshot timestamp (`20240101T000000Z`) or from the `Date:` field
//! of an apt Release file (`Sat, 10 Jun 2023 08:57:08 UTC`, RFC 2822), and
//! the day number `/etc/shadow` counts in.
//!
//! Pure functions on text: imports nothing of ddc.

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The latest time ddc accepts: the end of year 9999.
pub(crate) const MAX_EPOCH: i64 = 253_402_300_799;

/// Days since 1970-01-01 of a civil (proleptic Gregorian) date, or None if
/// the date does not exist (month 13, 30 February).
fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > month_days[m as usize - 1] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Seconds since the epoch of a UTC time, or None if it does not exist.
pub(crate) fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let t = days_from_civil(y, mo, d)? * DAY + i64::from(h * 3600 + mi * 60 + s.min(59));
    (0..=MAX_EPOCH).contains(&t).then_some(t)
}

/// The time of a snapshot timestamp `YYYYMMDDTHHMMSSZ` (UTC), as Debian's
/// snapshot archive names them.
pub(crate) fn snapshot_time(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = ts.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    utc(
        i64::from(digits(0..4)?),
        digits(4..6)?,
        digits(6..8)?,
        digits(9..11)?,
        digits(11..13)?,
        digits(13..15)?,
    )
}

/// The time of an RFC 2822 date as apt writes it in a Release file's
/// `Date:` field: `[Wdy, ]DD Mon YYYY HH:MM:SS ZONE`, ZONE being `UTC`,
/// `GMT`, `Z` or `+HHMM`/`-HHMM`.
pub(crate) fn rfc2822_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = match text.split_once(',') {
        Some((_, rest)) => rest,
        None => text,
    };
    let mut f = text.split_whitespace();
    let day: u32 = f.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let mon = f.next()?.to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| *m == mon)? as u32 + 1;
    let year: i64 = f.next()?.parse().ok()?;
    let mut hms = f.next()?.split(':').map(|p| p.parse::<u32>().ok());
    let (h, mi) = (hms.next()??, hms.next()??);
    let s = hms.next().flatten().unwrap_or(0);
    let offset = match f.next().unwrap_or("UTC") {
        "UTC" | "GMT" | "Z" | "UT" => 0,
        z => {
            let (sign, hhmm) = match z.as_bytes().first()? {
                b'+' => (1, &z[1..]),
                b'-' => (-1, &z[1..]),
                _ => return None,
            };
            if hhmm.len() != 4 || !hhmm.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let n: i64 = hhmm.parse().ok()?;
            sign * ((n / 100) * 3600 + (n % 100) * 60)
        }
    };
    let t = utc(year, month, day, h, mi, s)? - offset;
    (0..=MAX_EPOCH).contains(&t).then_some(t)
}

/// The newest `Date:` among Release files' texts (InRelease's signature
/// lines around it are skipped), or None if none has one.
pub(crate) fn newest_release_date<'a>(texts: impl IntoIterator<Item = &'a str>) -> Option<i64> {
    texts
        .into_iter()
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Date:"))
                .and_then(rfc2822_time)
        })
        .max()
}

/// The day number of `epoch` as `/etc/shadow` counts (days since 1970-01-01).
pub(crate) fn shadow_day(epoch: i64) -> i64 {
    epoch.div_euclid(DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_timestamps() {
        assert_eq!(snapshot_time("19700101T000000Z"), Some(0));
        assert_eq!(snapshot_time("20240101T000000Z"), Some(1_704_067_200));
        assert_eq!(snapshot_time("20230610T085708Z"), Some(1_686_387_428));
        assert_eq!(snapshot_time("20240229T235959Z"), Some(1_709_251_199));
        for bad in [
            "2024-01-01",
            "20240101T000000",
            "20240101t000000z",
            "20230229T000000Z",
            "20241301T000000Z",
            "20240101T240000Z",
            "20240101T006000Z",
            "+2024101T000000Z",
            "20240101T0000ééZ",
            "",
        ] {
            assert_eq!(snapshot_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn release_dates() {
        assert_eq!(
            rfc2822_time("Sat, 10 Jun 2023 08:57:08 UTC"),
            Some(1_686_387_428)
        );
        assert_eq!(
            rfc2822_time(" 10 Jun 2023 08:57:08 GMT"),
            Some(1_686_387_428)
        );
        assert_eq!(
            rfc2822_time("Sat, 10 Jun 2023 10:57:08 +0200"),
            Some(1_686_387_428)
        );
        assert_eq!(rfc2822_time("Sat, 10 Jun 2023 08:57:08 +02"), None);
        assert_eq!(rfc2822_time("Sat, 10 Foo 2023 08:57:08 UTC"), None);
        assert_eq!(rfc2822_time("yesterday"), None);
    }

    #[test]
    fn the_newest_release_date_wins() {
        let inrelease = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nDate: Sat, 10 Jun 2023 08:57:08 UTC\nValid-Until: Sat, 17 Jun 2023 08:57:08 UTC\n";
        let updates = "Origin: Debian\nDate: Mon, 12 Jun 2023 20:13:01 UTC\n";
        let none = "Origin: Debian\nSuite: stable\n";
        assert_eq!(newest_release_date([inrelease]), Some(1_686_387_428));
        assert_eq!(
            newest_release_date([inrelease, updates, none]),
            Some(1_686_600_781)
        );
        assert_eq!(newest_release_date([none]), None);
    }

    #[test]
    fn shadow_days() {
        assert_eq!(shadow_day(1_686_387_428), 19_518);
        assert_eq!(shadow_day(0), 0);
    }
}

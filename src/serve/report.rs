//! A node's report as `POST /api/v1/report` receives it: JSON parsed into
//! bounded fields, each checked, or a one-line reason for the 400. Also the
//! MAC forms the service accepts (`52:54:00:12:34:56`, `52-54-00-12-34-56`).

use serde::Deserialize;

use crate::nodestate::Report;

/// The longest body accepted; a larger one gets a 413.
pub(crate) const MAX_BODY: usize = 16 * 1024;
/// At most this many failed units in one report.
pub(crate) const MAX_UNITS: usize = 256;
const MAX_FIELD: usize = 256;

#[derive(Deserialize)]
struct Raw {
    hostname: String,
    mac: String,
    image: String,
    generation: String,
    boot_id: String,
    kernel: String,
    uptime: f64,
    #[serde(default)]
    failed_units: Vec<String>,
    /// `systemctl is-system-running`; images from before it send none.
    #[serde(default)]
    system: Option<String>,
}

/// The longest system state accepted (systemd's are at most 12 bytes).
const MAX_SYSTEM: usize = 32;

/// A MAC in either form, as lowercase colon-separated, or None.
pub(crate) fn normalize_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let ok = s.len() == 17
        && parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| parts.join(":").to_ascii_lowercase())
}

fn printable(name: &str, v: &str, max: usize) -> Result<(), String> {
    if v.len() > max {
        return Err(format!("{name} is longer than {max} bytes"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("{name} contains control characters"));
    }
    Ok(())
}

fn is_generation(g: &str) -> bool {
    g.split_once('-').is_some_and(|(seq, hash)| {
        seq.len() == 4
            && seq.bytes().all(|b| b.is_ascii_digit())
            && hash.len() == 12
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Parses and checks a report body.
pub(crate) fn parse(body: &[u8]) -> Result<Report, String> {
    let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    let mac = normalize_mac(&raw.mac)
        .ok_or_else(|| format!("mac {:?} is not a MAC like 52:54:00:12:34:56", raw.mac))?;
    for (name, v) in [
        ("hostname", &raw.hostname),
        ("image", &raw.image),
        ("boot_id", &raw.boot_id),
        ("kernel", &raw.kernel),
    ] {
        printable(name, v, MAX_FIELD)?;
    }
    if raw.hostname.is_empty() {
        return Err("hostname is empty".into());
    }
    if !is_generation(&raw.generation) {
        return Err(format!(
            "generation {:?} is not a generation like 0001-31fdc6b79d37",
            raw.generation.chars().take(64).collect::<String>()
        ));
    }
    if !(raw.uptime.is_finite() && (0.0..1e10).contains(&raw.uptime)) {
        return Err("uptime is not a number of seconds".into());
    }
    if raw.failed_units.len() > MAX_UNITS {
        return Err(format!("more than {MAX_UNITS} failed_units"));
    }
    for u in &raw.failed_units {
        printable("a failed unit", u, MAX_FIELD)?;
    }
    if let Some(s) = &raw.system {
        if s.len() > MAX_SYSTEM || !s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            return Err(format!(
                "system {:?} is not a state of `systemctl is-system-running` (lowercase \
                 letters and -, at most {MAX_SYSTEM} bytes)",
                s.chars().take(64).collect::<String>()
            ));
        }
    }
    Ok(Report {
        hostname: raw.hostname,
        mac,
        image: raw.image,
        generation: raw.generation,
        boot_id: raw.boot_id,
        kernel: raw.kernel,
        uptime: raw.uptime,
        failed_units: raw.failed_units,
        system: raw.system.filter(|s| !s.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"hostname":"node01","mac":"52:54:00:12:34:56","image":"default",
        "generation":"0001-31fdc6b79d37","boot_id":"6f1c","kernel":"6.1.0-28-amd64",
        "uptime":123.45,"failed_units":["foo.service"]}"#;

    #[test]
    fn parses_a_good_report() {
        let r = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(r.hostname, "node01");
        assert_eq!(r.failed_units, vec!["foo.service"]);
    }

    #[test]
    fn refuses_bad_fields_with_a_reason() {
        for (from, to, why) in [
            ("0001-31fdc6b79d37", "current", "generation"),
            ("52:54:00:12:34:56", "52:54:00:12:34", "mac"),
            ("123.45", "-1", "uptime"),
            ("\"node01\"", "17", "bad JSON"),
        ] {
            let e = parse(GOOD.replace(from, to).as_bytes()).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let many: Vec<String> = (0..=MAX_UNITS).map(|i| format!("\"u{i}\"")).collect();
        let body = GOOD.replace("\"foo.service\"", &many.join(","));
        assert!(parse(body.as_bytes()).unwrap_err().contains("failed_units"));
    }

    #[test]
    fn the_system_state_is_optional_and_checked() {
        assert_eq!(parse(GOOD.as_bytes()).unwrap().system, None);
        let with = |v: &str| GOOD.replace("\"uptime\"", &format!("\"system\":{v},\"uptime\""));
        let r = parse(with("\"running\"").as_bytes()).unwrap();
        assert_eq!(r.system.as_deref(), Some("running"));
        assert_eq!(parse(with("\"\"").as_bytes()).unwrap().system, None);
        for bad in [
            "\"Running\"",
            "\"run ning\"",
            &format!("\"{}\"", "a".repeat(33)),
        ] {
            let e = parse(with(bad).as_bytes()).unwrap_err();
            assert!(e.contains("system"), "{e}");
        }
    }

    #[test]
    fn macs_in_both_forms() {
        assert_eq!(
            normalize_mac("52-54-00-AB-34-56").as_deref(),
            Some("52:54:00:ab:34:56")
        );
        assert_eq!(normalize_mac("52-54-00-ab-34"), None);
        assert_eq!(normalize_mac("52:54:00:ab:34:5g"), None);
    }
}

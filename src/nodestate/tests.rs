//! The store's unit tests.

use super::*;

fn report(host: &str, generation: &str) -> Report {
    Report {
        hostname: host.into(),
        mac: "52:54:00:12:34:56".into(),
        image: "default".into(),
        generation: generation.into(),
        boot_id: "b".into(),
        kernel: "6.1.0".into(),
        uptime: 10.0,
        failed_units: vec!["a.service".into()],
        system: None,
    }
}

#[test]
fn the_system_state_is_kept_and_an_older_ddc_can_still_open_the_db() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    // A database of an older ddc: no system column.
    let c = Connection::open(&path).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch("PRAGMA user_version = 1;").unwrap();
    c.execute(
        "INSERT INTO nodes (hostname, image, generation, report_at) VALUES ('n0','default','0001-31fdc6b79d37',5)",
        [],
    )
    .unwrap();
    drop(c);
    let r = Store::open_existing(&path).unwrap().unwrap();
    assert_eq!(
        r.nodes().unwrap()["n0"].report.as_ref().unwrap().system,
        None
    );
    drop(r);
    let mut s = Store::open(&path).unwrap();
    let mut rep = report("n1", "0001-31fdc6b79d37");
    rep.system = Some("running".into());
    s.apply(&[Write::Report {
        report: rep,
        at: 9,
        ip: "192.0.2.1".into(),
    }])
    .unwrap();
    let rows = s.nodes().unwrap();
    assert_eq!(
        rows["n1"].report.as_ref().unwrap().system.as_deref(),
        Some("running")
    );
    assert_eq!(rows["n0"].report.as_ref().unwrap().system, None);
    drop(s);
    // Only added: the version an older ddc opens.
    let c = Connection::open(&path).unwrap();
    let v: i32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 1);
}

#[test]
fn formats_rfc3339() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
}

#[test]
fn states_follow_reports_and_fetches() {
    let hb = 60;
    let mut row = NodeRow::default();
    assert_eq!(row.state(1000, hb), State::NeverSeen);
    row.fetch_at = Some(1000);
    assert_eq!(row.state(2000, hb), State::Booting);
    row.report_at = Some(2000);
    assert_eq!(row.state(2000, hb), State::Up);
    assert_eq!(row.state(2000 + 180_000, hb), State::Up);
    assert_eq!(row.state(2001 + 180_000, hb), State::Silent);
    row.fetch_at = Some(3000);
    assert_eq!(row.state(3000, hb), State::Booting);
}

#[test]
fn writes_read_back_and_discovered_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let mut s = Store::open(&path).unwrap();
    let out = s
        .apply(&[
            Write::Report {
                report: report("node01", "0001-aaaaaaaaaaaa"),
                at: 5000,
                ip: "192.0.2.11".into(),
            },
            Write::Fetch {
                hostname: "node02".into(),
                at: 6000,
                ip: "192.0.2.12".into(),
            },
        ])
        .unwrap();
    assert_eq!(out, vec![Ok(()), Ok(())]);
    let nodes = s.nodes().unwrap();
    assert_eq!(
        nodes["node01"].report,
        Some(report("node01", "0001-aaaaaaaaaaaa"))
    );
    assert_eq!(nodes["node01"].booted_at(), Some(-5000));
    assert_eq!(nodes["node02"].report, None);
    assert_eq!(nodes["node02"].fetch_at, Some(6000));
    let (running, ignored) = s.running(&|h| h == "node01").unwrap();
    assert_eq!(
        running[&("default".to_string(), "0001-aaaaaaaaaaaa".to_string())],
        vec!["node01".to_string()]
    );
    assert!(ignored.is_empty(), "{ignored:?}");
    let (running, ignored) = s.running(&|_| false).unwrap();
    assert!(running.is_empty(), "{running:?}");
    assert_eq!(
        ignored,
        vec![
            "node01 reported 0001-aaaaaaaaaaaa of image default but is no longer in the \
             inventory: not kept"
                .to_string()
        ]
    );
    // node01 renamed node01b, rebooted into 0002 (same MAC, later
    // report): the machine no longer runs 0001.
    s.apply(&[Write::Report {
        report: report("node01b", "0002-bbbbbbbbbbbb"),
        at: 7000,
        ip: "192.0.2.11".into(),
    }])
    .unwrap();
    let (running, _) = s.running(&|_| true).unwrap();
    assert_eq!(
        running.keys().map(|k| k.1.as_str()).collect::<Vec<_>>(),
        vec!["0002-bbbbbbbbbbbb"]
    );
    s.discovered = DISCOVERED_MAX - 1;
    let unknown = |mac: &str| Write::Unknown {
        mac: mac.into(),
        at: 1,
        ip: "192.0.2.99".into(),
        platform: "efi".into(),
        arch: "x86_64".into(),
    };
    let out = s
        .apply(&[unknown("aa"), unknown("bb"), unknown("aa")])
        .unwrap();
    assert!(
        out[0].is_ok() && out[1].is_err() && out[2].is_ok(),
        "{out:?}"
    );
    let seen = s.discovered().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].mac.as_str(), seen[0].arch.as_str()),
        ("aa", "x86_64")
    );
    s.discovered = 0;
    let mut later = unknown("00");
    if let Write::Unknown { at, .. } = &mut later {
        *at = 9;
    }
    s.apply(&[later, unknown("aa")]).unwrap();
    let macs: Vec<String> = s.discovered().unwrap().into_iter().map(|d| d.mac).collect();
    assert_eq!(
        macs,
        vec!["aa".to_string(), "00".to_string()],
        "first seen first"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_corrupt_database_names_the_file_and_the_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let e = Store::open_existing(&path).err().unwrap().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("ddc status --reset-db"), "{e}");
    let aside = reset(&path).unwrap().unwrap();
    assert!(aside.exists() && !path.exists());
    Store::open(&path).unwrap();
}

#[test]
fn serve_says_it_runs_and_that_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    // A database from before the serve table: nobody said anything.
    let c = Connection::open(&path).unwrap();
    c.execute_batch("CREATE TABLE nodes (hostname TEXT PRIMARY KEY);")
        .unwrap();
    drop(c);
    let r = Store::open_existing(&path).unwrap().unwrap();
    assert_eq!(r.serve_alive().unwrap(), None);
    drop(r);
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.serve_alive().unwrap(), None);
    s.apply(&[Write::Alive { at: 123, pid: 7 }]).unwrap();
    s.apply(&[Write::Alive { at: 456, pid: 7 }]).unwrap();
    assert_eq!(s.serve_alive().unwrap(), Some((456, 7)));
    s.apply(&[Write::Alive { at: 0, pid: 7 }]).unwrap();
    assert_eq!(s.serve_alive().unwrap(), None);
}

//! The node inventory through the real binary: `ddc nodes`, `ddc show`,
//! `ddc node add|set|rm` on a CSV with comments and CRLF line endings (the
//! rows not edited kept byte for byte), ragged rows and host ranges, and
//! `ddc generations --json`.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{strs, Project};

/// A CSV as people write it: a comment, CRLF line endings, a blank line,
/// a range, a row that leaves out its optional columns and one that does
/// not, a quoted field.
const CSV: &str = "# rack 1, as cabled\r\nhostname,mac,ip,image,cmdline\r\n\r\nnode[03-52],52:54:00:aa:00:03,192.0.2.13\r\n# the GPU box\r\ngpu1,52:54:00:bb:00:01,192.0.2.100,default,\"quiet splash\"\r\ngpu2 , 52:54:00:bb:00:02 ,192.0.2.101\r\n";

fn project() -> Project {
    let p = Project::with(&common::DDCFILE.replace(
        "tasks_dir = \"tasks\"",
        "tasks_dir = \"tasks\"\nnodes_file = \"nodes.csv\"",
    ));
    p.write("nodes.csv", CSV);
    p
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn ok(p: &Project, args: &[&str]) -> String {
    let r = p.ddc(args);
    assert_eq!(r.code, 0, "ddc {args:?}:\n{}\n{}", r.stdout, r.stderr);
    r.stdout
}

fn fails(p: &Project, args: &[&str]) -> String {
    let r = p.ddc(args);
    assert_eq!(
        r.code, 2,
        "ddc {args:?} should fail:\n{}\n{}",
        r.stdout, r.stderr
    );
    r.stderr
}

#[test]
fn nodes_lists_every_node_sorted_with_where_it_is_defined() {
    let p = project();
    let nodes = json_lines(&ok(&p, &["nodes", "--json"]));
    // 2 in the Ddcfile, 50 from the range, 2 more rows.
    assert_eq!(nodes.len(), 54);
    let names: Vec<&str> = nodes
        .iter()
        .map(|n| n["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(&names[..5], &["gpu1", "gpu2", "node01", "node02", "node03"]);
    assert_eq!(names[53], "node52");
    let node52 = &nodes[53];
    assert_eq!(node52["mac"], "52:54:00:aa:00:34");
    assert_eq!(node52["ip"], "192.0.2.62");
    assert_eq!(node52["defined"], "nodes.csv row 4");
    assert_eq!(node52["range"], "node[03-52]");
    assert_eq!(
        node52["entry"],
        "out/tftp/pxelinux.cfg/01-52-54-00-aa-00-34"
    );
    assert_eq!(node52["generation"], serde_json::Value::Null);
    assert_eq!(nodes[1]["defined"], "nodes.csv row 7");
    assert_eq!(nodes[1]["mac"], "52:54:00:bb:00:02");
    assert_eq!(nodes[2]["defined"], "Ddcfile.toml:24");

    p.build(&[]);
    let text = ok(&p, &["nodes", "--image", "default"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 55, "{text}");
    assert!(lines[0].starts_with("hostname  mac "), "{text}");
    let gen = p.current("default");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "gpu1",
            "52:54:00:bb:00:01",
            "192.0.2.100",
            "default",
            gen.as_str(),
            "out/tftp/pxelinux.cfg/01-52-54-00-bb-00-01",
            "nodes.csv",
            "row",
            "6"
        ]
    );
    // Aligned: every row's MAC starts where the header's does.
    let col = lines[0].find("mac").unwrap();
    assert!(
        lines.iter().skip(1).all(|l| l[col..].starts_with("52:54")),
        "{text}"
    );
    assert!(fails(&p, &["nodes", "--image", "defualt"]).contains("did you mean \"default\"?"));
}

#[test]
fn moving_a_row_reruns_no_boot_entry() {
    let p = project();
    p.build(&[]);
    // gpu2's row moved above the range, and a comment added: the same nodes.
    p.write(
        "nodes.csv",
        &CSV.replace("gpu2 , 52:54:00:bb:00:02 ,192.0.2.101\r\n", "")
            .replace(
                "\r\n\r\n",
                "\r\n# moved\r\ngpu2 , 52:54:00:bb:00:02 ,192.0.2.101\r\n",
            ),
    );
    let ran = p.build(&[]);
    assert!(ran.iter().all(|t| !t.starts_with("pxe:")), "{ran:?}");
    let gpu2 = json_lines(&ok(&p, &["nodes", "--json"]))
        .into_iter()
        .find(|n| n["hostname"] == "gpu2")
        .unwrap();
    assert_eq!(gpu2["defined"], "nodes.csv row 4");
}

#[test]
fn show_says_where_each_setting_comes_from_and_what_was_built() {
    let p = project();
    let before = ok(&p, &["show", "gpu1"]);
    assert!(before.starts_with("gpu1\n"), "{before}");
    for want in [
        "node (nodes.csv row 6)",
        "console=ttyS0",
        "image default ([images.default])",
        "quiet splash",
        "cluster default ([cluster] master)",
        "not built yet",
        "host gpu1 {\n      hardware ethernet 52:54:00:bb:00:01;\n      fixed-address 192.0.2.100;",
        "52:54:00:bb:00:01,192.0.2.100,gpu1\n",
    ] {
        assert!(before.contains(want), "no {want:?} in:\n{before}");
    }
    p.build(&[]);
    let after = ok(&p, &["show", "node07"]);
    assert!(
        after.contains("node (nodes.csv row 4, range node[03-52])"),
        "{after}"
    );
    assert!(
        after.contains("cluster default (the node names no image)"),
        "{after}"
    );
    let entry = p.read("out/tftp/pxelinux.cfg/01-52-54-00-aa-00-07");
    let shown: String = entry.lines().map(|l| format!("  {l}\n")).collect();
    assert!(
        after.contains(&shown),
        "the entry as built is not in:\n{after}"
    );
    // The DHCP lines are those the dhcp task wrote.
    let dhcpd = p.read("out/dhcp/ddc.conf");
    let block = "host node07 {\n    hardware ethernet 52:54:00:aa:00:07;\n    fixed-address 192.0.2.17;\n    option host-name \"node07\";\n}\n";
    assert!(dhcpd.contains(block), "{dhcpd}");
    let indented: String = block.lines().map(|l| format!("  {l}\n")).collect();
    assert!(after.contains(&indented), "{after}");

    let err = fails(&p, &["show", "nod07"]);
    assert!(
        err.contains("error: no node \"nod07\"; did you mean \"node07\"?"),
        "{err}"
    );
}

#[test]
fn node_add_set_rm_keep_every_other_byte() {
    let p = project();
    std::fs::set_permissions(p.path("nodes.csv"), std::fs::Permissions::from_mode(0o640)).unwrap();
    p.build(&[]);

    let out = ok(
        &p,
        &[
            "node",
            "add",
            "gpu3",
            "--mac",
            "52:54:00:BB:00:03",
            "--ip",
            "192.0.2.102",
            "--cmdline",
            "a, b",
        ],
    );
    assert!(
        out.contains("nodes.csv: added row 8: gpu3,52:54:00:BB:00:03,192.0.2.102,,\"a, b\""),
        "{out}"
    );
    assert!(out.contains("ddc build"), "{out}");
    let added = format!("{CSV}gpu3,52:54:00:BB:00:03,192.0.2.102,,\"a, b\"\r\n");
    assert_eq!(p.read("nodes.csv"), added);
    assert_eq!(
        std::fs::metadata(p.path("nodes.csv")).unwrap().mode() & 0o7777,
        0o640
    );
    assert_eq!(p.build(&[]), strs(&["dhcp", "pxe:gpu3"]));

    let out = ok(
        &p,
        &["node", "set", "gpu2", "image=default", "cmdline=nomodeset"],
    );
    assert!(
        out.contains("nodes.csv row 7: gpu2: cmdline: (none) -> nomodeset"),
        "{out}"
    );
    let set = added.replace(
        "gpu2 , 52:54:00:bb:00:02 ,192.0.2.101\r\n",
        "gpu2 , 52:54:00:bb:00:02 ,192.0.2.101,default,nomodeset\r\n",
    );
    assert_eq!(p.read("nodes.csv"), set);
    assert_eq!(p.build(&[]), strs(&["pxe:gpu2"]));

    // The whole range by its name: its first address moves, so do all.
    ok(&p, &["node", "set", "node[03-52]", "ip=192.0.2.150"]);
    let set = set.replace(
        "52:54:00:aa:00:03,192.0.2.13\r\n",
        "52:54:00:aa:00:03,192.0.2.150\r\n",
    );
    assert_eq!(p.read("nodes.csv"), set);

    let out = ok(&p, &["node", "rm", "gpu1", "gpu3"]);
    assert!(out.contains("nodes.csv: removed row 6: gpu1,"), "{out}");
    let removed = set
        .replace(
            "gpu1,52:54:00:bb:00:01,192.0.2.100,default,\"quiet splash\"\r\n",
            "",
        )
        .replace("gpu3,52:54:00:BB:00:03,192.0.2.102,,\"a, b\"\r\n", "");
    assert_eq!(p.read("nodes.csv"), removed);
    assert!(removed.starts_with("# rack 1, as cabled\r\nhostname,mac,ip,image,cmdline\r\n\r\n"));
    assert!(removed.contains("# the GPU box\r\ngpu2 ,"));
    let ran = p.build(&[]);
    assert!(!ran.contains(&"pxe:gpu2".to_string()), "{ran:?}");
    assert!(!p
        .path("out/tftp/pxelinux.cfg/01-52-54-00-bb-00-01")
        .exists());
}

#[test]
fn a_node_of_the_ddcfile_is_named_never_edited() {
    let p = project();
    for args in [
        &["node", "set", "node01", "ip=192.0.2.99"][..],
        &["node", "rm", "node02"],
        &[
            "node",
            "add",
            "node01",
            "--mac",
            "52:54:00:00:00:99",
            "--ip",
            "192.0.2.99",
        ],
    ] {
        let err = fails(&p, args);
        assert!(
            err.contains("is defined in Ddcfile.toml:"),
            "{args:?}: {err}"
        );
        assert!(err.contains("[[nodes]]"), "{err}");
        assert_eq!(p.read("nodes.csv"), CSV);
    }
    let err = fails(&p, &["node", "set", "node05", "image=default"]);
    assert!(
        err.contains("\"node05\" is one of the range node[03-52] (nodes.csv row 4)"),
        "{err}"
    );
    let err = fails(&p, &["node", "set", "gpu1", "colour=blue"]);
    assert!(err.contains("no column \"colour\""), "{err}");
}

#[test]
fn an_edit_that_fails_validation_writes_nothing() {
    let p = project();
    let before = std::fs::metadata(p.path("nodes.csv")).unwrap();
    // The MAC of node04, counted by the range.
    let err = fails(
        &p,
        &[
            "node",
            "add",
            "gpu9",
            "--mac",
            "52:54:00:aa:00:04",
            "--ip",
            "192.0.2.109",
        ],
    );
    assert!(
        err.contains("error: nodes.csv: row 8: mac: \"52:54:00:aa:00:04\" is already used by the node at nodes.csv: row 4"),
        "{err}"
    );
    assert!(err.contains("nodes.csv is unchanged"), "{err}");
    let err = fails(&p, &["node", "set", "gpu1", "image=nope"]);
    assert!(
        err.contains("names image \"nope\", which is not defined"),
        "{err}"
    );
    let err = fails(&p, &["node", "set", "node[03-52]", "ip=192.0.2.240"]);
    assert!(
        err.contains("past the end of the cluster network 192.0.2.0/24"),
        "{err}"
    );
    assert_eq!(p.read("nodes.csv"), CSV);
    let after = std::fs::metadata(p.path("nodes.csv")).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );
}

#[test]
fn without_a_csv_node_says_how_to_set_one_up() {
    let p = Project::new();
    let err = fails(
        &p,
        &[
            "node",
            "add",
            "n3",
            "--mac",
            "52:54:00:00:00:03",
            "--ip",
            "192.0.2.13",
        ],
    );
    assert!(err.contains("names no nodes_file"), "{err}");
    assert!(err.contains("nodes_file = \"nodes.csv\""), "{err}");
    assert!(err.contains("hostname,mac,ip,image,cmdline"), "{err}");
}

#[test]
fn ragged_rows_ranges_and_their_mistakes() {
    let p = project();
    p.write(
        "nodes.csv",
        &format!("{CSV}gpu4,52:54:00:bb:00:04,192.0.2.104,default,quiet,extra\r\n"),
    );
    let err = fails(&p, &["nodes"]);
    assert!(
        err.contains("nodes.csv: row 8: 6 fields, but the header row names 5 columns (hostname,mac,ip,image,cmdline)"),
        "{err}"
    );
    for (row, want) in [
        (
            "rack[1-3],52:54:00:ff:ff:fe,192.0.2.150",
            "nodes.csv: row 8: mac: the range rack[1-3] counts 3 MAC addresses up from 52:54:00:ff:ff:fe, past 52:54:00:ff:ff:ff",
        ),
        (
            "rack[1-10],52:54:00:cc:00:01,192.0.2.250",
            "nodes.csv: row 8: ip: the range rack[1-10] counts 10 addresses up from 192.0.2.250 to 192.0.3.3, past the end of the cluster network 192.0.2.0/24",
        ),
        (
            "node[50-60],52:54:00:cc:00:01,192.0.2.200",
            "nodes.csv: row 8: hostname: \"node50\" (of the range node[50-60]) is already used by the node at nodes.csv: row 4",
        ),
        ("node[9-3],52:54:00:cc:00:01,192.0.2.200", "the range counts down (9 to 3)"),
        ("gpu5", "nodes.csv: row 8: no mac"),
    ] {
        p.write("nodes.csv", &format!("{CSV}{row}\r\n"));
        let err = fails(&p, &["nodes"]);
        assert!(err.contains(want), "{row}: {err}");
    }
    // A BMC address counts up with the range, its port kept.
    p.write(
        "nodes.csv",
        "hostname,mac,ip,bmc\nr[1-3],52:54:00:cc:00:01,192.0.2.200,192.0.2.230:6230\n",
    );
    let bmcs: Vec<String> = json_lines(&ok(&p, &["nodes", "--json"]))
        .iter()
        .filter_map(|n| n["bmc"].as_str().map(String::from))
        .collect();
    assert_eq!(
        bmcs,
        ["192.0.2.230:6230", "192.0.2.231:6230", "192.0.2.232:6230"]
    );
    // A range in a [[nodes]] table, zero-padded width kept.
    let p = Project::with(
        &common::DDCFILE.replace("hostname = \"node02\"", "hostname = \"n[008-011]\""),
    );
    let names: Vec<String> = json_lines(&ok(&p, &["nodes", "--json"]))
        .iter()
        .map(|n| {
            format!(
                "{} {} {}",
                n["hostname"].as_str().unwrap(),
                n["mac"].as_str().unwrap(),
                n["ip"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "n008 52:54:00:12:34:57 192.0.2.12",
            "n009 52:54:00:12:34:58 192.0.2.13",
            "n010 52:54:00:12:34:59 192.0.2.14",
            "n011 52:54:00:12:34:5a 192.0.2.15",
            "node01 52:54:00:12:34:56 192.0.2.11"
        ]
    );
}

#[test]
fn generations_json_lists_every_node_and_pin() {
    let p = project();
    p.build(&[]);
    let first = p.current("default");
    // node01 pinned to the first generation; a package change makes a second.
    p.edit(
        "Ddcfile.toml",
        "ip       = \"192.0.2.11\"",
        "ip       = \"192.0.2.11\"\nimage    = \"default@1\"",
    );
    p.edit(
        "Ddcfile.toml",
        "\"nfs-common\"]",
        "\"nfs-common\", \"vim\"]",
    );
    p.build(&[]);
    let second = p.current("default");
    assert_ne!(first, second);
    let gens = json_lines(&ok(&p, &["generations", "--json"]));
    assert_eq!(gens.len(), 2, "{gens:?}");
    assert_eq!(gens[0]["id"], first.as_str());
    assert_eq!(gens[0]["image"], "default");
    assert_eq!(gens[0]["current"], false);
    assert_eq!(gens[0]["pinned_by"], serde_json::json!(["node01"]));
    assert_eq!(gens[0]["nodes"], serde_json::json!(["node01"]));
    assert_eq!(gens[1]["current"], true);
    let nodes = gens[1]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 53, "every node, never truncated");
    assert_eq!(nodes[0], "gpu1");
    assert_eq!(nodes[52], "node52");
    assert!(gens[1]["created"].as_str().unwrap().ends_with('Z'));
    assert!(gens[1]["size"].as_u64().unwrap() > 0);
    let text = ok(&p, &["generations"]);
    assert!(
        text.contains("gpu1, gpu2, node02 … node52 (53 nodes)"),
        "{text}"
    );
}

#[test]
fn concurrent_node_adds_lose_no_row() {
    // Twelve `ddc node add` at once: each holds the inventory lock from
    // reading the CSV to writing it, so every row lands.
    let p = project();
    let children: Vec<_> = (0..12)
        .map(|i| {
            let host = format!("c{i:02}");
            let mac = format!("52:54:00:cc:00:{i:02x}");
            let ip = format!("192.0.2.{}", 150 + i);
            p.command(&["node", "add", &host, "--mac", &mac, "--ip", &ip])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let csv = p.read("nodes.csv");
    assert!(csv.starts_with(CSV), "{csv}");
    for i in 0..12 {
        assert!(
            csv.contains(&format!("c{i:02},")),
            "row c{i:02} lost:\n{csv}"
        );
    }
    assert_eq!(csv.lines().count(), CSV.lines().count() + 12, "{csv}");
}

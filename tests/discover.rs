//! `ddc discover` through the real binary: machines recorded by a real
//! `ddc serve` on loopback (through `/api/v1/unknown`, as `boot.ipxe` asks),
//! listed in text and JSON with serve stopped, then given names and free
//! addresses by `--add` (a `{..}` range, a `[..]` range, `-n`), appended to a
//! commented CRLF CSV byte for byte; a taken hostname, an image that does not
//! exist and a config without a CSV are refused, and nothing is written.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/serve.rs"]
mod serve;

use std::net::Ipv4Addr;

use common::Project;
use serve::Serve;

/// A commented CRLF inventory without a final line break: node03 at
/// 127.0.0.14, the highest node address.
const CSV: &str = "# the rack\r\nhostname,mac,ip,image\r\n\r\nnode03,52:54:00:12:34:58,127.0.0.14\r\n# spare slots below";

const MACS: [&str; 3] = [
    "52:54:00:aa:00:01",
    "52:54:00:aa:00:02",
    "52:54:00:aa:00:03",
];

/// The test Ddcfile on loopback, its nodes in [[nodes]] and nodes.csv; the
/// DNS server at 127.0.0.15, which no new node may take.
fn project() -> Project {
    let text = common::DDCFILE
        .replace("192.0.2.0/24", "127.0.0.0/24")
        .replace(
            "master  = \"192.0.2.1\"",
            "master  = \"127.0.0.1\"\ndns     = [\"127.0.0.15\"]",
        )
        .replace("192.0.2.11", "127.0.0.11")
        .replace("192.0.2.12", "127.0.0.12");
    let p = Project::with(&format!("nodes_file = \"nodes.csv\"\n{text}"));
    p.write("nodes.csv", CSV);
    p
}

/// Runs `ddc serve` on loopback, has the three machines of [`MACS`] ask
/// for their script (from 127.0.0.99, .98, .97, in that order), then
/// stops it.
fn seed(p: &Project) {
    let s = Serve::start(p);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (i, mac) in MACS.iter().enumerate() {
        let q = format!(
            "/api/v1/unknown?mac={}&platform=efi&arch=x86_64",
            mac.replace(':', "-")
        );
        let from = Ipv4Addr::new(127, 0, 0, 99 - i as u8);
        let r = rt
            .block_on(http::request(s.addr, from, "GET", &q, b""))
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        // First seen is kept in ms: the order must not tie.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = s.log(p);
    assert!(s.stop().success(), "{log}");
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn discovered_machines_are_listed_then_added_in_order_of_first_seen() {
    let p = project();
    let r = p.ddc(&["discover"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("none seen yet") && r.stdout.contains("/api/v1/unknown"),
        "{}",
        r.stdout
    );
    seed(&p);

    // Listed with serve stopped, first seen first.
    let r = p.ddc(&["discover"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("mac "), "{}", r.stdout);
    for (i, mac) in MACS.iter().enumerate() {
        assert!(lines[i + 1].starts_with(mac), "{}", r.stdout);
        assert!(
            lines[i + 1].contains(&format!("127.0.0.{}", 99 - i)),
            "{}",
            r.stdout
        );
        assert!(lines[i + 1].ends_with("efi/x86_64"), "{}", r.stdout);
    }
    let j = json_lines(&p.ddc(&["discover", "--json"]).stdout);
    assert_eq!(j.len(), 3);
    assert_eq!(j[0]["mac"], MACS[0]);
    assert_eq!(j[0]["ip"], "127.0.0.99");
    assert_eq!(j[0]["platform"], "efi");
    assert_eq!(j[0]["arch"], "x86_64");
    assert!(j[0]["first_seen"].as_str().unwrap().ends_with('Z'));
    assert!(j[0]["first_seen"].as_str() <= j[1]["first_seen"].as_str());

    // -n: the plan, nothing written.
    let r = p.ddc(&["discover", "--add", "new{05..06}", "-n"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("would add new05")
            && r.stdout.contains(MACS[0])
            && r.stdout.contains("127.0.0.16")
            && r.stdout.contains("nothing written"),
        "{}",
        r.stdout
    );
    assert_eq!(p.read("nodes.csv"), CSV);

    // Up from the highest node (.14), past the DNS server (.15).
    let r = p.ddc(&["discover", "--add", "new{05..06}"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        p.read("nodes.csv"),
        format!(
            "{CSV}\r\nnew05,{},127.0.0.16\r\nnew06,{},127.0.0.17\r\n",
            MACS[0], MACS[1]
        )
    );
    assert!(
        r.stdout.contains("added new05") && r.stdout.contains("ddc build"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("1 machine still not in the inventory"),
        "{}",
        r.stdout
    );

    // The added machines drop out of the list.
    let j = json_lines(&p.ddc(&["discover", "--json"]).stdout);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["mac"], MACS[2]);

    // A hostname the inventory has is refused; nothing is written.
    let before = p.read("nodes.csv");
    let r = p.ddc(&["discover", "--add", "NEW05"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("\"NEW05\" is already in nodes.csv row 6"),
        "{}",
        r.stderr
    );
    let r = p.ddc(&["discover", "--add", "node01"]);
    assert!(r.stderr.contains("already in Ddcfile.toml"), "{}", r.stderr);
    // An image that does not exist: the whole config is checked first.
    let r = p.ddc(&["discover", "--add", "z1", "--image", "nope"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("nodes.csv is unchanged"), "{}", r.stderr);
    let r = p.ddc(&["discover", "--add", "z1", "--image", "nope", "-n"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("would not be written"), "{}", r.stderr);
    assert_eq!(p.read("nodes.csv"), before);

    // More names than machines: what there is, and it says so.
    let r = p.ddc(&["discover", "--add", "z[1-3]", "--image", "default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("2 names left unused"), "{}", r.stdout);
    assert_eq!(
        p.read("nodes.csv"),
        format!("{before}z1,{},127.0.0.18,default\r\n", MACS[2])
    );
    let r = p.ddc(&["discover"]);
    assert!(
        r.stdout.contains("no machine outside the inventory"),
        "{}",
        r.stdout
    );
    let nodes = json_lines(&p.ddc(&["nodes", "--json"]).stdout);
    assert_eq!(nodes.len(), 6, "{nodes:?}");
}

#[test]
fn without_a_csv_add_says_how_to_set_one_up_and_writes_nothing() {
    let p = Project::new();
    let r = p.ddc(&["discover", "--add", "gamma"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("nodes_file = \"nodes.csv\"")
            && r.stderr.contains("hostname,mac,ip")
            && r.stderr.contains("never rewrites"),
        "{}",
        r.stderr
    );
    assert_eq!(p.read("Ddcfile.toml"), common::DDCFILE);
    assert!(!p.path("nodes.csv").exists());
    // Listing needs no CSV.
    assert_eq!(p.ddc(&["discover"]).code, 0);
}

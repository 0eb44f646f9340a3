//! The engine at cluster scale: a 10,000-node Ddcfile on the tiny step
//! scripts. Prints a table of wall times for the first build of the per-node
//! and aggregate tasks, a no-op build, and a build after changing one node's
//! MAC, and checks that the last one reran exactly that node and dhcp.
//!
//! Run: `cargo bench --bench scale` (NODES=2000 to try another size;
//! TMPDIR=… to choose the disk: on ext4, a folder near many just-deleted
//! files makes creating the 10,000 entry files slow, whatever creates them).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn ddc(dir: &Path, args: &[&str]) -> (f64, String) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("ddc runs");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "ddc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (secs, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ran(json: &str) -> Vec<String> {
    let mut v: Vec<String> = json
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["state"] == "ran")
        .map(|v| v["task"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn mac(i: usize) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        i >> 16,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Row {
    first: f64,
    noop: f64,
    change: f64,
    dry: f64,
}

/// One scenario: the nodes as `[[nodes]]` tables, or in a CSV inventory.
fn scenario(nodes: usize, csv: bool) -> (Row, tempfile::TempDir) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::Builder::new()
        .prefix("ddc-bench-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    copy_dir(&repo.join("tests/fixtures/tiny-tasks"), &d.join("tasks"));
    copy_dir(&repo.join("tasks/templates"), &d.join("tasks/templates"));
    let mut text = String::from("tasks_dir = \"tasks\"\n");
    if csv {
        text.push_str("nodes_file = \"nodes.csv\"\n");
    }
    text.push_str(
        "\n[cluster]\nnetwork = \"10.0.0.0/16\"\nmaster = \"10.0.0.1\"\n\n\
         [apply]\ndnsmasq = \"off\"\ndhcpd = \"off\"\nnfs = \"off\"\nrsyslog = \"off\"\n\n\
         [images.default]\nsuite = \"bookworm\"\npackages = [\"linux-image-amd64\"]\ncmdline = \"console=ttyS0\"\n",
    );
    let mut inventory = String::from("hostname,mac,ip\n");
    for i in 0..nodes {
        let ip = format!("10.0.{}.{}", (i + 2) / 250, (i + 2) % 250 + 2);
        if csv {
            inventory.push_str(&format!("n{i:05},{},{ip}\n", mac(i)));
        } else {
            text.push_str(&format!(
                "\n[[nodes]]\nhostname = \"n{i:05}\"\nmac = \"{}\"\nip = \"{ip}\"\n",
                mac(i)
            ));
        }
    }
    std::fs::write(d.join("Ddcfile.toml"), &text).unwrap();
    std::fs::write(d.join("nodes.csv"), &inventory).unwrap();
    let nodes_file = if csv { "nodes.csv" } else { "Ddcfile.toml" };

    // The image tasks first: they are not what this measures.
    ddc(d, &["build", "publish:default"]);
    let (first, out) = ddc(d, &["build", "--json"]);
    assert_eq!(
        ran(&out).len(),
        nodes + 3,
        "first build: every pxe, bootloader, exports, dhcp"
    );

    let mut noop = Vec::new();
    for _ in 0..7 {
        let (t, out) = ddc(d, &["build", "--json"]);
        assert!(ran(&out).is_empty(), "a no-op build ran {:?}", ran(&out));
        noop.push(t);
    }
    let mut change = Vec::new();
    for k in 0..7 {
        let node = 1234 % nodes;
        let (from, to) = if k % 2 == 0 {
            (mac(node), "52:54:00:ff:ff:fe".to_string())
        } else {
            ("52:54:00:ff:ff:fe".to_string(), mac(node))
        };
        let t = std::fs::read_to_string(d.join(nodes_file)).unwrap();
        std::fs::write(d.join(nodes_file), t.replacen(&from, &to, 1)).unwrap();
        let (secs, out) = ddc(d, &["build", "--json"]);
        let want = vec!["dhcp".to_string(), format!("pxe:n{node:05}")];
        assert_eq!(
            ran(&out),
            want,
            "a one-node change must rerun exactly that node and dhcp"
        );
        change.push(secs);
    }
    let (dry, _) = ddc(d, &["build", "--dry-run"]);
    let row = Row {
        first,
        noop: median(noop),
        change: median(change),
        dry,
    };
    (row, dir)
}

fn main() {
    let nodes: usize = std::env::var("NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    // Both folders live to the end: deleting 20,000 files right before the
    // other scenario's first build would slow its file creation (ext4 skips
    // recently freed inodes) and measure that instead of ddc.
    let (toml, _keep1) = scenario(nodes, false);
    let (csv, _keep2) = scenario(nodes, true);
    let ms = |s: f64| format!("{:>5.0} ms", s * 1000.0);
    println!(
        "ddc, {nodes} nodes, {} cores: wall time of the whole `ddc build` process (median of 7)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("| build                                   | [[nodes]] in Ddcfile | nodes_file CSV | target    |");
    println!("|-----------------------------------------|----------------------|----------------|-----------|");
    println!(
        "| first build (pxe, dhcp, exports, boot)  | {:>20} | {:>14} | ≤ 2000 ms |",
        ms(toml.first),
        ms(csv.first)
    );
    println!(
        "| no-op build                             | {:>20} | {:>14} | ≤ 100 ms  |",
        ms(toml.noop),
        ms(csv.noop)
    );
    println!(
        "| one node's MAC changed                  | {:>20} | {:>14} | ≤ 200 ms  |",
        ms(toml.change),
        ms(csv.change)
    );
    println!(
        "| dry run, nothing changed                | {:>20} | {:>14} |           |",
        ms(toml.dry),
        ms(csv.dry)
    );
    println!("(the one-node change reran exactly pxe:NODE and dhcp, checked each time)");
}

//! The engine at cluster scale: a 10,000-node Ddcfile on the tiny step
//! scripts. Takes several samples (SAMPLES, default 5) of the wall time of
//! whole `ddc build` processes: the first build of the per-node and
//! aggregate tasks (each sample in a folder of its own), a no-op build, a
//! build after changing one node's MAC (checked to rerun exactly that node
//! and dhcp), and a dry run. Prints median, min and max of each beside the
//! anchor, ninja's no-op on a 10,000-edge graph timed the same way in the
//! same run, and checks the medians against the targets:
//!
//! | figure (10,000 nodes)  | target                                  |
//! |------------------------|-----------------------------------------|
//! | no-op build            | ≤ 100 ms, and ≤ 1.0× ninja's no-op      |
//! | one node's MAC changed | ≤ 200 ms, and ≤ 2.0× ninja's no-op      |
//! | first build            | ≤ 2000 ms                               |
//! | peak memory of a no-op | ≤ 64 MiB (`/usr/bin/time -f %M`)        |
//!
//! Exits 1 when a median (or a ratio) is over its target times `DDC_BENCH_MARGIN`
//! (default 1; CI runs it with 3 so that a noisy machine cannot fail the
//! build; the output still shows the exact targets).
//!
//! Run: `cargo bench --bench scale` (NODES=2000 to try another size;
//! TMPDIR=… to choose the disk: on ext4, a folder near many just-deleted
//! files makes creating the 10,000 entry files slow, whatever creates them).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs the command to the end; its wall time and stdout. Fails on an error.
fn timed(cmd: &mut Command) -> (f64, String) {
    let start = Instant::now();
    let out = cmd.output().expect("the command runs");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (secs, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ddc(dir: &Path, args: &[&str]) -> (f64, String) {
    timed(
        Command::new(env!("CARGO_BIN_EXE_ddc"))
            .args(args)
            .current_dir(dir),
    )
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

/// Samples of one figure, in seconds.
struct Samples(Vec<f64>);

impl Samples {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }

    /// The middle sample (of an odd count; the upper middle of an even one).
    fn median(&self) -> f64 {
        let v = self.sorted();
        v[v.len() / 2]
    }

    fn min(&self) -> f64 {
        self.sorted()[0]
    }

    fn max(&self) -> f64 {
        *self.sorted().last().unwrap()
    }
}

struct Scenario {
    first: Samples,
    noop: Samples,
    change: Samples,
    dry: Samples,
    /// The peak resident memory of a no-op, in KiB.
    noop_peak_kib: u64,
}

/// The peak resident memory (KiB) of `ddc ARGS` in `dir`, as
/// `/usr/bin/time -f %M` reports it (the kernel's maximum RSS of the process).
fn peak_kib(dir: &Path, args: &[&str]) -> u64 {
    let report = dir.join("peak.txt");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_ddc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("/usr/bin/time runs");
    assert!(out.status.success(), "{args:?} failed");
    let text = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_file(&report);
    text.trim().parse().expect("a KiB count")
}

/// A project folder with `nodes` nodes (as `[[nodes]]` tables, or in a CSV
/// inventory) whose image is built: what is left is what this measures.
fn project(nodes: usize, csv: bool) -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::Builder::new()
        .prefix("ddc-bench-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    copy_dir(&repo.join("tests/fixtures/tiny-tasks"), &d.join("tasks"));
    copy_dir(&repo.join("tasks/templates"), &d.join("tasks/templates"));
    add_image_files(d, image_files());
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
    ddc(d, &["build", "publish:default"]);
    dir
}

/// How many files each of the first three image steps adds (`IMAGE_FILES`,
/// default 15,000): a no-op must not cost what a real image's layers and
/// generation (about 15,000 files each) would cost to walk.
fn image_files() -> usize {
    std::env::var("IMAGE_FILES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(15_000)
}

/// Makes the tiny steps write `n` small files each, 25 to a folder, with
/// shell built-ins (no process per file).
fn add_image_files(d: &Path, n: usize) {
    if n == 0 {
        return;
    }
    for step in ["debootstrap", "packages", "configure"] {
        let script = d.join(format!("tasks/{step}.sh"));
        let mut text = std::fs::read_to_string(&script).unwrap();
        text.push_str(&format!(
            "\n# The benchmark's image of realistic shape: {n} files from this step.\n\
             mkdir -p \"$DDC_ROOTFS/usr/share/bench-{step}\" && cd \"$DDC_ROOTFS/usr/share/bench-{step}\"\n\
             seq 0 {last_dir} | sed 's/^/d/' | xargs mkdir -p\n\
             i=0\nwhile [ $i -lt {n} ]; do echo \"{step} $i\" > \"d$((i / 25))/f$i\"; i=$((i + 1)); done\n",
            last_dir = n.div_ceil(25) - 1
        ));
        std::fs::write(&script, text).unwrap();
    }
}

/// One scenario: each first-build sample in a new folder, the rest in the
/// first one. The folders are returned to live to the end: deleting them
/// would slow the file creation of what is measured next (ext4 skips
/// recently freed inodes) and measure that instead of ddc.
fn scenario(nodes: usize, csv: bool, samples: usize) -> (Scenario, Vec<tempfile::TempDir>) {
    let mut dirs = Vec::new();
    let mut first = Vec::new();
    for _ in 0..samples {
        let dir = project(nodes, csv);
        let (secs, out) = ddc(dir.path(), &["build", "--json"]);
        assert_eq!(
            ran(&out).len(),
            nodes + 3,
            "first build: every pxe, bootloader, exports, dhcp"
        );
        first.push(secs);
        dirs.push(dir);
    }
    let d = dirs[0].path();
    let nodes_file = if csv { "nodes.csv" } else { "Ddcfile.toml" };

    let mut noop = Vec::new();
    for _ in 0..samples {
        let (t, out) = ddc(d, &["build", "--json"]);
        assert!(ran(&out).is_empty(), "a no-op build ran {:?}", ran(&out));
        noop.push(t);
    }
    let noop_peak_kib = peak_kib(d, &["build", "--json"]);
    let mut change = Vec::new();
    for k in 0..samples {
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
    let mut dry = Vec::new();
    for _ in 0..samples {
        let (secs, out) = ddc(d, &["build", "--dry-run", "--json"]);
        assert!(
            !out.contains("\"stale\""),
            "a dry run after a build found stale tasks"
        );
        dry.push(secs);
    }
    let s = Scenario {
        first: Samples(first),
        noop: Samples(noop),
        change: Samples(change),
        dry: Samples(dry),
        noop_peak_kib,
    };
    (s, dirs)
}

/// ninja's no-op on `edges` edges (each one input file to one output file),
/// built once first, timed as a whole process like ddc.
fn ninja_noop(edges: usize, samples: usize) -> (Samples, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("ddc-bench-ninja-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("src")).unwrap();
    let mut ninja = String::from("rule copy\n  command = cp $in $out\n\n");
    for i in 0..edges {
        std::fs::write(d.join(format!("src/n{i:05}")), format!("{}\n", mac(i))).unwrap();
        ninja.push_str(&format!("build out/n{i:05}: copy src/n{i:05}\n"));
    }
    std::fs::write(d.join("build.ninja"), ninja).unwrap();
    let ninja = |args: &[&str]| {
        timed(
            Command::new("ninja")
                .args(args)
                .current_dir(d)
                .env("NINJA_STATUS", ""),
        )
    };
    ninja(&["-j", "8"]);
    let mut times = Vec::new();
    for _ in 0..samples {
        let (secs, out) = ninja(&[]);
        assert!(
            out.contains("no work to do"),
            "ninja's no-op did work:\n{out}"
        );
        times.push(secs);
    }
    (Samples(times), dir)
}

/// The file system the benchmark's folders are on (TMPDIR), as the
/// kernel's mount table names it.
fn file_system() -> String {
    let tmp = std::fs::canonicalize(std::env::temp_dir()).unwrap_or_else(|_| std::env::temp_dir());
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let fstype = right.split(' ').next()?;
            tmp.starts_with(point)
                .then(|| (point.len(), fstype.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, t)| format!("{} ({t})", tmp.display()))
        .unwrap_or_else(|| tmp.display().to_string())
}

fn ms(s: f64) -> String {
    format!("{:.0} ms", s * 1000.0)
}

fn main() {
    let nodes: usize = std::env::var("NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let samples: usize = std::env::var("SAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5);
    let margin: f64 = match std::env::var("DDC_BENCH_MARGIN") {
        Ok(m) => m
            .parse()
            .ok()
            .filter(|m: &f64| *m > 0.0)
            .unwrap_or_else(|| {
                eprintln!("DDC_BENCH_MARGIN={m:?}: expected a positive number");
                std::process::exit(2)
            }),
        Err(_) => 1.0,
    };
    if Command::new("ninja").arg("--version").output().is_err() {
        eprintln!("the anchor is ninja's no-op: apt-get install ninja-build");
        std::process::exit(2);
    }
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("the no-op's peak memory is measured with /usr/bin/time: apt-get install time");
        std::process::exit(2);
    }
    let (toml, keep1) = scenario(nodes, false, samples);
    let (csv, keep2) = scenario(nodes, true, samples);
    let (ninja, keep3) = ninja_noop(nodes, samples);
    let over = report(nodes, samples, margin, &toml, &csv, &ninja);
    // Removed before exiting (process::exit runs no destructors).
    drop((keep1, keep2, keep3));
    if !over.is_empty() {
        std::process::exit(1);
    }
}

/// Prints the table; returns the figures over their target × margin.
fn report(
    nodes: usize,
    samples: usize,
    margin: f64,
    toml: &Scenario,
    csv: &Scenario,
    ninja: &Samples,
) -> Vec<String> {
    println!(
        "ddc, {nodes} nodes, an image of 3 layers of {} files each ({} in its generation), {} cores, in {}: wall time of whole processes, {samples} samples each",
        image_files(),
        image_files() * 3,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        file_system(),
    );
    println!("| build                                  | nodes in       | median  | min     | max     | target    |");
    println!("|----------------------------------------|----------------|---------|---------|---------|-----------|");
    let mut over = Vec::new();
    type Pick = fn(&Scenario) -> &Samples;
    let figures: [(&str, Pick, Option<f64>); 4] = [
        (
            "first build (pxe, dhcp, exports, boot)",
            |s| &s.first,
            Some(2.0),
        ),
        ("no-op build", |s| &s.noop, Some(0.1)),
        ("one node's MAC changed", |s| &s.change, Some(0.2)),
        ("dry run, nothing changed", |s| &s.dry, None),
    ];
    for (name, figure, target) in figures {
        for (source, s) in [("[[nodes]]", toml), ("nodes_file CSV", csv)] {
            let f = figure(s);
            let shown = target.map_or(String::new(), |t| format!("≤ {}", ms(t)));
            println!(
                "| {name:<38} | {source:<14} | {:>7} | {:>7} | {:>7} | {shown:<9} |",
                ms(f.median()),
                ms(f.min()),
                ms(f.max()),
            );
            if let Some(t) = target {
                if f.median() > t * margin {
                    over.push(format!(
                        "{name} ({source}): median {} > {}{}",
                        ms(f.median()),
                        ms(t),
                        if margin != 1.0 {
                            format!(" × {margin} = {}", ms(t * margin))
                        } else {
                            String::new()
                        }
                    ));
                }
            }
        }
    }
    println!(
        "| {:<38} | -              | {:>7} | {:>7} | {:>7} |           |",
        format!("ninja no-op, {nodes} edges (anchor)"),
        ms(ninja.median()),
        ms(ninja.min()),
        ms(ninja.max()),
    );
    let ratio = |f: &Samples, target: f64, what: &str, over: &mut Vec<String>| {
        let r = f.median() / ninja.median();
        if r > target * margin {
            over.push(format!("{what}: {r:.1}× ninja's no-op > {target}×"));
        }
        format!("{r:.1}×")
    };
    println!(
        "ddc no-op / ninja no-op (medians, target ≤ 1.0×): {} with [[nodes]], {} with the CSV",
        ratio(&toml.noop, 1.0, "no-op ([[nodes]])", &mut over),
        ratio(&csv.noop, 1.0, "no-op (CSV)", &mut over),
    );
    println!(
        "one node's MAC changed / ninja no-op (medians, target ≤ 2.0×): {} with [[nodes]], {} with the CSV",
        ratio(&toml.change, 2.0, "one node's MAC changed ([[nodes]])", &mut over),
        ratio(&csv.change, 2.0, "one node's MAC changed (CSV)", &mut over),
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "peak memory of a no-op (target ≤ 64 MiB): {:.1} MiB with [[nodes]], {:.1} MiB with the CSV",
        mib(toml.noop_peak_kib),
        mib(csv.noop_peak_kib),
    );
    for (source, kib) in [
        ("[[nodes]]", toml.noop_peak_kib),
        ("CSV", csv.noop_peak_kib),
    ] {
        if mib(kib) > 64.0 {
            over.push(format!(
                "peak memory of a no-op ({source}): {:.1} MiB > 64 MiB",
                mib(kib)
            ));
        }
    }
    println!("(each one-node change reran exactly pxe:NODE and dhcp, checked every time)");
    if margin != 1.0 {
        println!("medians checked against the targets × DDC_BENCH_MARGIN = {margin}");
    }
    if over.is_empty() {
        println!("all medians within their targets");
    }
    for o in &over {
        println!("OVER TARGET: {o}");
    }
    over
}

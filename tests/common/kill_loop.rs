//! The crash-consistency loop: a cluster of tiny-step nodes in a CSV, then
//! builds of changed inventories (every MAC changed, a third of the nodes
//! dropped, and back) each killed with SIGKILL at a random moment, then one
//! build to the end, compared byte for byte with a clean build of the same
//! inventory. Used by `tests/crash.rs` (small) and `benches/crash.rs` (full).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Project;

/// A small, seeded generator: the kill points are the same for a seed.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn mac(i: usize, round: usize) -> String {
    format!(
        "52:54:{:02x}:{:02x}:{:02x}:{:02x}",
        round % 256,
        i >> 16,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// The inventory of `round`: every MAC differs from the round before, and
/// odd rounds drop every third node.
pub fn inventory(nodes: usize, round: usize) -> String {
    let mut s = String::from("hostname,mac,ip\n");
    for i in 0..nodes {
        if round % 2 == 1 && i % 3 == 0 {
            continue;
        }
        let ip = format!("10.0.{}.{}", (i + 2) / 250, (i + 2) % 250 + 2);
        s.push_str(&format!("n{i:05},{},{ip}\n", mac(i, round)));
    }
    s
}

pub fn project(nodes: usize) -> Project {
    let p = Project::with(
        "tasks_dir = \"tasks\"\nnodes_file = \"nodes.csv\"\n\n[cluster]\nnetwork = \"10.0.0.0/16\"\nmaster = \"10.0.0.1\"\n\n\
         [paths]\ntftp_root = \"out/tftp\"\nnfs_root = \"out/nfsroot\"\nexports = \"out/exports\"\nganesha = \"out/ganesha.conf\"\n\
         dhcpd = \"out/dhcpd.conf\"\ndnsmasq = \"out/dnsmasq.conf\"\n\n\
         [apply]\ndnsmasq = \"off\"\ndhcpd = \"off\"\nnfs = \"off\"\nrsyslog = \"off\"\n\n\
         [images.default]\nsuite = \"bookworm\"\npackages = [\"linux-image-amd64\"]\n",
    );
    p.write("nodes.csv", &inventory(nodes, 0));
    p
}

/// Every file under `dir` (relative path → bytes), following no link.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                out.insert(rel, target.as_os_str().as_encoded_bytes().to_vec());
            } else {
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// `.ddc-tmp-*` files anywhere under `dir`.
pub fn temp_files(dir: &Path) -> Vec<String> {
    snapshot(dir)
        .into_keys()
        .filter(|k| k.rsplit('/').next().unwrap().starts_with(".ddc-tmp-"))
        .collect()
}

pub struct Outcome {
    pub killed: usize,
    pub finished_before_kill: usize,
    pub full_build: Duration,
}

/// Runs the loop; panics if the final build differs from a clean one.
pub fn run(nodes: usize, kills: usize, seed: u64) -> Outcome {
    let p = project(nodes);
    p.build(&[]);
    // How long a build of a changed inventory takes: the kill points lie in it.
    p.write("nodes.csv", &inventory(nodes, 1));
    let start = Instant::now();
    p.build(&[]);
    let full_build = start.elapsed();
    let mut rng = Lcg(seed);
    // The kill points lie within the shortest build seen so far: a machine
    // busy at the start must not make most builds finish before their kill.
    let mut estimate = full_build;
    let mut outcome = Outcome {
        killed: 0,
        finished_before_kill: 0,
        full_build,
    };
    for round in 2..kills + 2 {
        p.write("nodes.csv", &inventory(nodes, round));
        let started = Instant::now();
        let mut child = p
            .command(&["build"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let wait = rng.below(estimate.as_micros() as u64 * 9 / 10);
        std::thread::sleep(Duration::from_micros(wait));
        if child.try_wait().unwrap().is_some() {
            outcome.finished_before_kill += 1;
            estimate = estimate.min(started.elapsed());
        } else {
            child.kill().unwrap();
            outcome.killed += 1;
        }
        child.wait().unwrap();
    }
    let last = kills + 1;
    let after = p.ddc(&["build"]);
    assert_eq!(
        after.code, 0,
        "the build after the kills failed:\n{}",
        after.stderr
    );
    let tmp: Vec<String> = temp_files(&p.path("out"))
        .into_iter()
        .chain(temp_files(&p.path("cache")))
        .collect();
    assert!(tmp.is_empty(), "temporary files left behind: {tmp:?}");
    let got = snapshot(&p.path("out"));

    // The same inventory, built clean into the same folders.
    let q = project(nodes);
    q.write("nodes.csv", &inventory(nodes, last));
    q.build(&[]);
    let want = snapshot(&q.path("out"));
    // The two images are built apart (their generation names differ): the
    // nodes' side is compared, with the folder and the generation named alike.
    let rel = |m: BTreeMap<String, Vec<u8>>, root: &Path| -> BTreeMap<String, Vec<u8>> {
        let gen = std::fs::read_link(root.join("out/nfsroot/default/current")).unwrap();
        let gen = gen.file_name().unwrap().to_string_lossy().into_owned();
        let root = root.display().to_string();
        m.into_iter()
            .filter(|(k, _)| !k.starts_with("nfsroot/") && !k.starts_with("tftp/default/"))
            .map(|(k, v)| {
                // Export ids come from the export's path, which differs.
                let text: String = String::from_utf8_lossy(&v)
                    .replace(&root, "ROOT")
                    .replace(&gen, "GEN")
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("Export_Id"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                (k, text.into_bytes())
            })
            .collect()
    };
    let (got, want) = (rel(got, p.dir.path()), rel(want, q.dir.path()));
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "after {} kills: {} files a clean build does not have (first: {:?}), {} missing (first: {:?})",
        outcome.killed,
        extra.len(),
        extra.first(),
        missing.len(),
        missing.first()
    );
    let differ: Vec<&String> = got.keys().filter(|k| got[*k] != want[*k]).collect();
    let shown: String = differ
        .iter()
        .map(|k| {
            let (a, b) = (
                String::from_utf8_lossy(&got[*k]),
                String::from_utf8_lossy(&want[*k]),
            );
            format!("--- {k} after the kills:\n{a}\n--- clean:\n{b}\n")
        })
        .collect();
    assert!(
        differ.is_empty(),
        "files that differ from a clean build: {differ:?}\n{shown}"
    );
    outcome
}

//! `ddc verify` on a generation of realistic shape, warm (page cache full):
//! several samples (SAMPLES, default 5) of the whole process's wall time,
//! CPU time and peak memory, each beside the anchor timed the same way in the
//! same run: `b3sum` (else `sha256sum`) over the same files, through `find
//! -type f -print0 | xargs -0`. Prints median, min and max, the ratio of the
//! medians, and checks ddc's median against the target (≤ 2 s for a 650 MB
//! generation of about 15,000 paths). Exits 1 when over the target times
//! `DDC_BENCH_MARGIN` (default 1).
//!
//! The generation: `DDC_VERIFY_GEN=/srv/nfsroot/IMG/NNNN-HASH` (one a real
//! `ddc build` published, its manifest beside it) or, by default, one built
//! here by `ddc build` on the tiny test steps with `files =` a synthetic
//! tree of `VERIFY_FILES` files (default 12,000) whose sizes follow a real
//! bookworm image's (linux-image-amd64, nfs-common, systemd-sysv: 12,040
//! files, 652 MB), in about 2,000 folders, with 1,000 links: 15,000 paths.
//!
//! Run: `cargo bench --bench verify` (TMPDIR=… chooses the disk; the
//! synthetic tree needs about 2 GB: the tree, its image layer and the
//! generation). Wall times move with the machine's load: the CPU times and
//! the ratio to the anchor less so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The size quantiles of the files of a real bookworm image (the fraction
/// of files, the size in bytes): sizes are drawn between them, log-linearly.
const QUANTILES: [(f64, f64); 29] = [
    (0.0, 0.0),
    (0.05, 208.0),
    (0.1, 493.0),
    (0.15, 698.0),
    (0.2, 983.0),
    (0.25, 1423.0),
    (0.3, 1994.0),
    (0.35, 2697.0),
    (0.4, 4265.0),
    (0.45, 7827.0),
    (0.5, 11201.0),
    (0.55, 14416.0),
    (0.6, 18574.0),
    (0.65, 21883.0),
    (0.7, 27553.0),
    (0.75, 34993.0),
    (0.8, 46513.0),
    (0.85, 62332.0),
    (0.9, 89020.0),
    (0.93, 121152.0),
    (0.95, 158032.0),
    (0.97, 259689.0),
    (0.98, 373433.0),
    (0.99, 684065.0),
    (0.995, 1129217.0),
    (0.998, 2376201.0),
    (0.999, 3855577.0),
    (0.9995, 5153737.0),
    (1.0, 26494430.0),
];

/// The size of the file at fraction `u` of the distribution.
fn size_at(u: f64) -> usize {
    for w in QUANTILES.windows(2) {
        let ((u0, s0), (u1, s1)) = (w[0], w[1]);
        if u <= u1 {
            let t = (u - u0) / (u1 - u0);
            let (a, b) = ((s0 + 1.0).ln(), (s1 + 1.0).ln());
            return ((a + (b - a) * t).exp() - 1.0) as usize;
        }
    }
    QUANTILES[QUANTILES.len() - 1].1 as usize
}

/// splitmix64: a fixed sequence, so every run writes the same tree.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Writes the synthetic tree: `files` files (sizes stratified over the
/// distribution, shuffled over the folders), `files / 6` folders eight to a
/// parent, `files / 12` relative links. Returns the bytes written.
fn write_tree(root: &Path, files: usize) -> u64 {
    let mut rng = Rng(0x5eed);
    let dirs = (files / 6).max(1);
    let mut dir_paths = vec![root.join("usr")];
    for i in 1..dirs {
        let parent = dir_paths[(i - 1) / 8].clone();
        dir_paths.push(parent.join(format!("d{i}")));
    }
    for d in &dir_paths {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut sizes: Vec<usize> = (0..files)
        .map(|i| size_at((i as f64 + 0.5) / files as f64))
        .collect();
    for i in (1..sizes.len()).rev() {
        sizes.swap(i, rng.below(i + 1));
    }
    let noise: Vec<u8> = (0..(1 << 20) / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    let mut total = 0u64;
    let mut names = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let dir = &dir_paths[rng.below(dirs)];
        let path = dir.join(format!("f{i}"));
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&(i as u64).to_le_bytes()).unwrap();
        let mut left = size.saturating_sub(8);
        let mut at = i % noise.len();
        while left > 0 {
            let n = left.min(noise.len() - at);
            f.write_all(&noise[at..at + n]).unwrap();
            left -= n;
            at = 0;
        }
        total += *size.max(&8) as u64;
        names.push(path);
    }
    for i in 0..files / 12 {
        let target = &names[rng.below(names.len())];
        let link = target.with_file_name(format!("l{i}"));
        std::os::unix::fs::symlink(target.file_name().unwrap(), link).unwrap();
    }
    total
}

/// A project on the tiny test steps whose image gets the synthetic tree,
/// built and published; returns it and the generation's folder.
fn synthetic(files: usize) -> (tempfile::TempDir, PathBuf) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::Builder::new()
        .prefix("ddc-bench-verify-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    for (from, to) in [
        ("tests/fixtures/tiny-tasks", "tasks"),
        ("tasks/templates", "tasks/templates"),
    ] {
        let out = Command::new("cp")
            .arg("-r")
            .arg(repo.join(from))
            .arg(d.join(to))
            .status()
            .unwrap();
        assert!(out.success());
    }
    let bytes = write_tree(&d.join("tree"), files);
    eprintln!("synthetic tree: {files} files, {} MB", bytes / 1_000_000);
    std::fs::write(
        d.join("Ddcfile.toml"),
        "tasks_dir = \"tasks\"\n\n[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster = \"192.0.2.1\"\n\n\
         [apply]\ndnsmasq = \"off\"\ndhcpd = \"off\"\nnfs = \"off\"\nrsyslog = \"off\"\n\n\
         [images.default]\nsuite = \"bookworm\"\npackages = [\"linux-image-amd64\"]\nfiles = \"tree\"\n",
    )
    .unwrap();
    let out = ddc(d, &["build", "publish:default"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gen = std::fs::canonicalize(d.join("out/nfsroot/default/current")).unwrap();
    (dir, gen)
}

fn ddc(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ddc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("ddc runs")
}

/// A project whose nfs_root holds `gen` (a real generation): `ddc verify
/// IMG GEN` in it checks that one.
fn around(gen: &Path) -> (tempfile::TempDir, Vec<String>) {
    let gen = std::fs::canonicalize(gen).expect("DDC_VERIFY_GEN exists");
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let image = gen.parent().expect("nfs_root/IMG/GEN");
    let nfs = image.parent().expect("nfs_root/IMG/GEN");
    let dir = tempfile::Builder::new()
        .prefix("ddc-bench-verify-")
        .tempdir()
        .unwrap();
    std::fs::write(
        dir.path().join("Ddcfile.toml"),
        format!(
            "[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster = \"192.0.2.1\"\n\n\
             [paths]\nnfs_root = {:?}\n\n[images.{}]\nsuite = \"bookworm\"\npackages = []\n",
            nfs.display(),
            name(image)
        ),
    )
    .unwrap();
    let args = vec!["verify".into(), name(image), name(&gen)];
    (dir, args)
}

/// One run under `/usr/bin/time`: (wall s, CPU s, peak KiB), and stdout.
fn timed(dir: &Path, program: &str, args: &[String]) -> ((f64, f64, u64), String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "@@ %e %U %S %M", program])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("/usr/bin/time runs (Debian: apt-get install time)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {args:?} failed: {stderr}");
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("@@ "))
        .expect("time's line");
    let f: Vec<f64> = line[3..].split(' ').map(|x| x.parse().unwrap()).collect();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ((f[0], f[1] + f[2], f[3] as u64), stdout)
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

fn show(v: &[f64]) -> String {
    let (med, min, max) = stats(v);
    format!("{:.0} ms ({:.0}–{:.0})", med * 1e3, min * 1e3, max * 1e3)
}

fn main() {
    let samples: usize = std::env::var("SAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let files: usize = std::env::var("VERIFY_FILES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12_000);
    let margin: f64 = std::env::var("DDC_BENCH_MARGIN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1.0);
    let (dir, gen, args) = match std::env::var_os("DDC_VERIFY_GEN") {
        Some(g) => {
            let (dir, args) = around(Path::new(&g));
            (dir, std::fs::canonicalize(&g).unwrap(), args)
        }
        None => {
            let (dir, gen) = synthetic(files);
            (dir, gen, vec!["verify".to_string()])
        }
    };
    let ddc_bin = env!("CARGO_BIN_EXE_ddc");
    let anchor = if Command::new("b3sum").arg("--version").output().is_ok() {
        "b3sum"
    } else {
        "sha256sum"
    };
    let anchor_args: Vec<String> = vec![
        "-c".into(),
        format!("find \"$0\" -type f -print0 | xargs -0 {anchor} > /dev/null"),
        gen.display().to_string(),
    ];
    // Warm: one run of each first, not counted.
    let (_, out) = timed(dir.path(), ddc_bin, &args);
    assert!(out.contains("as published"), "ddc verify: {out}");
    let paths: String = out
        .split('(')
        .nth(1)
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    timed(dir.path(), "sh", &anchor_args);
    let (mut d, mut a) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        d.push(timed(dir.path(), ddc_bin, &args).0);
        a.push(timed(dir.path(), "sh", &anchor_args).0);
    }
    let bytes: u64 = walk_bytes(&gen);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "ddc verify, warm: {} ({paths} paths, {} MB of files), {samples} samples, {} cores, load average {}",
        gen.display(),
        bytes / 1_000_000,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    let col = |v: &[(f64, f64, u64)], i: usize| -> Vec<f64> {
        v.iter()
            .map(|x| [x.0, x.1, x.2 as f64 / 1024.0][i])
            .collect()
    };
    println!(
        "| {:<34} | {:<22} | {:<22} | peak memory |",
        "", "wall", "CPU (user + sys)"
    );
    println!("|{:-<36}|{:-<24}|{:-<24}|-------------|", "", "", "");
    let anchor_name = format!("anchor: {anchor} over the same files");
    for (name, v) in [("ddc verify", &d), (anchor_name.as_str(), &a)] {
        println!(
            "| {name:<34} | {:<22} | {:<22} | {:>7.0} MiB |",
            show(&col(v, 0)),
            show(&col(v, 1)),
            stats(&col(v, 2)).2
        );
    }
    let (dw, aw) = (stats(&col(&d, 0)).0, stats(&col(&a, 0)).0);
    let (dc, ac) = (stats(&col(&d, 1)).0, stats(&col(&a, 1)).0);
    println!(
        "ratio of medians, ddc / {anchor}: wall {:.2}×, CPU {:.2}×",
        dw / aw,
        dc / ac
    );
    let target = 2.0;
    println!("target: ddc verify median wall ≤ {target:.1} s (margin ×{margin})");
    drop(dir);
    if dw > target * margin {
        println!("OVER TARGET: {dw:.2} s > {:.2} s", target * margin);
        std::process::exit(1);
    }
}

/// The bytes of the regular files under `root`.
fn walk_bytes(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

//! The crash-consistency loop at full scale: 10,000 nodes in a CSV, every MAC
//! changed and a third of the nodes dropped (and back) 30 times, each build
//! killed with SIGKILL at a random moment, then one build to the end, which
//! must leave exactly what a clean build leaves. Exits non-zero if not.
//!
//! Run: `cargo bench --bench crash` (NODES=…, KILLS=…, SEED=… to change it).

#[path = "../tests/common/mod.rs"]
mod common;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let nodes = env("NODES", 10_000) as usize;
    let kills = env("KILLS", 30) as usize;
    let seed = env("SEED", 1);
    let start = std::time::Instant::now();
    let o = common::kill_loop::run(nodes, kills, seed);
    println!(
        "{nodes} nodes, {kills} builds: {} killed, {} finished before their kill; \
         a full build of a changed inventory took {:.2} s; the build after the kills \
         matched a clean build ({:.0} s in all)",
        o.killed,
        o.finished_before_kill,
        o.full_build.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

//! Crash consistency, driven by the binary: builds killed with SIGKILL at
//! random moments, then one build to the end, which must leave exactly what
//! a clean build leaves (`tests/common/kill_loop.rs`). `benches/crash.rs`
//! runs the same loop at 10,000 nodes and 30 kills.

mod common;

#[test]
fn a_killed_build_leaves_nothing_a_clean_build_would_not() {
    let o = common::kill_loop::run(300, 12, 7);
    eprintln!(
        "{} builds killed, {} finished before their kill (a full build took {:?})",
        o.killed, o.finished_before_kill, o.full_build
    );
    assert!(o.killed >= 4, "too few builds were killed to test anything");
}

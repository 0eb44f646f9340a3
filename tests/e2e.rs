//! The end-to-end test: `tests/e2e/run.sh` builds a real image with ddc,
//! boots a BIOS and a UEFI node from it over PXE, NFS and DHCP inside a
//! network namespace, updates the image under them, and checks what they
//! see. It needs root and the Debian mirror and takes minutes, so it is
//! ignored by default and reported as such; `cargo test --release --
//! --include-ignored` runs it (the test command of README.md, which
//! `.ci/run` runs). When it runs, a missing tool fails it, never skips it.

#[test]
#[ignore = "needs root and the Debian mirror, boots two nodes in minutes: cargo test --release -- --include-ignored"]
fn nodes_boot_from_what_ddc_built() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("bash")
        .arg(repo.join("tests/e2e/run.sh"))
        .env("DDC", env!("CARGO_BIN_EXE_ddc"))
        .status()
        .expect("bash runs");
    assert!(
        status.success(),
        "the end-to-end test failed: see its output above (consoles in $E2E_WORK, default /var/tmp/ddc-e2e)"
    );
}

//! The end-to-end test: `tests/e2e/run.sh` builds a real image with ddc,
//! boots BIOS and UEFI nodes from it over pxelinux and over iPXE + HTTP
//! (`ddc serve`), NFS and DHCP inside a network namespace, updates the image
//! under them, and checks what they see, what `ddc status` says of them and
//! that `ddc gc` keeps the generation they run. It needs root and the Debian mirror and takes minutes, so it is
//! ignored by default and reported as such; `cargo test --release --
//! --include-ignored` runs it (the test command of README.md, which
//! `.ci/run` runs). When it runs, a missing tool fails it, never skips it.

#[test]
#[ignore = "needs root and the Debian mirror, boots four nodes in minutes: cargo test --release -- --include-ignored"]
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

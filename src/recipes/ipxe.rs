//! iPXE and HTTP boot, the parts the bootloader, pxe and dhcp recipes share:
//! whether the cluster uses iPXE at all, the method machines without an entry
//! get, where each static script lives under the HTTP root (the TFTP root),
//! and the names of the iPXE binaries (the bootloader task copies them).
//!
//! Every file here is static: `ddc serve` or any web server serves them.

use std::path::{Path, PathBuf};

use crate::config::{Boot, Config};

/// The folder of the scripts, under the TFTP (and HTTP) root.
pub(crate) const SCRIPTS_DIR: &str = "ipxe";
/// The script DHCP hands every iPXE client.
pub(crate) const BOOT_SCRIPT: &str = "ipxe/boot.ipxe";
/// The script of machines without one of their own (`server.default_entry`).
pub(crate) const DEFAULT_SCRIPT: &str = "ipxe/default.ipxe";
/// What DHCP hands BIOS PXE clients of iPXE nodes.
pub(crate) const BIOS_LOADER: &str = "undionly.kpxe";
/// What DHCP hands UEFI x86-64 clients of iPXE nodes (the NIC's own driver
/// through SNP; `ipxe.efi`, with iPXE's drivers, is copied beside it).
pub(crate) const EFI_LOADER: &str = "snponly.efi";

/// Whether any machine boots through iPXE: a node, or the default entry.
pub(crate) fn used(cfg: &Config) -> bool {
    cfg.nodes.iter().any(|n| n.boot == Boot::Ipxe) || default_boot(cfg) == Boot::Ipxe
}

/// The method of machines that have no host entry: the default entry's
/// image's, else the cluster's.
pub(crate) fn default_boot(cfg: &Config) -> Boot {
    match &cfg.server.default_entry {
        Some(image) => cfg.images.get(image).map_or(cfg.cluster.boot, |i| i.boot),
        None => cfg.cluster.boot,
    }
}

/// Whether the default entry (if any) is an iPXE script.
pub(crate) fn default_entry_is_ipxe(cfg: &Config) -> bool {
    cfg.server.default_entry.is_some() && default_boot(cfg) == Boot::Ipxe
}

/// `http://ADDR:PORT`, where nodes fetch scripts, kernels and initrds.
pub(crate) fn base_url(cfg: &Config) -> String {
    format!("http://{}", cfg.server.http)
}

/// A node's script: `ipxe/52-54-00-12-34-56.ipxe`, the name iPXE's
/// `${mac:hexhyp}` makes.
pub(crate) fn script_path(tftp_root: &Path, mac: &str) -> PathBuf {
    tftp_root
        .join(SCRIPTS_DIR)
        .join(format!("{}.ipxe", mac.replace(':', "-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_match_ipxe_hexhyp() {
        assert_eq!(
            script_path(Path::new("/t"), "52:54:00:12:34:56"),
            Path::new("/t/ipxe/52-54-00-12-34-56.ipxe")
        );
    }
}

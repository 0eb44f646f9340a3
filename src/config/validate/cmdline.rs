//! The length of the kernel command line each boot entry gives: x86 kernels
//! take at most 2047 bytes (`COMMAND_LINE_SIZE` 2048, with its final NUL)
//! and drop the rest, which would cut `ip=dhcp ro` or the image's own
//! arguments off a node's boot.
//!
//! The line counted is the one the kernel gets: pxelinux puts
//! `BOOT_IMAGE=KERNEL ` before the entry's APPEND line and passes its INITRD
//! as `initrd=INITRD` (its loader finds the initrd there), and APPEND is
//! `boot=nfs nfsroot=MASTER:NFS_ROOT/IMG/GEN,vers=3,tcp ip=dhcp ro`, the
//! image's `cmdline` and the node's. A generation's name is always 17
//! characters (`NNNN-` and 12 hex digits), so the length is known now.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

use super::Validator;
use crate::config::model::{kernel_append, Image};
use crate::config::origin::{Origin, Sourced};

/// The longest command line an x86 kernel takes.
pub(super) const MAX_CMDLINE: usize = 2047;

/// What every entry of an image adds to the arguments the Ddcfile gives.
pub(super) struct KernelLines {
    /// Per image: the bytes of its entries' line without the node's own
    /// arguments, and how many of them are the image's `cmdline`.
    images: HashMap<String, (usize, usize)>,
    /// Images whose line is already too long: their nodes are not told again.
    over: BTreeSet<String>,
}

/// The line the kernel gets for an entry of `image`, its generation's name
/// standing for any.
fn kernel_line(
    master: Ipv4Addr,
    nfs_root: &Path,
    image: &str,
    image_cmdline: &str,
    node_cmdline: &str,
) -> String {
    const GEN: &str = "0000-000000000000";
    let root = nfs_root.join(image).join(GEN);
    format!(
        "BOOT_IMAGE=::/{image}/{GEN}/vmlinuz {} initrd=::/{image}/{GEN}/initrd.img",
        kernel_append(
            master,
            &root.display().to_string(),
            image_cmdline,
            node_cmdline
        )
    )
}

impl Validator<'_> {
    /// Checks each image's line, at its `cmdline` (or, without one, the
    /// NFS root that makes it long).
    pub(super) fn kernel_lines(
        &mut self,
        master: Ipv4Addr,
        nfs_root: &Path,
        images: &BTreeMap<String, Image>,
        cmdline_origins: &HashMap<String, Origin>,
    ) -> KernelLines {
        let mut lines = KernelLines {
            images: HashMap::new(),
            over: BTreeSet::new(),
        };
        for img in images.values() {
            let len = kernel_line(master, nfs_root, &img.name, &img.cmdline, "").len();
            let own = img.cmdline.trim().len();
            lines.images.insert(img.name.clone(), (len, own));
            if len <= MAX_CMDLINE {
                continue;
            }
            lines.over.insert(img.name.clone());
            let key = format!("images.{}.cmdline", img.name);
            let origin = cmdline_origins
                .get(&img.name)
                .or_else(|| self.path_keys.get("paths.nfs_root"))
                .cloned()
                .unwrap_or_else(|| self.file_origin());
            self.error(
                origin,
                key,
                format!(
                    "the kernel command line of image {}'s boot entries would be {len} bytes ({} of ddc's nfsroot=… and pxelinux's BOOT_IMAGE= and initrd=, {own} of this cmdline); {}: shorten it by {} bytes",
                    img.name,
                    len - own,
                    limit(),
                    len - MAX_CMDLINE
                ),
            );
        }
        lines
    }

    /// Checks a node's line, at its own `cmdline`.
    pub(super) fn node_kernel_line(
        &mut self,
        lines: &KernelLines,
        hostname: &str,
        image: &str,
        cmdline: &Sourced<String>,
    ) {
        let Some(&(base, own)) = lines.images.get(image) else {
            return;
        };
        if lines.over.contains(image) {
            return;
        }
        let node = cmdline.value.trim().len();
        // One space joins the node's arguments to the rest.
        let len = base + if node > 0 { node + 1 } else { 0 };
        if len > MAX_CMDLINE {
            self.error(
                cmdline.origin.clone(),
                "cmdline",
                format!(
                    "the kernel command line of node {hostname} would be {len} bytes ({} of ddc's nfsroot=… and pxelinux's BOOT_IMAGE= and initrd=, {own} of images.{image}.cmdline, {node} of this cmdline); {}: shorten this cmdline (or images.{image}.cmdline) by {} bytes",
                    base - own,
                    limit(),
                    len - MAX_CMDLINE
                ),
            );
        }
    }
}

fn limit() -> String {
    format!("x86 kernels take at most {MAX_CMDLINE} bytes (COMMAND_LINE_SIZE 2048 with its final NUL) and drop the rest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_length_is_the_length_of_the_line() {
        let master = Ipv4Addr::new(192, 0, 2, 1);
        let root = Path::new("/srv/nfs");
        let base = kernel_line(master, root, "default", "console=ttyS0", "").len();
        let full = kernel_line(master, root, "default", "console=ttyS0", " nomodeset ").len();
        assert_eq!(full, base + "nomodeset".len() + 1);
        assert_eq!(
            kernel_line(master, root, "default", "", ""),
            "BOOT_IMAGE=::/default/0000-000000000000/vmlinuz boot=nfs nfsroot=192.0.2.1:/srv/nfs/default/0000-000000000000,vers=3,tcp ip=dhcp ro initrd=::/default/0000-000000000000/initrd.img"
        );
    }
}

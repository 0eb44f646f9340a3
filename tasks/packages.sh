#!/bin/sh
# ddc: chroot
# ddc: root
# Install $DDC_PACKAGES and initramfs-tools into the image, starting no
# service and building no initrd (the initramfs step builds it).
set -eu

R=${DDC_ROOTFS:?}
: "${DDC_PKG_CACHE:?}"
ARCHIVES=$R/var/cache/apt/archives
RESOLV=                                 # saved | lent: what cleanup restores
DIVERTED=                               # 1 while update-initramfs is diverted
export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true LC_ALL=C

cleanup() {
    # always undo what the install needed; never leave a mount in the image
    if mountpoint -q "$ARCHIVES"; then umount "$ARCHIVES" || umount -l "$ARCHIVES"; fi
    rm -f "$R/usr/sbin/policy-rc.d"
    if [ -n "$DIVERTED" ]; then
        rm -f "$R/usr/sbin/update-initramfs"
        chroot "$R" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs ||
            echo "ddc: WARNING: could not remove the update-initramfs diversion" >&2
        DIVERTED=
    fi
    case $RESOLV in
    saved) mv -f "$R/etc/resolv.conf.ddc" "$R/etc/resolv.conf" ;;
    lent)  rm -f "$R/etc/resolv.conf" ;;
    esac
    RESOLV=
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "ddc: policy-rc.d denies every service start during the install"
printf '#!/bin/sh\n# ddc: no service starts while building the image\nexit 101\n' \
    >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"

# The kernel's postinst hook and initramfs-tools' trigger both call
# update-initramfs (~13 s a kernel). Divert it to a no-op for the install;
# the initramfs step creates the initrds with the final configuration.
echo "ddc: update-initramfs diverted to a no-op during the install"
DIVERTED=1
chroot "$R" dpkg-divert --quiet --local --rename \
    --divert /usr/sbin/update-initramfs.ddc --add /usr/sbin/update-initramfs
printf '#!/bin/sh\necho "ddc: update-initramfs $* skipped (the initramfs step builds the initrd)"\n' \
    >"$R/usr/sbin/update-initramfs"
chmod 755 "$R/usr/sbin/update-initramfs"

# apt in the chroot needs name resolution: lend it the host's resolv.conf
# (the image's own one, if any, is put back afterwards).
if [ -e /etc/resolv.conf ]; then
    if [ -e "$R/etc/resolv.conf" ] || [ -L "$R/etc/resolv.conf" ]; then
        mv "$R/etc/resolv.conf" "$R/etc/resolv.conf.ddc"; RESOLV=saved
    else
        RESOLV=lent
    fi
    cp -L /etc/resolv.conf "$R/etc/resolv.conf"
fi

# The persistent .deb cache is bind-mounted as apt's archive folder: apt
# reuses (after checking their hashes) the files found there and downloads
# the missing ones straight into it. apt fails at once on another build's
# lock of that folder, so builds sharing the cache queue on a flock instead.
mkdir -p "$DDC_PKG_CACHE" "$ARCHIVES"
exec 9>"$DDC_PKG_CACHE/.ddc-lock"
flock 9
mount --bind "$DDC_PKG_CACHE" "$ARCHIVES"

echo "ddc: installing initramfs-tools $DDC_PACKAGES"
# A snapshot of the archive serves Release files whose Valid-Until is past.
VALID=true
if [ -n "${DDC_SNAPSHOT:-}" ]; then VALID=false; fi
chroot "$R" apt-get -o Acquire::Check-Valid-Until=$VALID update
# shellcheck disable=SC2086  # the package list is split on spaces
chroot "$R" apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    initramfs-tools $DDC_PACKAGES 9>&-

cleanup
trap - EXIT
exec 9>&-                               # releases the cache lock
echo "ddc: emptying apt caches and lists"
chroot "$R" apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin
mkdir -p "$R/var/lib/apt/lists/partial"
echo "ddc: packages done"

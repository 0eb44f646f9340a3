#!/bin/sh
# ddc: chroot
# ddc: root
# Make the image's initramfs boot from NFS with a tmpfs union on top, then
# build /boot/initrd.img-V for every kernel V in the image's /lib/modules.
set -eu

R=${DDC_ROOTFS:?}
IT=$R/etc/initramfs-tools
UNION=${DDC_UNION:-overlay}
say() { echo "ddc: $*"; }
case "$UNION" in overlay|aufs) ;; *) echo "ddc: bad DDC_UNION '$UNION'" >&2; exit 1 ;; esac
[ -d "$IT" ] || { echo "ddc: initramfs-tools is not installed in the image" >&2; exit 1; }

# The union module must exist for every kernel of the image, checked before
# anything is changed: Debian's kernels have overlay but no aufs (gone since
# buster), and an initrd without its union module cannot mount the root.
for dir in "$R"/lib/modules/*; do
    [ -d "$dir" ] || continue
    v=${dir##*/}
    if ! find "$dir" -name "$UNION.ko*" | grep -q . &&
       ! grep -q "/$UNION.ko" "$dir/modules.builtin" 2>/dev/null; then
        echo "ddc: images.${DDC_IMAGE:-IMG}.union = \"$UNION\", but the image's kernel $v has no $UNION module." >&2
        if [ "$UNION" = aufs ]; then
            echo "ddc: Debian's kernels have no aufs: set images.${DDC_IMAGE:-IMG}.union = \"overlay\" (any kernel since 3.18 has it), or put a kernel built with aufs in the image's packages." >&2
        else
            echo "ddc: load $UNION into that kernel's modules (a kernel package that ships it), or choose the other union in images.${DDC_IMAGE:-IMG}.union." >&2
        fi
        exit 1
    fi
done

# Files are replaced, never rewritten in place (sed -i, rm first): the image
# may share inodes by hard links with an earlier step's output.
# set_conf KEY VALUE: set (or add) KEY=VALUE in initramfs.conf
set_conf() {
    if grep -q "^$1=" "$IT/initramfs.conf"; then
        sed -i "s|^$1=.*|$1=$2|" "$IT/initramfs.conf"
    else
        { cat "$IT/initramfs.conf"; echo "$1=$2"; } >"$IT/initramfs.conf.new"
        mv "$IT/initramfs.conf.new" "$IT/initramfs.conf"
    fi
}
say "initramfs.conf: BOOT=nfs MODULES=netboot"
set_conf BOOT nfs
set_conf MODULES netboot

say "modules: $UNION"
{ grep -vx '[[:space:]]*\(overlay\|aufs\)[[:space:]]*' "$IT/modules" || true; echo "$UNION"; } >"$IT/modules.new"
mv "$IT/modules.new" "$IT/modules"

# conf.d files are copied into the initrd (/conf/conf.d/), where the hook reads them.
mkdir -p "$IT/conf.d" "$IT/scripts/init-bottom"
rm -f "$IT/conf.d/ddc-union" "$IT/conf.d/resume"
echo "DDC_UNION=$UNION" >"$IT/conf.d/ddc-union"
# No resume: in a chroot the resume hook would pick the build host's swap.
echo "RESUME=none" >"$IT/conf.d/resume"

say "installing the init-bottom hook ddc-union"
install -m 755 "${DDC_TASKS_DIR:?}/initramfs/ddc-union" "$IT/scripts/init-bottom/ddc-union"
mkdir -p "$R/ro" "$R/rw"          # where the hook leaves the union's layers

n=0
for dir in "$R"/lib/modules/*; do
    [ -d "$dir" ] || continue
    v=${dir##*/}
    if [ ! -e "$R/boot/vmlinuz-$v" ]; then
        say "WARNING: /lib/modules/$v has no /boot/vmlinuz-$v, skipped"
        continue
    fi
    say "building /boot/initrd.img-$v"
    rm -f "$R/boot/initrd.img-$v"
    chroot "$R" update-initramfs -c -k "$v"
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "ddc: no kernel in the image's /lib/modules" >&2; exit 1; }
say "initramfs done ($n kernel(s))"

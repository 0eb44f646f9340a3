#!/bin/bash
# netboot-demo.sh: boot one BIOS node (node01) and one UEFI node (node02)
# from a worker image over NFS, with hand-written configs, using netboot.sh.
# Run as root. Exits 0 when both nodes printed the marker line showing their
# hostname, an overlay root, and a read-only NFS lower layer on /ro.
#
# Environment:
#   IMAGE      the image tree (default /work/scratch/image-default); it is
#              not modified: a hard-linked copy IMAGE-demo gets the marker unit
#              (set NO_MARKER_COPY=1 to export IMAGE itself, e.g. when it
#              already has the unit)
#   TFTP       TFTP root to lay out (default /work/scratch/tftp)
#   WORK       state/log dir (default /work/scratch/netboot-demo)
#   KPATH      the path prefix in the pxelinux entries (default "::/default":
#              "/default" fails under syslinux.efi, which asks for efi64//default/...)
#   NODES      "bios uefi" (default), or one of them
#   TIMEOUT    seconds per node to reach the marker (default 600)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=netboot.sh
. "$HERE/netboot.sh"

IMAGE=${IMAGE:-/work/scratch/image-default}
TFTP=${TFTP:-/work/scratch/tftp}
WORK=${WORK:-/work/scratch/netboot-demo}
KPATH=${KPATH:-::/default}
NODES=${NODES:-bios uefi}
TIMEOUT=${TIMEOUT:-600}
NS=ddc-nbdemo
MASTER=192.0.2.1

rm -rf "$WORK"
mkdir -p "$WORK"
export NB_DIR="$WORK/state"
trap nb_cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "demo: FAIL: $*" >&2; exit 1; }

[ -d "$IMAGE/boot" ] || die "no image at $IMAGE"
kernel=$(ls -1v "$IMAGE"/boot/vmlinuz-* 2>/dev/null | tail -n1)
[ -n "$kernel" ] || die "no kernel in $IMAGE/boot"
kver=${kernel##*/vmlinuz-}
initrd="$IMAGE/boot/initrd.img-$kver"
[ -r "$initrd" ] || die "no $initrd"

# ---- the exported tree: the image plus a console marker unit -------------
if [ "${NO_MARKER_COPY:-0}" = 1 ]; then
    ROOT=$IMAGE
else
    ROOT="$IMAGE-demo"
    rm -rf "$ROOT"
    # hard links: fast, and only new directory entries are added below, so
    # the original tree is untouched.
    cp -al "$IMAGE" "$ROOT" || die "cp -al"
    mkdir -p "$ROOT/etc/systemd/system/multi-user.target.wants"
    rm -f "$ROOT/etc/systemd/system/nb-marker.service" "$ROOT/usr/local/sbin/nb-marker"
    mkdir -p "$ROOT/usr/local/sbin"
    cat >"$ROOT/usr/local/sbin/nb-marker" <<'EOF'
#!/bin/sh
# prints one line on the serial console once multi-user.target is reached
# (composed first, written with one write(2), closed by NBEND)
line="NBMARK host=$(hostname)"
line="$line root=[$(findmnt -n -o SOURCE,FSTYPE,OPTIONS / | tr -s ' ')]"
line="$line ro=[$(findmnt -n -o SOURCE,FSTYPE,OPTIONS /ro | tr -s ' ')]"
line="$line multi-user=$(systemctl is-active multi-user.target)"
line="$line failed=[$(systemctl list-units --failed --plain --no-legend | cut -d' ' -f1 | tr '\n' ' ')]"
line="$line uptime=$(cut -d' ' -f1 /proc/uptime) NBEND"
echo "$line" >/dev/ttyS0
EOF
    chmod 0755 "$ROOT/usr/local/sbin/nb-marker"
    cat >"$ROOT/etc/systemd/system/nb-marker.service" <<'EOF'
[Unit]
Description=netboot e2e marker
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/nb-marker

[Install]
WantedBy=multi-user.target
EOF
    ln -sf ../nb-marker.service "$ROOT/etc/systemd/system/multi-user.target.wants/nb-marker.service"
fi

# ---- TFTP root --------------------------------------------------------------
mkdir -p "$TFTP/pxelinux.cfg" "$TFTP/efi64/pxelinux.cfg" "$TFTP/default"
install -m 0644 /usr/lib/PXELINUX/pxelinux.0 "$TFTP/pxelinux.0"
install -m 0644 /usr/lib/syslinux/modules/bios/ldlinux.c32 "$TFTP/ldlinux.c32"
install -m 0644 /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi "$TFTP/efi64/syslinux.efi"
install -m 0644 /usr/lib/syslinux/modules/efi64/ldlinux.e64 "$TFTP/efi64/ldlinux.e64"
install -m 0644 "$kernel" "$TFTP/default/vmlinuz"
install -m 0644 "$initrd" "$TFTP/default/initrd.img"

entry() { # HOSTNAME
    cat <<EOF
DEFAULT ddc
PROMPT 0
TIMEOUT 0
LABEL ddc
  KERNEL $KPATH/vmlinuz
  INITRD $KPATH/initrd.img
  APPEND boot=nfs nfsroot=$MASTER:$ROOT,vers=3,tcp ip=dhcp ro console=ttyS0
EOF
}
entry node01 >"$TFTP/pxelinux.cfg/01-52-54-00-12-34-56"
entry node02 >"$TFTP/efi64/pxelinux.cfg/01-52-54-00-12-34-57"

# ---- configs ------------------------------------------------------------------
cat >"$WORK/export.conf" <<EOF
EXPORT {
    Export_Id = 1;
    Path = "$ROOT";
    Pseudo = "$ROOT";
    Protocols = 3;
    Transports = TCP, UDP;
    Access_Type = None;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL {
        Name = VFS;
    }
    CLIENT {
        Clients = 192.0.2.0/24;
        Access_Type = RO;
    }
}
EOF

cat >"$WORK/dnsmasq.conf" <<EOF
port=0
interface=br0
bind-interfaces
dhcp-range=192.0.2.0,static,255.255.255.0
dhcp-host=52:54:00:12:34:56,192.0.2.11,node01
dhcp-host=52:54:00:12:34:57,192.0.2.12,node02
dhcp-option=option:router,$MASTER
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-boot=tag:!efi64,pxelinux.0,,$MASTER
dhcp-boot=tag:efi64,efi64/syslinux.efi,,$MASTER
enable-tftp
tftp-root=$TFTP
EOF

# ---- go -------------------------------------------------------------------------
nb_setup "$NS" || die setup
nb_add_tap "$NS" tap0 || die tap0
nb_add_tap "$NS" tap1 || die tap1
nb_start_nfs "$NS" "$WORK/export.conf" || die nfs
nb_start_dnsmasq "$NS" "$WORK/dnsmasq.conf" || die dnsmasq

start=$SECONDS
for n in $NODES; do
    case $n in
    bios) nb_boot_bios "$NS" tap0 52:54:00:12:34:56 "$WORK/node01.log" || die "qemu bios" ;;
    uefi) nb_boot_uefi "$NS" tap1 52:54:00:12:34:57 "$WORK/node02.log" || die "qemu uefi" ;;
    esac
done

rc=0
check() { # LOG HOST
    local log=$1 host=$2 line
    # not in $(...): a signal to this shell must reach the traps at once
    if ! nb_wait_for "$log" 'NBMARK host=.*NBEND|Kernel panic|emergency mode|\(initramfs\)' "$TIMEOUT" >"$log.match"; then
        echo "demo: $host: no marker"; return 1
    fi
    line=$(cat "$log.match")
    echo "demo: $host after $((SECONDS - start))s: $line"
    case $line in
    *"NBMARK host=$host root=[overlay overlay "*"ro=[$MASTER:"*" nfs ro,"*"multi-user=active "*) echo "demo: $host OK" ;;
    *) echo "demo: $host: marker line not as expected"; return 1 ;;
    esac
}
for n in $NODES; do
    case $n in
    bios) check "$WORK/node01.log" node01 || rc=1 ;;
    uefi) check "$WORK/node02.log" node02 || rc=1 ;;
    esac
done
[ $rc = 0 ] && echo "demo: PASS" || echo "demo: FAIL (logs in $WORK)"
exit $rc

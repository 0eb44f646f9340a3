#!/bin/bash
# The end-to-end test: nodes really boot from what `ddc build` made.
#
#   sudo DDC=target/release/ddc bash tests/e2e/run.sh
#
# 1. writes a Ddcfile (two nodes, one bookworm image, a files tree with a
#    marker), 2. runs `ddc build` for real (mmdebstrap, chroot, mkinitramfs),
# 3. serves the result from a network namespace of its own (rpcbind +
#    nfs-ganesha with ddc's export, dnsmasq with ddc's DHCP/TFTP config),
# 4. boots node01 with BIOS and node02 with UEFI under QEMU, 5. reads each
#    console for the line a unit prints after multi-user.target and checks it,
# 6. changes the files tree and rebuilds while both nodes run, reloads
#    ganesha (it must export the old and the new generation) and checks that
#    BOTH running nodes keep reading the old generation, files never read
#    before included, in several reports over ~20 s, 7. renames node02,
#    rebuilds (only dhcp and its boot entry may run), reboots both nodes and
#    sees the new generation and the new name, 8. stops them and boots
#    node03 (BIOS: the e1000's own iPXE ROM, handed the HTTP URL of
#    boot.ipxe by DHCP) and node04 (UEFI: OVMF's PXE, TFTP snponly.efi,
#    then HTTP), both `boot = "ipxe"`, fetching script, kernel and initrd
#    from busybox httpd serving the TFTP root (any web server can), and
#    checks them like the others, and that each posted its report (ddc-report
#    unit). Everything it started is stopped on exit.
#
# Needs root and: mmdebstrap, qemu-system-x86, ovmf, dnsmasq, nfs-ganesha,
# nfs-ganesha-vfs, rpcbind, nfs-common, pxelinux, syslinux-efi,
# syslinux-common, rsync, ipxe, busybox. A missing one fails the test (it never skips).
# Takes 4 to 5 minutes on 2 cores with a warm .deb cache (measured: 236 s,
# 311 s with the cores shared with compiles; an empty cache adds the download). E2E_WORK and E2E_NS choose the work
# folder and the network namespace (two runs at once need their own).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DDC=$(readlink -f "${DDC:-$REPO/target/release/ddc}")   # absolute: builds run in $WORK
WORK=${E2E_WORK:-/var/tmp/ddc-e2e}
DEBS=${E2E_DEBS:-/var/tmp/ddc-e2e-debs}   # .deb cache kept between runs
TIMEOUT=${E2E_BOOT_TIMEOUT:-420}
NS=${E2E_NS:-ddc-e2e}                      # network namespace, made and deleted here
MASTER=192.0.2.1
MAC1=52:54:00:12:34:56
MAC2=52:54:00:12:34:57
MAC3=52:54:00:12:34:58
MAC4=52:54:00:12:34:59
HTTP=$MASTER:8080

# shellcheck source=tests/e2e/netboot.sh
. "$HERE/netboot.sh"

say() { printf 'e2e: %s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }
t0=$SECONDS
elapsed() { echo "$((SECONDS - t0))s"; }

[ "$(id -u)" = 0 ] || die "run as root (it builds an image in a chroot and makes a network namespace)"
for tool in mmdebstrap qemu-system-x86_64 dnsmasq ganesha.nfsd rpcbind rpcinfo rsync ip busybox; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install the packages listed at the top of $0"
done
for f in /usr/lib/PXELINUX/pxelinux.0 /usr/lib/ipxe/snponly.efi /usr/share/OVMF/OVMF_CODE_4M.fd /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so; do
    [ -e "$f" ] || die "$f is missing: apt-get install the packages listed at the top of $0"
done
[ -x "$DDC" ] || die "no ddc binary at $DDC (cargo build --release, or set DDC)"

# A fresh work folder every run; only the .deb cache is carried over.
if [ -d "$WORK" ]; then
    # Never delete through a mount a killed earlier run left behind.
    awk -v w="$WORK" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$WORK"
fi
mkdir -p "$WORK/cache/debs" "$DEBS"
cp -al "$DEBS/." "$WORK/cache/debs/" 2>/dev/null || true

export NB_DIR="$WORK/netboot"
trap nb_cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the cluster
F=$WORK/files
mkdir -p "$F/usr/local/sbin" "$F/etc/systemd/system/multi-user.target.wants" "$F/root"
echo "ddc-e2e generation 1" >"$F/etc/ddc-e2e-marker"
cat >"$F/usr/local/sbin/e2e-report" <<'SH'
#!/bin/sh
# Prints one line about this node to the serial console, after multi-user.target.
echo "written on $(hostname)" >/root/written-on-node
line="E2E host=$(hostname)"
line="$line root=[$(findmnt -n -o SOURCE,FSTYPE,OPTIONS / | tr -s ' ')]"
line="$line ro=[$(findmnt -n -o SOURCE,FSTYPE,OPTIONS /ro | tr -s ' ')]"
line="$line marker=[$(cat /etc/ddc-e2e-marker)]"
line="$line written=[$(cat /root/written-on-node)]"
line="$line multi-user=$(systemctl is-active multi-user.target)"
line="$line E2EEND"
echo "$line" >/dev/ttyS0
SH
chmod 0755 "$F/usr/local/sbin/e2e-report"
cat >"$F/etc/systemd/system/e2e-report.service" <<'UNIT'
[Unit]
Description=ddc end-to-end test report
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/e2e-report

[Install]
WantedBy=multi-user.target
UNIT
ln -s ../e2e-report.service "$F/etc/systemd/system/multi-user.target.wants/e2e-report.service"
# Every 5 s: which generation the node reads, and a read of a file never read
# before (a stale NFS handle would show here once the image is updated). The
# files are the image's copyright files, each read once, in a fixed order;
# the read counts only when cat succeeds and copies a non-empty file.
cat >"$F/usr/local/sbin/e2e-alive" <<'SH'
#!/bin/sh
i=0
while sleep 5; do
    i=$((i + 1))
    all=$(find /usr/share/doc -name copyright -type f | sort)
    count=$(printf '%s\n' "$all" | grep -c .) || count=1
    f=$(printf '%s\n' "$all" | sed -n "$(((i - 1) % count + 1))p")
    if out=$(cat /etc/ddc-e2e-marker 2>&1) &&
        [ -n "$f" ] && cat "$f" >/tmp/e2e-read 2>/dev/null && n=$(wc -c </tmp/e2e-read) && [ "$n" -gt 0 ] &&
        ls /usr/bin >/dev/null 2>&1; then
        echo "E2E-ALIVE host=$(hostname) marker=[$out] file=[$f] read=$n ok" >/dev/ttyS0
    else
        echo "E2E-ALIVE host=$(hostname) marker=[$out] file=[$f] read=${n:-} FAILED" >/dev/ttyS0
    fi
    n=
done
SH
chmod 0755 "$F/usr/local/sbin/e2e-alive"
cat >"$F/etc/systemd/system/e2e-alive.service" <<'UNIT'
[Unit]
Description=ddc end-to-end test: still reading the image

[Service]
ExecStart=/usr/local/sbin/e2e-alive

[Install]
WantedBy=multi-user.target
UNIT
ln -s ../e2e-alive.service "$F/etc/systemd/system/multi-user.target.wants/e2e-alive.service"

# No tasks folder: ddc's built-in steps and templates. ddc applies what it
# builds to the daemons in the namespace (pidfile mode): SIGHUP to ganesha
# for a new generation's export, to dnsmasq for its hosts file.
cat >"$WORK/Ddcfile.toml" <<TOML
[cluster]
network = "192.0.2.0/24"
master  = "$MASTER"

[server]
dnsmasq_interface = "br0"

[apply]
dnsmasq = { pidfile = "$NB_DIR/dnsmasq/dnsmasq.pid" }
nfs     = { pidfile = "$NB_DIR/nfs/run/ganesha/ganesha.pid" }
dhcpd   = "off"
rsyslog = "off"

[images.default]
suite    = "bookworm"
arch     = "amd64"
packages = ["linux-image-amd64", "nfs-common", "systemd-sysv"]
union    = "overlay"
cmdline  = "console=ttyS0"
files    = "files"

[[nodes]]
hostname = "node01"
mac      = "$MAC1"
ip       = "192.0.2.11"

[[nodes]]
hostname = "node02"
mac      = "$MAC2"
ip       = "192.0.2.12"

[[nodes]]
hostname = "node03"
mac      = "$MAC3"
ip       = "192.0.2.13"
boot     = "ipxe"

[[nodes]]
hostname = "node04"
mac      = "$MAC4"
ip       = "192.0.2.14"
boot     = "ipxe"
TOML

# ---------------------------------------------------------------- build
say "ddc build (real image) ..."
b0=$SECONDS
# The daemons do not run yet: everything builds, and only the two apply
# tasks fail (nothing to reload); they pass once the daemons run.
rc=0
(cd "$WORK" && "$DDC" build -k --json) >"$WORK/build.json" || rc=$?
failed=$(sed -n 's/.*"task":"\([^"]*\)","state":"failed".*/\1/p' "$WORK/build.json" | sort | tr '\n' ' ')
[ "$rc" = 1 ] && [ "$failed" = "apply:dnsmasq apply:nfs " ] ||
    die "the first build (no daemon running yet) exited $rc with [$failed] failed, expected 1 with [apply:dnsmasq apply:nfs]"
say "built in $((SECONDS - b0))s"
cp -aln "$WORK/cache/debs/." "$DEBS/" 2>/dev/null || true
if awk -v w="$WORK/cache" '$5 ~ "^"w {found=1} END {exit !found}' /proc/self/mountinfo; then
    die "ddc build left a mount under $WORK/cache"
fi
O=$WORK/out
root=$(sed -n 's/^ *Path = "\(.*\)";/\1/p' "$O/ganesha/ddc.conf" | head -n1)
[ -d "$root" ] || die "the export names $root, which does not exist"
grep -q "^$root 192.0.2.0/24(ro," "$O/exports.d/ddc.exports" || die "exports line missing"
[ -s "$root/etc/hostname" ] && die "/etc/hostname in the image is not empty"
[ -s "$root/etc/machine-id" ] && die "/etc/machine-id in the image is not empty"

# ---------------------------------------------------------------- serve
nb_setup "$NS" || die "namespace"
nb_add_tap "$NS" tap1 || die tap1
nb_add_tap "$NS" tap2 || die tap2
nb_add_tap "$NS" tap3 || die tap3
nb_add_tap "$NS" tap4 || die tap4
nb_start_nfs "$NS" "$O/ganesha/ddc.conf" || die "ganesha"
nb_link_nfs_exports "$O/ganesha/ddc.conf" || die "ganesha export link"
nb_start_dnsmasq "$NS" "$O/dnsmasq.d/ddc.conf" || die "dnsmasq"
nb_start_http "$NS" "$HTTP" "$O/tftp" || die "httpd"
# With the daemons running, the apply tasks pass.
(cd "$WORK" && "$DDC" build --json) >"$WORK/applied.json" || die "the build with the daemons running failed"
ran=$(sed -n 's/.*"task":"\([^"]*\)","state":"ran".*/\1/p' "$WORK/applied.json" | sort | tr '\n' ' ')
[ "$ran" = "apply:dnsmasq apply:nfs " ] || die "with the daemons running, the build ran [$ran]"

# check LOG HOSTNAME GENERATION: the node's report line is as expected
check() {
    local log=$1 host=$2 gen=$3 line
    nb_wait_for "$log" 'E2E host=.*E2EEND|Kernel panic|emergency mode|\(initramfs\)' "$TIMEOUT" >"$log.match" ||
        die "$host: no report line within ${TIMEOUT}s (console: $log)"
    line=$(cat "$log.match")
    say "$host at $(elapsed): $line"
    case $line in
    *"E2E host=$host "*) ;;
    *) die "$host: wrong hostname or no report: $line" ;;
    esac
    case $line in *"root=[overlay overlay "*) ;; *) die "$host: / is not an overlay: $line" ;; esac
    case $line in *"ro=[$MASTER:$root nfs ro,"*) ;; *) die "$host: /ro is not the NFS export, read-only: $line" ;; esac
    case $line in *"marker=[ddc-e2e generation $gen]"*) ;; *) die "$host: not the files tree of generation $gen: $line" ;; esac
    case $line in *"written=[written on $host]"*) ;; *) die "$host: could not write on the node: $line" ;; esac
    case $line in *"multi-user=active "*) ;; *) die "$host: multi-user.target not active: $line" ;; esac
    [ ! -e "$root/root/written-on-node" ] || die "$host: a file written on the node appeared in the exported tree"
}

say "booting node01 (BIOS) and node02 (UEFI) ..."
nb_boot_bios "$NS" tap1 "$MAC1" "$WORK/node01.log" || die "qemu (BIOS)"
nb_boot_uefi "$NS" tap2 "$MAC2" "$WORK/node02.log" || die "qemu (UEFI)"
UEFI_PID=$NB_LAST_PID
check "$WORK/node01.log" node01 1
check "$WORK/node02.log" node02 1
BIOS_PID=$(awk '$1 == "qemu-bios" {print $2}' "$NB_DIR/pids" | tail -n1)

# ---------------------------------------------------------------- update the image under running nodes
say "changing the files tree and rebuilding while both nodes run ..."
echo "ddc-e2e generation 2" >"$F/etc/ddc-e2e-marker"
(cd "$WORK" && "$DDC" build --json) >"$WORK/update.json" || die "rebuild failed"
ran=$(sed -n 's/.*"task":"\([^"]*\)","state":"ran".*/\1/p' "$WORK/update.json" | sort | tr '\n' ' ')
[ "$ran" = "apply:nfs configure:default exports initramfs:default publish:default pxe:node01 pxe:node02 pxe:node03 pxe:node04 " ] ||
    die "the files change ran [$ran]"
root1=$root
root=$(readlink -f "$O/nfsroot/default/current")
[ "$root" != "$root1" ] || die "no new generation"
grep -q "^$root1 " "$O/exports.d/ddc.exports" || die "the running generation is no longer exported"
grep -q "nfsroot=$MASTER:$root," "$O/tftp/pxelinux.cfg/01-${MAC1//:/-}" || die "node01's entry does not boot the new generation"
grep -q "^kernel http://$HTTP/default/$(basename "$root")/vmlinuz initrd=initrd.img .*nfsroot=$MASTER:$root," "$O/tftp/ipxe/${MAC3//:/-}.ipxe" ||
    die "node03's iPXE script does not boot the new generation"
# ddc's apply:nfs sent ganesha its SIGHUP: nobody reloads it by hand. The
# server that runs is ganesha: it must now export both generations.
for _ in $(seq 100); do
    showmount=$(ip netns exec "$NS" showmount -e "$MASTER" 2>/dev/null) || true
    grep -q "^$root " <<<"$showmount" && break
    sleep 0.2
done
for r in "$root1" "$root"; do
    grep -q "^$r " <<<"$showmount" || die "ganesha does not export $r after the reload: $showmount"
done
say "ganesha exports both generations: $(basename "$root1") $(basename "$root")"
# Both running nodes (BIOS and UEFI) keep reading generation 1, files they
# never read before included: ALIVE_PROBES reports each, over at least
# ALIVE_SPAN seconds, all after the reload, none failing.
mark1=$(wc -c <"$WORK/node01.log")
mark2=$(wc -c <"$WORK/node02.log")
# alive_since LOG OFFSET: the E2E-ALIVE reports written to LOG after OFFSET
# bytes (a report may follow a login prompt on its console line).
alive_since() {
    tail -c +"$(($2 + 1))" "$1" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' |
        grep -ao 'E2E-ALIVE .*' || true
}
ALIVE_PROBES=${E2E_ALIVE_PROBES:-4}
ALIVE_SPAN=${E2E_ALIVE_SPAN:-15}
a0=$SECONDS
while :; do
    r1=$(alive_since "$WORK/node01.log" "$mark1")
    r2=$(alive_since "$WORK/node02.log" "$mark2")
    # a failed read fails the test at once
    failed=$(printf '%s\n%s\n' "$r1" "$r2" | grep -a -m1 ' FAILED' || true)
    [ -z "$failed" ] || die "a running node cannot read its image after the update: $failed"
    n1=$(grep -c . <<<"$r1" || true)
    n2=$(grep -c . <<<"$r2" || true)
    if ((n1 >= ALIVE_PROBES && n2 >= ALIVE_PROBES && SECONDS - a0 >= ALIVE_SPAN)); then break; fi
    # Under TCG on a loaded machine the 5 s between reports can stretch far.
    ((SECONDS - a0 < 300)) || die "after the update: $n1 reports from node01, $n2 from node02 in 300 s (want $ALIVE_PROBES each)"
    sleep 1
done
check_alive() {
    local host=$1 lines=$2 line files
    say "$host after the update ($(grep -c . <<<"$lines") reports over $((SECONDS - a0))s):"
    while read -r line; do
        say "  $line"
        case $line in
        "E2E-ALIVE host=$host marker=[ddc-e2e generation 1] file=[/usr/share/doc/"*"] read="[1-9]*" ok"*) ;;
        *) die "$host cannot read generation 1 after the update: $line" ;;
        esac
    done <<<"$lines"
    files=$(sed 's/.* file=\[\([^]]*\)\].*/\1/' <<<"$lines")
    [ "$(sort -u <<<"$files" | grep -c .)" = "$(grep -c . <<<"$files")" ] ||
        die "$host read a file twice: not files never read before"
}
check_alive node01 "$(alive_since "$WORK/node01.log" "$mark1")"
check_alive node02 "$(alive_since "$WORK/node02.log" "$mark2")"

# ---------------------------------------------------------------- rename node02
say "renaming node02 to node02b and rebuilding ..."
sed -i 's/"node02"/"node02b"/' "$WORK/Ddcfile.toml"
(cd "$WORK" && "$DDC" build --json) >"$WORK/rebuild.json" || die "rebuild failed"
ran=$(sed -n 's/.*"task":"\([^"]*\)","state":"ran".*/\1/p' "$WORK/rebuild.json" | sort | tr '\n' ' ')
[ "$ran" = "apply:dnsmasq dhcp pxe:node02b " ] ||
    die "the rename ran [$ran], expected exactly [apply:dnsmasq dhcp pxe:node02b]"
grep -q "^$MAC2,192.0.2.12,node02b$" "$O/dnsmasq/ddc.hosts" || die "dnsmasq hosts file not updated"

_nb_stop "$UEFI_PID" 20
_nb_stop "$BIOS_PID" 20
# dnsmasq is not restarted: apply:dnsmasq's SIGHUP made it reread its hosts.
say "rebooting node01 (new generation) and node02 (new name) ..."
nb_boot_bios "$NS" tap1 "$MAC1" "$WORK/node01-gen2.log" || die "qemu (BIOS, again)"
nb_boot_uefi "$NS" tap2 "$MAC2" "$WORK/node02b.log" || die "qemu (UEFI, again)"
check "$WORK/node01-gen2.log" node01 2
check "$WORK/node02b.log" node02b 2

# ---------------------------------------------------------------- iPXE + HTTP
_nb_stop "$NB_LAST_PID" 20
_nb_stop "$(awk '$1 == "qemu-bios" {print $2}' "$NB_DIR/pids" | tail -n1)" 20
say "booting node03 (BIOS, iPXE ROM) and node04 (UEFI, snponly.efi) over HTTP ..."
nb_boot_bios "$NS" tap3 "$MAC3" "$WORK/node03.log" || die "qemu (BIOS, iPXE)"
nb_boot_uefi "$NS" tap4 "$MAC4" "$WORK/node04.log" || die "qemu (UEFI, iPXE)"
check "$WORK/node03.log" node03 2
check "$WORK/node04.log" node04 2
hlog=$NB_DIR/http/httpd.log
gen=$(basename "$root")
# http_got IP URL: busybox httpd logged a 200 for URL requested from IP.
http_got() {
    awk -v ip="$1:" -v url="url:$2" '
        index($0, ip) == 1 && index($0, url) { want[$1] = 1 }
        index($0, ip) == 1 && / response:200$/ && want[$1] { ok = 1 }
        END { exit !ok }' "$hlog"
}
for n in "3 $MAC3" "4 $MAC4"; do
    ip=192.0.2.1${n%% *}
    mac=${n#* }
    for url in "/ipxe/boot.ipxe" "/ipxe/${mac//:/-}.ipxe" "/default/$gen/vmlinuz" "/default/$gen/initrd.img"; do
        http_got "$ip" "$url" || die "node0${n%% *} did not fetch $url over HTTP (log $hlog)"
    done
    # The report unit posts at boot: the plain web server answers 501.
    for _ in $(seq 60); do grep -q "^$ip:[0-9]*: url:/api/v1/report$" "$hlog" && break; sleep 1; done
    grep -q "^$ip:[0-9]*: url:/api/v1/report$" "$hlog" || die "node0${n%% *} sent no report (log $hlog)"
done
grep -q "sent .*/snponly.efi to 192.0.2.14" "$NB_DIR/dnsmasq/dnsmasq.log" ||
    die "node04 did not get snponly.efi over TFTP (log $NB_DIR/dnsmasq/dnsmasq.log)"
say "node03 and node04 booted over iPXE + HTTP and reported"

say "PASS in $(elapsed)"
echo "1 passed, 0 failed"

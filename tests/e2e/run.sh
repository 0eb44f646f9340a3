#!/bin/bash
# The end-to-end test: nodes really boot from what `ddc build` made.
#
#   sudo DDC=target/release/ddc bash tests/e2e/run.sh
#
# 1. writes a Ddcfile (four nodes, one bookworm image, a files tree with a
#    marker), 2. runs `ddc build` for real (mmdebstrap, chroot, mkinitramfs),
# 3. serves the result from a network namespace of its own (rpcbind +
#    nfs-ganesha with ddc's export, dnsmasq with ddc's DHCP/TFTP config, and
#    `ddc serve` on [server] http for the iPXE scripts, kernels, initrds and
#    the nodes' reports), 4. boots node01 (BIOS) and node02 (UEFI) over
#    pxelinux, then node03 (BIOS: the e1000's own iPXE ROM, handed the HTTP
#    URL of boot.ipxe by DHCP) and node04 (UEFI: OVMF's PXE, TFTP
#    snponly.efi, then HTTP), both `boot = "ipxe"`, under QEMU, 5. reads each
#    console for the line a unit prints after multi-user.target and checks
#    it, and checks that `ddc status --json` shows all four `up` on
#    generation 1 (their ddc-report unit posts to `ddc serve`),
# 6. changes the files tree and rebuilds while the four nodes run: `ddc
#    status` says every node needs a reboot; ganesha (reloaded by ddc) must
#    export the old and the new generation, and every running node keeps
#    reading the old one, files never read before included, in several
#    reports over ~20 s; `ddc gc --keep 0` keeps generation 1 as running on
#    the four nodes, 7. renames node02, rebuilds (only dhcp and its boot
#    entry may run), reboots node01, node02 (new name) and node03 (iPXE) into
#    generation 2 and checks them and their status, while node04 still runs
#    generation 1: `ddc gc --keep 0` still keeps it (running on node04), and
#    `--force -n` names node04 as broken; node04 reboots into generation 2:
#    now `ddc gc --keep 0` deletes generation 1, 8. stops `ddc serve`
#    with SIGTERM: it must exit 0. Everything it started is stopped on exit
#    (and on any failure, which prints the end of the serve log and the last
#    `ddc status --json`).
#
# Needs root and: mmdebstrap, qemu-system-x86, ovmf, dnsmasq, nfs-ganesha,
# nfs-ganesha-vfs, rpcbind, nfs-common, pxelinux, syslinux-efi,
# syslinux-common, rsync, ipxe, jq. A missing one fails the test (it never skips).
# Takes about 10 minutes on 2 cores shared with compiles, with a warm .deb
# cache (measured: 609 s, of which 147 s image build, ~80 to 100 s per set
# of boots under TCG: four boots in two pairs, three reboots, one reboot;
# an empty cache adds the download). E2E_WORK and E2E_NS choose the work
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
HTTP=$MASTER:8080                          # [server] http: where ddc serve listens

# shellcheck source=tests/e2e/cluster.sh
. "$HERE/cluster.sh"

e2e_require mmdebstrap qemu-system-x86_64 dnsmasq ganesha.nfsd rpcbind rpcinfo rsync ip jq -- \
    /usr/lib/PXELINUX/pxelinux.0 /usr/lib/ipxe/snponly.efi /usr/share/OVMF/OVMF_CODE_4M.fd /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so

# A fresh work folder every run; only the .deb cache is carried over.
e2e_fresh_work
trap nb_cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the cluster
F=$WORK/files
e2e_report_unit "$F"
echo "ddc-e2e generation 1" >"$F/etc/ddc-e2e-marker"
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
http              = "$HTTP"

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
e2e_first_build
O=$WORK/out
root=$(sed -n 's/^ *Path = "\(.*\)";/\1/p' "$O/ganesha/ddc.conf" | head -n1)
[ -d "$root" ] || die "the export names $root, which does not exist"
grep -q "^$root 192.0.2.0/24(ro," "$O/exports.d/ddc.exports" || die "exports line missing"
[ -s "$root/etc/hostname" ] && die "/etc/hostname in the image is not empty"
[ -s "$root/etc/machine-id" ] && die "/etc/machine-id in the image is not empty"

# ---------------------------------------------------------------- serve
nb_setup "$NS" || die "namespace"
for tap in tap1 tap2 tap3 tap4; do nb_add_tap "$NS" "$tap" || die "$tap"; done
e2e_start_daemons

GEN1=$(current_gen)
[ -n "$GEN1" ] && [ "$GEN1" = "$(basename "$root")" ] ||
    die "ddc generations --json names [$GEN1] current, the export $root ($(cat "$WORK/generations.json"))"

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

# check_http LOG HOST MAC GEN: the iPXE node's console shows it fetched its
# script, kernel and initrd of GEN from ddc serve over HTTP.
check_http() {
    local log=$1 host=$2 mac=$3 gen=$4 clean url
    clean=$(tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g')
    for url in "ipxe/boot.ipxe" "ipxe/${mac//:/-}.ipxe" "default/$gen/vmlinuz" "default/$gen/initrd.img"; do
        grep -aqE "http://$HTTP/$url\.\.\. .*ok" <<<"$clean" ||
            die "$host did not fetch http://$HTTP/$url from ddc serve (console $log)"
    done
}

# alive_since LOG OFFSET: the E2E-ALIVE reports written to LOG after OFFSET
# bytes (a report may follow a login prompt on its console line).
alive_since() {
    tail -c +"$(($2 + 1))" "$1" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' |
        grep -ao 'E2E-ALIVE .*' || true
}

[ "$(status node03)" = "never_seen null false $GEN1" ] || die "before any boot, ddc status says node03 is [$(status node03)]"

say "booting node01 (BIOS, pxelinux) and node02 (UEFI, pxelinux) on generation $GEN1 ..."
nb_boot_bios "$NS" tap1 "$MAC1" "$WORK/node01.log" || die "qemu (BIOS)"
PID1=$NB_LAST_PID
nb_boot_uefi "$NS" tap2 "$MAC2" "$WORK/node02.log" || die "qemu (UEFI)"
PID2=$NB_LAST_PID
check "$WORK/node01.log" node01 1
check "$WORK/node02.log" node02 1
# The iPXE nodes boot while the first two run (two at a time: TCG is slow).
say "booting node03 (BIOS, iPXE ROM) and node04 (UEFI, snponly.efi) over HTTP from ddc serve ..."
nb_boot_bios "$NS" tap3 "$MAC3" "$WORK/node03.log" || die "qemu (BIOS, iPXE)"
PID3=$NB_LAST_PID
nb_boot_uefi "$NS" tap4 "$MAC4" "$WORK/node04.log" || die "qemu (UEFI, iPXE)"
PID4=$NB_LAST_PID
check "$WORK/node03.log" node03 1
check "$WORK/node04.log" node04 1
check_http "$WORK/node03.log" node03 "$MAC3" "$GEN1"
check_http "$WORK/node04.log" node04 "$MAC4" "$GEN1"
grep -q "sent .*/snponly.efi to 192.0.2.14" "$NB_DIR/dnsmasq/dnsmasq.log" ||
    die "node04 did not get snponly.efi over TFTP (log $NB_DIR/dnsmasq/dnsmasq.log)"
say "every node reported to ddc serve (ddc-report unit):"
for n in node01 node02 node03 node04; do want_status "$n" up "$GEN1" false; done

# ---------------------------------------------------------------- update the image under running nodes
say "changing the files tree and rebuilding while the four nodes run ..."
echo "ddc-e2e generation 2" >"$F/etc/ddc-e2e-marker"
(cd "$WORK" && "$DDC" build --json) >"$WORK/update.json" || die "rebuild failed"
ran=$(sed -n 's/.*"task":"\([^"]*\)","state":"ran".*/\1/p' "$WORK/update.json" | sort | tr '\n' ' ')
[ "$ran" = "apply:nfs configure:default exports initramfs:default publish:default pxe:node01 pxe:node02 pxe:node03 pxe:node04 " ] ||
    die "the files change ran [$ran]"
root1=$root
root=$(readlink -f "$O/nfsroot/default/current")
GEN2=$(current_gen)
[ "$root" != "$root1" ] && [ "$GEN2" = "$(basename "$root")" ] || die "no new generation ([$GEN2], $root)"
grep -q "^$root1 " "$O/exports.d/ddc.exports" || die "the running generation is no longer exported"
grep -q "nfsroot=$MASTER:$root," "$O/tftp/pxelinux.cfg/01-${MAC1//:/-}" || die "node01's entry does not boot the new generation"
grep -q "^kernel http://$HTTP/default/$GEN2/vmlinuz initrd=initrd.img .*nfsroot=$MASTER:$root," "$O/tftp/ipxe/${MAC3//:/-}.ipxe" ||
    die "node03's iPXE script does not boot the new generation"
say "generation $GEN2 built: every node needs a reboot"
for n in node01 node02 node03 node04; do want_status "$n" up "$GEN1" true; done
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
say "ganesha exports both generations: $GEN1 $GEN2"
# The running nodes (BIOS and UEFI, pxelinux and iPXE) keep reading
# generation 1, files they never read before included: ALIVE_PROBES reports
# each, over at least ALIVE_SPAN seconds, all after the reload, none failing.
declare -A mark
for n in node01 node02 node03 node04; do mark[$n]=$(wc -c <"$WORK/$n.log"); done
ALIVE_PROBES=${E2E_ALIVE_PROBES:-4}
ALIVE_SPAN=${E2E_ALIVE_SPAN:-15}
a0=$SECONDS
while :; do
    short=""
    for n in node01 node02 node03 node04; do
        r=$(alive_since "$WORK/$n.log" "${mark[$n]}")
        # a failed read fails the test at once
        failed=$(grep -a -m1 ' FAILED' <<<"$r" || true)
        [ -z "$failed" ] || die "a running node cannot read its image after the update: $failed"
        c=$(grep -c . <<<"$r" || true)
        ((c >= ALIVE_PROBES)) || short="$short $n:$c"
    done
    if [ -z "$short" ] && ((SECONDS - a0 >= ALIVE_SPAN)); then break; fi
    # Under TCG on a loaded machine the 5 s between reports can stretch far.
    ((SECONDS - a0 < 300)) || die "after the update, too few reports in 300 s (want $ALIVE_PROBES each):$short"
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
for n in node01 node02 node03 node04; do check_alive "$n" "$(alive_since "$WORK/$n.log" "${mark[$n]}")"; done

# ---------------------------------------------------------------- gc keeps running roots
# gc_run NAME ARGS...: `ddc gc ARGS` in the cluster folder, output in $WORK/NAME.out
gc_run() {
    local name=$1
    shift
    (cd "$WORK" && "$DDC" gc "$@") >"$WORK/$name.out" 2>&1 || die "ddc gc $* failed: $(cat "$WORK/$name.out")"
    sed 's/^/  gc: /' "$WORK/$name.out" >&2
}
gc_run gc-all-on-1 --keep 0
grep -qxF "keep   default/$GEN1 (running on node01 … node04 (4 nodes))" "$WORK/gc-all-on-1.out" ||
    die "ddc gc --keep 0 does not keep $GEN1 as running on node01 … node04: $(cat "$WORK/gc-all-on-1.out")"
[ -d "$root1" ] || die "ddc gc --keep 0 deleted $root1, which four nodes run"

# ---------------------------------------------------------------- rename node02
say "renaming node02 to node02b and rebuilding ..."
sed -i 's/"node02"/"node02b"/' "$WORK/Ddcfile.toml"
(cd "$WORK" && "$DDC" build --json) >"$WORK/rebuild.json" || die "rebuild failed"
ran=$(sed -n 's/.*"task":"\([^"]*\)","state":"ran".*/\1/p' "$WORK/rebuild.json" | sort | tr '\n' ' ')
[ "$ran" = "apply:dnsmasq dhcp pxe:node02b " ] ||
    die "the rename ran [$ran], expected exactly [apply:dnsmasq dhcp pxe:node02b]"
grep -q "^$MAC2,192.0.2.12,node02b$" "$O/dnsmasq/ddc.hosts" || die "dnsmasq hosts file not updated"

# ---------------------------------------------------------------- reboot all but node04
_nb_stop "$PID1" 20
_nb_stop "$PID2" 20
_nb_stop "$PID3" 20
# dnsmasq is not restarted: apply:dnsmasq's SIGHUP made it reread its hosts.
say "rebooting node01 (new generation), node02 (new name) and node03 (iPXE, new generation); node04 keeps running $GEN1 ..."
nb_boot_bios "$NS" tap1 "$MAC1" "$WORK/node01-gen2.log" || die "qemu (BIOS, again)"
nb_boot_uefi "$NS" tap2 "$MAC2" "$WORK/node02b.log" || die "qemu (UEFI, again)"
nb_boot_bios "$NS" tap3 "$MAC3" "$WORK/node03-gen2.log" || die "qemu (BIOS, iPXE, again)"
check "$WORK/node01-gen2.log" node01 2
check "$WORK/node02b.log" node02b 2
check "$WORK/node03-gen2.log" node03 2
check_http "$WORK/node03-gen2.log" node03 "$MAC3" "$GEN2"
for n in node01 node02b node03; do want_status "$n" up "$GEN2" false; done
want_status node04 up "$GEN1" true

gc_run gc-node04-on-1 --keep 0
# node02's last report (on 0001) was superseded by node02b's from the same MAC.
grep -qxF "keep   default/$GEN1 (running on node04)" "$WORK/gc-node04-on-1.out" ||
    die "ddc gc --keep 0 does not keep $GEN1 as running on node04 (only): $(cat "$WORK/gc-node04-on-1.out")"
[ -d "$root1" ] || die "ddc gc --keep 0 deleted $root1, which node04 runs"
# --force would delete it anyway and names the node whose root goes.
gc_run gc-force-n --keep 0 --force -n
grep -qF "would delete default/$GEN1 (" "$WORK/gc-force-n.out" && grep -qF "; breaks node04: running on it, their root goes)" "$WORK/gc-force-n.out" ||
    die "ddc gc --keep 0 --force -n does not name node04 as broken: $(cat "$WORK/gc-force-n.out")"
[ -d "$root1" ] || die "ddc gc -n deleted $root1"

# ---------------------------------------------------------------- the last node reboots: gc may delete generation 1
_nb_stop "$PID4" 20
say "rebooting node04 (UEFI, iPXE) into $GEN2 ..."
nb_boot_uefi "$NS" tap4 "$MAC4" "$WORK/node04-gen2.log" || die "qemu (UEFI, iPXE, again)"
check "$WORK/node04-gen2.log" node04 2
check_http "$WORK/node04-gen2.log" node04 "$MAC4" "$GEN2"
for n in node01 node02b node03 node04; do want_status "$n" up "$GEN2" false; done
gc_run gc-none-on-1 --keep 0
grep -qE "^deleted default/$GEN1 \(freed [^;]*\)$" "$WORK/gc-none-on-1.out" ||
    die "with no node on it, ddc gc --keep 0 did not delete $GEN1 (or named a node it breaks): $(cat "$WORK/gc-none-on-1.out")"
[ ! -e "$root1" ] || die "ddc gc said it deleted $GEN1, but $root1 is there"
[ -d "$root" ] || die "ddc gc deleted the current generation"

# ---------------------------------------------------------------- stop ddc serve
kill -TERM "$SERVE_PID"
for _ in $(seq 100); do _nb_alive "$SERVE_PID" || break; sleep 0.1; done
_nb_alive "$SERVE_PID" && die "ddc serve still runs 10 s after SIGTERM"
rc=0
wait "$SERVE_PID" || rc=$?
[ "$rc" = 0 ] || die "ddc serve exited $rc on SIGTERM"
grep -q "stopping" "$SERVE_LOG" || die "ddc serve did not log its stop"
say "ddc serve stopped cleanly on SIGTERM"

say "PASS in $(elapsed)"
echo "1 passed, 0 failed"

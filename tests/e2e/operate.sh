#!/bin/bash
# The end-to-end test of operating the cluster: power over IPMI and
# discovery, with real daemons in a network namespace.
#
#   sudo DDC=target/release/ddc bash tests/e2e/operate.sh
#
# 1. writes a Ddcfile (`[cluster] boot = "ipxe"`, a nodes.csv with alpha and
#    beta and their BMCs, [power] with a 0600 password file), builds the
#    image for real, serves it from a namespace (ganesha, dnsmasq, ddc serve),
# 2. starts three simulated BMCs: ipmi_sim (openipmi) on 192.0.2.201..203,
#    each starting its QEMU (BIOS, the e1000's iPXE ROM) through QEMU's
#    ipmi-bmc-extern device; the three boot at once,
# 3. discovery: gamma's MAC is in no inventory: iPXE's unknown-MAC script
#    records it with ddc serve, `ddc discover --json` lists it, `ddc
#    discover --add gamma` appends its row, `ddc node set gamma bmc=...`
#    gives it its BMC, `ddc build`, `ddc power cycle gamma`: it boots the
#    image and `ddc status` says up,
# 4. power: alpha and beta report up; `ddc power status alpha` says on;
#    `ddc power cycle alpha` reboots it (a new QEMU, a new boot on its
#    console, a later booted_at and a new boot id in `ddc status`),
# Each phase prints its time. Everything started is stopped on any exit, and
# the script fails if a process of its own is left.
#
# Needs root and what run.sh needs (mmdebstrap, qemu-system-x86, dnsmasq,
# nfs-ganesha, nfs-ganesha-vfs, rpcbind, nfs-common, ipxe, jq, ...) plus
# openipmi (ipmi_sim) and ipmitool. E2E_WORK (default
# /var/tmp/ddc-e2e-operate) and E2E_NS (default ddc-e2e-op) keep it apart from
# run.sh; E2E_DEBS is the .deb cache both share.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DDC=$(readlink -f "${DDC:-$REPO/target/release/ddc}") # absolute: builds run in $WORK
WORK=${E2E_WORK:-/var/tmp/ddc-e2e-operate}
DEBS=${E2E_DEBS:-/var/tmp/ddc-e2e-debs} # .deb cache kept between runs
TIMEOUT=${E2E_BOOT_TIMEOUT:-420}
NS=${E2E_NS:-ddc-e2e-op} # network namespace, made and deleted here
MASTER=192.0.2.1
HTTP=$MASTER:8080
declare -A MAC=([alpha]=52:54:00:12:35:01 [beta]=52:54:00:12:35:02 [gamma]=52:54:00:12:35:03)
declare -A TAP=([alpha]=tapa [beta]=tapb [gamma]=tapg)
declare -A BMC=([alpha]=192.0.2.201 [beta]=192.0.2.202 [gamma]=192.0.2.203)
declare -A BMC_PORT=([alpha]=6231 [beta]=6232 [gamma]=6233)

# shellcheck source=tests/e2e/cluster.sh
. "$HERE/cluster.sh"

e2e_require mmdebstrap qemu-system-x86_64 dnsmasq ganesha.nfsd rpcbind rpcinfo rsync ip jq ipmi_sim ipmitool -- \
    /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so
e2e_fresh_work

# cleanup: stop everything (nb_cleanup), then fail if any process of this
# run is left: one whose command line or working folder is in $WORK.
cleanup() {
    local rc=$? p left=""
    nb_cleanup || true
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = $$ ] && continue
        if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$WORK" ||
            [[ "$(readlink "$p/cwd" 2>/dev/null)" == "$WORK"* ]]; then
            left="$left ${p#/proc/}:$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" | cut -c1-80)"
        fi
    done
    if [ -n "$left" ]; then
        say "FAIL: left running after cleanup:$left"
        [ "$rc" = 0 ] && rc=1
    fi
    ip netns list | awk '{print $1}' | grep -qx -- "$NS" && { say "FAIL: namespace $NS left"; rc=1; }
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase_t=$SECONDS
phase() {
    say "---- $1 (previous phase took $((SECONDS - phase_t))s, $(elapsed) in all)"
    phase_t=$SECONDS
}

# ---------------------------------------------------------------- the cluster
phase "write the cluster and build the image"
F=$WORK/files
e2e_report_unit "$F"
echo "ddc-e2e generation 1" >"$F/etc/ddc-e2e-marker"
PWFILE=$WORK/ipmi.pw
(umask 077 && echo "e2e-bmc-Pw-4d81c2" >"$PWFILE")
cat >"$WORK/nodes.csv" <<CSV
hostname,mac,ip,bmc
alpha,${MAC[alpha]},192.0.2.11,${BMC[alpha]}:${BMC_PORT[alpha]}
beta,${MAC[beta]},192.0.2.12,${BMC[beta]}:${BMC_PORT[beta]}
CSV
# Every machine boots iPXE (the e1000's ROM, handed boot.ipxe by DHCP), so a
# machine not in the inventory reaches boot.ipxe and its unknown-MAC call.
cat >"$WORK/Ddcfile.toml" <<TOML
nodes_file = "nodes.csv"

[cluster]
network = "192.0.2.0/24"
master  = "$MASTER"
boot    = "ipxe"

[server]
dnsmasq_interface = "br0"
http              = "$HTTP"

[apply]
dnsmasq = { pidfile = "$NB_DIR/dnsmasq/dnsmasq.pid" }
nfs     = { pidfile = "$NB_DIR/nfs/run/ganesha/ganesha.pid" }
dhcpd   = "off"
rsyslog = "off"

[power]
user          = "admin"
password_file = "ipmi.pw"
cipher_suite  = 3
timeout       = 20

[images.default]
suite    = "bookworm"
arch     = "amd64"
packages = ["linux-image-amd64", "nfs-common", "systemd-sysv"]
union    = "overlay"
cmdline  = "console=ttyS0"
files    = "files"
TOML
e2e_first_build

# ---------------------------------------------------------------- serve, BMCs, boots
phase "daemons, three BMCs, three boots"
nb_setup "$NS" || die "namespace"
for n in alpha beta gamma; do
    nb_add_tap "$NS" "${TAP[$n]}" || die "tap for $n"
    ip -n "$NS" addr add "${BMC[$n]}/24" dev br0 || die "the address of $n's BMC"
done
# ddc's dnsmasq config answers only the inventory's MACs (a static range):
# a machine to discover needs an address from somewhere, here a dynamic
# range as an administrator would add for discovery.
export NB_DNSMASQ_EXTRA="--dhcp-range=192.0.2.100,192.0.2.149,255.255.255.0,5m"
e2e_start_daemons
GEN1=$(current_gen)
[ -n "$GEN1" ] || die "no current generation after the build"
[ "$(status alpha)" = "never_seen null false $GEN1" ] || die "before any boot, ddc status says alpha is [$(status alpha)]"

# The three machines power on with their BMCs; gamma is in no inventory.
for n in alpha beta gamma; do
    nb_boot_bmc "$NS" "$WORK/bmc-$n" "${TAP[$n]}" "${MAC[$n]}" "${BMC[$n]}" "${BMC_PORT[$n]}" admin "$PWFILE" ||
        die "the BMC and VM of $n"
done
con() { echo "$WORK/bmc-$1/console.log"; }
qemu_pid() { cat "$WORK/bmc-$1/qemu.pid" 2>/dev/null || true; }
firmware_starts() { grep -c "e820 map has" "$WORK/bmc-$1/debugcon.log" || true; }

# report_lines NODE: the node's E2E report lines on its console, one per boot.
report_lines() {
    tr -d '\r' <"$(con "$1")" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | grep -aoE 'E2E host=.*E2EEND|Kernel panic.*|emergency mode.*' || true
}
# wait_report NODE COUNT GEN: wait until the node's COUNT-th report line,
# and check it: its hostname, an overlay root on the export, generation GEN.
wait_report() {
    local node=$1 count=$2 gen=$3 end=$((SECONDS + TIMEOUT)) lines line
    while :; do
        lines=$(report_lines "$node")
        grep -aqE 'Kernel panic|emergency mode' <<<"$lines" && die "$node: $(grep -aE 'Kernel panic|emergency mode' <<<"$lines" | head -n1) (console $(con "$node"))"
        [ "$(grep -c . <<<"$lines")" -ge "$count" ] && break
        ((SECONDS < end)) || die "$node: no report line #$count within ${TIMEOUT}s (console $(con "$node"))"
        sleep 2
    done
    line=$(sed -n "${count}p" <<<"$lines")
    say "$node boot #$count at $(elapsed): $line"
    case $line in *"E2E host=$node "*) ;; *) die "$node: wrong hostname: $line" ;; esac
    case $line in *"root=[overlay overlay "*) ;; *) die "$node: / is not an overlay: $line" ;; esac
    case $line in *"marker=[ddc-e2e generation $gen]"*) ;; *) die "$node: not the files tree of generation $gen: $line" ;; esac
    case $line in *"multi-user=active "*) ;; *) die "$node: multi-user.target not active: $line" ;; esac
}

# power ACTION NODE WANT: `ddc power ACTION NODE` (in the namespace, where
# the BMCs are) must exit 0 with the result WANT in its table.
power() {
    local out rc=0
    out=$(ddc_ns power "$1" "$2" 2>&1) || rc=$?
    say "  ddc power $1 $2:"
    sed 's/^/    /' <<<"$out" >&2
    [ "$rc" = 0 ] || die "ddc power $1 $2 exited $rc"
    grep -qE "^$2 +${BMC[$2]}:${BMC_PORT[$2]} +$3\$" <<<"$out" || die "ddc power $1 $2 did not say $3"
}

# ---------------------------------------------------------------- discovery
phase "discovery: gamma asks to boot"
end=$((SECONDS + TIMEOUT))
while :; do
    ddc discover --json >"$WORK/discover.json" || die "ddc discover --json failed"
    seen=$(jq -r --arg m "${MAC[gamma]}" 'select(.mac == $m) | "\(.platform) \(.ip)"' "$WORK/discover.json")
    [ -n "$seen" ] && break
    ((SECONDS < end)) || die "gamma (${MAC[gamma]}) not in ddc discover within ${TIMEOUT}s (console $(con gamma))"
    sleep 2
done
say "ddc discover lists gamma: $(cat "$WORK/discover.json")"
case $seen in "pcbios 192.0.2.1"[0-4][0-9]) ;; *) die "gamma discovered as [$seen], want pcbios from the dynamic range" ;; esac
[ "$(jq -s length "$WORK/discover.json")" = 1 ] || die "ddc discover lists more than gamma: $(cat "$WORK/discover.json")"
nb_wait_for "$(con gamma)" "no boot script for ${MAC[gamma]//:/-}" 60 >/dev/null || die "gamma's console does not say it has no boot script"

ddc discover --add gamma >"$WORK/discover-add.out" 2>&1 || die "ddc discover --add gamma failed: $(cat "$WORK/discover-add.out")"
sed 's/^/  /' "$WORK/discover-add.out" >&2
grep -q "^gamma,${MAC[gamma]},192.0.2.13" "$WORK/nodes.csv" || die "no row for gamma in nodes.csv: $(cat "$WORK/nodes.csv")"
ddc node --help | grep -qE '^  set ' || die "ddc node has no set subcommand"
ddc node set gamma "bmc=${BMC[gamma]}:${BMC_PORT[gamma]}" >&2 || die "ddc node set gamma bmc=... failed"
grep -qx "gamma,${MAC[gamma]},192.0.2.13,${BMC[gamma]}:${BMC_PORT[gamma]}" "$WORK/nodes.csv" ||
    die "gamma's row is not what discover and node set wrote: $(cat "$WORK/nodes.csv")"
say "nodes.csv:"
sed 's/^/    /' "$WORK/nodes.csv" >&2
ddc build --json >"$WORK/gamma-build.json" || die "the build after adding gamma failed"
ran=$(sed -n 's/.*"task":"\([^"]*\)","state":"ran".*/\1/p' "$WORK/gamma-build.json" | sort | tr '\n' ' ')
[ "$ran" = "apply:dnsmasq dhcp pxe:gamma " ] || die "adding gamma ran [$ran], want [apply:dnsmasq dhcp pxe:gamma]"
ddc discover --json >"$WORK/discover-after.json" || die "ddc discover --json failed"
[ ! -s "$WORK/discover-after.json" ] || die "gamma is still listed by ddc discover once added: $(cat "$WORK/discover-after.json")"
power status gamma on
gamma_pid=$(qemu_pid gamma)
power cycle gamma ok
say "gamma power-cycled (it boots the image while alpha and beta run)"

# ---------------------------------------------------------------- power
phase "power: alpha and beta up, power status, power cycle alpha"
wait_report alpha 1 1
wait_report beta 1 1
want_status alpha up "$GEN1" false
want_status beta up "$GEN1" false
power status alpha on
alpha_pid=$(qemu_pid alpha)
alpha_boot=$(status_field alpha boot_id)
alpha_booted=$(status_field alpha booted_at)
alpha_fw=$(firmware_starts alpha)
power cycle alpha ok
end=$((SECONDS + 60))
until [ -n "$(qemu_pid alpha)" ] && [ "$(qemu_pid alpha)" != "$alpha_pid" ] && [ -e "/proc/$(qemu_pid alpha)" ]; do
    ((SECONDS < end)) || die "no new QEMU for alpha 60 s after ddc power cycle"
    sleep 1
done
say "ddc power cycle alpha: QEMU $alpha_pid ended, $(qemu_pid alpha) started"

phase "gamma up on its image, alpha up again"
wait_report gamma 1 1
[ "$(qemu_pid gamma)" != "$gamma_pid" ] || die "gamma's VM was not power-cycled"
want_status gamma up "$GEN1" false
wait_report alpha 2 1
want_status alpha up "$GEN1" false
[ "$(firmware_starts alpha)" -gt "$alpha_fw" ] || die "alpha's firmware did not start again"
[ "$(status_field alpha boot_id)" != "$alpha_boot" ] || die "alpha's boot id did not change across the power cycle"
booted=$(status_field alpha booted_at)
[[ "$booted" > "$alpha_booted" ]] || die "alpha's booted_at did not move on: $alpha_booted, then $booted"
say "alpha rebooted by its BMC: booted_at $alpha_booted -> $booted"
power status alpha on

phase "done"
say "PASS in $(elapsed)"
echo "1 passed, 0 failed"

#!/bin/bash
# The end-to-end test of operating the cluster: power over IPMI, discovery
# and the rolling rollout, with real daemons in a network namespace.
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
# 5. rollout: a files change makes generation 2; `ddc
#    rollout --batch 1 --json` reboots alpha, waits for it up on 2, then
#    beta; a broken generation 3 (an enabled unit that fails) stops after the
#    canary alpha, which --rollback-on-failure pins back to 2 (its CSV row)
#    and reboots; beta is never rebooted.
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
discovery         = "192.0.2.100-192.0.2.149"

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
# A machine to discover gets a short lease from [server] discovery (ddc's
# dnsmasq config), then iPXE's boot script, which reports it to ddc serve.
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

# console NODE: the node's console, every boot, without CRs and escapes.
console() { tr -d '\r' <"$(con "$1")" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g'; }
# report_lines NODE: the node's E2E report lines on its console, one per boot.
report_lines() { console "$1" | grep -aoE 'E2E host=.*E2EEND|Kernel panic.*|emergency mode.*' || true; }
# booted_gens NODE: the generation of each kernel the node booted, in order
# (from the kernel's "Command line:"), each followed by a space.
booted_gens() {
    console "$1" | sed -n 's/.*Command line: .* nfsroot=[^ ]*\/default\/\([^,/ ]*\),.*/\1/p' | tr '\n' ' '
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
# Its first power-on (not yet in the inventory) loaded no kernel.
[ "$(booted_gens gamma)" = "$GEN1 " ] || die "gamma's kernels booted [$(booted_gens gamma)], want [$GEN1 ]"
wait_report alpha 2 1
want_status alpha up "$GEN1" false
[ "$(firmware_starts alpha)" -gt "$alpha_fw" ] || die "alpha's firmware did not start again"
[ "$(status_field alpha boot_id)" != "$alpha_boot" ] || die "alpha's boot id did not change across the power cycle"
booted=$(status_field alpha booted_at)
[[ "$booted" > "$alpha_booted" ]] || die "alpha's booted_at did not move on: $alpha_booted, then $booted"
say "alpha rebooted by its BMC: booted_at $alpha_booted -> $booted"
power status alpha on

# ---------------------------------------------------------------- rollout
# rollout NAME ARGS: `ddc rollout ARGS --json` in the namespace (the BMCs),
# events in $WORK/NAME.json; sets ROLLOUT_RC.
rollout() {
    local name=$1
    shift
    ROLLOUT_RC=0
    ddc_ns rollout "$@" --json >"$WORK/$name.json" 2>"$WORK/$name.err" || ROLLOUT_RC=$?
    say "  ddc rollout $* --json exited $ROLLOUT_RC:"
    jq -c 'del(.time, .last_report)' "$WORK/$name.json" | sed 's/^/    /' >&2 || die "ddc rollout --json printed no JSON: $(cat "$WORK/$name.json" "$WORK/$name.err")"
    sed 's/^/    stderr: /' "$WORK/$name.err" >&2
    # stdout holds the events alone: every line an object with event and time
    [ "$(jq -s 'all(type == "object" and has("event") and has("time"))' "$WORK/$name.json")" = true ] ||
        die "ddc rollout --json printed lines that are not events: $(jq -c 'select(has("event") | not)' "$WORK/$name.json" | head -n 3)"
}
# events NAME: "EVENT NODE GENERATION" per event, in order.
events() { jq -r '"\(.event) \(.node // "-") \(.generation // "-")"' "$WORK/$1.json"; }

phase "rollout: generation 2, one node at a time"
# gamma stays where it is: pinned to generation 1 and powered off (the
# rollout moves alpha and beta; a third reboot would only add minutes).
ddc node set gamma "image=default@$GEN1" >&2 || die "pinning gamma"
power off gamma ok
echo "ddc-e2e generation 2" >"$F/etc/ddc-e2e-marker"
ddc build --json >"$WORK/gen2-build.json" || die "the build of generation 2 failed"
GEN2=$(current_gen)
[ "$GEN2" != "$GEN1" ] || die "the files change made no new generation"
say "generation $GEN2 built"
want_status alpha up "$GEN1" true
want_status beta up "$GEN1" true
rollout rollout-gen2 --batch 1
[ "$ROLLOUT_RC" = 0 ] || die "ddc rollout --batch 1 exited $ROLLOUT_RC"
# alpha (the default canary: the first by name) is rebooted, reports up on
# generation 2, and only then is beta rebooted; gamma is not in the plan.
got=$(events rollout-gen2 | grep -v '^plan \|^skipped ' | tr '\n' ';')
want="reboot alpha $GEN2;up alpha $GEN2;reboot beta $GEN2;up beta $GEN2;done - -;"
[ "$got" = "$want" ] || die "the rollout's events are [$got], want [$want]"
[ "$(jq -r 'select(.event == "plan") | .node' "$WORK/rollout-gen2.json" | sort | tr '\n' ' ')" = "alpha beta " ] ||
    die "the rollout's plan is not alpha and beta"
[ "$(jq -r 'select(.event == "done") | .outcome' "$WORK/rollout-gen2.json")" = succeeded ] || die "the rollout did not succeed"
wait_report alpha 3 2
wait_report beta 2 2
want_status alpha up "$GEN2" false
want_status beta up "$GEN2" false
# The reports agree: alpha was up on generation 2 before beta went down.
alpha_up=$(jq -r 'select(.event == "up" and .node == "alpha") | .time' "$WORK/rollout-gen2.json")
beta_reboot=$(jq -r 'select(.event == "reboot" and .node == "beta") | .time' "$WORK/rollout-gen2.json")
beta_booted=$(status_field beta booted_at)
alpha_booted=$(status_field alpha booted_at)
[[ "$alpha_up" < "$beta_reboot" ]] || die "beta was rebooted ($beta_reboot) before alpha was up ($alpha_up)"
[[ "$alpha_booted" < "$beta_booted" ]] || die "beta booted ($beta_booted) before alpha ($alpha_booted)"
say "alpha up on $GEN2 at $alpha_up, beta rebooted at $beta_reboot; booted at: alpha $alpha_booted, beta $beta_booted"

phase "rollout: a broken generation 3 stops after the canary"
cat >"$F/etc/systemd/system/e2e-broken.service" <<'UNIT'
[Unit]
Description=ddc end-to-end test: a unit that fails (a broken generation)
Before=ddc-report.service

[Service]
Type=oneshot
ExecStart=/bin/false

[Install]
WantedBy=multi-user.target
UNIT
ln -s ../e2e-broken.service "$F/etc/systemd/system/multi-user.target.wants/e2e-broken.service"
echo "ddc-e2e generation 3" >"$F/etc/ddc-e2e-marker"
ddc build --json >"$WORK/gen3-build.json" || die "the build of generation 3 failed"
GEN3=$(current_gen)
[ "$GEN3" != "$GEN2" ] || die "the broken files tree made no new generation"
beta_pid=$(qemu_pid beta)
beta_fw=$(firmware_starts beta)
beta_boot=$(status_field beta boot_id)
beta_booted=$(status_field beta booted_at)
beta_reports=$(report_lines beta | grep -c .)
rollout rollout-gen3 --canary alpha --batch 1 --rollback-on-failure --timeout 6m
[ "$ROLLOUT_RC" = 1 ] || die "the broken rollout exited $ROLLOUT_RC, want 1"
got=$(events rollout-gen3 | grep -v '^plan \|^skipped ' | tr '\n' ';')
want="reboot alpha $GEN3;failed alpha $GEN3;rollback alpha $GEN2;reboot alpha $GEN2;up alpha $GEN2;done - -;"
[ "$got" = "$want" ] || die "the broken rollout's events are [$got], want [$want]"
jq -r 'select(.event == "failed") | .last_report.failed_units[]?' "$WORK/rollout-gen3.json" | grep -qx e2e-broken.service ||
    die "the failed event does not name e2e-broken.service: $(cat "$WORK/rollout-gen3.json")"
[ "$(jq -r 'select(.event == "done") | .not_rebooted | join(" ")' "$WORK/rollout-gen3.json")" = beta ] ||
    die "the broken rollout's done event does not name beta as never rebooted"
# alpha is pinned back in its CSV row, booted generation 3 once (its unit
# failed; the rollback's power cycle may come before the console report of
# that boot), then generation 2 again, and reports up there.
grep -q "^alpha,${MAC[alpha]},192.0.2.11,${BMC[alpha]}:${BMC_PORT[alpha]},default@" "$WORK/nodes.csv" ||
    die "alpha is not pinned in nodes.csv: $(cat "$WORK/nodes.csv")"
pin=$(sed -n 's/^alpha,.*,default@\(.*\)$/\1/p' "$WORK/nodes.csv")
[ "$pin" = "$GEN2" ] || [ "$GEN2" = "$(printf '%s' "$GEN2" | grep "^$pin")" ] || die "alpha is pinned to [$pin], not $GEN2"
say "alpha's row: $(grep '^alpha,' "$WORK/nodes.csv")"
wait_report alpha 4 2
[ "$(booted_gens alpha)" = "$GEN1 $GEN1 $GEN2 $GEN3 $GEN2 " ] ||
    die "alpha's kernels booted [$(booted_gens alpha)], want [$GEN1 $GEN1 $GEN2 $GEN3 $GEN2 ]"
# (grep -c, not -q: an early exit would fail the pipeline under pipefail)
[ "$(console alpha | sed -n "/Command line: .*\/$GEN3,/,\$p" | grep -ac 'FAILED.* Failed to start e2e-broken')" -ge 1 ] ||
    die "alpha's console shows no failed e2e-broken.service on generation 3"
want_status alpha up "$GEN2" false "$GEN2"
# beta: never rebooted (same QEMU, no firmware start, same boot, no report
# line), still on generation 2, its entry on 3.
want_status beta up "$GEN2" true
[ "$(qemu_pid beta)" = "$beta_pid" ] || die "beta's QEMU changed: it was power-cycled"
[ "$(firmware_starts beta)" = "$beta_fw" ] || die "beta's firmware started again: it was reset"
[ "$(status_field beta boot_id)" = "$beta_boot" ] || die "beta's boot id changed"
# booted_at is the report's arrival less the uptime it gives: it moves by a
# second or two between reports on a loaded machine, a reboot by a minute.
now_booted=$(status_field beta booted_at)
drift=$(($(date -d "$now_booted" +%s) - $(date -d "$beta_booted" +%s)))
((drift >= -5 && drift <= 5)) || die "beta's booted_at changed: $beta_booted -> $now_booted"
[ "$(report_lines beta | grep -c .)" = "$beta_reports" ] || die "beta's console shows a new boot"
[ "$(booted_gens beta)" = "$GEN1 $GEN2 " ] || die "beta's kernels booted [$(booted_gens beta)], want [$GEN1 $GEN2 ]"
say "beta never rebooted: QEMU $beta_pid, boot $beta_boot, booted at $beta_booted"

phase "done"
say "PASS in $(elapsed)"
echo "1 passed, 0 failed"

# shellcheck shell=bash
# cluster.sh: what the end-to-end scripts (run.sh, operate.sh) share, on top
# of netboot.sh: messages and failure, a fresh work folder, the files tree's
# report unit, the first build, the daemons and `ddc serve` in the
# namespace, and `ddc status --json` lookups.
#
# Source it after setting HERE (this folder), DDC, WORK, DEBS, NS, MASTER and
# HTTP; it sources netboot.sh itself. It sets NB_DIR, SERVE_LOG and STATUS.
#
#   say MSG / die MSG          a line on stderr / FAIL with the serve log's end
#   elapsed                    seconds since the script started ("123s")
#   e2e_require TOOL... -- FILE...   each must exist, or die naming the package list
#   e2e_fresh_work             empty $WORK (unmounting first), seed the .deb cache
#   e2e_report_unit DIR        the files tree DIR gets e2e-report: one console
#                              line per boot after multi-user.target
#   e2e_first_build            `ddc build -k` before the daemons run: only the
#                              two apply tasks may fail; keeps the .deb cache
#   e2e_start_daemons          (after nb_setup and the taps) ganesha, dnsmasq,
#                              `ddc serve`, then the build that applies to them
#   ddc ARGS / ddc_ns ARGS     ddc in $WORK / in $WORK inside the namespace
#   current_gen                the id of image default's current generation
#   status NODE                "STATE RUNNING REBOOT_NEEDED TARGET"
#   status_field NODE FIELD    one field of the node's `ddc status --json`
#   want_status NODE STATE RUNNING REBOOT_NEEDED [TARGET]   wait until so

# shellcheck source=tests/e2e/netboot.sh
. "$HERE/netboot.sh"

export NB_DIR="$WORK/netboot"
SERVE_LOG=$WORK/serve.log # ddc serve's output (tracing)
STATUS=$WORK/status.json  # the last `ddc status --json`
E2E_T0=$SECONDS

say() { printf 'e2e: %s\n' "$*" >&2; }
die() {
    say "FAIL: $*"
    if [ -s "${SERVE_LOG:-}" ]; then
        say "the end of the ddc serve log ($SERVE_LOG):"
        tail -n 30 "$SERVE_LOG" >&2
    fi
    if [ -s "${STATUS:-}" ]; then
        say "the last ddc status --json ($STATUS):"
        cat "$STATUS" >&2
    fi
    exit 1
}
elapsed() { echo "$((SECONDS - E2E_T0))s"; }

e2e_require() {
    local t
    [ "$(id -u)" = 0 ] || die "run as root (it builds an image in a chroot and makes a network namespace)"
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        command -v "$1" >/dev/null || die "$1 is missing: apt-get install the packages listed at the top of $0"
        shift
    done
    [ $# -gt 0 ] && shift
    for t in "$@"; do
        [ -e "$t" ] || die "$t is missing: apt-get install the packages listed at the top of $0"
    done
    [ -x "$DDC" ] || die "no ddc binary at $DDC (cargo build --release, or set DDC)"
}

e2e_fresh_work() {
    if [ -d "$WORK" ]; then
        # Never delete through a mount a killed earlier run left behind.
        awk -v w="$WORK" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" || true; done
        rm -rf --one-file-system "$WORK"
    fi
    mkdir -p "$WORK/cache/debs" "$DEBS"
    cp -al "$DEBS/." "$WORK/cache/debs/" 2>/dev/null || true
}

e2e_report_unit() {
    local f=$1
    mkdir -p "$f/usr/local/sbin" "$f/etc/systemd/system/multi-user.target.wants" "$f/root"
    cat >"$f/usr/local/sbin/e2e-report" <<'SH'
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
    chmod 0755 "$f/usr/local/sbin/e2e-report"
    cat >"$f/etc/systemd/system/e2e-report.service" <<'UNIT'
[Unit]
Description=ddc end-to-end test report
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/e2e-report

[Install]
WantedBy=multi-user.target
UNIT
    ln -s ../e2e-report.service "$f/etc/systemd/system/multi-user.target.wants/e2e-report.service"
}

ddc() { (cd "$WORK" && "$DDC" "$@"); }
ddc_ns() { (cd "$WORK" && ip netns exec "$NS" "$DDC" "$@"); }

e2e_first_build() {
    local rc=0 failed b0=$SECONDS
    say "ddc build (real image) ..."
    # The daemons do not run yet: everything builds, and only the two apply
    # tasks fail (nothing to reload); they pass once the daemons run.
    ddc build -k --json >"$WORK/build.json" || rc=$?
    failed=$(sed -n 's/.*"task":"\([^"]*\)","state":"failed".*/\1/p' "$WORK/build.json" | sort | tr '\n' ' ')
    [ "$rc" = 1 ] && [ "$failed" = "apply:dnsmasq apply:nfs " ] ||
        die "the first build (no daemon running yet) exited $rc with [$failed] failed, expected 1 with [apply:dnsmasq apply:nfs]"
    say "built in $((SECONDS - b0))s"
    cp -aln "$WORK/cache/debs/." "$DEBS/" 2>/dev/null || true
    if awk -v w="$WORK/cache" '$5 ~ "^"w {found=1} END {exit !found}' /proc/self/mountinfo; then
        die "ddc build left a mount under $WORK/cache"
    fi
}

e2e_start_daemons() {
    local o=$WORK/out ran
    nb_start_nfs "$NS" "$o/ganesha/ddc.conf" || die "ganesha"
    nb_link_nfs_exports "$o/ganesha/ddc.conf" || die "ganesha export link"
    nb_start_dnsmasq "$NS" "$o/dnsmasq.d/ddc.conf" || die "dnsmasq"
    # `ddc serve` in the cluster folder, in the namespace, on [server] http: the
    # iPXE scripts, kernels and initrds, and every node's reports. It is
    # recorded like the daemons (nb_cleanup sends it SIGTERM on any failure).
    (cd "$WORK" && DDC_LOG=ddc=debug exec ip netns exec "$NS" "$DDC" serve) </dev/null >"$SERVE_LOG" 2>&1 &
    SERVE_PID=$!
    _nb_record serve "$SERVE_PID"
    _nb_wait_port "$NS" tcp "${HTTP##*:}" 30 || die "ddc serve does not listen on $HTTP"
    say "ddc serve up on $HTTP (pid $SERVE_PID, log $SERVE_LOG)"
    # With the daemons running, the apply tasks pass.
    ddc build --json >"$WORK/applied.json" || die "the build with the daemons running failed"
    ran=$(sed -n 's/.*"task":"\([^"]*\)","state":"ran".*/\1/p' "$WORK/applied.json" | sort | tr '\n' ' ')
    [ "$ran" = "apply:dnsmasq apply:nfs " ] || die "with the daemons running, the build ran [$ran]"
}

# The generation ids, as ddc names them (never hard-coded).
current_gen() {
    ddc generations --json >"$WORK/generations.json" || die "ddc generations --json failed"
    jq -r 'select(.image == "default" and .current) | .id' "$WORK/generations.json"
}

_status_json() {
    ddc status --json >"$STATUS" 2>&1 || die "ddc status --json failed: $(cat "$STATUS")"
}
status() {
    _status_json
    jq -r --arg n "$1" 'select(.node == $n) | "\(.state) \(.running) \(.reboot_needed) \(.target)"' "$STATUS"
}
status_field() {
    _status_json
    jq -r --arg n "$1" --arg f "$2" 'select(.node == $n) | .[$f]' "$STATUS"
}
# want_status NODE STATE RUNNING REBOOT_NEEDED [TARGET]: wait (bounded)
# until `ddc status --json` says so of NODE; the target is the current
# generation unless given (a pinned node's).
want_status() {
    local node=$1 target=${5:-} want got end=$((SECONDS + 150))
    [ -n "$target" ] || target=$(readlink -f "$WORK/out/nfsroot/default/current" | xargs basename)
    want="$2 $3 $4 $target"
    while :; do
        got=$(status "$node")
        [ "$got" = "$want" ] && break
        ((SECONDS < end)) || die "ddc status --json: $node is [$got], want [$want] (state running reboot_needed target) within 150 s"
        sleep 2
    done
    say "  ddc status: $node $got"
}

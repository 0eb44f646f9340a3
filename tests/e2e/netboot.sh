# shellcheck shell=bash
# netboot.sh: a bash library to network-boot QEMU nodes inside a private
# network namespace (192.0.2.0/24 on bridge br0), served by rpcbind +
# nfs-ganesha (NFSv3, VFS FSAL) and dnsmasq (DHCP + TFTP).
#
# Source it from bash, then:
#
#   nb_setup NS                         netns NS, br0 = 192.0.2.1/24, lo up
#   nb_add_tap NS TAP                   tap TAP attached to br0
#   nb_add_host NS HOST ADDR/LEN        a second netns HOST whose eth0 (ADDR)
#                                       is cabled to br0: another machine on
#                                       the cluster network
#   nb_start_nfs NS EXPORT_CONF         rpcbind + ganesha.nfsd; EXPORT_CONF holds
#                                       the EXPORT { ... } block(s)
#   nb_reload_nfs NS EXPORT_CONF PATH   new EXPORT file, SIGHUP, wait for PATH
#   nb_link_nfs_exports EXPORT_CONF     the running ganesha's EXPORT file becomes
#                                       EXPORT_CONF itself (a link): who rewrites
#                                       it and sends SIGHUP decides what is served
#   nb_start_dnsmasq NS CONF            dnsmasq -C CONF (pid/log/lease files are
#                                       added here; CONF must not set them)
#
# Pid files, for whoever signals the daemons (ddc's [apply] pidfile mode):
# ganesha $NB_DIR/nfs/run/ganesha/ganesha.pid, dnsmasq $NB_DIR/dnsmasq/dnsmasq.pid.
#   nb_boot_bios NS TAP MAC LOG         QEMU, SeaBIOS + iPXE on e1000, -boot n
#   nb_boot_uefi NS TAP MAC LOG         QEMU, OVMF + its own PXE on virtio-net
#   nb_boot_bmc NS DIR TAP MAC BMC PORT USER PWFILE
#                                       a BIOS node (as nb_boot_bios) behind a
#                                       simulated BMC: ipmi_sim with its LAN
#                                       channel on BMC:PORT (IPMI 2.0, USER and
#                                       the password in PWFILE) starts the VM at
#                                       once and on every power on; DIR holds
#                                       console.log and debugcon.log (appended
#                                       across power cycles) and qemu.pid
#   nb_wait_for LOG REGEX TIMEOUT       wait until a line of LOG matches REGEX
#   nb_cleanup                          stop everything, delete the namespace
#
# Everything runs inside the namespace: nothing listens on the host's
# network. rpcbind and ganesha get a private mount namespace in which /run
# is a directory of the state dir, so they never touch the host's /run.
# Every process started is recorded (pid + kind) in $NB_DIR/pids; nb_cleanup
# kills exactly those PIDs. nb_cleanup is idempotent and trap-safe.
#
# Tunables (environment, read when a function runs):
#   NB_DIR        state dir (default: a fresh mktemp -d /tmp/netboot.XXXXXX)
#   NB_MEM        guest memory in MiB (default 1024)
#   NB_ACCEL      QEMU accelerator (default tcg: iPXE resets under KVM here)
#   NB_QEMU_EXTRA extra QEMU arguments (word-split)
#   NB_DNSMASQ_EXTRA extra dnsmasq arguments (word-split)
#   NB_OVMF_CODE / NB_OVMF_VARS   firmware files (default: the ovmf package's 4M)
#   NB_BRIDGE_ADDR  default 192.0.2.1/24

NB_BRIDGE=br0
: "${NB_BRIDGE_ADDR:=192.0.2.1/24}"

_nb_log() { printf 'netboot: %s\n' "$*" >&2; }
_nb_die() { _nb_log "ERROR: $*"; return 1; }

# _nb_statedir: make sure NB_DIR exists.
_nb_statedir() {
    if [ -z "${NB_DIR:-}" ]; then
        NB_DIR=$(mktemp -d /tmp/netboot.XXXXXX) || return 1
    fi
    mkdir -p "$NB_DIR" || return 1
    touch "$NB_DIR/pids" "$NB_DIR/netns"
}

# _nb_starttime PID: the process' start time (clock ticks since boot), which
# tells a recorded process from a later one that reuses its PID.
_nb_starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# _nb_record KIND PID
_nb_record() { printf '%s %s %s\n' "$1" "$2" "$(_nb_starttime "$2")" >>"$NB_DIR/pids"; }

# _nb_alive PID -> 0 when PID is a live (non-zombie) process
_nb_alive() {
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# _nb_stop PID [GRACE_TENTHS]: TERM, wait, then KILL that one PID.
_nb_stop() {
    local pid=$1 grace=${2:-50} i
    _nb_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace; i++)); do
        _nb_alive "$pid" || break
        sleep 0.1
    done
    if _nb_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null
        for ((i = 0; i < 30; i++)); do _nb_alive "$pid" || break; sleep 0.1; done
    fi
    wait "$pid" 2>/dev/null || true
    return 0
}

# _nb_kill_netns_procs NS: processes left inside a namespace of that name
# (a previous run that was SIGKILLed). They can only be ours.
_nb_kill_netns_procs() {
    local ns=$1 pid
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        _nb_log "killing leftover pid $pid in netns $ns ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-60))"
        _nb_stop "$pid" 20
    done
}

# nb_setup NS
nb_setup() {
    local ns=${1:?usage: nb_setup NS}
    _nb_statedir || return 1
    if ip netns list | awk '{print $1}' | grep -qx -- "$ns"; then
        _nb_log "netns $ns exists (earlier run not cleaned up): removing it"
        _nb_kill_netns_procs "$ns"
        ip netns del "$ns" || return 1
    fi
    ip netns add "$ns" || return 1
    echo "$ns" >>"$NB_DIR/netns"
    ip -n "$ns" link set lo up || return 1
    ip -n "$ns" link add "$NB_BRIDGE" type bridge || return 1
    # No STP, no forwarding delay: the ports must forward at once (PXE
    # firmware gives up on DHCP quickly).
    ip -n "$ns" link set "$NB_BRIDGE" type bridge stp_state 0 forward_delay 0 || true
    ip -n "$ns" addr add "$NB_BRIDGE_ADDR" dev "$NB_BRIDGE" || return 1
    ip -n "$ns" link set "$NB_BRIDGE" up || return 1
    _nb_log "netns $ns ready: $NB_BRIDGE $NB_BRIDGE_ADDR, state in $NB_DIR"
}

# nb_add_tap NS TAP
nb_add_tap() {
    local ns=${1:?usage: nb_add_tap NS TAP} tap=${2:?usage: nb_add_tap NS TAP}
    ip -n "$ns" tuntap add dev "$tap" mode tap || return 1
    ip -n "$ns" link set "$tap" master "$NB_BRIDGE" || return 1
    ip -n "$ns" link set "$tap" up || return 1
}

# nb_add_host NS HOST ADDR/LEN
nb_add_host() {
    local ns=${1:?usage: nb_add_host NS HOST ADDR/LEN} host=${2:?usage: nb_add_host NS HOST ADDR/LEN}
    local addr=${3:?usage: nb_add_host NS HOST ADDR/LEN} port="v${2: -10}"
    _nb_statedir || return 1
    if ip netns list | awk '{print $1}' | grep -qx -- "$host"; then
        _nb_kill_netns_procs "$host"
        ip netns del "$host" || return 1
    fi
    ip netns add "$host" || return 1
    echo "$host" >>"$NB_DIR/netns"
    ip -n "$host" link set lo up || return 1
    ip -n "$ns" link add "$port" type veth peer name eth0 netns "$host" || return 1
    ip -n "$ns" link set "$port" master "$NB_BRIDGE" || return 1
    ip -n "$ns" link set "$port" up || return 1
    ip -n "$host" addr add "$addr" dev eth0 || return 1
    ip -n "$host" link set eth0 up || return 1
}

# _nb_privrun NS RUNDIR CMD...: exec CMD in netns NS in a private mount
# namespace whose /run is RUNDIR (a bind mount, private to that process:
# nothing to unmount on the host afterwards). Replaces the shell: call in a
# background subshell, the PID is then CMD's.
_nb_privrun() {
    local ns=$1 rundir=$2
    shift 2
    # shellcheck disable=SC2016 # $0 and $@ are the inner shell's
    exec ip netns exec "$ns" unshare --mount --propagation private \
        /bin/sh -c 'mount --bind "$0" /run && exec "$@"' "$rundir" "$@"
}

# _nb_wait_port NS PROTO PORT TIMEOUT: wait until something listens there.
_nb_wait_port() {
    local ns=$1 proto=$2 port=$3 t=$4 i flag=-lnt
    [ "$proto" = udp ] && flag=-lnu
    for ((i = 0; i < t * 10; i++)); do
        if ip netns exec "$ns" ss -H $flag "sport = :$port" 2>/dev/null | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# nb_start_nfs NS EXPORT_CONF
nb_start_nfs() {
    local ns=${1:?usage: nb_start_nfs NS EXPORT_CONF} exp=${2:?usage: nb_start_nfs NS EXPORT_CONF}
    local d pid
    _nb_statedir || return 1
    [ -r "$exp" ] || { _nb_die "no export file $exp"; return 1; }
    d="$NB_DIR/nfs"
    mkdir -p "$d/run/rpcbind" "$d/run/ganesha" "$d/lib/v4recov" "$d/lib/v4old" || return 1
    chmod 0755 "$d" "$d/run"
    # rpcbind drops to user _rpc and keeps its state files in /run/rpcbind
    if getent passwd _rpc >/dev/null; then chown _rpc "$d/run/rpcbind"; fi
    cp "$exp" "$d/export.conf" || return 1
    cat >"$d/ganesha.conf" <<EOF
# generated by netboot.sh around the EXPORT block of $exp
NFS_CORE_PARAM {
    Protocols = 3;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = true;
    NFS_Port = 2049;
    MNT_Port = 20048;
    Bind_addr = 0.0.0.0;
    Plugins_Dir = "/usr/lib/x86_64-linux-gnu/ganesha";
}
NFSV4 {
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = "$d/lib";
    RecoveryDir = "v4recov";
    RecoveryOldDir = "v4old";
}
NFS_KRB5 {
    Active_krb5 = false;
    CCacheDir = "$d/run/ganesha";
}
MDCACHE {
    Entries_HWMark = 100000;
}
LOG {
    Default_Log_Level = EVENT;
}
%include "$d/export.conf"
EOF
    # rpcbind: -f foreground, -w warm start (state files in its /run)
    (_nb_privrun "$ns" "$d/run" rpcbind -f -w) </dev/null >"$d/rpcbind.out" 2>&1 &
    pid=$!
    _nb_record rpcbind "$pid"
    _nb_wait_port "$ns" tcp 111 10 || { _nb_die "rpcbind did not start (see $d/rpcbind.out)"; return 1; }
    (_nb_privrun "$ns" "$d/run" ganesha.nfsd -F -f "$d/ganesha.conf" \
        -L "$d/ganesha.log" -p "$d/run/ganesha/ganesha.pid" -N NIV_EVENT) \
        </dev/null >"$d/ganesha.out" 2>&1 &
    pid=$!
    _nb_record ganesha "$pid"
    if ! _nb_wait_port "$ns" tcp 2049 30; then
        _nb_die "ganesha did not listen on 2049 (see $d/ganesha.log)"
        tail -n 20 "$d/ganesha.log" >&2 2>/dev/null
        return 1
    fi
    # Wait until both programs are registered with the portmapper (klibc's
    # nfsmount asks it for the mountd and nfs ports).
    local i
    for ((i = 0; i < 100; i++)); do
        if ip netns exec "$ns" rpcinfo -p 127.0.0.1 2>/dev/null | awk '$5=="mountd"&&$3=="tcp"{m=1} $5=="nfs"&&$3=="tcp"{n=1} END{exit !(m&&n)}'; then
            _nb_log "nfs up (rpcbind + ganesha), log $d/ganesha.log"
            return 0
        fi
        sleep 0.1
    done
    _nb_die "ganesha not registered with rpcbind"
    ip netns exec "$ns" rpcinfo -p 127.0.0.1 >&2
    return 1
}

# nb_reload_nfs NS EXPORT_CONF WANT_PATH: give the running ganesha a new
# EXPORT file (SIGHUP rereads it, as on a master after ddc build) and wait
# until WANT_PATH is exported. Exports that stay keep their ids: running
# clients keep working.
nb_reload_nfs() {
    local ns=${1:?} exp=${2:?} want=${3:?} d pid i
    d="$NB_DIR/nfs"
    cp "$exp" "$d/export.conf" || return 1
    pid=$(cat "$d/run/ganesha/ganesha.pid" 2>/dev/null)
    [ -n "$pid" ] || { _nb_die "no ganesha pid in $d/run/ganesha/ganesha.pid"; return 1; }
    kill -HUP "$pid" || return 1
    for ((i = 0; i < 100; i++)); do
        if ip netns exec "$ns" showmount -e "${NB_BRIDGE_ADDR%/*}" 2>/dev/null | grep -q "^$want "; then
            _nb_log "ganesha reloaded: $want exported"
            return 0
        fi
        sleep 0.2
    done
    _nb_die "ganesha did not export $want after SIGHUP (see $d/ganesha.log)"
    return 1
}

# nb_link_nfs_exports EXPORT_CONF: the EXPORT file the running ganesha
# includes becomes a link to EXPORT_CONF, so that a program that replaces
# EXPORT_CONF and sends SIGHUP (ddc build with [apply] nfs = { pidfile =
# ... }) decides what ganesha serves, with no copy by hand.
nb_link_nfs_exports() {
    local exp=${1:?usage: nb_link_nfs_exports EXPORT_CONF}
    [ -r "$exp" ] || { _nb_die "no export file $exp"; return 1; }
    ln -sfn "$(readlink -f "$exp")" "$NB_DIR/nfs/export.conf"
}

# nb_start_dnsmasq NS CONF
nb_start_dnsmasq() {
    local ns=${1:?usage: nb_start_dnsmasq NS CONF} conf=${2:?usage: nb_start_dnsmasq NS CONF}
    local d pid
    _nb_statedir || return 1
    d="$NB_DIR/dnsmasq"
    mkdir -p "$d" || return 1
    # shellcheck disable=SC2086
    ip netns exec "$ns" dnsmasq --test -C "$conf" ${NB_DNSMASQ_EXTRA:-} >"$d/test.out" 2>&1 ||
        { cat "$d/test.out" >&2; _nb_die "dnsmasq rejects $conf"; return 1; }
    # -k: stay in the foreground so $! is dnsmasq itself. -C: only this file
    # (the host's /etc/dnsmasq.conf and /etc/dnsmasq.d are not read).
    # shellcheck disable=SC2086
    (exec ip netns exec "$ns" dnsmasq -k -C "$conf" \
        --pid-file="$d/dnsmasq.pid" --dhcp-leasefile="$d/leases" \
        --log-facility="$d/dnsmasq.log" --log-dhcp --log-queries=extra ${NB_DNSMASQ_EXTRA:-}) \
        </dev/null >"$d/dnsmasq.out" 2>&1 &
    pid=$!
    _nb_record dnsmasq "$pid"
    if ! _nb_wait_port "$ns" udp 67 10; then
        cat "$d/dnsmasq.out" "$d/dnsmasq.log" >&2 2>/dev/null
        _nb_die "dnsmasq did not start"
        return 1
    fi
    _nb_log "dnsmasq up, log $d/dnsmasq.log"
}

# _nb_qemu NS KIND LOG ARGS...: start QEMU in the background in NS.
_nb_qemu() {
    local ns=$1 kind=$2 log=$3 pid
    shift 3
    mkdir -p "$(dirname "$log")"
    : >"$log"
    # shellcheck disable=SC2086
    (exec ip netns exec "$ns" qemu-system-x86_64 "$@" ${NB_QEMU_EXTRA:-}) \
        </dev/null >"$log.qemu" 2>&1 &
    pid=$!
    _nb_record "qemu-$kind" "$pid"
    printf '%s\n' "$*" >"$log.cmdline"
    NB_LAST_PID=$pid # for callers: the PID of the QEMU just started
    export NB_LAST_PID
    sleep 0.5
    if ! _nb_alive "$pid"; then
        cat "$log.qemu" >&2
        _nb_die "qemu ($kind) exited at once"
        return 1
    fi
    _nb_log "qemu $kind pid $pid, console $log"
}

# nb_boot_bios NS TAP MAC CONSOLE_LOG
nb_boot_bios() {
    local ns=${1:?} tap=${2:?} mac=${3:?} log=${4:?}
    _nb_statedir || return 1
    _nb_qemu "$ns" bios "$log" \
        -name "nb-bios-$tap" -machine pc -accel "${NB_ACCEL:-tcg}" \
        -m "${NB_MEM:-1024}" -smp 1 \
        -nographic -monitor none -serial "file:$log" \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
        -device "e1000,netdev=n0,mac=$mac" \
        -boot n
}

# nb_boot_uefi NS TAP MAC CONSOLE_LOG
nb_boot_uefi() {
    local ns=${1:?} tap=${2:?} mac=${3:?} log=${4:?} vars
    local code=${NB_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
    local tmpl=${NB_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
    _nb_statedir || return 1
    vars="$NB_DIR/ovmf-vars-$tap.fd"
    cp "$tmpl" "$vars" || return 1
    _nb_qemu "$ns" uefi "$log" \
        -name "nb-uefi-$tap" -machine q35 -accel "${NB_ACCEL:-tcg}" \
        -m "${NB_MEM:-1024}" -smp 1 \
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$code" \
        -drive "if=pflash,format=raw,unit=1,file=$vars" \
        -nographic -monitor none -serial "file:$log" \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1"
}

# nb_boot_bmc NS DIR TAP MAC BMC PORT USER PWFILE: ipmi_sim (openipmi) in NS
# with a LAN channel on BMC:PORT, and a BIOS QEMU (e1000, its iPXE ROM) that
# it starts now and on every power on, connected to it through QEMU's
# ipmi-bmc-extern device (a chardev on 127.0.0.1 of NS, port PORT+1000). A
# power off asks the guest, then SIGTERMs QEMU after 3 s. The console and
# the firmware's debug port (one "e820 map has" per firmware start) are
# appended to DIR/console.log and DIR/debugcon.log across power cycles.
nb_boot_bmc() {
    local ns=${1:?} dir=${2:?} tap=${3:?} mac=${4:?} bmc=${5:?} port=${6:?} user=${7:?} pwfile=${8:?}
    local pw pid i serial=$((port + 1000))
    _nb_statedir || return 1
    mkdir -p "$dir/state" || return 1
    pw=$(cat "$pwfile") || return 1
    cat >"$dir/vm.sh" <<EOF
#!/bin/sh
# ipmi_sim's startcmd: the machine behind the BMC at $bmc:$port (exec: its pid is QEMU's).
exec qemu-system-x86_64 -name nb-bmc-$tap -machine pc -accel ${NB_ACCEL:-tcg} \\
    -m ${NB_MEM:-1024} -smp 1 -nographic -monitor none \\
    -chardev file,id=con,path=$dir/console.log,append=on -serial chardev:con \\
    -chardev file,id=dbg,path=$dir/debugcon.log,append=on -device isa-debugcon,iobase=0x402,chardev=dbg \\
    -pidfile $dir/qemu.pid \\
    -netdev tap,id=n0,ifname=$tap,script=no,downscript=no -device e1000,netdev=n0,mac=$mac \\
    -chardev socket,id=ipmi0,host=127.0.0.1,port=$serial,reconnect=1 \\
    -device ipmi-bmc-extern,chardev=ipmi0,id=bmc0 -device isa-ipmi-kcs,bmc=bmc0 \\
    -boot n ${NB_QEMU_EXTRA:-}
EOF
    chmod 0755 "$dir/vm.sh"
    # The password is in this file only (0600), as in a real BMC's config.
    (
        umask 077
        cat >"$dir/lan.conf" <<EOF
name "bmc-$tap"
set_working_mc 0x20
  startlan 1
    addr $bmc $port
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  serial 15 127.0.0.1 $serial codec VM
  startcmd "$dir/vm.sh"
  startnow true
  poweroff_wait 3
  kill_wait 3
  user 2 true "$user" "$pw" admin 10 none md2 md5 straight
EOF
    ) || return 1
    printf 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n' >"$dir/sim.emu"
    : >"$dir/console.log"
    : >"$dir/debugcon.log"
    printf 'bmc-vm %s\n' "$dir/qemu.pid" >>"$NB_DIR/pids"
    (cd "$dir" && exec ip netns exec "$ns" ipmi_sim -n -c lan.conf -f sim.emu -s state) \
        </dev/null >"$dir/ipmi_sim.out" 2>&1 &
    pid=$!
    _nb_record ipmi_sim "$pid"
    if ! _nb_wait_port "$ns" udp "$port" 10; then
        cat "$dir/ipmi_sim.out" >&2
        _nb_die "ipmi_sim did not listen on $bmc:$port"
        return 1
    fi
    for ((i = 0; i < 100; i++)); do
        [ -s "$dir/qemu.pid" ] && break
        sleep 0.1
    done
    if [ ! -s "$dir/qemu.pid" ]; then
        cat "$dir/ipmi_sim.out" >&2
        _nb_die "ipmi_sim did not start the VM ($dir/vm.sh)"
        return 1
    fi
    _nb_log "bmc $bmc:$port (ipmi_sim pid $pid) started its VM (pid $(cat "$dir/qemu.pid")), console $dir/console.log"
}

# nb_wait_for LOG REGEX TIMEOUT_SECONDS: 0 when a line matched (printed on
# stdout), 1 on timeout. The console log has CRs and escape sequences:
# they are removed before matching (extended regex, grep -E).
nb_wait_for() {
    local log=${1:?} re=${2:?} t=${3:?} end line
    end=$((SECONDS + t))
    while :; do
        if [ -r "$log" ]; then
            line=$(tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | grep -aE -m1 -- "$re")
            if [ -n "$line" ]; then
                printf '%s\n' "$line"
                return 0
            fi
        fi
        ((SECONDS < end)) || break
        sleep 1
    done
    _nb_log "timeout (${t}s) waiting for /$re/ in $log"
    return 1
}

# nb_cleanup: stop what was started (QEMU first, the VMs of simulated BMCs
# by their pid files, then the BMCs, a `ddc serve` the caller recorded as
# kind "serve" (SIGTERM), dnsmasq, ganesha, rpcbind),
# delete the namespace(s). Safe to call twice, from a trap.
nb_cleanup() {
    local rc=$? kind k pid st ns pidfile
    [ -n "${NB_DIR:-}" ] && [ -f "$NB_DIR/pids" ] || return $rc
    # A BMC's VM first: ipmi_sim leaves it running when it is stopped.
    while read -r k pidfile _; do
        [ "$k" = bmc-vm ] || continue
        pid=$(cat "$pidfile" 2>/dev/null) || continue
        # only a QEMU of ours: its command line names that pid file
        if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "-pidfile $pidfile "; then
            _nb_stop "$pid" 50
        fi
    done <"$NB_DIR/pids"
    for kind in qemu-bios qemu-uefi ipmi_sim serve dnsmasq ganesha rpcbind; do
        while read -r k pid st; do
            [ "$k" = "$kind" ] || continue
            # skip a PID that now belongs to another process
            [ -n "$st" ] && [ "$(_nb_starttime "$pid")" != "$st" ] && continue
            _nb_stop "$pid" 50
        done <"$NB_DIR/pids"
    done
    : >"$NB_DIR/pids"
    while read -r ns; do
        [ -n "$ns" ] || continue
        # anything still inside (a child the recorded processes left)
        _nb_kill_netns_procs "$ns"
        ip netns del "$ns" 2>/dev/null || true
    done <"$NB_DIR/netns"
    : >"$NB_DIR/netns"
    return $rc
}

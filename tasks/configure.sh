#!/bin/sh
# ddc: chroot
# ddc: root
# Turn the installed image into a diskless node: the root is NFS (read-only)
# under a tmpfs overlay, both set up by the initramfs. Idempotent.
set -eu

R=${DDC_ROOTFS:?}
say() { echo "ddc: $*"; }
# put FILE [MODE]: write stdin to a new FILE (never rewrite an inode in place:
# the image may share files by hard links with an earlier step's output).
put() { rm -f "$1"; cat >"$1"; chmod "${2:-644}" "$1"; }

# 1. The image's own files, owners and modes kept. tar rather than cp -a:
#    it follows the image's directory symlinks (/lib -> usr/lib with merged
#    /usr) instead of failing on them, and leaves existing directories' modes
#    alone (--no-overwrite-dir), so the tree's root cannot change the image's /.
#    The extracting tar runs inside the image: an absolute symlink there
#    (/var/run -> /run) must lead into the image, never into the master.
if [ -n "${DDC_FILES:-}" ]; then
    say "copying $DDC_FILES over the image"
    tar -C "$DDC_FILES" -cf - . |
        chroot "$R" tar -C / -xpf - --numeric-owner --keep-directory-symlink --no-overwrite-dir
fi

# 1b. Every folder below is written through on the master: one that is a
#     symbolic link (from the files tree or a package) could lead out of the
#     image, to the master's own /etc. Refuse rather than follow it.
for d in etc etc/systemd etc/systemd/journald.conf.d etc/systemd/system \
    etc/systemd/system/multi-user.target.wants etc/systemd/system/timers.target.wants \
    etc/network etc/NetworkManager etc/NetworkManager/conf.d etc/rsyslog.d etc/default \
    root root/.ssh usr usr/lib usr/lib/ddc var var/lib var/lib/dbus ro rw; do
    if [ -L "$R/$d" ]; then
        echo "ddc: error: $R/$d is a symbolic link (to $(readlink "$R/$d")): configure writes there on the master and does not follow links out of the image; make /$d a real directory in the image (check its files tree and packages)" >&2
        exit 1
    fi
done

# 2. fstab: no root line (the initramfs mounts /), volatile /tmp and /var/tmp.
say "writing /etc/fstab"
put "$R/etc/fstab" <<'EOF'
# ddc: / is the NFS root (read-only) under a tmpfs overlay, mounted by the initramfs.
tmpfs  /tmp      tmpfs  nosuid,nodev,mode=1777  0 0
tmpfs  /var/tmp  tmpfs  nosuid,nodev,mode=1777  0 0
EOF

# 3. Identity: the name comes from DHCP; an empty (not absent) machine-id makes
#    systemd generate one per node at boot (machine-id(5)); dbus's copy must
#    not hold a shared ID either.
say "emptying /etc/hostname and /etc/machine-id"
put "$R/etc/hostname" </dev/null
put "$R/etc/machine-id" 444 </dev/null
if [ -d "$R/var/lib/dbus" ]; then ln -sfn /etc/machine-id "$R/var/lib/dbus/machine-id"; fi
ln -sfn /proc/self/mounts "$R/etc/mtab"

# 4. The journal lives in RAM.
say "journald Storage=volatile"
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' | put "$R/etc/systemd/journald.conf.d/ddc.conf"

# 5. The NFS interface is configured by the initramfs; nothing may touch it
#    (a DHCP release or an "ip addr flush" would hang the root filesystem).
say "network managers keep off the interfaces set up by the initramfs"
mkdir -p "$R/etc/network"
put "$R/etc/network/interfaces" <<'EOF'
# ddc: only lo; the boot interface is configured by the initramfs (NFS root).
auto lo
iface lo inet loopback
EOF
if [ -d "$R/etc/NetworkManager" ]; then
    mkdir -p "$R/etc/NetworkManager/conf.d"
    # all devices; a later conf.d file from $DDC_FILES can narrow this
    printf '[keyfile]\nunmanaged-devices=*\n' | put "$R/etc/NetworkManager/conf.d/ddc-unmanaged.conf"
fi
# systemd-networkd only manages links a .network file matches; Debian ships
# none for real NICs. Warn about any that could grab the boot interface.
for f in "$R"/etc/systemd/network/*.network; do
    [ -e "$f" ] && say "WARNING: $f may reconfigure the NFS interface (use KeepConfiguration=yes)"
done

# 6. Root access.
if [ -n "${DDC_ROOT_PASSWORD_HASH:-}" ]; then
    say "setting root's password hash"
    chroot "$R" usermod -p "$DDC_ROOT_PASSWORD_HASH" root
fi
if [ -n "${DDC_SSH_AUTHORIZED_KEYS:-}" ]; then
    say "writing /root/.ssh/authorized_keys"
    [ -x "$R/usr/sbin/sshd" ] || say "note: openssh-server is not in the image"
    install -d -m 700 -o 0 -g 0 "$R/root/.ssh"
    printf '%s\n' "$DDC_SSH_AUTHORIZED_KEYS" | put "$R/root/.ssh/authorized_keys" 600
    chown 0:0 "$R/root/.ssh/authorized_keys"
fi

# 6b. SSH host keys: the same in every generation of the image, kept in
#     $DDC_SSH_HOST_KEYS. configure/ssh-host-keys copies them without
#     following any link (the image's /etc/ssh could point at the master's).
sh "$DDC_TASKS_DIR/configure/ssh-host-keys"

# 7. Logs to the master.
if [ "${DDC_SYSLOG:-0}" = 1 ]; then
    if [ -x "$R/usr/sbin/rsyslogd" ]; then
        # "& stop" ends the processing of every message here: rsyslog.conf's
        # own rules (the local files under /var/log, in RAM on a node) come
        # after its rsyslog.d include and never see them.
        say "rsyslog forwards everything to $DDC_MASTER:514/udp and stops local logging"
        mkdir -p "$R/etc/rsyslog.d"
        printf '# ddc: send the node logs to the master, keep none locally\n*.* @%s:514\n& stop\n' "$DDC_MASTER" |
            put "$R/etc/rsyslog.d/ddc-remote.conf"
    else
        say "DDC_SYSLOG=1 but rsyslog is not installed: skipping remote logging (add rsyslog to the packages)"
    fi
else
    rm -f "$R/etc/rsyslog.d/ddc-remote.conf"
fi

# 8. NIS client (the ypbind package itself comes from the package list).
if [ -n "${DDC_NIS_DOMAIN:-}" ]; then
    say "NIS domain $DDC_NIS_DOMAIN, server $DDC_MASTER"
    echo "$DDC_NIS_DOMAIN" | put "$R/etc/defaultdomain"
    printf 'domain %s server %s\n' "$DDC_NIS_DOMAIN" "$DDC_MASTER" | put "$R/etc/yp.conf"
fi

# 9. The report to the master's `ddc serve` (server.http): at boot, then every
#    server.heartbeat seconds. bash and the kernel's files only (no package).
HOST=${DDC_HTTP%:*}
PORT=${DDC_HTTP##*:}
if [ -d "$R/etc/systemd/system" ] && [ -x "$R/bin/bash" ]; then
    say "ddc-report.timer reports to $DDC_HTTP every $DDC_HEARTBEAT s"
    mkdir -p "$R/usr/lib/ddc"
    put "$R/usr/lib/ddc/report" 755 <"$DDC_TASKS_DIR/configure/ddc-report"
    printf '# Written by ddc (server.http): where ddc-report sends its reports.\nREPORT_HOST=%s\nREPORT_PORT=%s\n' \
        "$HOST" "$PORT" | put "$R/etc/default/ddc-report"
    put "$R/etc/systemd/system/ddc-report.service" <"$DDC_TASKS_DIR/configure/ddc-report.service"
    put "$R/etc/systemd/system/ddc-report-booted.service" <"$DDC_TASKS_DIR/configure/ddc-report-booted.service"
    put "$R/etc/systemd/system/ddc-report.timer" <<EOF
# Written by ddc (server.heartbeat): run ddc-report.service every $DDC_HEARTBEAT s.
[Unit]
Description=ddc: report this node to the master every $DDC_HEARTBEAT s

[Timer]
OnBootSec=$DDC_HEARTBEAT
OnUnitActiveSec=$DDC_HEARTBEAT
AccuracySec=1s

[Install]
WantedBy=timers.target
EOF
    mkdir -p "$R/etc/systemd/system/multi-user.target.wants" "$R/etc/systemd/system/timers.target.wants"
    ln -sfn ../ddc-report.service "$R/etc/systemd/system/multi-user.target.wants/ddc-report.service"
    ln -sfn ../ddc-report-booted.service "$R/etc/systemd/system/multi-user.target.wants/ddc-report-booted.service"
    ln -sfn ../ddc-report.timer "$R/etc/systemd/system/timers.target.wants/ddc-report.timer"
else
    say "no systemd or bash in the image: no ddc-report unit (ddc status will not see these nodes)"
fi

# 10. Mount points the initramfs hook moves the overlay's layers to.
mkdir -p "$R/ro" "$R/rw"
say "configure done"

#!/bin/sh
# ddc: root
# Bootstrap a minimal Debian ($DDC_SUITE/$DDC_ARCH) into the empty $DDC_ROOTFS
# with $DDC_BOOTSTRAPPER, keeping the downloaded .debs in $DDC_PKG_CACHE.
# The cache is one flat folder of pool-named files (name_version_arch.deb,
# ':' written %3a): debootstrap, mmdebstrap and apt all use that naming and
# all verify a cached file against the index checksums before using it, so
# reusing it is safe; only the indexes are downloaded again.
set -eu

: "${DDC_ROOTFS:?}" "${DDC_SUITE:?}" "${DDC_ARCH:?}" "${DDC_PKG_CACHE:?}"
# SOURCE_DATE_EPOCH is empty when ddc derives it from the Release files this
# step fetches (it reads them from /var/lib/apt/lists after the step, so
# mmdebstrap keeps them: --skip=cleanup/apt/lists); tools must not see "".
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then unset SOURCE_DATE_EPOCH; fi
# A snapshot of the archive serves Release files whose Valid-Until is past.
set --
if [ -n "${DDC_SNAPSHOT:-}" ]; then
    echo "ddc: mirror pinned to the snapshot $DDC_SNAPSHOT (Valid-Until not checked)"
    set -- --aptopt='Acquire::Check-Valid-Until "false"'
fi
mkdir -p "$DDC_PKG_CACHE"
export DDC_PKG_CACHE                    # read by the mmdebstrap hooks below
# Builds sharing the cache take turns (two writers of one .deb would clash).
exec 9>"$DDC_PKG_CACHE/.ddc-lock"
flock 9

echo "ddc: $DDC_BOOTSTRAPPER $DDC_SUITE/$DDC_ARCH -> $DDC_ROOTFS (mirror: ${DDC_MIRROR:-default}, cache: $DDC_PKG_CACHE)"
case "$DDC_BOOTSTRAPPER" in
debootstrap)
    # --cache-dir: looks up each .deb there first, downloads it there if missing.
    # shellcheck disable=SC2086  # empty mirror must vanish
    debootstrap --variant=minbase --arch="$DDC_ARCH" \
        --cache-dir="$DDC_PKG_CACHE" \
        "$DDC_SUITE" "$DDC_ROOTFS" ${DDC_MIRROR:+"$DDC_MIRROR"}
    ;;
mmdebstrap)
    # No cache option: pre-seed /var/cache/apt/archives (hard links when the
    # cache is on the same filesystem) so apt finds the files, and copy the new
    # ones back before mmdebstrap's final cleanup empties that folder.
    # essential/unlink would delete the essential .debs before we copy them out.
    # The hooks run on the host with the rootfs as $1 and our environment.
    # maybe-merged-usr: merge /usr like debootstrap (usr-is-merged) instead of
    # installing usrmerge, which drags perl in: same package set as debootstrap.
    hooks=/usr/share/mmdebstrap/hooks/maybe-merged-usr
    if [ -d "$hooks" ]; then set -- "$@" --hook-dir="$hooks"; fi
    mmdebstrap --variant=minbase --arch="$DDC_ARCH" --skip=essential/unlink \
        --skip=cleanup/apt/lists "$@" \
        --setup-hook='a="$1/var/cache/apt/archives"; mkdir -p "$a";
            find "$DDC_PKG_CACHE" -maxdepth 1 -name "*.deb" -exec cp -l -t "$a" {} + 2>/dev/null ||
            find "$DDC_PKG_CACHE" -maxdepth 1 -name "*.deb" -exec cp -f -t "$a" {} +' \
        --customize-hook='find "$1/var/cache/apt/archives" -maxdepth 1 -name "*.deb" \
            -exec cp -n -t "$DDC_PKG_CACHE" {} +' \
        "$DDC_SUITE" "$DDC_ROOTFS" ${DDC_MIRROR:+"$DDC_MIRROR"}
    ;;
*)
    echo "ddc: unknown DDC_BOOTSTRAPPER '$DDC_BOOTSTRAPPER'" >&2
    exit 1
    ;;
esac
echo "ddc: bootstrap done, $(ls "$DDC_PKG_CACHE" | grep -c '\.deb$') .debs in cache"

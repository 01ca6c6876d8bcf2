#!/usr/bin/env bash
# Build (once, cached) a minimal Debian trixie root with systemd as a tarball,
# with mmdebstrap from Debian's archive and the trixie archive key shipped in
# Debian 12's debian-archive-keyring. Nothing touches the machine's own apt
# configuration: mmdebstrap runs apt with its own.
#
# usage: debian-root.sh CACHE_DIR   prints the tarball's path
# The tarball is named by a hash of this script, so changing the package list
# builds a new one. SOURCE_DATE_EPOCH fixes every timestamp mmdebstrap sets.
set -euo pipefail
# systemd-boot brings systemd-bless-boot; e2fsprogs, dosfstools, mtools and
# fdisk let the running system run `cfsboot install` itself.
cache=$(realpath -m "$1")
packages=systemd,systemd-sysv,systemd-boot,e2fsprogs,dosfstools,mtools,fdisk,udev,dbus,util-linux,mount,kmod,libtss2-esys-3.0.2-0t64,libtss2-rc0t64,libtss2-mu-4.0.1-0t64,libtss2-tcti-device0t64
key=$(sha256sum "$0" | cut -c1-16)
out=$cache/debian-trixie-$key.tar
if [ ! -s "$out" ]; then
  mkdir -p "$cache"
  SOURCE_DATE_EPOCH=1735689600 mmdebstrap --quiet --format=tar --variant=minbase --include="$packages" \
    --keyring=/usr/share/keyrings/debian-archive-trixie-stable.gpg \
    trixie "$out.tmp" http://deb.debian.org/debian >&2
  mv "$out.tmp" "$out"
  # Tarballs of earlier package lists are never read again.
  find "$cache" -maxdepth 1 -name 'debian-trixie-*.tar' ! -name "${out##*/}" -delete
fi
echo "$out"

#!/usr/bin/env bash
# Build (once, cached) the Debian roots the bench compares against; the
# bench runs their tools with chroot and bind-mounts its tree in. Nothing
# here is committed, nothing touches the machine's apt configuration.
#
# usage: tools-root.sh CACHE_DIR composefs
#          mkcomposefs (the `composefs` package: in Debian unstable, not in
#          12 nor in trixie)
#        tools-root.sh CACHE_DIR initramfs-tools|dracut KERNEL_DEB
#          the Debian trixie root of qemu-tests/debian-root.sh with that
#          initrd builder and the VM kernel's own .deb installed, so
#          /boot/initrd.img-* is the initrd Debian boots that kernel with
# prints the root directory, named by a hash of this script and its
# arguments (changing either builds a new one).
set -euo pipefail
cache=$(realpath -m "$1")
kind=$2
hooks=()
case $kind in
composefs)
  # The clock here may be past unstable's Release Valid-Until.
  suite=unstable packages=composefs
  hooks=(--aptopt='Acquire::Check-Valid-Until "false"') ;;
initramfs-tools|dracut)
  kernel_deb=$(realpath "$3")
  suite=trixie
  packages=systemd,systemd-sysv,udev,dbus,util-linux,mount,kmod,e2fsprogs,zstd,linux-base,$kind
  # The kernel's postinst runs the builder's hook: /boot/initrd.img-*.
  hooks=(--customize-hook="copy-in $kernel_deb /tmp"
    --customize-hook="chroot \"\$1\" dpkg -i /tmp/$(basename "$kernel_deb")"
    --customize-hook="rm \"\$1/tmp/$(basename "$kernel_deb")\"") ;;
*) echo "tools-root.sh: unknown kind $kind" >&2; exit 2 ;;
esac
key=$( (cat "$0"; echo "$*") | sha256sum | cut -c1-16)
out=$cache/root-$kind-$key
if [ ! -e "$out/.done" ]; then
  rm -rf "$out" "$out.tmp"
  mkdir -p "$cache"
  SOURCE_DATE_EPOCH=1735689600 mmdebstrap --quiet --variant=minbase --include="$packages" "${hooks[@]}" \
    "$suite" "$out.tmp" http://deb.debian.org/debian >&2
  touch "$out.tmp/.done"
  mv "$out.tmp" "$out"
fi
echo "$out"

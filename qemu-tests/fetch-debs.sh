#!/usr/bin/env bash
# Fetch Debian trixie packages (the VM kernel, the systemd stub) into a cache
# directory WITHOUT touching the machine's own apt sources: a private sources
# list and private state dirs, then `apt-get download` and `dpkg-deb -x`.
# Adding trixie to the host's sources would upgrade libc on the next install.
#
# usage: fetch-debs.sh CACHE_DIR PACKAGE_PATTERN...
#   PACKAGE_PATTERN is an apt package name or a regex resolved to the newest
#   matching name (e.g. 'linux-image-6\.12\..*-cloud-amd64$').
# Each package is unpacked into CACHE_DIR/root/<package>/ and its resolved
# name is printed, one per line.
set -euo pipefail
cache=$(realpath -m "$1"); shift
apt_dir=$cache/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$cache/debs" "$cache/root"
cat >"$apt_dir/sources.list" <<SRC
deb http://deb.debian.org/debian trixie main
SRC
opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=-"
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
      -o "Dir::State::status=/dev/null" -o "APT::Get::List-Cleanup=0"
      -o "Debug::NoLocking=1")
mkdir -p "$apt_dir/cache"
# Refresh the private lists at most once a day.
if [ -z "$(find "$apt_dir/lists" -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
  apt-get "${opts[@]}" update -qq >&2
fi
for pat in "$@"; do
  name=$(apt-cache "${opts[@]}" pkgnames | grep -E "^${pat}" | sort -V | tail -1)
  [ -n "$name" ] || { echo "fetch-debs: no trixie package matches '$pat'" >&2; exit 1; }
  if [ ! -d "$cache/root/$name" ]; then
    (cd "$cache/debs" && apt-get "${opts[@]}" download -qq "$name" >&2)
    deb=$(ls -t "$cache/debs/${name}_"*.deb | head -1)
    rm -rf "$cache/root/$name.tmp"
    dpkg-deb -x "$deb" "$cache/root/$name.tmp"
    mv "$cache/root/$name.tmp" "$cache/root/$name"
  fi
  echo "$name"
done

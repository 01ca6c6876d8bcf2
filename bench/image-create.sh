#!/usr/bin/env bash
# make bench: `cfsboot image create` on a 20,000-file / 1 GiB tree, against
# the single-core SHA-256 limit (openssl dgst -sha256 over the same bytes)
# and the tools a user would otherwise run (fsverity digest per file;
# mkcomposefs when one is on PATH). Warm page cache for every tool.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/bench
mkdir -p "$cache"
go build -o "$cache/cfsboot" ./cmd/cfsboot
if [ ! -f "$cache/tree.done" ]; then
	rm -rf "$cache/tree"
	go run ./bench/gentree "$cache/tree"
	touch "$cache/tree.done"
fi
bytes=$(find "$cache/tree" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
files=$(find "$cache/tree" -type f | wc -l)
cat "$cache"/tree/*/* > /dev/null # warm the cache

seconds() { # run a command, print its wall time in seconds
	local start end
	start=$(date +%s.%N)
	"$@" > /dev/null
	end=$(date +%s.%N)
	echo "$end - $start" | bc -l
}
sha() { find "$cache/tree" -type f -print0 | xargs -0 openssl dgst -sha256; }
fsv() { find "$cache/tree" -type f -print0 | xargs -0 fsverity digest; }
create_store() { rm -rf "$cache/store"; "$cache/cfsboot" image create "$cache/tree" --store "$cache/store"; }
create_digest() { "$cache/cfsboot" image create "$cache/tree"; }

declare -A t
t[openssl]=$(seconds sha)
t[fsverity]=$(seconds fsv)
t[create]=$(seconds create_digest)
t[store]=$(seconds create_store)
if command -v mkcomposefs > /dev/null; then
	mk() { rm -rf "$cache/mstore"; mkcomposefs --digest-store="$cache/mstore" "$cache/tree" "$cache/m.img"; }
	t[mkcomposefs]=$(seconds mk)
fi
printf '\n%d files, %d bytes, %d cores\n\n' "$files" "$bytes" "$(nproc)"
printf '%-52s %8s %10s %14s\n' "what" "seconds" "MB/s" "vs openssl"
row() { printf '%-52s %8.2f %10.0f %13.2fx\n' "$1" "$2" "$(echo "$bytes / $2 / 1000000" | bc -l)" "$(echo "${t[openssl]} / $2" | bc -l)"; }
row "openssl dgst -sha256 (one core, the SHA-256 limit)" "${t[openssl]}"
row "fsverity digest, every file" "${t[fsverity]}"
row "cfsboot image create (digest only)" "${t[create]}"
row "cfsboot image create --store (copy into store)" "${t[store]}"
[ -n "${t[mkcomposefs]:-}" ] && row "mkcomposefs --digest-store" "${t[mkcomposefs]}"
echo

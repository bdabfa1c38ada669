#!/usr/bin/env bash
# Same-run comparison of `flotilla sort local` and `flotilla sort cluster`
# against GNU sort on the same data: gensort-layout ASCII records (100 bytes,
# ending in "\r\n", so LC_ALL=C sort orders the lines by their 10-byte key),
# input in the page cache, outputs removed before every run. Runs the
# contenders interleaved (GNU, local, cluster, GNU, ...) for ROUNDS rounds and
# prints each run's MB/s (input bytes / wall seconds), the medians and the
# median ratios ours/GNU. Our outputs are fsynced before their rename (GNU's
# are not); the local --no-sync column shows what that costs.
#
#   bash bench/sort-vs-gnu.sh [ROUNDS] [SIZE] [NODES]
#   bash bench/sort-vs-gnu.sh 3 1GB 4        (the defaults)
#
# Needs about 5×SIZE of free disk under ${TMPDIR:-/tmp}.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
size=${2:-1GB}
nodes=${3:-4}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sort-vs-gnu.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
go build -o "$scratch/flotilla" ./cmd/flotilla
fl="$scratch/flotilla"
in="$scratch/in.txt"
"$fl" sort gen --ascii --seed 1 "$in" "$size" >/dev/null
bytes=$(stat -c %s "$in")
cat "$in" >/dev/null # into the page cache

# timed CMD...: removes the outputs, runs CMD and prints its MB/s.
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN{printf "%.1f", b/s/1e6}'; }
timed() {
  rm -rf "$scratch/gnu.txt" "$scratch/local.txt" "$scratch/parts"
  sync
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  mbps "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
}
gnu()     { LC_ALL=C sort -S 4G --parallel=2 -o "$scratch/gnu.txt" "$in"; }
local_()  { "$fl" sort local "$in" "$scratch/local.txt"; }
nosync()  { "$fl" sort local --no-sync "$in" "$scratch/local.txt"; }
cluster() { "$fl" sort cluster --progress 0 --nodes "$nodes" "$in" "$scratch/parts"; }

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

# One checked round first: our outputs hold the input's records, sorted,
# and local's output is byte-identical to GNU's.
gnu && local_ >/dev/null && cluster >/dev/null
"$fl" sort validate --input "$in" "$scratch/local.txt" >/dev/null
"$fl" sort validate --input "$in" "$scratch"/parts/part-* >/dev/null
cmp -s "$scratch/gnu.txt" "$scratch/local.txt" && echo "check: outputs valid; local output identical to GNU sort's" ||
  echo "check: outputs valid; local output differs from GNU sort's (equal keys ordered differently)"

g=() l=() n=() c=()
for r in $(seq "$rounds"); do
  g+=("$(timed gnu)")
  l+=("$(timed local_)")
  n+=("$(timed nosync)")
  c+=("$(timed cluster)")
  echo "round $r: gnu ${g[-1]} MB/s, local ${l[-1]} MB/s, local --no-sync ${n[-1]} MB/s, cluster --nodes $nodes ${c[-1]} MB/s"
done
mg=$(median "${g[@]}") ml=$(median "${l[@]}") mn=$(median "${n[@]}") mc=$(median "${c[@]}")
rl=() rn=() rc=()
for i in "${!g[@]}"; do
  rl+=("$(ratio "${l[i]}" "${g[i]}")") rn+=("$(ratio "${n[i]}" "${g[i]}")") rc+=("$(ratio "${c[i]}" "${g[i]}")")
done
echo "size $bytes bytes, $rounds rounds, medians:"
echo "  GNU sort (LC_ALL=C sort -S 4G --parallel=2)  $mg MB/s"
echo "  flotilla sort local                           $ml MB/s   ratio $(median "${rl[@]}")"
echo "  flotilla sort local --no-sync                 $mn MB/s   ratio $(median "${rn[@]}")"
echo "  flotilla sort cluster --nodes $nodes              $mc MB/s   ratio $(median "${rc[@]}")"

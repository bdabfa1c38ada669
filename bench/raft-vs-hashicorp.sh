#!/usr/bin/env bash
# Same-run comparison of replicated proposals: flotilla's `bench raft` against
# hashicorp/raft v1.7.3 with raft-wal v0.4.0, both as 3 nodes in one process
# over loopback TCP, fsync on, 256-byte commands, C concurrent proposers on
# the leader. Interleaves the two (A B A B ...) for each client count and
# prints the median proposals/s of each and the ratio ours/hashicorp.
#
#   bash bench/raft-vs-hashicorp.sh [ROUNDS] [DURATION] [CLIENTS...]
#   bash bench/raft-vs-hashicorp.sh 3 10s 1 64 256        (the defaults)
#
# The hashicorp harness (bench/hashicorp/main.go) is built in a scratch module
# outside this repository's go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-10s}
shift $(( $# > 2 ? 2 : $# ))
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(1 64 256)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp bench/hashicorp/main.go "$scratch/main.go"
sed -i '/^\/\/go:build ignore/d' "$scratch/main.go"
printf 'module hcbench\n\ngo 1.26\n' >"$scratch/go.mod"
(cd "$scratch" && GOFLAGS=-mod=mod go get github.com/hashicorp/raft@v1.7.3 github.com/hashicorp/raft-wal@v0.4.0 github.com/hashicorp/go-hclog >/dev/null 2>&1 &&
  GOFLAGS=-mod=mod go build -o hcbench .)
go build -o "$scratch/flotilla" ./cmd/flotilla

rate() { awk '/^throughput/ {print $2}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for c in "${clients[@]}"; do
  hc=() ours=()
  for r in $(seq "$rounds"); do
    hc+=("$("$scratch/hcbench" --clients "$c" --duration "$duration" | rate)")
    ours+=("$("$scratch/flotilla" bench raft --clients "$c" --duration "$duration" | rate)")
    echo "clients $c round $r: hashicorp ${hc[-1]}/s, flotilla ${ours[-1]}/s"
  done
  mh=$(median "${hc[@]}") mo=$(median "${ours[@]}")
  echo "clients $c median: hashicorp/raft $mh proposals/s, flotilla $mo proposals/s, ratio ours/hashicorp $(awk -v a="$mo" -v b="$mh" 'BEGIN{printf "%.2f", a/b}')"
done

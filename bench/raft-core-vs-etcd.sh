#!/usr/bin/env bash
# Compares the Raft core's 3-node in-memory proposal benchmark with
# etcd-io/raft's BenchmarkProposal3Nodes, interleaved in one run (A B A B ...),
# and prints the median of each and the ratio ours/etcd.
#
#   bash bench/raft-core-vs-etcd.sh [ROUNDS]      (default 5)
#
# etcd's benchmark is fetched through the Go module proxy into a scratch
# module outside this repository; nothing of it is committed here.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
etcd_version=${ETCD_RAFT_VERSION:-v3.7.0}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cat >"$scratch/go.mod" <<MOD
module scratch
go 1.26
MOD
cat >"$scratch/tools.go" <<'GO'
//go:build tools

package scratch

import _ "go.etcd.io/raft/v3"
GO
(cd "$scratch" && GOFLAGS=-mod=mod go get "go.etcd.io/raft/v3@$etcd_version" >/dev/null 2>&1)
(cd "$scratch" && GOFLAGS=-mod=mod go test -c -o etcd.test go.etcd.io/raft/v3/rafttest)
go test -c -o "$scratch/ours.test" ./raft

ns() { grep -E '^Benchmark' | awk '{for (i=1;i<=NF;i++) if ($(i+1)=="ns/op") print $i}'; }
ours=() etcd=() pipe=()
for r in $(seq "$rounds"); do
  etcd+=("$("$scratch/etcd.test" -test.run XXX -test.bench 'Proposal3Nodes$' -test.benchtime 2s 2>/dev/null | ns)")
  ours+=("$("$scratch/ours.test" -test.run XXX -test.bench 'Proposal3Nodes$' -test.benchtime 2s | ns)")
  pipe+=("$("$scratch/ours.test" -test.run XXX -test.bench 'Proposal3NodesPipelined$' -test.benchtime 2s | ns)")
  echo "round $r: etcd ${etcd[-1]} ns/op, ours ${ours[-1]} ns/op, ours pipelined ${pipe[-1]} ns/op"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
me=$(median "${etcd[@]}") mo=$(median "${ours[@]}") mp=$(median "${pipe[@]}")
echo "median: etcd-io/raft $etcd_version BenchmarkProposal3Nodes $me ns/op"
echo "median: flotilla BenchmarkProposal3Nodes $mo ns/op (ratio ours/etcd $(awk -v a="$mo" -v b="$me" 'BEGIN{printf "%.2f", a/b}'))"
echo "median: flotilla BenchmarkProposal3NodesPipelined $mp ns/op (ratio ours/etcd $(awk -v a="$mp" -v b="$me" 'BEGIN{printf "%.2f", a/b}'))"

#!/usr/bin/env bash
# Same-run comparison of the replicated KV with etcd: 3 etcd members and a
# 3-member flotilla cluster (flotilla up), all on 127.0.0.1 with their data
# on the same disk, fsync on, driven with the same load shape: etcd's own
# benchmark tool (go.etcd.io/etcd/v3 v3.5.17 tools/benchmark, built in a
# scratch module outside this repository's go.mod) against etcd, flotilla
# bench kv against flotilla. The two alternate (etcd, flotilla, etcd, ...)
# for ROUNDS rounds of each workload, and the script prints the medians and
# the median of the per-round ratios ours/etcd.
#
#   bash bench/compare-etcd.sh [ROUNDS] [WORKLOAD...]
#   bash bench/compare-etcd.sh 3 put1 put64 put1000 get1      (the defaults)
#
# Workloads (8-byte keys, 256-byte values, sequential keys over 100,000):
#   put1     1 client, 1 connection, 4,000 puts
#   put64    64 clients, 8 connections, 40,000 puts
#   put1000  1000 clients, 100 connections, 100,000 puts
#   get1     1 client, 1 connection, 10,000 linearizable gets of one key
# SCALE=0.5 halves every total. etcd comes from Debian's etcd-server package
# (unpacked into /opt/peers if it is not on PATH; no service is started).
# DATA_DIR (default: a temporary directory on /tmp) holds both clusters' data.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift $(( $# > 0 ? 1 : 0 ))
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(put1 put64 put1000 get1)
scale=${SCALE:-1}

# etcd: on PATH, else unpacked from the Debian package.
etcd=$(command -v etcd || true)
if [ -z "$etcd" ]; then
  etcd=/opt/peers/usr/bin/etcd
  if [ ! -x "$etcd" ]; then
    echo "unpacking Debian's etcd-server into /opt/peers" >&2
    deb=$(mktemp -d)
    (cd "$deb" && apt-get update >/dev/null && apt-get download etcd-server >/dev/null)
    dpkg -x "$deb"/etcd-server_*.deb /opt/peers
    rm -rf "$deb"
  fi
fi

# etcd's benchmark tool, built once into a cache.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/flotilla-bench
benchtool=$cache/etcd-benchmark
if [ ! -x "$benchtool" ]; then
  echo "building etcd's benchmark tool (v3.5.17) in a scratch module" >&2
  mod=$(mktemp -d)
  printf 'module etcdbench\n\ngo 1.26\n\nrequire go.etcd.io/etcd/v3 v3.5.17\n' >"$mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/v3/tools/benchmark"\n' >"$mod/tools.go"
  mkdir -p "$cache"
  (cd "$mod" && GOFLAGS=-mod=mod go build -o "$benchtool" go.etcd.io/etcd/v3/tools/benchmark)
  rm -rf "$mod"
fi

work=${DATA_DIR:-$(mktemp -d)}
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${DATA_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/flotilla" ./cmd/flotilla

# 3 etcd members on ports base+1..3 (clients) and base+11..13 (peers).
base=$(( 20000 + RANDOM % 20000 ))
cluster="" eps=""
for i in 1 2 3; do
  cluster+="${cluster:+,}e$i=http://127.0.0.1:$((base + 10 + i))"
  eps+="${eps:+,}127.0.0.1:$((base + i))"
done
for i in 1 2 3; do
  "$etcd" --name "e$i" --data-dir "$work/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$((base + i))" --advertise-client-urls "http://127.0.0.1:$((base + i))" \
    --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token flotilla-bench \
    --log-level error >"$work/etcd$i.log" 2>&1 &
  pids+=($!)
done
"$work/flotilla" up --nodes 3 --data-dir "$work/flotilla-data" >"$work/up.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/flotilla-data/endpoints" ] && break; sleep 0.1; done
"$work/flotilla" kv put --data-dir "$work/flotilla-data" --timeout 20s warmup x >/dev/null
for _ in $(seq 100); do
  # The key the get workload reads: "00000000" with a 256-byte value.
  curl -sf -X POST "http://127.0.0.1:$((base + 1))/v3/kv/put" \
    -d "{\"key\":\"MDAwMDAwMDA=\",\"value\":\"$(head -c 256 /dev/zero | tr '\0' a | base64 -w0)\"}" >/dev/null && break
  sleep 0.1
done

total() { awk -v n="$1" -v s="$scale" 'BEGIN{printf "%d", n*s}'; }
# shape WORKLOAD: conns clients total kind
shape() {
  case $1 in
    put1) echo 1 1 "$(total 4000)" put ;;
    put64) echo 8 64 "$(total 40000)" put ;;
    put1000) echo 100 1000 "$(total 100000)" put ;;
    get1) echo 1 1 "$(total 10000)" get ;;
    *) echo "unknown workload $1 (want put1, put64, put1000 or get1)" >&2; exit 2 ;;
  esac
}
# Each prints "requests/s p99_ms".
run_etcd() {
  local conns=$1 clients=$2 n=$3 kind=$4 out
  if [ "$kind" = put ]; then
    out=$("$benchtool" --endpoints "$eps" --target-leader --precise --conns "$conns" --clients "$clients" \
      put --key-size 8 --val-size 256 --sequential-keys --key-space-size 100000 --total "$n" 2>/dev/null)
  else
    out=$("$benchtool" --endpoints "$eps" --target-leader --precise --conns "$conns" --clients "$clients" \
      range 00000000 --consistency l --total "$n" 2>/dev/null)
  fi
  awk '/Requests\/sec:/ {r=$2} /^ *99% in/ {p=$3*1000} END {printf "%.1f %.3f\n", r, p}' <<<"$out"
}
run_ours() {
  local conns=$1 clients=$2 n=$3 kind=$4 out
  out=$("$work/flotilla" bench kv "$kind" --data-dir "$work/flotilla-data" --conns "$conns" --clients "$clients" \
    --key-size 8 --val-size 256 --sequential-keys --key-space-size "$([ "$kind" = put ] && echo 100000 || echo 1)" \
    --consistency l --total "$n" 2>/dev/null)
  awk '/^throughput/ {r=$2} /^p99 / {p=$2} END {printf "%.1f %.3f\n", r, p}' <<<"$out"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "etcd $("$etcd" --version | awk '/etcd Version/ {print $3}'), flotilla $(git rev-parse --short HEAD), $(nproc) CPUs, data in $work"
summary=()
for w in "${workloads[@]}"; do
  read -r conns clients n kind <<<"$(shape "$w")"
  er=() ep=() or=() op=() rr=() pr=()
  for r in $(seq "$rounds"); do
    read -r a b <<<"$(run_etcd "$conns" "$clients" "$n" "$kind")"
    read -r c d <<<"$(run_ours "$conns" "$clients" "$n" "$kind")"
    er+=("$a") ep+=("$b") or+=("$c") op+=("$d")
    rr+=("$(awk -v x="$c" -v y="$a" 'BEGIN{printf "%.3f", x/y}')")
    pr+=("$(awk -v x="$d" -v y="$b" 'BEGIN{printf "%.3f", x/y}')")
    echo "$w round $r: etcd $a/s p99 $b ms, flotilla $c/s p99 $d ms"
  done
  summary+=("$(printf '%-8s %12s %10s %12s %10s %9s %9s' "$w" "$(median "${er[@]}")" "$(median "${ep[@]}")" \
    "$(median "${or[@]}")" "$(median "${op[@]}")" "$(median "${rr[@]}")" "$(median "${pr[@]}")")")
done
echo
echo "medians of $rounds rounds; ratios are medians of the per-round ratios ours/etcd"
printf '%-8s %12s %10s %12s %10s %9s %9s\n' workload "etcd req/s" "etcd p99" "ours req/s" "ours p99" "req/s" "p99"
printf '%s\n' "${summary[@]}"

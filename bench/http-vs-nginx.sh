#!/usr/bin/env bash
# Same-run comparison of static file serving: flotilla's TritonHTTP server
# (`flotilla http serve`) against nginx 1.22 (Debian, one worker, sendfile on,
# access_log off). Both serve the same files from the same directory on
# 127.0.0.1, pinned to CPU 0; wrk (keep-alive, -t1 -c64) runs pinned to CPU 1.
# For each file size the two are run interleaved (A B A B ...) and the script
# prints the median req/s and p99 of each and the median ratios ours/nginx.
#
#   bash bench/http-vs-nginx.sh [ROUNDS] [DURATION] [SIZES...]
#   bash bench/http-vs-nginx.sh 3 8s 32 1024 16384 1048576     (the defaults)
#
# nginx and wrk come from Debian's packages, downloaded and unpacked (not
# installed) into $PEERS (default /opt/peers/http) when missing. Set
# FLOTILLA_BIN to use a prebuilt binary instead of building ./cmd/flotilla.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-8s}
shift $(($# > 2 ? 2 : $#))
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(32 1024 16384 1048576)
peers=${PEERS:-/opt/peers/http}

if [ ! -x "$peers/root/usr/sbin/nginx" ] || [ ! -x "$peers/root/usr/bin/wrk" ]; then
  mkdir -p "$peers"
  (cd "$peers" &&
    { apt-get download nginx nginx-light wrk libluajit-5.1-2 libluajit-5.1-common >/dev/null 2>&1 ||
      { apt-get update >/dev/null && apt-get download nginx nginx-light wrk libluajit-5.1-2 libluajit-5.1-common >/dev/null; }; } &&
    for f in ./*.deb; do dpkg -x "$f" root; done)
fi
nginx=$peers/root/usr/sbin/nginx
wrk() { LD_LIBRARY_PATH=$peers/root/usr/lib/x86_64-linux-gnu taskset -c 1 "$peers/root/usr/bin/wrk" "$@"; }

scratch=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
bin=${FLOTILLA_BIN:-}
if [ -z "$bin" ]; then
  go build -o "$scratch/flotilla" ./cmd/flotilla
  bin=$scratch/flotilla
fi

www=$scratch/www
mkdir -p "$www" "$scratch/nginx/tmp"
for s in "${sizes[@]}"; do head -c "$s" /dev/urandom >"$www/f$s.bin"; done

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ngport=$(port) ourport=$(port)
cat >"$scratch/nginx/nginx.conf" <<CONF
user root;
worker_processes 1;
daemon off;
pid $scratch/nginx/nginx.pid;
error_log $scratch/nginx/error.log;
events { worker_connections 1024; }
http {
  types { application/octet-stream bin; }
  access_log off;
  sendfile on;
  client_body_temp_path $scratch/nginx/tmp/body;
  proxy_temp_path $scratch/nginx/tmp/proxy;
  fastcgi_temp_path $scratch/nginx/tmp/fastcgi;
  uwsgi_temp_path $scratch/nginx/tmp/uwsgi;
  scgi_temp_path $scratch/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$ngport;
    root $www;
  }
}
CONF
taskset -c 0 "$nginx" -p "$scratch/nginx" -e "$scratch/nginx/error.log" -c "$scratch/nginx/nginx.conf" &
pids+=($!)
taskset -c 0 "$bin" http serve --addr "127.0.0.1:$ourport" --docroot "$www" 2>"$scratch/ours.log" &
pids+=($!)
for p in $ngport $ourport; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$p/f${sizes[0]}.bin" && break; sleep 0.1; done
done

# run PORT FILE -> "req/s p99_ms"
run() {
  wrk -t1 -c64 -d"$duration" --latency "http://127.0.0.1:$1/$2" | awk '
    /Requests\/sec:/ {rps=$2}
    $1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; p99=v}
    END {printf "%s %.3f\n", rps, p99}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf '%-9s %12s %12s %10s %10s %10s %12s\n' size nginx_req/s ours_req/s nginx_p99 ours_p99 req/s_ratio p99_ratio >"$scratch/table"
for s in "${sizes[@]}"; do
  f=f$s.bin nr=() or=() np=() op=() rr=() pr=()
  for r in $(seq "$rounds"); do
    read -r a ap < <(run "$ngport" "$f")
    read -r b bp < <(run "$ourport" "$f")
    nr+=("$a") np+=("$ap") or+=("$b") op+=("$bp")
    rr+=("$(awk -v a="$b" -v b="$a" 'BEGIN{printf "%.3f", a/b}')")
    pr+=("$(awk -v a="$bp" -v b="$ap" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')")
    echo "size $s round $r: nginx $a req/s p99 ${ap}ms, ours $b req/s p99 ${bp}ms"
  done
  printf '%-9s %12s %12s %9sms %9sms %10s %12s\n' "$s" "$(median "${nr[@]}")" "$(median "${or[@]}")" \
    "$(median "${np[@]}")" "$(median "${op[@]}")" "$(median "${rr[@]}")" "$(median "${pr[@]}")" >>"$scratch/table"
done
echo
echo "median of $rounds interleaved rounds, wrk -t1 -c64 -d$duration (keep-alive), servers on CPU 0, wrk on CPU 1"
echo "req/s_ratio = ours/nginx (higher is better); p99_ratio = ours/nginx (lower is better)"
cat "$scratch/table"

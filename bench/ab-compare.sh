#!/usr/bin/env bash
# A/B cost of a hot-path change: two Rampart binaries (before and after), and nginx as the fixed
# reference, proxying the same origin (nginx serving a 612-byte page) under the same wrk load, in
# alternating rounds (A B nginx A B nginx ...) so machine noise falls on all three alike.
#
#   bench/ab-compare.sh BINARY_A BINARY_B [ROUNDS] [DURATION_SECONDS] [CONNECTIONS]
#
# Per round and proxy: requests/s, p99 latency, and proxy CPU microseconds per request (utime +
# stime from /proc over the measured window). Every proxy runs with the defences the peers lack
# turned off (detection, bans, per-address cap), as in proxy-compare.sh. Loopback only.
set -euo pipefail

A=${1:?binary A}
B=${2:?binary B}
ROUNDS=${3:-3}
DURATION=${4:-10}
CONNS=${5:-64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
WORK=$(mktemp -d /tmp/rampart-ab.XXXXXX)
chmod 755 "$WORK"
ORIGIN_PORT=18100
PROXY_PORT=18180
HZ=$(getconf CLK_TCK)
PIDS=()
trap stop_started EXIT
install_missing nginx:nginx-light wrk:wrk
ulimit -n 65536 2>/dev/null || true

start_static_origin "$WORK" $ORIGIN_PORT

bench_proxy_config "$WORK/rampart.yaml" $PROXY_PORT $ORIGIN_PORT
cat > "$WORK/nginx-proxy.conf" <<EOF
worker_processes 2;
pid $WORK/nginx-proxy.pid;
error_log $WORK/proxy-error.log warn;
daemon on;
events { worker_connections 8192; }
http {
  access_log off;
  $(nginx_temp_paths "$WORK/tmp")
  keepalive_requests 100000;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF

run_round() {  # label, pids...
  local label=$1; shift
  wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$PROXY_PORT/" >/dev/null 2>&1 || true
  local before after
  before=$(cpu_ticks "$@")
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$PROXY_PORT/" > "$WORK/out.txt" 2>&1
  after=$(cpu_ticks "$@")
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/out.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/out.txt")
  errors=$(grep -cE "Non-2xx|Socket errors" "$WORK/out.txt" || true)
  awk -v l="$label" -v r="$rps" -v p="$p99" -v t=$((after - before)) -v hz="$HZ" -v d="$DURATION" -v e="$errors" \
    'BEGIN { printf "| %s | %.0f | %s | %.1f |%s\n", l, r, p, (t / hz) * 1e6 / (r * d), (e > 0 ? " errors" : "") }'
}

RAMPART_PID=
start_rampart() {  # binary
  "$1" run --config "$WORK/rampart.yaml" --admin 127.0.0.1:0 --state "$WORK/state-$RANDOM" --log-level warning >/dev/null 2>&1 &
  RAMPART_PID=$!
  PIDS+=("$RAMPART_PID")
  wait_port $PROXY_PORT
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; sleep 0.5; }

echo "| proxy | requests/s | p99 | CPU µs/request |"
echo "|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  start_rampart "$A"; run_round "A $round" "$RAMPART_PID"; stop_pid "$RAMPART_PID"
  start_rampart "$B"; run_round "B $round" "$RAMPART_PID"; stop_pid "$RAMPART_PID"
  nginx -c "$WORK/nginx-proxy.conf"; wait_port $PROXY_PORT
  master=$(cat "$WORK/nginx-proxy.pid")
  # shellcheck disable=SC2046
  run_round "nginx $round" "$master" $(pgrep -P "$master" | tr '\n' ' ')
  kill "$(cat "$WORK/nginx-proxy.pid")"; sleep 0.5
done

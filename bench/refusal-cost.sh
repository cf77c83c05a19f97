#!/usr/bin/env bash
# The cost of saying no: Rampart's CPU per request when it proxies, when it refuses every request
# itself (429 from a rate limit, the per-loop pre-rendered page), when it refuses at routing (421,
# an unknown host: nothing after routing runs) and when it answers from the micro-cache, under the
# same wrk load on keep-alive connections; nginx proxying the same origin as the reference.
# Loopback only.
#
#   bench/refusal-cost.sh [BINARY] [ROUNDS] [DURATION_SECONDS] [CONNECTIONS]
#
# Reports the status answered, requests/s and CPU microseconds per request (utime + stime of the
# proxy's processes over the measured window).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/.build/release/rampart}
ROUNDS=${2:-2}
DURATION=${3:-8}
CONNS=${4:-64}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
WORK=$(mktemp -d /tmp/rampart-refusal.XXXXXX)
chmod 755 "$WORK"
ORIGIN_PORT=18600
PROXY_PORT=18680
HZ=$(getconf CLK_TCK)
PIDS=()
trap stop_started EXIT
install_missing nginx:nginx-light wrk:wrk curl:curl
ulimit -n 65536 2>/dev/null || true
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product rampart >/dev/null)

start_static_origin "$WORK" $ORIGIN_PORT

# One config per way of answering; only the site's keys differ.
site_config() {  # name, hosts, extra site keys
  {
    echo "limits: {max_connections_per_ip: 100000}"
    echo "listeners:"
    echo "  - {address: 127.0.0.1:$PROXY_PORT}"
    echo "bans: {enabled: false}"
    echo "sites:"
    echo "  - name: bench"
    echo "    hosts: [\"$2\"]"
    echo "    origins: [127.0.0.1:$ORIGIN_PORT]"
    echo "    detection: {enabled: false}"
    echo "    health_check: {enabled: false}"
    printf '%s\n' "$3"
  } > "$WORK/$1.yaml"
}
site_config proxied '*' '    rate_limits: []
    cache: {enabled: false}'
site_config limited '*' '    rate_limits: [{name: all, key: ip, rate: 0.001, burst: 1}]
    cache: {enabled: false}'
site_config unrouted 'other.example' '    rate_limits: []
    cache: {enabled: false}'
site_config cached '*' '    rate_limits: []
    cache: {enabled: true, micro_ttl: 60s}'
{
  echo "worker_processes 2;"
  echo "pid $WORK/nginx-proxy.pid;"
  echo "error_log $WORK/proxy-error.log warn;"
  echo "daemon on;"
  echo "events { worker_connections 8192; }"
  echo "http {"
  echo "  access_log off;"
  nginx_temp_paths "$WORK/tmp"
  echo "  keepalive_requests 100000;"
  echo "  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 256; }"
  echo "  server {"
  echo "    listen 127.0.0.1:$PROXY_PORT;"
  echo "    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
  echo "  }"
  echo "}"
} > "$WORK/nginx-proxy.conf"

run_round() {  # label, pids...
  local label=$1; shift
  wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$PROXY_PORT/" >/dev/null 2>&1 || true
  local before after
  before=$(cpu_ticks "$@")
  wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PROXY_PORT/" > "$WORK/out.txt" 2>&1
  after=$(cpu_ticks "$@")
  local rps status
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/out.txt")
  status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT/")
  awk -v l="$label" -v r="$rps" -v t=$((after - before)) -v hz="$HZ" -v d="$DURATION" -v s="$status" \
    'BEGIN { printf "| %s | %s | %.0f | %.1f |\n", l, s, r, (t / hz) * 1e6 / (r * d) }'
}

echo "| answer | status | requests/s | CPU µs/request |"
echo "|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  for mode in proxied limited unrouted cached; do
    "$BIN" run --config "$WORK/$mode.yaml" --admin 127.0.0.1:0 --state "$WORK/state-$mode-$round" --log-level warning >/dev/null 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port $PROXY_PORT
    run_round "rampart $mode $round" "$pid"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    sleep 0.5
  done
  nginx -c "$WORK/nginx-proxy.conf"
  wait_port $PROXY_PORT
  master=$(cat "$WORK/nginx-proxy.pid")
  # shellcheck disable=SC2046
  run_round "nginx proxied $round" "$master" $(pgrep -P "$master" | tr '\n' ' ')
  kill "$master"
  sleep 0.5
done

#!/usr/bin/env bash
# Proxied throughput of Rampart, nginx and HAProxy on this machine, one after another, in front of
# the same origin (nginx serving a small static file), with the same wrk load.
#
#   bench/proxy-compare.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Prints a Markdown table (requests/s, p50/p99 latency, proxy CPU seconds, proxy peak RSS) and
# Rampart's ratio to each peer. Only loopback addresses are used. Results also go to bench/results/.
set -euo pipefail

DURATION=${1:-15}
CONNS=${2:-64}
THREADS=2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
WORK=$(mktemp -d /tmp/rampart-bench.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as www-data
OUT="$ROOT/bench/results"
mkdir -p "$OUT"
ORIGIN_PORT=18000
PROXY_PORT=18080
PIDS=()
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx-origin.pid" ] && kill "$(cat "$WORK/nginx-origin.pid")" 2>/dev/null || true
  [ -f "$WORK/nginx-proxy.pid" ] && kill "$(cat "$WORK/nginx-proxy.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

install_missing nginx:nginx-light haproxy:haproxy wrk:wrk
pkill -x haproxy 2>/dev/null || true

echo "building Rampart (release)" >&2
(cd "$ROOT" && swift build -c release --product rampart >/dev/null)
RAMPART="$ROOT/.build/release/rampart"

# --- origin: nginx serving a 612-byte static page -------------------------------------------------
mkdir -p "$WORK/www" "$WORK/tmp"
head -c 612 /dev/zero | tr '\0' 'x' > "$WORK/www/index.html"
cat > "$WORK/origin.conf" <<EOF
worker_processes 1;
pid $WORK/nginx-origin.pid;
error_log $WORK/origin-error.log warn;
daemon on;
events { worker_connections 4096; }
http {
  access_log off;
  $(nginx_temp_paths "$WORK/tmp")
  keepalive_requests 100000;
  server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; location / { } }
}
EOF
nginx -c "$WORK/origin.conf"

wait_port $ORIGIN_PORT

# --- helpers --------------------------------------------------------------------------------------
cpu_ticks() {  # sum of utime+stime over the given pids
  local total=0
  for p in "$@"; do
    if [ -r "/proc/$p/stat" ]; then
      read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat")
      total=$((total + f[11] + f[12]))
    fi
  done
  echo $total
}
peak_rss_kb() {  # sum of VmHWM over the given pids
  local total=0
  for p in "$@"; do
    local v
    v=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo $total
}
to_ms() {  # wrk latency ("812.00us", "1.20ms", "1.01s") to milliseconds
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else print v }'
}

HZ=$(getconf CLK_TCK)
declare -A RPS P50 P99 CPU RSS

measure() {  # name, pids...
  local name=$1; shift
  wrk -t$THREADS -c$CONNS -d3s "http://127.0.0.1:$PROXY_PORT/" >/dev/null 2>&1 || true  # warm-up
  local before; before=$(cpu_ticks "$@")
  wrk -t$THREADS -c$CONNS -d"${DURATION}s" --latency "http://127.0.0.1:$PROXY_PORT/" > "$WORK/$name.wrk" 2>&1
  local after; after=$(cpu_ticks "$@")
  RPS[$name]=$(awk '/Requests\/sec/ {print $2}' "$WORK/$name.wrk")
  P50[$name]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$WORK/$name.wrk")")
  P99[$name]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$WORK/$name.wrk")")
  CPU[$name]=$(awk -v t=$((after - before)) -v hz="$HZ" 'BEGIN {printf "%.1f", t / hz}')
  RSS[$name]=$(( $(peak_rss_kb "$@") / 1024 ))
  local errors; errors=$(grep -E "Non-2xx|Socket errors" "$WORK/$name.wrk" || true)
  [ -n "$errors" ] && echo "$name: $errors" >&2
  cp "$WORK/$name.wrk" "$OUT/$name.wrk.txt"
}

# --- Rampart --------------------------------------------------------------------------------------
# Rate limits and the micro-cache off: this measures proxying. One wrk source address would
# otherwise be limited, the 612-byte HTML page would be answered from the cache, and the peers
# run with neither.
cat > "$WORK/rampart.yaml" <<EOF
listeners: [{address: 127.0.0.1:$PROXY_PORT}]
state: $WORK/rampart-state
sites:
  - name: bench
    hosts: ["*"]
    origins: [127.0.0.1:$ORIGIN_PORT]
    rate_limits: []
    cache: {enabled: false}
EOF
"$RAMPART" run --config "$WORK/rampart.yaml" --log-level warning > "$WORK/rampart.log" 2>&1 &
RAMPART_PID=$!
PIDS+=("$RAMPART_PID")
wait_port $PROXY_PORT
measure rampart "$RAMPART_PID"
kill -TERM "$RAMPART_PID"; wait "$RAMPART_PID" 2>/dev/null || true

# --- nginx as a proxy (keep-alive upstream, access log off as Rampart has none yet) ---------------
cat > "$WORK/proxy.conf" <<EOF
worker_processes auto;
pid $WORK/nginx-proxy.pid;
error_log $WORK/proxy-error.log warn;
daemon on;
events { worker_connections 8192; }
http {
  access_log off;
  $(nginx_temp_paths "$WORK/tmp")
  keepalive_requests 1000;
  client_header_timeout 10s; keepalive_timeout 60s;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
EOF
nginx -c "$WORK/proxy.conf"
wait_port $PROXY_PORT
NGINX_PIDS=$(pgrep -f "nginx: .*$WORK/proxy.conf" || true; pgrep -P "$(cat "$WORK/nginx-proxy.pid")" || true)
measure nginx $(cat "$WORK/nginx-proxy.pid") $NGINX_PIDS
kill "$(cat "$WORK/nginx-proxy.pid")"; rm -f "$WORK/nginx-proxy.pid"; sleep 0.5

# --- HAProxy -------------------------------------------------------------------------------------
cat > "$WORK/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn 8000
defaults
  mode http
  timeout connect 3s
  timeout client 60s
  timeout server 30s
  timeout http-request 10s
  timeout http-keep-alive 60s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$PROXY_PORT
  default_backend be
backend be
  server origin 127.0.0.1:$ORIGIN_PORT maxconn 128
EOF
haproxy -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")
wait_port $PROXY_PORT
measure haproxy "$HAPROXY_PID"
kill "$HAPROXY_PID"; wait "$HAPROXY_PID" 2>/dev/null || true

# --- report ---------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
  echo "Proxied GET of a 612-byte page: wrk -t$THREADS -c$CONNS -d${DURATION}s, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)"
  echo
  echo "| proxy | requests/s | p50 ms | p99 ms | proxy CPU s | proxy peak RSS MB |"
  echo "|---|---:|---:|---:|---:|---:|"
  for n in rampart nginx haproxy; do
    echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} | ${CPU[$n]} | ${RSS[$n]} |"
  done
  echo
  echo "Rampart / nginx: requests/s $(ratio "${RPS[rampart]}" "${RPS[nginx]}")x, p99 $(ratio "${P99[rampart]}" "${P99[nginx]}")x"
  echo "Rampart / HAProxy: requests/s $(ratio "${RPS[rampart]}" "${RPS[haproxy]}")x, p99 $(ratio "${P99[rampart]}" "${P99[haproxy]}")x"
} | tee "$OUT/proxy-compare.md"

#!/usr/bin/env bash
# Proxied throughput of Rampart, nginx and HAProxy on this machine, one after another, in front of
# the same origin (nginx serving a small static file), with the same load: plain HTTP/1.1 and
# HTTPS (HTTP/1.1 over TLS) with wrk, HTTP/2 over TLS with h2load (10 streams per connection).
#
#   bench/proxy-compare.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Prints a Markdown table per protocol (requests/s, latency, proxy CPU seconds, proxy peak RSS)
# and Rampart's ratio to each peer. Only loopback addresses are used. Results also go to
# bench/results/.
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
TLS_PORT=18443
PIDS=()
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx-origin.pid" ] && kill "$(cat "$WORK/nginx-origin.pid")" 2>/dev/null || true
  [ -f "$WORK/nginx-proxy.pid" ] && kill "$(cat "$WORK/nginx-proxy.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

install_missing nginx:nginx-light haproxy:haproxy wrk:wrk h2load:nghttp2-client openssl:openssl
pkill -x haproxy 2>/dev/null || true

echo "building Rampart (release)" >&2
(cd "$ROOT" && swift build -c release --product rampart >/dev/null)
RAMPART="$ROOT/.build/release/rampart"

# --- origin: nginx serving a 612-byte static page -------------------------------------------------
start_static_origin "$WORK" $ORIGIN_PORT

# --- one certificate for the three proxies (P-256, as a site would use) ---------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
cat "$WORK/tls.crt" "$WORK/tls.key" > "$WORK/tls.pem"
chmod 644 "$WORK/tls.key" "$WORK/tls.pem"

# --- helpers --------------------------------------------------------------------------------------
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

check_errors() {  # name, output file
  local errors; errors=$(grep -E "Non-2xx|Socket errors" "$2" || true)
  [ -n "$errors" ] && echo "$1: $errors" >&2
  return 0
}

measure_wrk() {  # key, url, pids...
  local key=$1 url=$2; shift 2
  wrk -t$THREADS -c$CONNS -d3s "$url" >/dev/null 2>&1 || true  # warm-up
  local before; before=$(cpu_ticks "$@")
  wrk -t$THREADS -c$CONNS -d"${DURATION}s" --latency "$url" > "$WORK/$key.txt" 2>&1
  local after; after=$(cpu_ticks "$@")
  RPS[$key]=$(awk '/Requests\/sec/ {print $2}' "$WORK/$key.txt")
  P50[$key]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$WORK/$key.txt")")
  P99[$key]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$WORK/$key.txt")")
  CPU[$key]=$(awk -v t=$((after - before)) -v hz="$HZ" 'BEGIN {printf "%.1f", t / hz}')
  check_errors "$key" "$WORK/$key.txt"
  cp "$WORK/$key.txt" "$OUT/$key.wrk.txt"
}

measure_h2() {  # key, url, pids...  (h2load reports the mean and max request time, no percentiles)
  local key=$1 url=$2; shift 2
  h2load -t$THREADS -c$CONNS -m10 -D 3 "$url" >/dev/null 2>&1 || true  # warm-up
  local before; before=$(cpu_ticks "$@")
  h2load -t$THREADS -c$CONNS -m10 -D "$DURATION" "$url" > "$WORK/$key.txt" 2>&1 || true
  local after; after=$(cpu_ticks "$@")
  RPS[$key]=$(awk '/^finished in/ {print $4}' "$WORK/$key.txt")
  P50[$key]=$(to_ms "$(awk '/time for request:/ {print $6}' "$WORK/$key.txt")")  # mean
  P99[$key]=$(to_ms "$(awk '/time for request:/ {print $5}' "$WORK/$key.txt")")  # max
  CPU[$key]=$(awk -v t=$((after - before)) -v hz="$HZ" 'BEGIN {printf "%.1f", t / hz}')
  local done; done=$(awk '/^requests:/ {print $8, "succeeded,", $10, "failed"}' "$WORK/$key.txt")
  echo "$key: $done" >&2
  cp "$WORK/$key.txt" "$OUT/$key.h2load.txt"
}

measure() {  # name, pids...: the three protocols against one running proxy
  local name=$1; shift
  measure_wrk "$name-http" "http://127.0.0.1:$PROXY_PORT/" "$@"
  measure_wrk "$name-https" "https://127.0.0.1:$TLS_PORT/" "$@"
  measure_h2 "$name-h2" "https://127.0.0.1:$TLS_PORT/" "$@"
  RSS[$name]=$(( $(peak_rss_kb "$@") / 1024 ))
}

# --- Rampart --------------------------------------------------------------------------------------
# Rate limits, detection, bans and the micro-cache off: this measures proxying. One wrk source
# address sending thousands of requests a second without keeping cookies would otherwise be
# limited, challenged and banned, the 612-byte HTML page would be answered from the cache, and
# the peers run with none of these.
bench_proxy_config "$WORK/rampart.yaml" $PROXY_PORT $ORIGIN_PORT \
  "{address: 127.0.0.1:$TLS_PORT, tls: {cert: $WORK/tls.crt, key: $WORK/tls.key, handshake_rate: 100000/s, handshake_burst: 100000}}"
echo "state: $WORK/rampart-state" >> "$WORK/rampart.yaml"
"$RAMPART" run --config "$WORK/rampart.yaml" --log-level warning > "$WORK/rampart.log" 2>&1 &
RAMPART_PID=$!
PIDS+=("$RAMPART_PID")
wait_port $PROXY_PORT
wait_port $TLS_PORT
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
  # Requests per client connection (HTTP/1.1 and, since 1.19.7, HTTP/2): high enough that no
  # connection is closed during a row (h2load does not reconnect).
  keepalive_requests 100000;
  client_header_timeout 10s; keepalive_timeout 60s;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 128; }
  ssl_certificate $WORK/tls.crt; ssl_certificate_key $WORK/tls.key;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;
  server {
    listen 127.0.0.1:$PROXY_PORT;
    listen 127.0.0.1:$TLS_PORT ssl http2;
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
wait_port $TLS_PORT
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
  bind 127.0.0.1:$TLS_PORT ssl crt $WORK/tls.pem alpn h2,http/1.1
  default_backend be
backend be
  server origin 127.0.0.1:$ORIGIN_PORT maxconn 128
EOF
haproxy -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")
wait_port $PROXY_PORT
wait_port $TLS_PORT
measure haproxy "$HAPROXY_PID"
kill "$HAPROXY_PID"; wait "$HAPROXY_PID" 2>/dev/null || true

# --- report ---------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
  echo "Proxied GET of a 612-byte page, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r); $CONNS connections, ${DURATION}s per row."
  echo "HTTP and HTTPS: wrk -t$THREADS -c$CONNS (HTTP/1.1 keep-alive). h2: h2load -t$THREADS -c$CONNS -m10 (HTTP/2 over TLS, 10 streams per connection); its latency columns are the mean and the maximum (h2load gives no percentiles)."
  echo
  echo "| protocol | proxy | requests/s | p50 (h2: mean) ms | p99 (h2: max) ms | proxy CPU s | proxy peak RSS MB |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for proto in http https h2; do
    for n in rampart nginx haproxy; do
      k="$n-$proto"
      echo "| $proto | $n | ${RPS[$k]} | ${P50[$k]} | ${P99[$k]} | ${CPU[$k]} | ${RSS[$n]} |"
    done
  done
  echo
  for proto in http https h2; do
    echo "$proto: Rampart / nginx requests/s $(ratio "${RPS[rampart-$proto]}" "${RPS[nginx-$proto]}")x, Rampart / HAProxy $(ratio "${RPS[rampart-$proto]}" "${RPS[haproxy-$proto]}")x"
  done
} | tee "$OUT/proxy-compare.md"

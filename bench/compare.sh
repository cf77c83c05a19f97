#!/usr/bin/env bash
# The drill's attack scenarios against Rampart, a hardened nginx and a hardened HAProxy, one after
# another, on the same capacity-limited origin, on loopback only. Prints one side-by-side table;
# writes JSON and HTML reports to bench/results/.
#
#   bench/compare.sh [SCENARIO ...]          default: S1 S2 S3 S4 S5 S8 (S6 runs over TLS)
#   WARMUP=3 ATTACK=15 COOLDOWN=3 INTENSITY=10 USERS=30 PEERS="rampart nginx haproxy" bench/compare.sh S1 S2
set -euo pipefail

SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(S1 S2 S3 S4 S5 S8)
WARMUP=${WARMUP:-3}
ATTACK=${ATTACK:-15}
COOLDOWN=${COOLDOWN:-3}
INTENSITY=${INTENSITY:-10}
USERS=${USERS:-30}
PEERS=${PEERS:-"rampart nginx haproxy"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT="$ROOT/bench/results"
WORK=$(mktemp -d /tmp/rampart-compare.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$OUT" "$WORK/tmp"
ORIGIN_PORT=19000
PROXY_PORT=19080
TLS_PORT=19443
CONCURRENCY=4
SERVICE_MS=20
CAPACITY=$((CONCURRENCY * 1000 / SERVICE_MS))
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

install_missing nginx:nginx-light haproxy:haproxy openssl:openssl

echo "building (release)" >&2
(cd "$ROOT" && swift build -c release --product rampart >/dev/null && swift build -c release --product rampart-drill >/dev/null)
BIN="$ROOT/.build/release"

"$BIN/rampart-drill" origin --listen 127.0.0.1:$ORIGIN_PORT --concurrency $CONCURRENCY --service-ms $SERVICE_MS > "$WORK/origin.log" 2>&1 &
PIDS+=($!)

wait_port $ORIGIN_PORT

# Every proxy also listens with TLS (ALPN h2, http/1.1) on $TLS_PORT: S6 floods HTTP/2 there.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=example.org \
  -addext subjectAltName=DNS:example.org -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
cat "$WORK/tls.crt" "$WORK/tls.key" > "$WORK/tls.pem"
chmod 644 "$WORK/tls.key" "$WORK/tls.pem"

start_rampart() {
  cat > "$WORK/rampart.yaml" <<EOF
listeners:
  - {address: 127.0.0.1:$PROXY_PORT}
  - {address: 127.0.0.1:$TLS_PORT, tls: {cert: $WORK/tls.crt, key: $WORK/tls.key}}
state: $WORK/rampart-state
sites:
  - name: www
    hosts: ["*"]
    origins:
      - {address: 127.0.0.1:$ORIGIN_PORT, max_connections: $((CONCURRENCY * 2))}
    api_keys: [drill-api-key-0000, drill-api-key-0001, drill-api-key-0002, drill-api-key-0003, drill-api-key-0004]
EOF
  "$BIN/rampart" run --config "$WORK/rampart.yaml" --log-level notice > "$WORK/rampart.log" 2>&1 &
  echo $!
}

start_nginx() {
  # Hardened per nginx's documentation: per-address limit_req with burst, limit_conn, short
  # header/body/send timeouts, a 1 s micro-cache keyed without the query string, cache lock and
  # serve-stale.
  cat > "$WORK/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log error;
daemon on;
events { worker_connections 16384; }
http {
  access_log off;
  $(nginx_temp_paths "$WORK/tmp")
  client_header_timeout 10s; client_body_timeout 10s; send_timeout 10s; keepalive_timeout 60s;
  limit_req_zone \$binary_remote_addr zone=perip:10m rate=20r/s;
  limit_conn_zone \$binary_remote_addr zone=perconn:10m;
  proxy_cache_path $WORK/cache levels=1:2 keys_zone=micro:10m max_size=100m inactive=60s use_temp_path=off;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    listen 127.0.0.1:$TLS_PORT ssl http2;
    ssl_certificate $WORK/tls.crt; ssl_certificate_key $WORK/tls.key;
    limit_conn perconn 64;
    location / {
      limit_req zone=perip burst=100 nodelay;
      limit_req_status 429;
      proxy_cache micro;
      proxy_cache_key \$scheme\$host\$uri;
      proxy_cache_valid 200 1s;
      proxy_cache_lock on;
      proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
EOF
  nginx -c "$WORK/nginx.conf"
  sleep 0.3
  cat "$WORK/nginx.pid"
}

start_haproxy() {
  # Hardened per HAProxy's documentation: stick table with per-source request rate and connection
  # count, deny over the rate, server maxconn with a queue, timeout http-request.
  cat > "$WORK/haproxy.cfg" <<EOF
global
  maxconn 9000
  nbthread 2
defaults
  mode http
  timeout connect 3s
  timeout client 30s
  timeout server 30s
  timeout queue 10s
  timeout http-request 10s
  timeout http-keep-alive 60s
  option forwardfor
frontend fe
  bind 127.0.0.1:$PROXY_PORT
  bind 127.0.0.1:$TLS_PORT ssl crt $WORK/tls.pem alpn h2,http/1.1
  stick-table type ip size 1m expire 60s store http_req_rate(10s),conn_cur
  tcp-request connection track-sc0 src
  tcp-request connection reject if { sc_conn_cur(0) gt 64 }
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 200 }
  default_backend be
backend be
  server origin 127.0.0.1:$ORIGIN_PORT maxconn $CONCURRENCY
EOF
  haproxy -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
  echo $!
}

TABLE=()
for peer in $PEERS; do
  # A fresh proxy per scenario: each starts from calm (no mode, bans or cache left by the last one).
  for scenario in "${SCENARIOS[@]}"; do
    rm -rf "$WORK/rampart-state"
    pid=$("start_$peer")
    wait_port $PROXY_PORT
    wait_port $TLS_PORT
    echo "== $peer (pid $pid): $scenario" >&2
    target=(--target 127.0.0.1:$PROXY_PORT)
    [ "$scenario" = S6 ] && target=(--target 127.0.0.1:$TLS_PORT --tls)
    "$BIN/rampart-drill" run "${target[@]}" --origin 127.0.0.1:$ORIGIN_PORT \
      --scenario "$scenario" --warmup "$WARMUP" --attack "$ATTACK" --cooldown "$COOLDOWN" \
      --capacity "$CAPACITY" --intensity "$INTENSITY" --users "$USERS" --gateway-pid "$pid" --label "$peer" \
      --json "$OUT/drill-$peer-$scenario.json" --html "$OUT/drill-$peer-$scenario.html" > "$WORK/$peer.txt"
    TABLE+=("$(grep "^| $peer |" "$WORK/$peer.txt")")
    kill "$pid" 2>/dev/null || true
    [ "$peer" = nginx ] && { kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; rm -f "$WORK/nginx.pid"; }
    # Rampart's own account of the run: when its sites changed mode, and why.
    [ "$peer" = rampart ] && grep -h "site mode changed\|source banned" "$WORK/rampart.log" > "$OUT/rampart-$scenario.modes.log" || true
    sleep 1
  done
done

{
  echo "Drill: ${SCENARIOS[*]}, warm-up ${WARMUP}s, attack ${ATTACK}s, cool-down ${COOLDOWN}s, intensity ${INTENSITY}x of a ${CAPACITY} req/s origin, $USERS users; $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
  echo
  echo "| gateway | scenario | legit ok % (warm-up) | legit ok % (attack) | API ok % (attack) | p95 ms (attack) | p99 ms (attack) | challenge pages (attack) | attack sent | reached origin | leakage after 5 s | engaged after | peak CPU % | peak RSS MB |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for row in "${TABLE[@]}"; do printf '%s\n' "$row"; done | sort -t'|' -k3,3 -s
} | tee "$OUT/compare.md"

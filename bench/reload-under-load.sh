#!/usr/bin/env bash
# Reloads under load with the release build: SIGHUP every second while about 1,000 requests a
# second flow over TLS (HTTP/2 and HTTP/1.1 kept alive, plus a fresh HTTPS connection for each of
# 200 requests a second), as ReloadUnderLoadTests does for 8 s in CI. Loopback only.
#
#   SECONDS_OF_LOAD=60 bash bench/reload-under-load.sh
#
# Prints each h2load's totals and status codes, the number of SIGHUPs and the reloads the gateway
# logged; any failed, errored or non-2xx request is a failure of the run (exit 1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"

LOAD=${SECONDS_OF_LOAD:-60}
ORIGIN_PORT=19800
PORT=19801
WORK=$(mktemp -d /tmp/rampart-reload.XXXXXX)
chmod 755 "$WORK"
PIDS=()
trap stop_started EXIT

install_missing nginx:nginx-light h2load:nghttp2-client openssl:openssl
echo "building (release)" >&2
(cd "$ROOT" && swift build -c release --product rampart >/dev/null)
start_static_origin "$WORK" $ORIGIN_PORT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
cat > "$WORK/rampart.yaml" <<EOF
listeners:
  - address: 127.0.0.1:$PORT
    tls: {cert: $WORK/tls.crt, key: $WORK/tls.key, handshake_rate: 100000/s, handshake_burst: 100000}
    limits: {max_connections_per_ip: 100000, max_requests_per_connection: 10000000}
default_site: www
bans: {enabled: false}
state: $WORK/state
admin: {enabled: false}
sites:
  - name: www
    hosts: [localhost]
    origins: [{address: 127.0.0.1:$ORIGIN_PORT, max_connections: 256}]
    rate_limits: []
    detection: {enabled: false}
    cache: {enabled: false}
EOF
"$ROOT/.build/release/rampart" run --config "$WORK/rampart.yaml" --log-level notice > "$WORK/rampart.log" 2>&1 &
GW=$!
PIDS+=($GW)
wait_port $PORT

URL="https://127.0.0.1:$PORT/"
h2load -c 4 -m 4 --rps 125 -n $((4 * 125 * LOAD)) "$URL" > "$WORK/h2.txt" 2>&1 &
L1=$!
h2load --h1 -c 2 --rps 150 -n $((2 * 150 * LOAD)) "$URL" > "$WORK/h1.txt" 2>&1 &
L2=$!
h2load --h1 -r 20 --rate-period 100ms -c $((200 * LOAD)) -n $((200 * LOAD)) "$URL" > "$WORK/fresh.txt" 2>&1 &
L3=$!
started=$(date +%s.%N)
sighups=0
while kill -0 $L1 2>/dev/null || kill -0 $L2 2>/dev/null || kill -0 $L3 2>/dev/null; do
  sleep 1
  kill -HUP $GW
  sighups=$((sighups + 1))
done
ended=$(date +%s.%N)
status=0
total=0
for f in h2 h1 fresh; do
  echo "== $f: $(grep -E '^requests:' "$WORK/$f.txt")"
  echo "   $(grep -E '^status codes:' "$WORK/$f.txt")"
  read -r t ok failed errored timeout < <(sed -nE 's/^requests: ([0-9]+) total, [0-9]+ started, [0-9]+ done, ([0-9]+) succeeded, ([0-9]+) failed, ([0-9]+) errored, ([0-9]+) timeout.*/\1 \2 \3 \4 \5/p' "$WORK/$f.txt")
  codes=$(sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p' "$WORK/$f.txt")
  total=$((total + t))
  if [ "$ok" != "$t" ] || [ "$failed$errored$timeout" != "000" ] || [ "$codes" != "$t" ]; then status=1; fi
done
reloads=$(grep -c "configuration reloaded" "$WORK/rampart.log" || true)
echo "requests: $total in $(echo "$ended - $started" | bc) s ($(echo "$total / ($ended - $started)" | bc) per second); SIGHUPs: $sighups; reloads logged: $reloads"
[ $status = 0 ] && echo "no request failed" || echo "SOME REQUESTS FAILED"
exit $status

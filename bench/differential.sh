#!/usr/bin/env bash
# Differential smuggling check: the corpus in Tests/smuggling/ through Rampart, nginx and HAProxy,
# each in front of the same recording origins (plain HTTP/1.1, and HTTP/2 over TLS), on loopback
# only. Each peer runs in two shapes: one site answering every host name, and two sites (x.test,
# y.test) with an origin each. Writes the table into docs/differential.md between its markers
# (the hand-written analysis around them is kept) and the raw results to bench/results/.
#
#   bench/differential.sh                          Rampart from .build/debug/rampart (built if missing)
#   RAMPART=/path/to/rampart RAMPART_VERSION="Rampart abc1234" PEERS="rampart nginx" DOC=/tmp/d.md bench/differential.sh
#   RAMPART_BEFORE=/path/to/older/rampart RAMPART_BEFORE_VERSION="Rampart 1234abc" PEERS="rampart-before rampart nginx haproxy" ...
#                                                  adds a column for an older build (what a fix changed)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
PEERS=${PEERS:-"rampart nginx haproxy"}
RAMPART=${RAMPART:-$ROOT/.build/debug/rampart}
OUT="$ROOT/bench/results"
DOC=${DOC:-$ROOT/docs/differential.md}
WORK=$(mktemp -d /tmp/rampart-differential.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$OUT" "$WORK/tmp"
ONE_PORT=19281
ONE_TLS=19282
TWO_PORT=19283
TWO_TLS=19284
SMUGGLING="$ROOT/Tests/smuggling"

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

install_missing nginx:nginx-light haproxy:haproxy openssl:openssl
python3 -c 'import h2' 2>/dev/null || python3 -m pip install -q h2
if [ ! -x "$RAMPART" ] && [[ " $PEERS " == *" rampart "* ]]; then
  echo "building rampart (debug)" >&2
  (cd "$ROOT" && swift build --product rampart >/dev/null)
fi

# Two recording origins: x.test's (also the one-site origin) and y.test's.
start_origin() {
  python3 "$SMUGGLING/recording_origin.py" --name "$1" > "$WORK/origin-$1.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    grep -q '^CONTROL ' "$WORK/origin-$1.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "origin $1 did not start" >&2
  return 1
}
start_origin x.test
start_origin y.test
ORIGIN_X=$(awk '/^PORT /{print $2}' "$WORK/origin-x.test.out")
ORIGIN_Y=$(awk '/^PORT /{print $2}' "$WORK/origin-y.test.out")
CONTROL_X=127.0.0.1:$(awk '/^CONTROL /{print $2}' "$WORK/origin-x.test.out")
CONTROL_Y=127.0.0.1:$(awk '/^CONTROL /{print $2}' "$WORK/origin-y.test.out")

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=x.test \
  -addext subjectAltName=DNS:x.test,DNS:y.test -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
cat "$WORK/tls.crt" "$WORK/tls.key" > "$WORK/tls.pem"
chmod 644 "$WORK/tls.key" "$WORK/tls.pem"

render() {
  sed -e "s|@WORK@|$WORK|g" -e "s|@ORIGIN_X@|$ORIGIN_X|g" -e "s|@ORIGIN_Y@|$ORIGIN_Y|g" \
    -e "s|@ONE_PORT@|$ONE_PORT|g" -e "s|@ONE_TLS@|$ONE_TLS|g" -e "s|@TWO_PORT@|$TWO_PORT|g" -e "s|@TWO_TLS@|$TWO_TLS|g" "$1"
}

# Each start_* leaves the peer listening on all four ports and prints the pids to stop.
start_rampart() {
  local bin=$1
  # One-site mode as the command-line contract gives it (plain, and TLS with ALPN h2), and a
  # two-site config with a plain and a TLS listener.
  "$bin" run --listen 127.0.0.1:$ONE_PORT --origin 127.0.0.1:$ORIGIN_X --admin 127.0.0.1:0 \
    --state "$WORK/state-one" > "$WORK/rampart-one.log" 2>&1 &
  local a=$!
  "$bin" run --listen 127.0.0.1:$ONE_TLS --origin 127.0.0.1:$ORIGIN_X --admin 127.0.0.1:0 \
    --state "$WORK/state-tls" --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key" > "$WORK/rampart-tls.log" 2>&1 &
  local b=$!
  cat > "$WORK/rampart-two.yaml" <<EOF
listeners:
  - {address: 127.0.0.1:$TWO_PORT}
  - {address: 127.0.0.1:$TWO_TLS, tls: {cert: $WORK/tls.crt, key: $WORK/tls.key}}
state: $WORK/state-two
sites:
  - name: x
    hosts: [x.test]
    origins: [127.0.0.1:$ORIGIN_X]
  - name: y
    hosts: [y.test]
    origins: [127.0.0.1:$ORIGIN_Y]
EOF
  "$bin" run --config "$WORK/rampart-two.yaml" --admin 127.0.0.1:0 > "$WORK/rampart-two.log" 2>&1 &
  echo "$a $b $!"
}

start_nginx() {
  render "$ROOT/bench/peers/differential-nginx.conf" > "$WORK/nginx.conf"
  nginx -c "$WORK/nginx.conf"
  for _ in $(seq 1 50); do [ -s "$WORK/nginx.pid" ] && break; sleep 0.1; done
  cat "$WORK/nginx.pid"
}

start_haproxy() {
  render "$ROOT/bench/peers/differential-haproxy.cfg" > "$WORK/haproxy.cfg"
  haproxy -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
  echo $!
}

version() {
  case $1 in
    rampart-before) echo "${RAMPART_BEFORE_VERSION:-Rampart ($RAMPART_BEFORE)}" ;;
    rampart) echo "${RAMPART_VERSION:-Rampart $(git -C "$(dirname "$RAMPART")/../.." log -1 --format=%h 2>/dev/null || echo '?') ($RAMPART)}" ;;
    nginx) nginx -v 2>&1 | sed 's|nginx version: ||' ;;
    haproxy) haproxy -v | head -1 | awk '{print "HAProxy " $3}' ;;
  esac
}

RESULTS=()
for peer in $PEERS; do
  case $peer in
    rampart) pids=$(start_rampart "$RAMPART") ;;
    rampart-before) pids=$(start_rampart "$RAMPART_BEFORE") ;;
    *) pids=$("start_$peer") ;;
  esac
  for p in $ONE_PORT $ONE_TLS $TWO_PORT $TWO_TLS; do wait_port "$p"; done
  echo "== $peer ($(version "$peer"))" >&2
  python3 "$SMUGGLING/run_corpus.py" --gateway 127.0.0.1:$ONE_PORT --tls-port $ONE_TLS --origin-control "$CONTROL_X" \
    --label "$peer" --json > "$OUT/differential-$peer-one.json" || true
  python3 "$SMUGGLING/run_corpus.py" --gateway 127.0.0.1:$TWO_PORT --tls-port $TWO_TLS \
    --site "x.test=$CONTROL_X" --site "y.test=$CONTROL_Y" --label "$peer" --json > "$OUT/differential-$peer-two.json" || true
  RESULTS+=("$peer=$OUT/differential-$peer-one.json,$OUT/differential-$peer-two.json=$(version "$peer")")
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null || true
  # The next peer binds the same ports: wait (up to 10 s) until they are free.
  for _ in $(seq 1 100); do
    busy=0
    for p in $ONE_PORT $ONE_TLS $TWO_PORT $TWO_TLS; do (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null && busy=1; done
    [ $busy = 0 ] && break
    sleep 0.1
  done
done

python3 "$SMUGGLING/differential_table.py" --doc "$DOC" "${RESULTS[@]}"
echo "table written to $DOC" >&2

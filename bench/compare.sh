#!/usr/bin/env bash
# The drill's attack scenarios against Rampart, a hardened nginx and a hardened HAProxy, one after
# another, on the same capacity-limited origin, on loopback only. Prints one side-by-side table;
# writes JSON and HTML reports to bench/results/.
#
#   bench/compare.sh [SCENARIO ...]          default: S1 S2 S3 S4 S5 S8 (S6 runs over TLS)
#   WARMUP=3 ATTACK=15 COOLDOWN=3 INTENSITY=10 USERS=30 PEERS="rampart nginx haproxy" bench/compare.sh S1 S2
#   CONCURRENCY=8 QUEUE_LIMIT=8 CHECK_CREDENTIALS=1 INTENSITY=5 bench/compare.sh S9 S11 S4 S8
#     (a small CMS: 8 workers, a short queue answering 503 past it, logins and keys checked;
#      members, no-JS readers, browsers and API clients are measured separately)
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
# rampart_nft pushes bans into the kernel firewall: the whole run then happens in a network
# namespace of its own (a fresh loopback), so the host's ruleset is never touched.
case " $PEERS " in
  *" rampart_nft "*)
    if [ -z "${RAMPART_COMPARE_NETNS:-}" ]; then
      exec unshare -n env RAMPART_COMPARE_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
    fi ;;
esac
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT="$ROOT/bench/results"
WORK=$(mktemp -d /tmp/rampart-compare.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$OUT" "$WORK/tmp"
ORIGIN_PORT=19000
PROXY_PORT=19080
TLS_PORT=19443
CONCURRENCY=${CONCURRENCY:-4}
SERVICE_MS=${SERVICE_MS:-20}
ORIGIN_FLAGS=()
[ -n "${QUEUE_LIMIT:-}" ] && ORIGIN_FLAGS+=(--queue-limit "$QUEUE_LIMIT")
[ -n "${CHECK_CREDENTIALS:-}" ] && ORIGIN_FLAGS+=(--check-credentials)
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

build_release

start_drill_origin $ORIGIN_PORT $CONCURRENCY $SERVICE_MS "${ORIGIN_FLAGS[@]}"

# The peers' configs with this run's ports and folder filled in.
render() {
  sed -e "s|@WORK@|$WORK|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" -e "s|@PROXY_PORT@|$PROXY_PORT|g" \
    -e "s|@TLS_PORT@|$TLS_PORT|g" -e "s|@CONCURRENCY@|$CONCURRENCY|g" "$1"
}

# Every proxy also listens with TLS (ALPN h2, http/1.1) on $TLS_PORT: S6 floods HTTP/2 there.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=example.org \
  -addext subjectAltName=DNS:example.org -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
cat "$WORK/tls.crt" "$WORK/tls.key" > "$WORK/tls.pem"
chmod 644 "$WORK/tls.key" "$WORK/tls.pem"

rampart_config() {
  cat > "$WORK/rampart.yaml" <<EOF
listeners:
  - {address: 127.0.0.1:$PROXY_PORT}
  - {address: 127.0.0.1:$TLS_PORT, tls: {cert: $WORK/tls.crt, key: $WORK/tls.key}}
state: $WORK/rampart-state
$(drill_sites $ORIGIN_PORT $((CONCURRENCY * 2)))
EOF
}

start_rampart() {
  rampart_config
  "$BIN/rampart" run --config "$WORK/rampart.yaml" --log-level notice > "$WORK/rampart.log" 2>&1 &
  echo $!
}

# Rampart with its bans also pushed into the kernel (bans.kernel: nftables, docs/edge-filters.md),
# e.g. PEERS="rampart rampart_nft" bash bench/compare.sh S1 (the run moves into its own namespace).
start_rampart_nft() {
  rampart_config
  printf 'bans: {kernel: nftables, kernel_on_exit: flush}\n' >> "$WORK/rampart.yaml"
  "$BIN/rampart" run --config "$WORK/rampart.yaml" --log-level notice > "$WORK/rampart.log" 2>&1 &
  echo $!
}

start_nginx() {
  # Hardened per nginx's documentation: see bench/peers/nginx.conf.
  render "$ROOT/bench/peers/nginx.conf" > "$WORK/nginx.conf"
  nginx -c "$WORK/nginx.conf"
  sleep 0.3
  cat "$WORK/nginx.pid"
}

start_haproxy() {
  # Hardened per HAProxy's documentation: see bench/peers/haproxy.cfg.
  render "$ROOT/bench/peers/haproxy.cfg" > "$WORK/haproxy.cfg"
  haproxy -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
  echo $!
}

TABLE=()
CLASSES=()
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
    TABLE+=("$(grep "^| $peer |" "$WORK/$peer.txt" | head -1)")
    # The second table: one row per legitimate class.
    CLASSES+=("$(grep "^| $peer | $scenario | [a-z]" "$WORK/$peer.txt")")
    kill "$pid" 2>/dev/null || true
    [ "$peer" = nginx ] && { kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; rm -f "$WORK/nginx.pid"; }
    # Rampart's own account of the run: when its sites changed mode, and why.
    [ "${peer%_nft}" = rampart ] && grep -h "site mode changed\|source banned" "$WORK/rampart.log" > "$OUT/rampart-$scenario.modes.log" || true
    sleep 1
  done
done

{
  echo "Drill: ${SCENARIOS[*]}, warm-up ${WARMUP}s, attack ${ATTACK}s, cool-down ${COOLDOWN}s, intensity ${INTENSITY}x of a ${CAPACITY} req/s origin, $USERS users; $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
  echo
  echo "| gateway | scenario | legit ok % (warm-up) | legit ok % (attack) | API ok % (attack) | p95 ms (attack) | p99 ms (attack) | challenge pages (attack) | attack sent | reached origin | leakage after 5 s | engaged after | peak CPU % | CPU µs / attack request | peak RSS MB |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for row in "${TABLE[@]}"; do printf '%s\n' "$row"; done | sort -t'|' -k3,3 -s
  echo
  echo "| gateway | scenario | class | requests (attack) | ok % | ok within 1 s % | 403 |"
  echo "|---|---|---|---:|---:|---:|---:|"
  for row in "${CLASSES[@]}"; do printf '%s\n' "$row"; done | sort -t'|' -k3,3 -s
} | tee "$OUT/compare.md"

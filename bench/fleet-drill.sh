#!/usr/bin/env bash
# One flood split over three Rampart nodes (each source keeps to one node, as behind an L4
# balancer with source affinity), first with the nodes alone, then as a fleet sharing a throwaway
# PostgreSQL cluster: does the fleet see the whole attack and engage as fast as one node would?
# Loopback only. Also runs one node taking the whole flood, for the reference.
#
#   WARMUP=5 ATTACK=20 COOLDOWN=5 INTENSITY=10 [SETUPS="one-node alone fleet"] bash bench/fleet-drill.sh [SCENARIO]
#
# Prints the drill's table per setup and, per node, the time from the attack's start to its first
# change to `elevated` and to `under_attack`, read from the node's admin API every 100 ms.
# Environment: MODE_TTL and TRAFFIC_INTERVAL set the fleet's `mode_ttl` and `traffic_interval`. At INTENSITY=3 one node taking the whole flood
# goes under attack while three nodes alone, each seeing a third, only reach `elevated`. Results go to bench/results/fleet-<date>/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"

SCENARIO=${1:-S2}
WARMUP=${WARMUP:-5}
ATTACK=${ATTACK:-20}
COOLDOWN=${COOLDOWN:-5}
INTENSITY=${INTENSITY:-10}
USERS=${USERS:-30}
CONCURRENCY=${CONCURRENCY:-4}
SERVICE_MS=${SERVICE_MS:-20}
ORIGIN_PORT=19700
PG_PORT=19701
NODE_PORTS=(19711 19712 19713)
ADMIN_PORTS=(19721 19722 19723)

TOKEN=fleet-drill-admin-token-0123456789abcdef
WORK=$(mktemp -d /tmp/rampart-fleet.XXXXXX)
chmod 755 "$WORK"
OUT="$ROOT/bench/results/fleet-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
PIDS=()
trap stop_started EXIT

build_release

start_drill_origin $ORIGIN_PORT $CONCURRENCY $SERVICE_MS

# node_config I FLEET_URL: the config of node I (same site on every node; its own port and state).
node_config() {
  local i=$1 url=${2:-}
  cat > "$WORK/node$i.yaml" <<EOF
listeners:
  - {address: 127.0.0.1:${NODE_PORTS[$i]}}
admin: {listen: 127.0.0.1:${ADMIN_PORTS[$i]}, token: $TOKEN}
state: $WORK/state-$SETUP-$i
$(drill_sites $ORIGIN_PORT $((CONCURRENCY * 2)))
EOF
  if [ -n "$url" ]; then
    printf 'fleet: {url: "%s", node: node%s%s%s}\n' "$url" "$i" "${MODE_TTL:+, mode_ttl: $MODE_TTL}" \
      "${TRAFFIC_INTERVAL:+, traffic_interval: $TRAFFIC_INTERVAL}" >> "$WORK/node$i.yaml"
  fi
}

# watch_modes NODES: prints "MILLISECONDS nodeI MODE" whenever node I's site changes mode (polled
# every 100 ms through its admin API) until killed.
watch_modes() {
  local nodes=$1 i mode last=()
  while true; do
    for ((i = 0; i < nodes; i++)); do
      mode=$(curl -s -m 1 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${ADMIN_PORTS[$i]}/api/sites" | grep -o '"mode":"[a-z_]*"' | head -1 | cut -d'"' -f4)
      if [ -n "$mode" ] && [ "$mode" != "${last[$i]:-}" ]; then
        echo "$(date +%s%3N) node$i $mode"
        last[$i]=$mode
      fi
    done
    sleep 0.1
  done
}

# run_setup NAME NODES FLEET_URL: starts NODES nodes, runs the drill across them, stops them.
run_setup() {
  SETUP=$1
  local nodes=$2 url=${3:-} targets="" i pids=()
  for ((i = 0; i < nodes; i++)); do
    node_config $i "$url"
    "$BIN/rampart" run --config "$WORK/node$i.yaml" --log-level notice > "$WORK/$SETUP-node$i.log" 2>&1 &
    pids+=($!)
    targets+="${targets:+,}127.0.0.1:${NODE_PORTS[$i]}"
  done
  for ((i = 0; i < nodes; i++)); do wait_port "${NODE_PORTS[$i]}"; done
  # Every node's mode, every 100 ms, as "MILLISECONDS nodeI MODE" lines when it changes.
  watch_modes "$nodes" > "$WORK/$SETUP-modes.log" &
  local watcher=$! start
  start=$(date +%s%3N)
  "$BIN/rampart-drill" run --target "$targets" --origin 127.0.0.1:$ORIGIN_PORT --scenario "$SCENARIO" \
    --warmup "$WARMUP" --attack "$ATTACK" --cooldown "$COOLDOWN" --intensity "$INTENSITY" --users "$USERS" \
    --api-clients 0 --gateway-pid "${pids[0]}" --label "$SETUP" --json "$OUT/drill-$SETUP.json" > "$OUT/drill-$SETUP.txt" 2>"$WORK/drill-$SETUP.err"
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  cat "$OUT/drill-$SETUP.txt"
  cp "$WORK/$SETUP-modes.log" "$OUT/"
  # Time from the attack's start (the drill's warm-up after its launch) to each node's first mode.
  local attack_at=$((start + ${WARMUP%.*} * 1000))
  for ((i = 0; i < nodes; i++)); do
    cp "$WORK/$SETUP-node$i.log" "$OUT/"
    local t mode
    for mode in elevated under_attack; do
      t=$(awk -v n="node$i" -v m="$mode" '$2 == n && $3 == m { print $1; exit }' "$WORK/$SETUP-modes.log")
      if [ -n "$t" ]; then
        echo "$SETUP node$i: $mode $(awk -v d=$((t - attack_at)) 'BEGIN { printf "%.1f", d / 1000 }') s after the attack began"
      else
        echo "$SETUP node$i: never $mode"
      fi
    done
  done | tee -a "$OUT/modes.txt"
}

for setup in ${SETUPS:-one-node alone fleet}; do
  case $setup in
    one-node) run_setup one-node 1 ;;
    alone) run_setup alone 3 ;;
    fleet)
      start_postgres "$WORK" $PG_PORT
      run_setup fleet 3 "postgres://rampart@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
      ;;
    *) echo "unknown setup '$setup' (one-node, alone, fleet)" >&2; exit 2 ;;
  esac
done
echo "results in $OUT" >&2

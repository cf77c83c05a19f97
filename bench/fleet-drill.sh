#!/usr/bin/env bash
# One flood split over three Rampart nodes (each source keeps to one node, as behind an L4
# balancer with source affinity), first with the nodes alone, then as a fleet sharing a throwaway
# PostgreSQL cluster: does the fleet see the whole attack and engage as fast as one node would?
# Loopback only. Also runs one node taking the whole flood, for the reference.
#
#   WARMUP=5 ATTACK=20 COOLDOWN=5 INTENSITY=10 [SETUPS="one-node alone fleet"] bash bench/fleet-drill.sh [SCENARIO]
#
# Prints the drill's table per setup and, per node, the seconds from the attack's start to its
# first change to `elevated` and to `under_attack`. At INTENSITY=3 one node taking the whole flood
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
admin: {listen: 127.0.0.1:${ADMIN_PORTS[$i]}}
state: $WORK/state-$SETUP-$i
sites:
  - name: www
    hosts: ["*"]
    origins:
      - {address: 127.0.0.1:$ORIGIN_PORT, max_connections: $((CONCURRENCY * 2))}
EOF
  if [ -n "$url" ]; then printf 'fleet: {url: "%s", node: node%s}\n' "$url" "$i" >> "$WORK/node$i.yaml"; fi
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
  local start
  start=$(date +%s)
  "$BIN/rampart-drill" run --target "$targets" --origin 127.0.0.1:$ORIGIN_PORT --scenario "$SCENARIO" \
    --warmup "$WARMUP" --attack "$ATTACK" --cooldown "$COOLDOWN" --intensity "$INTENSITY" --users "$USERS" \
    --api-clients 0 --gateway-pid "${pids[0]}" --label "$SETUP" --json "$OUT/drill-$SETUP.json" > "$OUT/drill-$SETUP.txt" 2>"$WORK/drill-$SETUP.err"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  cat "$OUT/drill-$SETUP.txt"
  # Seconds from the attack's start to each node's first mode change (the log's ISO time stamps).
  local attack_at=$((start + ${WARMUP%.*}))
  for ((i = 0; i < nodes; i++)); do
    cp "$WORK/$SETUP-node$i.log" "$OUT/"
    local line t mode
    for mode in elevated under_attack; do
      line=$(grep "site mode changed" "$WORK/$SETUP-node$i.log" | grep -m1 "to=$mode " || true)
      if [ -n "$line" ]; then
        t=$(date -d "$(echo "$line" | cut -d' ' -f1)" +%s)
        echo "$SETUP node$i: $mode $((t - attack_at)) s after the attack began"
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

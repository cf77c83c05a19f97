#!/usr/bin/env bash
# Gateway CPU spent on a banned source's connection attempts, with bans in user space (accept and
# close) and with bans.kernel: nftables (dropped by the kernel). Runs in a network namespace it
# creates (root needed), on loopback only; the host's ruleset is untouched.
#   bench/kernel-bans.sh [RAMPART_BINARY] [ATTEMPTS]
set -euo pipefail
BIN=${1:-.build/release/rampart}
N=${2:-10000}
NS=rampart-bench-$$
DIR=$(mktemp -d)
ip netns add "$NS"
cleanup() {
  if [ -n "${GW:-}" ]; then kill "$GW" 2>/dev/null || true; fi
  ip netns delete "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ip netns exec "$NS" ip link set lo up
TOKEN=kernel-bans-bench-token-0123456789

# CPU ticks (user + system) of process $1.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_case() {  # $1: off | nftables
  cat > "$DIR/r.yaml" <<YAML
listeners: [{address: "127.0.0.1:8080"}]
admin: { listen: "127.0.0.1:9090", token: "$TOKEN" }
bans: { kernel: $1 }
sites: [{name: www, hosts: ["*"], origins: ["127.0.0.1:9"], rate_limits: []}]
YAML
  rm -rf "$DIR/state"
  ip netns exec "$NS" "$BIN" run --config "$DIR/r.yaml" --state "$DIR/state" --threads 1 > "$DIR/log-$1" 2>&1 &
  GW=$!
  sleep 3
  local pid
  pid=$(pgrep -P "$GW" rampart || echo "$GW")
  ip netns exec "$NS" curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
    -d '{"address":"127.0.0.2","ttl":600,"reason":"bench"}' http://127.0.0.1:9090/api/bans
  sleep 0.5
  local before after start end
  before=$(ticks "$pid")
  start=$(date +%s.%N)
  ip netns exec "$NS" python3 - "$N" <<'PY'
import socket, sys, collections
n = int(sys.argv[1]); window = collections.deque()
for _ in range(n):
    s = socket.socket(); s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\1\0\0\0\0\0\0\0')
    s.bind(('127.0.0.2', 0)); s.connect_ex(('127.0.0.1', 8080)); window.append(s)
    if len(window) > 200: window.popleft().close()
while window: window.popleft().close()
PY
  sleep 1
  end=$(date +%s.%N)
  after=$(ticks "$pid")
  local hz; hz=$(getconf CLK_TCK)
  local accepted
  accepted=$(ip netns exec "$NS" curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9090/metrics | awk '/^rampart_rejections_total\{reason="banned"\}/{print $2}')
  echo "bans.kernel=$1: $N attempts from a banned source, gateway CPU $(( (after - before) * 1000 / hz )) ms ($(awk -v t=$((after - before)) -v h="$hz" -v n="$N" 'BEGIN{printf "%.1f", t * 1e6 / h / n}') us per attempt), refused at accept: ${accepted:-0}"
  kill "$GW"; wait "$GW" 2>/dev/null || true
  GW=
}

run_case off
run_case nftables

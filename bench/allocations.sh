#!/usr/bin/env bash
# Allocations per proxied request of one Rampart binary, counted by heaptrack (deterministic, so
# it resolves changes a loaded machine's timings cannot): the gateway proxies N1 and then N2
# requests (h2load, 4 connections) in two runs, and the difference of the allocation calls is
# divided by N2 - N1, which cancels start-up and shutdown. Loopback only.
#
#   bench/allocations.sh BINARY [N1] [N2]        default 1000 5000
set -euo pipefail
BIN=$(realpath "${1:?binary}")
N1=${2:-1000}
N2=${3:-5000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
install_missing heaptrack:heaptrack h2load:nghttp2-client nginx:nginx-light
WORK=$(mktemp -d /tmp/rampart-alloc.XXXXXX)
chmod 755 "$WORK"
ORIGIN_PORT=18500
PROXY_PORT=18580
PIDS=()
trap stop_started EXIT
start_static_origin "$WORK" $ORIGIN_PORT
bench_proxy_config "$WORK/rampart.yaml" $PROXY_PORT $ORIGIN_PORT

calls() {  # requests -> allocation calls over the whole run
  local out="$WORK/ht-$1"
  # A gateway left from an earlier run would answer instead of the one measured.
  if (exec 3<>/dev/tcp/127.0.0.1/$PROXY_PORT) 2>/dev/null; then echo "port $PROXY_PORT is taken" >&2; exit 1; fi
  heaptrack -o "$out" "$BIN" run --config "$WORK/rampart.yaml" --state "$WORK/state-$1" --admin 127.0.0.1:0 > "$WORK/rampart-$1.log" 2>&1 &
  local hp=$!
  wait_port $PROXY_PORT
  h2load --h1 -n "$1" -c 4 "http://127.0.0.1:$PROXY_PORT/" | grep -qE "^requests: .* $1 succeeded" || { echo "not every request succeeded" >&2; exit 1; }
  # SIGTERM to the gateway itself (not heaptrack's wrapper nor its interpreter), so it exits
  # cleanly and heaptrack writes its file out.
  pkill -TERM -f "^$BIN run --config" || true
  wait $hp 2>/dev/null || true
  while (exec 3<>/dev/tcp/127.0.0.1/$PROXY_PORT) 2>/dev/null; do sleep 0.2; done
  for _ in $(seq 1 50); do [ -n "$(ls "$out".* 2>/dev/null)" ] && break; sleep 0.2; done
  heaptrack_print -f "$(ls "$out".*)" 2>/dev/null | awk -F': ' '/^calls to allocation functions/ {split($2, a, " "); print a[1]}'
}

a=$(calls "$N1")
b=$(calls "$N2")
awk -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" 'BEGIN { printf "%s: %.2f allocations per proxied request (%d calls for %d requests, %d for %d)\n", "'"$(basename "$BIN")"'", (b - a) / (n2 - n1), a, n1, b, n2 }'

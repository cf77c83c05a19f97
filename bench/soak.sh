#!/usr/bin/env bash
# Memory soak: one request from each of ADDRESSES distinct client addresses (connections bound to
# 127.a.b.c, a fresh one each) to a one-site gateway on its defaults, at a steady rate over SECONDS
# (0: as fast as it goes), the gateway's resident memory sampled every SAMPLE seconds. Loopback only.
#
#   bench/soak.sh [ADDRESSES] [SECONDS] [CONFIGURATION] [SAMPLE]
#
# Defaults: 10,000,000 addresses over 1,800 s on a release build, sampled every 10 s. It runs the
# integration test MemorySoakTests (the same test CI runs with 150,000 addresses, debug build) and
# writes the curve to bench/results/soak-ADDRESSES.csv (seconds, addresses sent, RSS MB). The test
# fails when RSS grows more than 10% after the first minute (the first tenth of the addresses when
# SECONDS is 0) or passes 200 MB.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ADDRESSES=${1:-10000000}
SECONDS_TOTAL=${2:-1800}
CONFIGURATION=${3:-release}
SAMPLE=${4:-10}
OUT="$ROOT/bench/results"
mkdir -p "$OUT"
CSV="$OUT/soak-$ADDRESSES.csv"

cd "$ROOT"
vars=(RAMPART_SOAK_ADDRESSES="$ADDRESSES" RAMPART_SOAK_SAMPLE_SECONDS="$SAMPLE" RAMPART_SOAK_CSV="$CSV")
[ "$SECONDS_TOTAL" != 0 ] && vars+=(RAMPART_SOAK_SECONDS="$SECONDS_TOTAL")
# The gateway under test is the CONFIGURATION build of `rampart`; the test (the client side) runs
# from the debug test bundle (RAMPART_BINARY_DIR points it at the other build's binaries).
swift build --build-tests >/dev/null
if [ "$CONFIGURATION" != debug ]; then
  swift build -c "$CONFIGURATION" --product rampart >/dev/null
  vars+=(RAMPART_BINARY_DIR="$ROOT/.build/$CONFIGURATION")
fi
env "${vars[@]}" swift test --skip-build --filter MemorySoakTests
echo "curve: $CSV"

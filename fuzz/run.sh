#!/usr/bin/env bash
# Builds Rampart's libFuzzer targets and runs each for SECONDS (default 20).
#
#   fuzz/run.sh [SECONDS] [TARGET...]      # all targets when none is named
#   fuzz/run.sh --build-only
#   fuzz/run.sh --list
#
# Exits non-zero when any target finds a crash, an ASan/LeakSanitizer report, a timeout, an
# out-of-memory or a property violation; the input is saved under fuzz/artifacts/TARGET/.
# Environment:
#   FUZZ_CONFIG=debug|release   SwiftPM configuration of the instrumented build (default debug)
#   FUZZ_FLAGS="..."            extra libFuzzer flags for every run (e.g. -jobs=2 -workers=2)
#   FUZZ_NICE=N                 run the fuzzers under `nice -n N` (default 0)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
build="$here/.build"
config="${FUZZ_CONFIG:-debug}"
bin_dir="$build/fuzzers"
binary="$bin_dir/rampart-fuzz"
all_targets=(http1-framing forward-rewrite proxy-protocol client-hello clearance config replay-log)

# Per-target input size bounds (bytes): a bound near the largest real input keeps runs fast.
max_len() {
  case "$1" in
    client-hello) echo 9000 ;;   # ClientHello.maximumBytes is 8192, plus record headers
    proxy-protocol) echo 2100 ;; # ProxyProtocol.v2MaxLength is 2064
    config) echo 4096 ;;
    *) echo 4096 ;;
  esac
}

build_fuzzers() {
  echo "== building the instrumented package ($config) in $build"
  local started=$SECONDS
  # Coverage and ASan instrumentation for every module (Rampart, NIO with llhttp, Yams with
  # libyaml, swift-crypto). The product is a static library: SwiftPM builds only what it needs and
  # lists its objects, but cannot link a libFuzzer binary itself (its executables bring a main).
  # The flags are spelled for each compiler: swiftc keeps only the last `-sanitize=` it is given,
  # so SwiftPM's `--sanitize fuzzer --sanitize address` would leave Swift code without coverage.
  swift build --package-path "$here" --scratch-path "$build" -c "$config" --product RampartFuzz \
    -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address
  local out objects
  out="$(swift build --package-path "$here" --scratch-path "$build" -c "$config" --show-bin-path)"
  objects="$out/RampartFuzz.product/Objects.LinkFileList"
  [ -s "$objects" ] || { echo "no object list at $objects" >&2; exit 1; }
  mkdir -p "$bin_dir"
  echo "== linking $(wc -l < "$objects") objects into $binary"
  # lld: gold warns about every ASan helper symbol it cannot export.
  swiftc -sanitize=fuzzer,address -use-ld=lld -o "$binary" @"$objects"
  for t in "${all_targets[@]}"; do ln -sf rampart-fuzz "$bin_dir/$t"; done
  echo "== build took $((SECONDS - started)) s"
}

seconds=20
targets=()
build_only=0
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=1 ;;
    --list) printf '%s\n' "${all_targets[@]}"; exit 0 ;;
    ''|*[!0-9]*) targets+=("$arg") ;;
    *) seconds="$arg" ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "unknown target '$t'; targets: ${all_targets[*]}" >&2; exit 2; }
done

build_fuzzers
[ "$build_only" -eq 0 ] || exit 0

# Swift's own crash backtracer reads the stack in ways ASan reports as errors; libFuzzer prints
# the stack of a trap itself.
export SWIFT_BACKTRACE=enable=no
nice_cmd=()
[ "${FUZZ_NICE:-0}" -eq 0 ] || nice_cmd=(nice -n "$FUZZ_NICE")
read -r -a extra <<< "${FUZZ_FLAGS:-}"
failed=()
summary=()
for t in "${targets[@]}"; do
  seeds="$here/corpus/$t"
  work="$build/corpus/$t"        # what the fuzzer learns; kept between local runs, never committed
  artifacts="$here/artifacts/$t/"
  log="$build/logs/$t.log"
  mkdir -p "$seeds" "$work" "$artifacts" "$(dirname "$log")"
  echo "== $t: ${seconds} s"
  started=$SECONDS
  set +e
  "${nice_cmd[@]}" "$bin_dir/$t" "$work" "$seeds" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -max_len="$(max_len "$t")" \
    -artifact_prefix="$artifacts" -print_final_stats=1 "${extra[@]}" > "$log" 2>&1
  status=$?
  set -e
  elapsed=$((SECONDS - started))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  last="$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[^ ]*' | tail -1 || true)"
  line="$t: status $status, ${elapsed} s, ${execs:-?} executions (${rate:-?}/s), ${last:-no coverage line}, corpus files $(find "$work" -type f | wc -l)"
  summary+=("$line")
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "!! $t FAILED (exit $status); log: $log"
    grep -E 'PROPERTY VIOLATED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY|Fatal error|artifact_prefix|Test unit written' "$log" | head -20 || true
  fi
  echo "   $line"
done

echo "== summary"
printf '   %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED: ${failed[*]} (inputs in $here/artifacts/, logs in $build/logs/)"
  exit 1
fi
echo "== all ${#targets[@]} targets passed"

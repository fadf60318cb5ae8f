#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS | --smoke] — builds the libFuzzer harnesses of
# test/fuzz/ (clang-22, ASan + UBSan, into build-fuzz/) and runs each on its
# corpus for SECONDS (default 60). --smoke (the test suite's FuzzSmoke) runs
# each for a fixed 20000 inputs from a fixed seed instead: the same inputs on
# every machine, so CI never fails on a finding another run happened to
# reach; long runs find new ones. The committed seeds (test/fuzz/corpus/<harness>/) are
# read, never written: new inputs go to build-fuzz/corpus/<harness>/. A
# crash, leak, sanitizer report or timeout (10 s per input) leaves its input
# in build-fuzz/findings/ and makes the script fail; add each one to the
# harness's seeds as a regression test once it is fixed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
if [[ "$seconds" == --smoke ]]; then
  budget=(-runs=20000 -seed=1)
  what="a fixed 20000 from seed 1"
else
  budget=(-max_total_time="$seconds")
  what="in ${seconds}s"
fi
build=${KILN_FUZZ_BUILD_DIR:-$root/build-fuzz}
clangxx=${KILN_FUZZ_CXX:-clang++-22}
if ! command -v "$clangxx" > /dev/null; then
  echo "fuzz: skipped: $clangxx not found (Debian: clang-22 libclang-rt-22-dev, which scripts/install-deps.sh installs)" >&2
  exit 77
fi
mkdir -p "$build"
cmake -S "$root/test/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$clangxx" \
  -DCMAKE_BUILD_TYPE=Release > "$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" > "$build/build.log" 2>&1 || { tail -50 "$build/build.log"; exit 1; }

mkdir -p "$build/findings"
"$build/make_seeds" "$build/seeds"
failed=0
for harness in spec safetensors checkpoint tokens kiln_ir; do
  work="$build/corpus/$harness"
  mkdir -p "$work"
  seeds=("$root/test/fuzz/corpus/$harness")
  [[ -d "$build/seeds/$harness" ]] && seeds+=("$build/seeds/$harness")
  [[ "$harness" == spec ]] && seeds+=("$root/models")
  # Every lit test's IR, valid and invalid (-verify-diagnostics inputs).
  [[ "$harness" == kiln_ir ]] && seeds+=("$root/test/Dialect" "$root/test/Passes")
  log="$build/$harness.log"
  # The first corpus directory collects new inputs; the rest are read.
  if ASAN_OPTIONS=detect_leaks=1 "$build/fuzz_$harness" "$work" "${seeds[@]}" \
      "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$build/findings/$harness-" -print_final_stats=1 > "$log" 2>&1; then
    echo "fuzz: $harness: $(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$') runs ($what), corpus $(ls "$work" | wc -l) inputs, no findings"
  else
    echo "fuzz: $harness: FAILED (log $log, input in $build/findings/)"
    grep -E "ERROR|runtime error|SUMMARY|==[0-9]+==" "$log" | head -5
    failed=1
  fi
done
exit $failed

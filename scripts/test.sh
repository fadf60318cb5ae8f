#!/usr/bin/env bash
# README command 2: install and build what is missing, then run every test
# (lit + ctest) and end with one line counting what passed and failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/build-dir.sh"
"$root/scripts/install-deps.sh" || exit 1
"$root/scripts/build.sh" || exit 1

log=$(mktemp -d)
/usr/lib/llvm-22/bin/lit -sv "$build/test" 2>&1 | tee "$log/lit.txt"
# The fuzzers are built with ASan + UBSan whatever the build; a sanitized
# suite does not build and run them a second time.
exclude=()
[[ -n "${KILN_SANITIZE:-}" ]] && exclude=(-E '^FuzzSmoke$')
(cd "$build" && ctest --output-on-failure -j "${KILN_JOBS:-2}" "${exclude[@]}") 2>&1 | tee "$log/ctest.txt"

count() { grep -E "^\s*$1 *: *[0-9]+" "$2" | head -1 | grep -oE '[0-9]+' | head -1; }
lit_pass=$(count Passed "$log/lit.txt"); lit_pass=${lit_pass:-0}
lit_fail=0
for k in Failed Unresolved "Timed Out" "Unexpectedly Passed"; do
  n=$(count "$k" "$log/lit.txt"); lit_fail=$((lit_fail + ${n:-0}))
done
lit_skip=$(count Unsupported "$log/lit.txt"); lit_skip=${lit_skip:-0}
ct_line=$(grep -E "tests passed, [0-9]+ tests failed out of" "$log/ctest.txt" | tail -1)
ct_total=$(echo "$ct_line" | grep -oE 'out of [0-9]+' | grep -oE '[0-9]+'); ct_total=${ct_total:-0}
ct_fail=$(echo "$ct_line" | grep -oE '[0-9]+ tests failed' | grep -oE '[0-9]+'); ct_fail=${ct_fail:-0}
ct_skip=$(grep -cE "\*\*\*Skipped|Not Run" "$log/ctest.txt" || true)
ct_pass=$((ct_total - ct_fail - ct_skip))
[[ -n "$ct_line" ]] || grep -q "No tests were found" "$log/ctest.txt" || ct_fail=$((ct_fail + 1)) # ctest did not run

passed=$((lit_pass + ct_pass)); failed=$((lit_fail + ct_fail)); skipped=$((lit_skip + ct_skip))
echo "lit: $lit_pass passed, $lit_fail failed, $lit_skip unsupported; ctest: $ct_pass passed, $ct_fail failed, $ct_skip skipped"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 && $passed -gt 0 ]]

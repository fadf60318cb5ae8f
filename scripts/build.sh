#!/usr/bin/env bash
# Configures (once) and builds Kiln with Ninja into build/ (or $KILN_BUILD_DIR).
# KILN_SANITIZE=address,undefined builds a sanitized Kiln into build-sanitize/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/build-dir.sh"
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit -DKILN_SANITIZE="${KILN_SANITIZE:-}"
fi
# Two jobs: what a 2-core, 24 GB machine sustains; each heavy TU needs ~2 GB.
ninja -C "$build" -j "${KILN_JOBS:-2}"

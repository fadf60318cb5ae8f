#!/usr/bin/env bash
# The one prepared GPU check of the CUDA target (issue 16), under 8 minutes on
# one H100: the GEMM launchers against the host kernels and their TFLOPS,
# r1-tiny trained 20 steps on the GPU against the host program (fp32, bf16,
# fp8), r1-mini tokens/s and MFU. Appends its numbers, the date, the device
# and this command to bench/RESULTS-gpu.md. Without a GPU it says so and
# exits 0. Builds Kiln first if build/ has no kilnc.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/build-dir.sh"
[[ -x "$build/bin/kilnc" ]] || "$root/scripts/build.sh"
exec python3 "$root/bench/gpu_check.py" --root "$root" --build "$build" "$@"

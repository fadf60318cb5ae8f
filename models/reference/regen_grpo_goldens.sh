#!/usr/bin/env bash
# Regenerates the GRPO goldens under test/Reference/goldens/: MODEL.grpo-OPTIONS.json
# for r1-tiny and dense-tiny with four train.grpo option sets (loss and per-parameter
# gradient statistics of the GRPO objective, models/reference/grpo.py), and
# advantages.grpo.json (group advantages of hand reward vectors). kilnc writes the
# seeded initial parameters; the float64 PyTorch reference does the rest. Needs
# /usr/bin/python3 with torch. GrpoGoldenTest reads the goldens.
#
#   KILNC=build/bin/kilnc models/reference/regen_grpo_goldens.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
KILNC=${KILNC:-$root/build/bin/kilnc}
py=${PYTHON:-/usr/bin/python3}
"$py" "$root/models/reference/make_grpo_goldens.py" --kilnc "$KILNC" \
  --out-dir "$root/test/Reference/goldens"

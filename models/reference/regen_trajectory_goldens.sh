#!/usr/bin/env bash
# Regenerates the trajectory goldens test/Reference/goldens/NAME.trajectory.json
# (make_trajectory_goldens.py: the first 20 float32 training steps on a synthetic corpus,
# per-step losses, lr and gradient norm, and the step-1 gradient statistics).
# kilnc writes the seeded initial parameters, kiln-corpus the token shard; the PyTorch
# reference (this directory) does the rest. Needs /usr/bin/python3 with torch.
#
#   models/reference/regen_trajectory_goldens.sh [BUILD_DIR]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/bin/kiln-corpus" --seed 1 --tokens 4096 -o "$tmp/corpus.bin"
for name in r1-tiny dense-tiny; do
  "$build/bin/kilnc" "models/$name.json" --save-params "$tmp/$name.init.safetensors"
  "$py" models/reference/make_trajectory_goldens.py --spec "models/$name.json" \
    --params "$tmp/$name.init.safetensors" --data "$tmp/corpus.bin" --steps 20 \
    --dtype float32 --out "test/Reference/goldens/$name.trajectory.json"
done
# r1-tiny with 2:4 magnitude sparsity from step 3, the mask recomputed every 4
# steps: the spec TrainExecutableFixture.h builds as r1-tiny-sparse.
"$py" - "$tmp/r1-tiny-sparse.json" <<'PY'
import json, sys
spec = json.load(open("models/r1-tiny.json"))
spec["train"]["sparsity"] = {"pattern": "2:4", "start_step": 3, "mask_every": 4}
json.dump(spec, open(sys.argv[1], "w"), indent=2)
PY
"$build/bin/kilnc" "$tmp/r1-tiny-sparse.json" --save-params "$tmp/r1-tiny-sparse.init.safetensors"
"$py" models/reference/make_trajectory_goldens.py --spec "$tmp/r1-tiny-sparse.json" \
  --params "$tmp/r1-tiny-sparse.init.safetensors" --data "$tmp/corpus.bin" --steps 20 \
  --dtype float32 --out test/Reference/goldens/r1-tiny-sparse.trajectory.json

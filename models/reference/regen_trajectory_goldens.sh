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

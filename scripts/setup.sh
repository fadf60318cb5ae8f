#!/usr/bin/env bash
# README command 1: install what is missing, build, run the main job:
# compile models/r1-tiny.json into out/r1-tiny/train (a standalone executable)
# and train it for the spec's 300 steps, with a checkpoint every 100 steps and
# the metrics in out/r1-tiny/train.jsonl. Where nvidia-smi sees a GPU, the
# spec is built for the CUDA target (sm from the GPU) and trained there; if
# that fails (the CUDA target has not run on a GPU yet: README, "The CUDA
# target"), it says why and trains on the host target instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
cd "$root"
out=${KILN_OUT_DIR:-$root/out/r1-tiny}
spec=models/r1-tiny.json
"$build/bin/kilnc" "$spec"

train() { # $1: the spec to build into $out
  "$build/bin/kilnc" "$1" -o "$out"
  # Each run of the main job starts from a clean checkpoint directory.
  rm -rf "$out/checkpoints"
  "$out/train" --checkpoint-dir "$out/checkpoints" --checkpoint-every 100 \
      --log "$out/train.jsonl"
}

sm=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '.' || true)
if [[ -n "$sm" ]]; then
  mkdir -p "$out"
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); s['target']={'kind': 'cuda', 'sm': int(sys.argv[3])}; json.dump(s, open(sys.argv[2], 'w'), indent=1)" \
      "$spec" "$out/r1-tiny-cuda.json" "$sm"
  echo "setup: a GPU (sm $sm): training r1-tiny with the CUDA target"
  if ! train "$out/r1-tiny-cuda.json"; then
    echo "setup: the CUDA run failed (above); training on the host target instead" >&2
    train "$spec"
  fi
else
  echo "setup: no GPU (nvidia-smi found none): training r1-tiny on the host target"
  train "$spec"
fi
first=$(head -n 1 "$out/train.jsonl")
last=$(tail -n 1 "$out/train.jsonl")
echo "first step: $first"
echo "last step:  $last"

#!/usr/bin/env bash
# README command 1: install what is missing, build, run the main job:
# compile models/r1-tiny.json into out/r1-tiny/train (a standalone executable)
# and train it for the spec's 300 steps on the host target, with a checkpoint
# every 100 steps and the metrics in out/r1-tiny/train.jsonl. (The CUDA target
# is not built yet, so this runs on the host even where a GPU is present.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
cd "$root"
out=${KILN_OUT_DIR:-$root/out/r1-tiny}
"$build/bin/kilnc" models/r1-tiny.json
"$build/bin/kilnc" models/r1-tiny.json -o "$out"
# Each run of the main job starts from a clean checkpoint directory.
rm -rf "$out/checkpoints"
"$out/train" --checkpoint-dir "$out/checkpoints" --checkpoint-every 100 \
    --log "$out/train.jsonl"
first=$(head -n 1 "$out/train.jsonl")
last=$(tail -n 1 "$out/train.jsonl")
echo "first step: $first"
echo "last step:  $last"

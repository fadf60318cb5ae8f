#!/usr/bin/env bash
# Regenerates the PyTorch goldens under test/Reference/goldens/ for the models
# the tests compare against: kilnc writes the seeded initial parameters and
# token batch, the independent PyTorch reference (models/reference/) computes
# loss and logits in float64. Needs python3-torch (scripts/install-deps.sh
# --with-torch); the tests themselves never do.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
out=$root/test/Reference/goldens
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
# The shipped tiny models, and variants that take the other paths (q_lora 0,
# softmax routing, group-limited greedy, MTP depth 2, untied Llama with GQA 6:1,
# label smoothing).
for spec in models/r1-tiny.json models/dense-tiny.json \
            test/Reference/specs/r1-variant.json test/Reference/specs/dense-variant.json; do
  model=$(basename "$spec" .json)
  spec=$root/$spec
  "$build/bin/kilnc" "$spec" --save-params "$tmp/$model.safetensors" \
    --save-batch "$out/$model.tokens.json"
  /usr/bin/python3 "$root/models/reference/make_goldens.py" --spec "$spec" \
    --params "$tmp/$model.safetensors" --tokens "$out/$model.tokens.json" \
    --out "$out/$model.golden.json"
done

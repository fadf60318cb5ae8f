#!/usr/bin/env bash
# Regenerates the gradient and training goldens under test/Reference/goldens/:
# NAME.grads.json (make_grad_goldens.py: main and total loss, per-parameter gradient
# statistics) and NAME.train.json (make_train_goldens.py: 3 AdamW steps on one batch).
# kilnc writes the seeded initial parameters and the token batch; the float64 PyTorch
# reference (this directory) does the rest. Needs /usr/bin/python3 with torch.
#
#   KILNC=build/bin/kilnc models/reference/regen_training_goldens.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
KILNC=${KILNC:-$root/build/bin/kilnc}
py=${PYTHON:-/usr/bin/python3}
ref=$root/models/reference
out=$root/test/Reference/goldens
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
for spec in models/r1-tiny.json models/dense-tiny.json \
            test/Reference/specs/r1-variant.json test/Reference/specs/dense-variant.json \
            test/Reference/specs/r1-balance.json; do
  name=$(basename "$spec" .json)
  spec=$root/$spec
  "$KILNC" "$spec" --save-params "$tmp/$name.safetensors" --save-batch "$tmp/$name.tokens.json"
  "$py" "$ref/make_grad_goldens.py" --spec "$spec" --params "$tmp/$name.safetensors" \
    --tokens "$tmp/$name.tokens.json" --out "$out/$name.grads.json"
  "$py" "$ref/make_train_goldens.py" --spec "$spec" --params "$tmp/$name.safetensors" \
    --tokens "$tmp/$name.tokens.json" --steps 3 --out "$out/$name.train.json"
done
# 2:4 sparsity (train.sparsity: magnitude / ASP and SR-STE): 20 steps each,
# training goldens only (Sparsity24PassTest).
for spec in test/Reference/specs/dense-sparse.json test/Reference/specs/dense-srste.json; do
  name=$(basename "$spec" .json)
  spec=$root/$spec
  "$KILNC" "$spec" --save-params "$tmp/$name.safetensors" --save-batch "$tmp/$name.tokens.json"
  "$py" "$ref/make_train_goldens.py" --spec "$spec" --params "$tmp/$name.safetensors" \
    --tokens "$tmp/$name.tokens.json" --steps 20 --out "$out/$name.train.json"
done

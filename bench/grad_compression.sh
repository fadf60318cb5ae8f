#!/usr/bin/env bash
# bench/grad_compression.sh [STEPS] — what parallel.grad_compression costs in
# loss: r1-tiny at dp 2 (mpirun -np 2, 1 thread per rank) for STEPS steps
# (default 300, the spec's own schedule) uncompressed, with top-k 5% + int8 +
# error feedback, and with the same without error feedback. Prints each
# run's final loss (main loss, mean of the last 10 steps) against the
# uncompressed run, and the gradient bytes each rank sends per step. Needs a
# built tree (./scripts/build.sh) and Open MPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
out=${KILN_BENCH_DIR:-/tmp/kiln-compression-bench}
steps=${1:-300}
mkdir -p "$out"
/usr/bin/python3 - "$root/models/r1-tiny.json" "$out" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
topk = {"method": "topk", "ratio": 0.05, "quantize": "int8"}
for name, extra in [("dense", None), ("topk_int8_ef", dict(topk, error_feedback=True)),
                    ("topk_int8", dict(topk, error_feedback=False))]:
    s = json.loads(json.dumps(spec))
    s["parallel"] = {"dp": 2}
    if extra: s["parallel"]["grad_compression"] = extra
    json.dump(s, open(f"{sys.argv[2]}/{name}.json", "w"))
PY
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; Open MPI $(mpirun --version | head -1 | awk '{print $NF}')"
echo "config: r1-tiny, dp 2 (global batch 2 x micro_batch), $steps steps, --threads 1 per rank, seed from the spec"
for v in dense topk_int8_ef topk_int8; do
  "$build/bin/kilnc" "$out/$v.json" -o "$out/$v" > /dev/null
  rm -f "$out/$v.jsonl"
  mpirun --allow-run-as-root --oversubscribe -np 2 "$out/$v/train" --steps "$steps" --threads 1 \
    --log "$out/$v.jsonl" 2> "$out/$v.err"
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def load(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}.jsonl")]
    tail = rows[-10:]
    return (sum(r["main_loss"] for r in tail) / len(tail), rows[-1].get("grad_bytes_sent"),
            rows[-1].get("grad_bytes_uncompressed"), len(rows))
base = load("dense")[0]
print("| run | steps | final main loss (mean of last 10) | vs uncompressed | gradient bytes sent per rank per step |")
print("|---|---|---|---|---|")
for name in ["dense", "topk_int8_ef", "topk_int8"]:
    loss, sent, full, n = load(name)
    sent_text = f"{sent} of {full} ({100 * sent / full:.2f}%)" if sent else "all_reduce of every gradient"
    print(f"| {name} | {n} | {loss:.4f} | {100 * (loss / base - 1):+.1f}% | {sent_text} |")
PY

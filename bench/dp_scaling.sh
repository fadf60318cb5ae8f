#!/usr/bin/env bash
# bench/dp_scaling.sh [STEPS] — r1-mini data and expert parallelism on this
# machine: dp 1 (one process, 1 thread) against dp 2 and dp 2 x ep 2
# (mpirun -np 2, 1 thread per rank, each rank the same micro_batch, so the
# global batch doubles; with ep 2 each rank holds half the routed experts and
# exchanges rows with all_to_all). Prints step time, tokens/s, rank 0's time
# and bytes in collectives per step (all groups, all_to_all included), and
# the ring all-reduce volume 2(N-1)/N x gradient bytes for comparison, and
# from rank 0's --profile table the grouped-GEMM and all_to_all time. Needs
# a built tree (./scripts/build.sh) and Open MPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
out=${KILN_BENCH_DIR:-/tmp/kiln-dp-bench}
steps=${1:-30}
mkdir -p "$out"
/usr/bin/python3 - "$root/models/r1-mini.json" "$out" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
for name, par in [("dp1", None), ("dp2", {"dp": 2}), ("ep2", {"dp": 2, "ep": 2})]:
    s = json.loads(json.dumps(spec))
    if par: s["parallel"] = par
    json.dump(s, open(f"{sys.argv[2]}/{name}.json", "w"))
PY
for v in dp1 dp2 ep2; do "$build/bin/kilnc" "$out/$v.json" -o "$out/$v" > /dev/null; done
grad_bytes=$("$build/bin/kilnc" "$out/dp1.json" --summary=json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["grad_bytes"])')
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; Open MPI $(mpirun --version | head -1 | awk '{print $NF}')"
echo "config: r1-mini, micro_batch and seq_len from the spec per rank, $steps steps, --threads 1 per rank"
rm -f "$out"/*.jsonl
"$out/dp1/train" --steps "$steps" --threads 1 --profile --log "$out/dp1.jsonl" 2> "$out/dp1.err"
for v in dp2 ep2; do
  mpirun --allow-run-as-root --oversubscribe -np 2 "$out/$v/train" --steps "$steps" --threads 1 \
    --profile --log "$out/$v.jsonl" 2> "$out/$v.err"
done
/usr/bin/python3 - "$out" "$grad_bytes" <<'PY'
import json, statistics, sys
out, grad_bytes = sys.argv[1], int(sys.argv[2])
def load(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}.jsonl")]
    rows = rows[3:]  # warm-up steps
    step = statistics.median(r2["elapsed_s"] - r1["elapsed_s"] for r1, r2 in zip(rows, rows[1:]))
    tok = statistics.median(r["tokens_per_s"] for r in rows)
    comm = statistics.median(r.get("comm_s", 0.0) for r in rows)
    nbytes = statistics.median(r.get("comm_bytes", 0) for r in rows)
    return step, tok, comm, nbytes
ring = 2 * (2 - 1) / 2 * grad_bytes
print(f"gradient bytes (f32): {grad_bytes}; ring all-reduce per rank for N = 2: 2(N-1)/N x that = {ring:.0f} bytes")
def profile(name):
    # rank 0's --profile table (all steps, warm-up included): ms per step by kernel.
    rows = {}
    for line in open(f"{out}/{name}.err"):
        parts = line.split()
        if len(parts) == 4 and parts[3].endswith("%") and parts[0] != "kernel":
            rows[parts[0]] = float(parts[2])
    return rows
print("| layout | median step (ms) | tokens/s (job) | comm s/step (rank 0) | comm bytes/step (rank 0) "
      "| grouped GEMMs fwd+bwd ms/step (rank 0) | all_to_all ms/step (rank 0) | all_to_all bytes/step (all ranks) |")
print("|---|---|---|---|---|---|---|---|")
for name in ["dp1", "dp2", "ep2"]:
    step, tok, comm, nbytes = load(name)
    rows = profile(name)
    gemm = sum(v for k, v in rows.items() if k.startswith("grouped_matmul"))
    a2a = rows.get("all_to_all", 0.0)
    last = json.loads(open(f"{out}/{name}.jsonl").readlines()[-1])
    a2a_bytes = last.get("all_to_all_bytes", "—")
    print(f"| {name} | {step*1e3:.1f} | {tok:.0f} | {comm*1e3:.1f} ms | {nbytes:.0f} | {gemm:.1f} | "
          f"{a2a:.1f} | {a2a_bytes} |")
PY

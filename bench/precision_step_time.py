#!/usr/bin/python3
"""Issue 11's benchmark: the host step in bf16 against fp32, Kiln and PyTorch, same model and threads.

For each model (r1-mini, and dense-mini: a GEMM-heavier dense model generated
here): Kiln fp32 and bf16 executables (bf16 twice: the default rule, output
head in f32, and `train.low_precision: ["head"]`, autocast's coverage) (`train --steps N --threads T`, step time
= tokens per step / tokens_per_s of each logged step, warmup dropped), and
PyTorch eager fp32 and `torch.autocast("cpu", dtype=torch.bfloat16)`
(bench/torch_step.py, same model through models/reference), R interleaved runs
each, medians. In the same run: 2048^3 matmul throughput in fp32 and bf16
through torch (the bf16 one is oneDNN's, what autocast runs on).

Usage: /usr/bin/python3 bench/precision_step_time.py [--threads T] [--reps R] [--out DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILNC = os.path.join(ROOT, "build", "bin", "kilnc")
PY = "/usr/bin/python3"
# model -> (kiln steps, torch steps, warmup dropped)
PLAN = {"r1-mini": (12, 6, 2), "dense-mini": (12, 6, 2)}
# Kiln's programs: fp32; bf16 with the spec's default rule (DeepSeek-V3's:
# the output head stays f32); bf16 with the head in bf16 as well, which is
# what autocast runs in bf16 (every nn.Linear).
VARIANTS = ("fp32", "bf16", "bf16-head")


def dense_mini():
    """A dense llama-family model whose step is mostly GEMMs."""
    with open(os.path.join(ROOT, "models", "dense-tiny.json")) as f:
        spec = json.load(f)
    spec["model"].update({"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 4,
                          "num_attention_heads": 8, "num_key_value_heads": 4,
                          "max_position_embeddings": 256})
    spec["train"].update({"micro_batch": 8, "seq_len": 256, "steps": 100})
    spec["train"]["schedule"]["warmup_steps"] = 10
    return spec


def kiln_step_ms(exe, steps, warmup, threads, log):
    subprocess.run([exe, "--steps", str(steps), "--threads", str(threads), "--log", log],
                   check=True, capture_output=True)
    with open(log) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    return lines


def torch_step_ms(spec, steps, threads, autocast):
    out = subprocess.run([PY, os.path.join(ROOT, "bench", "torch_step.py"), spec, "--steps",
                          str(steps), "--threads", str(threads), "--autocast", autocast],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["step_s"]


def matmul_gflops(dtype, threads):
    code = ("import torch,time; torch.set_num_threads(%d); n=2048; a=torch.randn(n,n).to(%s); "
            "b=torch.randn(n,n).to(%s); torch.matmul(a,b); t=time.perf_counter(); r=5\n"
            "for _ in range(r): torch.matmul(a,b)\n"
            "print(2*n**3*r/(time.perf_counter()-t)/1e9)") % (threads, dtype, dtype)
    return float(subprocess.run([PY, "-c", code], check=True, capture_output=True,
                                text=True).stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="/tmp/kiln-precision-bench")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    specs = {}
    for model in PLAN:
        if model == "dense-mini":
            spec = dense_mini()
        else:
            with open(os.path.join(ROOT, "models", model + ".json")) as f:
                spec = json.load(f)
        for precision in VARIANTS:
            s = json.loads(json.dumps(spec))
            s["train"]["precision"] = precision[:4]
            if precision == "bf16-head":  # autocast's coverage: the output head in bf16 too
                s["train"]["low_precision"] = ["head"]
            path = os.path.join(args.out, "%s-%s.json" % (model, precision))
            with open(path, "w") as f:
                json.dump(s, f)
            subprocess.run([KILNC, path, "-o", path[:-5]], check=True, capture_output=True)
            specs[(model, precision)] = path
    results = {}
    peaks = {"fp32": [], "bf16": []}
    for rep in range(args.reps):
        for dtype, key in (("torch.float32", "fp32"), ("torch.bfloat16", "bf16")):
            peaks[key].append(matmul_gflops(dtype, args.threads))
        for model, (ksteps, tsteps, warm) in PLAN.items():
            for precision in VARIANTS:
                path = specs[(model, precision)]
                lines = kiln_step_ms(path[:-5] + "/train", ksteps, warm, args.threads,
                                     "%s-%d.jsonl" % (path[:-5], rep))
                tokens = None
                with open(path) as f:
                    t = json.load(f)["train"]
                    tokens = t["micro_batch"] * t["seq_len"]
                results.setdefault((model, "kiln", precision), []).extend(
                    1000 * tokens / l["tokens_per_s"] for l in lines[warm:])
                if precision == "bf16-head":
                    continue
                steps = torch_step_ms(specs[(model, "fp32")], tsteps, args.threads,
                                      "bf16" if precision == "bf16" else "none")
                results.setdefault((model, "torch", precision), []).extend(
                    1000 * s for s in steps[warm:])
            print("rep %d done" % rep, file=sys.stderr, flush=True)
    print("| model | Kiln fp32 ms | Kiln bf16 ms | Kiln bf16, head bf16 ms | PyTorch fp32 ms | "
          "PyTorch autocast bf16 ms | Kiln bf16 / best PyTorch | Kiln bf16 / Kiln fp32 | "
          "head bf16: / best PyTorch, / Kiln fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in PLAN:
        m = {k: statistics.median(results[(model,) + k]) for k in
             (("kiln", "fp32"), ("kiln", "bf16"), ("kiln", "bf16-head"), ("torch", "fp32"),
              ("torch", "bf16"))}
        best = min(m[("torch", "fp32")], m[("torch", "bf16")])
        print("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f, %.2f |" % (
            model, m[("kiln", "fp32")], m[("kiln", "bf16")], m[("kiln", "bf16-head")],
            m[("torch", "fp32")], m[("torch", "bf16")], m[("kiln", "bf16")] / best,
            m[("kiln", "bf16")] / m[("kiln", "fp32")], m[("kiln", "bf16-head")] / best,
            m[("kiln", "bf16-head")] / m[("kiln", "fp32")]))
    print()
    print("torch 2048^3 matmul, %d threads: fp32 %s GFLOP/s, bf16 (oneDNN) %s GFLOP/s" % (
        args.threads, ", ".join("%.0f" % p for p in peaks["fp32"]),
        ", ".join("%.0f" % p for p in peaks["bf16"])))


if __name__ == "__main__":
    main()

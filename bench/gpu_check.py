#!/usr/bin/env python3
"""Issue 16's one prepared GPU check (scripts/gpu-check.sh runs it): under 8 minutes on one H100.

1. GEMMs: test/cuda/gemm_check.cu (every CUDA GEMM launcher against the host
   kernel; cuBLASLt bf16 and FP8 TFLOPS against the card's peak).
2. r1-tiny 20 steps on the GPU against the host program, same spec and seed:
   fp32 within 1e-4 (relative, per step's loss), bf16 and fp8 within 5e-3
   (issue 11's bound for 20 r1-tiny steps against fp32; GPU and host of one
   precision differ only in summation order and cuBLASLt's accumulation).
3. r1-mini on the GPU, fp32 and bf16, 30 steps: tokens/s (median of steps
   11-30) and MFU = tokens/s x 3 x forward FLOPs per token (kilnc
   --summary=json, MTP included) / the card's dense peak for the precision;
   and bf16's `train --profile` table (time per kernel, event pairs).
4. Data parallelism over NCCL, where the machine has two or more GPUs:
   r1-tiny dp 2 (`mpirun -np 2`, one GPU per rank) trained 20 steps on the
   GPUs against the host dp 2 program (same spec, seed and data shards):
   fp32 within 1e-4 relative per step's loss, as the single-GPU check (the
   collectives reduce in rank order on both: only the kernels' own order
   differs). With fewer GPUs: "not run: needs 2 GPUs". Expert and pipeline
   parallelism are not built for the CUDA target.

Appends date, device, command and numbers to bench/RESULTS-gpu.md. Without a
GPU it says so and writes nothing.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

# Dense peaks (TFLOPS) by device name: fp32 on CUDA cores (cuBLASLt's f32
# GEMMs without TF32), bf16 and fp8 on tensor cores (no sparsity).
PEAKS = {
    "H100 80GB HBM3": {"fp32": 66.9, "bf16": 989.4, "fp8": 1978.9},
    "H100 SXM": {"fp32": 66.9, "bf16": 989.4, "fp8": 1978.9},
    "H100 PCIe": {"fp32": 51.2, "bf16": 756.0, "fp8": 1513.0},
    "H200": {"fp32": 66.9, "bf16": 989.4, "fp8": 1978.9},
}


def peaks_for(device):
    for name, peaks in PEAKS.items():
        if name in device:
            return peaks
    return None


def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def spec_for(root, model, target, precision, work, dp=1):
    with open(os.path.join(root, "models", model + ".json")) as f:
        spec = json.load(f)
    spec["train"]["precision"] = precision
    spec["target"] = {"kind": "cuda", "sm": 90} if target == "cuda" else "host"
    if dp > 1:
        spec["parallel"] = {"dp": dp}
    path = os.path.join(work, "%s-%s-%s%s.json" % (model, precision, target,
                                                   "-dp%d" % dp if dp > 1 else ""))
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def build(kilnc, spec, out):
    r = run([kilnc, spec, "-o", out])
    if r.returncode != 0:
        raise RuntimeError("kilnc %s failed:\n%s" % (spec, r.stderr))
    return os.path.join(out, "train")


def train(exe, steps, log, threads="16", ranks=1, extra=()):
    launch = (["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks)]
              if ranks > 1 else [])
    r = run(launch + [exe, "--steps", str(steps), "--threads", threads, "--log", log] +
            list(extra), timeout=600)
    if r.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (exe, r.stderr))
    train.stderr = r.stderr
    with open(log) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--build", default=None)
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    root = args.root
    build_dir = args.build or os.environ.get("KILN_BUILD_DIR", os.path.join(root, "build"))
    kilnc = os.path.join(build_dir, "bin", "kilnc")
    try:
        smi = run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    except FileNotFoundError:
        smi = None
    if smi is None or smi.returncode != 0 or not smi.stdout.strip():
        print("gpu-check: no GPU here (nvidia-smi found none); nothing was run")
        return 0
    device = smi.stdout.strip().splitlines()[0]
    peaks = peaks_for(device)
    work = tempfile.mkdtemp(prefix="kiln-gpu-check-")
    lines = ["", "## %s, %s" % (datetime.date.today().isoformat(), device), "",
             "Command: `scripts/gpu-check.sh` (bench/gpu_check.py), work dir %s." % work, ""]
    failed = False

    # 1. GEMMs.
    nvcc = os.environ.get("NVCC", "/usr/local/cuda/bin/nvcc")
    gemm = os.path.join(work, "gemm_check")
    r = run([nvcc, "-arch=sm_90a", "-std=c++17", "-O3", "-I" + root,
             os.path.join(root, "test", "cuda", "gemm_check.cu"),
             os.path.join(build_dir, "runtime", "kernels", "libKilnKernels.a")] +
            (["-ldnnl"] if os.path.exists("/usr/lib/x86_64-linux-gnu/libdnnl.so") else []) +
            ["-lcublasLt",
             "-lcudart", "-Xcompiler", "-fopenmp", "-lopenblas", "-o", gemm])
    if r.returncode != 0:
        lines += ["GEMM check: did not build:", "```", r.stderr[-3000:], "```"]
        failed = True
    else:
        r = run([gemm], timeout=300)
        lines += ["### GEMMs (test/cuda/gemm_check.cu)", "", r.stdout.strip(), ""]
        failed |= r.returncode != 0

    # 2. r1-tiny on the GPU against the host.
    lines += ["### r1-tiny, 20 steps, GPU against the host program", "",
              "| precision | max relative loss gap | bound | result |", "|---|---|---|---|"]
    for precision, bound in (("fp32", 1e-4), ("bf16", 5e-3), ("fp8", 5e-3)):
        try:
            logs = {}
            for target in ("host", "cuda"):
                exe = build(kilnc, spec_for(root, "r1-tiny", target, precision, work),
                            os.path.join(work, "r1-tiny-%s-%s" % (precision, target)))
                logs[target] = train(exe, 20, os.path.join(work, "%s-%s.jsonl" % (precision, target)))
            gap = max(abs(g["loss"] - h["loss"]) / abs(h["loss"])
                      for g, h in zip(logs["cuda"], logs["host"]))
            ok = gap <= bound and len(logs["cuda"]) == 20
            lines.append("| %s | %.3g | %g | %s |" % (precision, gap, bound, "ok" if ok else "FAIL"))
            failed |= not ok
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            lines.append("| %s | - | %g | FAIL: %s |" % (precision, bound,
                                                        str(e).splitlines()[0][:200]))
            failed = True
    lines.append("")

    # 3. r1-mini throughput and MFU.
    summary = json.loads(run([kilnc, os.path.join(root, "models", "r1-mini.json"),
                              "--summary=json"]).stdout)
    flops = 3 * (summary["flops_per_token"] + summary["flops_per_token_mtp"])
    lines += ["### r1-mini on the GPU, 30 steps", "",
              "Training FLOPs per token: 3 x %.4g (forward, MTP included)." % (flops / 3), "",
              "| precision | tokens/s (median, steps 11-30) | MFU |", "|---|---|---|"]
    for precision in ("fp32", "bf16"):
        try:
            exe = build(kilnc, spec_for(root, "r1-mini", "cuda", precision, work),
                        os.path.join(work, "r1-mini-%s" % precision))
            log = train(exe, 30, os.path.join(work, "r1-mini-%s.jsonl" % precision))
            rate = statistics.median(l["tokens_per_s"] for l in log[10:])
            mfu = "%.2f%% of %.0f TFLOPS" % (100 * rate * flops / (peaks[precision] * 1e12),
                                             peaks[precision]) if peaks else "unknown peak"
            lines.append("| %s | %.0f | %s |" % (precision, rate, mfu))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            lines.append("| %s | FAIL: %s | |" % (precision, str(e).splitlines()[0][:200]))
            failed = True
    lines.append("")
    # Where r1-mini's bf16 step goes on the GPU: `train --profile` (an event
    # pair per launch, eager steps: runtime/cuda/KernelEvents.cuh).
    try:
        exe = os.path.join(work, "r1-mini-bf16", "train")
        train(exe, 10, os.path.join(work, "r1-mini-bf16-profile.jsonl"), extra=["--profile"])
        table = [l for l in train.stderr.splitlines() if l.startswith("kernel profile") or
                 l.startswith("  ")]
        lines += ["r1-mini bf16, `train --steps 10 --profile` (eager steps):", "", "```"] + \
            table[:16] + ["```", ""]
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        lines += ["r1-mini bf16 --profile: FAIL: %s" % str(e).splitlines()[0][:200], ""]
        failed = True

    # 4. Data parallelism over NCCL: r1-tiny dp 2 on two GPUs against the
    # host dp 2 program.
    gpus = len([l for l in smi.stdout.splitlines() if l.strip()])
    lines += ["### r1-tiny dp 2 over NCCL, 20 steps, GPUs against the host dp 2 program", ""]
    if gpus < 2:
        lines += ["not run: needs 2 GPUs (this machine has %d)." % gpus, ""]
    else:
        lines += ["| precision | max relative loss gap | bound | result |", "|---|---|---|---|"]
        try:
            logs = {}
            for target in ("host", "cuda"):
                exe = build(kilnc, spec_for(root, "r1-tiny", target, "fp32", work, dp=2),
                            os.path.join(work, "r1-tiny-fp32-%s-dp2" % target))
                logs[target] = train(exe, 20, os.path.join(work, "fp32-%s-dp2.jsonl" % target),
                                     threads="4", ranks=2)
            gap = max(abs(g["loss"] - h["loss"]) / abs(h["loss"])
                      for g, h in zip(logs["cuda"], logs["host"]))
            ok = gap <= 1e-4 and len(logs["cuda"]) == 20
            lines.append("| fp32 | %.3g | 1e-4 | %s |" % (gap, "ok" if ok else "FAIL"))
            failed |= not ok
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            lines.append("| fp32 | - | 1e-4 | FAIL: %s |" % str(e).splitlines()[0][:200])
            failed = True
        lines.append("")
    lines += ["NCCL expert and pipeline parallelism: not run (not built for the CUDA target).",
              ""]

    text = "\n".join(lines)
    print(text)
    results = args.results or os.path.join(root, "bench", "RESULTS-gpu.md")
    with open(results, "a") as f:
        f.write(text + "\n")
    print("gpu-check: appended to %s%s" % (results, "; some checks FAILED" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Host (CPU) training-step time: Kiln executable vs PyTorch eager fp32, same model/shapes.

For each model: kilnc -> DIR/train; run it R times (--steps N, --threads T), per-step time =
batch*seq/tokens_per_s from the jsonl log (the step alone), warmup steps dropped, median
over all kept steps of all runs. PyTorch: bench/torch_step.py (reference forward + losses,
backward, clip, AdamW, bias update) R times, same treatment. Kiln and PyTorch runs are
interleaved so that load from other users of the machine hits both alike.
Also: OpenBLAS sgemm peak (bench/sgemm_peak.c, T threads), GEMM FLOPs per step counted
from `kilnc --emit=kernels`, and a `perf` profile of the Kiln executable.

Usage: /usr/bin/python3 bench/host_step_time.py [--threads T] [--reps R] [--out DIR]
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILNC = os.path.join(ROOT, "build", "bin", "kilnc")
PY = "/usr/bin/python3"

# model -> (kiln steps, torch steps, warmup steps dropped from both)
PLAN = {"dense-tiny": (200, 60, 10), "r1-tiny": (200, 40, 10), "r1-mini": (25, 12, 3)}
GEMMS = ("linear", "linear_dgrad", "linear_wgrad",
         "grouped_matmul", "grouped_matmul_dgrad", "grouped_matmul_wgrad")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, text=True,
                          capture_output=True, **kw).stdout


def retry(fn, *a, tries=4):
    """kilnc / its runtime libraries may be rebuilt by someone else while we run: retry."""
    import time
    for i in range(tries):
        try:
            return fn(*a)
        except (OSError, subprocess.CalledProcessError) as e:
            if i == tries - 1:
                raise
            log(f"retrying after: {e}")
            time.sleep(15)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def shape_of(s):
    """'4x256x128xf32' -> ([4,256,128], 'f32')."""
    parts = s.split("x")
    return [int(p) for p in parts[:-1]], parts[-1]


def kernel_stats(spec):
    """Params, active params, GEMM FLOPs and attention FLOPs per step from the kernel IR."""
    ir = sh([KILNC, spec, "--emit=kernels"])
    params = active = 0
    moe = json.load(open(spec))["model"]
    E = moe.get("n_routed_experts") or 0
    K = moe.get("num_experts_per_tok") or 0
    sig = next(ln for ln in ir.splitlines() if "func.func @train_step" in ln)
    for m in re.finditer(r"memref<([0-9x]+xf32)> \{([^}]*)\}", sig):
        attrs = m.group(2)
        if "kiln.param" not in attrs or "kiln.state" in attrs or "kiln.trainable = false" in attrs:
            continue
        dims, _ = shape_of(m.group(1))
        n = math.prod(dims)
        params += n
        active += n * K // E if ".experts.*." in attrs and E else n
    gemm = attn = 0
    calls = {}
    for m in re.finditer(r'kiln_kernel\.launch "([a-z_0-9]+)"\(([^)]*)\) -> \(([^)]*)\)', ir):
        name = m.group(1)
        shapes = [shape_of(s) for s in re.findall(r"memref<([0-9x]+x[a-z0-9]+)>",
                                                   m.group(2) + m.group(3))]
        if name in GEMMS:
            f32 = [d for d, t in shapes if t == "f32"]
            if name.startswith("grouped"):
                f32 = [d[1:] if len(d) == 3 else d for d in f32]  # drop the expert dim
            mnk2 = math.prod(math.prod(d) for d in f32)
            mnk = math.isqrt(mnk2)
            assert mnk * mnk == mnk2, (name, f32)
            gemm += 2 * mnk
            calls[name] = calls.get(name, 0) + 1
        elif name in ("attention", "attention_grad"):
            q, _ = shapes[0]
            v, _ = shapes[2]
            b, s, h, dqk = q
            dv = v[3]
            fwd = b * h * s * s * (dqk + dv)  # 2*S*S*(dqk+dv)/2 (causal half), per b,h
            attn += fwd if name == "attention" else 2 * fwd
    return {"params": params, "active_params": active, "gemm_flops": gemm,
            "attn_flops_causal": attn, "gemm_launches": calls}


def kiln_run(train, steps, threads, logpath):
    if os.path.exists(logpath):
        os.remove(logpath)
    sh([train, "--steps", str(steps), "--threads", str(threads), "--log", logpath])
    return [json.loads(ln) for ln in open(logpath) if ln.strip()]


def torch_run(spec, steps, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    out = sh([PY, os.path.join(ROOT, "bench", "torch_step.py"), spec, "--steps", str(steps),
              "--threads", str(threads)], env=env)
    return json.loads(out.strip().splitlines()[-1])


def sgemm_peak(outdir, threads, runs=3):
    exe = os.path.join(outdir, "sgemm_peak")
    sh(["cc", "-O2", os.path.join(ROOT, "bench", "sgemm_peak.c"), "-o", exe, "-lopenblas"])
    res = [json.loads(sh([exe, "2048", "10", str(threads)])) for _ in range(runs)]
    return {"runs": res, "median_gflops": statistics.median(r["gflops"] for r in res),
            "best_gflops": max(r["best_gflops"] for r in res),
            "corename": res[0]["corename"], "config": res[0]["config"], "exe": exe}


def perf_profile(train, steps, threads, outdir, name):
    if not shutil.which("perf"):
        return None
    data = os.path.join(outdir, f"perf-{name}.data")
    try:
        sh(["perf", "record", "-F", "999", "-o", data, "--", train, "--steps", str(steps),
            "--threads", str(threads)])
    except subprocess.CalledProcessError as e:
        return {"error": e.stderr[-500:]}
    rep = sh(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort",
              "dso,symbol", "-g", "none", "--percent-limit", "0.7"])
    dso = sh(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso",
              "-g", "none"])
    rows = []
    for ln in rep.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$", ln)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(4).split("  ")[0]))
    # unresolved addresses in a stripped dso: merge per dso
    merged = {}
    for pct, d, sym in rows:
        key = (d, sym if not sym.startswith("0x") else "(stripped: unresolved addresses)")
        merged[key] = merged.get(key, 0.0) + pct
    dsos = [(float(m.group(1)), m.group(2)) for m in
            re.finditer(r"^\s*([0-9.]+)%\s+(\S+)\s*$", dso, re.M)]
    return {"top": sorted(((p, d, s) for (d, s), p in merged.items()), reverse=True)[:15],
            "dsos": dsos[:8]}


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3, help="runs of each executable per model")
    ap.add_argument("--models", default=",".join(PLAN))
    ap.add_argument("--out", default="/tmp/kiln-bench")
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VAL",
                    help="extra environment for both the Kiln and the PyTorch runs "
                         "(e.g. OMP_WAIT_POLICY=PASSIVE); repeatable")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    T = args.threads
    for kv in args.env:
        k, _, v = kv.partition("=")
        os.environ[k] = v  # inherited by kiln, torch_step.py and perf runs

    env_info = {
        "date": datetime.date.today().isoformat(),
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p'").strip(),
        "nproc": os.cpu_count(), "kernel": platform.release(),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "extra_env": args.env,
        "blas_alternative": sh("update-alternatives --query libblas.so.3-x86_64-linux-gnu "
                               "| sed -n 's/^Value: *//p'").strip(),
    }
    log("sgemm peak ...")
    peak = sgemm_peak(args.out, T)
    results = {}
    names = args.models.split(",")
    built = {}
    for name in names:  # build everything first (kilnc may be rebuilt under us later)
        spec = os.path.join(ROOT, "models", f"{name}.json")
        d = os.path.join(args.out, name)
        retry(sh, [KILNC, spec, "-o", d])
        built[name] = (spec, d, retry(kernel_stats, spec))
    env_info["git_head"] = sh(["git", "-C", ROOT, "rev-parse", "HEAD"]).strip()
    env_info["git_dirty_files"] = len(sh(["git", "-C", ROOT, "status", "--porcelain",
                                          "--untracked-files=no"]).splitlines())
    for name in names:
        spec, d, ks = built[name]
        cfg = json.load(open(spec))["train"]
        tokens = int(cfg["micro_batch"]) * int(cfg["seq_len"])
        ksteps, tsteps, warm = PLAN[name]
        train = os.path.join(d, "train")
        linked = sh(f"ldd {train} | grep -i blas").split()
        kiln_blas = os.path.realpath(linked[2]) if len(linked) > 2 else "?"
        kt, tt, krun, trun = [], [], [], []
        tinfo = None
        for r in range(args.reps):
            log(f"{name}: rep {r + 1}/{args.reps} kiln ({ksteps} steps) ...")
            recs = kiln_run(train, ksteps, T, os.path.join(d, f"log{r}.jsonl"))
            st = [tokens / x["tokens_per_s"] for x in recs[warm:]]
            kt += st
            krun.append(med(st))
            log(f"{name}: rep {r + 1}/{args.reps} torch ({tsteps} steps) ...")
            tinfo = torch_run(spec, tsteps, T)
            st = tinfo["step_s"][warm if tsteps > 2 * warm else 1:]
            tt += st
            trun.append(med(st))
        prof = None
        if not args.no_perf:
            log(f"{name}: perf ...")
            prof = perf_profile(train, max(5, ksteps // 4), T, args.out, name)
        k_ms, t_ms = med(kt) * 1e3, med(tt) * 1e3
        results[name] = {
            "tokens_per_step": tokens, **ks, "kiln_blas": kiln_blas,
            "kiln_step_ms": k_ms, "kiln_tok_s": tokens / med(kt),
            "kiln_step_ms_per_run": [x * 1e3 for x in krun],
            "torch_step_ms": t_ms, "torch_tok_s": tokens / med(tt),
            "torch_step_ms_per_run": [x * 1e3 for x in trun],
            "torch_params": tinfo["trainable_params"], "torch_blas": tinfo["blas"],
            "torch_version": tinfo["torch_version"],
            "ratio": k_ms / t_ms,
            "kiln_gemm_gflops": ks["gemm_flops"] / (k_ms * 1e-3) * 1e-9,
            "kiln_gemm_frac_peak": ks["gemm_flops"] / (k_ms * 1e-3) * 1e-9 / peak["median_gflops"],
            "est_6NT_gflop": 6 * ks["active_params"] * tokens * 1e-9,
            "kiln_steps": ksteps, "torch_steps": tsteps, "warmup_dropped": warm,
            "profile": prof,
        }
    env_info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    out = {"env": env_info, "threads": T, "reps": args.reps, "sgemm_peak": peak,
           "models": results}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(out, f, indent=1)

    # ---- report
    P = print
    P(f"# Kiln vs PyTorch host step time ({env_info['date']}, {env_info['cpu']}, "
      f"{env_info['nproc']} cores, threads={T}, reps={args.reps}, medians, "
      f"extra env {args.env or 'none'})\n")
    P(f"OpenBLAS sgemm 2048^3 peak, {T} threads: median {peak['median_gflops']:.1f} GFLOP/s "
      f"(best single call {peak['best_gflops']:.1f}); {peak['config']}, core {peak['corename']}")
    P(f"libblas.so.3 alternative: {env_info['blas_alternative']}")
    any_t = next(iter(results.values()))
    P(f"torch {any_t['torch_version']}: {any_t['torch_blas']}")
    P(f"Kiln train links: {any_t['kiln_blas']}; git HEAD {env_info['git_head']} "
      f"({env_info['git_dirty_files']} modified tracked files)\n")
    P("| model | params | tokens/step | Kiln step ms | Kiln tok/s | PyTorch step ms | "
      "PyTorch tok/s | ratio Kiln/PyTorch | Kiln GEMM GFLOP/s | % of sgemm peak |")
    P("|---|---|---|---|---|---|---|---|---|---|")
    for n, r in results.items():
        P(f"| {n} | {r['params'] / 1e6:.3f}M ({r['active_params'] / 1e6:.2f}M active) | "
          f"{r['tokens_per_step']} | {r['kiln_step_ms']:.2f} | {r['kiln_tok_s']:.0f} | "
          f"{r['torch_step_ms']:.2f} | {r['torch_tok_s']:.0f} | {r['ratio']:.2f} | "
          f"{r['kiln_gemm_gflops']:.1f} | {100 * r['kiln_gemm_frac_peak']:.1f}% |")
    P("\nper-run medians (ms): " + "; ".join(
        f"{n}: kiln {[round(x, 2) for x in r['kiln_step_ms_per_run']]} torch "
        f"{[round(x, 2) for x in r['torch_step_ms_per_run']]}" for n, r in results.items()))
    P("GEMM FLOPs/step (from --emit=kernels): " + "; ".join(
        f"{n}: {r['gemm_flops'] / 1e9:.3f} GFLOP (6*active*tokens = {r['est_6NT_gflop']:.3f}), "
        f"attention {r['attn_flops_causal'] / 1e9:.3f} GFLOP" for n, r in results.items()))
    for n, r in results.items():
        if r["profile"] and "top" in r["profile"]:
            P(f"\n## perf, {n} (self time, top symbols)\n")
            for p, d, s in r["profile"]["top"]:
                P(f"    {p:6.2f}%  {d:28s} {s}")
            P("  by dso: " + ", ".join(f"{d} {p:.1f}%" for p, d in r["profile"]["dsos"]))
        elif r["profile"]:
            P(f"\nperf failed for {n}: {r['profile']}")
    P(f"\nfull results: {os.path.join(args.out, 'results.json')}; "
      f"load average start {env_info['loadavg_start']} end {env_info['loadavg_end']}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Builds the CUDA programs of r1-tiny, dense-tiny and r1-mini and runs a step of each.

kilnc SPEC -o DIR with "target": {"kind": "cuda", "sm": 90} writes DIR/train.cu
and builds DIR/train with nvcc (sm_90a). Each is then run for one step: on a
machine with a GPU it must train; without one it must refuse with its "no CUDA
device" message (and this check says it skipped the run).

With --dp N the programs are data-parallel (parallel.dp N, NCCL behind the
step's collectives; --zero 1 for ZeRO-1 sharding) and run under
`mpirun -np N`: they must train where the machine has N GPUs, refuse with
"no CUDA device" where it has none, and are only built where it has fewer
(or no mpirun).

With --rampup the programs have a batch rampup (train.batch_rampup from one
micro-batch to two): a step program per global batch, each its own
DeviceStep over the one device copy of the state.

  programs_check.py --kilnc build/bin/kilnc --source-dir SRC --work DIR
  programs_check.py ... --dp 2 --models dense-tiny r1-tiny
  programs_check.py ... --rampup --models dense-tiny
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

MODELS = ["dense-tiny", "r1-tiny", "r1-mini"]


def gpu_count():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return len([l for l in out.stdout.splitlines() if l.strip()]) if out.returncode == 0 else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kilnc", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--sm", type=int, default=90)
    parser.add_argument("--dp", type=int, default=1, help="parallel.dp of the programs")
    parser.add_argument("--zero", type=int, default=0, help="parallel.zero (with --dp)")
    parser.add_argument("--rampup", action="store_true",
                        help="train.batch_rampup from one micro-batch to two")
    parser.add_argument("--models", nargs="+", default=MODELS)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    failures = []
    gpus = gpu_count() if args.dp > 1 else 0
    mpirun = shutil.which("mpirun")
    for model in args.models:
        with open(os.path.join(args.source_dir, "models", model + ".json")) as f:
            spec = json.load(f)
        spec["target"] = {"kind": "cuda", "sm": args.sm}
        name = model
        if args.dp > 1:
            spec["parallel"] = {"dp": args.dp, "zero": args.zero}
            name = "%s-dp%d%s" % (model, args.dp, "-zero1" if args.zero else "")
        if args.rampup:
            rows = spec["train"]["micro_batch"]
            spec.setdefault("parallel", {})["microbatches"] = 2
            spec["train"]["batch_rampup"] = {"start": rows, "increment": rows, "samples": 2 * rows}
            name += "-rampup"
        spec_path = os.path.join(args.work, name + ".json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        out = os.path.join(args.work, name)
        build = subprocess.run([args.kilnc, spec_path, "-o", out], capture_output=True, text=True)
        if build.returncode != 0:
            failures.append("%s: kilnc -o failed:\n%s" % (name, build.stderr))
            continue
        print("%s: %s" % (name, build.stderr.strip()))
        model = name
        command = [os.path.join(out, "train"), "--steps", "1", "--threads", "1"]
        if args.dp > 1:
            if not mpirun:
                print("%s: built; no mpirun here, so its step did not run (skipped)" % name)
                continue
            if 0 < gpus < args.dp:
                print("%s: built; %d GPU(s) here, it needs %d, so its step did not run (skipped)"
                      % (name, gpus, args.dp))
                continue
            command = [mpirun, "--allow-run-as-root", "--oversubscribe", "-np",
                       str(args.dp)] + command
        run = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if run.returncode == 0:
            print("%s: trained a step on the GPU" % model)
        elif "no CUDA device" in run.stderr:
            print("%s: built; no GPU here, so its step did not run (skipped)" % model)
        else:
            failures.append("%s: train exited %d:\n%s" % (model, run.returncode, run.stderr))
    for failure in failures:
        print("error: " + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

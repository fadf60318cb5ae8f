#!/usr/bin/env python3
"""Builds the CUDA programs of r1-tiny, dense-tiny and r1-mini and runs a step of each.

kilnc SPEC -o DIR with "target": {"kind": "cuda", "sm": 90} writes DIR/train.cu
and builds DIR/train with nvcc (sm_90a). Each is then run for one step: on a
machine with a GPU it must train; without one it must refuse with its "no CUDA
device" message (and this check says it skipped the run).

  programs_check.py --kilnc build/bin/kilnc --source-dir SRC --work DIR
"""
import argparse
import json
import os
import subprocess
import sys

MODELS = ["dense-tiny", "r1-tiny", "r1-mini"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kilnc", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--sm", type=int, default=90)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    failures = []
    for model in MODELS:
        with open(os.path.join(args.source_dir, "models", model + ".json")) as f:
            spec = json.load(f)
        spec["target"] = {"kind": "cuda", "sm": args.sm}
        spec_path = os.path.join(args.work, model + ".json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        out = os.path.join(args.work, model)
        build = subprocess.run([args.kilnc, spec_path, "-o", out], capture_output=True, text=True)
        if build.returncode != 0:
            failures.append("%s: kilnc -o failed:\n%s" % (model, build.stderr))
            continue
        print("%s: %s" % (model, build.stderr.strip()))
        run = subprocess.run([os.path.join(out, "train"), "--steps", "1", "--threads", "1"],
                             capture_output=True, text=True, timeout=600)
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

#!/usr/bin/env python3
"""The pipeline bubble: measured in `train --trace` against kiln-pipeline's simulator.

For each schedule, builds a pipeline-parallel variant of a model spec with
`kilnc -o --report` (whose kiln-pipeline remark gives the simulated bubble per
rank, priced with each stage's FLOPs per action), twice: with blocking sends
and receives (`--overlap-send-recv=false`) and with posted ones (the
default), runs each under mpirun with `--trace`, and measures from the Chrome
trace, for every step after the first:

    makespan = last end - first start of the step's schedule actions, all ranks
    busy(r)  = time rank r spent in F, I, B, W and F&B actions
    bubble(r) = 1 - busy(r) / makespan

Sends and receives count as bubble (the simulator prices them at 0), and so
do the step's prologue and epilogue (outside the schedule, in neither).

    bench/pipeline_bubble.py [--model dense-tiny] [--layers 4] [--rows 16]
                             [--steps 8] [--out DIR]

Give each rank a core of its own (pp 2 on this 2-core machine, --threads 1):
an oversubscribed rank waits for the CPU, not its peer.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, parallel section): each with `microbatches` micro-batches.
SCHEDULES = [
    ("gpipe", {"pp": 2, "schedule": "gpipe"}),
    ("1f1b", {"pp": 2, "schedule": "1f1b"}),
    ("interleaved-1f1b", {"pp": 2, "schedule": "interleaved-1f1b", "virtual_stages": 2}),
    ("zb-h1", {"pp": 2, "schedule": "zb-h1"}),
    ("zb-v", {"pp": 2, "schedule": "zb-v"}),
    ("dualpipev", {"pp": 2, "schedule": "dualpipev"}),
]


def build(args, name, parallel, blocking=False):
    with open(os.path.join(ROOT, "models", args.model + ".json")) as f:
        spec = json.load(f)
    spec["model"]["num_hidden_layers"] = args.layers
    spec["parallel"] = dict(parallel, microbatches=args.microbatches)
    spec["train"]["micro_batch"] = args.rows // args.microbatches
    path = os.path.join(args.out, name + ".json")
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)
    kilnc = os.path.join(ROOT, "build", "bin", "kilnc")
    result = subprocess.run([kilnc, path, "-o", os.path.join(args.out, name), "--report",
                             "-mlir-print-op-on-diagnostic=false"] +
                            (["--overlap-send-recv=false"] if blocking else []),
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"kilnc {path} failed:\n{result.stderr}")
    found = re.search(r"with each stage's own FLOPs:((?: [0-9.]+%)+)", result.stderr)
    flops = re.search(r"FLOPs per micro-batch of the costliest stage: ([^;]*);", result.stderr)
    if not found or not flops:
        sys.exit(f"kilnc {path}: no simulated bubble in the report:\n{result.stderr}")
    return [float(p.rstrip("%")) for p in found.group(1).split()], flops.group(1)


def measure(args, name, ranks):
    trace = os.path.join(args.out, name + ".trace.json")
    exe = os.path.join(args.out, name, "train")
    command = ["timeout", "300", "mpirun", "--allow-run-as-root", "--oversubscribe", "-np",
               str(ranks), exe, "--steps", str(args.steps), "--threads", "1", "--trace", trace]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(" ".join(command) + " failed:\n" + result.stderr)
    with open(trace) as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    bubbles = [[] for _ in range(ranks)]
    makespans = []
    # Mean time of each compute action kind per stage ("1F", "1I", "1W").
    durations = {}
    for e in events:
        if e["cat"] == "compute" and e["args"]["step"] >= 2 and "&" not in e["name"]:
            durations.setdefault(re.sub(r"[0-9]+$", "", e["name"]), []).append(e["dur"])
    for step in range(2, args.steps + 1):
        actions = [e for e in events
                   if e["args"]["step"] == step and e["cat"] in ("compute", "comm")]
        start = min(e["ts"] for e in actions)
        end = max(e["ts"] + e["dur"] for e in actions)
        makespans.append(end - start)
        for r in range(ranks):
            busy = sum(e["dur"] for e in actions if e["pid"] == r and e["cat"] == "compute")
            bubbles[r].append(100.0 * (1.0 - busy / (end - start)))
    times = {k: statistics.mean(v) / 1000 for k, v in sorted(durations.items())}
    return [statistics.median(b) for b in bubbles], statistics.median(makespans), times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dense-tiny")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=16, help="global batch rows")
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default="/tmp/kiln-pipeline-bubble")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print(f"{args.model}, {args.layers} layers, {args.rows} rows in {args.microbatches} "
          f"micro-batches, pp 2, --threads 1, median of steps 2-{args.steps}\n")
    print("| schedule | simulated bubble per rank | measured, blocking send/recv | measured, posted "
          "(kiln-overlap-send-recv) | makespan blocking | makespan posted |")
    print("|---|---|---|---|---|---|")
    notes = []
    for name, parallel in SCHEDULES:
        simulated, flops = build(args, name + "-blocking", parallel, blocking=True)
        blocking, blockingSpan, _ = measure(args, name + "-blocking", parallel["pp"])
        build(args, name, parallel)
        measured, makespan, times = measure(args, name, parallel["pp"])
        print(f"| {name} | {' / '.join(f'{b:.1f}%' for b in simulated)} | "
              f"{' / '.join(f'{b:.1f}%' for b in blocking)} | "
              f"{' / '.join(f'{b:.1f}%' for b in measured)} | {blockingSpan / 1000:.2f} ms | "
              f"{makespan / 1000:.2f} ms |")
        sys.stdout.flush()
        notes.append(f"{name}: FLOPs per micro-batch of the costliest stage {flops}; measured "
                     "mean ms per action (posted): " +
                     ", ".join(f"{k} {v:.3f}" for k, v in times.items()))
    print()
    for note in notes:
        print("- " + note)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Loss trajectories of one model in every train.precision against fp32.

For MODEL (default r1-tiny): kilnc builds it with train.precision fp32, bf16, fp16 and fp8 (and
bf16 with bf16 AdamW moments), each trains STEPS steps on the same kiln-corpus shard with the
same seed and threads, and the script prints, per precision, the signed relative loss gap to
fp32 at the last step and of the mean loss over windows of 50 steps (a fifth of a shorter run;
start, middle, end); for
fp16 also the steps its loss scaler skipped and the final scale. DeepSeek-V3 reports < 0.25% for its FP8
recipe against BF16 at scale; these are tiny models, so read the gaps as "the precisions train
the same model", not as a statement about scale.

Usage: /usr/bin/python3 bench/precision_trajectories.py [--model r1-tiny] [--steps 300]
       [--threads 2] [--out DIR] [--reuse]
"""
import argparse
import datetime
import json
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
VARIANTS = {  # name -> changes to the spec's train section
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "fp16": {"precision": "fp16"},
    "fp8": {"precision": "fp8"},
    "bf16+bf16-moments": {"precision": "bf16", "optimizer": {"state_dtype": "bf16"}},
}


def run(cmd):
    return subprocess.run(cmd, check=True, text=True, capture_output=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="r1-tiny")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/kiln-precision")
    ap.add_argument("--warmup", type=int, default=None,
                    help="train.schedule.warmup_steps (default: the spec's, or steps / 5 where "
                         "the spec's is longer than the run)")
    ap.add_argument("--reuse", action="store_true",
                    help="report the logs already in --out instead of training again")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    corpus = os.path.join(a.out, "corpus.bin")
    with open(os.path.join(ROOT, "models", a.model + ".json")) as f:
        base = json.load(f)
    tokens = (a.steps + 1) * base["train"]["micro_batch"] * (base["train"]["seq_len"] + 1)
    run([os.path.join(BIN, "kiln-corpus"), "--seed", "1", "--tokens", str(tokens), "-o", corpus])
    logs = {}
    for name, changes in VARIANTS.items():
        spec = json.loads(json.dumps(base))
        for key, value in changes.items():
            if isinstance(value, dict):
                spec["train"].setdefault(key, {}).update(value)
            else:
                spec["train"][key] = value
        spec["train"]["steps"] = a.steps
        schedule = spec["train"].setdefault("schedule", {})
        if a.warmup is not None:
            schedule["warmup_steps"] = a.warmup
        elif schedule.get("warmup_steps", 0) > a.steps:
            schedule["warmup_steps"] = a.steps // 5
        warmup = schedule.get("warmup_steps")
        path = os.path.join(a.out, name + ".json")
        with open(path, "w") as f:
            json.dump(spec, f, indent=2)
        exe_dir = os.path.join(a.out, name)
        log = os.path.join(a.out, name + ".jsonl")
        if not a.reuse or not os.path.exists(log):
            run([os.path.join(BIN, "kilnc"), path, "-o", exe_dir])
            if os.path.exists(log):
                os.remove(log)
            run([os.path.join(exe_dir, "train"), "--data", corpus, "--steps", str(a.steps),
                 "--threads", str(a.threads), "--log", log])
        with open(log) as f:
            logs[name] = [json.loads(line) for line in f]

    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], text=True,
                          capture_output=True).stdout.strip()
    print(f"# {a.model}, {a.steps} steps (warmup {warmup}), {a.threads} threads, "
          f"{platform.processor() or 'cpu'}, git {head}, {datetime.date.today()}")
    # Single steps are noisy (one batch each, and the trajectories part ways
    # chaotically); means over windows of 50 steps say more.
    window = min(50, max(1, a.steps // 5))
    starts = sorted({0, (a.steps // 2 - window // 2) // 1, a.steps - window})
    print("| precision | loss at step %d | gap at %d | %s |" % (
        a.steps, a.steps,
        " | ".join(f"mean-loss gap, steps {s + 1}-{s + window}" for s in starts)))
    print("|---|---|---|" + "---|" * len(starts))
    ref = logs["fp32"]
    for name, lines in logs.items():
        mean = lambda ls, s: sum(l["loss"] for l in ls[s:s + window]) / window
        windows = [100 * (mean(lines, s) - mean(ref, s)) / mean(ref, s) for s in starts]
        extra = ""
        if "skipped" in lines[0]:
            skipped = sum(l["skipped"] for l in lines)
            extra = f" (loss scaler: {skipped} skipped, final scale {lines[-1]['loss_scale']:g})"
        last = 100 * (lines[-1]["loss"] - ref[-1]["loss"]) / ref[-1]["loss"]
        print(f"| {name}{extra} | {lines[-1]['loss']:.5f} | {last:+.3f}% | " +
              " | ".join(f"{w:+.3f}%" for w in windows) + " |")

if __name__ == "__main__":
    main()

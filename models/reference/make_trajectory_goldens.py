#!/usr/bin/python3
"""Write a trajectory golden: the first steps of a training run on a token file.

Usage:
  /usr/bin/python3 models/reference/make_trajectory_goldens.py --spec SPEC.json \
      --params P.safetensors --data FILE.bin --steps 20 --out OUT.json [--dtype float32]

The same training step as make_train_goldens.py (total loss, global-norm clipping,
warmup + cosine LR over train.steps, AdamW without decay on 1-D parameters, expert-bias
update), but step t trains on batch t-1 of the llm.c shard FILE.bin, read exactly as
Kiln's TokenLoader reads it (see README.md, "Trajectory golden"), and all math is in
--dtype (default float32: parameters, Adam moments, activations). Writes the per-step
losses, lr and pre-clip gradient norm, and the step-1 gradient statistics.
"""

import argparse
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import safetensors_io  # noqa: E402
import training  # noqa: E402
from common import load_spec, set_compute_dtype  # noqa: E402

LLMC_MAGIC = 20240520
LLMC_VERSION = 1
HEADER_INTS = 256
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def load_llmc_shard(path):
    """Tokens (int64 tensor [N]) of an llm.c shard: 256 little-endian int32 (magic,
    version, number of tokens, ...), then N little-endian uint16 tokens."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 * HEADER_INTS:
        raise ValueError(f"{path}: shorter than the llm.c header")
    magic, version, n = struct.unpack_from("<3i", data, 0)
    if magic != LLMC_MAGIC or version != LLMC_VERSION:
        raise ValueError(f"{path}: not an llm.c shard (magic {magic}, version {version})")
    if n <= 0 or len(data) != 4 * HEADER_INTS + 2 * n:
        raise ValueError(f"{path}: header says {n} tokens, file has {len(data)} bytes")
    toks = struct.unpack_from(f"<{n}H", data, 4 * HEADER_INTS)
    return torch.tensor(toks, dtype=torch.int64)


def batch_at(stream, s, B, T):
    """Batch s (0-based) as Kiln's TokenLoader reads it: position p = s*B*T; row b is the
    T+1 tokens at stream indices (p + b*T + j) mod N, j = 0..T. Returns (tokens [B, T],
    targets [B, T], loss_mask [B, T] of ones)."""
    N = stream.numel()
    p = s * B * T
    idx = (p + torch.arange(B, dtype=torch.int64)[:, None] * T
           + torch.arange(T + 1, dtype=torch.int64)[None, :]) % N
    rows = stream[idx]
    return rows[:, :T].clone(), rows[:, 1:].clone(), torch.ones(B, T)


def trajectory(spec_path, params_path, data_path, steps, dtype="float32"):
    set_compute_dtype(DTYPES[dtype])
    model_cfg, train = load_spec(spec_path)
    stage = train.get("stage", "pretrain")
    if stage != "pretrain":
        raise ValueError(f"train.stage {stage!r}: only pretrain (loss mask of ones) is supported")
    B, T = int(train["micro_batch"]), int(train["seq_len"])
    tensors, _ = safetensors_io.load(params_path)
    tensors = training.prepare_params(model_cfg, tensors)
    stream = load_llmc_shard(data_path)
    if stream.numel() < T + 1:
        raise ValueError(f"{data_path}: fewer than seq_len + 1 = {T + 1} tokens")

    grads1 = {}

    def on_grads(t, grads):
        if t == 1:
            grads1.update({n: training.stats(n, g) for n, g in grads.items()})

    hist, _, _, _, hp = training.run_training(
        model_cfg, train, tensors, None, steps, "torch",
        batch_of=lambda t: batch_at(stream, t - 1, B, T), on_grads=on_grads)
    return {
        "spec": spec_path,
        "model_type": model_cfg["model_type"],
        "dtype": dtype,
        "data": {"seed_hint": None, "num_tokens": int(stream.numel())},
        "batch": B,
        "seq_len": T,
        "hparams": hp,
        "steps": hist,
        "grads_step1": grads1,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--data", required=True, help="llm.c token shard")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    a = ap.parse_args(argv)
    if a.steps < 1:
        raise SystemExit("error: --steps must be >= 1")
    g = trajectory(a.spec, a.params, a.data, a.steps, a.dtype)
    training.write_json(a.out, g)
    print(f"wrote {a.out}: " + ", ".join(
        f"t={s['step']} loss={s['loss']:.6f}" for s in g["steps"]))


if __name__ == "__main__":
    main()

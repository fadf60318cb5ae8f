#!/usr/bin/python3
"""Write a training golden: a few AdamW steps on one batch, from the given parameters.

Usage:
  /usr/bin/python3 models/reference/make_train_goldens.py --spec SPEC.json \
      --params P.safetensors --tokens T.json --steps 3 --out G.json [--optimizer torch|hand]

Each step: total loss (main + MTP + aux_loss_alpha * balance), backward, global-norm
clipping, AdamW (no decay on 1-D parameters), then the aux-loss-free bias update.
All math is float64. See README.md in this directory.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import training  # noqa: E402
from common import DTYPE  # noqa: E402


def train_golden(model_cfg, train, tensors, tokens, steps, optimizer="torch"):
    hist, params, m, v, hp = training.run_training(model_cfg, train, tensors, tokens, steps,
                                                   optimizer)
    return {
        "model_type": model_cfg["model_type"], "batch": int(tokens.shape[0]),
        "seq_len": int(tokens.shape[1]), "tokens": tokens.tolist(),
        "hparams": hp,
        "steps": hist,
        "params": {n: training.stats(n, t) for n, t in params.items()},
        "biases": {n: [training._f(x) for x in t.tolist()] for n, t in params.items()
                   if not training.is_trainable(n)},
        "adam_m": {n: training.stats(n, t) for n, t in m.items()},
        "adam_v": {n: training.stats(n, t) for n, t in v.items()},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--optimizer", choices=("torch", "hand"), default="torch",
                    help="torch.optim.AdamW (default) or the hand-written AdamW")
    a = ap.parse_args(argv)
    if a.steps < 1:
        raise SystemExit("error: --steps must be >= 1")
    torch.set_default_dtype(DTYPE)
    model_cfg, train, tensors, tokens = training.load_inputs(a.spec, a.params, a.tokens)
    g = train_golden(model_cfg, train, tensors, tokens, a.steps, a.optimizer)
    training.write_json(a.out, g)
    print(f"wrote {a.out}: " + ", ".join(
        f"t={s['step']} lr={s['lr']:.3g} loss={s['loss']:.6f} |g|={s['grad_norm']:.4f}"
        for s in g["steps"]))


if __name__ == "__main__":
    main()

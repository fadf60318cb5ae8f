#!/usr/bin/python3
"""Write a gradient golden (loss and per-parameter gradient statistics) for a Kiln spec.

Usage:
  /usr/bin/python3 models/reference/make_grad_goldens.py --spec SPEC.json \
      --params P.safetensors --tokens T.json --out G.json [--loss main|total]

Without --loss both losses are differentiated and written (keys "main" and "total");
with --loss only that one. All math is float64. See README.md in this directory.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import training  # noqa: E402
from common import DTYPE  # noqa: E402


def grad_golden(model_cfg, train, tensors, tokens, losses=("main", "total")):
    out = {"model_type": model_cfg["model_type"], "batch": int(tokens.shape[0]),
           "seq_len": int(tokens.shape[1]), "tokens": tokens.tolist(),
           "loss": {}, "grads": {}}
    for which in losses:
        value, grads = training.gradients(model_cfg, train, tensors, tokens, which)
        out["loss"][which] = training._f(value)
        out["grads"][which] = {n: training.stats(n, g) for n, g in grads.items()}
    # The parts of the total (no gradient needed).
    with torch.no_grad():
        _, res = training.loss_of(model_cfg, train, tensors, tokens, "total")
    out["mtp_losses"] = [training._f(x) for x in res["mtp_losses"]]
    out["balance_loss"] = training._f(res["balance_loss"])
    out["min_routing_margin"] = training.routing_margin(model_cfg, res["routing"], tensors)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--loss", choices=("main", "total"), default=None,
                    help="differentiate only this loss (default: both)")
    a = ap.parse_args(argv)
    torch.set_default_dtype(DTYPE)
    model_cfg, train, tensors, tokens = training.load_inputs(a.spec, a.params, a.tokens)
    losses = (a.loss,) if a.loss else ("main", "total")
    g = grad_golden(model_cfg, train, tensors, tokens, losses)
    training.write_json(a.out, g)
    print(f"wrote {a.out}: loss={g['loss']!r} balance_loss={g['balance_loss']!r}")


if __name__ == "__main__":
    main()

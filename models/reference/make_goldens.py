#!/usr/bin/python3
"""Write a forward golden (loss, MTP losses, logits summaries) for a Kiln spec.

Usage:
  /usr/bin/python3 models/reference/make_goldens.py --spec SPEC.json \
      --params P.safetensors --tokens T.json --out GOLDEN.json

All math is float64. See README.md in this directory for the semantics.
"""

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import deepseek_v3  # noqa: E402
import llama  # noqa: E402
import safetensors_io  # noqa: E402
from common import (DTYPE, Params, balance_loss, compute_dtype, load_spec,  # noqa: E402
                    masked_cross_entropy, next_token_loss)

N_FIRST = 64
MODELS = {"deepseek_v3": deepseek_v3, "llama": llama}


def load_tokens(path):
    with open(path) as f:
        rows = json.load(f)
    if isinstance(rows, dict):
        rows = rows["tokens"]
    if not rows or not all(isinstance(r, list) for r in rows):
        raise ValueError(f"{path}: expected a non-empty JSON array of token-id rows")
    S = len(rows[0])
    if any(len(r) != S for r in rows):
        raise ValueError(f"{path}: rows have different lengths")
    return torch.tensor(rows, dtype=torch.int64)


def compute(model_cfg, train, P, tokens, targets=None, loss_mask=None):
    """Forward + losses. Returns dict with tensors: logits, mtp_logits (list), loss,
    mtp_losses (list), balance_loss, total_loss, and routing (the list of per-MoE-layer
    routing records, see deepseek_v3.route; [] for Llama). Differentiable w.r.t. P's
    tensors if they require grad.

    total_loss = loss + mtp_loss_weight / D * sum_k mtp_losses[k] (DeepSeek-V3 paper eq. 25)
                 + aux_loss_alpha * balance_loss,
    balance_loss = sum over all MoE layers (main and MTP) of common.balance_loss (eq. 17-20),
    over all S positions of each sequence. The alpha term is only added when
    train.aux_loss_alpha (default 0) is nonzero. total_loss is not written to the forward
    golden (only "loss" and the per-depth "mtp_losses" are).

    Without targets, the losses are next_token_loss over the row (target tokens[i+1], the
    last position has none). With targets ([B, S] int64) and loss_mask ([B, S], default all
    ones), they are Kiln's @forward losses: the main loss is masked_cross_entropy(logits,
    targets, mask) over all S positions; MTP depth k uses roll(targets, -k) and the mask
    shifted left by k with zero fill (position i predicts targets[i+k]; the last k
    positions are not counted).
    """
    mt = model_cfg.get("model_type")
    if mt not in MODELS:
        raise ValueError(f"unsupported model_type {mt!r}")
    eps = float(train.get("label_smoothing", 0.0) or 0.0)
    w_mtp = train.get("mtp_loss_weight")
    w_mtp = 0.3 if w_mtp is None else float(w_mtp)
    alpha = float(train.get("aux_loss_alpha", 0.0) or 0.0)
    routing = []
    if mt == "deepseek_v3":
        out = MODELS[mt].forward(model_cfg, P, tokens, routing=routing)
    else:
        out = MODELS[mt].forward(model_cfg, P, tokens)
    if targets is None:
        loss = next_token_loss(out["logits"], tokens, 1, eps)
        mtp_losses = [next_token_loss(lg, tokens, k + 1, eps)
                      for k, lg in enumerate(out["mtp_logits"], start=1)]
    else:
        if list(targets.shape) != list(tokens.shape):
            raise ValueError("targets must have the shape of tokens")
        mask = torch.ones(tokens.shape) if loss_mask is None else loss_mask
        mask = mask.to(out["logits"].dtype)
        loss = masked_cross_entropy(out["logits"], targets, mask, eps)
        mtp_losses = []
        for k, lg in enumerate(out["mtp_logits"], start=1):
            shifted = torch.cat((mask[:, k:], torch.zeros_like(mask[:, :k])), dim=1)
            mtp_losses.append(masked_cross_entropy(
                lg, torch.roll(targets, shifts=-k, dims=1), shifted, eps))
    B = tokens.shape[0]
    bal = torch.zeros((), dtype=compute_dtype())
    for r in routing:
        bal = bal + balance_loss(r["scores"], r["idx"], B)
    total = loss
    if mtp_losses:
        total = loss + (w_mtp / len(mtp_losses)) * sum(mtp_losses)
    if alpha != 0.0:
        total = total + alpha * bal
    out.update(loss=loss, mtp_losses=mtp_losses, balance_loss=bal, total_loss=total,
               routing=routing)
    return out


def _f(x):
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite value {x} in golden")
    return x


def golden_dict(model_cfg, tokens, res):
    logits = res["logits"].detach()
    B, S, V = logits.shape
    return {
        "model_type": model_cfg["model_type"],
        "batch": B,
        "seq_len": S,
        "vocab": V,
        "loss": _f(res["loss"]),
        "mtp_losses": [_f(l) for l in res["mtp_losses"]],
        "logits_first": [_f(v) for v in logits.reshape(-1)[:N_FIRST].tolist()],
        "logits_sum": _f(logits.sum()),
        "logits_abs_sum": _f(logits.abs().sum()),
        "mtp_logits_first": [[_f(v) for v in lg.detach().reshape(-1)[:N_FIRST].tolist()]
                             for lg in res["mtp_logits"]],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--strict", action="store_true",
                    help="fail if the parameter file has tensors the forward did not use")
    a = ap.parse_args(argv)

    torch.set_default_dtype(DTYPE)
    model_cfg, train = load_spec(a.spec)
    tensors, _ = safetensors_io.load(a.params)
    P = Params(tensors)
    tokens = load_tokens(a.tokens)
    with torch.no_grad():
        res = compute(model_cfg, train, P, tokens)
    unused = P.unused()
    if unused:
        msg = f"{len(unused)} parameter(s) not used by the forward: {unused[:10]}"
        if a.strict:
            raise SystemExit("error: " + msg)
        print("warning: " + msg, file=sys.stderr)
    g = golden_dict(model_cfg, tokens, res)
    with open(a.out, "w") as f:
        json.dump(g, f, indent=1)
        f.write("\n")
    print(f"wrote {a.out}: loss={g['loss']!r} mtp_losses={g['mtp_losses']!r}")


if __name__ == "__main__":
    main()

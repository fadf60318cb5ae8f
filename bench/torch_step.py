#!/usr/bin/python3
"""PyTorch eager CPU fp32 training-step timing for a Kiln spec, on the independent reference
(models/reference: deepseek_v3.py / llama.py forward, compute() losses incl. MTP).

One step = zero grads, forward + losses (compute() with explicit targets and loss mask, as
Kiln's @forward), backward, global-norm clip (torch.nn.utils.clip_grad_norm_), AdamW
(torch.optim.AdamW, decay / no-decay groups, per-step LR), expert-bias update from the
step's routing. Same shapes as Kiln (micro_batch x seq_len); random init (timing only).
The reference's diagnostics (routing_margin, the fsum-over-Python-floats global_norm of
training.run_training) are NOT run: they are golden-writing code, not training work.

Prints one JSON line: {"step_s": [...], "blas": {...}, ...}. Run with /usr/bin/python3.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "reference"))

import torch  # noqa: E402

import training  # noqa: E402
from common import Params, load_spec, set_compute_dtype  # noqa: E402
from make_goldens import compute  # noqa: E402


def blas_info():
    """Which BLAS this process really uses: the shared objects mapped after a matmul,
    torch's build config, and a 2048^3 fp32 matmul rate."""
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    a @ b
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    gf = 2 * 2048 ** 3 * reps / (time.perf_counter() - t0) * 1e-9
    libs = sorted({ln.split()[-1] for ln in open("/proc/self/maps")
                   if "blas" in ln or "lapack" in ln})
    cfg = torch.__config__.show()
    binfo = [s.strip() for s in cfg.replace(",", "\n").splitlines() if "BLAS_INFO" in s]
    return {"mapped_libs": libs, "build_blas_info": binfo, "matmul_2048_gflops": round(gf, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--foreach", type=int, default=1, help="AdamW foreach (1) or per-tensor (0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none",
                    help="bf16: the forward under torch.autocast('cpu', dtype=torch.bfloat16)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    set_compute_dtype(torch.float32)
    model_cfg, train = load_spec(args.spec)
    hp = training.train_hparams(train, args.steps)
    tr = dict(train, label_smoothing=hp["label_smoothing"],
              mtp_loss_weight=hp["mtp_loss_weight"], aux_loss_alpha=hp["aux_loss_alpha"])
    B, S = int(train["micro_batch"]), int(train["seq_len"])
    V = int(model_cfg["vocab_size"])

    params = {}
    for n, shp in training.param_shapes(model_cfg).items():
        if n.endswith(training.BIAS_SUFFIX):
            t = torch.zeros(shp)
        elif len(shp) >= 2:
            t = torch.randn(shp) * 0.02
        else:
            t = torch.ones(shp)
        params[n] = t.requires_grad_(training.is_trainable(n))
    trainable = [n for n in params if training.is_trainable(n)]
    decay = [params[n] for n in trainable if params[n].dim() >= 2]
    no_decay = [params[n] for n in trainable if params[n].dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
        foreach=bool(args.foreach))
    tparams = [params[n] for n in trainable]
    nparams = sum(p.numel() for p in params.values() if p.requires_grad)

    g = torch.Generator().manual_seed(args.seed)
    tok = torch.randint(V, (B, S), generator=g)
    tgt = torch.randint(V, (B, S), generator=g)
    msk = torch.ones(B, S)

    step_s, losses = [], []
    for t in range(1, args.steps + 1):
        t0 = time.perf_counter()
        for p in tparams:
            p.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16"):
            res = compute(model_cfg, tr, Params(params), tok, tgt, msk)
        res["total_loss"].float().backward()
        for p in tparams:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        torch.nn.utils.clip_grad_norm_(tparams, hp["grad_clip"])
        lr_t = training.lr_at(hp, t)
        for grp in opt.param_groups:
            grp["lr"] = lr_t
        opt.step()
        with torch.no_grad():
            for r in res["routing"]:
                b = r["bias_name"]
                load = training.expert_load(r["idx"], r["scores"].shape[1])
                params[b].copy_(training.bias_update(params[b], load, hp["bias_update_speed"]))
        step_s.append(time.perf_counter() - t0)
        losses.append(float(res["total_loss"]))

    out = {"spec": args.spec, "batch": B, "seq_len": S, "threads": args.threads,
           "torch_threads": torch.get_num_threads(), "foreach": args.foreach,
           "autocast": args.autocast,
           "torch_version": torch.__version__, "trainable_params": nparams,
           "step_s": step_s, "loss_first_last": [losses[0], losses[-1]],
           "blas": blas_info()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Gradients and a short AdamW training run on top of the float64 reference forward.

Shared by make_grad_goldens.py, make_train_goldens.py, make_trajectory_goldens.py and
selftest.py. All math float64 (the compute dtype, common.compute_dtype(); only
make_trajectory_goldens.py --dtype float32 changes it).
See README.md ("Gradient and training goldens") for the exact semantics.
"""

import json
import math
import sys

import fnmatch

import torch

import deepseek_v3
import llama
import safetensors_io
from common import DTYPE, Params, compute_dtype, load_spec
from make_goldens import compute, load_tokens

MODELS = {"deepseek_v3": deepseek_v3, "llama": llama}
BIAS_SUFFIX = "e_score_correction_bias"
N_FIRST = 8


# ----------------------------------------------------------------------------- hashing


def fnv1a32(name):
    """FNV-1a 32-bit hash of the UTF-8 bytes of name."""
    h = 2166136261
    for c in name.encode("utf-8"):
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def rsign(name, n):
    """r[i] = +1 if ((i * 2654435761 + h) mod 2^32) >> 31 == 0 else -1, h = fnv1a32(name)."""
    h = fnv1a32(name)
    i = torch.arange(n, dtype=torch.int64)
    top = ((i * 2654435761 + h) & 0xFFFFFFFF) >> 31
    return torch.where(top == 0, torch.ones((), dtype=DTYPE), -torch.ones((), dtype=DTYPE))


def _f(x):
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite value {x} in golden")
    return x


def stats(name, t):
    """Summary of a tensor: shape, sum, abs_sum, sq_sum, first 8 values, proj = sum(t * r).

    Sums are math.fsum of the float64 terms (correctly rounded): the reference's own
    summation order does not matter. sq_sum sums the rounded products t*t."""
    t = t.detach().to(DTYPE)
    flat = t.reshape(-1)
    vals = flat.tolist()
    r = rsign(name, flat.numel()).tolist()
    return {
        "shape": list(t.shape),
        "sum": _f(math.fsum(vals)),
        "abs_sum": _f(math.fsum(abs(v) for v in vals)),
        "sq_sum": _f(math.fsum(v * v for v in vals)),
        "first": [_f(v) for v in vals[:N_FIRST]],
        "proj": _f(math.fsum(v * s for v, s in zip(vals, r))),
    }


# ----------------------------------------------------------------------------- setup


def param_shapes(model_cfg):
    """{name: shape} of every parameter: what the forward reads, plus an
    e_score_correction_bias for every DeepSeek MoE layer (Kiln always has one; when the
    parameter file has none it starts at zeros, which selects exactly as no bias)."""
    mt = model_cfg.get("model_type")
    if mt not in MODELS:
        raise ValueError(f"unsupported model_type {mt!r}")
    shapes = dict(MODELS[mt].param_shapes(model_cfg))
    if mt == "deepseek_v3":
        d = deepseek_v3.DSDims(model_cfg)
        for L in range(d.layers + d.mtp):
            if d.is_moe(L):
                shapes[f"model.layers.{L}.mlp.gate.{BIAS_SUFFIX}"] = [d.n_routed]
    return shapes


def is_trainable(name):
    return not name.endswith(BIAS_SUFFIX)


def prepare_params(model_cfg, tensors, warn=True):
    """Copies of the listed parameters in the compute dtype (float64 unless changed; shape-
    checked); missing biases are zeros."""
    shapes = param_shapes(model_cfg)
    out = {}
    for n, shp in shapes.items():
        if n in tensors:
            t = tensors[n]
            if list(t.shape) != list(shp):
                raise ValueError(f"parameter '{n}': shape {list(t.shape)}, expected {shp}")
            out[n] = t.detach().to(compute_dtype()).clone()
        elif n.endswith(BIAS_SUFFIX):
            out[n] = torch.zeros(shp, dtype=compute_dtype())
        else:
            raise KeyError(f"parameter '{n}' not found in the parameter file")
    extra = sorted(set(tensors) - set(shapes))
    if extra and warn:
        print(f"warning: {len(extra)} parameter(s) not used by the forward: {extra[:10]}",
              file=sys.stderr)
    return out


def load_inputs(spec, params_path, tokens_path):
    model_cfg, train = load_spec(spec)
    tensors, _ = safetensors_io.load(params_path)
    return model_cfg, train, prepare_params(model_cfg, tensors), load_tokens(tokens_path)


def train_hparams(train, steps_run):
    """Training hyperparameters with Kiln's defaults. total_steps N = train.steps when
    given and > 0, else the number of steps run (steps_run)."""
    opt = train.get("optimizer") or {}
    sch = train.get("schedule") or {}

    def num(d, k, default):
        v = d.get(k)
        return float(default if v is None else v)

    betas = opt.get("betas") or [0.9, 0.95]
    n = train.get("steps")
    return {
        "lr": num(opt, "lr", 3e-4),
        "min_lr": num(sch, "min_lr", 0.0),
        "warmup_steps": int(sch.get("warmup_steps") or 0),
        "total_steps": int(n) if n else int(steps_run),
        "beta1": float(betas[0]),
        "beta2": float(betas[1]),
        "eps": num(opt, "eps", 1e-8),
        "weight_decay": num(opt, "weight_decay", 0.1),
        "grad_clip": num(train, "grad_clip", 1.0),
        "bias_update_speed": num(train, "bias_update_speed", 0.001),
        "aux_loss_alpha": num(train, "aux_loss_alpha", 0.0),
        "mtp_loss_weight": num(train, "mtp_loss_weight", 0.3),
        "label_smoothing": num(train, "label_smoothing", 0.0),
    }


# ----------------------------------------------------------------------------- losses


def loss_of(model_cfg, train, tensors, tokens, which):
    """(loss tensor for which in {"main", "total"}, compute() result)."""
    res = compute(model_cfg, train, Params(tensors), tokens)
    if which == "main":
        return res["loss"], res
    if which == "total":
        return res["total_loss"], res
    raise ValueError(f"unknown loss {which!r} (main | total)")


def gradients(model_cfg, train, tensors, tokens, which):
    """(loss value, {name: float64 gradient}) of the chosen loss. Parameters without a
    gradient (the bias; routed experts no token selected; MTP parameters for "main")
    get zeros."""
    leaves = {n: t.detach().clone().requires_grad_(is_trainable(n))
              for n, t in tensors.items()}
    loss, _ = loss_of(model_cfg, train, leaves, tokens, which)
    loss.backward()
    grads = {n: (t.grad.detach().clone() if t.grad is not None else torch.zeros_like(t))
             for n, t in leaves.items()}
    for n in grads:
        if not is_trainable(n):
            grads[n] = torch.zeros_like(tensors[n])
    return float(loss), grads


def routing_margin(model_cfg, routing, tensors):
    """Smallest gap, over all MoE layers and tokens, between the last kept and the first
    dropped choice value (expert top-k within the kept groups, and the group top-k): how
    far the routing is from a tie. None when there is no MoE layer. A diagnostic only."""
    if not routing:
        return None
    d = deepseek_v3.DSDims(model_cfg)
    E, K, G, TG = d.n_routed, d.top_k, d.n_group, d.topk_group
    best = math.inf
    with torch.no_grad():
        for r in routing:
            choice = r["scores"].detach() + tensors[r["bias_name"]][None, :]
            T = choice.shape[0]
            cand = torch.ones(T, E, dtype=torch.bool)
            if G > 1 or d.topk_method != "greedy":
                gs = E // G
                grouped = choice.view(T, G, gs)
                if d.topk_method == "noaux_tc":
                    gsc = torch.sort(grouped, -1, descending=True).values[..., :min(2, gs)].sum(-1)
                else:
                    gsc = grouped.max(-1).values
                if TG < G:
                    sg = torch.sort(gsc, -1, descending=True).values
                    best = min(best, float((sg[:, TG - 1] - sg[:, TG]).min()))
                gidx = torch.sort(gsc, dim=-1, descending=True, stable=True).indices[:, :TG]
                kept = torch.zeros(T, G, dtype=torch.bool)
                kept[torch.arange(T)[:, None], gidx] = True
                cand = kept[:, :, None].expand(T, G, gs).reshape(T, E)
            mask = torch.zeros(T, E, dtype=torch.bool)
            mask[torch.arange(T)[:, None], r["idx"]] = True
            sel_min = choice.masked_fill(~mask, math.inf).min(-1).values
            rest = choice.masked_fill(mask | ~cand, -math.inf).max(-1).values
            gap = sel_min - rest
            best = min(best, float(gap[torch.isfinite(gap)].min()) if
                       bool(torch.isfinite(gap).any()) else math.inf)
    return best


# ----------------------------------------------------------------------------- training


def lr_at(hp, t):
    """Linear warmup then cosine decay to min_lr; t is 1-based."""
    lr, min_lr, W, N = hp["lr"], hp["min_lr"], hp["warmup_steps"], hp["total_steps"]
    if t <= W:
        return lr * t / W
    progress = min(max((t - W) / max(1, N - W), 0.0), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def global_norm(grads):
    """sqrt(fsum of g^2 over all elements of all tensors)."""
    return math.sqrt(math.fsum(v * v for g in grads for v in g.reshape(-1).tolist()))


def clip_scale(norm, max_norm):
    """torch.nn.utils.clip_grad_norm_'s rule: min(1, max_norm / (norm + 1e-6)); 0 = off."""
    if max_norm <= 0:
        return 1.0
    return min(1.0, max_norm / (norm + 1e-6))


def expert_load(idx, num_experts):
    """load[e] = number of (token, slot) pairs routed to e."""
    return torch.bincount(idx.reshape(-1), minlength=num_experts)


def bias_update(bias, load, speed):
    """bias[e] + speed * sign(mean(load) - load[e]), sign(0) = 0 (exact integer compare:
    sign(sum(load) - E * load[e]))."""
    E = load.numel()
    sgn = torch.sign((int(load.sum()) - E * load).to(bias.dtype))
    return bias + speed * sgn


def adamw_hand_step(p, g, m, v, lr, t, beta1, beta2, eps, wd):
    """One AdamW step as written in the brief (returns new p, m, v; nothing in place)."""
    p = p * (1.0 - lr * wd)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    p = p - lr * (m / (1.0 - beta1 ** t)) / (torch.sqrt(v / (1.0 - beta2 ** t)) + eps)
    return p, m, v


def mask_2_4(w):
    """The 2:4 mask of w along its last dimension, written from the spec of
    kiln.sparsity_mask_2_4 (not from Kiln's code): in each group of 4, the 2
    largest |w| (NaN largest) are kept; ties go to the lower index."""
    groups = w.detach().reshape(-1, 4)
    mag = groups.abs()
    mag = torch.where(torch.isnan(mag), torch.full_like(mag, float("inf")), mag)
    # A stable sort of -|w| keeps equal magnitudes in index order.
    order = torch.sort(-mag, dim=1, stable=True).indices[:, :2]
    mask = torch.zeros_like(groups)
    mask.scatter_(1, order, 1.0)
    return mask.reshape(w.shape)


class Sparsity24:
    """train.sparsity as Apex ASP (magnitude) or SR-STE apply it around a step."""

    def __init__(self, cfg, params, trainable, total_steps):
        cfg = cfg if isinstance(cfg, dict) else {"pattern": cfg}
        self.on = cfg.get("pattern", "none") == "2:4"
        self.start = int(cfg.get("start_step", 1))
        self.every = int(cfg.get("mask_every", 0))
        self.method = cfg.get("method", "magnitude")
        self.decay = float(cfg.get("decay", 2e-4))
        globs = cfg.get("targets")
        if globs:
            self.targets = [n for n in trainable if any(fnmatch.fnmatchcase(n, g) for g in globs)]
        else:
            self.targets = [n for n in trainable if params[n].dim() >= 2 and
                            n not in ("model.embed_tokens.weight", "lm_head.weight")]
        self.masks = {n: torch.ones_like(params[n]) for n in self.targets} if self.on else {}

    def begin_step(self, t, params, opt_state):
        """The masks step t trains with; magnitude zeroes the pruned weights and moments."""
        if not self.on or t < self.start:
            return
        if t == self.start or (self.every > 0 and (t - self.start) % self.every == 0):
            for n in self.targets:
                self.masks[n] = mask_2_4(params[n])
        if self.method == "magnitude":
            with torch.no_grad():
                for n in self.targets:
                    params[n].mul_(self.masks[n])
                    for moment in opt_state(n):
                        moment.mul_(self.masks[n])

    def forward_params(self, params):
        """What the forward reads: the masked weights; SR-STE passes the gradient straight
        through to the dense weight."""
        if not self.on:
            return params
        out = dict(params)
        for n, m in self.masks.items():
            w = params[n]
            masked = w * m
            out[n] = w + (masked - w).detach() if self.method == "sr-ste" else masked
        return out

    def mask_grads(self, t, params):
        """Magnitude: the sparse model's gradient (before the norm)."""
        if self.on and self.method == "magnitude" and t >= self.start:
            for n in self.targets:
                params[n].grad.mul_(self.masks[n])

    def refine(self, t, params):
        """SR-STE: + decay * (w - w * mask), after the norm, before the clipping scale
        (which then scales the sum, as Kiln's AdamW does)."""
        if self.on and self.method == "sr-ste" and t >= self.start:
            for n in self.targets:
                w = params[n].detach()
                params[n].grad.add_(self.decay * (w - w * self.masks[n]))


def run_training(model_cfg, train, tensors, tokens, steps, optimizer="torch", batch_of=None,
                 on_grads=None):
    """Runs `steps` steps on the same batch. optimizer: "torch" (torch.optim.AdamW, two
    param groups) or "hand" (adamw_hand_step). Returns (history, params, adam_m, adam_v).

    batch_of: optional function t -> (tokens, targets, loss_mask) giving step t's batch
    (compute()'s explicit-targets path); then `tokens` is ignored. on_grads: optional
    function (t, {name: gradient}) called after the backward, before clipping, with every
    parameter's gradient (zeros for the biases and parameters without a gradient)."""
    hp = train_hparams(train, steps)
    # compute() reads these from train; pass the resolved values.
    tr = dict(train, label_smoothing=hp["label_smoothing"], mtp_loss_weight=hp["mtp_loss_weight"],
              aux_loss_alpha=hp["aux_loss_alpha"])
    names = list(tensors)
    params = {n: tensors[n].detach().clone().requires_grad_(is_trainable(n)) for n in names}
    trainable = [n for n in names if is_trainable(n)]
    decay = [n for n in trainable if params[n].dim() >= 2]
    no_decay = [n for n in trainable if params[n].dim() < 2]
    wd_of = {n: (hp["weight_decay"] if n in decay else 0.0) for n in trainable}
    if optimizer == "torch":
        opt = torch.optim.AdamW(
            [{"params": [params[n] for n in decay], "weight_decay": hp["weight_decay"]},
             {"params": [params[n] for n in no_decay], "weight_decay": 0.0}],
            lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"], foreach=False,
            maximize=False, amsgrad=False)
    elif optimizer == "hand":
        state = {n: (torch.zeros_like(params[n]), torch.zeros_like(params[n])) for n in trainable}
    else:
        raise ValueError(optimizer)

    sparsity = Sparsity24(train.get("sparsity") or "none", params, trainable, steps)

    def opt_state(n):
        if optimizer == "torch":
            st = opt.state.get(params[n], {})
            return [st[k] for k in ("exp_avg", "exp_avg_sq") if k in st]
        return list(state[n])

    history = []
    for t in range(1, steps + 1):
        for n in trainable:
            params[n].grad = None
        sparsity.begin_step(t, params, opt_state)
        seen = sparsity.forward_params(params)
        if batch_of is None:
            res = compute(model_cfg, tr, Params(seen), tokens)
        else:
            tok, tgt, msk = batch_of(t)
            res = compute(model_cfg, tr, Params(seen), tok, tgt, msk)
        res["total_loss"].backward()
        for n in trainable:  # an unselected expert has a zero gradient (not a skipped one)
            if params[n].grad is None:
                params[n].grad = torch.zeros_like(params[n])
        if on_grads is not None:
            on_grads(t, {n: (params[n].grad.detach().clone() if is_trainable(n)
                             else torch.zeros_like(params[n])) for n in names})
        sparsity.mask_grads(t, params)
        margin = routing_margin(model_cfg, res["routing"], params)
        norm = global_norm([params[n].grad for n in trainable])
        scale = clip_scale(norm, hp["grad_clip"])
        lr_t = lr_at(hp, t)
        with torch.no_grad():
            sparsity.refine(t, params)
            for n in trainable:
                params[n].grad.mul_(scale)
            if optimizer == "torch":
                for grp in opt.param_groups:
                    grp["lr"] = lr_t
                opt.step()
            else:
                for n in trainable:
                    m, v = state[n]
                    p, m, v = adamw_hand_step(params[n].detach(), params[n].grad, m, v, lr_t,
                                              t, hp["beta1"], hp["beta2"], hp["eps"], wd_of[n])
                    params[n].copy_(p)
                    state[n] = (m, v)
            # Aux-loss-free balancing from this step's routing (before the update).
            for r in res["routing"]:
                b = r["bias_name"]
                load = expert_load(r["idx"], r["scores"].shape[1])
                params[b].copy_(bias_update(params[b], load, hp["bias_update_speed"]))
        history.append({
            "step": t,
            "lr": _f(lr_t),
            "loss": _f(res["total_loss"]),
            "main_loss": _f(res["loss"]),
            "mtp_losses": [_f(x) for x in res["mtp_losses"]],
            "balance_loss": _f(res["balance_loss"]),
            "grad_norm": _f(norm),
            "clip_scale": _f(scale),
            "min_routing_margin": margin,
        })
    if optimizer == "torch":
        m = {n: opt.state[params[n]]["exp_avg"].detach().clone() for n in trainable}
        v = {n: opt.state[params[n]]["exp_avg_sq"].detach().clone() for n in trainable}
    else:
        m = {n: state[n][0] for n in trainable}
        v = {n: state[n][1] for n in trainable}
    final = {n: params[n].detach().clone() for n in names}
    return history, final, m, v, hp


# ----------------------------------------------------------------------------- output


def write_json(path, obj):
    """JSON with one line per innermost record (floats via repr: exact round trip)."""

    def leafy(x):
        if isinstance(x, dict):
            return all(not isinstance(v, (dict, list)) or
                       (isinstance(v, list) and all(not isinstance(e, (dict, list)) for e in v))
                       for v in x.values())
        return not isinstance(x, list) or all(not isinstance(e, (dict, list)) for e in x)

    def emit(x, ind):
        pad = " " * ind
        if isinstance(x, dict) and not (leafy(x) and ind > 0):
            items = [f'{pad} {json.dumps(k)}: {emit(v, ind + 1)}' for k, v in x.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}" if items else "{}"
        if isinstance(x, list) and x and any(isinstance(e, dict) for e in x):
            items = [pad + " " + emit(e, ind + 1) for e in x]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        return json.dumps(x, allow_nan=False)

    with open(path, "w") as f:
        f.write(emit(obj, 0))
        f.write("\n")

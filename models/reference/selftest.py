#!/usr/bin/python3
"""Self-test of the float64 reference: /usr/bin/python3 models/reference/selftest.py

Checks: safetensors round trip; loss ~ ln(V) for small random weights; causality (main and
MTP logits); attention vs a naive loop; DeepSeek interleaved RoPE vs the HF
de-interleave + rotate_half form; MoE vs a naive per-token router/expert loop (group
limits, top-k, bias only used for selection); YaRN frequency limits; label-smoothed CE vs
torch; backward runs in float64; the CLI end to end. Training: FNV hash / projection,
balance loss and bias update by hand, LR schedule, hand AdamW vs torch.optim.AdamW, finite
differences of the training loss, the training loop, the gradient/training CLIs.
"""

import copy
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import common  # noqa: E402
import deepseek_v3 as ds  # noqa: E402
import llama  # noqa: E402
import make_goldens  # noqa: E402
import make_grad_goldens  # noqa: E402
import make_train_goldens  # noqa: E402
import safetensors_io  # noqa: E402
import training  # noqa: E402
from common import DTYPE, Params  # noqa: E402

torch.set_default_dtype(DTYPE)

DS_CFG = {
    "model_type": "deepseek_v3", "vocab_size": 97, "hidden_size": 32,
    "intermediate_size": 48, "moe_intermediate_size": 16, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 4, "q_lora_rank": 24,
    "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 12,
    "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 3, "n_group": 4,
    "topk_group": 2, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
    "norm_topk_prob": True, "routed_scaling_factor": 2.5, "first_k_dense_replace": 1,
    "moe_layer_freq": 1, "num_nextn_predict_layers": 2, "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0, "tie_word_embeddings": False, "max_position_embeddings": 64,
    "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
                     "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.7},
}
LLAMA_CFG = {
    "model_type": "llama", "vocab_size": 101, "hidden_size": 32, "intermediate_size": 40,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "rope_scaling": None,
}

FAILS = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""))
    if not ok:
        FAILS.append(name)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def random_params(shapes, std, gen):
    out = {}
    for name, shp in shapes.items():
        if len(shp) == 1:
            if name.endswith("e_score_correction_bias"):
                out[name] = 0.1 * torch.randn(shp, generator=gen)
            else:
                out[name] = 1.0 + 0.1 * torch.randn(shp, generator=gen)
        else:
            s = std if std is not None else shp[1] ** -0.5
            out[name] = s * torch.randn(shp, generator=gen)
    return out


# ----------------------------------------------------------------------------- pieces


def test_safetensors():
    g = torch.Generator().manual_seed(0)
    t = {"a": torch.randn(3, 4, generator=g).float(), "b": torch.randn(5, generator=g),
         "c": torch.randn(2, 2, generator=g).to(torch.bfloat16),
         "d": torch.randn(7, generator=g).half(), "e": torch.arange(6).view(2, 3).int(),
         "f": torch.arange(-3, 3)}
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "x.safetensors")
        safetensors_io.save(p, t, {"format": "pt"})
        r, meta = safetensors_io.load(p)
    ok = meta == {"format": "pt"} and set(r) == set(t) and all(
        r[k].dtype == t[k].dtype and r[k].shape == t[k].shape and torch.equal(r[k], t[k])
        for k in t)
    check("safetensors round trip (F32 F64 BF16 F16 I32 I64)", ok)


def test_ce():
    g = torch.Generator().manual_seed(1)
    lg = torch.randn(10, 13, generator=g)
    tg = torch.randint(0, 13, (10,), generator=g)
    for eps in (0.0, 0.1):
        a = common.cross_entropy(lg, tg, eps)
        b = F.cross_entropy(lg, tg, label_smoothing=eps)
        check(f"cross entropy eps={eps} vs torch", abs(float(a - b)) < 1e-14 * abs(float(b)))


def test_attention():
    g = torch.Generator().manual_seed(2)
    B, H, S, D, Dv = 2, 3, 5, 4, 6
    q, k = torch.randn(B, H, S, D, generator=g), torch.randn(B, H, S, D, generator=g)
    v = torch.randn(B, H, S, Dv, generator=g)
    o = common.causal_attention(q, k, v, 0.37)
    ref = torch.zeros_like(o)
    for b in range(B):
        for h in range(H):
            for i in range(S):
                s = [float(q[b, h, i] @ k[b, h, j]) * 0.37 for j in range(i + 1)]
                m = max(s)
                e = [math.exp(x - m) for x in s]
                z = sum(e)
                for j in range(i + 1):
                    ref[b, h, i] += (e[j] / z) * v[b, h, j]
    check("causal attention vs naive loop", rel(o, ref) < 1e-13, f"rel={rel(o, ref):.2e}")


def test_yarn():
    d = ds.DSDims(DS_CFG)
    dim, y = d.rope, d.yarn
    low = max(math.floor(ds._yarn_correction_dim(y["beta_fast"], dim, d.theta, y["orig"])), 0)
    high = min(math.ceil(ds._yarn_correction_dim(y["beta_slow"], dim, d.theta, y["orig"])), dim - 1)
    cos, sin = ds.rope_tables(d, 3)
    m = ds.yarn_get_mscale(4.0, 1.0) / ds.yarn_get_mscale(4.0, 0.7)
    inv = torch.atan2(sin[1], cos[1])  # angle at position 1 == inv_freq (all < pi here)
    extra = common.rope_inv_freq(dim, d.theta)
    ok = True
    for i in range(dim // 2):
        if i <= low:
            ok &= abs(float(inv[i] - extra[i])) < 1e-14
        if i >= high:
            ok &= abs(float(inv[i] - extra[i] / 4.0)) < 1e-14
    ok &= abs(float(cos[0, 0]) - m) < 1e-15
    check(f"yarn inv_freq limits (low={low}, high={high}) and mscale {m:.6f}", ok)
    # DeepSeek-V3's real settings: rope dim 64, factor 40, original 4096 -> ramp over 10..23.
    cfg = dict(DS_CFG, qk_rope_head_dim=64, rope_scaling={
        "type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
        "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0})
    d2 = ds.DSDims(cfg)
    cos2, sin2 = ds.rope_tables(d2, 2)
    inv2 = torch.atan2(sin2[1], cos2[1])
    ex2 = common.rope_inv_freq(64, 10000.0)
    ramp = [min(max((i - 10) / 13, 0.0), 1.0) for i in range(32)]
    want = torch.tensor([ex2[i] / 40 * r + ex2[i] * (1 - r) for i, r in enumerate(ramp)])
    r2 = rel(inv2, want)
    check("yarn DeepSeek-V3 settings: ramp 10..23, mscale 1", r2 < 1e-14 and
          abs(float(cos2[0, 0]) - 1.0) < 1e-15, f"rel={r2:.1e}")
    sc = (d.qdim ** -0.5) * ds.yarn_get_mscale(4.0, 0.7) ** 2
    check("yarn softmax scale", d.softmax_scale == sc)


def hf_style_rope(x, cos, sin):
    """HF DeepseekV3 form: de-interleave, then rotate_half with emb = cat(ang, ang).
    Returns the de-interleaved rotated vector (a fixed permutation of the interleaved one)."""
    *lead, D = x.shape
    x = x.reshape(*lead, D // 2, 2).transpose(-1, -2).reshape(*lead, D)
    c = torch.cat((cos, cos), -1)[None, :, None, :]
    s = torch.cat((sin, sin), -1)[None, :, None, :]
    return x * c + llama.rotate_half(x) * s


def naive_moe(d, P, pre, x):
    B, S, Hd = x.shape
    x2 = x.reshape(-1, Hd)
    W = P[pre + "gate.weight"]
    bias = P[pre + "gate.e_score_correction_bias"]
    E, G = d.n_routed, d.n_group
    gs = E // G
    out = torch.zeros_like(x2)
    chosen = []
    for t in range(x2.shape[0]):
        logit = [float(W[e] @ x2[t]) for e in range(E)]
        score = [1 / (1 + math.exp(-l)) for l in logit]
        choice = [score[e] + float(bias[e]) for e in range(E)]
        gsc = [sum(sorted(choice[g * gs:(g + 1) * gs], reverse=True)[:2]) for g in range(G)]
        keep = sorted(range(G), key=lambda g: (-gsc[g], g))[:d.topk_group]
        cand = [e for e in range(E) if e // gs in keep]
        sel = sorted(cand, key=lambda e: (-choice[e], e))[:d.top_k]
        chosen.append(sorted(sel))
        w = [score[e] for e in sel]
        z = sum(w) + 1e-20
        w = [wi / z * d.rsf for wi in w]
        for e, wi in zip(sel, w):
            ep = f"{pre}experts.{e}."
            out[t] += wi * common.silu_mlp(x2[t], P[ep + "gate_proj.weight"],
                                           P[ep + "up_proj.weight"], P[ep + "down_proj.weight"])
        sp = pre + "shared_experts."
        out[t] += common.silu_mlp(x2[t], P[sp + "gate_proj.weight"], P[sp + "up_proj.weight"],
                                  P[sp + "down_proj.weight"])
    return out.view(B, S, Hd), chosen


def test_moe():
    g = torch.Generator().manual_seed(3)
    d = ds.DSDims(DS_CFG)
    P = Params(random_params(ds.param_shapes(DS_CFG), None, g))
    pre = "model.layers.1.mlp."
    x = torch.randn(2, 7, d.hidden, generator=g)
    a = ds.moe(d, P, pre, x)
    b, chosen = naive_moe(d, P, pre, x)
    idx, _ = ds.route(d, P, pre, x.reshape(-1, d.hidden))
    same_sel = [sorted(r) for r in idx.tolist()] == chosen
    check("MoE vs naive per-token loop", rel(a, b) < 1e-13 and same_sel,
          f"rel={rel(a, b):.2e}, same selection={same_sel}")
    # Each token's experts lie in at most topk_group groups.
    gs = d.n_routed // d.n_group
    ok = all(len({e // gs for e in r}) <= d.topk_group for r in idx.tolist())
    ok &= all(len(set(r)) == d.top_k for r in idx.tolist())
    check("MoE selections: top_k distinct experts within topk_group groups", ok)


# ----------------------------------------------------------------------------- models


def run(cfg, mod, std, seed, B=2, S=9):
    g = torch.Generator().manual_seed(seed)
    P = Params(random_params(mod.param_shapes(cfg), std, g))
    tokens = torch.randint(0, cfg["vocab_size"], (B, S), generator=g)
    return P, tokens


def test_model(name, cfg, mod):
    V = cfg["vocab_size"]
    P, tokens = run(cfg, mod, 0.02, 10)
    res = make_goldens.compute(cfg, {"label_smoothing": 0.0}, P, tokens)
    lv = math.log(V)
    ok = abs(float(res["loss"]) - lv) < 0.05 * lv and all(
        abs(float(l) - lv) < 0.05 * lv for l in res["mtp_losses"])
    check(f"{name}: loss ~ ln(V) for small weights", ok,
          f"loss={float(res['loss']):.5f} mtp={[round(float(l), 5) for l in res['mtp_losses']]}"
          f" ln V={lv:.5f}")
    check(f"{name}: all parameters used", not P.unused(), str(P.unused()[:5]))

    # Causality with O(1) weights: change the last token.
    P, tokens = run(cfg, mod, None, 11)
    r1 = mod.forward(cfg, P, tokens)
    t2 = tokens.clone()
    t2[:, -1] = (t2[:, -1] + 1) % V
    t2[0, -3] = (t2[0, -3] + 5) % V
    r2 = mod.forward(cfg, P, t2)
    S = tokens.shape[1]
    ok = torch.equal(r1["logits"][1, :S - 1], r2["logits"][1, :S - 1])
    ok &= torch.equal(r1["logits"][0, :S - 3], r2["logits"][0, :S - 3])
    ok &= not torch.equal(r1["logits"][0, S - 3], r2["logits"][0, S - 3])
    for k, (a, b) in enumerate(zip(r1["mtp_logits"], r2["mtp_logits"]), start=1):
        # depth k position i sees tokens <= i + k: kept positions i <= S-2-k are unaffected
        ok &= torch.equal(a[1, :S - 1 - k], b[1, :S - 1 - k])
        ok &= not torch.equal(a[1, S - 1 - k], b[1, S - 1 - k])
    check(f"{name}: causal (main and MTP logits)", ok)

    # Label smoothing goes through.
    r3 = make_goldens.compute(cfg, {"label_smoothing": 0.1}, P, tokens)
    lg = r3["logits"][:, :-1].reshape(-1, V)
    ref = F.cross_entropy(lg, tokens[:, 1:].reshape(-1), label_smoothing=0.1)
    check(f"{name}: label-smoothed loss vs torch", abs(float(r3["loss"] - ref)) < 1e-13)
    for k, lk in enumerate(r3["mtp_losses"], start=1):
        ml = r3["mtp_logits"][k - 1][:, :S - 1 - k].reshape(-1, V)
        ref = F.cross_entropy(ml, tokens[:, k + 1:].reshape(-1), label_smoothing=0.1)
        check(f"{name}: MTP depth {k} loss vs torch", abs(float(lk - ref)) < 1e-13)

    # Backward in float64.
    for t in P.t.values():
        t.requires_grad_(True)
    r4 = make_goldens.compute(cfg, {"mtp_loss_weight": 0.3}, P, tokens)
    r4["total_loss"].backward()
    # Routed experts that no token picked (and the selection-only bias) get no gradient.
    def routed_only(n):
        return ".mlp.experts." in n or n.endswith("e_score_correction_bias")
    ok = all((t.grad is None and routed_only(n)) or
             (t.grad is not None and bool(torch.isfinite(t.grad).all()))
             for n, t in P.t.items())
    check(f"{name}: float64 backward gives finite grads", ok)
    return P, tokens


def test_ds_rope_equivalence():
    P, tokens = run(DS_CFG, ds, None, 12)
    a = ds.forward(DS_CFG, P, tokens)
    orig = ds.apply_rope_interleaved
    ds.apply_rope_interleaved = hf_style_rope
    try:
        b = ds.forward(DS_CFG, P, tokens)
    finally:
        ds.apply_rope_interleaved = orig
    r = rel(b["logits"], a["logits"])
    check("deepseek: interleaved RoPE == HF de-interleave+rotate_half", r < 1e-12, f"rel={r:.2e}")


def test_ds_variants():
    g = torch.Generator().manual_seed(13)
    for over in ({"q_lora_rank": None, "rope_scaling": None, "num_nextn_predict_layers": 0},
                 {"topk_method": "group_limited_greedy", "scoring_func": "softmax"},
                 {"topk_method": "greedy", "n_group": 1, "topk_group": 1, "n_shared_experts": 0,
                  "norm_topk_prob": False, "moe_layer_freq": 2, "tie_word_embeddings": True}):
        cfg = copy.deepcopy(DS_CFG)
        cfg.update(over)
        P = Params(random_params(ds.param_shapes(cfg), None, g))
        tokens = torch.randint(0, cfg["vocab_size"], (2, 6), generator=g)
        res = make_goldens.compute(cfg, {}, P, tokens)
        ok = torch.isfinite(res["logits"]).all() and not P.unused()
        check(f"deepseek variant {over} runs, uses all params", bool(ok))


def test_llama_gqa():
    P, tokens = run(LLAMA_CFG, llama, None, 14)
    a = llama.forward(LLAMA_CFG, P, tokens)["logits"]
    # Same model with K/V weights expanded to full MHA (query head h uses kv head h // g).
    d = llama.LlamaDims(LLAMA_CFG)
    g = d.heads // d.kv_heads
    cfg = dict(LLAMA_CFG, num_key_value_heads=d.heads)
    t = dict(P.t)
    for L in range(d.layers):
        for w in ("k_proj", "v_proj"):
            n = f"model.layers.{L}.self_attn.{w}.weight"
            t[n] = t[n].view(d.kv_heads, d.head_dim, d.hidden).repeat_interleave(g, 0) \
                       .reshape(d.heads * d.head_dim, d.hidden)
    b = llama.forward(cfg, Params(t), tokens)["logits"]
    check("llama: GQA == MHA with repeat_interleaved K/V heads", rel(a, b) < 1e-13)


def test_llama_variant():
    cfg = dict(LLAMA_CFG, head_dim=16, tie_word_embeddings=True, num_key_value_heads=1)
    P, tokens = run(cfg, llama, None, 16)
    res = make_goldens.compute(cfg, {}, P, tokens)
    check("llama variant head_dim=16, tied, MQA runs, uses all params",
          bool(torch.isfinite(res["logits"]).all()) and not P.unused() and
          "lm_head.weight" not in P.t)


def test_cli():
    with tempfile.TemporaryDirectory() as td:
        cfgp = os.path.join(td, "config.json")
        with open(cfgp, "w") as f:
            json.dump(DS_CFG, f)
        spec = {"model": {"hf_config": "config.json"},
                "train": {"label_smoothing": 0.1, "mtp_loss_weight": 0.3}}
        with open(os.path.join(td, "spec.json"), "w") as f:
            json.dump(spec, f)
        g = torch.Generator().manual_seed(15)
        params = {k: v.float() for k, v in
                  random_params(ds.param_shapes(DS_CFG), None, g).items()}
        safetensors_io.save(os.path.join(td, "p.safetensors"), params)
        toks = torch.randint(0, DS_CFG["vocab_size"], (2, 8), generator=g).tolist()
        with open(os.path.join(td, "t.json"), "w") as f:
            json.dump(toks, f)
        out = os.path.join(td, "golden.json")
        make_goldens.main(["--spec", os.path.join(td, "spec.json"), "--params",
                           os.path.join(td, "p.safetensors"), "--tokens",
                           os.path.join(td, "t.json"), "--out", out, "--strict"])
        with open(out) as f:
            gd = json.load(f)
    keys = {"model_type", "batch", "seq_len", "vocab", "loss", "mtp_losses", "logits_first",
            "logits_sum", "logits_abs_sum", "mtp_logits_first"}
    ok = set(gd) == keys and gd["batch"] == 2 and gd["seq_len"] == 8 and \
        len(gd["logits_first"]) == 64 and len(gd["mtp_losses"]) == 2 and \
        all(len(x) == 64 for x in gd["mtp_logits_first"])
    check("CLI writes golden with expected keys", ok)


# ----------------------------------------------------------------------------- training


def test_hash():
    ok = training.fnv1a32("") == 0x811C9DC5 and training.fnv1a32("a") == 0xE40C292C and \
        training.fnv1a32("foobar") == 0xBF9CF968
    name = "model.layers.1.mlp.experts.3.gate_proj.weight"
    h = training.fnv1a32(name)
    want = [1 if (((i * 2654435761 + h) % 2 ** 32) >> 31) == 0 else -1 for i in range(1000)]
    r = training.rsign(name, 1000)
    ok &= r.tolist() == [float(x) for x in want] and 300 < int((r > 0).sum()) < 700
    check("FNV-1a 32 test vectors and the +-1 projection vector", ok)


def test_balance_hand():
    # B=2 sequences, T=2 tokens, E=3 experts, K=1. Row b*T+t.
    scores = torch.tensor([[1., 2., 1.], [3., 1., 0.], [1., 1., 2.], [2., 1., 1.]],
                          requires_grad=True)
    idx = torch.tensor([[1], [0], [2], [2]])
    # seq 0: s' = [.25 .5 .25], [.75 .25 0]; f = 3/2 [1 1 0]; P = [.5 .375 .125] -> 1.3125
    # seq 1: s' = [.25 .25 .5], [.5 .25 .25]; f = 3/2 [0 0 2]; P = [.375 .25 .375] -> 1.125
    loss = common.balance_loss(scores, idx, 2)
    ok = float(loss) == 1.21875
    loss.backward()
    # d/ds[i,t] = 1/(B T) (f_i - sum_j f_j s'_{j,t}) / Z_t
    f = torch.tensor([[1.5, 1.5, 0.], [0., 0., 3.]])
    s = scores.detach()
    Z = s.sum(-1, keepdim=True)
    fr = f.repeat_interleave(2, 0)
    want = ((fr - (fr * s / Z).sum(-1, keepdim=True)) / Z) / 4
    ok &= rel(scores.grad, want) < 1e-15
    check("balance loss on a hand example (value 1.21875 and gradient)", ok,
          f"loss={float(loss)!r}")
    # Bias update: loads [3, 1, 2, 2], mean 2 -> sign [-1, +1, 0, 0].
    load = training.expert_load(torch.tensor([[0, 1], [0, 2], [0, 3], [2, 3]]), 4)
    b = training.bias_update(torch.tensor([0.1, 0.0, 0.0, -0.1]), load, 0.01)
    ok = load.tolist() == [3, 1, 2, 2] and b.tolist() == [0.1 - 0.01, 0.01, 0.0, -0.1]
    # Non-integer mean: loads [1, 0, 2, 0] mean 0.75 -> sign [-1, +1, -1, +1].
    load = training.expert_load(torch.tensor([[0], [2], [2]]), 4)
    b = training.bias_update(torch.zeros(4), load, 0.5)
    ok &= load.tolist() == [1, 0, 2, 0] and b.tolist() == [-0.5, 0.5, -0.5, 0.5]
    check("bias update on hand examples (sign(mean - load), sign(0) = 0)", ok)


def test_lr_schedule():
    hp = {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2, "total_steps": 50}
    got = [training.lr_at(hp, t) for t in (1, 2, 3, 26, 50, 60)]
    want = [1.5e-3, 3e-3, 3e-4 + 0.5 * 2.7e-3 * (1 + math.cos(math.pi / 48)), 3e-4 + 1.35e-3,
            3e-4, 3e-4]
    ok = all(abs(a - b) <= 1e-18 for a, b in zip(got, want))
    hp0 = {"lr": 3e-4, "min_lr": 0.0, "warmup_steps": 0, "total_steps": 3}
    ok &= [training.lr_at(hp0, t) for t in (1, 3)] == [0.5 * 3e-4 * 1.5, 0.0]
    check("lr schedule: warmup, cosine, floor", ok, str(got))


def test_adamw_vs_torch():
    g = torch.Generator().manual_seed(20)
    shapes = {"w": [5, 4], "e": [7, 3], "n": [4], "z": [3, 2]}   # z: always zero gradient
    p0 = {k: torch.randn(v, generator=g) for k, v in shapes.items()}
    grads = [{k: (torch.zeros(v) if k == "z" else torch.randn(v, generator=g))
              for k, v in shapes.items()} for _ in range(3)]
    lrs, wd, b1, b2, eps = [1e-2, 3e-2, 2e-2], 0.1, 0.9, 0.95, 1e-8
    tp = {k: v.clone().requires_grad_(True) for k, v in p0.items()}
    opt = torch.optim.AdamW([{"params": [tp["w"], tp["e"], tp["z"]], "weight_decay": wd},
                             {"params": [tp["n"]], "weight_decay": 0.0}],
                            lr=1.0, betas=(b1, b2), eps=eps, foreach=False)
    hp = {k: v.clone() for k, v in p0.items()}
    st = {k: (torch.zeros(v), torch.zeros(v)) for k, v in shapes.items()}
    for t in range(1, 4):
        for k in shapes:
            tp[k].grad = grads[t - 1][k].clone()
        for grp in opt.param_groups:
            grp["lr"] = lrs[t - 1]
        opt.step()
        for k in shapes:
            hp[k], m, v = training.adamw_hand_step(hp[k], grads[t - 1][k], *st[k], lrs[t - 1],
                                                   t, b1, b2, eps, 0.0 if k == "n" else wd)
            st[k] = (m, v)
    err = max(max(rel(hp[k], tp[k].detach()) for k in shapes),
              max(rel(st[k][0], opt.state[tp[k]]["exp_avg"]) for k in shapes),
              max(rel(st[k][1], opt.state[tp[k]]["exp_avg_sq"]) for k in shapes))
    check("hand AdamW == torch.optim.AdamW (two groups, 3 steps, zero-grad param)",
          err < 1e-14, f"rel={err:.1e}")


def _small_ds(over=None):
    cfg = copy.deepcopy(DS_CFG)
    cfg.update(over or {})
    return cfg


def test_grad_fd():
    """Central differences of the training loss on a few coordinates (the largest
    gradient entry of each chosen tensor)."""
    cases = [
        ("deepseek sigmoid/noaux_tc, alpha 0.05", _small_ds(),
         {"aux_loss_alpha": 0.05, "label_smoothing": 0.1, "mtp_loss_weight": 0.3}, "total",
         ["model.layers.1.mlp.gate.weight", "model.layers.4.mlp.gate.weight",
          "model.layers.2.mlp.shared_experts.up_proj.weight", "model.layers.3.eh_proj.weight",
          "model.layers.0.self_attn.q_a_layernorm.weight", "model.embed_tokens.weight",
          "lm_head.weight", "model.layers.1.mlp.experts.*.down_proj.weight"]),
        ("deepseek softmax/group_limited_greedy, alpha 0.5",
         _small_ds({"topk_method": "group_limited_greedy", "scoring_func": "softmax",
                    "norm_topk_prob": False}),
         {"aux_loss_alpha": 0.5}, "total",
         ["model.layers.2.mlp.gate.weight", "model.layers.3.mlp.gate.weight",
          "model.layers.4.hnorm.weight"]),
        ("deepseek", _small_ds(), {"aux_loss_alpha": 0.05}, "main",
         ["model.layers.2.mlp.gate.weight", "model.layers.0.self_attn.kv_b_proj.weight"]),
        ("llama", LLAMA_CFG, {"label_smoothing": 0.1}, "total",
         ["model.layers.1.self_attn.k_proj.weight", "model.layers.0.input_layernorm.weight"]),
    ]
    h = 1e-5
    for label, cfg, train, which, names in cases:
        mod = ds if cfg["model_type"] == "deepseek_v3" else llama
        g = torch.Generator().manual_seed(21)
        tensors = training.prepare_params(cfg, random_params(mod.param_shapes(cfg), None, g))
        tokens = torch.randint(0, cfg["vocab_size"], (2, 7), generator=g)
        _, grads = training.gradients(cfg, train, tensors, tokens, which)
        worst, n_checked = 0.0, 0
        for name in names:
            if "*" in name:  # the routed expert with the largest gradient
                cands = [n for n in grads if n.startswith(name.split("*")[0]) and
                         n.endswith(name.split("*")[1])]
                name = max(cands, key=lambda n: float(grads[n].abs().max()))
            gt = grads[name]
            i = int(gt.abs().reshape(-1).argmax())
            vals = []
            for sgn in (1, -1):
                t2 = dict(tensors)
                t2[name] = tensors[name].clone()
                t2[name].view(-1)[i] += sgn * h
                with torch.no_grad():
                    vals.append(float(training.loss_of(cfg, train, t2, tokens, which)[0]))
            fd = (vals[0] - vals[1]) / (2 * h)
            an = float(gt.reshape(-1)[i])
            worst = max(worst, abs(fd - an) / abs(an))
            n_checked += 1
        check(f"finite differences vs autograd: {label}, {which} loss, {n_checked} coords",
              worst < 1e-6, f"max rel={worst:.1e}")


def test_train_loop():
    cfg = _small_ds()
    g = torch.Generator().manual_seed(22)
    tensors = training.prepare_params(cfg, random_params(ds.param_shapes(cfg), None, g))
    tokens = torch.randint(0, cfg["vocab_size"], (2, 7), generator=g)
    train = {"aux_loss_alpha": 0.01, "bias_update_speed": 0.01, "grad_clip": 0.5,
             "steps": 10, "schedule": {"warmup_steps": 1}, "optimizer": {"lr": 1e-2}}
    ht, pt, mt, vt, _ = training.run_training(cfg, train, tensors, tokens, 2, "torch")
    hh, ph, mh, vh, _ = training.run_training(cfg, train, tensors, tokens, 2, "hand")
    err = max(max(rel(ph[n], pt[n]) for n in pt), max(rel(mh[n], mt[n]) for n in mt),
              max(rel(vh[n], vt[n]) for n in vt))
    ok = err < 1e-12 and all(abs(a["loss"] - b["loss"]) < 1e-13 for a, b in zip(ht, hh))
    check("training loop: torch.optim.AdamW == hand AdamW (2 steps, clipping, bias update)",
          ok, f"rel={err:.1e}")
    # Step 1 by hand: routing of the first forward gives the bias update.
    res = make_goldens.compute(cfg, dict(train, label_smoothing=0.0), Params(tensors), tokens)
    ok = True
    _, p1, _, _, _ = training.run_training(cfg, train, tensors, tokens, 1, "torch")
    for r in res["routing"]:
        load = torch.bincount(r["idx"].reshape(-1), minlength=cfg["n_routed_experts"])
        mean = float(load.sum()) / cfg["n_routed_experts"]
        want = tensors[r["bias_name"]] + 0.01 * torch.sign(mean - load.to(DTYPE))
        ok &= torch.equal(p1[r["bias_name"]], want)
    ok &= len(res["routing"]) == 4 and ht[0]["clip_scale"] < 1.0
    check("training loop: bias update from step 1's routing, all 4 MoE layers (incl. MTP)", ok)


def test_training_clis():
    with tempfile.TemporaryDirectory() as td:
        cfg = _small_ds()
        spec = {"model": cfg, "train": {"aux_loss_alpha": 0.01, "steps": 5}}
        sp = os.path.join(td, "spec.json")
        with open(sp, "w") as f:
            json.dump(spec, f)
        g = torch.Generator().manual_seed(23)
        params = {k: v.float() for k, v in random_params(ds.param_shapes(cfg), None, g).items()}
        safetensors_io.save(os.path.join(td, "p.safetensors"), params)
        with open(os.path.join(td, "t.json"), "w") as f:
            json.dump(torch.randint(0, cfg["vocab_size"], (2, 6), generator=g).tolist(), f)
        args = ["--spec", sp, "--params", os.path.join(td, "p.safetensors"),
                "--tokens", os.path.join(td, "t.json")]
        make_grad_goldens.main(args + ["--out", os.path.join(td, "g.json")])
        make_train_goldens.main(args + ["--steps", "3", "--out", os.path.join(td, "tr.json")])
        with open(os.path.join(td, "g.json")) as f:
            gd = json.load(f)
        with open(os.path.join(td, "tr.json")) as f:
            tr = json.load(f)
    names = set(training.param_shapes(cfg))
    st = {"shape", "sum", "abs_sum", "sq_sum", "first", "proj"}
    ok = set(gd["loss"]) == {"main", "total"} and set(gd["grads"]) == {"main", "total"}
    ok &= all(set(gd["grads"][w]) == names and all(set(v) == st for v in gd["grads"][w].values())
              for w in ("main", "total"))
    ok &= all(gd["grads"]["total"][n]["abs_sum"] == 0.0 for n in names
              if n.endswith("e_score_correction_bias"))
    ok &= all(gd["grads"]["main"][n]["abs_sum"] == 0.0 for n in names
              if n.startswith("model.layers.3.") or n.startswith("model.layers.4."))
    ok &= [s["step"] for s in tr["steps"]] == [1, 2, 3] and set(tr["params"]) == names
    ok &= set(tr["biases"]) == {n for n in names if n.endswith("bias")}
    ok &= set(tr["adam_m"]) == set(tr["adam_v"]) == {n for n in names if not n.endswith("bias")}
    check("grad and train CLIs write the expected keys", ok)


def main():
    test_safetensors()
    test_ce()
    test_attention()
    test_yarn()
    test_moe()
    test_model("deepseek_v3", DS_CFG, ds)
    test_ds_rope_equivalence()
    test_ds_variants()
    test_model("llama", LLAMA_CFG, llama)
    test_llama_gqa()
    test_llama_variant()
    test_cli()
    test_hash()
    test_balance_hand()
    test_lr_schedule()
    test_adamw_vs_torch()
    test_grad_fd()
    test_train_loop()
    test_training_clis()
    print("FAILED: " + ", ".join(FAILS) if FAILS else "all passed")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()

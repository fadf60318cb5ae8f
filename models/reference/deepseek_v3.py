"""DeepSeek-V3 forward in float64: MLA, DeepSeekMoE (noaux_tc / greedy / group_limited_greedy
routing), YaRN RoPE and multi-token prediction (MTP).

Written from the Hugging Face DeepseekV3 semantics (DeepseekV3Attention, DeepseekV3MoE,
DeepseekV3TopkRouter / MoEGate, DeepseekV3YarnRotaryEmbedding) and the DeepSeek-V3 paper
section 2.2 for MTP. Functional: forward(cfg, params, tokens).
"""

import math

import torch

from common import (DTYPE, Config, causal_attention, check_tokens, compute_dtype, linear,
                    rms_norm, rope_inv_freq, silu_mlp)


def _bool(v):
    if isinstance(v, bool):
        return v
    raise ValueError(f"expected a boolean, got {v!r}")


class DSDims:
    def __init__(self, cfg_dict):
        c = Config(cfg_dict)
        if c.req("model_type") != "deepseek_v3":
            raise ValueError("not a deepseek_v3 config")
        self.vocab = int(c.req("vocab_size"))
        self.hidden = int(c.req("hidden_size"))
        self.layers = int(c.req("num_hidden_layers"))
        self.heads = int(c.req("num_attention_heads"))
        self.inter = int(c.req("intermediate_size"))
        self.eps = float(c.get("rms_norm_eps", 1e-6))
        self.theta = float(c.get("rope_theta", 10000.0))
        self.tie = _bool(c.get("tie_word_embeddings", False))
        if c.get("attention_bias", False) or c.get("mlp_bias", False):
            raise ValueError("deepseek_v3: attention_bias / mlp_bias must be false")
        if c.get("hidden_act", "silu") != "silu":
            raise ValueError("deepseek_v3: hidden_act must be silu")

        # MLA
        self.q_lora = int(c.get("q_lora_rank", 0))        # null or 0: plain q_proj
        self.kv_lora = int(c.req("kv_lora_rank"))
        self.nope = int(c.req("qk_nope_head_dim"))
        self.rope = int(c.req("qk_rope_head_dim"))
        self.vdim = int(c.req("v_head_dim"))
        self.qdim = self.nope + self.rope
        if self.rope % 2 != 0:
            raise ValueError("deepseek_v3: qk_rope_head_dim must be even")

        # RoPE / YaRN
        rs = c.d.get("rope_scaling")
        self.softmax_scale = self.qdim ** -0.5
        self.yarn = None
        if rs is not None:
            rtype = rs.get("type", rs.get("rope_type"))
            if rtype != "yarn":
                raise ValueError(f"deepseek_v3: rope_scaling type {rtype!r} not supported "
                                 "(only yarn)")
            def opt(key, default):
                v = rs.get(key)
                return float(default if v is None else v)
            y = {
                "factor": float(rs["factor"]),
                "orig": float(rs["original_max_position_embeddings"]),
                "beta_fast": opt("beta_fast", 32),
                "beta_slow": opt("beta_slow", 1),
                "mscale": opt("mscale", 1),
                "mscale_all_dim": opt("mscale_all_dim", 0),
            }
            self.yarn = y
            if y["mscale_all_dim"]:
                m = yarn_get_mscale(y["factor"], y["mscale_all_dim"])
                self.softmax_scale = self.softmax_scale * m * m

        # MoE
        self.n_routed = int(c.get("n_routed_experts", 0))
        self.first_dense = int(c.get("first_k_dense_replace", 0))
        self.moe_freq = int(c.get("moe_layer_freq", 1))
        if self.n_routed > 0:
            self.moe_inter = int(c.req("moe_intermediate_size"))
            self.top_k = int(c.req("num_experts_per_tok"))
            self.n_shared = int(c.get("n_shared_experts", 0))
            self.n_group = int(c.req("n_group"))
            self.topk_group = int(c.req("topk_group"))
            self.topk_method = c.req("topk_method")
            self.scoring = c.req("scoring_func")
            self.norm_topk = _bool(c.req("norm_topk_prob"))
            self.rsf = float(c.req("routed_scaling_factor"))
            if self.scoring not in ("sigmoid", "softmax"):
                raise ValueError(f"deepseek_v3: scoring_func {self.scoring!r} not supported")
            if self.topk_method not in ("noaux_tc", "greedy", "group_limited_greedy"):
                raise ValueError(f"deepseek_v3: topk_method {self.topk_method!r} not supported")
            if self.topk_method == "greedy" and self.n_group != 1:
                raise ValueError("deepseek_v3: topk_method greedy requires n_group == 1")
            if self.n_routed % self.n_group != 0:
                raise ValueError("deepseek_v3: n_routed_experts must be divisible by n_group")
            if not (1 <= self.topk_group <= self.n_group):
                raise ValueError("deepseek_v3: need 1 <= topk_group <= n_group")
            if self.top_k > self.topk_group * (self.n_routed // self.n_group):
                raise ValueError("deepseek_v3: num_experts_per_tok exceeds experts in kept groups")
        self.mtp = int(c.get("num_nextn_predict_layers", 0))

    def is_moe(self, L):
        return self.n_routed > 0 and L >= self.first_dense and L % self.moe_freq == 0


# ----------------------------------------------------------------------------- RoPE


def yarn_get_mscale(scale, mscale):
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def _yarn_correction_dim(num_rot, dim, base, orig):
    return (dim * math.log(orig / (num_rot * 2 * math.pi))) / (2 * math.log(base))


def rope_tables(d, S):
    """cos, sin of shape [S, rope/2] (already multiplied by the YaRN mscale when yarn)."""
    dim = d.rope
    freq_extra = rope_inv_freq(dim, d.theta)
    m = 1.0
    if d.yarn is None:
        inv = freq_extra
    else:
        y = d.yarn
        freq_inter = 1.0 / (y["factor"] * (d.theta ** (torch.arange(0, dim, 2, dtype=DTYPE) / dim)))
        low = max(math.floor(_yarn_correction_dim(y["beta_fast"], dim, d.theta, y["orig"])), 0)
        high = min(math.ceil(_yarn_correction_dim(y["beta_slow"], dim, d.theta, y["orig"])), dim - 1)
        hi = high if low != high else low + 0.001
        ramp = ((torch.arange(dim // 2, dtype=DTYPE) - low) / (hi - low)).clamp(0.0, 1.0)
        mask = 1.0 - ramp
        inv = freq_inter * (1.0 - mask) + freq_extra * mask
        m = yarn_get_mscale(y["factor"], y["mscale"]) / yarn_get_mscale(y["factor"], y["mscale_all_dim"])
    ang = torch.arange(S, dtype=DTYPE)[:, None] * inv[None, :]
    dt = compute_dtype()  # computed in float64, then rounded (a no-op in float64)
    return (ang.cos() * m).to(dt), (ang.sin() * m).to(dt)


def apply_rope_interleaved(x, cos, sin):
    """Rotates pairs (x[2i], x[2i+1]) by angle i. x: [B, S, h, rope]; cos/sin: [S, rope/2]."""
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    y0 = x0 * c - x1 * s
    y1 = x0 * s + x1 * c
    return torch.stack((y0, y1), dim=-1).flatten(-2)


# ----------------------------------------------------------------------------- MLA


def mla(d, P, pre, x, cos, sin):
    B, S, Hd = x.shape
    H = d.heads
    if d.q_lora:
        qa = linear(x, P.shaped(pre + "q_a_proj.weight", [d.q_lora, Hd]))
        qa = rms_norm(qa, P.shaped(pre + "q_a_layernorm.weight", [d.q_lora]), d.eps)
        q = linear(qa, P.shaped(pre + "q_b_proj.weight", [H * d.qdim, d.q_lora]))
    else:
        q = linear(x, P.shaped(pre + "q_proj.weight", [H * d.qdim, Hd]))
    q = q.view(B, S, H, d.qdim)
    q_nope, q_pe = q[..., :d.nope], q[..., d.nope:]

    ckv = linear(x, P.shaped(pre + "kv_a_proj_with_mqa.weight", [d.kv_lora + d.rope, Hd]))
    compressed, k_pe = ckv[..., :d.kv_lora], ckv[..., d.kv_lora:]
    kv = linear(rms_norm(compressed, P.shaped(pre + "kv_a_layernorm.weight", [d.kv_lora]), d.eps),
                P.shaped(pre + "kv_b_proj.weight", [H * (d.nope + d.vdim), d.kv_lora]))
    kv = kv.view(B, S, H, d.nope + d.vdim)
    k_nope, v = kv[..., :d.nope], kv[..., d.nope:]

    q_pe = apply_rope_interleaved(q_pe, cos, sin)                     # [B,S,H,rope]
    k_pe = apply_rope_interleaved(k_pe[:, :, None, :], cos, sin)      # [B,S,1,rope]

    query = torch.cat((q_nope, q_pe), dim=-1)
    key = torch.cat((k_nope, k_pe.expand(B, S, H, d.rope)), dim=-1)
    o = causal_attention(query.transpose(1, 2), key.transpose(1, 2), v.transpose(1, 2),
                         d.softmax_scale)                             # [B,H,S,vdim]
    o = o.transpose(1, 2).reshape(B, S, H * d.vdim)
    return linear(o, P.shaped(pre + "o_proj.weight", [Hd, H * d.vdim]))


# ----------------------------------------------------------------------------- MoE


def _topk_idx(vals, k):
    """Indices of the k largest values along the last dim; ties -> lower index first."""
    return torch.sort(vals, dim=-1, descending=True, stable=True).indices[..., :k]


def route(d, P, pre, x2, rec=None):
    """x2: [T, H]. Returns (topk_idx [T, K] int64, topk_weight [T, K] float64).

    If rec is a list, appends {"prefix": pre, "idx": topk_idx, "scores": unbiased scores
    [T, E] (differentiable), "bias_name": the e_score_correction_bias name} to it: the
    training goldens read the routing for the balance loss and the bias update."""
    T = x2.shape[0]
    E = d.n_routed
    logits = linear(x2, P.shaped(pre + "gate.weight", [E, d.hidden]))
    if d.scoring == "sigmoid":
        scores = torch.sigmoid(logits)
    else:
        scores = torch.softmax(logits, dim=-1)
    bname = pre + "gate.e_score_correction_bias"
    if bname in P:
        bias = P.shaped(bname, [E])
    elif d.topk_method == "noaux_tc":
        raise KeyError(f"parameter '{bname}' required for topk_method noaux_tc")
    else:
        bias = torch.zeros(E, dtype=scores.dtype)
    # Selection is not differentiable; only the gathered scores carry gradient.
    choice = (scores + bias[None, :]).detach()
    if d.n_group > 1 or d.topk_method != "greedy":
        gs = E // d.n_group
        grouped = choice.view(T, d.n_group, gs)
        if d.topk_method == "noaux_tc":
            n2 = min(2, gs)
            gscore = torch.sort(grouped, dim=-1, descending=True).values[..., :n2].sum(dim=-1)
        else:  # group_limited_greedy
            gscore = grouped.max(dim=-1).values
        gidx = _topk_idx(gscore, d.topk_group)                           # [T, topk_group]
        gmask = torch.zeros(T, d.n_group, dtype=torch.bool)
        gmask[torch.arange(T)[:, None], gidx] = True
        emask = gmask[:, :, None].expand(T, d.n_group, gs).reshape(T, E)
        choice = choice.masked_fill(~emask, float("-inf"))
    idx = _topk_idx(choice, d.top_k)                                      # [T, K]
    w = scores.gather(1, idx)
    if d.norm_topk and d.top_k > 1:
        w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
    w = w * d.rsf
    if rec is not None:
        rec.append({"prefix": pre, "idx": idx, "scores": scores, "bias_name": bname})
    return idx, w


def moe(d, P, pre, x, rec=None):
    B, S, Hd = x.shape
    x2 = x.reshape(B * S, Hd)
    idx, w = route(d, P, pre, x2, rec)
    I = d.moe_inter
    out = torch.zeros_like(x2)
    for e in range(d.n_routed):
        ep = f"{pre}experts.{e}."
        wg = P.shaped(ep + "gate_proj.weight", [I, Hd])
        wu = P.shaped(ep + "up_proj.weight", [I, Hd])
        wd = P.shaped(ep + "down_proj.weight", [Hd, I])
        tok, slot = (idx == e).nonzero(as_tuple=True)
        if tok.numel() == 0:
            continue
        y = silu_mlp(x2[tok], wg, wu, wd) * w[tok, slot][:, None]
        out = out.index_add(0, tok, y.to(out.dtype))
    if d.n_shared > 0:
        Is = I * d.n_shared
        sp = pre + "shared_experts."
        out = out + silu_mlp(x2,
                             P.shaped(sp + "gate_proj.weight", [Is, Hd]),
                             P.shaped(sp + "up_proj.weight", [Is, Hd]),
                             P.shaped(sp + "down_proj.weight", [Hd, Is]))
    return out.view(B, S, Hd)


def dense_mlp(d, P, pre, x):
    return silu_mlp(x,
                    P.shaped(pre + "gate_proj.weight", [d.inter, d.hidden]),
                    P.shaped(pre + "up_proj.weight", [d.inter, d.hidden]),
                    P.shaped(pre + "down_proj.weight", [d.hidden, d.inter]))


# ----------------------------------------------------------------------------- layers


def decoder_layer(d, P, L, x, cos, sin, rec=None):
    pre = f"model.layers.{L}."
    h = x + mla(d, P, pre + "self_attn.",
                rms_norm(x, P.shaped(pre + "input_layernorm.weight", [d.hidden]), d.eps), cos, sin)
    y = rms_norm(h, P.shaped(pre + "post_attention_layernorm.weight", [d.hidden]), d.eps)
    y = moe(d, P, pre + "mlp.", y, rec) if d.is_moe(L) else dense_mlp(d, P, pre + "mlp.", y)
    return h + y


def forward(cfg_dict, P, tokens, routing=None):
    """tokens: int64 [B, S]. Returns {"logits": [B,S,V], "hidden": [B,S,H] (last hidden state
    before model.norm), "mtp_logits": [per depth [B,S,V]]}.

    routing: optional list; every MoE layer (main layers in order, then the MTP modules')
    appends its routing record to it (see route())."""
    d = DSDims(cfg_dict)
    check_tokens(tokens, d.vocab)
    B, S = tokens.shape
    emb = P.shaped("model.embed_tokens.weight", [d.vocab, d.hidden])
    head = emb if d.tie else P.shaped("lm_head.weight", [d.vocab, d.hidden])
    cos, sin = rope_tables(d, S)

    x = emb[tokens]
    for L in range(d.layers):
        x = decoder_layer(d, P, L, x, cos, sin, routing)
    logits = linear(rms_norm(x, P.shaped("model.norm.weight", [d.hidden]), d.eps), head)

    mtp_logits = []
    h = x
    for k in range(1, d.mtp + 1):
        n = d.layers + k - 1
        pre = f"model.layers.{n}."
        e = emb[torch.roll(tokens, shifts=-k, dims=1)]      # position i gets tokens[(i+k) % S]
        z = torch.cat((rms_norm(e, P.shaped(pre + "enorm.weight", [d.hidden]), d.eps),
                       rms_norm(h, P.shaped(pre + "hnorm.weight", [d.hidden]), d.eps)), dim=-1)
        z = linear(z, P.shaped(pre + "eh_proj.weight", [d.hidden, 2 * d.hidden]))
        h = decoder_layer(d, P, n, z, cos, sin, routing)
        mtp_logits.append(linear(
            rms_norm(h, P.shaped(pre + "shared_head.norm.weight", [d.hidden]), d.eps), head))
    return {"logits": logits, "hidden": x, "mtp_logits": mtp_logits}


def param_shapes(cfg_dict):
    """{HF name: shape} of every parameter the forward reads (main model + MTP modules)."""
    d = DSDims(cfg_dict)
    Hd, H = d.hidden, d.heads
    s = {"model.embed_tokens.weight": [d.vocab, Hd], "model.norm.weight": [Hd]}
    if not d.tie:
        s["lm_head.weight"] = [d.vocab, Hd]
    for L in range(d.layers + d.mtp):
        p = f"model.layers.{L}."
        if L >= d.layers:
            s[p + "enorm.weight"] = [Hd]
            s[p + "hnorm.weight"] = [Hd]
            s[p + "eh_proj.weight"] = [Hd, 2 * Hd]
            s[p + "shared_head.norm.weight"] = [Hd]
        s[p + "input_layernorm.weight"] = [Hd]
        s[p + "post_attention_layernorm.weight"] = [Hd]
        a = p + "self_attn."
        if d.q_lora:
            s[a + "q_a_proj.weight"] = [d.q_lora, Hd]
            s[a + "q_a_layernorm.weight"] = [d.q_lora]
            s[a + "q_b_proj.weight"] = [H * d.qdim, d.q_lora]
        else:
            s[a + "q_proj.weight"] = [H * d.qdim, Hd]
        s[a + "kv_a_proj_with_mqa.weight"] = [d.kv_lora + d.rope, Hd]
        s[a + "kv_a_layernorm.weight"] = [d.kv_lora]
        s[a + "kv_b_proj.weight"] = [H * (d.nope + d.vdim), d.kv_lora]
        s[a + "o_proj.weight"] = [Hd, H * d.vdim]
        m = p + "mlp."
        if d.is_moe(L):
            I = d.moe_inter
            s[m + "gate.weight"] = [d.n_routed, Hd]
            if d.topk_method == "noaux_tc":
                s[m + "gate.e_score_correction_bias"] = [d.n_routed]
            for e in range(d.n_routed):
                s[m + f"experts.{e}.gate_proj.weight"] = [I, Hd]
                s[m + f"experts.{e}.up_proj.weight"] = [I, Hd]
                s[m + f"experts.{e}.down_proj.weight"] = [Hd, I]
            if d.n_shared:
                Is = I * d.n_shared
                s[m + "shared_experts.gate_proj.weight"] = [Is, Hd]
                s[m + "shared_experts.up_proj.weight"] = [Is, Hd]
                s[m + "shared_experts.down_proj.weight"] = [Hd, Is]
        else:
            s[m + "gate_proj.weight"] = [d.inter, Hd]
            s[m + "up_proj.weight"] = [d.inter, Hd]
            s[m + "down_proj.weight"] = [Hd, d.inter]
    return s

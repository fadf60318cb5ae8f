"""Llama forward in float64 (Hugging Face LlamaForCausalLM semantics).

Functional: forward(cfg, params, tokens) with params a common.Params of HF-named tensors.
"""

import torch

from common import (DTYPE, Config, causal_attention, check_tokens, compute_dtype, linear,
                    rms_norm, rope_inv_freq, silu_mlp)


class LlamaDims:
    def __init__(self, cfg_dict):
        c = Config(cfg_dict)
        if c.req("model_type") != "llama":
            raise ValueError("not a llama config")
        self.vocab = int(c.req("vocab_size"))
        self.hidden = int(c.req("hidden_size"))
        self.layers = int(c.req("num_hidden_layers"))
        self.heads = int(c.req("num_attention_heads"))
        self.kv_heads = int(c.get("num_key_value_heads", self.heads))
        self.inter = int(c.req("intermediate_size"))
        self.head_dim = int(c.get("head_dim", self.hidden // self.heads))
        self.eps = float(c.get("rms_norm_eps", 1e-6))
        self.theta = float(c.get("rope_theta", 10000.0))
        self.tie = bool(c.get("tie_word_embeddings", False))
        if c.has("rope_scaling"):
            raise ValueError("llama: rope_scaling must be null (not supported by the reference)")
        if c.get("attention_bias", False) or c.get("mlp_bias", False):
            raise ValueError("llama: attention_bias / mlp_bias must be false")
        if c.get("hidden_act", "silu") != "silu":
            raise ValueError("llama: hidden_act must be silu")
        if self.heads % self.kv_heads != 0:
            raise ValueError("llama: num_attention_heads must be a multiple of num_key_value_heads")
        if self.head_dim % 2 != 0:
            raise ValueError("llama: head_dim must be even")


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_cos_sin(S, head_dim, theta):
    inv = rope_inv_freq(head_dim, theta)                      # [hd/2]
    ang = torch.arange(S, dtype=DTYPE)[:, None] * inv[None]   # [S, hd/2]
    emb = torch.cat((ang, ang), dim=-1)                       # [S, hd]
    dt = compute_dtype()  # computed in float64, then rounded (a no-op in float64)
    return emb.cos().to(dt), emb.sin().to(dt)


def apply_rope(x, cos, sin):
    """x: [B, H, S, hd]; cos/sin: [S, hd]. HF Llama rotate_half convention."""
    return x * cos + rotate_half(x) * sin


def attention(d, P, pre, x, cos, sin):
    B, S, _ = x.shape
    H, KV, hd = d.heads, d.kv_heads, d.head_dim
    q = linear(x, P.shaped(pre + "q_proj.weight", [H * hd, d.hidden])).view(B, S, H, hd)
    k = linear(x, P.shaped(pre + "k_proj.weight", [KV * hd, d.hidden])).view(B, S, KV, hd)
    v = linear(x, P.shaped(pre + "v_proj.weight", [KV * hd, d.hidden])).view(B, S, KV, hd)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # [B, *, S, hd]
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    g = H // KV
    k = k.repeat_interleave(g, dim=1)   # kv head j serves query heads j*g .. j*g+g-1
    v = v.repeat_interleave(g, dim=1)
    o = causal_attention(q, k, v, hd ** -0.5)                 # [B, H, S, hd]
    o = o.transpose(1, 2).reshape(B, S, H * hd)
    return linear(o, P.shaped(pre + "o_proj.weight", [d.hidden, H * hd]))


def decoder_layer(d, P, L, x, cos, sin):
    pre = f"model.layers.{L}."
    h = x + attention(d, P, pre + "self_attn.",
                      rms_norm(x, P.shaped(pre + "input_layernorm.weight", [d.hidden]), d.eps),
                      cos, sin)
    y = rms_norm(h, P.shaped(pre + "post_attention_layernorm.weight", [d.hidden]), d.eps)
    m = pre + "mlp."
    y = silu_mlp(y,
                 P.shaped(m + "gate_proj.weight", [d.inter, d.hidden]),
                 P.shaped(m + "up_proj.weight", [d.inter, d.hidden]),
                 P.shaped(m + "down_proj.weight", [d.hidden, d.inter]))
    return h + y


def forward(cfg_dict, P, tokens):
    """tokens: int64 [B, S]. Returns {"logits": [B,S,V], "hidden": [B,S,H] (pre-norm),
    "mtp_logits": []}."""
    d = LlamaDims(cfg_dict)
    check_tokens(tokens, d.vocab)
    B, S = tokens.shape
    emb = P.shaped("model.embed_tokens.weight", [d.vocab, d.hidden])
    x = emb[tokens]
    cos, sin = rope_cos_sin(S, d.head_dim, d.theta)
    for L in range(d.layers):
        x = decoder_layer(d, P, L, x, cos, sin)
    head = emb if d.tie else P.shaped("lm_head.weight", [d.vocab, d.hidden])
    logits = linear(rms_norm(x, P.shaped("model.norm.weight", [d.hidden]), d.eps), head)
    return {"logits": logits, "hidden": x, "mtp_logits": []}


def param_shapes(cfg_dict):
    """{HF name: shape} of every parameter the forward reads."""
    d = LlamaDims(cfg_dict)
    H, KV, hd, Hd, I = d.heads, d.kv_heads, d.head_dim, d.hidden, d.inter
    s = {"model.embed_tokens.weight": [d.vocab, Hd], "model.norm.weight": [Hd]}
    if not d.tie:
        s["lm_head.weight"] = [d.vocab, Hd]
    for L in range(d.layers):
        p = f"model.layers.{L}."
        s[p + "input_layernorm.weight"] = [Hd]
        s[p + "post_attention_layernorm.weight"] = [Hd]
        s[p + "self_attn.q_proj.weight"] = [H * hd, Hd]
        s[p + "self_attn.k_proj.weight"] = [KV * hd, Hd]
        s[p + "self_attn.v_proj.weight"] = [KV * hd, Hd]
        s[p + "self_attn.o_proj.weight"] = [Hd, H * hd]
        s[p + "mlp.gate_proj.weight"] = [I, Hd]
        s[p + "mlp.up_proj.weight"] = [I, Hd]
        s[p + "mlp.down_proj.weight"] = [Hd, I]
    return s

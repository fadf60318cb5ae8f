"""Shared float64 building blocks for the reference models.

Everything here is written functionally (parameters are passed in as tensors), with no
in-place ops on values that carry gradients, so that autograd in float64 can later be
run through the whole forward by giving the parameter tensors requires_grad=True.
"""

import json
import math
import os

import torch
import torch.nn.functional as F

DTYPE = torch.float64

# The dtype the forward computes in (parameters, activations, losses). float64 unless a
# caller opts into float32 with set_compute_dtype (make_trajectory_goldens.py --dtype);
# all other goldens are float64. RoPE tables are always computed in float64 and then
# rounded to this dtype.
_COMPUTE_DTYPE = [DTYPE]


def compute_dtype():
    return _COMPUTE_DTYPE[0]


def set_compute_dtype(dtype):
    """Selects the compute dtype (torch.float64 or torch.float32) and makes it torch's
    default dtype."""
    if dtype not in (torch.float64, torch.float32):
        raise ValueError(f"unsupported compute dtype {dtype}")
    _COMPUTE_DTYPE[0] = dtype
    torch.set_default_dtype(dtype)


# ----------------------------------------------------------------------------- config


class Config:
    """Read-only view of an HF config dict with explicit required/default lookups."""

    def __init__(self, d):
        self.d = dict(d)

    def has(self, key):
        return key in self.d and self.d[key] is not None

    def req(self, key):
        if key not in self.d or self.d[key] is None:
            raise KeyError(f"model config: required key '{key}' is missing or null")
        return self.d[key]

    def get(self, key, default):
        v = self.d.get(key)
        return default if v is None else v


def load_spec(spec_path):
    """Returns (model config dict, train dict) from a Kiln spec JSON.

    model may be the HF config inline or {"hf_config": "path"}; a relative hf_config path
    is resolved against the spec file's directory (as Kiln's frontend does).
    Other keys given next to "hf_config" override the loaded file's keys.
    """
    with open(spec_path) as f:
        spec = json.load(f)
    if "model" not in spec:
        raise KeyError(f"{spec_path}: no 'model' section")
    model = dict(spec["model"])
    if "hf_config" in model:
        p = model.pop("hf_config")
        path = p if os.path.isabs(p) else os.path.join(
            os.path.dirname(os.path.abspath(spec_path)), p)
        with open(path) as f:
            base = json.load(f)
        base.update(model)
        model = base
    train = spec.get("train") or {}
    return model, train


# ----------------------------------------------------------------------------- params


class Params:
    """Name -> tensor in the compute dtype (float64 by default), recording which names the
    forward used."""

    def __init__(self, tensors):
        self.t = {k: v.to(compute_dtype()) for k, v in tensors.items()}
        self.used = set()

    def __contains__(self, name):
        return name in self.t

    def __getitem__(self, name):
        if name not in self.t:
            raise KeyError(f"parameter '{name}' not found in the parameter file")
        self.used.add(name)
        return self.t[name]

    def shaped(self, name, shape):
        t = self[name]
        if list(t.shape) != list(shape):
            raise ValueError(f"parameter '{name}': shape {list(t.shape)}, expected {list(shape)}")
        return t

    def unused(self):
        return sorted(set(self.t) - self.used)


# ----------------------------------------------------------------------------- ops


def linear(x, w):
    """y = x @ W^T, W is [out, in] (HF layout). No bias."""
    return torch.matmul(x, w.t())


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w


def silu_mlp(x, w_gate, w_up, w_down):
    return linear(F.silu(linear(x, w_gate)) * linear(x, w_up), w_down)


def causal_attention(q, k, v, scale):
    """q, k: [B, H, S, Dqk]; v: [B, H, S, Dv] -> [B, H, S, Dv]. Positions 0..S-1, causal."""
    S = q.shape[-2]
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    mask = torch.ones(S, S, dtype=torch.bool).triu(diagonal=1)
    scores = scores.masked_fill(mask, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    return torch.matmul(p, v)


def cross_entropy(logits, targets, label_smoothing):
    """Mean over rows of (1-eps)*(-log p[t]) + eps*mean_c(-log p[c]).

    logits: [N, V] float64, targets: [N] int64.
    Equals torch.nn.functional.cross_entropy(logits, targets, label_smoothing=eps).
    """
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(1, targets[:, None]).squeeze(1)
    if label_smoothing == 0.0:
        return nll.mean()
    smooth = -logp.mean(dim=-1)
    return ((1.0 - label_smoothing) * nll + label_smoothing * smooth).mean()


def next_token_loss(logits, tokens, shift, label_smoothing):
    """Loss of logits[b, i] against tokens[b, i + shift] for i in 0..S-1-shift.

    Main model: shift = 1. MTP depth k: shift = k + 1.
    """
    B, S, V = logits.shape
    n = S - shift
    if n <= 0:
        raise ValueError(f"seq_len {S} too short for a loss with target shift {shift}")
    lg = logits[:, :n, :].reshape(B * n, V)
    tg = tokens[:, shift:].reshape(B * n)
    return cross_entropy(lg, tg, label_smoothing)


def balance_loss(scores, idx, num_sequences):
    """DeepSeek-V3's sequence-wise balance loss of one MoE layer (paper eq. 17-20), without
    its alpha.

    scores: [B*T, E] unbiased router scores (sigmoid or softmax of the gate logits), rows
    grouped by sequence (row b*T + t is token t of sequence b); idx: [B*T, K] the selected
    experts. Per sequence, with N = E, K = top_k:
      f_i = N / (K T) * #{t : i selected for t}      (a constant: no gradient)
      s'_{i,t} = s_{i,t} / sum_j s_{j,t}
      P_i = 1/T sum_t s'_{i,t}
    and the result is the mean over sequences of sum_i f_i P_i.
    """
    BT, E = scores.shape
    K = idx.shape[1]
    B = int(num_sequences)
    if BT % B != 0:
        raise ValueError("balance_loss: token count not divisible by the number of sequences")
    T = BT // B
    onehot = torch.zeros(BT, E, dtype=scores.dtype)
    onehot[torch.arange(BT)[:, None], idx] = 1.0          # top-k experts are distinct
    f = onehot.view(B, T, E).sum(dim=1) * (E / (K * T))   # [B, E], no gradient
    sp = scores / scores.sum(dim=-1, keepdim=True)
    Pm = sp.view(B, T, E).mean(dim=1)                     # [B, E]
    return (f * Pm).sum(dim=-1).mean()


def masked_cross_entropy(logits, targets, mask, label_smoothing):
    """Kiln's masked CE: sum_i mask[i] * ce[i] / sum_i mask[i] over all positions, with ce
    as in cross_entropy. logits: [B, S, V]; targets: [B, S] int64; mask: [B, S] (1 = counted,
    0 = ignored). Raises if the mask is all zero."""
    B, S, V = logits.shape
    logp = torch.log_softmax(logits.reshape(B * S, V), dim=-1)
    ce = -logp.gather(1, targets.reshape(B * S)[:, None]).squeeze(1)
    if label_smoothing != 0.0:
        ce = (1.0 - label_smoothing) * ce + label_smoothing * (-logp.mean(dim=-1))
    m = mask.reshape(B * S).to(logits.dtype)
    den = m.sum()
    if float(den) == 0.0:
        raise ValueError("masked_cross_entropy: the loss mask is all zero")
    return (ce * m).sum() / den


def rope_inv_freq(dim, theta):
    """inv_freq[i] = theta^(-2i/dim), i < dim/2, float64."""
    return 1.0 / (float(theta) ** (torch.arange(0, dim, 2, dtype=DTYPE) / dim))


def check_tokens(tokens, vocab):
    if tokens.dim() != 2:
        raise ValueError("tokens must be [B, S]")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab):
        raise ValueError(f"token id out of range [0, {vocab})")


def softmax_scale_default(head_dim):
    return 1.0 / math.sqrt(head_dim)

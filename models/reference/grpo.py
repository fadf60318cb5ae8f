"""GRPO's objective and group advantages, float64, on top of the reference models.

Written from the papers, not from Kiln's code:

* DeepSeekMath (Shao et al. 2024), eq. 3: the clipped surrogate of PPO with a
  group-relative advantage, minus beta times an unbiased KL estimate to a reference
  model, averaged over each completion's tokens and then over the completions (eq. 4's
  estimator is Schulman's k3: pi_ref/pi - log(pi_ref/pi) - 1).
* DAPO (Yu et al. 2025): "clip-higher" (separate eps_low / eps_high) and the token-level
  mean over all completion tokens of the batch (also TRL's default).
* Dr. GRPO (Liu et al. 2025): advantages without the std division, and a constant
  normaliser (completions x max_new_tokens) instead of the completion length.

Everything is differentiated with autograd (torch.min / torch.clamp give the subgradient
conventions: inside the clip range both min operands are equal and each gets half; at
the clip bounds clamp passes the gradient through).
"""

import torch

from common import DTYPE

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
ADVANTAGES = ("group-norm", "group-mean")


def grpo_options(train):
    """train.grpo with Kiln's documented defaults (frontend/Spec.h GrpoConfig), as a dict:
    samples_per_prompt, max_new_tokens, temperature, clip_low, clip_high, beta, advantage,
    advantage_eps, aggregation. clip_high defaults to clip_low; max_new_tokens to
    seq_len // 2."""
    g = train.get("grpo") or {}
    seq_len = int(train.get("seq_len", 1))

    def num(key, default):
        v = g.get(key)
        return float(default if v is None else v)

    clip_low = num("clip_low", 0.2)
    out = {
        "samples_per_prompt": int(g.get("samples_per_prompt") or 4),
        "max_new_tokens": int(g.get("max_new_tokens") or max(1, seq_len // 2)),
        "temperature": num("temperature", 1.0),
        "clip_low": clip_low,
        "clip_high": num("clip_high", clip_low),
        "beta": num("beta", 0.0),
        "advantage": g.get("advantage") or "group-norm",
        "advantage_eps": num("advantage_eps", 1e-4),
        "aggregation": g.get("aggregation") or "token-mean",
    }
    if out["aggregation"] not in AGGREGATIONS:
        raise ValueError(f"train.grpo.aggregation: unknown {out['aggregation']!r}")
    if out["advantage"] not in ADVANTAGES:
        raise ValueError(f"train.grpo.advantage: unknown {out['advantage']!r}")
    return out


def group_advantages(rewards, group_size, mode="group-norm", eps=1e-4):
    """One advantage per completion from its reward and its group's.

    rewards: [N] with N = prompts x group_size, group-major (prompt p's completions are
    rows p*G .. p*G+G-1).
      "group-norm": (r - mean_g) / (std_g + eps), std_g = torch's default (unbiased,
                    Bessel's n-1) std, as TRL's GRPOTrainer computes
                    `rewards.view(-1, G).std(dim=1)`. A group of equal rewards gets 0
                    (with eps = 0 too, where the formula is 0/0).
      "group-mean": r - mean_g (Dr. GRPO).
    """
    r = torch.as_tensor(rewards, dtype=DTYPE)
    G = int(group_size)
    if r.dim() != 1 or G < 1 or r.numel() % G != 0:
        raise ValueError(f"{r.numel()} rewards do not split into groups of {G}")
    g = r.view(-1, G)
    centred = g - g.mean(dim=1, keepdim=True)
    if mode == "group-mean":
        return centred.reshape(-1)
    if mode != "group-norm":
        raise ValueError(f"unknown advantage mode {mode!r}")
    if G < 2:
        raise ValueError("group-norm needs groups of at least 2 (unbiased std)")
    den = g.std(dim=1, unbiased=True, keepdim=True) + eps
    safe = torch.where(den == 0, torch.ones_like(den), den)
    return torch.where(den == 0, torch.zeros_like(centred), centred / safe).reshape(-1)


def token_logprobs(logits, targets, temperature):
    """log softmax(logits / T)[target]: [B, S, V], [B, S] int64 -> [B, S]."""
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(-1, targets[..., None]).squeeze(-1)


def per_token_loss(logp, old_logp, ref_logp, adv, clip_low, clip_high, beta):
    """-(min(r A, clamp(r, 1 - clip_low, 1 + clip_high) A) - beta * k3), r = exp(logp - old).

    logp, old_logp, ref_logp: [B, S]; adv: [B] (broadcast over the row's tokens)."""
    A = adv[:, None]
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.min(ratio * A, torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * A)
    d = ref_logp - logp
    kl = torch.exp(d) - d - 1.0
    return -(surrogate - beta * kl)


def aggregate(loss, mask, how, max_new_tokens):
    """Reduce [B, S] per-token losses over the positions with mask 1.

      "token-mean":              sum(m l) / max(sum m, 1)                  (DAPO, TRL "bnpo")
      "seq-mean-token-mean":     mean_b [sum_t(m l) / max(sum_t m, 1)]     (DeepSeekMath eq. 3)
                                 a row with no tokens adds 0 but counts in the mean
      "seq-mean-token-sum-norm": sum(m l) / (B * max_new_tokens)           (Dr. GRPO)
    """
    m = mask.to(loss.dtype)
    # Masked positions contribute exactly 0 (and no gradient), whatever their inputs.
    ml = torch.where(m != 0, loss * m, torch.zeros_like(loss))
    B = loss.shape[0]
    if how == "token-mean":
        return ml.sum() / m.sum().clamp(min=1.0)
    if how == "seq-mean-token-mean":
        return (ml.sum(dim=1) / m.sum(dim=1).clamp(min=1.0)).mean()
    if how == "seq-mean-token-sum-norm":
        return ml.sum() / (B * max_new_tokens)
    raise ValueError(f"unknown aggregation {how!r}")


def grpo_loss(logits, targets, mask, advantages, old_logprobs, ref_logprobs, opts):
    """GRPO's loss of one batch of completions; opts as grpo_options(). Inputs at masked
    positions are not read (old/ref are replaced by the policy's own there, so that even
    garbage cannot reach the loss or its gradient)."""
    logp = token_logprobs(logits, targets, opts["temperature"])
    keep = mask != 0
    old = torch.where(keep, old_logprobs, logp.detach())
    ref = torch.where(keep, ref_logprobs, logp.detach())
    per = per_token_loss(logp, old, ref, advantages, opts["clip_low"], opts["clip_high"],
                         opts["beta"])
    return aggregate(per, mask, opts["aggregation"], opts["max_new_tokens"])


def clip_regions(logp, old_logprobs, mask, advantages, clip_low, clip_high):
    """Counts of completion tokens by where their ratio falls, by the advantage's sign: a
    diagnostic that a batch exercises both clip bounds (written to the golden)."""
    r = torch.exp(logp - old_logprobs)[mask != 0]
    A = advantages[:, None].expand_as(mask)[mask != 0]
    lo, hi_sym, hi = 1.0 - clip_low, 1.0 + clip_low, 1.0 + clip_high
    out = {}
    for sign, sel in (("pos", A > 0), ("neg", A < 0), ("zero", A == 0)):
        rs = r[sel]
        out[sign] = {
            "below_low": int((rs < lo).sum()),
            "inside": int(((rs >= lo) & (rs <= hi_sym)).sum()),
            "between_highs": int(((rs > hi_sym) & (rs <= hi)).sum()),
            "above_high": int((rs > hi).sum()),
        }
    return out


# ----------------------------------------------------------------------------- self-check


def _selfcheck():
    """Checks the formulas above against independent spellings; prints ok/FAIL."""
    import math

    torch.manual_seed(0)
    failures = []

    def check(what, ok):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    # 1. The clipped surrogate by PPO's case analysis: A >= 0 -> min(r, 1 + hi) A,
    #    A < 0 -> max(r, 1 - lo) A; the k3 KL by its definition pi_ref/pi - log(pi_ref/pi) - 1.
    B, S, lo, hi, beta = 3, 7, 0.2, 0.28, 0.05
    logp = -5 + 0.2 * torch.randn(B, S, dtype=DTYPE)
    old = logp + 0.3 * torch.randn(B, S, dtype=DTYPE)
    ref = logp + 0.3 * torch.randn(B, S, dtype=DTYPE)
    adv = torch.tensor([0.8, -0.6, 0.0], dtype=DTYPE)
    got = per_token_loss(logp, old, ref, adv, lo, hi, beta)
    worst = 0.0
    for b in range(B):
        for s in range(S):
            r = math.exp(logp[b, s] - old[b, s])
            A = float(adv[b])
            surr = min(r, 1 + hi) * A if A >= 0 else max(r, 1 - lo) * A
            q = math.exp(ref[b, s] - logp[b, s])
            want = -(surr - beta * (q - math.log(q) - 1))
            worst = max(worst, abs(float(got[b, s]) - want))
    check(f"per-token loss = PPO case analysis + k3 (max abs error {worst:.2e})", worst < 1e-14)

    # 2. Aggregations by explicit loops, with an empty row (it counts in the row mean).
    mask = (torch.rand(B, S) < 0.6).to(DTYPE)
    mask[1] = 0
    mask[0, 0] = 1
    n_tok = float(mask.sum())
    tm = sum(float(got[b, s]) for b in range(B) for s in range(S) if mask[b, s]) / n_tok
    rows = []
    for b in range(B):
        k = [float(got[b, s]) for s in range(S) if mask[b, s]]
        rows.append(sum(k) / len(k) if k else 0.0)
    sm = sum(rows) / B
    sn = tm * n_tok / (B * 11)
    for how, want in (("token-mean", tm), ("seq-mean-token-mean", sm),
                      ("seq-mean-token-sum-norm", sn)):
        v = float(aggregate(got, mask, how, 11))
        check(f"{how} = loop ({v!r} vs {want!r})", abs(v - want) <= 1e-15 * max(1, abs(want)))

    # 3. Group advantages: G = 2 by hand (unbiased std of {a, b} is |a - b| / sqrt 2).
    a = group_advantages([1.0, 0.0, 0.5, 0.5], 2, "group-norm", 1e-4)
    want = 0.5 / (1 / math.sqrt(2) + 1e-4)
    check("group-norm, G = 2, unbiased std", abs(float(a[0]) - want) < 1e-15 and
          float(a[1]) == -float(a[0]) and float(a[2]) == 0.0 and float(a[3]) == 0.0)
    check("group-mean", group_advantages([3.0, 1.0, 2.0], 3, "group-mean").tolist() ==
          [1.0, -1.0, 0.0])

    # 4. d loss / d logits: autograd vs central differences, every aggregation, T != 1.
    V = 5
    logits = torch.randn(B, S, V, dtype=DTYPE)
    targets = torch.randint(0, V, (B, S))
    own = token_logprobs(logits, targets, 0.7).detach()
    old = own + 0.3 * torch.randn(B, S, dtype=DTYPE)
    ref = own + 0.3 * torch.randn(B, S, dtype=DTYPE)
    for how in AGGREGATIONS:
        opts = {"temperature": 0.7, "clip_low": lo, "clip_high": hi, "beta": beta,
                "aggregation": how, "max_new_tokens": 9}
        x = logits.clone().requires_grad_(True)
        grpo_loss(x, targets, mask, adv, old, ref, opts).backward()
        h, worst = 1e-6, 0.0
        for idx in [(0, 0, 1), (0, 3, 2), (2, 6, 4), (2, 1, 0)]:
            xp, xm = logits.clone(), logits.clone()
            xp[idx] += h
            xm[idx] -= h
            fd = (float(grpo_loss(xp, targets, mask, adv, old, ref, opts)) -
                  float(grpo_loss(xm, targets, mask, adv, old, ref, opts))) / (2 * h)
            worst = max(worst, abs(fd - float(x.grad[idx])))
        check(f"{how}: autograd = finite differences (max abs error {worst:.1e})", worst < 1e-8)
    return not failures


if __name__ == "__main__":
    import sys
    sys.exit(0 if _selfcheck() else 1)

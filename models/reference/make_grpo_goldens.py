#!/usr/bin/python3
"""Write the GRPO goldens (loss and per-parameter gradient statistics of kiln.grpo_loss).

Usage:
  /usr/bin/python3 models/reference/make_grpo_goldens.py [--kilnc build/bin/kilnc] \
      [--out-dir test/Reference/goldens]

For each base model (models/r1-tiny.json, models/dense-tiny.json) and each option set of
OPTION_SETS, the spec with train.stage "grpo" and that train.grpo is built here and
embedded in the golden (GrpoGoldenTest parses it from there). A fixed, seeded rollout
(prompts, completions, rewards, old and reference log-probs) is made per golden; the
gradient of the GRPO loss (grpo.py) at Kiln's seeded initial parameters is taken with
autograd in float64. Also writes advantages.grpo.json: group advantages of hand reward
vectors for runtime/driver/GrpoAdvantages.h. See README.md ("GRPO goldens").
"""

import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import deepseek_v3  # noqa: E402
import grpo  # noqa: E402
import llama  # noqa: E402
import safetensors_io  # noqa: E402
import training  # noqa: E402
from common import DTYPE, Params, load_spec  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = {"r1-tiny": "models/r1-tiny.json", "dense-tiny": "models/dense-tiny.json"}
PAD = 0
OLD_NOISE = 0.3   # std of old_logprobs - own log-probs: ratios beyond both clip bounds
REF_NOISE = 0.3   # std of ref_logprobs - own log-probs
TRUNCATED_ROW = 2

# train.grpo of each golden. samples_per_prompt 2: the 4 x 32 batch is 2 groups of 2.
_BASE = {"samples_per_prompt": 2, "temperature": 0.7, "clip_low": 0.2, "clip_high": 0.28,
         "beta": 0.04, "advantage": "group-norm", "advantage_eps": 1e-4,
         "max_new_tokens": 20}
OPTION_SETS = {
    "token-mean": dict(_BASE, aggregation="token-mean"),
    "seq-mean-token-mean": dict(_BASE, aggregation="seq-mean-token-mean"),
    "seq-mean-token-sum-norm": dict(_BASE, aggregation="seq-mean-token-sum-norm"),
    # Dr. GRPO: no std division, the constant normaliser, no KL; everything else at
    # Kiln's defaults (temperature 1, symmetric clip 0.2, max_new_tokens seq_len / 2).
    "dr-grpo": {"samples_per_prompt": 2, "advantage": "group-mean",
                "aggregation": "seq-mean-token-sum-norm", "beta": 0.0},
}

# advantages.grpo.json: (group size, mode, eps, rewards).
ADVANTAGE_CASES = [
    (2, "group-norm", 1e-4, [1.0, 0.0, 0.1, 1.1]),
    (4, "group-norm", 1e-4, [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 2.0, -1.0, 0.25, 3.0]),
    (3, "group-norm", 1e-6, [0.3, 1.7, -2.2, 5.0, 5.0, 4.0]),
    (4, "group-mean", 1e-4, [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 2.0, -1.0, 0.25, 3.0]),
    (8, "group-norm", 1e-4, [1.1, 0.1, 0.0, 1.0, 1.1, 1.1, 0.0, 0.1]),
    (2, "group-norm", 0.0, [0.7, 0.7, 1.0, -0.5]),       # a tie with eps 0: 0, not 0/0
    (1, "group-mean", 1e-4, [0.25, -3.0]),               # G = 1: all 0
]


def f32(t):
    """Round to float32 and back: the values Kiln's f32 inputs hold exactly."""
    return t.to(torch.float32).to(DTYPE)


def grpo_spec(base_path, options):
    """The Kiln spec: the base model spec with stage grpo and this train.grpo."""
    with open(os.path.join(ROOT, base_path)) as f:
        spec = json.load(f)
    spec["train"]["stage"] = "grpo"
    spec["train"]["grpo"] = copy.deepcopy(options)
    return spec


def initial_params(kilnc, spec, tmp, name):
    """Kiln's seeded initial parameters (kilnc --save-params), as float64. The init
    depends only on train.seed and each tensor's HF name, so they are written from the
    same spec at stage "pretrain" (kilnc binds a batch before saving, and has no rollout
    data for a grpo spec); its extra MTP tensors are dropped (GRPO builds no MTP modules)."""
    pre = copy.deepcopy(spec)
    pre["train"]["stage"] = "pretrain"
    pre["train"].pop("grpo")
    spec_path = os.path.join(tmp, name + ".spec.json")
    params_path = os.path.join(tmp, name + ".safetensors")
    with open(spec_path, "w") as f:
        json.dump(pre, f)
    subprocess.run([kilnc, spec_path, "--save-params", params_path], check=True)
    tensors, _ = safetensors_io.load(params_path)
    return tensors


def policy_model_cfg(spec_path):
    """The model GRPO trains: the spec's model without MTP modules."""
    model_cfg, train = load_spec(spec_path)
    model_cfg = dict(model_cfg)
    if model_cfg.get("model_type") == "deepseek_v3":
        model_cfg["num_nextn_predict_layers"] = 0
    return model_cfg, train


def logits_of(model_cfg, tensors, tokens, routing=None):
    """The policy's logits [B, S, V]; DeepSeek MoE layers append their routing records
    to `routing` when given."""
    P = Params(tensors)
    if model_cfg["model_type"] == "deepseek_v3":
        out = deepseek_v3.forward(model_cfg, P, tokens, routing=routing)
    else:
        out = llama.forward(model_cfg, P, tokens)
    unused = P.unused()
    if unused:
        raise ValueError(f"parameters the policy did not read: {unused[:5]}")
    return out["logits"]


def rollout(rng, B, S, V, max_new):
    """Seeded rows: a prompt of 3..12 tokens, a completion, right padding with PAD.
    Completions end before max_new tokens, except row TRUNCATED_ROW, which runs to
    max_new and is masked out (train.grpo.mask_truncated). targets[i] = row[i + 1];
    loss_mask[i] = 1 where targets[i] is a completion token."""
    tokens, targets, mask, prompts, completions = [], [], [], [], []
    for b in range(B):
        p = rng.randint(3, min(12, S - max_new))
        c = max_new if b == TRUNCATED_ROW else rng.randint(4, max_new - 1)
        row = [rng.randint(1, V - 1) for _ in range(p + c)] + [PAD] * (S + 1 - p - c)
        tokens.append(row[:S])
        targets.append(row[1:S + 1])
        keep = b != TRUNCATED_ROW
        mask.append([1.0 if keep and p - 1 <= i <= p + c - 2 else 0.0 for i in range(S)])
        prompts.append(p)
        completions.append(c)
    return tokens, targets, mask, prompts, completions


def rewards_for(rng, B, G):
    """Rule-style rewards (accuracy 1 + format 0.1), different within each group."""
    values = [0.0, 0.1, 1.0, 1.1]
    out = []
    for _ in range(B // G):
        out += rng.sample(values, G)
    return out


def covers_clip_regions(regions, opts):
    """Whether some completion token lies in each region where a clip convention shows:
    A > 0 below, inside, above 1 + clip_high and (with clip-higher) between the two upper
    bounds; A < 0 below 1 - clip_low, inside, and above (where A < 0 is never clipped)."""
    pos, neg = regions["pos"], regions["neg"]
    need = [pos["below_low"], pos["inside"], pos["above_high"], neg["below_low"],
            neg["inside"], neg["above_high"]]
    if opts["clip_high"] > opts["clip_low"]:
        need += [pos["between_highs"], neg["between_highs"]]
    return all(n > 0 for n in need)


def make_golden(model, option_set, kilnc, tmp):
    spec = grpo_spec(MODELS[model], OPTION_SETS[option_set])
    name = f"{model}.grpo-{option_set}"
    spec_path = os.path.join(tmp, name + ".json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    model_cfg, train = policy_model_cfg(spec_path)
    opts = grpo.grpo_options(train)
    B, S = int(train["micro_batch"]), int(train["seq_len"])
    V = int(model_cfg["vocab_size"])
    G = opts["samples_per_prompt"]

    params = training.prepare_params(model_cfg, initial_params(kilnc, spec, tmp, name),
                                     warn=False)
    # The first seeded rollout whose ratios fall in every clip region that matters.
    for attempt in range(100):
        rng = random.Random(f"{name}#{attempt}")
        tok, tgt, msk, prompts, completions = rollout(rng, B, S, V, opts["max_new_tokens"])
        tokens = torch.tensor(tok, dtype=torch.int64)
        targets = torch.tensor(tgt, dtype=torch.int64)
        mask = torch.tensor(msk, dtype=DTYPE)
        rewards = rewards_for(rng, B, G)
        adv64 = grpo.group_advantages(rewards, G, opts["advantage"], opts["advantage_eps"])
        advantages = f32(adv64)
        gen = torch.Generator().manual_seed(rng.getrandbits(62))
        with torch.no_grad():
            own = grpo.token_logprobs(logits_of(model_cfg, params, tokens), targets,
                                      opts["temperature"])
            old = f32(own + OLD_NOISE * torch.randn(B, S, generator=gen, dtype=DTYPE))
            ref = f32(own + REF_NOISE * torch.randn(B, S, generator=gen, dtype=DTYPE))
            regions = grpo.clip_regions(own, old, mask, advantages, opts["clip_low"],
                                        opts["clip_high"])
        if covers_clip_regions(regions, opts):
            break
    else:
        raise RuntimeError(f"{name}: no rollout in 100 seeds covers the clip regions")

    leaves = {n: t.detach().clone().requires_grad_(training.is_trainable(n))
              for n, t in params.items()}
    routing = []
    loss = grpo.grpo_loss(logits_of(model_cfg, leaves, tokens, routing), targets, mask,
                          advantages, old, ref, opts)
    loss.backward()
    grads = {n: (t.grad if t.grad is not None and training.is_trainable(n)
                 else torch.zeros_like(t)) for n, t in leaves.items()}
    golden = {
        "spec": spec,
        "model_type": model_cfg["model_type"],
        "grpo": opts,
        "batch": B, "seq_len": S,
        "rollout": {"seed": f"{name}#{attempt}", "prompt_lengths": prompts,
                    "completion_lengths": completions, "truncated_rows": [TRUNCATED_ROW],
                    "pad": PAD},
        "rewards": rewards,
        "advantages_f64": [training._f(a) for a in adv64.tolist()],
        "inputs": {
            "tokens": tok, "targets": tgt, "loss_mask": msk,
            "advantages": [training._f(a) for a in advantages.tolist()],
            "old_logprobs": [[training._f(v) for v in row] for row in old.tolist()],
            "ref_logprobs": [[training._f(v) for v in row] for row in ref.tolist()],
        },
        "clip_regions": regions,
        "loss": training._f(loss),
        "min_routing_margin": training.routing_margin(model_cfg, routing, params),
        "grads": {n: training.stats(n, g) for n, g in grads.items()},
    }
    return name, golden


def advantage_golden():
    cases = []
    for G, mode, eps, rewards in ADVANTAGE_CASES:
        adv = grpo.group_advantages(rewards, G, mode, eps)
        cases.append({"group_size": G, "mode": mode, "eps": eps, "rewards": rewards,
                      "advantages": [training._f(a) for a in adv.tolist()]})
    return {"std": "unbiased (n - 1), torch.std / TRL", "cases": cases}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kilnc", default=os.path.join(ROOT, "build", "bin", "kilnc"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "test", "Reference", "goldens"))
    a = ap.parse_args(argv)
    torch.set_default_dtype(DTYPE)
    os.makedirs(a.out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            for option_set in OPTION_SETS:
                name, g = make_golden(model, option_set, a.kilnc, tmp)
                path = os.path.join(a.out_dir, name + ".json")
                training.write_json(path, g)
                print(f"wrote {path}: loss={g['loss']!r} advantages={g['inputs']['advantages']}"
                      f" clip_regions={json.dumps(g['clip_regions'])}")
    path = os.path.join(a.out_dir, "advantages.grpo.json")
    training.write_json(path, advantage_golden())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

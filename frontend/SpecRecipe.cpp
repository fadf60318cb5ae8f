//===- SpecRecipe.cpp - the spec's `train`, `parallel` and `target` ------===//
//
// The recipe half of a spec. Every key at every nesting level is known here;
// anything else is an error naming the closest known key. Defaults are the
// ones in Spec.h. checkRecipe() holds the checks that need the model too
// (sequence length vs positions and MTP depth, expert and pipeline splits,
// fp8 vs the GPU generation).
//
// checkpointing is either a policy name ("none" | "full" | "selective") or an
// object: {"budget_bytes": N} (the planned arena of one rank's step must fit
// N bytes), or {"policy": "budget", "budget_gb": 40} (GB = 1e9 bytes); the
// object form also accepts the other policies without a budget.
//
//===----------------------------------------------------------------------===//

#include "frontend/SpecJson.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace kiln::frontend::detail {
namespace {

const std::vector<std::string> kTrainKeys = {
    "stage",           "micro_batch",     "seq_len",
    "steps",           "seed",            "optimizer",
    "schedule",        "grad_clip",       "label_smoothing",
    "precision",       "high_precision",  "low_precision",
    "loss_scale",      "checkpointing",   "sparsity",
    "generate",        "grpo",            "curriculum",      "batch_rampup",    "bias_update_speed", "aux_loss_alpha", "mtp_loss_weight"};
const std::vector<std::string> kOptimizerKeys = {"lr", "betas", "eps",
                                                 "weight_decay", "state_dtype"};
const std::vector<std::string> kScheduleKeys = {"warmup_steps", "min_lr"};
const std::vector<std::string> kLossScaleKeys = {"init", "growth_factor", "backoff_factor",
                                                 "growth_interval"};
const std::vector<std::string> kCheckpointPolicies = {"none", "full",
                                                      "selective", "budget"};
const std::vector<std::string> kParallelKeys = {
    "dp", "ep", "pp", "zero", "schedule", "microbatches", "virtual_stages", "expert_capacity",
    "grad_compression"};
const std::vector<std::string> kGradCompressionKeys = {"method", "ratio", "quantize",
                                                       "error_feedback"};
const std::vector<std::string> kPipelineSchedules = {
    "gpipe", "1f1b", "interleaved-1f1b", "zb-h1", "zb-v", "dualpipev"};
const std::vector<std::string> kTargetKeys = {"kind", "sm", "path"};
const std::vector<int64_t> kCudaArchs = {80, 89, 90, 100};

void parseOptimizer(const Fields &t, TrainConfig &c) {
  if (!t.has("optimizer"))
    return;
  Fields o(*t.at("optimizer").value, t.file(), "train.optimizer");
  o.rejectUnknown(kOptimizerKeys);
  c.lr = o.doubleAtLeast("lr", c.lr, 0.0, /*strict=*/true);
  if (o.has("betas")) {
    const Json &b = *o.at("betas").value;
    if (!b.is_array() || b.size() != 2 || !b[0].is_number() ||
        !b[1].is_number())
      o.failAt("betas", "found " + describe(b) +
                            (b.is_array() ? " with " + std::to_string(b.size()) +
                                                " element(s)"
                                          : "") +
                            "; expected [beta1, beta2], e.g. [0.9, 0.95]");
    c.beta1 = b[0].get<double>();
    c.beta2 = b[1].get<double>();
    for (double beta : {c.beta1, c.beta2})
      if (!(beta >= 0.0 && beta < 1.0))
        o.failAt("betas", formatNumber(beta) +
                              " is out of range; expected each beta in [0, 1)");
  }
  c.eps = o.doubleAtLeast("eps", c.eps, 0.0, /*strict=*/true);
  c.weightDecay = o.doubleAtLeast("weight_decay", c.weightDecay, 0.0, false);
  c.stateDtype = o.getChoice("state_dtype", c.stateDtype, {"fp32", "bf16"});
}

void parseLrSchedule(const Fields &t, TrainConfig &c) {
  if (!t.has("schedule"))
    return;
  Fields s(*t.at("schedule").value, t.file(), "train.schedule");
  s.rejectUnknown(kScheduleKeys);
  c.warmupSteps = s.intAtLeast("warmup_steps", c.warmupSteps, 0);
  if (c.steps > 0 && c.warmupSteps > c.steps)
    s.failAt("warmup_steps", std::to_string(c.warmupSteps) +
                                 " is more than train.steps " +
                                 std::to_string(c.steps) +
                                 "; expected at most " +
                                 std::to_string(c.steps));
  c.minLr = s.doubleAtLeast("min_lr", c.minLr, 0.0, false);
  if (c.minLr > c.lr)
    s.failAt("min_lr", formatNumber(c.minLr) +
                           " is more than train.optimizer.lr " +
                           formatNumber(c.lr) + "; expected at most the peak lr");
}

/// train.loss_scale: GradScaler's knobs, for fp16 only.
void parseLossScale(const Fields &t, TrainConfig &c) {
  if (!t.hasNonNull("loss_scale"))
    return;
  if (c.precision != "fp16")
    t.failAt("loss_scale", "applies only to train.precision \"fp16\" (dynamic loss scaling); "
                           "train.precision is \"" + c.precision + "\"");
  Fields s(*t.at("loss_scale").value, t.file(), "train.loss_scale");
  s.rejectUnknown(kLossScaleKeys);
  LossScaleConfig &l = c.lossScale;
  l.init = s.doubleAtLeast("init", l.init, 0.0, /*strict=*/true);
  if (!std::isfinite(l.init) || l.init > 3.4e38)
    s.failAt("init", formatNumber(l.init) + " is out of range; expected a scale an f32 holds, "
                                            "e.g. 65536");
  l.growthFactor = s.doubleAtLeast("growth_factor", l.growthFactor, 1.0, /*strict=*/true);
  l.backoffFactor = s.doubleAtLeast("backoff_factor", l.backoffFactor, 0.0, /*strict=*/true);
  if (l.backoffFactor >= 1.0)
    s.failAt("backoff_factor", formatNumber(l.backoffFactor) +
                                   " is out of range; expected a number in (0, 1), e.g. 0.5");
  l.growthInterval = s.intAtLeast("growth_interval", l.growthInterval, 1);
}

void parseCheckpointing(const Fields &t, TrainConfig &c) {
  if (!t.has("checkpointing"))
    return;
  const Json &v = *t.at("checkpointing").value;
  if (v.is_string()) {
    c.checkpointing = t.getChoice("checkpointing", "none", kCheckpointPolicies);
    if (c.checkpointing == "budget")
      t.failAt("checkpointing",
               "'budget' needs a memory budget; write {\"budget_bytes\": N} or "
               "{\"policy\": \"budget\", \"budget_gb\": 40}");
    return;
  }
  if (!v.is_object())
    t.failAt("checkpointing",
             "found " + describe(v) +
                 "; expected 'none', 'full', 'selective' or {\"budget_bytes\": N}");
  Fields p(v, t.file(), "train.checkpointing");
  p.rejectUnknown({"policy", "budget_bytes", "budget_gb"});
  const bool bytes = p.has("budget_bytes"), gb = p.has("budget_gb");
  if (bytes && gb)
    p.failAt("budget_gb", "and budget_bytes both give the budget; keep one");
  if (!p.has("policy") && !bytes && !gb)
    p.failAt("policy", "missing; expected " + quotedList(kCheckpointPolicies) +
                           " or a budget (\"budget_bytes\": N)");
  c.checkpointing = p.has("policy") ? p.getChoice("policy", "none", kCheckpointPolicies)
                                    : std::string("budget");
  if (c.checkpointing != "budget") {
    if (bytes || gb)
      p.failAt(bytes ? "budget_bytes" : "budget_gb",
               "is only meaningful with policy 'budget'; remove it or set \"policy\": "
               "\"budget\"");
    return;
  }
  if (bytes) {
    c.checkpointBudgetBytes = p.intAtLeast("budget_bytes", 0, 1);
  } else if (gb) {
    // 9.2e9 GB is the most an int64 byte count holds.
    const double value = p.doubleAtLeast("budget_gb", 0.0, 0.0, true);
    if (value > 9.2e9)
      p.failAt("budget_gb", formatNumber(value) + " is out of range; expected at most 9.2e9");
    c.checkpointBudgetBytes = std::max<int64_t>(1, int64_t(value * 1e9));
  } else {
    p.failAt("budget_bytes", "missing; policy 'budget' needs the arena bytes allowed per rank "
                             "(an integer > 0), or budget_gb");
  }
}

void parseSparsity(const Fields &t, TrainConfig &c) {
  if (!t.hasNonNull("sparsity"))
    return;
  SparsityConfig &sp = c.sparsity;
  const Json &v = *t.at("sparsity").value;
  if (v.is_string()) {
    sp.pattern = t.getChoice("sparsity", sp.pattern, {"none", "2:4"});
    return;
  }
  if (!v.is_object())
    t.failAt("sparsity", "found " + describe(v) +
                             "; expected 'none', '2:4' or {\"pattern\": \"2:4\", ...}");
  Fields f(v, t.file(), "train.sparsity");
  f.rejectUnknown({"pattern", "targets", "start_step", "method", "mask_every", "decay"});
  if (!f.has("pattern"))
    f.failAt("pattern", "missing; expected '2:4'");
  sp.pattern = f.getChoice("pattern", sp.pattern, {"2:4"});
  if (f.hasNonNull("targets")) {
    const Json &list = *f.at("targets").value;
    if (!list.is_array() || list.empty())
      f.failAt("targets", "found " + (list.is_array() ? std::string("an empty array") : describe(list)) +
                              "; expected a non-empty array of HF-name globs, e.g. "
                              "[\"model.layers.*.mlp.*\"]");
    for (const Json &item : list) {
      if (!item.is_string() || item.get<std::string>().empty())
        f.failAt("targets", "found " + describe(item) + " in the array; expected a non-empty "
                                                        "glob string");
      sp.targets.push_back(item.get<std::string>());
    }
  }
  sp.startStep = f.intAtLeast("start_step", sp.startStep, 1);
  if (c.steps > 0 && sp.startStep > c.steps)
    f.failAt("start_step", std::to_string(sp.startStep) + " is after train.steps " +
                               std::to_string(c.steps) + ": no step would be sparse");
  sp.method = f.getChoice("method", sp.method, {"magnitude", "sr-ste"});
  sp.maskEvery = f.intAtLeast("mask_every", sp.maskEvery, 0);
  sp.decay = f.doubleAtLeast("decay", sp.decay, 0.0, /*strict=*/false);
  if (f.has("decay") && sp.method != "sr-ste")
    f.failAt("decay", "applies only with \"method\": \"sr-ste\"");
}

void parseGenerate(const Fields &t, TrainConfig &c) {
  GenerateConfig &g = c.generate;
  g.batch = c.microBatch;
  g.maxLen = c.seqLen;
  g.maxPromptLen = std::max<int64_t>(1, c.seqLen / 2);
  if (!t.hasNonNull("generate"))
    return;
  Fields f(*t.at("generate").value, t.file(), "train.generate");
  f.rejectUnknown({"batch", "max_prompt_len", "max_len"});
  g.batch = f.intAtLeast("batch", g.batch, 1);
  g.maxLen = f.intAtLeast("max_len", g.maxLen, 2);
  if (!f.has("max_prompt_len"))
    g.maxPromptLen = std::max<int64_t>(1, g.maxLen / 2);
  g.maxPromptLen = f.intAtLeast("max_prompt_len", g.maxPromptLen, 1);
  if (g.maxPromptLen >= g.maxLen)
    f.failAt("max_prompt_len", std::to_string(g.maxPromptLen) + " leaves no room to generate in "
                               "max_len " + std::to_string(g.maxLen) +
                               "; expected at most max_len - 1");
}

void parseGrpo(const Fields &t, TrainConfig &c) {
  GrpoConfig &g = c.grpo;
  g.maxNewTokens = std::max<int64_t>(1, c.seqLen / 2);
  if (!t.hasNonNull("grpo")) {
    if (c.stage == "grpo")
      g.promptsPerStep = std::max<int64_t>(1, c.microBatch / g.samplesPerPrompt);
    return;
  }
  if (c.stage != "grpo")
    t.failAt("grpo", "applies only with \"stage\": \"grpo\"");
  Fields f(*t.at("grpo").value, t.file(), "train.grpo");
  f.rejectUnknown({"prompts_per_step", "samples_per_prompt", "max_new_tokens", "temperature",
                   "top_p", "top_k", "clip_low", "clip_high", "beta", "ref_update_every",
                   "advantage", "advantage_eps", "aggregation", "updates_per_batch",
                   "accuracy_reward", "format_reward", "mask_truncated"});
  g.samplesPerPrompt = f.intAtLeast("samples_per_prompt", g.samplesPerPrompt, 2);
  g.promptsPerStep = std::max<int64_t>(1, c.microBatch / g.samplesPerPrompt);
  g.promptsPerStep = f.intAtLeast("prompts_per_step", g.promptsPerStep, 1);
  g.promptsPerStepGiven = f.has("prompts_per_step");
  g.maxNewTokens = f.intAtLeast("max_new_tokens", g.maxNewTokens, 1);
  if (g.maxNewTokens >= c.seqLen)
    f.failAt("max_new_tokens", std::to_string(g.maxNewTokens) + " leaves no room for a prompt "
                               "in train.seq_len " + std::to_string(c.seqLen) +
                               "; expected at most seq_len - 1");
  g.temperature = f.doubleAtLeast("temperature", g.temperature, 0.0, /*strict=*/true);
  g.topP = f.doubleAtLeast("top_p", g.topP, 0.0, /*strict=*/true);
  if (g.topP > 1)
    f.failAt("top_p", formatNumber(g.topP) + " is out of range; expected a number in (0, 1]");
  g.topK = f.intAtLeast("top_k", g.topK, 0);
  g.clipLow = f.doubleAtLeast("clip_low", g.clipLow, 0.0, /*strict=*/false);
  if (g.clipLow >= 1)
    f.failAt("clip_low", formatNumber(g.clipLow) + " is out of range; expected [0, 1)");
  g.clipHigh = f.doubleAtLeast("clip_high", g.clipLow, 0.0, /*strict=*/false);
  g.beta = f.doubleAtLeast("beta", g.beta, 0.0, /*strict=*/false);
  g.refUpdateEvery = f.intAtLeast("ref_update_every", g.refUpdateEvery, 0);
  g.advantage = f.getChoice("advantage", g.advantage, {"group-norm", "group-mean"});
  g.advantageEps = f.doubleAtLeast("advantage_eps", g.advantageEps, 0.0, /*strict=*/false);
  g.aggregation = f.getChoice("aggregation", g.aggregation,
                              {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"});
  g.updatesPerBatch = f.intAtLeast("updates_per_batch", g.updatesPerBatch, 1);
  g.accuracyReward = f.doubleAtLeast("accuracy_reward", g.accuracyReward, 0.0, false);
  g.formatReward = f.doubleAtLeast("format_reward", g.formatReward, 0.0, false);
  if (f.has("mask_truncated")) {
    const Json &v = *f.at("mask_truncated").value;
    if (!v.is_boolean())
      f.failAt("mask_truncated", "found " + describe(v) + "; expected true or false");
    g.maskTruncated = v.get<bool>();
  }
}

void parseCurriculum(const Fields &t, TrainConfig &c) {
  if (!t.hasNonNull("curriculum"))
    return;
  const Json &list = *t.at("curriculum").value;
  if (!list.is_array() || list.empty())
    t.failAt("curriculum", "found " + describe(list) +
                               "; expected a non-empty array of stages, e.g. [{\"until_step\": "
                               "200, \"max_digits\": 1, \"max_ops\": 1}, {\"max_digits\": 2}]");
  int64_t previous = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_object())
      t.failAt("curriculum", "stage " + std::to_string(i) + " is " + describe(list[i]) +
                                 "; expected an object");
    Fields f(list[i], t.file(), "train.curriculum[" + std::to_string(i) + "]");
    f.rejectUnknown({"until_step", "max_digits", "max_ops"});
    CurriculumStage stage;
    const bool last = i + 1 == list.size();
    if (!last && !f.has("until_step"))
      f.failAt("until_step", "missing; every stage but the last ends at a step");
    if (last && f.has("until_step"))
      f.failAt("until_step", "the last stage runs to the end of training; leave until_step out");
    if (!last) {
      stage.untilStep = f.intAtLeast("until_step", 1, previous + 1);
      previous = stage.untilStep;
    }
    stage.maxDigits = f.intAtLeast("max_digits", stage.maxDigits, 1);
    if (stage.maxDigits > 9)
      f.failAt("max_digits", std::to_string(stage.maxDigits) + " is out of range; expected 1..9");
    stage.maxOps = f.intAtLeast("max_ops", stage.maxOps, 1);
    if (stage.maxOps > 8)
      f.failAt("max_ops", std::to_string(stage.maxOps) + " is out of range; expected 1..8");
    c.curriculum.push_back(stage);
  }
}

void parseBatchRampup(const Fields &t, TrainConfig &c) {
  if (!t.hasNonNull("batch_rampup"))
    return;
  if (c.stage == "grpo")
    t.failAt("batch_rampup", "does not apply to GRPO, whose batch is each step's rollouts "
                             "(train.grpo.prompts_per_step x samples_per_prompt)");
  Fields f(*t.at("batch_rampup").value, t.file(), "train.batch_rampup");
  f.rejectUnknown({"start", "increment", "samples"});
  BatchRampupConfig &r = c.batchRampup;
  r.start = f.requireInt("start", "the global batch (rows) the rampup starts from");
  r.increment = f.requireInt("increment", "the rows the global batch grows by at a time");
  r.samples = f.requireInt("samples", "the samples (rows) over which the batch grows");
  if (r.start < 1)
    f.failAt("start", std::to_string(r.start) + " is out of range; expected at least 1 row");
  if (r.increment < 1)
    f.failAt("increment",
             std::to_string(r.increment) + " is out of range; expected at least 1 row");
  if (r.samples < 1)
    f.failAt("samples",
             std::to_string(r.samples) + " is out of range; expected at least 1 sample");
}

} // namespace

TrainConfig parseTrain(const Json &train, const std::string &file) {
  Fields t(train, file, "train");
  t.rejectUnknown(kTrainKeys);
  TrainConfig c;
  c.stage = t.getChoice("stage", c.stage, {"pretrain", "sft", "grpo"});
  c.microBatch = t.intAtLeast("micro_batch", c.microBatch, 1);
  c.seqLen = t.requireInt("seq_len", "a spec needs the training sequence "
                                     "length in tokens (an integer >= 2)");
  if (c.seqLen < 2)
    t.failAt("seq_len", std::to_string(c.seqLen) +
                            " is too short; expected at least 2 (one input "
                            "and one target token)");
  c.steps = t.intAtLeast("steps", c.steps, 1);
  if (t.has("seed")) {
    const Json &s = *t.at("seed").value;
    if (s.is_number_unsigned())
      c.seed = s.get<uint64_t>();
    else if (s.is_number_integer())
      t.failAt("seed", describe(s) + " is negative; expected an integer in "
                                     "[0, 2^64)");
    else
      t.failAt("seed", "found " + describe(s) +
                           "; expected an integer in [0, 2^64)");
  }
  parseOptimizer(t, c);
  parseLrSchedule(t, c);
  c.gradClip = t.doubleAtLeast("grad_clip", c.gradClip, 0.0, false);
  c.labelSmoothing = t.doubleAtLeast("label_smoothing", c.labelSmoothing, 0.0,
                                     false);
  if (c.labelSmoothing >= 1.0)
    t.failAt("label_smoothing", formatNumber(c.labelSmoothing) +
                                    " is out of range; expected a number in "
                                    "[0, 1)");
  c.precision =
      t.getChoice("precision", c.precision, {"fp32", "bf16", "fp16", "fp8"});
  // Overrides of kiln-mixed-precision's rule table (passes/Passes.td).
  const std::vector<std::string> families = {"linear", "expert", "head", "gate"};
  c.highPrecision = t.getChoiceList("high_precision", families);
  c.lowPrecision = t.getChoiceList("low_precision", families);
  for (const char *key : {"high_precision", "low_precision"})
    if (t.hasNonNull(key) && c.precision == "fp32")
      t.failAt(key, "applies only with a mixed precision; train.precision is \"fp32\" (use "
                    "\"bf16\", \"fp16\" or \"fp8\")");
  for (const std::string &family : c.highPrecision)
    if (std::find(c.lowPrecision.begin(), c.lowPrecision.end(), family) != c.lowPrecision.end())
      t.failAt("low_precision", "'" + family + "' is also in train.high_precision");
  parseLossScale(t, c);
  parseCheckpointing(t, c);
  parseSparsity(t, c);
  parseGenerate(t, c);
  parseGrpo(t, c);
  parseCurriculum(t, c);
  parseBatchRampup(t, c);
  c.biasUpdateSpeed =
      t.doubleAtLeast("bias_update_speed", c.biasUpdateSpeed, 0.0, false);
  c.auxLossAlpha = t.doubleAtLeast("aux_loss_alpha", c.auxLossAlpha, 0.0, false);
  c.mtpLossWeight =
      t.doubleAtLeast("mtp_loss_weight", c.mtpLossWeight, 0.0, false);
  return c;
}

void parseGradCompression(const Fields &p, ParallelConfig &c) {
  if (!p.hasNonNull("grad_compression"))
    return;
  Fields g(*p.at("grad_compression").value, p.file(), "parallel.grad_compression");
  g.rejectUnknown(kGradCompressionKeys);
  GradCompressionConfig &gc = c.gradCompression;
  gc.enabled = true;
  g.getChoice("method", "topk", {"topk"});
  gc.ratio = g.doubleAtLeast("ratio", gc.ratio, 0.0, /*strict=*/true);
  if (gc.ratio > 1.0)
    g.failAt("ratio", formatNumber(gc.ratio) +
                          " is out of range; expected the fraction of each gradient sent, in "
                          "(0, 1] (e.g. 0.05)");
  gc.quantize = g.getChoice("quantize", gc.quantize, {"int8", "none"});
  gc.errorFeedback = g.getBool("error_feedback", gc.errorFeedback);
}

ParallelConfig parseParallel(const Json &parallel, const std::string &file) {
  Fields p(parallel, file, "parallel");
  p.rejectUnknown(kParallelKeys);
  ParallelConfig c;
  c.dp = p.intAtLeast("dp", c.dp, 1);
  c.ep = p.intAtLeast("ep", c.ep, 1);
  c.pp = p.intAtLeast("pp", c.pp, 1);
  c.zero = p.intAtLeast("zero", c.zero, 0);
  if (c.zero > 1)
    p.failAt("zero", std::to_string(c.zero) +
                         " is not supported; expected 0 (replicated optimizer "
                         "state) or 1 (AdamW state sharded over dp, as "
                         "DeepSeek-V3 trains)");
  c.schedule = p.getChoice("schedule", c.schedule, kPipelineSchedules);
  c.microbatches = p.intAtLeast("microbatches", c.microbatches, 1);
  c.virtualStages = p.intAtLeast("virtual_stages", c.virtualStages, 1);
  parseGradCompression(p, c);
  // null (Megatron's None) is dropless, the default.
  if (p.hasNonNull("expert_capacity"))
    c.expertCapacity = p.doubleAtLeast("expert_capacity", 0.0, 0.0, /*strict=*/true);
  const bool vShape = c.schedule == "zb-v" || c.schedule == "dualpipev";
  if (c.schedule == "interleaved-1f1b") {
    if (c.virtualStages < 2)
      p.failAt("virtual_stages",
               std::to_string(c.virtualStages) +
                   " with schedule 'interleaved-1f1b' is plain 1F1B; expected >= 2 "
                   "model chunks per rank (or schedule '1f1b')");
    if (c.microbatches % c.pp != 0)
      p.failAt("microbatches",
               std::to_string(c.microbatches) +
                   " is not divisible by pp " + std::to_string(c.pp) +
                   "; the interleaved schedule needs a multiple of pp");
  } else if (vShape ? c.virtualStages > 2 : c.virtualStages != 1) {
    p.failAt("virtual_stages",
             std::to_string(c.virtualStages) +
                 (vShape ? " chunks per rank; the V shape of '" + c.schedule +
                               "' has 2 (write 2, or leave it out)"
                         : " needs schedule 'interleaved-1f1b' (schedule is '" + c.schedule +
                               "'); expected 1"));
  }
  if (c.schedule == "dualpipev" && c.pp > 1 && c.microbatches < 2 * c.pp)
    p.failAt("microbatches",
             std::to_string(c.microbatches) + " is too few for 'dualpipev' "
                                              "with pp " +
                 std::to_string(c.pp) + "; expected at least 2 x pp = " +
                 std::to_string(2 * c.pp));
  return c;
}

TargetConfig parseTarget(const Json &target, const std::string &file) {
  TargetConfig c;
  auto resolveCluster = [&](const std::string &path, const std::string &field) {
    // Relative paths: against the spec's directory first (as hf_config),
    // then against the current directory ("targets/h800.json" from the root).
    std::string nextToSpec = joinPath(directoryOf(file), path);
    if (isRegularFile(nextToSpec))
      return nextToSpec;
    if (isRegularFile(path))
      return path;
    fail(file, field,
         "'" + path + "' is not a file (looked for " + nextToSpec +
             (nextToSpec != path ? " and " + path : std::string()) +
             "); expected \"host\", {\"kind\": \"cuda\", \"sm\": 90} or the "
             "path of a cluster description under targets/");
  };
  if (target.is_string()) {
    std::string s = target.get<std::string>();
    if (s == "host")
      return c;
    if (s == "cuda")
      fail(file, "target", "'cuda' needs a GPU generation; write {\"kind\": "
                           "\"cuda\", \"sm\": 90}");
    c.kind = "cluster";
    c.path = resolveCluster(s, "target");
    return c;
  }
  if (!target.is_object())
    fail(file, "target",
         "found " + describe(target) +
             "; expected \"host\", {\"kind\": \"cuda\", \"sm\": 90} or the "
             "path of a cluster description under targets/");
  Fields t(target, file, "target");
  t.rejectUnknown(kTargetKeys);
  if (!t.has("kind"))
    t.failAt("kind", "missing; expected 'host', 'cuda' or 'cluster'");
  c.kind = t.getChoice("kind", "host", {"host", "cuda", "cluster"});
  if (c.kind != "cuda" && t.has("sm"))
    t.failAt("sm", "is only meaningful with kind 'cuda'; remove it");
  if (c.kind != "cluster" && t.has("path"))
    t.failAt("path", "is only meaningful with kind 'cluster'; remove it");
  if (c.kind == "cuda") {
    c.sm = t.requireInt("sm", "kind 'cuda' needs the GPU generation: 80 "
                              "(A100), 89 (L40/4090), 90 (H100/H800) or 100 "
                              "(B200)");
    if (std::find(kCudaArchs.begin(), kCudaArchs.end(), c.sm) ==
        kCudaArchs.end())
      t.failAt("sm", std::to_string(c.sm) +
                         " is not supported; expected 80, 89, 90 or 100");
  } else if (c.kind == "cluster") {
    std::string path = t.getString("path", "");
    if (path.empty())
      t.failAt("path", "missing; kind 'cluster' needs the path of a cluster "
                       "description under targets/");
    c.path = resolveCluster(path, "target.path");
  }
  return c;
}

/// Sizes no target can hold, and products of them that would overflow the
/// compiler's int64 shapes, are spec errors naming the field, never an
/// internal error later: every dimension at most 2^24, every tensor of the
/// step at most 2^40 elements (4 TiB in f32).
void checkSizes(const std::string &file, const ModelConfig &m, const TrainConfig &t) {
  constexpr int64_t kMaxDimension = int64_t(1) << 24;
  constexpr long double kMaxElements = 1099511627776.0L; // 2^40
  const std::pair<const char *, int64_t> dimensions[] = {
      {"model.vocab_size", m.vocabSize},
      {"model.hidden_size", m.hiddenSize},
      {"model.intermediate_size", m.intermediateSize},
      {"model.num_hidden_layers", m.numHiddenLayers},
      {"model.num_attention_heads", m.numAttentionHeads},
      {"model.num_key_value_heads", m.numKeyValueHeads},
      {"model.head_dim", m.headDim},
      {"model.q_lora_rank", m.qLoraRank},
      {"model.kv_lora_rank", m.kvLoraRank},
      {"model.qk_nope_head_dim", m.qkNopeHeadDim},
      {"model.qk_rope_head_dim", m.qkRopeHeadDim},
      {"model.v_head_dim", m.vHeadDim},
      {"model.n_routed_experts", m.nRoutedExperts},
      {"model.n_shared_experts", m.nSharedExperts},
      {"model.moe_intermediate_size", m.moeIntermediateSize},
      {"model.num_experts_per_tok", m.numExpertsPerTok},
      {"model.num_nextn_predict_layers", m.numNextnPredictLayers},
      {"train.seq_len", t.seqLen},
      {"train.micro_batch", t.microBatch}};
  for (const auto &[field, value] : dimensions)
    if (value > kMaxDimension)
      fail(file, field,
           std::to_string(value) + " is beyond what any target can hold; expected at most " +
               std::to_string(kMaxDimension));
  // The largest tensors of a step, as long double products (no overflow).
  const long double batch = (long double)t.microBatch * t.seqLen;
  const long double heads = (long double)std::max(m.numAttentionHeads, int64_t(1));
  const long double headWidth = (long double)std::max(
      {m.headDim, m.qkNopeHeadDim + m.qkRopeHeadDim, m.vHeadDim, int64_t(1)});
  const std::tuple<const char *, const char *, long double> tensors[] = {
      {"model.vocab_size", "the embedding (vocab_size x hidden_size)",
       (long double)m.vocabSize * m.hiddenSize},
      {"train.micro_batch", "the logits (micro_batch x seq_len x vocab_size)",
       batch * m.vocabSize},
      {"train.seq_len", "the attention scores (micro_batch x heads x seq_len x seq_len)",
       batch * heads * t.seqLen},
      {"model.num_attention_heads", "the attention projections (heads x head width x hidden_size)",
       heads * headWidth * m.hiddenSize},
      {"model.intermediate_size", "the MLP weights (intermediate_size x hidden_size)",
       (long double)m.intermediateSize * m.hiddenSize},
      {"model.n_routed_experts",
       "the stacked expert weights (n_routed_experts x moe_intermediate_size x hidden_size)",
       (long double)m.nRoutedExperts * m.moeIntermediateSize * m.hiddenSize}};
  for (const auto &[field, what, elements] : tensors)
    if (elements > kMaxElements)
      fail(file, field,
           std::string(what) + " would have " + formatNumber(double(elements)) +
               " elements, more than any target can hold; expected at most 2^40 "
               "(1099511627776)");
}

/// train.seq_len against the model: long enough for the MTP depths, no
/// longer than max_position_embeddings (set in `limitFile` when that is not
/// the spec itself).
void checkSequence(const std::string &file, const ModelConfig &m, const TrainConfig &t,
                   const std::string &limitFile) {
  int64_t minSeq = 2 + m.numNextnPredictLayers;
  if (t.seqLen < minSeq)
    fail(file, "train.seq_len",
         std::to_string(t.seqLen) + " is too short for " +
             std::to_string(m.numNextnPredictLayers) +
             " MTP module(s); expected at least 2 + num_nextn_predict_layers "
             "= " + std::to_string(minSeq) +
             " (each MTP depth predicts one token further)");
  if (m.maxPositionEmbeddings > 0 && t.seqLen > m.maxPositionEmbeddings)
    fail(file, "train.seq_len",
         std::to_string(t.seqLen) + " is more than max_position_embeddings " +
             std::to_string(m.maxPositionEmbeddings) +
             (limitFile.empty() ? "" : " (in " + limitFile + ")") + "; expected at most " +
             std::to_string(m.maxPositionEmbeddings));
}

/// train.batch_rampup against the layout: every size a whole number of
/// micro-batches on every data-parallel rank (Megatron's consistency check),
/// the sizes stepping evenly to the global batch.
static void checkBatchRampup(const std::string &file, const TrainConfig &t, const ParallelConfig &p) {
  const BatchRampupConfig &r = t.batchRampup;
  if (r.start == 0)
    return;
  const int64_t unit = p.dp * t.microBatch, global = p.globalBatchRows(t.microBatch);
  const std::string layout = "dp " + std::to_string(p.dp) + " x micro_batch " +
                             std::to_string(t.microBatch) + " = " + std::to_string(unit);
  if (p.pp > 1)
    fail(file, "train.batch_rampup",
         "is not built for pipeline parallelism yet (pp " + std::to_string(p.pp) +
             " would need a pipeline schedule per batch size); expected pp 1");
  if (r.start % unit != 0)
    fail(file, "train.batch_rampup.start",
         std::to_string(r.start) + " rows is not a whole number of micro-batches of " + layout +
             " rows; expected a multiple of " + std::to_string(unit));
  if (r.increment % unit != 0)
    fail(file, "train.batch_rampup.increment",
         std::to_string(r.increment) + " rows is not a whole number of micro-batches of " +
             layout + " rows; expected a multiple of " + std::to_string(unit));
  if (r.start >= global)
    fail(file, "train.batch_rampup.start",
         std::to_string(r.start) + " rows is not below the global batch " +
             std::to_string(global) + " (" + layout + " x microbatches " +
             std::to_string(p.microbatches) + "); expected a smaller start, or no rampup");
  if ((global - r.start) % r.increment != 0)
    fail(file, "train.batch_rampup.increment",
         std::to_string(r.increment) + " rows does not step from start " +
             std::to_string(r.start) + " to the global batch " + std::to_string(global) +
             "; expected a divisor of " + std::to_string(global - r.start));
  // One compiled step per size: a long ramp is a long build.
  constexpr int64_t kMaxSizes = 16;
  const int64_t sizes = (global - r.start) / r.increment + 1;
  if (sizes > kMaxSizes)
    fail(file, "train.batch_rampup.increment",
         std::to_string(r.increment) + " rows makes " + std::to_string(sizes) +
             " batch sizes, each its own compiled step program; expected at most " +
             std::to_string(kMaxSizes) + " (an increment of at least " +
             std::to_string(((global - r.start + kMaxSizes - 2) / (kMaxSizes - 1) + unit - 1) /
                            unit * unit) +
             ")");
}

void checkRecipe(const Spec &spec, const Fields &model) {
  const ModelConfig &m = spec.model;
  const TrainConfig &t = spec.train;
  const ParallelConfig &p = spec.parallel;
  const std::string &file = spec.path;

  // Name the hf_config file when the position limit comes from there.
  std::string limitFile = model.fileOf("max_position_embeddings");
  checkSequence(file, m, t, limitFile == file ? "" : limitFile);

  if (m.nRoutedExperts > 0) {
    if (m.nRoutedExperts % p.ep != 0)
      fail(file, "parallel.ep",
           std::to_string(p.ep) + " does not divide n_routed_experts " +
               std::to_string(m.nRoutedExperts) +
               "; expected a divisor of " + std::to_string(m.nRoutedExperts) +
               " so that each rank holds whole experts");
  } else if (p.ep != 1) {
    fail(file, "parallel.ep",
         std::to_string(p.ep) + " needs routed experts, and this model has "
                                "none; expected 1");
  } else if (p.expertCapacity > 0) {
    fail(file, "parallel.expert_capacity",
         "bounds the rows routed experts take, and this model has none; "
         "expected it absent or null");
  }
  // A world beyond any machine is a typo, and products of these must not
  // overflow later (global batch, memory per rank).
  constexpr int64_t kMaxWorld = int64_t(1) << 20;
  if (p.dp > kMaxWorld || p.pp > kMaxWorld || p.microbatches > kMaxWorld ||
      p.dp * p.pp > kMaxWorld)
    fail(file, "parallel",
         "dp " + std::to_string(p.dp) + " x pp " + std::to_string(p.pp) +
             " with microbatches " + std::to_string(p.microbatches) +
             " is beyond any machine; expected dp x pp and microbatches at "
             "most " + std::to_string(kMaxWorld));
  checkSizes(file, m, t);
  checkBatchRampup(file, t, p);
  // Expert parallelism is carved out of data parallelism (Megatron's and
  // TorchTitan's convention): the dp ranks of a stage form dp/ep groups of
  // ep ranks, each group holding every expert once.
  if (p.dp % p.ep != 0)
    fail(file, "parallel.ep",
         std::to_string(p.ep) + " does not divide dp " + std::to_string(p.dp) +
             "; expert parallelism is carved out of data parallelism, so "
             "expected ep to divide dp (e.g. dp " +
             std::to_string(p.ep * ((p.dp + p.ep - 1) / p.ep)) + ")");
  if (p.gradCompression.enabled) {
    const char *why = p.dp == 1   ? "compresses the data-parallel gradient sum, and dp is 1; "
                                    "expected dp > 1"
                      : p.zero == 1 ? "is built for replicated optimizer state (the all_reduce "
                                      "of gradients), not ZeRO-1's reduce_scatter; expected "
                                      "zero 0"
                      : p.pp > 1    ? "is not built for pipeline parallelism; expected pp 1"
                                    : nullptr;
    if (why)
      fail(file, "parallel.grad_compression", why);
  }
  if (p.zero == 1 && p.dp == 1)
    fail(file, "parallel.zero",
         "1 shards the optimizer state over dp, and dp is 1; expected zero 0 "
         "or dp > 1");
  const int64_t chunksPerRank = p.chunksPerRank();
  if (p.pp * chunksPerRank > m.numHiddenLayers)
    fail(file, "parallel.pp",
         std::to_string(p.pp) + " stages" +
             (chunksPerRank > 1 ? " x " + std::to_string(chunksPerRank) +
                                      " chunks each"
                                : std::string()) +
             " is more than num_hidden_layers " +
             std::to_string(m.numHiddenLayers) +
             "; expected every pipeline chunk to hold at least one layer");

  if (t.precision == "fp8" && spec.target.kind == "cuda" && spec.target.sm < 89)
    fail(file, "train.precision",
         "'fp8' needs FP8 tensor cores, which sm " +
             std::to_string(spec.target.sm) +
             " lacks; expected 'bf16' on this target (or sm 89, 90, 100)");
}

} // namespace kiln::frontend::detail

//===- SpecModel.cpp - the spec's `model` section (HF config.json keys) --===//
//
// Interprets the Hugging Face config.json keys of the two supported families
// (`model_type` "deepseek_v3" and "llama") into ModelConfig:
//   - known keys are parsed and range-checked, with HF's defaults where a key
//     is absent (and Kiln's documented choices where HF's defaults would be
//     surprising, e.g. no routed experts unless n_routed_experts is given);
//   - keys that cannot change the trained model (token ids, dtype, HF's
//     bookkeeping) are accepted and returned in `ignoredKeys`;
//   - keys that would change the architecture in a way Kiln does not build
//     (biases, other activations, other rope scalings, dropout) are errors
//     unless they hold the value Kiln builds anyway;
//   - anything else is an error with the closest known key suggested, so a
//     typo such as `hiden_size` never silently trains a different model.
//
//===----------------------------------------------------------------------===//

#include "frontend/SpecJson.h"

#include <algorithm>

namespace kiln::frontend::detail {
namespace {

const std::vector<std::string> kFamilies = {"deepseek_v3", "llama"};

/// Keys both families read.
const std::vector<std::string> kCommonKeys = {
    "model_type",          "vocab_size",
    "hidden_size",         "intermediate_size",
    "num_hidden_layers",   "num_attention_heads",
    "num_key_value_heads", "head_dim",
    "max_position_embeddings", "rms_norm_eps",
    "rope_theta",          "rope_scaling",
    "tie_word_embeddings", "initializer_range",
    "hidden_act",          "attention_bias",
    "attention_dropout",   "pretraining_tp"};

const std::vector<std::string> kLlamaKeys = {"mlp_bias"};

const std::vector<std::string> kDeepSeekKeys = {
    "q_lora_rank",         "kv_lora_rank",
    "qk_nope_head_dim",    "qk_rope_head_dim",
    "qk_head_dim",         "v_head_dim",
    "n_routed_experts",    "n_shared_experts",
    "moe_intermediate_size", "num_experts_per_tok",
    "n_group",             "topk_group",
    "first_k_dense_replace", "moe_layer_freq",
    "scoring_func",        "topk_method",
    "norm_topk_prob",      "routed_scaling_factor",
    "num_nextn_predict_layers", "rope_interleave"};

/// Accepted and ignored: they do not change what is trained. (`aux_loss_alpha`
/// and `seq_aux` are HF's training knobs; Kiln's is train.aux_loss_alpha.
/// `quantization_config` describes how the released weights were stored;
/// Kiln's precision is train.precision. `ep_size` is an inference setting.)
const std::vector<std::string> kIgnoredKeys = {
    "architectures", "auto_map",     "torch_dtype",
    "dtype",         "bos_token_id", "eos_token_id",
    "pad_token_id",  "transformers_version", "use_cache",
    "quantization_config", "_name_or_path", "ep_size",
    "aux_loss_alpha", "seq_aux"};

const std::vector<std::string> kYarnKeys = {
    "type",      "rope_type", "factor", "original_max_position_embeddings",
    "beta_fast", "beta_slow", "mscale", "mscale_all_dim"};

bool contains(const std::vector<std::string> &list, const std::string &key) {
  return std::find(list.begin(), list.end(), key) != list.end();
}

std::string familyHint(const std::string &modelType) {
  return modelType == "llama" ? "a llama config.json" : "a deepseek_v3 config.json";
}

/// Rejects keys that are neither known for this family nor ignorable.
void rejectUnknownModelKeys(const Fields &m, const std::string &modelType,
                            const std::vector<std::string> &known) {
  const std::vector<std::string> &other =
      modelType == "llama" ? kDeepSeekKeys : kLlamaKeys;
  for (const std::string &key : m.keys()) {
    if (contains(known, key) || contains(kIgnoredKeys, key))
      continue;
    if (contains(other, key))
      m.failAt(key, "is not a " + modelType + " key (it belongs to " +
                        (modelType == "llama" ? "deepseek_v3" : "llama") +
                        "); remove it or set model_type accordingly");
    std::vector<std::string> candidates = known;
    candidates.insert(candidates.end(), kIgnoredKeys.begin(),
                      kIgnoredKeys.end());
    std::string guess = closestKey(key, candidates);
    m.failAt(key, guess.empty()
                      ? "unknown key; Kiln does not know it in " +
                            familyHint(modelType) +
                            " and will not guess what it changes (remove it, "
                            "or check its spelling)"
                      : "unknown key; did you mean '" + guess + "'?");
  }
}

int64_t positive(const Fields &m, const std::string &key,
                 const std::string &modelType) {
  int64_t v = m.requireInt(key, modelType + " needs it (a positive integer)");
  if (v <= 0)
    m.failAt(key, std::to_string(v) + " is not positive; expected an integer "
                                      ">= 1");
  return v;
}

/// A positive integer when present and non-null; `def` otherwise.
int64_t optionalPositive(const Fields &m, const std::string &key, int64_t def) {
  if (!m.hasNonNull(key))
    return def;
  int64_t v = m.getInt(key, def);
  if (v <= 0)
    m.failAt(key, std::to_string(v) + " is not positive; expected an integer "
                                      ">= 1 (or null)");
  return v;
}

/// Keys Kiln accepts only with the value it builds anyway.
void checkFixedValues(const Fields &m) {
  for (const char *key : {"attention_bias", "mlp_bias"})
    if (m.has(key) && m.getBool(key, false))
      m.failAt(key, "true is not supported; expected false (Kiln's linear "
                    "layers have no bias)");
  if (m.has("hidden_act")) {
    std::string act = m.getString("hidden_act", "silu");
    if (act != "silu")
      m.failAt("hidden_act", "'" + act + "' is not supported; expected 'silu' "
                             "(Kiln's MLPs and experts are SwiGLU)");
  }
  if (m.has("attention_dropout")) {
    double p = m.getDouble("attention_dropout", 0.0);
    if (p != 0.0)
      m.failAt("attention_dropout", formatNumber(p) + " is not supported; "
                                   "expected 0 (Kiln trains without dropout)");
  }
  if (m.has("pretraining_tp")) {
    int64_t tp = m.getInt("pretraining_tp", 1);
    if (tp != 1)
      m.failAt("pretraining_tp", std::to_string(tp) +
                                     " is not supported; expected 1 (sliced "
                                     "pretraining linears are not modelled)");
  }
}

/// rope_scaling: null/absent for both families, or YaRN for deepseek_v3.
std::optional<YarnScaling> parseRopeScaling(const Fields &m,
                                            const std::string &modelType) {
  if (!m.hasNonNull("rope_scaling"))
    return std::nullopt;
  const Json &value = *m.at("rope_scaling").value;
  if (modelType == "llama") {
    std::string kind;
    for (const char *key : {"rope_type", "type"})
      if (kind.empty() && value.is_object() && value.contains(key) &&
          value[key].is_string())
        kind = "'" + value[key].get<std::string>() + "' ";
    m.failAt("rope_scaling", "rope scaling " + kind +
                                 "is not supported for llama; expected null "
                                 "(plain RoPE with rope_theta)");
  }
  Fields y(value, m.fileOf("rope_scaling"), m.pathOf("rope_scaling"));
  y.rejectUnknown(kYarnKeys);
  for (const char *key : {"type", "rope_type"})
    if (y.has(key)) {
      std::string kind = y.getString(key, "yarn");
      if (kind != "yarn")
        y.failAt(key, "'" + kind + "' is not supported; expected 'yarn' (or "
                                   "rope_scaling null)");
    }
  if (!y.has("type") && !y.has("rope_type"))
    y.failAt("type", "missing; expected \"type\": \"yarn\"");
  YarnScaling yarn;
  if (!y.has("factor"))
    y.failAt("factor", "missing; YaRN needs the context extension factor "
                       "(a number > 0)");
  yarn.factor = y.doubleAtLeast("factor", 1.0, 0.0, /*strict=*/true);
  yarn.originalMaxPositionEmbeddings = y.requireInt(
      "original_max_position_embeddings",
      "YaRN needs the pre-extension context length (an integer > 0)");
  if (yarn.originalMaxPositionEmbeddings <= 0)
    y.failAt("original_max_position_embeddings",
             std::to_string(yarn.originalMaxPositionEmbeddings) +
                 " is not positive; expected an integer >= 1");
  yarn.betaFast = y.doubleAtLeast("beta_fast", 32.0, 0.0, true);
  yarn.betaSlow = y.doubleAtLeast("beta_slow", 1.0, 0.0, true);
  yarn.mscale = y.doubleAtLeast("mscale", 1.0, 0.0, false);
  // DeepSeek's YaRN: mscale_all_dim defaults to 0 (no extra softmax scaling).
  yarn.mscaleAllDim = y.doubleAtLeast("mscale_all_dim", 0.0, 0.0, false);
  return yarn;
}

void parseLlama(const Fields &m, ModelConfig &c) {
  if (m.hasNonNull("head_dim")) {
    c.headDim = optionalPositive(m, "head_dim", 0);
  } else {
    if (c.hiddenSize % c.numAttentionHeads != 0)
      m.failAt("hidden_size",
               std::to_string(c.hiddenSize) +
                   " is not divisible by num_attention_heads " +
                   std::to_string(c.numAttentionHeads) +
                   "; use a multiple of it, or set head_dim");
    c.headDim = c.hiddenSize / c.numAttentionHeads;
  }
  if (c.headDim % 2 != 0)
    m.failAt(m.hasNonNull("head_dim") ? "head_dim" : "hidden_size",
             "head_dim " + std::to_string(c.headDim) +
                 " is odd; RoPE rotates pairs, so expected an even head_dim");
  c.numKeyValueHeads =
      optionalPositive(m, "num_key_value_heads", c.numAttentionHeads);
  if (c.numAttentionHeads % c.numKeyValueHeads != 0)
    m.failAt("num_key_value_heads",
             "num_attention_heads " + std::to_string(c.numAttentionHeads) +
                 " is not divisible by num_key_value_heads " +
                 std::to_string(c.numKeyValueHeads) +
                 "; expected a divisor of num_attention_heads");
  c.ropeInterleave = false;
}

void parseDeepSeek(const Fields &m, ModelConfig &c) {
  const std::string t = "deepseek_v3";
  // MLA. q_lora_rank null (or absent) means a plain q_proj.
  if (m.hasNonNull("q_lora_rank")) {
    c.qLoraRank = m.getInt("q_lora_rank", 0);
    if (c.qLoraRank <= 0)
      m.failAt("q_lora_rank", std::to_string(c.qLoraRank) +
                                  " is not a valid rank; expected an integer "
                                  ">= 1, or null for a plain q_proj");
  }
  c.kvLoraRank = positive(m, "kv_lora_rank", t);
  c.qkNopeHeadDim = positive(m, "qk_nope_head_dim", t);
  c.qkRopeHeadDim = positive(m, "qk_rope_head_dim", t);
  c.vHeadDim = positive(m, "v_head_dim", t);
  if (c.qkRopeHeadDim % 2 != 0)
    m.failAt("qk_rope_head_dim", std::to_string(c.qkRopeHeadDim) +
                                     " is odd; RoPE rotates pairs, so "
                                     "expected an even qk_rope_head_dim");
  if (m.has("qk_head_dim") &&
      m.getInt("qk_head_dim", c.qHeadDim()) != c.qHeadDim())
    m.failAt("qk_head_dim",
             std::to_string(m.getInt("qk_head_dim", 0)) +
                 " disagrees with qk_nope_head_dim + qk_rope_head_dim = " +
                 std::to_string(c.qHeadDim()) + "; expected " +
                 std::to_string(c.qHeadDim()) + " (or leave it out)");
  // HF's DeepseekV3Config sets head_dim = qk_rope_head_dim.
  if (m.hasNonNull("head_dim") &&
      m.getInt("head_dim", c.qkRopeHeadDim) != c.qkRopeHeadDim)
    m.failAt("head_dim", std::to_string(m.getInt("head_dim", 0)) +
                             " disagrees with qk_rope_head_dim " +
                             std::to_string(c.qkRopeHeadDim) +
                             "; for deepseek_v3 head_dim is the rope part "
                             "(expected " + std::to_string(c.qkRopeHeadDim) +
                             ", or leave it out)");
  c.headDim = c.qkRopeHeadDim;
  // MLA shares one latent KV between all heads; HF writes kv heads = heads.
  c.numKeyValueHeads =
      optionalPositive(m, "num_key_value_heads", c.numAttentionHeads);
  if (c.numKeyValueHeads != c.numAttentionHeads)
    m.failAt("num_key_value_heads",
             std::to_string(c.numKeyValueHeads) +
                 " differs from num_attention_heads " +
                 std::to_string(c.numAttentionHeads) +
                 "; MLA has no grouped KV heads, expected " +
                 std::to_string(c.numAttentionHeads));
  c.ropeInterleave = m.getBool("rope_interleave", true);

  // DeepSeekMoE. No n_routed_experts (or null) means every FFN is dense.
  c.nRoutedExperts = optionalPositive(m, "n_routed_experts", 0);
  if (m.hasNonNull("n_shared_experts"))
    c.nSharedExperts = m.intAtLeast("n_shared_experts", 0, 0);
  c.firstKDenseReplace = m.intAtLeast("first_k_dense_replace", 0, 0);
  if (c.firstKDenseReplace > c.numHiddenLayers)
    m.failAt("first_k_dense_replace",
             std::to_string(c.firstKDenseReplace) +
                 " is more than num_hidden_layers " +
                 std::to_string(c.numHiddenLayers) + "; expected at most " +
                 std::to_string(c.numHiddenLayers));
  c.moeLayerFreq = m.intAtLeast("moe_layer_freq", 1, 1);
  c.scoringFunc = m.getChoice("scoring_func", "sigmoid", {"sigmoid", "softmax"});
  c.topkMethod = m.getChoice("topk_method", "noaux_tc",
                             {"noaux_tc", "greedy", "group_limited_greedy"});
  c.normTopkProb = m.getBool("norm_topk_prob", true);
  c.routedScalingFactor =
      m.doubleAtLeast("routed_scaling_factor", 1.0, 0.0, /*strict=*/true);
  c.numNextnPredictLayers = m.intAtLeast("num_nextn_predict_layers", 0, 0);
  c.nGroup = optionalPositive(m, "n_group", 1);
  c.topkGroup = optionalPositive(m, "topk_group", 1);
  if (c.nRoutedExperts == 0)
    return;

  c.moeIntermediateSize = positive(m, "moe_intermediate_size", t);
  c.numExpertsPerTok = positive(m, "num_experts_per_tok", t);
  const std::string experts = std::to_string(c.nRoutedExperts);
  if (c.numExpertsPerTok > c.nRoutedExperts)
    m.failAt("num_experts_per_tok",
             std::to_string(c.numExpertsPerTok) +
                 " is more than n_routed_experts " + experts +
                 "; expected at most " + experts);
  if (c.nRoutedExperts % c.nGroup != 0)
    m.failAt("n_group", "n_routed_experts " + experts +
                            " is not divisible by n_group " +
                            std::to_string(c.nGroup) +
                            "; expected a divisor of " + experts);
  if (c.topkGroup > c.nGroup)
    m.failAt("topk_group", std::to_string(c.topkGroup) +
                               " is more than n_group " +
                               std::to_string(c.nGroup) +
                               "; expected at most " +
                               std::to_string(c.nGroup));
  int64_t perGroup = c.nRoutedExperts / c.nGroup;
  // noaux_tc scores a group by the sum of its two best (biased) experts.
  if (c.topkMethod == "noaux_tc" && perGroup < 2)
    m.failAt(c.nGroup > 1 ? "n_group" : "n_routed_experts",
             "leaves " + std::to_string(perGroup) +
                 " expert per group; topk_method 'noaux_tc' scores a group "
                 "by its top-2 experts, so expected at least 2 experts per "
                 "group (n_routed_experts / n_group)");
  if (c.topkMethod != "greedy" && c.numExpertsPerTok > c.topkGroup * perGroup)
    m.failAt("num_experts_per_tok",
             std::to_string(c.numExpertsPerTok) +
                 " is more than the experts in the selected groups, topk_group " +
                 std::to_string(c.topkGroup) + " x " +
                 std::to_string(perGroup) + " experts per group = " +
                 std::to_string(c.topkGroup * perGroup) + "; expected at most " +
                 std::to_string(c.topkGroup * perGroup) +
                 " (or a larger topk_group)");
}

} // namespace

ModelConfig parseModelFields(const Fields &m,
                             std::vector<std::string> &ignoredKeys) {
  if (!m.has("model_type"))
    m.failAt("model_type", "missing; expected " + quotedList(kFamilies) +
                               " (it picks the model family)");
  ModelConfig c;
  c.modelType = m.getString("model_type", "");
  if (!contains(kFamilies, c.modelType))
    m.failAt("model_type", "'" + c.modelType + "' is not supported; expected " +
                               quotedList(kFamilies));
  c.family = c.modelType == "llama" ? ModelFamily::Llama
                                    : ModelFamily::DeepSeekV3;

  std::vector<std::string> known = kCommonKeys;
  const std::vector<std::string> &own =
      c.family == ModelFamily::Llama ? kLlamaKeys : kDeepSeekKeys;
  known.insert(known.end(), own.begin(), own.end());
  rejectUnknownModelKeys(m, c.modelType, known);
  for (const std::string &key : m.keys())
    if (contains(kIgnoredKeys, key))
      ignoredKeys.push_back(key);
  checkFixedValues(m);

  const std::string &t = c.modelType;
  c.vocabSize = positive(m, "vocab_size", t);
  c.hiddenSize = positive(m, "hidden_size", t);
  c.intermediateSize = positive(m, "intermediate_size", t);
  c.numHiddenLayers = positive(m, "num_hidden_layers", t);
  c.numAttentionHeads = positive(m, "num_attention_heads", t);
  c.maxPositionEmbeddings = optionalPositive(m, "max_position_embeddings", 0);
  c.rmsNormEps = m.doubleAtLeast("rms_norm_eps", 1e-6, 0.0, /*strict=*/true);
  c.ropeTheta = m.doubleAtLeast("rope_theta", 10000.0, 0.0, /*strict=*/true);
  c.tieWordEmbeddings = m.getBool("tie_word_embeddings", false);
  c.initializerRange =
      m.doubleAtLeast("initializer_range", 0.02, 0.0, /*strict=*/true);
  c.yarn = parseRopeScaling(m, t);

  if (c.family == ModelFamily::Llama)
    parseLlama(m, c);
  else
    parseDeepSeek(m, c);
  return c;
}

} // namespace kiln::frontend::detail

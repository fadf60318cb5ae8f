//===- Summary.cpp - parameter counts, FLOPs and memory of a spec --------===//
//
// Lists every weight tensor of a block (Summary.h says which) with its shape
// and role, then sums: parameters, the active subset, matmul FLOPs, and
// bytes per precision. One inventory feeds every number, so they cannot
// disagree about what the model contains.
//
//===----------------------------------------------------------------------===//

#include "frontend/Summary.h"
#include "frontend/SpecJson.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace kiln::frontend {
namespace {

enum class Role {
  Matmul,     // projection / FFN / expert weight; fp8 under precision fp8
  HighMatmul, // a matmul kept in bf16 under fp8: router gate, lm_head
  Embedding,  // lookup table: no matmul FLOPs
  Norm,       // RMSNorm gain
  Bias        // router bias buffer: fp32, not trained by the optimizer
};

/// `copies` tensors of shape [rows, cols] (cols = 1 for vectors), of which
/// `activeCopies` are used by one token.
struct Tensor {
  const char *name;
  int64_t rows, cols;
  Role role;
  int64_t copies = 1;
  int64_t activeCopies = 1;
};

int64_t numel(const Tensor &t) { return t.rows * t.cols; }

std::vector<Tensor> attention(const ModelConfig &m) {
  const int64_t H = m.hiddenSize, n = m.numAttentionHeads;
  if (m.family == ModelFamily::Llama) {
    const int64_t hd = m.headDim, kv = m.numKeyValueHeads;
    return {{"q_proj", n * hd, H, Role::Matmul},
            {"k_proj", kv * hd, H, Role::Matmul},
            {"v_proj", kv * hd, H, Role::Matmul},
            {"o_proj", H, n * hd, Role::Matmul}};
  }
  std::vector<Tensor> t;
  if (m.qLoraRank > 0) {
    t.push_back({"q_a_proj", m.qLoraRank, H, Role::Matmul});
    t.push_back({"q_a_layernorm", m.qLoraRank, 1, Role::Norm});
    t.push_back({"q_b_proj", n * m.qHeadDim(), m.qLoraRank, Role::Matmul});
  } else {
    t.push_back({"q_proj", n * m.qHeadDim(), H, Role::Matmul});
  }
  t.push_back({"kv_a_proj_with_mqa", m.kvLoraRank + m.qkRopeHeadDim, H,
               Role::Matmul});
  t.push_back({"kv_a_layernorm", m.kvLoraRank, 1, Role::Norm});
  t.push_back({"kv_b_proj", n * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank,
               Role::Matmul});
  t.push_back({"o_proj", H, n * m.vHeadDim, Role::Matmul});
  return t;
}

/// One decoder layer at index `layer` (indices past num_hidden_layers are
/// MTP layers; isMoELayer applies the same rule to them).
std::vector<Tensor> decoderLayer(const ModelConfig &m, int64_t layer) {
  const int64_t H = m.hiddenSize;
  std::vector<Tensor> t = {{"input_layernorm", H, 1, Role::Norm},
                           {"post_attention_layernorm", H, 1, Role::Norm}};
  for (const Tensor &a : attention(m))
    t.push_back(a);
  if (!m.isMoELayer(layer)) {
    const int64_t I = m.intermediateSize;
    t.push_back({"mlp.gate_proj", I, H, Role::Matmul});
    t.push_back({"mlp.up_proj", I, H, Role::Matmul});
    t.push_back({"mlp.down_proj", H, I, Role::Matmul});
    return t;
  }
  const int64_t E = m.nRoutedExperts, k = m.numExpertsPerTok,
                mI = m.moeIntermediateSize;
  t.push_back({"mlp.gate.weight", E, H, Role::HighMatmul});
  if (m.topkMethod == "noaux_tc")
    t.push_back({"mlp.gate.e_score_correction_bias", E, 1, Role::Bias});
  t.push_back({"mlp.experts.gate_proj", mI, H, Role::Matmul, E, k});
  t.push_back({"mlp.experts.up_proj", mI, H, Role::Matmul, E, k});
  t.push_back({"mlp.experts.down_proj", H, mI, Role::Matmul, E, k});
  if (m.nSharedExperts > 0) {
    const int64_t sI = mI * m.nSharedExperts;
    t.push_back({"mlp.shared_experts.gate_proj", sI, H, Role::Matmul});
    t.push_back({"mlp.shared_experts.up_proj", sI, H, Role::Matmul});
    t.push_back({"mlp.shared_experts.down_proj", H, sI, Role::Matmul});
  }
  return t;
}

/// MTP module k (1-based): its own tensors, without the shared embedding
/// and head.
std::vector<Tensor> mtpModule(const ModelConfig &m, int64_t k) {
  const int64_t H = m.hiddenSize;
  std::vector<Tensor> t = {{"enorm", H, 1, Role::Norm},
                           {"hnorm", H, 1, Role::Norm},
                           {"eh_proj", H, 2 * H, Role::Matmul},
                           {"shared_head.norm", H, 1, Role::Norm}};
  for (const Tensor &x : decoderLayer(m, m.numHiddenLayers + k - 1))
    t.push_back(x);
  return t;
}

/// What the bytes depend on: train.precision and the AdamW moments' storage
/// (train.optimizer.state_dtype).
struct StateTypes {
  std::string precision;
  bool bf16Moments = false;
};

/// Sums over a list of tensors.
struct Totals {
  int64_t params = 0, active = 0;
  int64_t activeMatmul = 0; // MACs per token
  int64_t weightBytes = 0, gradBytes = 0, optimizerBytes = 0, masterBytes = 0;

  void add(const Tensor &t, const StateTypes &types) {
    const std::string &precision = types.precision;
    const int64_t all = numel(t) * t.copies;
    params += all;
    active += numel(t) * t.activeCopies;
    if (t.role == Role::Matmul || t.role == Role::HighMatmul)
      activeMatmul += numel(t) * t.activeCopies;
    if (t.role == Role::Bias) {
      weightBytes += 4 * all;
      return;
    }
    if (precision == "fp32") {
      weightBytes += 4 * all;
      gradBytes += 4 * all;
    } else if (precision == "fp8" && t.role == Role::Matmul) {
      const int64_t blocks = ((t.rows + 127) / 128) * ((t.cols + 127) / 128);
      weightBytes += all + 4 * blocks * t.copies;
      gradBytes += 2 * all;
      masterBytes += 4 * all;
    } else { // bf16, fp16, and fp8's high-precision tensors
      weightBytes += 2 * all;
      gradBytes += 2 * all;
      masterBytes += 4 * all;
    }
    optimizerBytes += (types.bf16Moments ? 4 : 8) * all;
  }
  void add(const std::vector<Tensor> &ts, const StateTypes &types) {
    for (const Tensor &t : ts)
      add(t, types);
  }
};

/// Model-state bytes of the largest pipeline stage on one rank: weights,
/// gradients, fp32 master weights and Adam moments (Summary.h has the layout
/// rules). Activations are not included: the arena planner prices them.
int64_t memoryPerRank(const Spec &spec, const StateTypes &types) {
  const ModelConfig &m = spec.model;
  const ParallelConfig &p = spec.parallel;
  const int64_t V = m.vocabSize, H = m.hiddenSize;
  auto ceilDiv = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  // Bytes of one tensor on one rank: routed experts are split over ep; with
  // ZeRO-1 the optimizer state (and master weights) of a tensor is split
  // over the ranks that hold the same tensor (dp, or dp/ep for experts).
  auto onRank = [&](const Tensor &t) {
    Totals one;
    one.add(t, types);
    const bool routedExpert = t.copies > 1;
    const int64_t holders = routedExpert ? p.dp / p.ep : p.dp;
    const int64_t split = routedExpert ? p.ep : 1;
    const int64_t state = one.optimizerBytes + one.masterBytes;
    return ceilDiv(one.weightBytes + one.gradBytes, split) +
           ceilDiv(state, split * (p.zero == 1 ? holders : 1));
  };
  int64_t largest = 0;
  for (int64_t stage = 0; stage < p.pp; ++stage) {
    // Contiguous layer ranges, the first (numHiddenLayers % pp) stages one
    // layer longer; embedding on the first stage, final norm, head and MTP
    // on the last (a tied embedding is held by both, as Megatron does).
    const int64_t base = m.numHiddenLayers / p.pp, extra = m.numHiddenLayers % p.pp;
    const int64_t begin = stage * base + std::min(stage, extra);
    const int64_t end = begin + base + (stage < extra ? 1 : 0);
    int64_t bytes = 0;
    for (int64_t l = begin; l < end; ++l)
      for (const Tensor &t : decoderLayer(m, l))
        bytes += onRank(t);
    if (stage == 0)
      bytes += onRank(Tensor{"embed_tokens", V, H, Role::Embedding});
    if (stage == p.pp - 1) {
      if (!m.tieWordEmbeddings)
        bytes += onRank(Tensor{"lm_head", V, H, Role::HighMatmul});
      else if (p.pp > 1)
        bytes += onRank(Tensor{"embed_tokens", V, H, Role::Embedding});
      bytes += onRank(Tensor{"norm", H, 1, Role::Norm});
      for (int64_t k = 1; k <= m.numNextnPredictLayers; ++k)
        for (const Tensor &t : mtpModule(m, k))
          bytes += onRank(t);
    }
    largest = std::max(largest, bytes);
  }
  return largest;
}

/// Causal attention FLOPs of one layer for one token (see Summary.h).
double attentionFlops(const ModelConfig &m, int64_t seqLen) {
  const double sAvg = (seqLen + 1) / 2.0;
  const int64_t dqk = m.family == ModelFamily::Llama ? m.headDim : m.qHeadDim();
  const int64_t dv = m.family == ModelFamily::Llama ? m.headDim : m.vHeadDim;
  return 2.0 * sAvg * m.numAttentionHeads * double(dqk + dv);
}

int64_t countMoELayers(const ModelConfig &m) {
  int64_t n = 0;
  for (int64_t l = 0; l < m.numHiddenLayers; ++l)
    n += m.isMoELayer(l);
  return n;
}

/// 671026419200 -> "671.03B"; with `bytes`, decimal units ("1.23 TB").
std::string human(double v, bool bytes = false) {
  const char *suffix[] = {"", "K", "M", "B", "T"};
  const char *byteSuffix[] = {" B", " KB", " MB", " GB", " TB"};
  int i = 0;
  while (i < 4 && v >= 1000.0) {
    v /= 1000.0;
    ++i;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, i == 0 ? "%.0f%s" : "%.2f%s", v,
                bytes ? byteSuffix[i] : suffix[i]);
  return buf;
}

std::string humanFlops(double v) {
  std::string s = human(v);
  if (!s.empty() && s.back() == 'B')
    s.back() = 'G'; // giga, not billion, for FLOPs
  return s;
}

/// The main model's totals under `types`: embedding, head, final norm and
/// the decoder layers.
Totals mainTotals(const ModelConfig &m, const StateTypes &types) {
  const int64_t V = m.vocabSize, H = m.hiddenSize;
  Totals main;
  main.add(Tensor{"embed_tokens", V, H, Role::Embedding}, types);
  if (!m.tieWordEmbeddings)
    main.add(Tensor{"lm_head", V, H, Role::HighMatmul}, types);
  main.add(Tensor{"norm", H, 1, Role::Norm}, types);
  for (int64_t l = 0; l < m.numHiddenLayers; ++l)
    main.add(decoderLayer(m, l), types);
  return main;
}

/// The MTP modules' totals (without the shared embedding and head).
Totals mtpTotals(const ModelConfig &m, const StateTypes &types) {
  Totals mtp;
  for (int64_t k = 1; k <= m.numNextnPredictLayers; ++k)
    mtp.add(mtpModule(m, k), types);
  return mtp;
}

/// (weights + grads + master + Adam) / params of the main model and MTP.
double bytesPerParam(const Totals &main, const Totals &mtp) {
  const int64_t params = main.params + mtp.params;
  const int64_t bytes = main.weightBytes + main.gradBytes + main.masterBytes +
                        main.optimizerBytes + mtp.weightBytes + mtp.gradBytes + mtp.masterBytes +
                        mtp.optimizerBytes;
  return params == 0 ? 0.0 : double(bytes) / double(params);
}

} // namespace

std::vector<PieceFlops> pipelinePieceFlops(const Spec &spec) {
  const ModelConfig &m = spec.model;
  const StateTypes types{spec.train.precision, false};
  const double attn = attentionFlops(m, spec.train.seqLen);
  const double head = 2.0 * double(m.vocabSize) * double(m.hiddenSize);
  std::vector<PieceFlops> pieces;
  for (int64_t l = 0; l < m.numHiddenLayers; ++l) {
    Totals layer;
    layer.add(decoderLayer(m, l), types);
    pieces.push_back({2.0 * double(layer.activeMatmul), attn});
  }
  pieces.push_back({head, 0});
  for (int64_t k = 1; k <= m.numNextnPredictLayers; ++k) {
    Totals module;
    module.add(mtpModule(m, k), types);
    pieces.push_back({2.0 * double(module.activeMatmul) + head, attn});
  }
  return pieces;
}

ModelSummary summarize(const Spec &spec) {
  const ModelConfig &m = spec.model;
  const StateTypes types{spec.train.precision, spec.train.stateDtype == "bf16"};
  const int64_t V = m.vocabSize, H = m.hiddenSize;
  const Totals main = mainTotals(m, types), mtp = mtpTotals(m, types);

  ModelSummary s;
  s.paramsTotal = main.params;
  s.paramsActive = main.active;
  s.paramsEmbedding = m.tieWordEmbeddings ? V * H : 2 * V * H;
  s.paramsMtp = mtp.params;
  s.paramsMtpActive = mtp.active;

  const int64_t headMacs = V * H; // lm_head, tied or not
  const int64_t mainMacs =
      main.activeMatmul + (m.tieWordEmbeddings ? headMacs : 0);
  const double attn = attentionFlops(m, spec.train.seqLen);
  s.flopsPerToken = 2.0 * double(mainMacs) + attn * double(m.numHiddenLayers);
  s.flopsPerTokenMtp =
      m.numNextnPredictLayers == 0
          ? 0.0
          : 2.0 * double(mtp.activeMatmul +
                         headMacs * m.numNextnPredictLayers) +
                attn * double(m.numNextnPredictLayers);

  s.weightBytes = main.weightBytes + mtp.weightBytes;
  s.gradBytes = main.gradBytes + mtp.gradBytes;
  s.optimizerBytes = main.optimizerBytes + mtp.optimizerBytes;
  s.masterWeightBytes = main.masterBytes + mtp.masterBytes;

  const ParallelConfig &p = spec.parallel;
  s.worldSize = p.worldSize();
  s.globalBatchRows = p.globalBatchRows(spec.train.microBatch);
  s.globalBatchTokens = double(s.globalBatchRows) * double(spec.train.seqLen);
  s.memoryPerRankBytes = memoryPerRank(spec, types);
  s.bytesPerParam = bytesPerParam(main, mtp);
  // The same model and layout in every precision, with the spec's moments.
  for (const char *precision : {"fp32", "bf16", "fp16", "fp8"}) {
    const StateTypes other{precision, types.bf16Moments};
    s.byPrecision.push_back(
        {precision, bytesPerParam(mainTotals(m, other), mtpTotals(m, other)),
         memoryPerRank(spec, other)});
  }
  return s;
}

std::string formatSummaryText(const Spec &spec, const ModelSummary &s) {
  const ModelConfig &m = spec.model;
  const TrainConfig &t = spec.train;
  const int64_t moe = countMoELayers(m);
  std::string out;
  char line[256];
  auto row = [&](const char *label, const std::string &value) {
    std::snprintf(line, sizeof line, "%-17s%s\n", label, value.c_str());
    out += line;
  };

  row("spec", spec.path);
  std::string model = m.modelType + ", " + std::to_string(m.numHiddenLayers) +
                      " layers (" + std::to_string(m.numHiddenLayers - moe) +
                      " dense, " + std::to_string(moe) + " MoE)";
  if (m.numNextnPredictLayers)
    model += " + " + std::to_string(m.numNextnPredictLayers) + " MTP";
  model += ", hidden " + std::to_string(m.hiddenSize) + ", vocab " +
           std::to_string(m.vocabSize);
  row("model", model);
  if (m.family == ModelFamily::DeepSeekV3) {
    row("attention", "MLA, " + std::to_string(m.numAttentionHeads) +
                         " heads, q_lora " + std::to_string(m.qLoraRank) +
                         ", kv_lora " + std::to_string(m.kvLoraRank) +
                         ", qk " + std::to_string(m.qkNopeHeadDim) + "+" +
                         std::to_string(m.qkRopeHeadDim) + ", v " +
                         std::to_string(m.vHeadDim));
    if (m.nRoutedExperts)
      row("experts", std::to_string(m.nRoutedExperts) + " routed + " +
                         std::to_string(m.nSharedExperts) + " shared, top " +
                         std::to_string(m.numExpertsPerTok) + " (" +
                         std::to_string(m.topkGroup) + " of " +
                         std::to_string(m.nGroup) + " groups), " +
                         m.scoringFunc + ", " + m.topkMethod);
  } else {
    row("attention", "GQA, " + std::to_string(m.numAttentionHeads) +
                         " heads, " + std::to_string(m.numKeyValueHeads) +
                         " kv heads, head_dim " + std::to_string(m.headDim));
  }
  auto pad = [](const std::string &v) {
    return std::string(v.size() < 8 ? 8 - v.size() : 0, ' ') + v;
  };
  row("params (total)", pad(human(double(s.paramsTotal))));
  row("params (active)", pad(human(double(s.paramsActive))) + " per token");
  row("params (embed)",
      pad(human(double(s.paramsEmbedding))) +
          (m.tieWordEmbeddings ? " (tied)" : " (embed_tokens + lm_head)"));
  if (m.numNextnPredictLayers)
    row("params (mtp)", pad(human(double(s.paramsMtp))) + ", " +
                            human(double(s.paramsMtpActive)) +
                            " active (without the shared embedding/head)");
  std::string flops = pad(humanFlops(s.flopsPerToken)) +
                      " forward per token at seq_len " +
                      std::to_string(t.seqLen);
  if (m.numNextnPredictLayers)
    flops += ", + " + humanFlops(s.flopsPerTokenMtp) + " MTP";
  row("flops", flops);
  row("", "training ~3x forward: " +
              humanFlops(3.0 * (s.flopsPerToken + s.flopsPerTokenMtp)) +
              " per token");
  const int64_t total =
      s.weightBytes + s.gradBytes + s.optimizerBytes + s.masterWeightBytes;
  const std::string adam = t.stateDtype == "bf16" ? "adam (bf16) " : "adam ";
  row(("memory (" + t.precision + ")").c_str(),
      pad(human(double(total), true)) + ": weights " +
          human(double(s.weightBytes), true) + ", grads " +
          human(double(s.gradBytes), true) + ", master " +
          human(double(s.masterWeightBytes), true) + ", " + adam +
          human(double(s.optimizerBytes), true));
  const ParallelConfig &p = spec.parallel;
  row("", "all ranks together");
  char perParam[32];
  std::snprintf(perParam, sizeof perParam, "%.2f", s.bytesPerParam);
  row("bytes per param", pad(perParam) + ": weights, grads, master and adam per parameter");
  std::string layout = "dp " + std::to_string(p.dp) + " x pp " +
                       std::to_string(p.pp) + " = " +
                       std::to_string(s.worldSize) + " rank" +
                       (s.worldSize == 1 ? "" : "s") + ", ep " +
                       std::to_string(p.ep) + ", zero " + std::to_string(p.zero);
  if (p.pp > 1)
    layout += ", schedule " + p.schedule;
  row("layout", layout);
  if (p.ep > 1 && spec.model.nRoutedExperts > 0)
    row("experts per rank",
        std::to_string(spec.model.nRoutedExperts / p.ep) + " of the " +
            std::to_string(spec.model.nRoutedExperts) +
            " routed experts of each MoE layer (ep group of " + std::to_string(p.ep) +
            "; dp / ep = " + std::to_string(p.dp / p.ep) + " ranks hold the same ones)");
  if (p.expertCapacity > 0 && spec.model.nRoutedExperts > 0) {
    const int64_t pairs = p.expertCapacityPairs(t.seqLen, spec.model.numExpertsPerTok,
                                                spec.model.nRoutedExperts);
    row("expert capacity",
        detail::formatNumber(p.expertCapacity) + " x the balanced load: " +
            (pairs > 0 ? std::to_string(pairs) + " rows per expert per sequence of " +
                             std::to_string(t.seqLen) + "; rows over it are dropped and counted"
                       : std::string("never reached (an expert takes at most seq_len ") +
                             std::to_string(t.seqLen) + " rows of a sequence): dropless"));
  }
  if (p.gradCompression.enabled)
    row("grad compression",
        "top-k " + detail::formatNumber(100 * p.gradCompression.ratio) + "% of each gradient, " +
            (p.gradCompression.quantize == "int8" ? "int8 values (an f32 scale per tensor)"
                                                  : "f32 values") +
            (p.gradCompression.errorFeedback ? ", error feedback" : ", no error feedback") +
            ", all_gather over dp instead of all_reduce (bytes: kilnc --report)");
  row("global batch",
      std::to_string(s.globalBatchRows) + " rows (dp " + std::to_string(p.dp) +
          " x microbatches " + std::to_string(p.microbatches) +
          " x micro_batch " + std::to_string(t.microBatch) + ") x seq_len " +
          std::to_string(t.seqLen) + " = " + human(s.globalBatchTokens) +
          " tokens per step");
  const ModelSummary::CheckpointingCost *own = nullptr;
  for (const ModelSummary::CheckpointingCost &c : s.checkpointing)
    if (c.policy == t.checkpointing)
      own = &c;
  std::string activations;
  if (own)
    activations = ", + " + human(double(own->arenaBytes), true) + " arena (" + t.checkpointing +
                  ") = " + human(double(s.memoryPerRankBytes + own->arenaBytes), true);
  else if (s.pipeline && !s.pipeline->activationBytesPerRank.empty()) {
    const int64_t peak = *std::max_element(s.pipeline->activationBytesPerRank.begin(),
                                           s.pipeline->activationBytesPerRank.end());
    activations = ", + " + human(double(peak), true) + " saved values (" + t.checkpointing +
                  ", the peak rank) = " + human(double(s.memoryPerRankBytes + peak), true);
  }
  row("memory per rank", pad(human(double(s.memoryPerRankBytes), true)) +
                             ": weights, grads, master and adam of the largest stage" +
                             activations);
  const char *label = "checkpointing";
  for (const ModelSummary::CheckpointingCost &c : s.checkpointing) {
    int64_t saved = 0, most = 0;
    for (int64_t bytes : c.savedBytesPerBlock) {
      saved += bytes;
      most = std::max(most, bytes);
    }
    char policy[16];
    std::snprintf(policy, sizeof policy, "%-10s", c.policy.c_str());
    row(label, policy + pad(human(double(c.arenaBytes), true)) + " arena, keeps " +
                   human(double(saved), true) + " over " +
                   std::to_string(c.savedBytesPerBlock.size()) + " blocks (at most " +
                   human(double(most), true) + "), recomputes " + humanFlops(c.recomputeFlops) +
                   " FLOPs per step" + (c.policy == t.checkpointing ? " <- this spec" : ""));
    label = "";
  }
  if (!s.checkpointingNote.empty())
    row(label, s.checkpointingNote);
  if (s.pipeline) {
    const ModelSummary::PipelineCost &c = *s.pipeline;
    int64_t fewest = c.layersPerStage.front(), most = fewest;
    for (int64_t n : c.layersPerStage) {
      fewest = std::min(fewest, n);
      most = std::max(most, n);
    }
    row("pipeline", std::to_string(p.pp) + " ranks x " + std::to_string(c.chunks) + " chunk" +
                        (c.chunks == 1 ? "" : "s") + " = " + std::to_string(c.stages) +
                        " stages of " + std::to_string(fewest) +
                        (most != fewest ? "-" + std::to_string(most) : std::string()) +
                        " layers (embedding first; norm, head and MTP last), " +
                        std::to_string(p.microbatches) + " micro-batches, " +
                        human(double(c.edgeBytes), true) + " per micro-batch across each boundary");
    char bubble[64];
    std::snprintf(bubble, sizeof bubble, "%.1f%%", 100.0 * c.bubbleFraction);
    row("schedule", p.schedule + " priced per micro-batch of the costliest stage: F " +
                        humanFlops(c.f) + ", I " + humanFlops(c.i) + ", W " + humanFlops(c.w) +
                        " FLOPs; bubble " + bubble + " (rank " + std::to_string(c.bubbleRank) +
                        "), at most " + std::to_string(c.peakInFlight) +
                        " micro-batches in flight");
    if (!c.activationBytesPerRank.empty()) {
      const auto [least, most] = std::minmax_element(c.activationBytesPerRank.begin(),
                                                     c.activationBytesPerRank.end());
      row("activations", "saved values a rank holds at its peak (" + t.checkpointing +
                             " checkpointing): " + human(double(*most), true) + " (rank " +
                             std::to_string(most - c.activationBytesPerRank.begin()) +
                             ") at most, " + human(double(*least), true) + " (rank " +
                             std::to_string(least - c.activationBytesPerRank.begin()) +
                             ") at least");
    }
  }
  if (!s.pipelineNote.empty())
    row("pipeline", s.pipelineNote);
  std::string precisions;
  for (const ModelSummary::PrecisionCost &c : s.byPrecision) {
    char cost[96];
    std::snprintf(cost, sizeof cost, "%s%s %.2f B/param %s", precisions.empty() ? "" : ", ",
                  c.precision.c_str(), c.bytesPerParam,
                  human(double(c.memoryPerRankBytes), true).c_str());
    precisions += cost;
  }
  row("by precision", precisions + (t.stateDtype == "bf16" ? " (bf16 adam)" : ""));
  return out;
}

std::string formatSummaryJson(const Spec &spec, const ModelSummary &s) {
  const ModelConfig &m = spec.model;
  nlohmann::ordered_json j;
  j["params_total"] = s.paramsTotal;
  j["params_active"] = s.paramsActive;
  j["params_embedding"] = s.paramsEmbedding;
  j["params_mtp"] = s.paramsMtp;
  j["params_mtp_active"] = s.paramsMtpActive;
  j["flops_per_token"] = s.flopsPerToken;
  j["flops_per_token_mtp"] = s.flopsPerTokenMtp;
  j["weight_bytes"] = s.weightBytes;
  j["grad_bytes"] = s.gradBytes;
  j["optimizer_bytes"] = s.optimizerBytes;
  j["master_weight_bytes"] = s.masterWeightBytes;
  j["model_type"] = m.modelType;
  j["layers"] = m.numHiddenLayers;
  j["moe_layers"] = countMoELayers(m);
  j["seq_len"] = spec.train.seqLen;
  j["precision"] = spec.train.precision;
  j["world_size"] = s.worldSize;
  if (spec.parallel.ep > 1 && spec.model.nRoutedExperts > 0)
    j["routed_experts_per_rank"] = spec.model.nRoutedExperts / spec.parallel.ep;
  if (spec.parallel.expertCapacity > 0 && spec.model.nRoutedExperts > 0)
    j["expert_capacity_rows_per_sequence"] = spec.parallel.expertCapacityPairs(
        spec.train.seqLen, spec.model.numExpertsPerTok, spec.model.nRoutedExperts);
  // An integer while doubles hold it exactly (2^53), as the other counts.
  if (s.globalBatchTokens < 9007199254740992.0)
    j["global_batch_tokens"] = int64_t(s.globalBatchTokens);
  else
    j["global_batch_tokens"] = s.globalBatchTokens;
  j["memory_per_rank_bytes"] = s.memoryPerRankBytes;
  j["state_dtype"] = spec.train.stateDtype;
  j["bytes_per_param"] = s.bytesPerParam;
  nlohmann::ordered_json byPrecision;
  for (const ModelSummary::PrecisionCost &c : s.byPrecision)
    byPrecision[c.precision] = {{"bytes_per_param", c.bytesPerParam},
                                {"memory_per_rank_bytes", c.memoryPerRankBytes}};
  j["by_precision"] = byPrecision;
  if (!s.checkpointing.empty()) {
    nlohmann::ordered_json policies;
    for (const ModelSummary::CheckpointingCost &c : s.checkpointing) {
      policies[c.policy] = {{"arena_bytes", c.arenaBytes},
                            {"saved_bytes_per_block", c.savedBytesPerBlock},
                            {"recompute_flops", c.recomputeFlops}};
      if (c.policy == spec.train.checkpointing)
        j["memory_per_rank_with_arena_bytes"] = s.memoryPerRankBytes + c.arenaBytes;
    }
    j["checkpointing"] = policies;
  }
  if (!s.checkpointingNote.empty())
    j["checkpointing_note"] = s.checkpointingNote;
  if (s.pipeline) {
    const ModelSummary::PipelineCost &c = *s.pipeline;
    nlohmann::ordered_json pipe = {{"stages", c.stages},
                           {"chunks", c.chunks},
                           {"layers_per_stage", c.layersPerStage},
                           {"f_flops", c.f},
                           {"i_flops", c.i},
                           {"w_flops", c.w},
                           {"bubble_fraction", c.bubbleFraction},
                           {"bubble_rank", c.bubbleRank},
                           {"peak_in_flight", c.peakInFlight},
                           {"edge_bytes", c.edgeBytes}};
    if (!c.activationBytesPerRank.empty())
      pipe["activation_bytes_per_rank"] = c.activationBytesPerRank;
    j["pipeline"] = pipe;
  }
  if (!s.pipelineNote.empty())
    j["pipeline_note"] = s.pipelineNote;
  return j.dump();
}

} // namespace kiln::frontend

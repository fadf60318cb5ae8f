//===- Spec.h - Kiln spec: validated model + recipe configuration ---------===//
//
// A Kiln spec is one JSON file with four sections: `model` (Hugging Face
// config.json keys verbatim, or {"hf_config": "path"}), `train`, `parallel`
// and `target`. loadSpec() reads and validates it and returns plain structs;
// every later stage (MLIRGen, summary, codegen) reads only these structs.
//
// This header is plain C++ (no LLVM, no JSON library) so that translation
// units compiled with -fno-exceptions (MLIR libraries) can include it.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_FRONTEND_SPEC_H
#define KILN_FRONTEND_SPEC_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::frontend {

enum class ModelFamily { DeepSeekV3, Llama };

/// YaRN rope scaling as DeepSeek-V3's config.json spells it
/// (`rope_scaling: {"type": "yarn", "factor": 40, ...}`).
struct YarnScaling {
  double factor = 1.0;
  int64_t originalMaxPositionEmbeddings = 0;
  double betaFast = 32.0;
  double betaSlow = 1.0;
  double mscale = 1.0;
  double mscaleAllDim = 0.0;
};

/// The architecture. Field names follow the HF keys they come from.
struct ModelConfig {
  ModelFamily family = ModelFamily::Llama;
  std::string modelType; // "deepseek_v3" or "llama", verbatim.

  // Shared by both families.
  int64_t vocabSize = 0;
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0; // dense FFN width
  int64_t numHiddenLayers = 0;
  int64_t numAttentionHeads = 0;
  int64_t numKeyValueHeads = 0; // llama GQA; deepseek: == heads
  int64_t headDim = 0;          // llama: head_dim or hidden/heads
  int64_t maxPositionEmbeddings = 0;
  double rmsNormEps = 1e-6;
  double ropeTheta = 10000.0;
  bool ropeInterleave = false; // deepseek_v3: true (pairs), llama: false (halves)
  std::optional<YarnScaling> yarn; // deepseek_v3 only
  bool tieWordEmbeddings = false;
  double initializerRange = 0.02;

  // deepseek_v3: MLA.
  int64_t qLoraRank = 0; // 0 (or null in JSON) = plain q_proj
  int64_t kvLoraRank = 0;
  int64_t qkNopeHeadDim = 0;
  int64_t qkRopeHeadDim = 0;
  int64_t vHeadDim = 0;

  // deepseek_v3: DeepSeekMoE.
  int64_t nRoutedExperts = 0;
  int64_t nSharedExperts = 0;
  int64_t moeIntermediateSize = 0;
  int64_t numExpertsPerTok = 0;
  int64_t nGroup = 1;
  int64_t topkGroup = 1;
  int64_t firstKDenseReplace = 0;
  int64_t moeLayerFreq = 1;
  std::string scoringFunc = "sigmoid"; // "sigmoid" | "softmax"
  std::string topkMethod = "noaux_tc"; // "noaux_tc" | "greedy" | "group_limited_greedy"
  bool normTopkProb = true;
  double routedScalingFactor = 1.0;
  int64_t numNextnPredictLayers = 0; // MTP depth

  int64_t qHeadDim() const { return qkNopeHeadDim + qkRopeHeadDim; }
  /// True if decoder layer `layer` (0-based) has a MoE FFN.
  bool isMoELayer(int64_t layer) const {
    return family == ModelFamily::DeepSeekV3 && nRoutedExperts > 0 &&
           layer >= firstKDenseReplace && layer % moeLayerFreq == 0;
  }
};

/// Dynamic loss scaling (kiln-autodiff loss-scale=dynamic), GradScaler's
/// defaults.
struct LossScaleConfig {
  double init = 65536.0;
  double growthFactor = 2.0;
  double backoffFactor = 0.5;
  int64_t growthInterval = 2000;
};

/// train.sparsity: 2:4 structured sparsity through training
/// (kiln-sparsity-2-4). "none", "2:4" (every default below), or
/// {"pattern": "2:4", "targets": [...], "start_step": S, "method":
/// "magnitude" | "sr-ste", "mask_every": K, "decay": 0.0002}.
struct SparsityConfig {
  std::string pattern = "none"; // none | 2:4
  /// HF-name globs (`*` any run of characters, `?` one character); empty:
  /// every linear and expert weight except embed_tokens and lm_head.
  std::vector<std::string> targets;
  /// The first step (1-based, as the log counts) trained with the mask; the
  /// steps before it are dense.
  int64_t startStep = 1;
  /// magnitude: masked weights, gradients and moments are kept at zero
  /// (Apex ASP); sr-ste: dense weights, the forward uses the masked ones,
  /// the gradient passes straight through, and the pruned weights decay
  /// by `decay` (SR-STE, Zhou et al. 2021).
  std::string method = "magnitude";
  /// The mask is recomputed from the weights' magnitudes every `maskEvery`
  /// steps from startStep; 0 computes it once, at startStep, and freezes it.
  int64_t maskEvery = 0;
  /// SR-STE's lambda_W: the sparse-refined decay of the pruned weights.
  double decay = 2e-4;
};

/// train.generate: the shape of the decode program kilnc emits next to the
/// step (frontend/DecodeGen.cpp) and the sampling defaults of `train
/// --generate`. {"batch": rows decoded together, "max_prompt_len": prefill's
/// chunk, "max_len": prompt + completion tokens a row holds (the KV cache
/// length)}; defaults: micro_batch rows, seq_len / 2 and seq_len.
struct GenerateConfig {
  int64_t batch = 0;
  int64_t maxPromptLen = 0;
  int64_t maxLen = 0;
};

/// train.grpo (stage "grpo"): GRPO as DeepSeekMath and R1 train, with the
/// knobs of TRL's GRPOTrainer / verl. See kiln.grpo_loss (KilnLossOps.td)
/// for the loss terms.
/// One stage of train.curriculum: the built-in arithmetic corpus' (and
/// GRPO's problems') difficulty up to and including step `untilStep` (0: to
/// the end of training; only the last stage).
struct CurriculumStage {
  int64_t untilStep = 0;
  int64_t maxDigits = 2, maxOps = 3;
};

/// train.batch_rampup: Megatron's `--rampup-batch-size START INCREMENT
/// SAMPLES`. The global batch (in rows) starts at `start` and grows by
/// `increment` every samples / ((global - start) / increment) consumed
/// samples until it is dp x microbatches x micro_batch, the spec's global
/// batch, after `samples` samples. Each size is a number of accumulated
/// micro-batches, and kilnc builds one step program per size. start 0: no
/// rampup.
struct BatchRampupConfig {
  int64_t start = 0, increment = 0, samples = 0;
};

struct GrpoConfig {
  int64_t promptsPerStep = 0;     ///< P; default: micro_batch x dp / samples
  bool promptsPerStepGiven = false; ///< P written in the spec (not the default)
  int64_t samplesPerPrompt = 4;   ///< G, the group size
  int64_t maxNewTokens = 0;       ///< completion budget; default seq_len / 2
  double temperature = 1.0;       ///< sampling, and the loss's log-probs
  double topP = 1.0;
  int64_t topK = 0;
  double clipLow = 0.2, clipHigh = 0.2; ///< clip_high > clip_low: DAPO's clip-higher
  double beta = 0.0;              ///< k3 KL coefficient (R1: 0.001; TRL: 0.0)
  int64_t refUpdateEvery = 0;     ///< refresh the reference model every N steps; 0: never
  /// "group-norm": (r - mean) / (std + eps) per group; "group-mean": r - mean (Dr. GRPO).
  std::string advantage = "group-norm";
  double advantageEps = 1e-4;
  /// kiln.grpo_loss's aggregation; Dr. GRPO's normaliser is max_new_tokens.
  std::string aggregation = "token-mean";
  int64_t updatesPerBatch = 1;    ///< mu
  double accuracyReward = 1.0, formatReward = 0.0;
  bool maskTruncated = true;      ///< completions cut by max_new_tokens get no loss (DAPO)
};

struct TrainConfig {
  std::string stage = "pretrain"; // pretrain | sft | grpo
  int64_t microBatch = 1;
  int64_t seqLen = 0;
  int64_t steps = 0;
  uint64_t seed = 0;
  double lr = 3e-4;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weightDecay = 0.1;
  /// AdamW moments' storage: "fp32", or "bf16" (DeepSeek-V3's choice; the
  /// update still computes in f32).
  std::string stateDtype = "fp32";
  int64_t warmupSteps = 0;
  double minLr = 0.0;
  double gradClip = 1.0;
  double labelSmoothing = 0.0;
  std::string precision = "fp32"; // fp32 | bf16 | fp16 | fp8
  /// GEMM families kiln-mixed-precision keeps in f32 / lowers, beyond its
  /// defaults (linear, expert, head, gate).
  std::vector<std::string> highPrecision, lowPrecision;
  /// precision "fp16": torch GradScaler's dynamic loss scaling, with its
  /// defaults (train.loss_scale overrides them).
  LossScaleConfig lossScale;
  std::string checkpointing = "none"; // none | full | selective | budget
  /// checkpointing "budget": the planned arena (activations and every other
  /// temporary of one rank's step) must fit this many bytes; written
  /// {"budget_bytes": N} or {"policy": "budget", "budget_gb": 40} (GB = 10^9
  /// bytes). 0 otherwise.
  int64_t checkpointBudgetBytes = 0;
  SparsityConfig sparsity;
  GenerateConfig generate;
  GrpoConfig grpo;
  /// train.curriculum: [{"until_step": 200, "max_digits": 1, "max_ops": 1},
  /// ..., {"max_digits": 2, "max_ops": 3}]; empty: the corpus defaults
  /// (2 digits, 3 operations) throughout.
  std::vector<CurriculumStage> curriculum;
  BatchRampupConfig batchRampup;
  double biasUpdateSpeed = 0.001;
  double auxLossAlpha = 0.0;
  double mtpLossWeight = 0.3;
};

/// The layout of a step over ranks. World size = dp x pp; ep divides dp (and
/// n_routed_experts). One step trains dp x microbatches x micro_batch rows.
/// parallel.grad_compression: top-k per tensor with int8 (or f32) values and
/// error feedback, for the data-parallel gradient sum (kiln-grad-compression).
struct GradCompressionConfig {
  bool enabled = false;
  double ratio = 0.05;
  std::string quantize = "int8"; // int8 | none
  bool errorFeedback = true;
};

struct ParallelConfig {
  int64_t dp = 1, ep = 1, pp = 1;
  /// 0: every dp rank holds the whole AdamW state; 1: the state is sharded
  /// over dp (ZeRO-1, DeepSeek-V3's choice).
  int64_t zero = 0;
  std::string schedule = "1f1b"; // gpipe | 1f1b | interleaved-1f1b | zb-h1 | zb-v | dualpipev
  int64_t microbatches = 1;
  int64_t virtualStages = 1;
  /// Routed-expert capacity as a factor over the balanced load (GShard's
  /// capacity factor, Megatron's moe_expert_capacity_factor): each expert
  /// takes at most expertCapacityPairs() pairs of each sequence and drops
  /// the rest. 0: dropless.
  double expertCapacity = 0;
  GradCompressionConfig gradCompression;

  /// ceil(expertCapacity x seqLen x topK / experts), the pairs an expert
  /// keeps per sequence; 0 when dropless or when that bound can never be
  /// reached (a token sends an expert at most one pair, so seqLen never is).
  int64_t expertCapacityPairs(int64_t seqLen, int64_t topK, int64_t experts) const {
    if (expertCapacity <= 0 || experts <= 0)
      return 0;
    const double pairs =
        std::ceil(expertCapacity * double(seqLen) * double(topK) / double(experts));
    return pairs < double(seqLen) ? std::max<int64_t>(int64_t(pairs), 1) : 0;
  }

  int64_t worldSize() const { return dp * pp; }
  /// Model chunks (virtual stages) each pipeline rank holds: DualPipeV's V
  /// has 2, interleaved 1F1B `virtual_stages`, the others 1.
  int64_t chunksPerRank() const {
    return schedule == "dualpipev" ? 2 : std::max<int64_t>(1, virtualStages);
  }
  /// Rows of one training step over all ranks.
  int64_t globalBatchRows(int64_t microBatch) const {
    return dp * microbatches * microBatch;
  }
};

struct TargetConfig {
  std::string kind = "host"; // host | cuda | cluster
  int64_t sm = 0;            // cuda
  std::string path;          // cluster description under targets/
};

struct Spec {
  std::string path; // the file it was read from, for messages
  ModelConfig model;
  TrainConfig train;
  ParallelConfig parallel;
  TargetConfig target;
  /// HF keys in `model` accepted but irrelevant to training (architectures,
  /// torch_dtype, token ids, ...), reported in one warning line.
  std::vector<std::string> ignoredModelKeys;
};

/// Reads and validates the spec at `path`. On failure returns nullopt and
/// sets `error` to one line: "<file>: <field>: <what is wrong>; <what would be
/// right>". Never throws, never writes anything.
std::optional<Spec> loadSpec(const std::string &path, std::string &error);

/// Same, from JSON text; `path` is used only in messages and to resolve a
/// relative `hf_config` path.
std::optional<Spec> parseSpec(const std::string &jsonText,
                              const std::string &path, std::string &error);

/// `spec` with its step batch made `rows` x `seqLen` (kilnc --eval on a token
/// file of another shape), checked as the spec's own train.micro_batch and
/// train.seq_len are (MTP depth, max_position_embeddings, sizes no target
/// can hold). On failure returns nullopt and sets `error` to one line
/// starting with `source` (the token file).
std::optional<Spec> withBatchShape(const Spec &spec, int64_t rows, int64_t seqLen,
                                   const std::string &source, std::string &error);

/// The one warning line listing spec.ignoredModelKeys ("<file>: warning:
/// model: ignoring keys that do not affect training: a, b"), or "" if none.
std::string formatIgnoredKeysWarning(const Spec &spec);

} // namespace kiln::frontend

#endif // KILN_FRONTEND_SPEC_H

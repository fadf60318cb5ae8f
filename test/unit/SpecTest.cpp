//===- SpecTest.cpp - spec parsing and validation -------------------------===//
//
// The shipped models parse to the values in their files; each bad spec in
// the table fails with one line naming the file, the field and what is
// wrong; hf_config files are named when the bad value is theirs; ignored HF
// keys are listed; missing files and directories are reported.
//
//===----------------------------------------------------------------------===//

#include "frontend/Spec.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace kiln::frontend;
using Json = nlohmann::json;

namespace {

std::string sourcePath(const std::string &relative) {
  return std::string(KILN_SOURCE_DIR) + "/" + relative;
}

Spec loadOrFail(const std::string &relative) {
  std::string error;
  std::optional<Spec> spec = loadSpec(sourcePath(relative), error);
  EXPECT_TRUE(spec.has_value()) << error;
  EXPECT_EQ(error, "");
  return spec ? *spec : Spec();
}

/// A small valid DeepSeek-V3 spec (r1-tiny's shape) and a small llama spec;
/// the bad-spec table patches them (RFC 7386 merge patch: null deletes).
const char *kDeepSeekBase = R"({
  "model": {
    "model_type": "deepseek_v3", "vocab_size": 256, "hidden_size": 64,
    "intermediate_size": 128, "moe_intermediate_size": 32,
    "num_hidden_layers": 3, "first_k_dense_replace": 1,
    "num_attention_heads": 4, "q_lora_rank": 32, "kv_lora_rank": 16,
    "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
    "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2,
    "n_group": 4, "topk_group": 2, "num_nextn_predict_layers": 1,
    "max_position_embeddings": 128,
    "rope_scaling": {"type": "yarn", "factor": 4,
                     "original_max_position_embeddings": 32}
  },
  "train": {"seq_len": 32, "micro_batch": 4}
})";

const char *kLlamaBase = R"({
  "model": {
    "model_type": "llama", "vocab_size": 256, "hidden_size": 64,
    "intermediate_size": 160, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2,
    "tie_word_embeddings": true
  },
  "train": {"seq_len": 32}
})";

std::string patched(const char *base, const std::string &patch) {
  Json j = Json::parse(base);
  j.merge_patch(Json::parse(patch));
  return j.dump(2);
}

struct BadSpec {
  const char *name;
  const char *base; // kDeepSeekBase or kLlamaBase
  const char *patch;
  std::vector<std::string> expected; // substrings of the message
};

void PrintTo(const BadSpec &c, std::ostream *os) { *os << c.name; }

const BadSpec kBadSpecs[] = {
    // Top level.
    {"TopLevelTypo", kDeepSeekBase, R"({"modle": {}})",
     {"spec.json: modle: unknown key; did you mean 'model'?"}},
    {"MissingTrain", kDeepSeekBase, R"({"train": null})",
     {"spec.json: train: missing"}},
    {"ModelNotObject", kDeepSeekBase, R"({"model": [1, 2]})",
     {"spec.json: model: found an array; expected an object"}},
    // model: family, unknown keys, types.
    {"UnsupportedModelType", kDeepSeekBase,
     R"({"model": {"model_type": "qwen2"}})",
     {"spec.json: model.model_type: 'qwen2' is not supported",
      "'deepseek_v3' or 'llama'"}},
    {"MissingModelType", kDeepSeekBase, R"({"model": {"model_type": null}})",
     {"spec.json: model.model_type: missing"}},
    {"ModelKeyTypo", kDeepSeekBase, R"({"model": {"hiden_size": 64}})",
     {"spec.json: model.hiden_size: unknown key; did you mean 'hidden_size'?"}},
    {"ModelKeyUnknown", kLlamaBase,
     R"({"model": {"sliding_window_pattern": 4}})",
     {"model.sliding_window_pattern: unknown key", "will not guess"}},
    {"DeepSeekKeyInLlama", kLlamaBase,
     R"({"model": {"n_routed_experts": 8}})",
     {"model.n_routed_experts: is not a llama key"}},
    {"MissingRequired", kDeepSeekBase, R"({"model": {"vocab_size": null}})",
     {"spec.json: model.vocab_size: missing; deepseek_v3 needs it"}},
    {"IntegerAsString", kDeepSeekBase, R"({"model": {"hidden_size": "64"}})",
     {"model.hidden_size: found string \"64\"; expected an integer"}},
    {"IntegerAsFloat", kDeepSeekBase, R"({"model": {"hidden_size": 64.0}})",
     {"model.hidden_size: found float 64.0; expected an integer"}},
    {"BoolAsString", kDeepSeekBase,
     R"({"model": {"tie_word_embeddings": "false"}})",
     {"model.tie_word_embeddings: found string \"false\"; expected true or "
      "false"}},
    {"ZeroHeads", kDeepSeekBase, R"({"model": {"num_attention_heads": 0}})",
     {"model.num_attention_heads: 0 is not positive"}},
    {"TooLarge", kDeepSeekBase,
     R"({"model": {"vocab_size": 18446744073709551615}})",
     {"model.vocab_size", "too large"}},
    // model: unsupported architecture changes.
    {"AttentionBias", kLlamaBase, R"({"model": {"attention_bias": true}})",
     {"model.attention_bias: true is not supported; expected false"}},
    {"Gelu", kDeepSeekBase, R"({"model": {"hidden_act": "gelu"}})",
     {"model.hidden_act: 'gelu' is not supported; expected 'silu'"}},
    {"Dropout", kLlamaBase, R"({"model": {"attention_dropout": 0.1}})",
     {"model.attention_dropout: 0.1 is not supported; expected 0"}},
    {"PretrainingTp", kLlamaBase, R"({"model": {"pretraining_tp": 2}})",
     {"model.pretraining_tp: 2 is not supported; expected 1"}},
    {"LlamaRopeScaling", kLlamaBase,
     R"({"model": {"rope_scaling": {"rope_type": "llama3", "factor": 8}}})",
     {"model.rope_scaling: rope scaling 'llama3' is not supported for llama"}},
    {"LinearRopeScaling", kDeepSeekBase,
     R"({"model": {"rope_scaling": {"type": "linear"}}})",
     {"model.rope_scaling.type: 'linear' is not supported; expected 'yarn'"}},
    // model: shapes and MoE routing.
    {"HiddenNotDivisible", kLlamaBase,
     R"({"model": {"hidden_size": 100, "num_attention_heads": 16}})",
     {"spec.json: model.hidden_size: 100 is not divisible by "
      "num_attention_heads 16"}},
    {"KvHeadsNotDivisor", kLlamaBase,
     R"({"model": {"num_key_value_heads": 3}})",
     {"model.num_key_value_heads: num_attention_heads 4 is not divisible by "
      "num_key_value_heads 3"}},
    {"LlamaOddHeadDim", kLlamaBase, R"({"model": {"head_dim": 15}})",
     {"model.head_dim: head_dim 15 is odd"}},
    {"MlaGroupedKv", kDeepSeekBase,
     R"({"model": {"num_key_value_heads": 2}})",
     {"model.num_key_value_heads", "MLA has no grouped KV heads"}},
    {"OddRopeDim", kDeepSeekBase, R"({"model": {"qk_rope_head_dim": 7}})",
     {"model.qk_rope_head_dim: 7 is odd"}},
    {"QLoraZero", kDeepSeekBase, R"({"model": {"q_lora_rank": 0}})",
     {"model.q_lora_rank", "or null for a plain q_proj"}},
    {"QkHeadDimMismatch", kDeepSeekBase, R"({"model": {"qk_head_dim": 20}})",
     {"model.qk_head_dim: 20 disagrees with qk_nope_head_dim + "
      "qk_rope_head_dim = 24"}},
    {"ExpertsNotDivisibleByGroups", kDeepSeekBase,
     R"({"model": {"n_group": 3, "topk_group": 1}})",
     {"model.n_group: n_routed_experts 8 is not divisible by n_group 3"}},
    {"TopkGroupTooLarge", kDeepSeekBase, R"({"model": {"topk_group": 5}})",
     {"model.topk_group: 5 is more than n_group 4"}},
    {"TopkTooLarge", kDeepSeekBase,
     R"({"model": {"num_experts_per_tok": 9}})",
     {"model.num_experts_per_tok: 9 is more than n_routed_experts 8"}},
    {"TopkBeyondSelectedGroups", kDeepSeekBase,
     R"({"model": {"num_experts_per_tok": 5}})",
     {"model.num_experts_per_tok: 5 is more than the experts in the selected "
      "groups, topk_group 2 x 2"}},
    {"OneExpertPerGroup", kDeepSeekBase,
     R"({"model": {"n_group": 8, "topk_group": 2}})",
     {"model.n_group", "expected at least 2 experts per group"}},
    {"MissingExpertsPerTok", kDeepSeekBase,
     R"({"model": {"num_experts_per_tok": null}})",
     {"model.num_experts_per_tok: missing"}},
    {"DenseReplaceTooLarge", kDeepSeekBase,
     R"({"model": {"first_k_dense_replace": 4}})",
     {"model.first_k_dense_replace: 4 is more than num_hidden_layers 3"}},
    {"ScoringFunc", kDeepSeekBase,
     R"({"model": {"scoring_func": "softplus"}})",
     {"model.scoring_func: 'softplus' is not supported; expected 'sigmoid' or "
      "'softmax'"}},
    {"TopkMethod", kDeepSeekBase,
     R"({"model": {"topk_method": "noaux"}})",
     {"model.topk_method: 'noaux' is not supported", "did you mean "
                                                     "'noaux_tc'?"}},
    {"NegativeScaling", kDeepSeekBase,
     R"({"model": {"routed_scaling_factor": -1}})",
     {"model.routed_scaling_factor: -1 is out of range; expected a number > 0"}},
    {"YarnFactorZero", kDeepSeekBase,
     R"({"model": {"rope_scaling": {"factor": 0}}})",
     {"model.rope_scaling.factor: 0 is out of range; expected a number > 0"}},
    {"YarnOriginalZero", kDeepSeekBase,
     R"({"model": {"rope_scaling": {"original_max_position_embeddings": 0}}})",
     {"model.rope_scaling.original_max_position_embeddings: 0 is not "
      "positive"}},
    {"YarnKeyTypo", kDeepSeekBase,
     R"({"model": {"rope_scaling": {"beta_fsat": 32}}})",
     {"model.rope_scaling.beta_fsat: unknown key; did you mean 'beta_fast'?"}},
    // train.
    {"TrainKeyTypo", kDeepSeekBase, R"({"train": {"optimzer": {}}})",
     {"spec.json: train.optimzer: unknown key; did you mean 'optimizer'?"}},
    {"NestedKeyTypo", kDeepSeekBase,
     R"({"train": {"schedule": {"min_lrr": 0.001}}})",
     {"train.schedule.min_lrr: unknown key; did you mean 'min_lr'?"}},
    {"MissingSeqLen", kDeepSeekBase, R"({"train": {"seq_len": null}})",
     {"spec.json: train.seq_len: missing"}},
    {"SeqLenTooShortForMtp", kDeepSeekBase, R"({"train": {"seq_len": 2}})",
     {"train.seq_len: 2 is too short",
      "expected at least 2 + num_nextn_predict_layers = 3"}},
    {"SeqLenBeyondPositions", kDeepSeekBase, R"({"train": {"seq_len": 256}})",
     {"train.seq_len: 256 is more than max_position_embeddings 128"}},
    {"MicroBatchZero", kDeepSeekBase, R"({"train": {"micro_batch": 0}})",
     {"train.micro_batch: 0 is too small; expected an integer >= 1"}},
    {"LabelSmoothingOne", kDeepSeekBase,
     R"({"train": {"label_smoothing": 1.0}})",
     {"train.label_smoothing: 1 is out of range; expected a number in [0, 1)"}},
    {"Precision", kDeepSeekBase, R"({"train": {"precision": "fp4"}})",
     {"train.precision: 'fp4' is not supported; expected 'fp32', 'bf16', "
      "'fp16' or 'fp8'"}},
    {"Stage", kDeepSeekBase, R"({"train": {"stage": "rl"}})",
     {"train.stage: 'rl' is not supported"}},
    {"Betas", kDeepSeekBase, R"({"train": {"optimizer": {"betas": [0.9]}}})",
     {"train.optimizer.betas", "expected [beta1, beta2]"}},
    {"BetaOne", kDeepSeekBase,
     R"({"train": {"optimizer": {"betas": [0.9, 1.0]}}})",
     {"train.optimizer.betas: 1 is out of range"}},
    {"NegativeSeed", kDeepSeekBase, R"({"train": {"seed": -1}})",
     {"train.seed: integer -1 is negative"}},
    {"BudgetWithoutNumber", kDeepSeekBase,
     R"({"train": {"checkpointing": "budget"}})",
     {"train.checkpointing: 'budget' needs a memory budget"}},
    {"BudgetObjectMissingGb", kDeepSeekBase,
     R"({"train": {"checkpointing": {"policy": "budget"}}})",
     {"train.checkpointing.budget_bytes: missing"}},
    {"BudgetBothUnits", kDeepSeekBase,
     R"({"train": {"checkpointing": {"budget_bytes": 10, "budget_gb": 1}}})",
     {"train.checkpointing.budget_gb: and budget_bytes both give the budget"}},
    {"BudgetZeroBytes", kDeepSeekBase,
     R"({"train": {"checkpointing": {"budget_bytes": 0}}})",
     {"train.checkpointing.budget_bytes:"}},
    {"BudgetWithFull", kDeepSeekBase,
     R"({"train": {"checkpointing": {"policy": "full", "budget_bytes": 100}}})",
     {"train.checkpointing.budget_bytes: is only meaningful with policy 'budget'"}},
    {"Sparsity", kDeepSeekBase, R"({"train": {"sparsity": "4:8"}})",
     {"train.sparsity: '4:8' is not supported; expected 'none' or '2:4'"}},
    {"SparsityPattern", kDeepSeekBase, R"({"train": {"sparsity": {"pattern": "1:4"}}})",
     {"train.sparsity.pattern: '1:4' is not supported"}},
    {"SparsityNoPattern", kDeepSeekBase, R"({"train": {"sparsity": {"start_step": 5}}})",
     {"train.sparsity.pattern: missing"}},
    {"SparsityEmptyTargets", kDeepSeekBase,
     R"({"train": {"sparsity": {"pattern": "2:4", "targets": []}}})",
     {"train.sparsity.targets: found an empty array; expected a non-empty array of HF-name globs"}},
    {"SparsityLateStart", kDeepSeekBase,
     R"({"train": {"steps": 10, "sparsity": {"pattern": "2:4", "start_step": 11}}})",
     {"train.sparsity.start_step: 11 is after train.steps 10"}},
    {"SparsityDecayWithoutSrSte", kDeepSeekBase,
     R"({"train": {"sparsity": {"pattern": "2:4", "decay": 0.001}}})",
     {"train.sparsity.decay: applies only with \"method\": \"sr-ste\""}},
    {"SparsityMethod", kDeepSeekBase,
     R"({"train": {"sparsity": {"pattern": "2:4", "method": "ste"}}})",
     {"train.sparsity.method: 'ste' is not supported"}},
    {"WarmupBeyondSteps", kDeepSeekBase,
     R"({"train": {"steps": 10, "schedule": {"warmup_steps": 20}}})",
     {"train.schedule.warmup_steps: 20 is more than train.steps 10"}},
    // parallel.
    // Found by fuzz_spec: a key with a JSON "\n" made a two-line message.
    {"NewlineInKey", kDeepSeekBase, R"({"parallel": {"\nep": 2}})",
     {"parallel.\\x0aep: unknown key; did you mean 'ep'?"}},
    {"ParallelTypo", kDeepSeekBase, R"({"parallel": {"schedul": "1f1b"}})",
     {"parallel.schedul: unknown key; did you mean 'schedule'?"}},
    {"EpNotDivisor", kDeepSeekBase, R"({"parallel": {"ep": 3}})",
     {"spec.json: parallel.ep: 3 does not divide n_routed_experts 8"}},
    {"EpNotDividingDp", kDeepSeekBase,
     R"({"parallel": {"ep": 4, "dp": 6}})",
     {"parallel.ep: 4 does not divide dp 6; expert parallelism is carved out "
      "of data parallelism"}},
    {"ZeroTwo", kDeepSeekBase, R"({"parallel": {"zero": 2, "dp": 2}})",
     {"parallel.zero: 2 is not supported; expected 0"}},
    {"ZeroWithoutDp", kDeepSeekBase, R"({"parallel": {"zero": 1}})",
     {"parallel.zero: 1 shards the optimizer state over dp, and dp is 1"}},
    {"WorldBeyondMachines", kDeepSeekBase,
     R"({"parallel": {"dp": 4611686018427387904}})",
     {"parallel: dp 4611686018427387904 x pp 1 with microbatches 1 is beyond "
      "any machine"}},
    {"EpOnDense", kLlamaBase, R"({"parallel": {"ep": 2}})",
     {"parallel.ep: 2 needs routed experts"}},
    {"CapacityZero", kDeepSeekBase, R"({"parallel": {"expert_capacity": 0}})",
     {"parallel.expert_capacity: 0 is out of range; expected a number > 0"}},
    {"CapacityString", kDeepSeekBase, R"({"parallel": {"expert_capacity": "1.25"}})",
     {"parallel.expert_capacity"}},
    {"CapacityOnDense", kLlamaBase, R"({"parallel": {"expert_capacity": 1.25}})",
     {"parallel.expert_capacity: bounds the rows routed experts take, and this model has "
      "none"}},
    {"CompressionWithoutDp", kDeepSeekBase, R"({"parallel": {"grad_compression": {}}})",
     {"parallel.grad_compression: compresses the data-parallel gradient sum, and dp is 1"}},
    {"CompressionWithZero", kDeepSeekBase,
     R"({"parallel": {"dp": 2, "zero": 1, "grad_compression": {}}})",
     {"parallel.grad_compression: is built for replicated optimizer state", "expected zero 0"}},
    {"CompressionMethod", kDeepSeekBase,
     R"({"parallel": {"dp": 2, "grad_compression": {"method": "powersgd"}}})",
     {"parallel.grad_compression.method"}},
    {"CompressionRatio", kDeepSeekBase,
     R"({"parallel": {"dp": 2, "grad_compression": {"ratio": 1.5}}})",
     {"parallel.grad_compression.ratio: 1.5 is out of range; expected the fraction"}},
    {"CompressionQuantize", kDeepSeekBase,
     R"({"parallel": {"dp": 2, "grad_compression": {"quantize": "fp8"}}})",
     {"parallel.grad_compression.quantize"}},
    {"CompressionTypo", kDeepSeekBase,
     R"({"parallel": {"dp": 2, "grad_compression": {"error_feedbak": true}}})",
     {"parallel.grad_compression.error_feedbak: unknown key; did you mean 'error_feedback'?"}},
    {"PpBeyondLayers", kDeepSeekBase, R"({"parallel": {"pp": 4}})",
     {"parallel.pp: 4 stages is more than num_hidden_layers 3"}},
    {"PipelineSchedule", kDeepSeekBase,
     R"({"parallel": {"schedule": "interleaved"}})",
     {"parallel.schedule: 'interleaved' is not supported", "did you mean 'interleaved-1f1b'?"}},
    {"InterleavedNeedsChunks", kDeepSeekBase,
     R"({"parallel": {"schedule": "interleaved-1f1b"}})",
     {"parallel.virtual_stages: 1 with schedule 'interleaved-1f1b' is plain 1F1B"}},
    {"VirtualStagesWithout", kDeepSeekBase,
     R"({"parallel": {"virtual_stages": 2}})",
     {"parallel.virtual_stages: 2 needs schedule 'interleaved-1f1b'"}},
    {"VShapeChunks", kDeepSeekBase,
     R"({"parallel": {"schedule": "zb-v", "virtual_stages": 3}})",
     {"parallel.virtual_stages: 3 chunks per rank; the V shape of 'zb-v' has 2"}},
    // Sizes no target can hold: dimensions, then tensors (no int64 overflow).
    {"HugeHiddenSize", kDeepSeekBase, R"({"model": {"hidden_size": 4611686018427387904}})",
     {"model.hidden_size: 4611686018427387904 is beyond what any target can hold; expected at "
      "most 16777216"}},
    {"HugeSeqLen", kDeepSeekBase,
     R"({"model": {"max_position_embeddings": 67108864}, "train": {"seq_len": 33554432}})",
     {"train.seq_len: 33554432 is beyond what any target can hold"}},
    {"HugeEmbedding", kDeepSeekBase,
     R"({"model": {"vocab_size": 16777216, "hidden_size": 16777216}})",
     {"model.vocab_size: the embedding (vocab_size x hidden_size) would have ",
      "more than any target can hold; expected at most 2^40"}},
    {"HugeExperts", kDeepSeekBase,
     R"({"model": {"n_routed_experts": 65536, "moe_intermediate_size": 16777216, "n_group": 1,
                   "topk_group": 1}})",
     {"model.n_routed_experts: the stacked expert weights"}},
    // target.
    {"UnsupportedSm", kDeepSeekBase,
     R"({"target": {"kind": "cuda", "sm": 75}})",
     {"target.sm: 75 is not supported; expected 80, 89, 90 or 100"}},
    {"CudaWithoutSm", kDeepSeekBase, R"({"target": {"kind": "cuda"}})",
     {"target.sm: missing"}},
    {"TargetKind", kDeepSeekBase, R"({"target": {"kind": "tpu"}})",
     {"target.kind: 'tpu' is not supported; expected 'host', 'cuda' or "
      "'cluster'"}},
    {"MissingClusterFile", kDeepSeekBase,
     R"({"target": "targets/no-such-cluster.json"})",
     {"spec.json: target: 'targets/no-such-cluster.json' is not a file"}},
    {"Fp8OnAmpere", kDeepSeekBase,
     R"({"train": {"precision": "fp8"}, "target": {"kind": "cuda", "sm": 80}})",
     {"train.precision: 'fp8' needs FP8 tensor cores, which sm 80 lacks"}},
};

class BadSpecTest : public ::testing::TestWithParam<BadSpec> {};

TEST_P(BadSpecTest, FailsWithFieldAndReason) {
  const BadSpec &c = GetParam();
  std::string text = patched(c.base, c.patch);
  std::string error;
  std::optional<Spec> spec = parseSpec(text, "spec.json", error);
  ASSERT_FALSE(spec.has_value()) << "accepted:\n" << text;
  std::cout << error << "\n";
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_EQ(error.rfind("spec.json: ", 0), 0u) << error;
  for (const std::string &want : c.expected)
    EXPECT_NE(error.find(want), std::string::npos)
        << "message: " << error << "\nexpected to contain: " << want;
}

INSTANTIATE_TEST_SUITE_P(Table, BadSpecTest, ::testing::ValuesIn(kBadSpecs),
                         [](const ::testing::TestParamInfo<BadSpec> &param) {
                           return std::string(param.param.name);
                         });

TEST(SpecTest, BasesAreValid) {
  for (const char *base : {kDeepSeekBase, kLlamaBase}) {
    std::string error;
    EXPECT_TRUE(parseSpec(base, "spec.json", error).has_value()) << error;
  }
}

//===----------------------------------------------------------------------===//
// Shipped models
//===----------------------------------------------------------------------===//

TEST(SpecTest, DeepSeekV3ViaHfConfig) {
  Spec s = loadOrFail("models/deepseek-v3.json");
  const ModelConfig &m = s.model;
  EXPECT_EQ(m.family, ModelFamily::DeepSeekV3);
  EXPECT_EQ(m.vocabSize, 129280);
  EXPECT_EQ(m.hiddenSize, 7168);
  EXPECT_EQ(m.intermediateSize, 18432);
  EXPECT_EQ(m.moeIntermediateSize, 2048);
  EXPECT_EQ(m.numHiddenLayers, 61);
  EXPECT_EQ(m.firstKDenseReplace, 3);
  EXPECT_EQ(m.numAttentionHeads, 128);
  EXPECT_EQ(m.numKeyValueHeads, 128);
  EXPECT_EQ(m.qLoraRank, 1536);
  EXPECT_EQ(m.kvLoraRank, 512);
  EXPECT_EQ(m.qkNopeHeadDim, 128);
  EXPECT_EQ(m.qkRopeHeadDim, 64);
  EXPECT_EQ(m.vHeadDim, 128);
  EXPECT_EQ(m.nRoutedExperts, 256);
  EXPECT_EQ(m.nSharedExperts, 1);
  EXPECT_EQ(m.numExpertsPerTok, 8);
  EXPECT_EQ(m.nGroup, 8);
  EXPECT_EQ(m.topkGroup, 4);
  EXPECT_EQ(m.scoringFunc, "sigmoid");
  EXPECT_EQ(m.topkMethod, "noaux_tc");
  EXPECT_TRUE(m.normTopkProb);
  EXPECT_DOUBLE_EQ(m.routedScalingFactor, 2.5);
  EXPECT_EQ(m.numNextnPredictLayers, 1);
  EXPECT_EQ(m.maxPositionEmbeddings, 163840);
  EXPECT_DOUBLE_EQ(m.ropeTheta, 10000.0);
  EXPECT_DOUBLE_EQ(m.rmsNormEps, 1e-6);
  EXPECT_TRUE(m.ropeInterleave);
  EXPECT_FALSE(m.tieWordEmbeddings);
  ASSERT_TRUE(m.yarn.has_value());
  EXPECT_DOUBLE_EQ(m.yarn->factor, 40.0);
  EXPECT_EQ(m.yarn->originalMaxPositionEmbeddings, 4096);
  EXPECT_DOUBLE_EQ(m.yarn->betaFast, 32.0);
  EXPECT_DOUBLE_EQ(m.yarn->betaSlow, 1.0);
  EXPECT_DOUBLE_EQ(m.yarn->mscale, 1.0);
  EXPECT_DOUBLE_EQ(m.yarn->mscaleAllDim, 1.0);
  EXPECT_FALSE(m.isMoELayer(2));
  EXPECT_TRUE(m.isMoELayer(3));
  EXPECT_TRUE(m.isMoELayer(61)); // the MTP module's layer

  EXPECT_EQ(s.train.precision, "fp8");
  EXPECT_EQ(s.train.seqLen, 4096);
  EXPECT_EQ(s.train.checkpointing, "selective");
  EXPECT_EQ(s.parallel.dp, 128);
  EXPECT_EQ(s.parallel.zero, 1);
  EXPECT_EQ(s.parallel.ep, 64);
  EXPECT_EQ(s.parallel.pp, 16);
  EXPECT_EQ(s.parallel.schedule, "dualpipev");
  EXPECT_EQ(s.target.kind, "cuda");
  EXPECT_EQ(s.target.sm, 90);
}

TEST(SpecTest, R1Tiny) {
  Spec s = loadOrFail("models/r1-tiny.json");
  const ModelConfig &m = s.model;
  EXPECT_EQ(m.modelType, "deepseek_v3");
  EXPECT_EQ(m.hiddenSize, 64);
  EXPECT_EQ(m.numHiddenLayers, 3);
  EXPECT_EQ(m.firstKDenseReplace, 1);
  EXPECT_EQ(m.nRoutedExperts, 8);
  EXPECT_EQ(m.nGroup, 4);
  EXPECT_EQ(m.topkGroup, 2);
  EXPECT_EQ(m.numNextnPredictLayers, 1);
  ASSERT_TRUE(m.yarn.has_value());
  EXPECT_DOUBLE_EQ(m.yarn->factor, 4.0);
  EXPECT_EQ(m.yarn->originalMaxPositionEmbeddings, 32);
  EXPECT_EQ(s.train.stage, "pretrain");
  EXPECT_EQ(s.train.microBatch, 4);
  EXPECT_EQ(s.train.seqLen, 32);
  EXPECT_EQ(s.train.steps, 300);
  EXPECT_EQ(s.train.seed, 1234u);
  EXPECT_DOUBLE_EQ(s.train.lr, 3e-3);
  EXPECT_DOUBLE_EQ(s.train.beta2, 0.95);
  EXPECT_EQ(s.train.warmupSteps, 20);
  EXPECT_DOUBLE_EQ(s.train.minLr, 3e-4);
  EXPECT_DOUBLE_EQ(s.train.mtpLossWeight, 0.3);
  EXPECT_EQ(s.target.kind, "host");
  EXPECT_TRUE(s.ignoredModelKeys.empty());
}

TEST(SpecTest, DenseTiny) {
  Spec s = loadOrFail("models/dense-tiny.json");
  const ModelConfig &m = s.model;
  EXPECT_EQ(m.family, ModelFamily::Llama);
  EXPECT_EQ(m.numKeyValueHeads, 2);
  EXPECT_EQ(m.headDim, 16);
  EXPECT_EQ(m.intermediateSize, 160);
  EXPECT_TRUE(m.tieWordEmbeddings);
  EXPECT_FALSE(m.ropeInterleave);
  EXPECT_FALSE(m.yarn.has_value());
  EXPECT_EQ(m.numNextnPredictLayers, 0);
  EXPECT_FALSE(m.isMoELayer(0));
}

TEST(SpecTest, R1Mini) {
  Spec s = loadOrFail("models/r1-mini.json");
  EXPECT_EQ(s.model.hiddenSize, 256);
  EXPECT_EQ(s.model.nRoutedExperts, 16);
  EXPECT_EQ(s.train.seqLen, 256);
  EXPECT_EQ(s.train.microBatch, 4);
}

//===----------------------------------------------------------------------===//
// Defaults, warnings, JSON errors
//===----------------------------------------------------------------------===//

TEST(SpecTest, HfDefaults) {
  std::string error;
  std::string text = patched(kDeepSeekBase, R"({"model": {
      "q_lora_rank": null, "n_group": null, "topk_group": null,
      "n_shared_experts": null, "rope_scaling": null}, "target": null})");
  std::optional<Spec> s = parseSpec(text, "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->model.qLoraRank, 0);
  EXPECT_EQ(s->model.nGroup, 1);
  EXPECT_EQ(s->model.topkGroup, 1);
  EXPECT_EQ(s->model.nSharedExperts, 0);
  EXPECT_EQ(s->model.numKeyValueHeads, 4);
  EXPECT_TRUE(s->model.normTopkProb);
  EXPECT_TRUE(s->model.ropeInterleave);
  EXPECT_DOUBLE_EQ(s->model.rmsNormEps, 1e-6);
  EXPECT_DOUBLE_EQ(s->model.ropeTheta, 10000.0);
  EXPECT_DOUBLE_EQ(s->model.initializerRange, 0.02);
  EXPECT_DOUBLE_EQ(s->model.routedScalingFactor, 1.0);
  EXPECT_FALSE(s->model.yarn.has_value());
  EXPECT_EQ(s->target.kind, "host");

  text = patched(kLlamaBase, R"({"model": {"num_key_value_heads": null}})");
  s = parseSpec(text, "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->model.numKeyValueHeads, 4);
  EXPECT_EQ(s->model.headDim, 16);
}

// config.json files written by newer transformers releases spell a few
// derived values out; Kiln accepts them when they agree with the rest.
TEST(SpecTest, NewerHfDeepSeekKeys) {
  std::string error;
  std::optional<Spec> s = parseSpec(
      patched(kDeepSeekBase, R"({"model": {"rope_interleave": true,
          "qk_head_dim": 24, "head_dim": 8, "dtype": "bfloat16",
          "rope_scaling": {"rope_type": "yarn"}}})"),
      "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->model.headDim, 8);
  EXPECT_EQ(s->ignoredModelKeys, std::vector<std::string>{"dtype"});
}

TEST(SpecTest, IgnoredKeysWarning) {
  Spec s = loadOrFail("models/deepseek-v3.json");
  for (const char *key : {"architectures", "auto_map", "bos_token_id",
                          "eos_token_id", "quantization_config", "torch_dtype",
                          "transformers_version", "use_cache", "aux_loss_alpha",
                          "seq_aux", "ep_size"})
    EXPECT_NE(std::find(s.ignoredModelKeys.begin(), s.ignoredModelKeys.end(),
                        key),
              s.ignoredModelKeys.end())
        << key;
  // Architectural keys with the supported value are not "ignored".
  for (const char *key : {"hidden_act", "attention_bias", "hidden_size"})
    EXPECT_EQ(std::find(s.ignoredModelKeys.begin(), s.ignoredModelKeys.end(),
                        key),
              s.ignoredModelKeys.end())
        << key;
  std::string warning = formatIgnoredKeysWarning(s);
  std::cout << warning << "\n";
  EXPECT_NE(warning.find("deepseek-v3.json: warning: model: ignoring keys"),
            std::string::npos);
  EXPECT_NE(warning.find("quantization_config"), std::string::npos);
  EXPECT_EQ(warning.find('\n'), std::string::npos);
  EXPECT_EQ(formatIgnoredKeysWarning(loadOrFail("models/r1-tiny.json")), "");
}

TEST(SpecTest, JsonSyntaxErrorHasLineAndColumn) {
  std::string error;
  EXPECT_FALSE(parseSpec("{\n  \"model\": {\n    \"vocab_size\": 256,,\n",
                         "bad.json", error));
  std::cout << error << "\n";
  EXPECT_EQ(error.rfind("bad.json: line 3, column 23: JSON syntax error", 0),
            0u)
      << error;
  EXPECT_FALSE(parseSpec("", "empty.json", error));
  EXPECT_EQ(error.rfind("empty.json: line 1, column 1: JSON syntax error", 0),
            0u)
      << error;
}

// Found by fuzz_spec: nlohmann throws out_of_range (not parse_error) for a
// number past the double range, which ended in "internal error".
TEST(SpecTest, NumberPastDoubleRangeIsASpecError) {
  std::string error;
  EXPECT_FALSE(parseSpec(R"({"model": {"vocab_size": 1e10000}})", "huge.json", error));
  EXPECT_EQ(error, "huge.json: JSON number overflow parsing '1e10000'; numbers must be within "
                   "the range of a double (about 1.8e308)");
}

TEST(SpecTest, DuplicateKey) {
  std::string error;
  EXPECT_FALSE(parseSpec(
      R"({"model": {"model_type": "llama"}, "train": {"seq_len": 32, "seq_len": 64}})",
      "dup.json", error));
  EXPECT_EQ(error, "dup.json: train.seq_len: duplicate key; give each key "
                   "once (JSON keeps only the last)");
}

TEST(SpecTest, NeverThrowsOnGarbage) {
  for (const char *text : {"[]", "null", "42", "\"x\"", "{\"model\": 1}",
                           "{\"model\": {}, \"train\": []}", "\xff\xfe{",
                           "{\"a\": \"\xc3\x28\"}"}) {
    std::string error;
    EXPECT_FALSE(parseSpec(text, "g.json", error).has_value()) << text;
    EXPECT_EQ(error.rfind("g.json: ", 0), 0u) << error;
  }
}

// Capacity is per sequence: ceil(factor x seq_len x top_k / experts) rows
// per expert, never 0, and 0 (dropless) when it can never bind.
TEST(SpecTest, ExpertCapacity) {
  std::string error;
  std::optional<Spec> s =
      parseSpec(patched(kDeepSeekBase, R"({"parallel": {"expert_capacity": 1.25}})"),
                "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_DOUBLE_EQ(s->parallel.expertCapacity, 1.25);
  EXPECT_EQ(s->parallel.expertCapacityPairs(32, 2, 8), 10); // 1.25 x 8
  EXPECT_EQ(s->parallel.expertCapacityPairs(30, 2, 8), 10); // ceil(9.375)
  EXPECT_EQ(s->parallel.expertCapacityPairs(4, 1, 256), 1);  // at least 1
  EXPECT_EQ(s->parallel.expertCapacityPairs(32, 8, 8), 0);  // 40 >= 32: never binds
  s->parallel.expertCapacity = 1e300;
  EXPECT_EQ(s->parallel.expertCapacityPairs(4096, 8, 256), 0);
  s = parseSpec(patched(kDeepSeekBase, R"({"parallel": {"expert_capacity": null}})"),
                "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->parallel.expertCapacity, 0.0);
  EXPECT_EQ(s->parallel.expertCapacityPairs(32, 2, 8), 0);
}

TEST(SpecTest, GradCompression) {
  std::string error;
  std::optional<Spec> s = parseSpec(
      patched(kDeepSeekBase, R"({"parallel": {"dp": 2, "grad_compression": {"method": "topk"}}})"),
      "spec.json", error);
  ASSERT_TRUE(s) << error;
  const GradCompressionConfig &g = s->parallel.gradCompression;
  EXPECT_TRUE(g.enabled);
  EXPECT_EQ(g.ratio, 0.05);
  EXPECT_EQ(g.quantize, "int8");
  EXPECT_TRUE(g.errorFeedback);
  s = parseSpec(patched(kDeepSeekBase, R"({"parallel": {"dp": 2, "grad_compression": {"ratio":
          0.01, "quantize": "none", "error_feedback": false}}})"),
                "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->parallel.gradCompression.ratio, 0.01);
  EXPECT_EQ(s->parallel.gradCompression.quantize, "none");
  EXPECT_FALSE(s->parallel.gradCompression.errorFeedback);
  s = parseSpec(patched(kDeepSeekBase, R"({"parallel": {"dp": 2, "grad_compression": null}})"),
                "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_FALSE(s->parallel.gradCompression.enabled);
}

TEST(SpecTest, SparsityObject) {
  std::string error;
  std::optional<Spec> s = parseSpec(
      patched(kDeepSeekBase, R"({"train": {"steps": 300, "sparsity": {"pattern": "2:4",
          "targets": ["model.layers.*.mlp.*"], "start_step": 100, "method": "sr-ste",
          "mask_every": 10, "decay": 0.0005}}})"),
      "spec.json", error);
  ASSERT_TRUE(s) << error;
  const SparsityConfig &sp = s->train.sparsity;
  EXPECT_EQ(sp.pattern, "2:4");
  EXPECT_EQ(sp.targets, std::vector<std::string>{"model.layers.*.mlp.*"});
  EXPECT_EQ(sp.startStep, 100);
  EXPECT_EQ(sp.method, "sr-ste");
  EXPECT_EQ(sp.maskEvery, 10);
  EXPECT_DOUBLE_EQ(sp.decay, 0.0005);
  s = parseSpec(patched(kDeepSeekBase, R"({"train": {"sparsity": "2:4"}})"), "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->train.sparsity.pattern, "2:4");
  EXPECT_TRUE(s->train.sparsity.targets.empty());
  EXPECT_EQ(s->train.sparsity.startStep, 1);
  EXPECT_EQ(s->train.sparsity.method, "magnitude");
}

TEST(SpecTest, CheckpointBudgetObject) {
  std::string error;
  std::optional<Spec> s = parseSpec(
      patched(kDeepSeekBase, R"({"train": {"checkpointing":
          {"policy": "budget", "budget_gb": 40}}})"),
      "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->train.checkpointing, "budget");
  EXPECT_EQ(s->train.checkpointBudgetBytes, 40'000'000'000);
  s = parseSpec(patched(kDeepSeekBase, R"({"train": {"checkpointing": {"budget_bytes": 1234567}}})"),
                "spec.json", error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->train.checkpointing, "budget");
  EXPECT_EQ(s->train.checkpointBudgetBytes, 1234567);
}

//===----------------------------------------------------------------------===//
// Files: hf_config, cluster targets, missing files
//===----------------------------------------------------------------------===//

class SpecFilesTest : public ::testing::Test {
protected:
  void SetUp() override {
    char pattern[] = "/tmp/kiln-spec-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir = pattern;
    ASSERT_EQ(mkdir((dir + "/hf").c_str(), 0755), 0);
  }
  void TearDown() override {
    for (const std::string &f : written)
      std::remove(f.c_str());
    rmdir((dir + "/hf").c_str());
    rmdir(dir.c_str());
  }
  std::string write(const std::string &name, const std::string &text) {
    std::string path = dir + "/" + name;
    std::ofstream(path) << text;
    written.push_back(path);
    return path;
  }
  std::optional<Spec> load(const std::string &path) {
    return loadSpec(path, error);
  }
  std::string dir, error;
  std::vector<std::string> written;
};

const char *kHfLlama = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "vocab_size": 256, "hidden_size": 64, "intermediate_size": 160,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "torch_dtype": "bfloat16", "bos_token_id": 1
})";

TEST_F(SpecFilesTest, HfConfigWithOverrides) {
  write("hf/config.json", kHfLlama);
  std::string spec = write(
      "spec.json", R"({"model": {"hf_config": "hf/config.json",
                       "num_hidden_layers": 1, "tie_word_embeddings": true},
                       "train": {"seq_len": 16}})");
  std::optional<Spec> s = load(spec);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->model.numHiddenLayers, 1); // the override wins
  EXPECT_EQ(s->model.hiddenSize, 64);     // from the file
  EXPECT_TRUE(s->model.tieWordEmbeddings);
  EXPECT_EQ(s->ignoredModelKeys,
            (std::vector<std::string>{"architectures", "bos_token_id",
                                      "torch_dtype"}));
}

// A huge file given as the spec or its hf_config (a wrong path) is refused
// by its size, not read into memory (a sparse file: no disk used).
TEST_F(SpecFilesTest, HugeFilesAreRefusedBySize) {
  std::string huge = write("hf/huge.json", "");
  ASSERT_EQ(::truncate(huge.c_str(), off_t(100) << 20), 0);
  std::string spec = write(
      "spec.json", R"({"model": {"hf_config": "hf/huge.json"}, "train": {"seq_len": 16}})");
  EXPECT_FALSE(load(spec));
  EXPECT_NE(error.find("huge.json: is 104857600 bytes, more than the 64 MiB a spec or "
                       "config.json may have"),
            std::string::npos)
      << error;
  EXPECT_FALSE(load(huge));
  EXPECT_NE(error.find("more than the 64 MiB"), std::string::npos) << error;
}

TEST_F(SpecFilesTest, BadValueInHfConfigNamesThatFile) {
  std::string hf = write("hf/config.json",
                         patched(kHfLlama, R"({"hidden_size": 100,
                                 "num_attention_heads": 16,
                                 "num_key_value_heads": 4})"));
  std::string spec = write(
      "spec.json",
      R"({"model": {"hf_config": "hf/config.json"}, "train": {"seq_len": 16}})");
  EXPECT_FALSE(load(spec));
  EXPECT_EQ(error, hf + ": hidden_size: 100 is not divisible by "
                        "num_attention_heads 16; use a multiple of it, or set "
                        "head_dim");
}

TEST_F(SpecFilesTest, TypoInHfConfigNamesThatFile) {
  std::string hf =
      write("hf/config.json", patched(kHfLlama, R"({"rms_norm_epsilon": 1e-5})"));
  std::string spec = write(
      "spec.json",
      R"({"model": {"hf_config": "hf/config.json"}, "train": {"seq_len": 16}})");
  EXPECT_FALSE(load(spec));
  EXPECT_EQ(error.rfind(hf + ": rms_norm_epsilon: unknown key; did you mean "
                             "'rms_norm_eps'?",
                        0),
            0u)
      << error;
}

TEST_F(SpecFilesTest, BadOverrideNamesTheSpec) {
  write("hf/config.json", kHfLlama);
  std::string spec = write(
      "spec.json", R"({"model": {"hf_config": "hf/config.json",
                       "num_hiden_layers": 1}, "train": {"seq_len": 16}})");
  EXPECT_FALSE(load(spec));
  EXPECT_EQ(error.rfind(spec + ": model.num_hiden_layers: unknown key; did "
                               "you mean 'num_hidden_layers'?",
                        0),
            0u)
      << error;
}

TEST_F(SpecFilesTest, HfConfigSyntaxErrorNamesThatFile) {
  std::string hf = write("hf/config.json", "{\n  \"vocab_size\": 256\n  \"x\"");
  std::string spec = write(
      "spec.json",
      R"({"model": {"hf_config": "hf/config.json"}, "train": {"seq_len": 16}})");
  EXPECT_FALSE(load(spec));
  // nlohmann stops at the end of the offending token ("x" ends in column 5).
  EXPECT_EQ(error.rfind(hf + ": line 3, column 5: JSON syntax error", 0), 0u)
      << error;
}

TEST_F(SpecFilesTest, MissingHfConfig) {
  std::string spec = write(
      "spec.json",
      R"({"model": {"hf_config": "hf/nope.json"}, "train": {"seq_len": 16}})");
  EXPECT_FALSE(load(spec));
  EXPECT_NE(error.find(dir + "/hf/nope.json: cannot open"), std::string::npos)
      << error;
  EXPECT_NE(error.find("model.hf_config in " + spec), std::string::npos)
      << error;
}

TEST_F(SpecFilesTest, ClusterTarget) {
  std::string cluster = write("cluster.json", R"({"gpus": 8})");
  std::string spec = write(
      "spec.json", patched(kLlamaBase, R"({"target": "cluster.json"})"));
  std::optional<Spec> s = load(spec);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->target.kind, "cluster");
  EXPECT_EQ(s->target.path, cluster);

  spec = write("spec2.json",
               patched(kLlamaBase, R"({"target": {"kind": "cluster",
                                     "path": "missing.json"}})"));
  EXPECT_FALSE(load(spec));
  EXPECT_NE(error.find(spec + ": target.path: 'missing.json' is not a file"),
            std::string::npos)
      << error;
}

TEST_F(SpecFilesTest, MissingFileAndDirectory) {
  EXPECT_FALSE(load(dir + "/absent.json"));
  EXPECT_EQ(error, dir + "/absent.json: cannot open (No such file or "
                         "directory); expected a JSON spec file");
  EXPECT_FALSE(load(dir));
  EXPECT_EQ(error, dir + ": is a directory; expected a JSON spec file");
}

} // namespace

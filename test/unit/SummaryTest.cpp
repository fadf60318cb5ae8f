//===- SummaryTest.cpp - parameter counts, FLOPs and memory --------------===//
//
// The expected numbers are computed by hand in the comments, tensor by tensor
// from the HF shapes listed in frontend/Summary.h, not by calling the code
// under test. DeepSeek-V3 is also checked against the published 671B total /
// 37B active.
//
//===----------------------------------------------------------------------===//

#include "frontend/Spec.h"
#include "frontend/Summary.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>

using namespace kiln::frontend;

namespace {

Spec load(const std::string &relative) {
  std::string error;
  std::optional<Spec> spec =
      loadSpec(std::string(KILN_SOURCE_DIR) + "/" + relative, error);
  EXPECT_TRUE(spec.has_value()) << error;
  return spec ? *spec : Spec();
}

void print(const std::string &name, const ModelSummary &s) {
  std::cout << name << ": total " << s.paramsTotal << ", active "
            << s.paramsActive << ", embedding " << s.paramsEmbedding
            << ", mtp " << s.paramsMtp << " (active " << s.paramsMtpActive
            << "), flops/token " << std::fixed << s.flopsPerToken
            << " + mtp " << s.flopsPerTokenMtp << std::defaultfloat
            << ", bytes w/g/opt/master " << s.weightBytes << "/" << s.gradBytes
            << "/" << s.optimizerBytes << "/" << s.masterWeightBytes << "\n";
}

// DeepSeek-V3: H 7168, V 129280, 128 heads, q_lora 1536, kv_lora 512,
// nope 128, rope 64, v 128, I 18432, moeI 2048, 256 experts (top 8), 1 shared,
// 61 layers of which 3 dense, 1 MTP module.
//   attention   q_a_proj 1536*7168 = 11,010,048   q_a_layernorm 1,536
//               q_b_proj 128*192*1536 = 37,748,736
//               kv_a_proj_with_mqa 576*7168 = 4,128,768   kv_a_layernorm 512
//               kv_b_proj 128*256*512 = 16,777,216
//               o_proj 7168*16384 = 117,440,512
//               sum 187,107,328 (matmuls 187,105,280), + 2 norms 14,336
//               = 187,121,664
//   dense MLP   3*7168*18432 = 396,361,728 -> dense layer 583,483,392
//   one expert  3*7168*2048 = 44,040,192; 256 of them 11,274,289,152
//   MoE block   experts + shared 44,040,192 + gate 256*7168 = 1,835,008
//               + bias 256 = 11,320,164,608 -> MoE layer 11,507,286,272
//   embeddings  2 * 129280*7168 = 1,853,358,080; final norm 7,168
//   total       3*583,483,392 + 58*11,507,286,272 + 1,853,358,080 + 7,168
//               = 671,026,419,200
//   active      MoE layer: 187,121,664 + 1,835,264 (router) + 9 experts
//               (8 routed + 1 shared) 396,361,728 = 585,318,656
//               3*583,483,392 + 58*585,318,656 + 1,853,358,080 + 7,168
//               = 37,552,297,472
//   MTP         enorm + hnorm 14,336 + eh_proj 7168*14336 = 102,760,448
//               + one MoE layer 11,507,286,272 + shared_head.norm 7,168
//               = 11,610,068,224 (active: 585,318,656 instead of the whole
//               layer = 688,100,608)
// DeepSeek reports 685B = 671B + 14B for MTP: its checkpoint stores the MTP
// module's own copies of embed_tokens and shared_head.head (1.85B), which
// Kiln shares with the main model: 11.61B + 1.85B = 13.46B, 684.49B in all.
//
// Forward FLOPs at seq_len 4096 (S_avg = 2048.5):
//   matmul MACs: MoE layer 187,105,280 + 1,835,008 + 9*44,040,192
//   = 585,302,016; dense layer 187,105,280 + 396,361,728 = 583,467,008;
//   lm_head 926,679,040; total 3*583,467,008 + 58*585,302,016 + 926,679,040
//   = 36,624,596,992 -> 73,249,193,984 FLOPs.
//   attention per layer 2 * 2048.5 * 128 * (192 + 128) = 167,813,120;
//   61 layers 10,236,600,320.  Sum 83,485,794,304.
//   MTP: 2 * (102,760,448 + 585,302,016 + 926,679,040) + 167,813,120
//   = 3,397,296,128.
TEST(SummaryTest, DeepSeekV3MatchesPublishedSizes) {
  Spec spec = load("models/deepseek-v3.json");
  ModelSummary s = summarize(spec);
  print("deepseek-v3", s);
  EXPECT_NEAR(double(s.paramsTotal), 671e9, 0.01 * 671e9);
  EXPECT_NEAR(double(s.paramsActive), 37e9, 0.02 * 37e9);
  EXPECT_EQ(s.paramsTotal, 671026419200);
  EXPECT_EQ(s.paramsActive, 37552297472);
  EXPECT_EQ(s.paramsEmbedding, 1853358080);
  EXPECT_EQ(s.paramsMtp, 11610068224);
  EXPECT_EQ(s.paramsMtpActive, 688100608);
  EXPECT_GT(s.paramsMtp, 11.5e9);
  EXPECT_LT(s.paramsMtp + s.paramsEmbedding, 14e9);
  EXPECT_DOUBLE_EQ(s.flopsPerToken, 83485794304.0);
  EXPECT_DOUBLE_EQ(s.flopsPerTokenMtp, 3397296128.0);
  // fp8: every main+MTP parameter has an fp32 master copy and 8 bytes of
  // Adam state (except the 59 router biases of 256 entries each).
  const int64_t params = s.paramsTotal + s.paramsMtp;
  const int64_t biases = 59 * 256;
  EXPECT_EQ(s.masterWeightBytes, 4 * (params - biases));
  EXPECT_EQ(s.optimizerBytes, 8 * (params - biases));
  EXPECT_EQ(s.gradBytes, 2 * (params - biases));
  // Weights: about 1 byte each (fp8 matmuls) plus bf16 embeddings.
  EXPECT_GT(s.weightBytes, params);
  EXPECT_LT(s.weightBytes, params + params / 50);

  std::string text = formatSummaryText(spec, s);
  std::cout << text;
  EXPECT_NE(text.find("params (total)    671.03B"), std::string::npos);
  EXPECT_NE(text.find("37.55B per token"), std::string::npos);
}

// r1-tiny: H 64, V 256, 4 heads, q_lora 32, kv_lora 16, nope 16, rope 8,
// v 16, I 128, moeI 32, 8 experts (top 2), 1 shared, 3 layers (1 dense),
// noaux_tc, 1 MTP module, untied.
//   attention   q_a_proj 32*64 = 2048, q_a_layernorm 32,
//               q_b_proj 4*24*32 = 3072, kv_a_proj_with_mqa 24*64 = 1536,
//               kv_a_layernorm 16, kv_b_proj 4*32*16 = 2048,
//               o_proj 64*64 = 4096 -> 12,848 (matmuls 12,800);
//               + input/post norms 128 -> 12,976
//   dense layer 12,976 + 3*64*128 = 24,576 -> 37,552
//   MoE block   8 experts * 3*64*32 = 8 * 6,144 = 49,152, shared 6,144,
//               gate 8*64 = 512, bias 8 -> 55,816; MoE layer 68,792
//   total       37,552 + 2*68,792 + embed 16,384 + lm_head 16,384 + norm 64
//               = 207,968
//   active      MoE layer 12,976 + 520 + 3*6,144 = 31,928;
//               37,552 + 2*31,928 + 32,768 + 64 = 134,240
//   MTP         enorm, hnorm 128 + eh_proj 64*128 = 8,192 + MoE layer 68,792
//               + shared_head.norm 64 = 77,176; active 128 + 8,192 + 31,928
//               + 64 = 40,312
//   FLOPs (seq 32, S_avg 16.5): MACs dense 12,800 + 24,576 = 37,376,
//               MoE 12,800 + 512 + 18,432 = 31,744, lm_head 16,384:
//               37,376 + 2*31,744 + 16,384 = 117,248 -> 234,496;
//               attention 2*16.5*4*(24+16) = 5,280 per layer, 3 layers
//               15,840 -> 250,336.  MTP: 2*(8,192 + 31,744 + 16,384) + 5,280
//               = 117,920.
//   fp32 bytes  weights 4*(207,968 + 77,176) = 1,140,576; the 3 router
//               biases (24 values) have no grad or Adam state: grads
//               4*285,120 = 1,140,480, Adam 8*285,120 = 2,280,960.
TEST(SummaryTest, R1TinyByHand) {
  Spec spec = load("models/r1-tiny.json");
  ModelSummary s = summarize(spec);
  print("r1-tiny", s);
  EXPECT_EQ(s.paramsTotal, 207968);
  EXPECT_EQ(s.paramsActive, 134240);
  EXPECT_EQ(s.paramsEmbedding, 32768);
  EXPECT_EQ(s.paramsMtp, 77176);
  EXPECT_EQ(s.paramsMtpActive, 40312);
  EXPECT_DOUBLE_EQ(s.flopsPerToken, 250336.0);
  EXPECT_DOUBLE_EQ(s.flopsPerTokenMtp, 117920.0);
  EXPECT_EQ(s.weightBytes, 1140576);
  EXPECT_EQ(s.gradBytes, 1140480);
  EXPECT_EQ(s.optimizerBytes, 2280960);
  EXPECT_EQ(s.masterWeightBytes, 0);
}

// dense-tiny (llama): H 64, V 256, 4 heads, 2 kv heads, head_dim 16, I 160,
// 2 layers, tied embeddings.
//   layer       q_proj 64*64 = 4,096, k_proj 32*64 = 2,048, v_proj 2,048,
//               o_proj 4,096 -> 12,288; MLP 3*64*160 = 30,720; norms 128
//               -> 43,136
//   total       2*43,136 + embed 16,384 (tied: once) + norm 64 = 102,720
//   active      all of it: 102,720
//   FLOPs       MACs 2*(12,288 + 30,720) + lm_head 16,384 = 102,400
//               -> 204,800; attention 2*16.5*4*(16+16) = 4,224 per layer,
//               8,448 -> 213,248
//   fp32 bytes  weights 4*102,720 = 410,880, grads 410,880, Adam 821,760
TEST(SummaryTest, DenseTinyByHand) {
  Spec spec = load("models/dense-tiny.json");
  ModelSummary s = summarize(spec);
  print("dense-tiny", s);
  EXPECT_EQ(s.paramsTotal, 102720);
  EXPECT_EQ(s.paramsActive, 102720);
  EXPECT_EQ(s.paramsEmbedding, 16384);
  EXPECT_EQ(s.paramsMtp, 0);
  EXPECT_EQ(s.paramsMtpActive, 0);
  EXPECT_DOUBLE_EQ(s.flopsPerToken, 213248.0);
  EXPECT_DOUBLE_EQ(s.flopsPerTokenMtp, 0.0);
  EXPECT_EQ(s.weightBytes, 410880);
  EXPECT_EQ(s.gradBytes, 410880);
  EXPECT_EQ(s.optimizerBytes, 821760);
  EXPECT_EQ(s.masterWeightBytes, 0);
}

// dense-tiny under the other precisions.
//   bf16: weights 2*102,720 = 205,440, grads 205,440, master 4*102,720
//         = 410,880, Adam 821,760.
//   fp8:  matmul weights at 1 byte: 2*(12,288 + 30,720) = 86,016, plus one
//         fp32 scale per 128x128 block: q, k, v, o one block each, gate/up
//         [160, 64] and down [64, 160] two each -> 10 per layer, 20 in all,
//         80 bytes; the tied embedding and the norms stay bf16:
//         2*(16,384 + 5*64) = 33,408 -> weights 119,504; grads bf16 205,440.
TEST(SummaryTest, DenseTinyPrecisions) {
  Spec spec = load("models/dense-tiny.json");
  spec.train.precision = "bf16";
  ModelSummary s = summarize(spec);
  EXPECT_EQ(s.weightBytes, 205440);
  EXPECT_EQ(s.gradBytes, 205440);
  EXPECT_EQ(s.masterWeightBytes, 410880);
  EXPECT_EQ(s.optimizerBytes, 821760);
  spec.train.precision = "fp8";
  s = summarize(spec);
  EXPECT_EQ(s.weightBytes, 119504);
  EXPECT_EQ(s.gradBytes, 205440);
  EXPECT_EQ(s.masterWeightBytes, 410880);
  EXPECT_EQ(s.optimizerBytes, 821760);
}

// train.optimizer.state_dtype "bf16" halves Adam's bytes (4 per parameter),
// in every precision; bytes per parameter and the per-precision table use the
// same inventory: dense-tiny (no router bias) is 16 bytes per parameter in
// fp32, bf16 and fp16 with f32 moments, 12 with bf16 ones.
TEST(SummaryTest, Bf16MomentsAndBytesPerParam) {
  Spec spec = load("models/dense-tiny.json");
  ModelSummary f32 = summarize(spec);
  EXPECT_DOUBLE_EQ(f32.bytesPerParam, 16.0);
  ASSERT_EQ(f32.byPrecision.size(), 4u);
  EXPECT_EQ(f32.byPrecision[0].precision, "fp32");
  EXPECT_EQ(f32.byPrecision[0].memoryPerRankBytes, f32.memoryPerRankBytes);
  EXPECT_DOUBLE_EQ(f32.byPrecision[1].bytesPerParam, 16.0); // bf16: 2 + 2 + 4 master + 8
  EXPECT_DOUBLE_EQ(f32.byPrecision[2].bytesPerParam, 16.0); // fp16
  EXPECT_LT(f32.byPrecision[3].bytesPerParam, 16.0);        // fp8's 1-byte matmul weights
  spec.train.stateDtype = "bf16";
  ModelSummary half = summarize(spec);
  EXPECT_EQ(half.optimizerBytes, 821760 / 2);
  EXPECT_DOUBLE_EQ(half.bytesPerParam, 12.0);
  EXPECT_EQ(half.memoryPerRankBytes, 1643520 - 4 * 102720);
  spec.train.precision = "bf16";
  ModelSummary bf16 = summarize(spec);
  EXPECT_DOUBLE_EQ(bf16.bytesPerParam, 12.0);
  EXPECT_EQ(bf16.byPrecision[1].memoryPerRankBytes, bf16.memoryPerRankBytes);
  nlohmann::json j = nlohmann::json::parse(formatSummaryJson(spec, bf16));
  EXPECT_EQ(j["state_dtype"], "bf16");
  EXPECT_DOUBLE_EQ(j["bytes_per_param"].get<double>(), 12.0);
  EXPECT_EQ(j["by_precision"]["bf16"]["memory_per_rank_bytes"], bf16.memoryPerRankBytes);
  EXPECT_EQ(j["by_precision"].size(), 4u);
}

TEST(SummaryTest, R1MiniIsTensOfMillions) {
  ModelSummary s = summarize(load("models/r1-mini.json"));
  print("r1-mini", s);
  EXPECT_GE(s.paramsTotal, 20000000);
  EXPECT_LE(s.paramsTotal, 60000000);
  EXPECT_LT(s.paramsActive, s.paramsTotal);
}

TEST(SummaryTest, JsonHasEveryKeyOnOneLine) {
  Spec spec = load("models/r1-tiny.json");
  ModelSummary s = summarize(spec);
  std::string text = formatSummaryJson(spec, s);
  std::cout << text << "\n";
  EXPECT_EQ(text.find('\n'), std::string::npos);
  nlohmann::json j = nlohmann::json::parse(text);
  for (const char *key :
       {"params_total", "params_active", "params_embedding", "params_mtp",
        "params_mtp_active", "flops_per_token", "flops_per_token_mtp",
        "weight_bytes", "grad_bytes", "optimizer_bytes", "master_weight_bytes",
        "model_type", "layers", "moe_layers", "seq_len", "world_size",
        "global_batch_tokens", "memory_per_rank_bytes"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["params_total"], 207968);
  EXPECT_EQ(j["model_type"], "deepseek_v3");
  EXPECT_EQ(j["layers"], 3);
  EXPECT_EQ(j["moe_layers"], 2);
  EXPECT_EQ(j["seq_len"], 32);
  EXPECT_DOUBLE_EQ(j["flops_per_token"].get<double>(), 250336.0);
}

// Per-rank model state of dense-tiny (fp32: 16 bytes per parameter, 8 of them
// weights + grads and 8 Adam; 102,720 parameters, all tensors of even size):
//   dp 1:            16 * 102,720 = 1,643,520
//   dp 2, zero 1:    8 * 102,720 + 8 * 102,720 / 2 = 1,232,640
//   pp 2:            stage 0 = layer 0 (43,136) + embed (16,384) = 59,520;
//                    stage 1 = layer 1 (43,136) + the tied embedding's second
//                    copy (16,384) + norm (64) = 59,584 -> 16 * 59,584
//                    = 953,344 (the larger stage)
TEST(SummaryTest, DenseTinyLayouts) {
  Spec spec = load("models/dense-tiny.json");
  ModelSummary one = summarize(spec);
  EXPECT_EQ(one.worldSize, 1);
  EXPECT_EQ(one.globalBatchRows, 4);
  EXPECT_DOUBLE_EQ(one.globalBatchTokens, 128.0);
  EXPECT_EQ(one.memoryPerRankBytes, 1643520);

  spec.parallel.dp = 2;
  spec.parallel.zero = 1;
  spec.parallel.microbatches = 3;
  ModelSummary zero = summarize(spec);
  EXPECT_EQ(zero.worldSize, 2);
  EXPECT_EQ(zero.globalBatchRows, 2 * 3 * 4);
  EXPECT_DOUBLE_EQ(zero.globalBatchTokens, 24.0 * 32);
  EXPECT_EQ(zero.memoryPerRankBytes, 1232640);

  spec.parallel = ParallelConfig();
  spec.parallel.pp = 2;
  ModelSummary pipe = summarize(spec);
  EXPECT_EQ(pipe.worldSize, 2);
  EXPECT_EQ(pipe.memoryPerRankBytes, 953344);

  std::string json = formatSummaryJson(spec, pipe);
  nlohmann::json j = nlohmann::json::parse(json);
  EXPECT_EQ(j["world_size"], 2);
  EXPECT_EQ(j["global_batch_tokens"], 128);
  EXPECT_EQ(j["memory_per_rank_bytes"], 953344);
}

// DeepSeek-V3's own layout (pp 16 x dp 128, ep 64, zero 1) puts the model
// state of its largest stage on one 80 GB GPU with room for activations.
TEST(SummaryTest, DeepSeekV3LayoutFitsAGpu) {
  Spec spec = load("models/deepseek-v3.json");
  ModelSummary s = summarize(spec);
  EXPECT_EQ(s.worldSize, 2048);
  EXPECT_EQ(s.globalBatchRows, 15360);
  EXPECT_DOUBLE_EQ(s.globalBatchTokens, 15360.0 * 4096);
  std::cout << "deepseek-v3 memory per rank: " << s.memoryPerRankBytes << "\n";
  EXPECT_GT(s.memoryPerRankBytes, int64_t(5e9));
  EXPECT_LT(s.memoryPerRankBytes, int64_t(40e9));
  spec.parallel.zero = 0;
  EXPECT_GT(summarize(spec).memoryPerRankBytes, s.memoryPerRankBytes);
}

TEST(SummaryTest, TextIsOneScreen) {
  Spec spec = load("models/dense-tiny.json");
  std::string text = formatSummaryText(spec, summarize(spec));
  std::cout << text;
  EXPECT_NE(text.find("params (total)    102.72K"), std::string::npos) << text;
  EXPECT_LE(std::count(text.begin(), text.end(), '\n'), 24);
}

} // namespace

//===- HostLaunchesTest.cpp - C++ emitted for kiln_kernel.launch ----------===//
//
// One small kernel-level function per case (buffers are the function's
// arguments %b0, %b1, ..., named b0, b1, ... in the C++), one launch each.
// Every kernel of the catalog must have a case. The emitted text of
// representative kernels is checked against the expected call; then every
// case's snippet (emitted twice, to catch clashing locals) is compiled with
// `c++ -fsyntax-only` against the real runtime/kernels headers. Error cases:
// a bf16 buffer where the kernel reads f32, FP8 values stored as bf16, a
// missing attribute, a bad attribute, decoding operands that do not fit.
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunches.h"

#include "dialects/kernel/KernelCatalog.h"
#include "dialects/kernel/KernelDialect.h"
#include "dialects/kiln/KilnDialect.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include "llvm/ADT/StringExtras.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace mlir;

namespace {

struct Case {
  std::string kernel;
  /// Types of the function arguments b0, b1, ...
  std::vector<std::string> types;
  /// Which arguments are the launch's ins and outs.
  std::vector<int> ins, outs;
  /// The params dictionary, braces included.
  std::string params;
  /// Substrings the emitted C++ must contain (and must not, with a leading '!').
  std::vector<std::string> expect;
};

const char *kYarn = "#kiln.yarn<factor = 40.0, original_max_position_embeddings = 4096, "
                    "beta_fast = 32.0, beta_slow = 1.0, mscale = 0.707, mscale_all_dim = 0.707>";

std::vector<Case> cases() {
  const std::string x3 = "memref<4x32x64xf32>", idx = "memref<128x2xi32>",
                    logits = "memref<128x8xf32>", w2 = "memref<128x2xf32>",
                    rows = "memref<256x64xf32>", src = "memref<256xi32>",
                    tok = "memref<128x64xf32>", off = "memref<9xi32>", f = "memref<f32>",
                    m = "memref<64x64xf32>";
  return {
      {"embedding",
       {"memref<256x64xf32>", "memref<4x32xi32>", x3},
       {0, 1},
       {2},
       "{}",
       {"kiln::kernels::embeddingForward(b2, b0, b1, 128, 256, 64);"}},
      {"embedding_grad",
       {x3, "memref<4x32xi32>", "memref<256x64xf32>"},
       {0, 1},
       {2},
       "{}",
       {"kiln::kernels::embeddingBackward(b2, b0, b1, 128, 256, 64);"}},
      {"linear",
       {x3, "memref<128x64xf32>", "memref<4x32x128xf32>"},
       {0, 1},
       {2},
       "{}",
       {"kiln::kernels::linearForward(b2, b0, b1, 128, 64, 128);"}},
      {"linear_dgrad",
       {"memref<4x32x128xf32>", "memref<128x64xf32>", x3},
       {0, 1},
       {2},
       "{}",
       {"kiln::kernels::linearDgrad(b2, b0, b1, 128, 64, 128);"}},
      {"linear_wgrad",
       {"memref<4x32x128xf32>", x3, "memref<128x64xf32>"},
       {0, 1},
       {2},
       "{}",
       {"kiln::kernels::linearWgrad(b2, b0, b1, 128, 64, 128);"}},
      {"rms_norm",
       {x3, "memref<64xf32>", x3},
       {0, 1},
       {2},
       "{epsilon = 1.0e-06 : f64}",
       {"kiln::kernels::rmsNormForward(b2, b0, b1, 128, 64, 1e-06f);"}},
      {"rms_norm_grad",
       {x3, x3, "memref<64xf32>", x3, "memref<64xf32>"},
       {0, 1, 2},
       {3, 4},
       "{epsilon = 1.0e-05 : f64}",
       {"kiln::kernels::rmsNormBackward(b3, b4, b0, b1, b2, 128, 64, 1e-05f);"}},
      {"broadcast",
       {"memref<4x32x1x8xf32>", "memref<4x32x16x8xf32>"},
       {0},
       {1},
       "{}",
       {"kiln::kernels::broadcast(b1, b0, {4, 32, 1, 8}, {4, 32, 16, 8});"}},
      {"unbroadcast",
       {"memref<4x32x16x8xf32>", "memref<4x32x1x8xf32>"},
       {0},
       {1},
       "{}",
       {"kiln::kernels::unbroadcast(b1, b0, {4, 32, 16, 8}, {4, 32, 1, 8});"}},
      {"rope",
       {"memref<4x32x4x8xf32>", "memref<4x32x4x8xf32>"},
       {0},
       {1},
       std::string("{theta = 10000.0 : f64, interleaved = true, yarn = ") + kYarn + "}",
       {"const kiln::kernels::YarnConfig yarn = {/*factor=*/40.0, "
        "/*originalMaxPositions=*/4096.0, /*betaFast=*/32.0, /*betaSlow=*/1.0, "
        "/*mscale=*/0.707, /*mscaleAllDim=*/0.707};",
        "kiln::kernels::ropeForward(b1, b0, 4, 32, 4, 8, 10000.0, true, &yarn, false);"}},
      {"rope",
       {"memref<2x16x4x32xf32>", "memref<2x16x4x32xf32>"},
       {0},
       {1},
       "{theta = 500000.0 : f64, interleaved = false, transpose = true}",
       {"kiln::kernels::ropeForward(b1, b0, 2, 16, 4, 32, 500000.0, false, nullptr, true);",
        "!YarnConfig"}},
      {"attention",
       {"memref<2x8x4x16xf32>", "memref<2x8x2x16xf32>", "memref<2x8x2x12xf32>",
        "memref<2x8x4x12xf32>"},
       {0, 1, 2},
       {3},
       "{scale = 0.25 : f64}",
       {"kiln::kernels::attentionForward(b3, b0, b1, b2, 2, 8, 4, 2, 16, 12, 0.25f, true);"}},
      {"attention_grad",
       {"memref<2x8x4x16xf32>", "memref<2x8x2x16xf32>", "memref<2x8x2x12xf32>",
        "memref<2x8x4x12xf32>", "memref<2x8x4x16xf32>", "memref<2x8x2x16xf32>",
        "memref<2x8x2x12xf32>"},
       {0, 1, 2, 3},
       {4, 5, 6},
       "{scale = 0.2041 : f64, causal = false}",
       {"kiln::kernels::attentionBackward(b4, b5, b6, b0, b1, b2, b3, 2, 8, 4, 2, 16, 12, "
        "0.2041f, false);"}},
      // Decoding (KilnDecodeOps.td): rope with `start`, the KV cache, MLA's
      // per-head matmuls.
      {"rope",
       {"memref<4x1x4x8xf32>", "memref<4xi32>", "memref<4x1x4x8xf32>"},
       {0, 1},
       {2},
       "{theta = 10000.0 : f64, interleaved = false}",
       {"kiln::kernels::ropeForwardAt(b2, b0, b1, 4, 1, 4, 8, 10000.0, false, nullptr, false);",
        "!YarnConfig"}},
      {"rope", // in place, with YaRN
       {"memref<2x3x4x8xf32>", "memref<2xi32>"},
       {0, 1},
       {0},
       std::string("{theta = 10000.0 : f64, interleaved = true, yarn = ") + kYarn + "}",
       {"const kiln::kernels::YarnConfig yarn = {/*factor=*/40.0, ",
        "kiln::kernels::ropeForwardAt(b0, b0, b1, 2, 3, 4, 8, 10000.0, true, &yarn, false);"}},
      {"cache_write", // in place: the decode program's update
       {"memref<4x64x16xf32>", "memref<4x1x16xf32>", "memref<4xi32>"},
       {0, 1, 2},
       {0},
       "{}",
       {"kiln::kernels::cacheWrite(b0, b0, b1, b2, 4, 64, 1, 16);"}},
      {"cache_write", // out of place, trailing dims [kv_heads, d]
       {"memref<2x32x2x8xf32>", "memref<2x5x2x8xf32>", "memref<2xi32>", "memref<2x32x2x8xf32>"},
       {0, 1, 2},
       {3},
       "{}",
       {"kiln::kernels::cacheWrite(b3, b0, b1, b2, 2, 32, 5, 16);"}},
      {"cached_attention",
       {"memref<4x1x4x24xf32>", "memref<4x64x1x24xf32>", "memref<4x64x1x16xf32>",
        "memref<4xi32>", "memref<4x1x4x16xf32>"},
       {0, 1, 2, 3},
       {4},
       "{scale = 0.2041 : f64}",
       {"kiln::kernels::cachedAttention(b4, b0, b1, b2, b3, 4, 1, 64, 4, 1, 24, 16, 0.2041f);"}},
      {"head_matmul",
       {"memref<4x1x4x16xf32>", "memref<4x16x32xf32>", "memref<4x1x4x32xf32>"},
       {0, 1},
       {2},
       "{transpose_weight = true}",
       {"kiln::kernels::headMatmul(b2, b0, b1, 4, 1, 4, 16, 32, true);"}},
      {"head_matmul", // transpose_weight defaults to false: weight [heads, n, k]
       {"memref<4x1x4x32xf32>", "memref<4x16x32xf32>", "memref<4x1x4x16xf32>"},
       {0, 1},
       {2},
       "{}",
       {"kiln::kernels::headMatmul(b2, b0, b1, 4, 1, 4, 32, 16, false);"}},
      {"router",
       {logits, "memref<8xf32>", idx, w2},
       {0, 1},
       {2, 3},
       "{scoring = \"sigmoid\", group_score = \"top2_sum\", n_group = 4 : i64, "
       "topk_group = 2 : i64, top_k = 2 : i64, norm_topk_prob = true, "
       "routed_scaling_factor = 2.5 : f64}",
       {"kiln::kernels::RouterConfig config;", "config.softmax = false;",
        "config.top2Sum = true;", "config.nGroup = 4;", "config.topkGroup = 2;",
        "config.topK = 2;", "config.normTopkProb = true;",
        "config.routedScalingFactor = 2.5f;",
        "if (!kiln::kernels::router(b0, b1, 128, 8, config, b2, b3, &error)) return false;"}},
      {"router_grad",
       {logits, idx, w2, logits},
       {0, 1, 2},
       {3},
       "{scoring = \"softmax\", norm_topk_prob = false, routed_scaling_factor = 1.0 : f64}",
       {"if (!kiln::kernels::routerGrad(b0, b1, b2, 128, 8, 2, true, false, 1.0f, b3, "
        "&error)) return false;"}},
      {"dispatch",
       {tok, idx, rows, off, src},
       {0, 1},
       {2, 3, 4},
       "{num_experts = 8 : i64}",
       {"if (!kiln::kernels::dispatch(b0, b1, 128, 64, 2, 8, b2, b3, b4, &error)) "
        "return false;"}},
      {"dispatch_grad",
       {rows, src, tok},
       {0, 1},
       {2},
       "{top_k = 2 : i64}",
       {"kiln::kernels::dispatchGrad(b0, b1, 128, 2, 64, b2, &error)"}},
      {"combine",
       {rows, w2, src, tok},
       {0, 1, 2},
       {3},
       "{}",
       {"kiln::kernels::combine(b0, b1, b2, 128, 2, 64, b3, &error)"}},
      {"combine_grad",
       {rows, w2, src, tok, rows, w2},
       {0, 1, 2, 3},
       {4, 5},
       "{}",
       {"kiln::kernels::combineGrad(b0, b1, b2, b3, 128, 2, 64, b4, b5, &error)"}},
      {"grouped_matmul",
       {rows, "memref<8x32x64xf32>", off, "memref<256x32xf32>"},
       {0, 1, 2},
       {3},
       "{}",
       {"kiln::kernels::groupedMatmul(b0, b1, b2, 256, 64, 8, 32, b3, &error)"}},
      {"grouped_matmul_dgrad",
       {"memref<256x32xf32>", "memref<8x32x64xf32>", off, rows},
       {0, 1, 2},
       {3},
       "{}",
       {"kiln::kernels::groupedMatmulDgrad(b0, b1, b2, 256, 32, 8, 64, b3, &error)"}},
      {"grouped_matmul_wgrad",
       {"memref<256x32xf32>", rows, off, "memref<8x32x64xf32>"},
       {0, 1, 2},
       {3},
       "{}",
       {"kiln::kernels::groupedMatmulWgrad(b0, b1, b2, 256, 32, 64, 8, b3, &error)"}},
      {"expert_load",
       {idx, "memref<8xf32>"},
       {0},
       {1},
       "{num_experts = 8 : i64}",
       {"kiln::kernels::expertLoad(b0, 256, 8, b1, &error)"}},
      {"expert_capacity",
       {idx, idx},
       {0},
       {1},
       "{num_experts = 8 : i64, group_tokens = 32 : i64, capacity = 10 : i64}",
       {"kiln::kernels::expertCapacity(b0, 128, 2, 8, 32, 10, b1, &error)"}},
      {"balance_loss",
       {logits, idx, f},
       {0, 1},
       {2},
       "{scoring = \"sigmoid\", num_sequences = 4 : i64}",
       {"kiln::kernels::balanceLoss(b0, b1, 128, 8, 2, 4, false, b2, &error)"}},
      {"balance_loss_grad",
       {logits, idx, f, logits},
       {0, 1, 2},
       {3},
       "{scoring = \"softmax\", num_sequences = 4 : i64}",
       {"kiln::kernels::balanceLossGrad(b0, b1, *b2, 128, 8, 2, 4, true, b3, &error)"}},
      {"cross_entropy",
       {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", f},
       {0, 1, 2},
       {3},
       "{}",
       {"*b3 = kiln::kernels::crossEntropyForward(b0, b1, b2, 128, 256, 0.0f);"}},
      {"cross_entropy_grad",
       {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", f,
        "memref<4x32x256xf32>"},
       {0, 1, 2, 3},
       {4},
       "{label_smoothing = 0.1 : f64}",
       {"kiln::kernels::crossEntropyBackward(b4, b0, b1, b2, 128, 256, 0.1f, *b3);"}},
      // GRPO: absent attributes are the kiln ops' ODS defaults.
      {"token_logprobs",
       {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>"},
       {0, 1},
       {2},
       "{temperature = 0.7 : f64}",
       {"kiln::kernels::tokenLogprobs(b2, b0, b1, 128, 256, 0.7f);"}},
      {"grpo_loss",
       {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", "memref<4xf32>",
        "memref<4x32xf32>", "memref<4x32xf32>", f},
       {0, 1, 2, 3, 4, 5},
       {6},
       "{}",
       {"*b6 = kiln::kernels::grpoLossForward(b0, b1, b2, b3, b4, b5, 4, 32, 256, 1.0f, 0.2f, "
        "0.2f, 0.0f, kiln::kernels::GrpoAggregation::TokenMean, 0);"}},
      {"grpo_loss_grad",
       {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", "memref<4xf32>",
        "memref<4x32xf32>", "memref<4x32xf32>", f, "memref<4x32x256xf32>"},
       {0, 1, 2, 3, 4, 5, 6},
       {7},
       "{temperature = 0.9 : f64, clip_low = 0.2 : f64, clip_high = 0.28 : f64, "
       "beta = 0.04 : f64, aggregation = \"seq-mean-token-sum-norm\", max_tokens = 512 : i64}",
       {"kiln::kernels::grpoLossBackward(b7, b0, b1, b2, b3, b4, b5, *b6, 4, 32, 256, 0.9f, "
        "0.2f, 0.28f, 0.04f, kiln::kernels::GrpoAggregation::SeqMeanTokenSumNorm, 512);"}},
      {"lr_schedule",
       {"memref<i64>", f},
       {0},
       {1},
       "{lr = 3.0e-03 : f64, min_lr = 3.0e-04 : f64, warmup_steps = 20 : i64, "
       "total_steps = 300 : i64}",
       {"if (!kiln::kernels::lrSchedule(*b0, 0.003f, 0.0003f, 20, 300, b1, &error)) "
        "return false;"}},
      {"sparsity_mask_2_4",
       {"memref<16x8xf32>", "memref<16x8xf32>", "memref<i64>", "memref<16x8xf32>"},
       {0, 1, 2},
       {3},
       "{start_step = 100 : i64, mask_every = 10 : i64}",
       {"if (!kiln::kernels::sparsityMaskUpdate24(b0, b1, *b2, 100, 10, 128, b3, &error)) "
        "return false;"}},
      {"global_norm",
       {m, "memref<64xf32>", "memref<2x3xf32>", f},
       {0, 1, 2},
       {3},
       "{}",
       {"const float *ptrs[] = {b0, b1, b2};", "const int64_t sizes[] = {4096, 64, 6};",
        "if (!kiln::kernels::globalNorm(ptrs, sizes, 3, b3, &error)) return false;"}},
      {"clip_scale",
       {f, f},
       {0},
       {1},
       "{max_norm = 1.0 : f64}",
       {"*b1 = kiln::kernels::clipScale(*b0, 1.0f);"}},
      {"adamw",
       {m, m, m, m, f, "memref<i64>", f},
       {0, 1, 2, 3, 4, 5, 6},
       {0, 2, 3},
       "{beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}",
       {"if (!kiln::kernels::adamw(b0, b1, b2, b3, 4096, *b4, *b5, *b6, 0.9f, 0.95f, 1e-08f, "
        "0.1f, &error)) return false;",
        "!copy("}},
      {"adamw", // not in place: the state is copied to the outs first
       {m, m, m, m, f, "memref<i64>", f, m, m, m},
       {0, 1, 2, 3, 4, 5, 6},
       {7, 8, 9},
       "{beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}",
       {"kiln::kernels::copy(b7, b0, 4096);", "kiln::kernels::copy(b8, b2, 4096);",
        "kiln::kernels::copy(b9, b3, 4096);",
        "kiln::kernels::adamw(b7, b1, b8, b9, 4096, *b4, *b5, *b6, 0.9f, 0.999f, 1e-08f, "
        "0.0f, &error)"}},
      {"bias_update",
       {"memref<8xf32>", "memref<8xf32>"},
       {0, 1},
       {0},
       "{speed = 1.0e-03 : f64}",
       {"if (!kiln::kernels::biasUpdate(b0, b1, 8, 0.001f, b0, &error)) return false;"}},
      {"bias_update", // skipped when the loss scaler's flag is set
       {"memref<8xf32>", "memref<8xf32>", "memref<i1>"},
       {0, 1, 2},
       {0},
       "{speed = 1.0e-03 : f64}",
       {"  if (!*b2)\n", "    if (!kiln::kernels::biasUpdate(b0, b1, 8, 0.001f, b0, &error)) "
                         "return false;"}},
      {"grad_scaler",
       {f, f, "memref<i64>", "memref<i64>", "memref<i1>", f},
       {0, 1, 2, 3},
       {4, 5, 1, 2, 3},
       "{growth_factor = 2.0 : f64, backoff_factor = 5.0e-01 : f64, growth_interval = 2000 : i64}",
       {"if (!kiln::kernels::gradScaler(*b0, *b1, *b2, *b3, 2.0f, 0.5f, 2000, b4, b5, b1, b2, b3, "
        "&error)) return false;"}},
      {"adamw", // bf16 moments (train.optimizer.state_dtype), in place
       {m, m, "memref<64x64xbf16>", "memref<64x64xbf16>", f, "memref<i64>", f},
       {0, 1, 2, 3, 4, 5, 6},
       {0, 2, 3},
       "{beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}",
       {"if (!kiln::kernels::adamw(b0, b1, b2, b3, 4096, *b4, *b5, *b6, 0.9f, 0.95f, 1e-08f, "
        "0.1f, &error)) return false;"}},
      {"adamw", // skippable (loss scaling)
       {m, m, m, m, f, "memref<i64>", f, "memref<i1>"},
       {0, 1, 2, 3, 4, 5, 6, 7},
       {0, 2, 3},
       "{beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}",
       {"if (!*b7) if (!kiln::kernels::adamw(b0, b1, b2, b3, 4096, *b4, *b5, *b6, 0.9f, 0.95f, "
        "1e-08f, 0.1f, &error)) return false;"}},
      {"adamw", // masked (2:4 sparsity)
       {m, m, m, m, f, "memref<i64>", f, m},
       {0, 1, 2, 3, 4, 5, 6, 7},
       {0, 2, 3},
       "{beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}",
       {"if (!kiln::kernels::maskedAdamw(b0, b1, b2, b3, b7, 4096, *b4, *b5, *b6, 0.9f, 0.95f, "
        "1e-08f, 0.1f, &error)) return false;"}},
      {"adamw", // masked and skippable
       {m, m, m, m, f, "memref<i64>", f, "memref<i1>", m},
       {0, 1, 2, 3, 4, 5, 6, 7, 8},
       {0, 2, 3},
       "{beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64}",
       {"if (!*b7) if (!kiln::kernels::maskedAdamw(b0, b1, b2, b3, b8, 4096, *b4, *b5, *b6, "
        "0.9f, 0.95f, 1e-08f, 0.1f, &error)) return false;"}},
      {"fill", {"memref<4x8xf32>"}, {}, {0}, "{value = -1.5 : f64}",
       {"kiln::kernels::fill(b0, 32, -1.5f);"}},
      {"fill", {"memref<4x8xi32>"}, {}, {0}, "{value = -100.0 : f64}",
       {"kiln::kernels::fill(b0, 32, -100);"}},
      {"fill", {"memref<16xf32>"}, {}, {0}, "{value = 0xFFF0000000000000 : f64}",
       {"kiln::kernels::fill(b0, 16, -std::numeric_limits<float>::infinity());"}},
      {"extract_slice",
       {"memref<4x33xi32>", "memref<4x32xi32>"},
       {0},
       {1},
       "{static_offsets = array<i64: 0, 1>, static_sizes = array<i64: 4, 32>, "
       "static_strides = array<i64: 1, 1>}",
       {"kiln::kernels::extractSlice(b1, b0, {4, 33}, {0, 1}, {4, 32}, {1, 1});"}},
      {"extract_slice", // rank-reducing, strided
       {"memref<4x8x6xf32>", "memref<4x3xf32>"},
       {0},
       {1},
       "{static_offsets = array<i64: 0, 2, 1>, static_sizes = array<i64: 4, 1, 3>, "
       "static_strides = array<i64: 1, 1, 2>}",
       {"kiln::kernels::extractSlice(b1, b0, {4, 8, 6}, {0, 2, 1}, {4, 1, 3}, {1, 1, 2});"}},
      {"insert_slice",
       {"memref<4x8xf32>", "memref<4x32xf32>", "memref<4x32xf32>"},
       {0, 1},
       {2},
       "{static_offsets = array<i64: 0, 8>, static_sizes = array<i64: 4, 8>, "
       "static_strides = array<i64: 1, 1>}",
       {"kiln::kernels::insertSlice(b2, b1, b0, {4, 32}, {0, 8}, {4, 8}, {1, 1});"}},
      {"concat",
       {"memref<4x3x8xf32>", "memref<4x5x8xf32>", "memref<4x8x8xf32>"},
       {0, 1},
       {2},
       "{dim = 1 : i64}",
       {"const float *parts[] = {b0, b1};", "const int64_t partDims[] = {3, 5};",
        "kiln::kernels::concat(b2, parts, partDims, 2, 4, 8);"}},
      {"concat",
       {"memref<4x31xi32>", "memref<4x1xi32>", "memref<4x32xi32>"},
       {0, 1},
       {2},
       "{dim = 1 : i64}",
       {"const int32_t *parts[] = {b0, b1};",
        "kiln::kernels::concat(b2, parts, partDims, 2, 4, 1);"}},
      // Data parallelism: the global token count and sequence count.
      {"cross_entropy",
       {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", "memref<f32>",
        "memref<f32>"},
       {0, 1, 2, 3},
       {4},
       "{label_smoothing = 0.0 : f64}",
       {"*b4 = kiln::kernels::crossEntropyForward(b0, b1, b2, 128, 256, 0.0f, b3);"}},
      {"cross_entropy_grad",
       {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", "memref<f32>",
        "memref<f32>", "memref<4x32x256xf32>"},
       {0, 1, 2, 3, 4},
       {5},
       "{label_smoothing = 0.0 : f64}",
       {"kiln::kernels::crossEntropyBackward(b5, b0, b1, b2, 128, 256, 0.0f, *b3, b4);"}},
      {"grpo_loss",
       {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", "memref<4xf32>",
        "memref<4x32xf32>", "memref<4x32xf32>", "memref<f32>", "memref<f32>"},
       {0, 1, 2, 3, 4, 5, 6},
       {7},
       "{aggregation = \"seq-mean-token-mean\", beta = 0.04 : f64}",
       {"*b7 = kiln::kernels::grpoLossForward(b0, b1, b2, b3, b4, b5, 4, 32, 256, 1.0f, 0.2f, "
        "0.2f, 0.04f, kiln::kernels::GrpoAggregation::SeqMeanTokenMean, 0, b6);"}},
      {"grpo_loss_grad",
       {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", "memref<4xf32>",
        "memref<4x32xf32>", "memref<4x32xf32>", "memref<f32>", "memref<f32>",
        "memref<4x32x256xf32>"},
       {0, 1, 2, 3, 4, 5, 6, 7},
       {8},
       "{}",
       {"kiln::kernels::grpoLossBackward(b8, b0, b1, b2, b3, b4, b5, *b6, 4, 32, 256, 1.0f, "
        "0.2f, 0.2f, 0.0f, kiln::kernels::GrpoAggregation::TokenMean, 0, b7);"}},
      {"balance_loss",
       {"memref<128x8xf32>", "memref<128x2xi32>", "memref<f32>"},
       {0, 1},
       {2},
       "{scoring = \"sigmoid\", num_sequences = 4 : i64, total_sequences = 16 : i64}",
       {"if (!kiln::kernels::balanceLoss(b0, b1, 128, 8, 2, 4, false, b2, &error, 16)) "
        "return false;"}},
      // Collectives: calls into runtime/driver/StepComm.h on the group of
      // their axes, `dim` as [outer][inner].
      {"all_reduce",
       {"memref<64x64xf32>", "memref<64x64xf32>"},
       {0},
       {1},
       "{kind = \"sum\", axes = [\"dp\"]}",
       {"if (!kiln::driver::allReduce(io.comm, \"dp\", b0, b1, 4096, false, &error)) return "
        "false;"}},
      {"all_reduce",
       {"memref<f32>", "memref<f32>"},
       {0},
       {1},
       "{kind = \"max\", axes = [\"pp\", \"dp\"]}",
       {"kiln::driver::allReduce(io.comm, \"pp+dp\", b0, b1, 1, true, &error)"}},
      {"all_gather",
       {"memref<4x2x3xf32>", "memref<4x8x3xf32>"},
       {0},
       {1},
       "{axes = [\"dp\"], dim = 1 : i64}",
       {"kiln::driver::allGather(io.comm, \"dp\", b0, b1, 4, 6, &error)"}},
      {"all_gather",
       {"memref<69xi8>", "memref<138xi8>"},
       {0},
       {1},
       "{axes = [\"dp\"], dim = 0 : i64}",
       {"kiln::driver::allGather(io.comm, \"dp\", b0, b1, 1, 69, &error)"}},
      {"topk_compress",
       {"memref<16x16xf32>", "memref<16x16xf32>", "memref<69xi8>", "memref<16x16xf32>"},
       {0, 1},
       {2, 3},
       "{k = 13 : i64, quantize = \"int8\"}",
       {"kiln::kernels::topkCompress(b0, b1, 256, 13, true, b2, b3, &error)"}},
      {"topk_decompress",
       {"memref<138xi8>", "memref<16x16xf32>"},
       {0},
       {1},
       "{k = 13 : i64, quantize = \"int8\"}",
       {"kiln::kernels::topkDecompress(b0, 2, 256, 13, true, b1, &error)"}},
      {"reduce_scatter",
       {"memref<16384xf32>", "memref<8192xf32>"},
       {0},
       {1},
       "{kind = \"sum\", axes = [\"dp\"], dim = 0 : i64}",
       {"kiln::driver::reduceScatter(io.comm, \"dp\", b0, b1, 1, 8192, &error)"}},
      {"local_shard",
       {"memref<8x6xf32>", "memref<8x3xf32>"},
       {0},
       {1},
       "{axes = [\"dp\"], dim = 1 : i64}",
       {"kiln::driver::localShard(io.comm, \"dp\", b0, b1, 8, 3, &error)"}},
      {"all_to_all",
       {"memref<24x4x8xf32>", "memref<4xi64>", "memref<40x4x8xf32>", "memref<4xi64>"},
       {0, 1},
       {2, 3},
       "{axes = [\"ep\"]}",
       {"if (!kiln::driver::allToAll(io.comm, \"ep\", b0, b1, b2, b3, 24, 40, 32, &error)) "
        "return false;"}},
      {"all_to_all",
       {"memref<2x4xi64>", "memref<2xi64>", "memref<2x4xi64>", "memref<2xi64>"},
       {0, 1},
       {2, 3},
       "{axes = [\"ep\"]}",
       {"if (!kiln::driver::allToAll(io.comm, \"ep\", b0, b1, b2, b3, 2, 2, 4, &error)) "
        "return false;"}},
      {"expert_counts",
       {"memref<9xi32>", "memref<2x4xi64>", "memref<2xi64>"},
       {0},
       {1, 2},
       "{groups = 2 : i64}",
       {"if (!kiln::kernels::expertCounts(b0, 8, 2, b1, b2, &error)) return false;"}},
      {"segment_transpose",
       {"memref<40x5xf32>", "memref<3x4xi64>", "memref<40x5xf32>", "memref<4xi32>"},
       {0, 1},
       {2, 3},
       "{inverse = true}",
       {"if (!kiln::kernels::segmentTranspose(b0, b1, 3, 4, 40, 5, true, b2, b3, &error)) "
        "return false;"}},
      {"send",
       {"memref<4x32x64xf32>"},
       {0},
       {},
       "{axis = \"pp\", peer = 1 : i64}",
       {"if (!kiln::driver::send(io.comm, \"pp\", 1, b0, 8192, &error)) return false;"}},
      {"recv",
       {"memref<4x32x64xf32>"},
       {},
       {0},
       "{axis = \"pp\", peer = 0 : i64}",
       {"if (!kiln::driver::recv(io.comm, \"pp\", 0, b0, 8192, &error)) return false;"}},
      {"send_start",
       {"memref<4x32x64xf32>"},
       {0},
       {},
       "{axis = \"pp\", peer = 1 : i64, ticket = 3 : i64}",
       {"if (!kiln::driver::sendStart(io.comm, \"pp\", 1, b0, 8192, 3, &error)) return false;"}},
      {"recv_start",
       {"memref<4x32x64xf32>"},
       {},
       {0},
       "{axis = \"pp\", peer = 0 : i64, ticket = 4 : i64}",
       {"if (!kiln::driver::recvStart(io.comm, \"pp\", 0, b0, 8192, 4, &error)) return false;"}},
      {"p2p_wait",
       {"memref<4x32x64xf32>"},
       {0},
       {},
       "{ticket = 4 : i64}",
       {"if (!kiln::driver::p2pWait(io.comm, 4, b0, &error)) return false;"}},
      {"linear",
       {"memref<4x32x64xbf16>", "memref<128x64xbf16>", "memref<4x32x128xbf16>"},
       {0, 1},
       {2},
       "{}",
       {"kiln::kernels::linearForward(b2, b0, b1, 128, 64, 128);"}},
      {"grouped_matmul_wgrad",
       {"memref<256x32xf16>", "memref<256x64xf16>", "memref<9xi32>", "memref<8x32x64xf16>"},
       {0, 1, 2},
       {3},
       "{}",
       {"kiln::kernels::groupedMatmulWgrad(b0, b1, b2, 256, 32, 64, 8, b3, &error)"}},
      {"quantize_fp8",
       {"memref<4x300xf32>", "memref<4x300xf8E4M3FN>", "memref<4x3xf32>"},
       {0},
       {1, 2},
       "{block = array<i64: 1, 128>}",
       {"kiln::kernels::quantizeFp8(b1, b2, b0, kiln::kernels::Fp8Tiles{4, 300, 1, 128});"}},
      {"quantize_fp8",
       {"memref<2x128x256xbf16>", "memref<2x128x256xf8E4M3FN>", "memref<2x2xf32>"},
       {0},
       {1, 2},
       "{block = array<i64: 128, 128>}",
       {"kiln::kernels::quantizeFp8(b1, b2, b0, kiln::kernels::Fp8Tiles{256, 256, 128, 128});"}},
      {"dequantize_fp8",
       {"memref<4x300xf8E4M3FN>", "memref<4x3xf32>", "memref<4x300xbf16>"},
       {0, 1},
       {2},
       "{block = array<i64: 1, 128>}",
       {"kiln::kernels::dequantizeFp8(b2, b0, b1, kiln::kernels::Fp8Tiles{4, 300, 1, 128});"}},
      {"scaled_matmul",
       {"memref<256x200xf8E4M3FN>", "memref<256x2xf32>", "memref<300x200xf8E4M3FN>",
        "memref<3x2xf32>", "memref<256x300xbf16>"},
       {0, 1, 2, 3},
       {4},
       "{lhs_block = array<i64: 1, 128>, rhs_block = array<i64: 128, 128>, transpose_rhs = true}",
       {"kiln::kernels::scaledMatmul(b4, kiln::kernels::ScaledOperand{b0, b1, "
        "kiln::kernels::Fp8Tiles{256, 200, 1, 128}, false}, kiln::kernels::ScaledOperand{b2, b3, "
        "kiln::kernels::Fp8Tiles{300, 200, 128, 128}, false}, 256, 300, 200);"}},
      {"scaled_matmul",
       {"memref<256x300xf8E4M3FN>", "memref<2x300xf32>", "memref<256x200xf8E4M3FN>",
        "memref<2x200xf32>", "memref<300x200xf32>"},
       {0, 1, 2, 3},
       {4},
       "{lhs_block = array<i64: 128, 1>, rhs_block = array<i64: 128, 1>, transpose_lhs = true}",
       {"kiln::kernels::scaledMatmul(b4, kiln::kernels::ScaledOperand{b0, b1, "
        "kiln::kernels::Fp8Tiles{256, 300, 128, 1}, true}, kiln::kernels::ScaledOperand{b2, b3, "
        "kiln::kernels::Fp8Tiles{256, 200, 128, 1}, true}, 300, 200, 256);"}},
      // The expert forms: per-expert weight blocks, grouped 128x1 tiles
      // (300 / 128 + 8 = 10 scale rows), and the grouped GEMMs.
      {"quantize_fp8",
       {"memref<8x136x200xbf16>", "memref<8x136x200xf8E4M3FN>", "memref<8x2x2xf32>"},
       {0},
       {1, 2},
       "{block = array<i64: 1, 128, 128>}",
       {"kiln::kernels::quantizeFp8(b1, b2, b0, kiln::kernels::Fp8Tiles{1088, 200, 128, 128, "
        "8});"}},
      {"quantize_fp8_grouped",
       {"memref<300x64xf32>", "memref<9xi32>", "memref<300x64xf8E4M3FN>", "memref<10x64xf32>"},
       {0, 1},
       {2, 3},
       "{block = array<i64: 128, 1>}",
       {"if (!kiln::kernels::quantizeFp8Grouped(b2, b3, b0, b1, 300, 64, 8, 128, 1, &error)) "
        "return false;"}},
      {"scaled_grouped_matmul",
       {"memref<300x200xf8E4M3FN>", "memref<300x2xf32>", "memref<8x136x200xf8E4M3FN>",
        "memref<8x2x2xf32>", "memref<9xi32>", "memref<300x136xf32>"},
       {0, 1, 2, 3, 4},
       {5},
       "{transpose_rhs = true}",
       {"if (!kiln::kernels::scaledGroupedMatmul(b5, b0, b1, b2, b3, b4, 300, 200, 8, 136, 200, "
        "true, &error)) return false;"}},
      {"scaled_grouped_matmul",
       {"memref<300x136xf8E4M3FN>", "memref<300x2xf32>", "memref<8x136x200xf8E4M3FN>",
        "memref<8x2x2xf32>", "memref<9xi32>", "memref<300x200xbf16>"},
       {0, 1, 2, 3, 4},
       {5},
       "{}",
       {"if (!kiln::kernels::scaledGroupedMatmul(b5, b0, b1, b2, b3, b4, 300, 136, 8, 136, 200, "
        "false, &error)) return false;"}},
      {"scaled_grouped_matmul_wgrad",
       {"memref<300x136xf8E4M3FN>", "memref<10x136xf32>", "memref<300x200xf8E4M3FN>",
        "memref<10x200xf32>", "memref<9xi32>", "memref<8x136x200xf32>"},
       {0, 1, 2, 3, 4},
       {5},
       "{}",
       {"if (!kiln::kernels::scaledGroupedMatmulWgrad(b5, b0, b1, b2, b3, b4, 300, 136, 200, 8, "
        "&error)) return false;"}},
  };
}

class HostLaunchesTest : public ::testing::Test {
protected:
  HostLaunchesTest() {
    context.loadDialect<kiln::kernel::KernelDialect, func::FuncDialect, arith::ArithDialect,
                        math::MathDialect, memref::MemRefDialect, kiln::KilnDialect>();
  }

  /// `func.func @f(%b0: T0, ...) { kiln_kernel.launch ...; return }`.
  static std::string moduleText(const Case &c) {
    std::string args, ins, inTypes, outs, outTypes;
    for (size_t i = 0; i < c.types.size(); ++i)
      args += (i ? ", %b" : "%b") + std::to_string(i) + ": " + c.types[i];
    for (size_t i = 0; i < c.ins.size(); ++i) {
      ins += (i ? ", %b" : "%b") + std::to_string(c.ins[i]);
      inTypes += (i ? ", " : "") + c.types[c.ins[i]];
    }
    for (size_t i = 0; i < c.outs.size(); ++i) {
      outs += (i ? ", %b" : "%b") + std::to_string(c.outs[i]);
      outTypes += (i ? ", " : "") + c.types[c.outs[i]];
    }
    return "func.func @f(" + args + ") {\n  kiln_kernel.launch \"" + c.kernel + "\"(" +
           (ins.empty() ? "" : ins + " : " + inTypes) + ") -> (" +
           (outs.empty() ? "" : outs + " : " + outTypes) + ") " + c.params +
           "\n  return\n}\n";
  }

  /// Parses the case and emits its launch; `diagnostics` collects errors.
  LogicalResult emit(const Case &c, std::string &text, std::string &diagnostics) {
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
      diagnostics += d.str() + "\n";
      return success();
    });
    std::string source = moduleText(c);
    module = parseSourceString<ModuleOp>(source, &context);
    if (!module) {
      ADD_FAILURE() << "cannot parse:\n" << source << diagnostics;
      return failure();
    }
    kiln::kernel::LaunchOp launch;
    module->walk([&](kiln::kernel::LaunchOp op) { launch = op; });
    kiln::codegen::LaunchArgs args;
    for (Value v : launch.getIns())
      args.ins.push_back("b" + std::to_string(cast<BlockArgument>(v).getArgNumber()));
    for (Value v : launch.getOuts())
      args.outs.push_back("b" + std::to_string(cast<BlockArgument>(v).getArgNumber()));
    llvm::raw_string_ostream os(text);
    return kiln::codegen::emitHostLaunch(launch, args, "  ", os);
  }

  /// The C++ pointer type of a memref's element.
  static std::string cppElement(const std::string &memref) {
    if (memref.find("bf16>") != std::string::npos)
      return "kiln::kernels::Bf16";
    if (memref.find("xf16>") != std::string::npos)
      return "kiln::kernels::F16";
    if (memref.find("f8E4M3FN>") != std::string::npos)
      return "kiln::kernels::E4m3";
    if (memref.find("f32>") != std::string::npos)
      return "float";
    if (memref.find("i32>") != std::string::npos)
      return "int32_t";
    if (memref.find("xi8>") != std::string::npos)
      return "int8_t";
    if (memref.find("i1>") != std::string::npos)
      return "bool";
    return "int64_t";
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
};

TEST_F(HostLaunchesTest, EveryCatalogKernelHasACase) {
  std::set<std::string> covered;
  for (const Case &c : cases())
    covered.insert(c.kernel);
  for (const kiln::kernel::KernelInfo &k : kiln::kernel::kernelCatalog())
    EXPECT_TRUE(covered.count(k.name.str())) << "no test case for kernel '" << k.name.str()
                                             << "'";
}

TEST_F(HostLaunchesTest, EmitsExpectedCalls) {
  for (const Case &c : cases()) {
    std::string text, diagnostics;
    ASSERT_TRUE(succeeded(emit(c, text, diagnostics)))
        << c.kernel << ": " << diagnostics << "\n" << moduleText(c);
    for (const std::string &e : c.expect) {
      if (e[0] == '!')
        EXPECT_EQ(text.find(e.substr(1)), std::string::npos)
            << c.kernel << " emitted '" << e.substr(1) << "':\n" << text;
      else
        EXPECT_NE(text.find(e), std::string::npos)
            << c.kernel << " lacks '" << e << "':\n" << text;
    }
    // Every line starts with the indent.
    for (llvm::StringRef line : llvm::split(llvm::StringRef(text).rtrim('\n'), '\n'))
      EXPECT_TRUE(line.starts_with("  ")) << c.kernel << ": '" << line.str() << "'";
  }
}

TEST_F(HostLaunchesTest, EmittedCodeCompiles) {
  std::string file = ::testing::TempDir() + "/kiln_host_launches_check.cpp";
  std::ofstream out(file);
  out << "#include \"runtime/kernels/Attention.h\"\n"
         "#include \"runtime/kernels/Copy.h\"\n"
         "#include \"runtime/kernels/Decode.h\"\n"
         "#include \"runtime/kernels/Dense.h\"\n"
         "#include \"runtime/kernels/ExpertParallel.h\"\n"
         "#include \"runtime/kernels/GradCompress.h\"\n"
         "#include \"runtime/kernels/Grpo.h\"\n"
         "#include \"runtime/kernels/Loss.h\"\n"
         "#include \"runtime/kernels/MoE.h\"\n"
         "#include \"runtime/kernels/NarrowGemm.h\"\n"
         "#include \"runtime/kernels/Optimizer.h\"\n"
         "#include \"runtime/kernels/Precision.h\"\n"
         "#include \"runtime/kernels/Sparsity24.h\"\n"
         "#include \"runtime/driver/StepComm.h\"\n"
         "#include \"runtime/driver/TrainStep.h\"\n"
         "#include <cstdint>\n#include <string>\n\n";
  int n = 0;
  for (const Case &c : cases()) {
    std::string text, diagnostics;
    ASSERT_TRUE(succeeded(emit(c, text, diagnostics))) << c.kernel << ": " << diagnostics;
    out << "// " << c.kernel << "\nbool case" << n++
        << "(const kiln::driver::StepBuffers &io, std::string &error) {\n";
    // Buffers that are only read are const: the code must not write them.
    for (size_t i = 0; i < c.types.size(); ++i) {
      bool written = std::find(c.outs.begin(), c.outs.end(), int(i)) != c.outs.end();
      out << "  " << (written ? "" : "const ") << cppElement(c.types[i]) << " *b" << i
          << " = nullptr;\n";
    }
    // Twice: two launches of one kernel in one function must not clash.
    out << text << text << "  (void)io;\n  (void)error;\n  return true;\n}\n\n";
  }
  out.close();
  std::string log = file + ".log";
  std::string command = "c++ -std=c++17 -fsyntax-only -Wall -Wextra -Werror -I" +
                        std::string(KILN_SOURCE_DIR) + " " + file + " > " + log + " 2>&1";
  int status = std::system(command.c_str());
  std::ifstream in(log);
  std::stringstream messages;
  messages << in.rdbuf();
  EXPECT_EQ(status, 0) << command << "\n" << messages.str();
}

TEST_F(HostLaunchesTest, RejectsOtherElementTypes) {
  Case c{"linear",
         {"memref<128x64xbf16>", "memref<32x64xf32>", "memref<128x32xf32>"},
         {0, 1},
         {2},
         "{}",
         {}};
  std::string text, diagnostics;
  EXPECT_TRUE(failed(emit(c, text, diagnostics)));
  EXPECT_EQ(text, "");
  EXPECT_NE(diagnostics.find("bf16"), std::string::npos) << diagnostics;
  EXPECT_NE(diagnostics.find("host target"), std::string::npos) << diagnostics;

  Case fp8{"quantize_fp8",
           {"memref<4x256xf32>", "memref<4x256xbf16>", "memref<4x2xf32>"},
           {0},
           {1, 2},
           "{block = array<i64: 1, 128>}",
           {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(fp8, text, diagnostics)));
  EXPECT_NE(diagnostics.find("expects f8E4M3FN"), std::string::npos) << diagnostics;

  Case ids{"embedding",
           {"memref<256x64xf32>", "memref<4x32xi64>", "memref<4x32x64xf32>"},
           {0, 1},
           {2},
           "{}",
           {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(ids, text, diagnostics)));
  EXPECT_NE(diagnostics.find("i32"), std::string::npos) << diagnostics;

  Case step{"lr_schedule", {"memref<i32>", "memref<f32>"}, {0}, {1},
            "{lr = 1.0 : f64, min_lr = 0.1 : f64, warmup_steps = 1 : i64, "
            "total_steps = 2 : i64}",
            {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(step, text, diagnostics)));
  EXPECT_NE(diagnostics.find("i64"), std::string::npos) << diagnostics;

  // AdamW moments: all f32 or all bf16, bf16 ones in place.
  const std::string p = "memref<64xf32>", m16 = "memref<64xf16>", b16 = "memref<64xbf16>";
  const std::string adamParams =
      "{beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}";
  Case f16Moments{"adamw", {p, p, m16, m16, "memref<f32>", "memref<i64>", "memref<f32>"},
                  {0, 1, 2, 3, 4, 5, 6}, {0, 2, 3}, adamParams, {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(f16Moments, text, diagnostics)));
  EXPECT_NE(diagnostics.find("must all be f32 or all bf16"), std::string::npos) << diagnostics;
  Case copiedBf16{"adamw",
                  {p, p, b16, b16, "memref<f32>", "memref<i64>", "memref<f32>", p, b16, b16},
                  {0, 1, 2, 3, 4, 5, 6}, {7, 8, 9}, adamParams, {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(copiedBf16, text, diagnostics)));
  EXPECT_NE(diagnostics.find("bf16 moments must be updated in place"), std::string::npos)
      << diagnostics;
}

TEST_F(HostLaunchesTest, RejectsBadDecodeOperands) {
  // rope's `start` holds i32 positions, one per row of the batch.
  Case rope{"rope",
            {"memref<4x1x4x8xf32>", "memref<4xi64>", "memref<4x1x4x8xf32>"},
            {0, 1},
            {2},
            "{theta = 10000.0 : f64, interleaved = false}",
            {}};
  std::string text, diagnostics;
  EXPECT_TRUE(failed(emit(rope, text, diagnostics)));
  EXPECT_EQ(text, "");
  EXPECT_NE(diagnostics.find("in #1 has element type 'i64'"), std::string::npos) << diagnostics;
  rope.types[1] = "memref<3xi32>";
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(rope, text, diagnostics)));
  EXPECT_NE(diagnostics.find("start's size and x's batch to agree, got 3 and 4"),
            std::string::npos)
      << diagnostics;

  Case write{"cache_write",
             {"memref<4x64x16xf32>", "memref<4x1x8xf32>", "memref<4xi32>"},
             {0, 1, 2},
             {0},
             "{}",
             {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(write, text, diagnostics)));
  EXPECT_NE(diagnostics.find("row widths to agree, got 8 and 16"), std::string::npos)
      << diagnostics;

  Case attention{"cached_attention",
                 {"memref<4x1x4x24xf32>", "memref<4x64x1x24xf32>", "memref<4x64x1x16xf32>",
                  "memref<4xi32>", "memref<4x1x4x16xf32>"},
                 {0, 1, 2, 3},
                 {4},
                 "{}",
                 {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(attention, text, diagnostics)));
  EXPECT_NE(diagnostics.find("'scale'"), std::string::npos) << diagnostics;

  Case matmul{"head_matmul",
              {"memref<4x1x4x16xf32>", "memref<4x16x32xf32>", "memref<4x1x4x32xf32>"},
              {0, 1},
              {2},
              "{transpose_weight = 1 : i64}",
              {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(matmul, text, diagnostics)));
  EXPECT_NE(diagnostics.find("bool attribute"), std::string::npos) << diagnostics;
  matmul.params = "{}"; // weight [heads, n, k] = [4, 16, 32], but x's k is 16
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(matmul, text, diagnostics)));
  EXPECT_NE(diagnostics.find("inner sizes to agree, got 32 and 16"), std::string::npos)
      << diagnostics;
}

TEST_F(HostLaunchesTest, RejectsMissingOrBadAttributes) {
  Case c{"rms_norm",
         {"memref<4x64xf32>", "memref<64xf32>", "memref<4x64xf32>"},
         {0, 1},
         {2},
         "{}",
         {}};
  std::string text, diagnostics;
  EXPECT_TRUE(failed(emit(c, text, diagnostics)));
  EXPECT_EQ(text, "");
  EXPECT_NE(diagnostics.find("'epsilon'"), std::string::npos) << diagnostics;

  c.params = "{epsilon = 1 : i64}";
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(c, text, diagnostics)));
  EXPECT_NE(diagnostics.find("float attribute"), std::string::npos) << diagnostics;

  Case router{"router_grad",
              {"memref<128x8xf32>", "memref<128x2xi32>", "memref<128x2xf32>",
               "memref<128x8xf32>"},
              {0, 1, 2},
              {3},
              "{scoring = \"relu\", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64}",
              {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(router, text, diagnostics)));
  EXPECT_NE(diagnostics.find("relu"), std::string::npos) << diagnostics;

  Case grpo{"grpo_loss",
            {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", "memref<4xf32>",
             "memref<4x32xf32>", "memref<4x32xf32>", "memref<f32>"},
            {0, 1, 2, 3, 4, 5},
            {6},
            "{aggregation = \"seq-mean\"}",
            {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(grpo, text, diagnostics)));
  EXPECT_EQ(text, "");
  EXPECT_NE(diagnostics.find("got \"seq-mean\""), std::string::npos) << diagnostics;
  grpo.params = "{max_tokens = 1.0 : f64}";
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(grpo, text, diagnostics)));
  EXPECT_NE(diagnostics.find("'max_tokens' to be an integer attribute"), std::string::npos)
      << diagnostics;
  grpo.params = "{}";
  grpo.types[3] = "memref<8xf32>"; // one advantage per row
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(grpo, text, diagnostics)));
  EXPECT_NE(diagnostics.find("advantages' size and rows to agree, got 8 and 4"),
            std::string::npos)
      << diagnostics;

  Case slice{"extract_slice",
             {"memref<4x33xf32>", "memref<4x32xf32>"},
             {0},
             {1},
             "{static_offsets = array<i64: 0, 1>, static_sizes = array<i64: 4, 32>}",
             {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(slice, text, diagnostics)));
  EXPECT_NE(diagnostics.find("'static_strides'"), std::string::npos) << diagnostics;

  // FP8 expert forms whose scales do not fit their tilings.
  Case batched{"quantize_fp8",
               {"memref<8x136x200xf32>", "memref<8x136x200xf8E4M3FN>", "memref<2x2xf32>"},
               {0},
               {1, 2},
               "{block = array<i64: 1, 128, 128>}",
               {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(batched, text, diagnostics)));
  EXPECT_NE(diagnostics.find("expects 16 x 2 scales for block"), std::string::npos)
      << diagnostics;
  Case weights{"scaled_grouped_matmul",
               {"memref<300x200xf8E4M3FN>", "memref<300x2xf32>", "memref<8x136x200xf8E4M3FN>",
                "memref<2x2xf32>", "memref<9xi32>", "memref<300x136xf32>"},
               {0, 1, 2, 3, 4},
               {5},
               "{transpose_rhs = true}",
               {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(weights, text, diagnostics)));
  EXPECT_NE(diagnostics.find("rhs_scales' count and rhs's per-expert [128, 128] blocks"),
            std::string::npos)
      << diagnostics;
  Case grouped{"scaled_grouped_matmul_wgrad",
               {"memref<300x136xf8E4M3FN>", "memref<3x136xf32>", "memref<300x200xf8E4M3FN>",
                "memref<10x200xf32>", "memref<9xi32>", "memref<8x136x200xf32>"},
               {0, 1, 2, 3, 4},
               {5},
               "{}",
               {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(grouped, text, diagnostics)));
  EXPECT_NE(diagnostics.find("dy_scales' count and dy's grouped [128, 1] tiles"),
            std::string::npos)
      << diagnostics;
}

} // namespace

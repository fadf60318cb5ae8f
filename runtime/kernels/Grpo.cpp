//===- Grpo.cpp - host kernels of token_logprobs and the GRPO loss --------===//
//
// One task per position (row of logits), statically scheduled: GrpoMath.h's
// temperedLogprob takes the row's log-softmax at its target (cross_entropy's
// row on logits / temperature), grpoToken the token's loss and dl/dlp, and
// grpoGradRow the gradient row (in the row of dlogits, its scratch). The row
// weights and the loss are then summed serially in position order, in f64,
// so the results do not depend on the thread count.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Grpo.h"
#include "runtime/kernels/DenseMath.h"
#include "runtime/kernels/KernelCheck.h"

#include <algorithm>
#include <vector>

namespace kiln::kernels {

namespace {

void checkTargets(const int32_t *targets, const float *mask, int64_t positions,
                  int64_t vocab) {
  for (int64_t i = 0; i < positions; ++i)
    KILN_KERNEL_CHECK((mask && mask[i] == 0) || (targets[i] >= 0 && targets[i] < vocab),
                      "target %d at position %lld is outside [0, %lld)", targets[i],
                      (long long)i, (long long)vocab);
}

void checkGrpo(const int32_t *targets, const float *mask, int64_t rows, int64_t seq,
               int64_t vocab, float temperature, float clipLow, float clipHigh, float beta,
               GrpoAggregation aggregation, int64_t maxTokens) {
  KILN_KERNEL_CHECK(rows >= 0 && seq >= 0 && vocab > 0,
                    "expects rows, seq >= 0 and vocab > 0, got %lld, %lld, %lld",
                    (long long)rows, (long long)seq, (long long)vocab);
  KILN_KERNEL_CHECK(temperature > 0, "expects temperature > 0, got %g", temperature);
  KILN_KERNEL_CHECK(clipLow >= 0 && clipLow < 1 && clipHigh >= 0,
                    "expects clip_low in [0, 1) and clip_high >= 0, got %g and %g", clipLow,
                    clipHigh);
  KILN_KERNEL_CHECK(beta >= 0, "expects beta >= 0, got %g", beta);
  KILN_KERNEL_CHECK(aggregation != GrpoAggregation::SeqMeanTokenSumNorm || maxTokens > 0,
                    "expects max_tokens > 0 with seq-mean-token-sum-norm, got %lld",
                    (long long)maxTokens);
  checkTargets(targets, mask, rows * seq, vocab);
}

/// Each row's weight of its masked-in tokens (grpoRowWeight), from mask sums
/// taken in position order in f64.
std::vector<double> rowWeights(const float *mask, int64_t rows, int64_t seq,
                               GrpoAggregation aggregation, int64_t maxTokens,
                               const float *count) {
  std::vector<double> rowTokens(rows, 0.0);
  double batchTokens = 0;
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t s = 0; s < seq; ++s) {
      rowTokens[b] += mask[b * seq + s];
      batchTokens += mask[b * seq + s];
    }
  std::vector<double> weights(rows);
  for (int64_t b = 0; b < rows; ++b)
    weights[b] = grpoRowWeight(aggregation, rowTokens[b], double(rows), batchTokens, maxTokens,
                               count != nullptr, count ? double(*count) : 0.0);
  return weights;
}

} // namespace

//===----------------------------------------------------------------------===//
// kernel launchers
//===----------------------------------------------------------------------===//

void tokenLogprobs(float *out, const float *logits, const int32_t *targets, int64_t positions,
                   int64_t vocab, float temperature) {
  KILN_KERNEL_CHECK(positions >= 0 && vocab > 0,
                    "expects positions >= 0 and vocab > 0, got %lld, %lld",
                    (long long)positions, (long long)vocab);
  KILN_KERNEL_CHECK(temperature > 0, "expects temperature > 0, got %g", temperature);
  checkTargets(targets, nullptr, positions, vocab);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < positions; ++i)
    out[i] = temperedLogprob(logits + i * vocab, vocab, targets[i], temperature);
}

float grpoLossForward(const float *logits, const int32_t *targets, const float *mask,
                      const float *advantages, const float *oldLogprobs,
                      const float *refLogprobs, int64_t rows, int64_t seq, int64_t vocab,
                      float temperature, float clipLow, float clipHigh, float beta,
                      GrpoAggregation aggregation, int64_t maxTokens, const float *count) {
  checkGrpo(targets, mask, rows, seq, vocab, temperature, clipLow, clipHigh, beta, aggregation,
            maxTokens);
  const int64_t positions = rows * seq;
  std::vector<float> loss(positions, 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < positions; ++i) {
    if (mask[i] == 0)
      continue;
    float lp = temperedLogprob(logits + i * vocab, vocab, targets[i], temperature);
    loss[i] = grpoToken(lp, oldLogprobs[i], refLogprobs[i], advantages[i / seq], clipLow,
                        clipHigh, beta)
                  .loss;
  }
  std::vector<double> weights = rowWeights(mask, rows, seq, aggregation, maxTokens, count);
  double total = 0;
  for (int64_t i = 0; i < positions; ++i)
    if (mask[i] != 0)
      total += double(mask[i]) * weights[i / seq] * loss[i];
  return float(total);
}

void grpoLossBackward(float *dlogits, const float *logits, const int32_t *targets,
                      const float *mask, const float *advantages, const float *oldLogprobs,
                      const float *refLogprobs, float dloss, int64_t rows, int64_t seq,
                      int64_t vocab, float temperature, float clipLow, float clipHigh,
                      float beta, GrpoAggregation aggregation, int64_t maxTokens,
                      const float *count) {
  checkGrpo(targets, mask, rows, seq, vocab, temperature, clipLow, clipHigh, beta, aggregation,
            maxTokens);
  std::vector<double> weights = rowWeights(mask, rows, seq, aggregation, maxTokens, count);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows * seq; ++i) {
    float *d = dlogits + i * vocab;
    double weight = double(mask[i]) * weights[i / seq];
    if (weight == 0) {
      std::fill_n(d, vocab, 0.0f);
      continue;
    }
    grpoGradRow(d, logits + i * vocab, vocab, targets[i], temperature, oldLogprobs[i],
                refLogprobs[i], advantages[i / seq], clipLow, clipHigh, beta, dloss, weight);
  }
}

} // namespace kiln::kernels

//===- GrpoMath.h - per-token math of kiln.grpo_loss, shared by all targets ===//
//
// The GRPO loss of one completion token given its log-probability under the
// policy, and the loss's derivative with respect to that log-probability
// (KilnLossOps.td, KilnGradOps.td). Templated on the scalar so that the
// reference evaluator (double) and the kernels (float) run the same
// expressions; KILN_HD so a CUDA kernel can too. Below them, the f32 rows
// the host kernels (Grpo.cpp) and the CUDA kernels (cuda/Grpo.cuh) share:
// a position's tempered log-probability and its gradient row, on
// cross_entropy's row math (DenseMath.h).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_GRPOMATH_H
#define KILN_RUNTIME_GRPOMATH_H

#include "runtime/kernels/DenseMath.h"
#include "runtime/kernels/KernelMath.h"

#include <cmath>
#include <cstdint>
#include <string_view>

namespace kiln::kernels {

/// How kiln.grpo_loss reduces its per-token losses (its `aggregation`).
enum class GrpoAggregation { TokenMean, SeqMeanTokenMean, SeqMeanTokenSumNorm };

/// The op attribute's spelling, or false.
inline bool parseGrpoAggregation(const char *name, GrpoAggregation &out) {
  const std::string_view n(name);
  if (n == "token-mean")
    out = GrpoAggregation::TokenMean;
  else if (n == "seq-mean-token-mean")
    out = GrpoAggregation::SeqMeanTokenMean;
  else if (n == "seq-mean-token-sum-norm")
    out = GrpoAggregation::SeqMeanTokenSumNorm;
  else
    return false;
  return true;
}

template <class T> struct GrpoTerm {
  T loss;     ///< -(surr - beta kl)
  T dLossDlp; ///< its derivative with respect to lp
  bool clipped; ///< the clipped surrogate was the (strict) minimum
  T kl;       ///< k3 estimate of KL(policy || reference), >= 0
};

/// One token: lp the policy's log-probability, old the sampling policy's,
/// ref the reference model's, adv its completion's advantage.
template <class T>
KILN_HD GrpoTerm<T> grpoToken(T lp, T old, T ref, T adv, T clipLow, T clipHigh, T beta) {
  using std::exp;
  using std::fmax;
  using std::fmin;
  const T ratio = exp(lp - old);
  const T clamped = fmin(fmax(ratio, T(1) - clipLow), T(1) + clipHigh);
  const T unclipped = ratio * adv, clippedTerm = clamped * adv;
  const bool clipped = clippedTerm < unclipped;
  const T surr = clipped ? clippedTerm : unclipped;
  const T logRatioRef = ref - lp;
  const T refRatio = exp(logRatioRef);
  const T kl = refRatio - logRatioRef - T(1);
  // d surr / d lp = r A unless the clipped (constant) term is the min;
  // d kl / d lp = 1 - exp(ref - lp).
  const T dSurr = clipped ? T(0) : unclipped;
  return {-(surr - beta * kl), -dSurr + beta * (T(1) - refRatio), clipped, kl};
}

/// The weight of every masked-in token of a row in the reduction, given the
/// row's mask sum, the rows and the mask sum of the batch (or `count`,
/// which replaces the outer denominator when > 0 is given: `hasCount`).
template <class T>
KILN_HD T grpoRowWeight(GrpoAggregation aggregation, T rowTokens, T rows, T batchTokens,
                        int64_t maxTokens, bool hasCount, T count) {
  using std::fmax;
  switch (aggregation) {
  case GrpoAggregation::TokenMean: {
    const T w = hasCount ? count : batchTokens;
    return w == T(0) ? T(0) : T(1) / w;
  }
  case GrpoAggregation::SeqMeanTokenMean: {
    const T r = hasCount ? count : rows;
    return r == T(0) ? T(0) : T(1) / (fmax(rowTokens, T(1)) * r);
  }
  case GrpoAggregation::SeqMeanTokenSumNorm: {
    const T r = hasCount ? count : rows;
    return r == T(0) || maxTokens <= 0 ? T(0) : T(1) / (r * T(maxTokens));
  }
  }
  return T(0);
}

/// log softmax(logits / temperature)[target] of one row of `vocab` logits
/// (kiln.token_logprobs, grpo_loss's lp) without a scratch row: cross_entropy's
/// row (DenseMath.h) on z[c] = logits[c] / temperature, each quotient
/// recomputed where it is used: the same f32 operations in the same order as
/// writing z out first and calling crossEntropyRow, so the same bits.
KILN_HD float temperedLogprob(const float *logits, int64_t vocab, int64_t target,
                              float temperature) {
  const float m = laneMax(vocab, [&](int64_t c) { return logits[c] / temperature; });
  const float sum =
      laneSum(vocab, [&](int64_t c) { return expFaithful(logits[c] / temperature - m); });
  const float total = laneSum(vocab, [&](int64_t c) { return logits[c] / temperature; });
  return -crossEntropyFromSums(m, sum, total, logits[target] / temperature, vocab, 0.0f);
}

/// One position of kiln.grpo_loss_grad whose weight (mask x its row's
/// grpoRowWeight) is nonzero: d[c] = dloss weight dl/dlp (onehot[c] -
/// softmax(logits / T)[c]) / T, d holding logits / T first (the row's
/// scratch).
KILN_HD void grpoGradRow(float *d, const float *logits, int64_t vocab, int64_t target,
                         float temperature, float old, float ref, float adv, float clipLow,
                         float clipHigh, float beta, float dloss, double weight) {
  for (int64_t c = 0; c < vocab; ++c)
    d[c] = logits[c] / temperature;
  const float lp = -crossEntropyRow(d, vocab, target, 0.0f);
  const GrpoTerm<float> term = grpoToken(lp, old, ref, adv, clipLow, clipHigh, beta);
  const float factor = float(-double(dloss) * weight * term.dLossDlp / temperature);
  crossEntropyGradRow(d, vocab, target, 0.0f, factor, d);
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_GRPOMATH_H

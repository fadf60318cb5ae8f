//===- DenseMath.h - per-element math of the dense and loss kernels -------===//
//
// silu / swiglu and their derivatives, the rms_norm row factor and the
// max-shifted softmax pieces that cross_entropy and attention share. Written
// once as KILN_HD functions so the host loops in Dense.cpp / Loss.cpp and
// future CUDA kernels compute the same numbers, and so a backward kernel
// recomputes exactly what its forward produced. The formulas are those of
// dialects/kiln/reference/DenseMath.h and the ops' descriptions.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DENSEMATH_H
#define KILN_RUNTIME_DENSEMATH_H

#include "runtime/kernels/KernelMath.h"

namespace kiln::kernels {

/// silu(x) = x * sigmoid(x).
KILN_HD float siluValue(float x) { return x * sigmoidf(x); }

/// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
KILN_HD float siluDerivative(float x) {
  float s = sigmoidf(x);
  return s * (1.0f + x * (1.0f - s));
}

/// swiglu(gate, up) = silu(gate) * up.
KILN_HD float swigluValue(float gate, float up) { return siluValue(gate) * up; }

/// swiglu_grad: dgate = dy up silu'(gate), dup = dy silu(gate).
KILN_HD void swigluGradient(float dy, float gate, float up, float *dgate, float *dup) {
  float s = sigmoidf(gate);
  *dgate = dy * up * s * (1.0f + gate * (1.0f - s));
  *dup = dy * gate * s;
}

/// 1 / sqrt(mean(x[0..h)^2) + epsilon), summed in laneSum's order.
KILN_HD float rmsInverseRow(const float *x, int64_t h, float epsilon) {
  const float ss = laneSum(h, [&](int64_t j) { return x[j] * x[j]; });
  return 1.0f / sqrtf(ss / float(h) + epsilon);
}

/// Rows per chunk of rms_norm_grad's dgamma: each column is summed over the
/// rows of a chunk in order (from 0), then over the chunks in order, on the
/// host and on the GPU alike. A chunk's rows are one host task (dx and the
/// partial sums in one pass over x and dy) and one GPU thread per column.
constexpr int64_t kDgammaChunkRows = 128;

/// One row of rms_norm_grad's dx: r (g - n mean(g n)), g = dy gamma,
/// n = x r, r = rmsInverseRow(x); returns r (dgamma's column sums use it).
KILN_HD float rmsNormGradRow(float *dx, const float *dy, const float *x, const float *gamma,
                             int64_t h, float epsilon) {
  const float r = rmsInverseRow(x, h, epsilon);
  const float meanGN =
      laneSum(h, [&](int64_t j) { return dy[j] * gamma[j] * (x[j] * r); }) / float(h);
  for (int64_t j = 0; j < h; ++j)
    dx[j] = r * (dy[j] * gamma[j] - x[j] * r * meanGN);
  return r;
}

/// max(x[0..n)), n >= 1.
KILN_HD float rowMax(const float *x, int64_t n) {
  return laneMax(n, [&](int64_t i) { return x[i]; });
}

/// Replaces x[0..n), n >= 1, by softmax(x) = exp(x - max) / sum (the sum
/// in laneSum's order).
KILN_HD void softmaxRowInPlace(float *x, int64_t n) {
  const float m = rowMax(x, n);
  for (int64_t i = 0; i < n; ++i)
    x[i] = expFaithful(x[i] - m);
  const float sum = laneSum(n, [&](int64_t i) { return x[i]; });
  float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i)
    x[i] *= inv;
}

/// cross_entropy of one position from its row's sums: m = max_c l[c],
/// sum = sum_c exp(l[c] - m), total = sum_c l[c] (the CUDA kernels reduce
/// these across a block, then finish here).
KILN_HD float crossEntropyFromSums(float m, float sum, float total, float targetLogit,
                                   int64_t vocab, float labelSmoothing) {
  float logSum = logf(sum);
  float nll = (m - targetLogit) + logSum;
  float smooth = (m - total / float(vocab)) + logSum;
  return (1.0f - labelSmoothing) * nll + labelSmoothing * smooth;
}

/// One position of cross_entropy: (1 - eps) * -log p[target]
/// + eps * mean_c(-log p[c]), with -log p[c] = (m - l[c]) + log(sum) so large
/// logits do not cancel.
KILN_HD float crossEntropyRow(const float *logits, int64_t vocab, int64_t target,
                              float labelSmoothing) {
  const float m = rowMax(logits, vocab);
  const float sum = laneSum(vocab, [&](int64_t c) { return expFaithful(logits[c] - m); });
  const float total = laneSum(vocab, [&](int64_t c) { return logits[c]; });
  return crossEntropyFromSums(m, sum, total, logits[target], vocab, labelSmoothing);
}

/// One element of cross_entropy_grad from its softmax probability p.
KILN_HD float crossEntropyGradValue(float p, bool isTarget, float labelSmoothing,
                                    float uniform, float factor) {
  return factor * (p - (isTarget ? 1.0f - labelSmoothing : 0.0f) - uniform);
}

/// One position of cross_entropy_grad: d[c] = factor * (softmax(l)[c]
/// - (1 - eps) [c == target] - eps / vocab), factor = dloss mask / sum(mask).
KILN_HD void crossEntropyGradRow(const float *logits, int64_t vocab, int64_t target,
                                 float labelSmoothing, float factor, float *d) {
  for (int64_t c = 0; c < vocab; ++c)
    d[c] = logits[c];
  softmaxRowInPlace(d, vocab);
  float uniform = labelSmoothing / float(vocab);
  for (int64_t c = 0; c < vocab; ++c)
    d[c] = crossEntropyGradValue(d[c], c == target, labelSmoothing, uniform, factor);
}

/// The loss of kiln.cross_entropy from the per-position losses: the
/// mask-weighted sum over the positions in order, in f64, over `*count`
/// (data parallelism's global token count) or the mask's sum; 0 for no
/// weight.
KILN_HD float maskedMeanLoss(const float *ce, const float *mask, const float *count,
                             int64_t positions) {
  double total = 0, weight = 0;
  for (int64_t i = 0; i < positions; ++i)
    if (mask[i] != 0) {
      total += double(mask[i]) * ce[i];
      weight += mask[i];
    }
  if (count)
    weight = *count;
  return weight == 0 ? 0.0f : float(total / weight);
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_DENSEMATH_H

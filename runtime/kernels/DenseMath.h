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

/// 1 / sqrt(mean(x[0..h)^2) + epsilon), summed in index order.
KILN_HD float rmsInverseRow(const float *x, int64_t h, float epsilon) {
  float ss = 0.0f;
  for (int64_t j = 0; j < h; ++j)
    ss += x[j] * x[j];
  return 1.0f / sqrtf(ss / float(h) + epsilon);
}

/// max(x[0..n)), n >= 1.
KILN_HD float rowMax(const float *x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i)
    m = x[i] > m ? x[i] : m;
  return m;
}

/// Replaces x[0..n), n >= 1, by softmax(x) = exp(x - max) / sum.
KILN_HD void softmaxRowInPlace(float *x, int64_t n) {
  float m = rowMax(x, n), sum = 0.0f;
  for (int64_t i = 0; i < n; ++i)
    sum += (x[i] = expf(x[i] - m));
  float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i)
    x[i] *= inv;
}

/// One position of cross_entropy: (1 - eps) * -log p[target]
/// + eps * mean_c(-log p[c]), with -log p[c] = (m - l[c]) + log(sum) so large
/// logits do not cancel.
KILN_HD float crossEntropyRow(const float *logits, int64_t vocab, int64_t target,
                              float labelSmoothing) {
  float m = rowMax(logits, vocab), sum = 0.0f, mean = 0.0f;
  for (int64_t c = 0; c < vocab; ++c) {
    sum += expf(logits[c] - m);
    mean += logits[c];
  }
  float logSum = logf(sum);
  float nll = (m - logits[target]) + logSum;
  float smooth = (m - mean / float(vocab)) + logSum;
  return (1.0f - labelSmoothing) * nll + labelSmoothing * smooth;
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
    d[c] = factor * (d[c] - (c == target ? 1.0f - labelSmoothing : 0.0f) - uniform);
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_DENSEMATH_H

//===- AttentionMath.h - per-row math of the rope and attention kernels ---===//
//
// The RoPE angle and pair rotation, the softmax backward of one attention
// row, and the fixed-order dot product of the decode kernels (Decode.cpp).
// Attention's matrix products are GEMMs (sgemm on the host); what sits
// between them per row — the max-shifted softmax (DenseMath.h) and its
// backward (here) — is written once, for the host kernels and the CUDA
// kernels (runtime/kernels/cuda/Attention.cuh, Decode.cuh) alike.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ATTENTIONMATH_H
#define KILN_RUNTIME_ATTENTIONMATH_H

#include "runtime/kernels/DenseMath.h"

namespace kiln::kernels {

/// The cosine and sine of RoPE's angle position * invFrequency, in f64, times
/// `magnitude` (YaRN's), the sine also times `direction` (-1 for the
/// transpose), rounded to f32: one entry of Attention.cpp's table.
KILN_HD void ropeCosSin(int64_t position, double invFrequency, double magnitude,
                        double direction, float *c, float *s) {
  double angle = double(position) * invFrequency;
  *c = float(cos(angle) * magnitude);
  *s = float(direction * sin(angle) * magnitude);
}

/// Rotates the pair (x0, x1) by an angle with cosine c and sine s (both
/// already times YaRN's magnitude): (x0 c - x1 s, x1 c + x0 s). The transpose
/// is the same call with -s.
KILN_HD void ropeRotatePair(float x0, float x1, float c, float s, float *y0, float *y1) {
  *y0 = x0 * c - x1 * s;
  *y1 = x1 * c + x0 * s;
}

/// The softmax backward of one attention row, in place: given P[j] and
/// dP[j] = dO . v_j over the n keys the row sees, dP becomes
/// dS[j] = scale P[j] (dP[j] - sum_k P[k] dP[k]), the gradient of the scaled
/// scores. Attention.cpp applies it between the sgemms of the backward; the
/// CUDA kernels, which have no row buffer, call attentionScoreGrad per key.
KILN_HD float attentionScoreGrad(float p, float dp, float sumPdp, float scale) {
  return scale * p * (dp - sumPdp);
}
KILN_HD void attentionScoreGradRow(const float *p, float *dp, int64_t n, float scale) {
  float sumPdp = 0.0f;
  for (int64_t j = 0; j < n; ++j)
    sumPdp += p[j] * dp[j];
  for (int64_t j = 0; j < n; ++j)
    dp[j] = attentionScoreGrad(p[j], dp[j], sumPdp, scale);
}

/// Partial sums of laneDot: lanes a compiler keeps in vector registers
/// without reassociating (no -ffast-math needed).
constexpr int64_t kDotLanes = 8;

/// sum_i a[i] b[i], i in [0, n), in a fixed order: partial sums over
/// i = l (mod kDotLanes), added pairwise (lane l + w into lane l, w = 4, 2,
/// 1), then the tail. The dot of cached_attention and head_matmul.
KILN_HD float laneDot(const float *a, const float *b, int64_t n) {
  float lanes[kDotLanes] = {};
  int64_t i = 0;
  for (; i + kDotLanes <= n; i += kDotLanes)
    for (int64_t l = 0; l < kDotLanes; ++l)
      lanes[l] += a[i + l] * b[i + l];
  for (int64_t w = kDotLanes / 2; w > 0; w /= 2)
    for (int64_t l = 0; l < w; ++l)
      lanes[l] += lanes[l + w];
  float sum = lanes[0];
  for (; i < n; ++i)
    sum += a[i] * b[i];
  return sum;
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_ATTENTIONMATH_H

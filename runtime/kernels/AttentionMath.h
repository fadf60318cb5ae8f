//===- AttentionMath.h - per-row math of the rope and attention kernels ---===//
//
// The RoPE pair rotation and the softmax backward of one attention row.
// Attention's matrix products are GEMMs (sgemm on the host); what sits
// between them per row — the max-shifted softmax (DenseMath.h) and its
// backward (here) — is written once, for the host kernels and a CUDA
// kernel alike.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ATTENTIONMATH_H
#define KILN_RUNTIME_ATTENTIONMATH_H

#include "runtime/kernels/DenseMath.h"

namespace kiln::kernels {

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
/// scores. Attention.cpp applies it between the sgemms of the backward.
KILN_HD void attentionScoreGradRow(const float *p, float *dp, int64_t n, float scale) {
  float sumPdp = 0.0f;
  for (int64_t j = 0; j < n; ++j)
    sumPdp += p[j] * dp[j];
  for (int64_t j = 0; j < n; ++j)
    dp[j] = scale * p[j] * (dp[j] - sumPdp);
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_ATTENTIONMATH_H

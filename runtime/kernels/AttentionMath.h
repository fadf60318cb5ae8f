//===- AttentionMath.h - per-row math of the rope and attention kernels ---===//
//
// The RoPE pair rotation and one query row of (GQA, optionally causal)
// attention: its softmax probabilities, its output, and its backward. Layout
// is that of kiln.attention: q [batch, seq, heads, dqk], k [batch, seq,
// kvHeads, dqk], v [batch, seq, kvHeads, dv]; query head h reads kv head
// h / (heads / kvHeads). Each function takes row pointers and the row strides
// (elements between consecutive positions), so a CUDA kernel can call it per
// (batch, head, query) exactly as Attention.cpp does.
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

/// p[j] = softmax_j(scale * qi . k_j) for j < keys, where k_j = k + j *
/// kStride; returns nothing, keys >= 1.
KILN_HD void attentionRowProbabilities(const float *qi, const float *k, int64_t kStride,
                                       int64_t dqk, int64_t keys, float scale, float *p) {
  for (int64_t j = 0; j < keys; ++j) {
    const float *kj = k + j * kStride;
    float s = 0.0f;
    for (int64_t d = 0; d < dqk; ++d)
      s += qi[d] * kj[d];
    p[j] = s * scale;
  }
  softmaxRowInPlace(p, keys);
}

/// oi[e] = sum_j p[j] v_j[e], v_j = v + j * vStride.
KILN_HD void attentionRowOutput(const float *p, const float *v, int64_t vStride, int64_t dv,
                                int64_t keys, float *oi) {
  for (int64_t e = 0; e < dv; ++e)
    oi[e] = 0.0f;
  for (int64_t j = 0; j < keys; ++j) {
    const float *vj = v + j * vStride;
    for (int64_t e = 0; e < dv; ++e)
      oi[e] += p[j] * vj[e];
  }
}

/// Backward of one query row given its probabilities p[0..keys): adds
/// p[j] doi to dv_j, scale ds[j] qi to dk_j, and writes dqi = scale sum_j
/// ds[j] k_j, where ds[j] = p[j] (doi . v_j - sum_l p[l] doi . v_l). ds is
/// scratch of length keys. The caller orders the rows so that the adds into
/// dk / dv happen in a fixed order.
KILN_HD void attentionRowBackward(const float *qi, const float *k, const float *v,
                                  const float *doi, int64_t kStride, int64_t vStride,
                                  int64_t dqk, int64_t dv, int64_t keys, float scale,
                                  const float *p, float *ds, float *dqi, float *dk,
                                  float *dvOut) {
  float sumPdp = 0.0f;
  for (int64_t j = 0; j < keys; ++j) {
    const float *vj = v + j * vStride;
    float *dvj = dvOut + j * vStride;
    float dp = 0.0f;
    for (int64_t e = 0; e < dv; ++e) {
      dvj[e] += p[j] * doi[e];
      dp += doi[e] * vj[e];
    }
    ds[j] = dp;
    sumPdp += p[j] * dp;
  }
  for (int64_t d = 0; d < dqk; ++d)
    dqi[d] = 0.0f;
  for (int64_t j = 0; j < keys; ++j) {
    float g = scale * p[j] * (ds[j] - sumPdp);
    const float *kj = k + j * kStride;
    float *dkj = dk + j * kStride;
    for (int64_t d = 0; d < dqk; ++d) {
      dqi[d] += g * kj[d];
      dkj[d] += g * qi[d];
    }
  }
}

} // namespace kiln::kernels

#endif // KILN_RUNTIME_ATTENTIONMATH_H

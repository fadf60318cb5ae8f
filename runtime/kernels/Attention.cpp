//===- Attention.cpp - host kernels of kiln.rope and kiln.attention -------===//
//
// rope: a cos/sin table per (position, frequency), computed in f64 once, then
// a pair rotation per element (AttentionMath.h). attention: one task per
// (batch, head, query) row for the forward; the backward runs one task per
// (batch, kv head) so that the adds into dk / dv, shared by the heads of a
// group and by all queries, happen in one thread in a fixed order (heads,
// then queries, as the reference). No atomics; static schedules.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Attention.h"
#include "runtime/kernels/AttentionMath.h"
#include "runtime/kernels/KernelCheck.h"

#include <algorithm>
#include <cmath>

namespace kiln::kernels {

//===----------------------------------------------------------------------===//
// kernel launchers
//===----------------------------------------------------------------------===//

void ropeForward(float *y, const float *x, int64_t batch, int64_t seq, int64_t heads,
                 int64_t dim, double theta, bool interleaved, const YarnConfig *yarn,
                 bool transpose) {
  KILN_KERNEL_CHECK(batch >= 0 && seq >= 0 && heads > 0 && dim > 0 && dim % 2 == 0,
                    "expects batch, seq >= 0, heads > 0 and an even dim > 0, got %lld, %lld, "
                    "%lld, %lld",
                    (long long)batch, (long long)seq, (long long)heads, (long long)dim);
  KILN_KERNEL_CHECK(theta > 1, "expects theta > 1, got %g", theta);
  int64_t half = dim / 2;
  std::vector<double> inv = ropeInverseFrequencies(dim, theta, yarn);
  double magnitude = ropeMagnitude(yarn), direction = transpose ? -1.0 : 1.0;
  std::vector<float> cosT(seq * half), sinT(seq * half);
  for (int64_t s = 0; s < seq; ++s)
    for (int64_t i = 0; i < half; ++i) {
      double angle = double(s) * inv[i];
      cosT[s * half + i] = float(std::cos(angle) * magnitude);
      sinT[s * half + i] = float(direction * std::sin(angle) * magnitude);
    }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t h = 0; h < heads; ++h) {
        int64_t base = ((b * seq + s) * heads + h) * dim;
        for (int64_t i = 0; i < half; ++i) {
          int64_t i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
          float x0 = x[base + i0], x1 = x[base + i1];
          ropeRotatePair(x0, x1, cosT[s * half + i], sinT[s * half + i], &y[base + i0],
                         &y[base + i1]);
        }
      }
}

static void checkAttention(int64_t batch, int64_t seq, int64_t heads, int64_t kvHeads,
                           int64_t dqk, int64_t dv) {
  KILN_KERNEL_CHECK(batch >= 0 && seq >= 0 && heads > 0 && kvHeads > 0 && dqk > 0 && dv > 0,
                    "expects batch, seq >= 0 and heads, kvHeads, dqk, dv > 0, got %lld, %lld, "
                    "%lld, %lld, %lld, %lld",
                    (long long)batch, (long long)seq, (long long)heads, (long long)kvHeads,
                    (long long)dqk, (long long)dv);
  KILN_KERNEL_CHECK(heads % kvHeads == 0, "expects heads (%lld) divisible by kvHeads (%lld)",
                    (long long)heads, (long long)kvHeads);
}

void attentionForward(float *out, const float *q, const float *k, const float *v,
                      int64_t batch, int64_t seq, int64_t heads, int64_t kvHeads, int64_t dqk,
                      int64_t dv, float scale, bool causal) {
  checkAttention(batch, seq, heads, kvHeads, dqk, dv);
  int64_t group = heads / kvHeads, kStride = kvHeads * dqk, vStride = kvHeads * dv;
#pragma omp parallel
  {
    std::vector<float> p(seq);
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < seq; ++i) {
          int64_t g = h / group, keys = causal ? i + 1 : seq;
          const float *qi = q + ((b * seq + i) * heads + h) * dqk;
          const float *kb = k + (b * seq * kvHeads + g) * dqk;
          const float *vb = v + (b * seq * kvHeads + g) * dv;
          attentionRowProbabilities(qi, kb, kStride, dqk, keys, scale, p.data());
          attentionRowOutput(p.data(), vb, vStride, dv, keys,
                             out + ((b * seq + i) * heads + h) * dv);
        }
  }
}

void attentionBackward(float *dq, float *dk, float *dv, const float *q, const float *k,
                       const float *v, const float *dout, int64_t batch, int64_t seq,
                       int64_t heads, int64_t kvHeads, int64_t dqk, int64_t dvDim, float scale,
                       bool causal) {
  checkAttention(batch, seq, heads, kvHeads, dqk, dvDim);
  int64_t group = heads / kvHeads, kStride = kvHeads * dqk, vStride = kvHeads * dvDim;
#pragma omp parallel
  {
    std::vector<float> p(seq), ds(seq);
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t g = 0; g < kvHeads; ++g) {
        int64_t kBase = (b * seq * kvHeads + g) * dqk, vBase = (b * seq * kvHeads + g) * dvDim;
        for (int64_t j = 0; j < seq; ++j) {
          std::fill_n(dk + kBase + j * kStride, dqk, 0.0f);
          std::fill_n(dv + vBase + j * vStride, dvDim, 0.0f);
        }
        for (int64_t h = g * group; h < (g + 1) * group; ++h)
          for (int64_t i = 0; i < seq; ++i) {
            int64_t keys = causal ? i + 1 : seq;
            int64_t qOff = ((b * seq + i) * heads + h) * dqk;
            attentionRowProbabilities(q + qOff, k + kBase, kStride, dqk, keys, scale,
                                      p.data());
            attentionRowBackward(q + qOff, k + kBase, v + vBase,
                                 dout + ((b * seq + i) * heads + h) * dvDim, kStride, vStride,
                                 dqk, dvDim, keys, scale, p.data(), ds.data(), dq + qOff,
                                 dk + kBase, dv + vBase);
          }
      }
  }
}

} // namespace kiln::kernels

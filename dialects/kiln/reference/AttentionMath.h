//===- AttentionMath.h - attention probabilities, forward and backward ----===//
//
// The softmax row p[b, h, i, :] of kiln.attention, shared by the forward rule
// and attention_grad's recomputation so that both see the same numbers.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_ATTENTIONMATH_H
#define KILN_REFERENCE_ATTENTIONMATH_H

#include "dialects/kiln/reference/DenseMath.h"
#include "dialects/kiln/reference/RefTensor.h"

namespace kiln::reference {

/// Shapes of one attention: q [batch, seq, heads, dqk], k [batch, seq,
/// kvHeads, dqk], v [batch, seq, kvHeads, dv]; query head h reads kv head
/// h / (heads / kvHeads).
struct AttentionDims {
  int64_t batch, seq, heads, kvHeads, dqk, dv;

  AttentionDims(const RefTensor &q, const RefTensor &k, const RefTensor &v)
      : batch(q.shape[0]), seq(q.shape[1]), heads(q.shape[2]), kvHeads(k.shape[2]),
        dqk(q.shape[3]), dv(v.shape[3]) {}
  int64_t kvHeadOf(int64_t h) const { return h / (heads / kvHeads); }
  int64_t qOffset(int64_t b, int64_t i, int64_t h) const {
    return ((b * seq + i) * heads + h) * dqk;
  }
  int64_t kOffset(int64_t b, int64_t j, int64_t g) const {
    return ((b * seq + j) * kvHeads + g) * dqk;
  }
  int64_t vOffset(int64_t b, int64_t j, int64_t g) const {
    return ((b * seq + j) * kvHeads + g) * dv;
  }
  int64_t outOffset(int64_t b, int64_t i, int64_t h) const {
    return ((b * seq + i) * heads + h) * dv;
  }
};

/// Writes p[j] = softmax_j(scale * q[b,i,h,:] . k[b,j,g(h),:]) for j <= last
/// (last = i when causal, seq - 1 otherwise) into p[0..last] and returns the
/// number of keys, last + 1.
inline int64_t attentionProbabilities(const AttentionDims &dims, const RefTensor &q,
                                      const RefTensor &k, double scale, bool causal,
                                      int64_t b, int64_t h, int64_t i, double *p) {
  const double *qi = &q.data[dims.qOffset(b, i, h)];
  int64_t g = dims.kvHeadOf(h), keys = causal ? i + 1 : dims.seq;
  for (int64_t j = 0; j < keys; ++j) {
    const double *kj = &k.data[dims.kOffset(b, j, g)];
    double s = 0;
    for (int64_t d = 0; d < dims.dqk; ++d)
      s += qi[d] * kj[d];
    p[j] = s * scale;
  }
  softmaxInPlace(p, keys);
  return keys;
}

} // namespace kiln::reference

#endif // KILN_REFERENCE_ATTENTIONMATH_H

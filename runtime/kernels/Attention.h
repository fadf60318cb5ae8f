//===- Attention.h - host kernels of kiln.rope and kiln.attention ---------===//
//
// f32, row-major, sizes explicit; layouts as in KilnAttentionOps.td:
// x / q [batch, seq, heads, dim], k [batch, seq, kvHeads, dqk],
// v [batch, seq, kvHeads, dv], out [batch, seq, heads, dv].
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ATTENTION_H
#define KILN_RUNTIME_ATTENTION_H

#include "runtime/kernels/RopeMath.h"

#include <cstdint>
#include <vector>

namespace kiln::kernels {

/// kiln.rope (transpose = false) or its transpose (the backward), on
/// x [batch, seq, heads, dim]: pairs (2i, 2i+1) when interleaved, else
/// (i, i + dim/2), rotated by position * inv_freq[i]. y may alias x.
void ropeForward(float *y, const float *x, int64_t batch, int64_t seq, int64_t heads,
                 int64_t dim, double theta, bool interleaved, const YarnConfig *yarn,
                 bool transpose = false);

namespace detail {

/// The rope of ropeForward and ropeForwardAt (Decode.h), one implementation:
/// the position of x[b, s] is start[b] + s, or s when start is null. Stops
/// (KernelCheck.h) on a bad size or a start[b] < 0. Call those two instead.
void ropeAtPositions(float *y, const float *x, const int32_t *start, int64_t batch,
                     int64_t seq, int64_t heads, int64_t dim, double theta, bool interleaved,
                     const YarnConfig *yarn, bool transpose);

} // namespace detail

/// kiln.attention: out = softmax(scale q k^T [+ causal mask]) v per (batch,
/// head), query head h reading kv head h / (heads / kvHeads).
void attentionForward(float *out, const float *q, const float *k, const float *v,
                      int64_t batch, int64_t seq, int64_t heads, int64_t kvHeads, int64_t dqk,
                      int64_t dv, float scale, bool causal);

/// kiln.attention_grad: dq, dk, dv from dout, recomputing the softmax.
void attentionBackward(float *dq, float *dk, float *dv, const float *q, const float *k,
                       const float *v, const float *dout, int64_t batch, int64_t seq,
                       int64_t heads, int64_t kvHeads, int64_t dqk, int64_t dvDim, float scale,
                       bool causal);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_ATTENTION_H

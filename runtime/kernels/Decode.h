//===- Decode.h - host kernels of the KV-cache ops (KilnDecodeOps.td) -----===//
//
// f32, row-major, sizes explicit. `start` is [batch] (int32): the position
// of row b's first token of the chunk. Layouts as in KilnDecodeOps.td:
// cache [batch, maxLen, width] (width = the product of the trailing dims),
// q [batch, chunk, heads, dqk], k [batch, maxLen, kvHeads, dqk],
// v [batch, maxLen, kvHeads, dv], out [batch, chunk, heads, dv].
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DECODE_H
#define KILN_RUNTIME_DECODE_H

#include "runtime/kernels/RopeMath.h"

#include <cstdint>

namespace kiln::kernels {

/// kiln.rope with `start`: like ropeForward, the position of x[b, s] being
/// start[b] + s. y may alias x. Positions must be >= 0.
void ropeForwardAt(float *y, const float *x, const int32_t *start, int64_t batch, int64_t seq,
                   int64_t heads, int64_t dim, double theta, bool interleaved,
                   const YarnConfig *yarn, bool transpose = false);

/// kiln.cache_write: out = cache with rows[b, c] at position start[b] + c.
/// out may alias cache (the in-place update a decode program makes); when it
/// does not, the untouched positions are copied. Stops (KernelCheck.h) on a
/// start[b] < 0 or start[b] + chunk > maxLen.
void cacheWrite(float *out, const float *cache, const float *rows, const int32_t *start,
                int64_t batch, int64_t maxLen, int64_t chunk, int64_t width);

/// kiln.cached_attention: query c of row b (position p = start[b] + c)
/// attends keys 0..p of its row; query head h reads kv head h / (heads /
/// kvHeads). Stops on a start[b] < 0 or start[b] + chunk > maxLen.
void cachedAttention(float *out, const float *q, const float *k, const float *v,
                     const int32_t *start, int64_t batch, int64_t chunk, int64_t maxLen,
                     int64_t heads, int64_t kvHeads, int64_t dqk, int64_t dv, float scale);

/// kiln.head_matmul: out[b,s,h,:] = weight[h] x[b,s,h,:], weight[h] being
/// [n, k] (transposeWeight = false) or [k, n] (true); x [batch, seq, heads, k],
/// out [batch, seq, heads, n].
void headMatmul(float *out, const float *x, const float *weight, int64_t batch, int64_t seq,
                int64_t heads, int64_t k, int64_t n, bool transposeWeight);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_DECODE_H

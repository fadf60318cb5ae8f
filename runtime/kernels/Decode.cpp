//===- Decode.cpp - host kernels of the KV-cache ops (KilnDecodeOps.td) ---===//
//
// rope with `start`: Attention.cpp's rope (detail::ropeAtPositions), a cos/sin
// row per (b, s). cache_write: a parallel copy of the cache when out is
// another buffer (Copy.h), then the chunk's rows at their positions.
// cached_attention and head_matmul: plain loops, one task per (batch, head)
// or (head, token) with a static schedule; every sum runs in one thread in a
// fixed order (AttentionMath.h's laneDot, then the softmax pieces of
// DenseMath.h), so the bits do not depend on the thread count, and a query's
// output does not depend on the chunk it came in: decoding position p one
// token at a time gives the bits of row p of a prefill over the same cache.
//
// The loops suit the decode shapes (a chunk of one query against a cache,
// head matmuls over a few tokens), where a GEMM call per (batch, head) would
// be a GEMV. A prefill chunk of a few hundred queries costs chunk * maxLen *
// (dqk + dv) multiply-adds per (batch, head), like attentionForward's sgemms
// but at vector rather than GEMM speed (about 15 GFLOP/s per core for a
// 128-query chunk, dqk = dv = 128, on an x86-64-v2 build).
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Decode.h"
#include "runtime/kernels/Attention.h"
#include "runtime/kernels/AttentionMath.h"
#include "runtime/kernels/Copy.h"
#include "runtime/kernels/DenseMath.h"
#include "runtime/kernels/KernelCheck.h"

#include <algorithm>
#include <vector>

namespace kiln::kernels {

namespace {

/// Elements below which cache_write's row copies stay on one thread.
constexpr int64_t kParallelElements = 1 << 15;

/// y[0..n) += alpha x[0..n).
inline void axpy(float *y, float alpha, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] += alpha * x[i];
}

/// Every row's chunk [start[b], start[b] + chunk) must lie in [0, maxLen).
void checkStarts(const char *op, const int32_t *start, int64_t batch, int64_t chunk,
                 int64_t maxLen) {
  for (int64_t b = 0; b < batch; ++b)
    KILN_KERNEL_CHECK(start[b] >= 0 && int64_t(start[b]) + chunk <= maxLen,
                      "%s: row %lld starts at %d; expects 0 <= start and start + chunk (%lld) "
                      "<= max_len (%lld)",
                      op, (long long)b, start[b], (long long)chunk, (long long)maxLen);
}

} // namespace

//===----------------------------------------------------------------------===//
// kernel launchers
//===----------------------------------------------------------------------===//

void ropeForwardAt(float *y, const float *x, const int32_t *start, int64_t batch, int64_t seq,
                   int64_t heads, int64_t dim, double theta, bool interleaved,
                   const YarnConfig *yarn, bool transpose) {
  KILN_KERNEL_CHECK(start != nullptr, "rope: expects a start buffer");
  detail::ropeAtPositions(y, x, start, batch, seq, heads, dim, theta, interleaved, yarn,
                          transpose);
}

void cacheWrite(float *out, const float *cache, const float *rows, const int32_t *start,
                int64_t batch, int64_t maxLen, int64_t chunk, int64_t width) {
  KILN_KERNEL_CHECK(batch >= 0 && maxLen >= 0 && chunk >= 0 && width >= 0,
                    "cache_write: expects batch, maxLen, chunk, width >= 0, got %lld, %lld, "
                    "%lld, %lld",
                    (long long)batch, (long long)maxLen, (long long)chunk, (long long)width);
  checkStarts("cache_write", start, batch, chunk, maxLen);
  // Out of place: the whole cache, then the chunk over it (nothing when
  // out == cache).
  copy(out, cache, batch * maxLen * width);
  bool parallel = batch * chunk * width >= kParallelElements;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < chunk; ++c)
      std::copy_n(rows + (b * chunk + c) * width, width,
                  out + (b * maxLen + start[b] + c) * width);
}

void cachedAttention(float *out, const float *q, const float *k, const float *v,
                     const int32_t *start, int64_t batch, int64_t chunk, int64_t maxLen,
                     int64_t heads, int64_t kvHeads, int64_t dqk, int64_t dv, float scale) {
  KILN_KERNEL_CHECK(batch >= 0 && chunk >= 0 && maxLen >= 0 && heads > 0 && kvHeads > 0 &&
                        dqk > 0 && dv > 0,
                    "cached_attention: expects batch, chunk, maxLen >= 0 and heads, kvHeads, "
                    "dqk, dv > 0, got %lld, %lld, %lld, %lld, %lld, %lld, %lld",
                    (long long)batch, (long long)chunk, (long long)maxLen, (long long)heads,
                    (long long)kvHeads, (long long)dqk, (long long)dv);
  KILN_KERNEL_CHECK(heads % kvHeads == 0,
                    "cached_attention: expects heads (%lld) divisible by kvHeads (%lld)",
                    (long long)heads, (long long)kvHeads);
  checkStarts("cached_attention", start, batch, chunk, maxLen);
  if (batch == 0 || chunk == 0)
    return;
  int64_t group = heads / kvHeads, ldk = kvHeads * dqk, ldv = kvHeads * dv;
#pragma omp parallel
  {
    std::vector<float> p(maxLen);
    // One task per (batch, head); query c sees keys [0, start[b] + c].
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h) {
        const float *kg = k + (b * maxLen * kvHeads + h / group) * dqk;
        const float *vg = v + (b * maxLen * kvHeads + h / group) * dv;
        for (int64_t c = 0; c < chunk; ++c) {
          const float *qc = q + ((b * chunk + c) * heads + h) * dqk;
          float *oc = out + ((b * chunk + c) * heads + h) * dv;
          int64_t keys = int64_t(start[b]) + c + 1;
          for (int64_t j = 0; j < keys; ++j)
            p[j] = scale * laneDot(qc, kg + j * ldk, dqk);
          softmaxRowInPlace(p.data(), keys);
          std::fill_n(oc, dv, 0.0f);
          for (int64_t j = 0; j < keys; ++j)
            axpy(oc, p[j], vg + j * ldv, dv);
        }
      }
  }
}

void headMatmul(float *out, const float *x, const float *weight, int64_t batch, int64_t seq,
                int64_t heads, int64_t k, int64_t n, bool transposeWeight) {
  KILN_KERNEL_CHECK(batch >= 0 && seq >= 0 && heads > 0 && k > 0 && n > 0,
                    "head_matmul: expects batch, seq >= 0 and heads, k, n > 0, got %lld, %lld, "
                    "%lld, %lld, %lld",
                    (long long)batch, (long long)seq, (long long)heads, (long long)k,
                    (long long)n);
  int64_t tokens = batch * seq;
  // Head-major tasks, so a thread's tokens share one head's weight.
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t t = 0; t < tokens; ++t) {
      const float *xt = x + (t * heads + h) * k, *w = weight + h * n * k;
      float *ot = out + (t * heads + h) * n;
      if (!transposeWeight) { // w [n, k]: one dot per output
        for (int64_t j = 0; j < n; ++j)
          ot[j] = laneDot(xt, w + j * k, k);
        continue;
      }
      std::fill_n(ot, n, 0.0f); // w [k, n]: rows of w, scaled and added in order
      for (int64_t i = 0; i < k; ++i)
        axpy(ot, xt[i], w + i * n, n);
    }
}

} // namespace kiln::kernels

//===- Decode.cuh - CUDA kernels of the KV-cache ops (KilnDecodeOps.td) ---===//
//
// The CUDA twins of runtime/kernels/Decode.h, same names and parameters
// after a leading stream (device pointers; `start` [batch] is on the device
// too, so the host's start checks become device errors: the bad row is
// recorded, kBadCacheStart or Attention.cuh's kNegativeStart, index b, and
// skipped, nothing read or written out of bounds).
//
//   - ropeForwardAt: Attention.cuh's rope kernel with start (one
//     implementation, as on the host).
//   - cacheWrite: one thread per output element, taking the chunk's row or
//     the cache's: a copy, so bit for bit. In place (out == cache) only the
//     chunk's positions are written. A row with a bad start keeps the
//     cache's values.
//   - cachedAttention: the reference kernel is one thread per (b, c, h)
//     query in the host's order (AttentionMath.h's laneDot, then
//     softmaxRowInPlace's max / exp / sum / scale, recomputing the scores per
//     pass since a thread has no row buffer), bit for bit the host's on the
//     CPU shim. On the GPU a block per (b, c, h) query: a warp per key for
//     the scores (lanes over the dims, shuffle sum), an online softmax over
//     tiles of 128 keys, the threads owning output dims; within float
//     rounding of the host (other summation order, FMAs). A decode step
//     has batch * heads such blocks; a split over the cache (flash-decoding)
//     would need scratch the launcher's interface does not give.
//   - headMatmul: one thread per output element, the host's order (laneDot
//     for w [n, k]; rows of w [k, n] added in order), bit for bit on the
//     shim. Parallel enough for the GPU as it is (batch * seq * heads * n
//     threads), so it has no second variant; a batched cuBLAS GEMM would be
//     faster for long prefills.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_DECODE_CUH
#define KILN_RUNTIME_KERNELS_CUDA_DECODE_CUH

#include "runtime/kernels/AttentionMath.h"
#include "runtime/kernels/RopeMath.h"
#include "runtime/kernels/cuda/Attention.cuh"
#include "runtime/kernels/cuda/Device.cuh"

namespace kiln::cuda {

/// A row's chunk [start[b], start[b] + chunk) not inside [0, maxLen)
/// (cache_write, cached_attention); the index is b.
constexpr int32_t kBadCacheStart = 201;

/// Whether row b's chunk lies in the cache.
__device__ __forceinline__ bool chunkInCache(int32_t start, int64_t chunk, int64_t maxLen) {
  return start >= 0 && int64_t(start) + chunk <= maxLen;
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// The starts alone (cached_attention with an empty chunk, which the host
/// still checks).
__global__ void checkCacheStartsKernel(const int32_t *start, int64_t batch, int64_t chunk,
                                       int64_t maxLen) {
  for (int64_t b = globalThread(); b < batch; b += gridThreads())
    if (!chunkInCache(start[b], chunk, maxLen))
      KILN_DEVICE_ERROR(kBadCacheStart, b);
}

/// Out of place: every element of out [batch, maxLen, width], from rows
/// inside row b's chunk, else from the cache.
__global__ void cacheWriteCopyKernel(float *out, const float *cache, const float *rows,
                                     const int32_t *start, int64_t batch, int64_t maxLen,
                                     int64_t chunk, int64_t width) {
  for (int64_t b = globalThread(); b < batch; b += gridThreads())
    if (!chunkInCache(start[b], chunk, maxLen))
      KILN_DEVICE_ERROR(kBadCacheStart, b);
  for (int64_t e = globalThread(); e < batch * maxLen * width; e += gridThreads()) {
    const int64_t b = e / (maxLen * width), p = e / width % maxLen;
    const int64_t c = p - int64_t(start[b]);
    const bool fromRows = chunkInCache(start[b], chunk, maxLen) && c >= 0 && c < chunk;
    out[e] = fromRows ? rows[(b * chunk + c) * width + e % width] : cache[e];
  }
}

/// In place: the chunk's rows [batch, chunk, width] at their positions.
__global__ void cacheWriteRowsKernel(float *out, const float *rows, const int32_t *start,
                                     int64_t batch, int64_t maxLen, int64_t chunk, int64_t width) {
  for (int64_t b = globalThread(); b < batch; b += gridThreads())
    if (!chunkInCache(start[b], chunk, maxLen))
      KILN_DEVICE_ERROR(kBadCacheStart, b);
  for (int64_t e = globalThread(); e < batch * chunk * width; e += gridThreads()) {
    const int64_t b = e / (chunk * width), c = e / width % chunk;
    if (chunkInCache(start[b], chunk, maxLen))
      out[(b * maxLen + start[b] + c) * width + e % width] = rows[e];
  }
}

/// Reference order: thread per query r = (b * chunk + c) * heads + h.
__global__ void cachedAttentionRowKernel(float *out, const float *q, const float *k, const float *v,
                                         const int32_t *start, int64_t batch, int64_t chunk,
                                         int64_t maxLen, int64_t heads, int64_t kvHeads,
                                         int64_t dqk, int64_t dv, float scale) {
  const int64_t group = heads / kvHeads, ldk = kvHeads * dqk, ldv = kvHeads * dv;
  for (int64_t r = globalThread(); r < batch * chunk * heads; r += gridThreads()) {
    const int64_t h = r % heads, b = r / heads / chunk, c = r / heads % chunk;
    if (!chunkInCache(start[b], chunk, maxLen)) {
      if (c == 0 && h == 0)
        KILN_DEVICE_ERROR(kBadCacheStart, b);
      continue;
    }
    const float *qc = q + r * dqk, *kg = k + (b * maxLen * kvHeads + h / group) * dqk,
                *vg = v + (b * maxLen * kvHeads + h / group) * dv;
    const int64_t keys = int64_t(start[b]) + c + 1;
    // softmaxRowInPlace over p[j] = scale * laneDot(q, k_j), in its order.
    auto score = [&](int64_t j) { return scale * kernels::laneDot(qc, kg + j * ldk, dqk); };
    const float m = kernels::laneMax(keys, score);
    const float inv =
        1.0f / kernels::laneSum(keys, [&](int64_t j) { return kernels::expFaithful(score(j) - m); });
    float *oc = out + r * dv;
    for (int64_t d = 0; d < dv; ++d)
      oc[d] = 0.0f;
    for (int64_t j = 0; j < keys; ++j) {
      const float p = kernels::expFaithful(score(j) - m) * inv;
      for (int64_t d = 0; d < dv; ++d)
        oc[d] += p * vg[j * ldv + d];
    }
  }
}

/// Thread per output element (t, h, j) of out [tokens, heads, n].
__global__ void headMatmulKernel(float *out, const float *x, const float *weight, int64_t tokens,
                                 int64_t heads, int64_t k, int64_t n, bool transposeWeight) {
  for (int64_t e = globalThread(); e < tokens * heads * n; e += gridThreads()) {
    const int64_t j = e % n, th = e / n, h = th % heads;
    const float *xt = x + th * k, *w = weight + h * n * k;
    if (!transposeWeight) { // w [n, k]: one dot per output
      out[e] = kernels::laneDot(xt, w + j * k, k);
      continue;
    }
    float sum = 0.0f; // w [k, n]: column j, rows in order
    for (int64_t i = 0; i < k; ++i)
      sum += xt[i] * w[i * n + j];
    out[e] = sum;
  }
}

/// Threads and keys per step of the GPU's cached attention.
constexpr int kDecodeThreads = 128, kDecodeKeys = 128;

inline size_t cachedAttentionSharedBytes(int64_t dqk, int64_t dv) {
  return sizeof(float) * size_t(dqk + dv + kDecodeKeys);
}

#if KILN_CUDA_DEVICE
/// Block per query r = (b * chunk + c) * heads + h: q and the output row in
/// shared memory, the keys [0, start[b] + c] in steps of kDecodeKeys.
__global__ void __launch_bounds__(kDecodeThreads)
    cachedAttentionBlockKernel(float *out, const float *q, const float *k, const float *v,
                               const int32_t *start, int64_t chunk, int64_t maxLen, int64_t heads,
                               int64_t kvHeads, int64_t dqk, int64_t dv, float scale) {
  extern __shared__ float shared[];
  __shared__ float tileScale, rowSum;
  float *qs = shared, *o = qs + dqk, *p = o + dv;
  const int64_t r = blockIdx.x, h = r % heads, b = r / heads / chunk, c = r / heads % chunk;
  if (!chunkInCache(start[b], chunk, maxLen)) {
    if (threadIdx.x == 0 && c == 0 && h == 0)
      KILN_DEVICE_ERROR(kBadCacheStart, b);
    return;
  }
  const int64_t g = h / (heads / kvHeads), ldk = kvHeads * dqk, ldv = kvHeads * dv;
  const float *kg = k + (b * maxLen * kvHeads + g) * dqk, *vg = v + (b * maxLen * kvHeads + g) * dv;
  const int64_t keys = int64_t(start[b]) + c + 1;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t d = threadIdx.x; d < dqk; d += kDecodeThreads)
    qs[d] = q[r * dqk + d];
  for (int64_t d = threadIdx.x; d < dv; d += kDecodeThreads)
    o[d] = 0.0f;
  float m = -INFINITY, l = 0.0f; // warp 0's running max and sum
  for (int64_t j0 = 0; j0 < keys; j0 += kDecodeKeys) {
    const int n = int(min(int64_t(kDecodeKeys), keys - j0));
    __syncthreads(); // q stored; the last step's p consumed
    for (int jj = warp; jj < n; jj += kDecodeThreads / 32) {
      const float *kj = kg + (j0 + jj) * ldk;
      float part = 0.0f;
      for (int64_t d = lane; d < dqk; d += 32)
        part += qs[d] * kj[d];
      part = warpSum(part);
      if (lane == 0)
        p[jj] = scale * part;
    }
    __syncthreads();
    if (warp == 0) {
      float mx = -INFINITY;
      for (int jj = lane; jj < n; jj += 32)
        mx = fmaxf(mx, p[jj]);
      const float mNew = fmaxf(m, warpMax(mx));
      float sum = 0.0f;
      for (int jj = lane; jj < n; jj += 32) {
        const float e = expf(p[jj] - mNew);
        p[jj] = e;
        sum += e;
      }
      const float alpha = expf(m - mNew); // 0 on the first step
      l = l * alpha + warpSum(sum);
      m = mNew;
      if (lane == 0)
        tileScale = alpha;
    }
    __syncthreads();
    const float alpha = tileScale;
    for (int64_t d = threadIdx.x; d < dv; d += kDecodeThreads) {
      float acc = o[d] * alpha;
      for (int jj = 0; jj < n; ++jj)
        acc += p[jj] * vg[(j0 + jj) * ldv + d];
      o[d] = acc;
    }
  }
  if (threadIdx.x == 0)
    rowSum = l;
  __syncthreads();
  const float inv = 1.0f / rowSum;
  for (int64_t d = threadIdx.x; d < dv; d += kDecodeThreads)
    out[r * dv + d] = o[d] * inv;
}
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

inline void ropeForwardAt(cudaStream_t stream, float *y, const float *x, const int32_t *start,
                          int64_t batch, int64_t seq, int64_t heads, int64_t dim, double theta,
                          bool interleaved, const kernels::YarnConfig *yarn,
                          bool transpose = false) {
  KILN_LAUNCH_CHECK(start != nullptr, "rope: expects a start buffer");
  detail::ropeAtPositions(stream, y, x, start, batch, seq, heads, dim, theta, interleaved, yarn,
                          transpose);
}

inline void cacheWrite(cudaStream_t stream, float *out, const float *cache, const float *rows,
                       const int32_t *start, int64_t batch, int64_t maxLen, int64_t chunk,
                       int64_t width) {
  KILN_LAUNCH_CHECK(batch >= 0 && maxLen >= 0 && chunk >= 0 && width >= 0,
                    "cache_write: expects batch, maxLen, chunk, width >= 0, got %lld, %lld, "
                    "%lld, %lld",
                    (long long)batch, (long long)maxLen, (long long)chunk, (long long)width);
  if (batch == 0)
    return;
  if (out != cache) {
    const int64_t n = std::max(batch * maxLen * width, batch);
    KILN_LAUNCH(cacheWriteCopyKernel, blocksFor(n), kBlock, 0, stream, out, cache, rows, start,
                batch, maxLen, chunk, width);
  } else {
    const int64_t n = std::max(batch * chunk * width, batch);
    KILN_LAUNCH(cacheWriteRowsKernel, blocksFor(n), kBlock, 0, stream, out, rows, start, batch,
                maxLen, chunk, width);
  }
}

inline void cachedAttention(cudaStream_t stream, float *out, const float *q, const float *k,
                            const float *v, const int32_t *start, int64_t batch, int64_t chunk,
                            int64_t maxLen, int64_t heads, int64_t kvHeads, int64_t dqk, int64_t dv,
                            float scale) {
  KILN_LAUNCH_CHECK(batch >= 0 && chunk >= 0 && maxLen >= 0 && heads > 0 && kvHeads > 0 &&
                        dqk > 0 && dv > 0,
                    "cached_attention: expects batch, chunk, maxLen >= 0 and heads, kvHeads, "
                    "dqk, dv > 0, got %lld, %lld, %lld, %lld, %lld, %lld, %lld",
                    (long long)batch, (long long)chunk, (long long)maxLen, (long long)heads,
                    (long long)kvHeads, (long long)dqk, (long long)dv);
  KILN_LAUNCH_CHECK(heads % kvHeads == 0,
                    "cached_attention: expects heads (%lld) divisible by kvHeads (%lld)",
                    (long long)heads, (long long)kvHeads);
  if (batch == 0)
    return;
  if (chunk == 0) { // no query, but the host checks the starts all the same
    KILN_LAUNCH(checkCacheStartsKernel, blocksFor(batch), kBlock, 0, stream, start, batch, chunk,
                maxLen);
    return;
  }
  const int64_t queries = batch * chunk * heads;
#if KILN_CUDA_DEVICE
  const size_t bytes = cachedAttentionSharedBytes(dqk, dv);
  if (queries <= 0x7fffffff && flashSharedFits((const void *)cachedAttentionBlockKernel, bytes)) {
    KILN_LAUNCH(cachedAttentionBlockKernel, unsigned(queries), kDecodeThreads, bytes, stream, out,
                q, k, v, start, chunk, maxLen, heads, kvHeads, dqk, dv, scale);
    return;
  }
#endif
  KILN_LAUNCH(cachedAttentionRowKernel, blocksFor(queries), kBlock, 0, stream, out, q, k, v, start,
              batch, chunk, maxLen, heads, kvHeads, dqk, dv, scale);
}

inline void headMatmul(cudaStream_t stream, float *out, const float *x, const float *weight,
                       int64_t batch, int64_t seq, int64_t heads, int64_t k, int64_t n,
                       bool transposeWeight) {
  KILN_LAUNCH_CHECK(batch >= 0 && seq >= 0 && heads > 0 && k > 0 && n > 0,
                    "head_matmul: expects batch, seq >= 0 and heads, k, n > 0, got %lld, %lld, "
                    "%lld, %lld, %lld",
                    (long long)batch, (long long)seq, (long long)heads, (long long)k, (long long)n);
  const int64_t outputs = batch * seq * heads * n;
  if (outputs > 0)
    KILN_LAUNCH(headMatmulKernel, blocksFor(outputs), kBlock, 0, stream, out, x, weight,
                batch * seq, heads, k, n, transposeWeight);
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_DECODE_CUH

//===- Attention.cuh - CUDA kernels of kiln.rope and kiln.attention -------===//
//
// The CUDA twins of runtime/kernels/Attention.h: each launcher has the host
// kernel's name and parameters (device pointers; `yarn` stays a host pointer,
// the op's constant configuration) after a leading stream.
//
//   - rope: one thread per (b, s, pair), its heads in a loop, so each cos/sin
//     is computed once, as the host's table entry is (AttentionMath.h's
//     ropeCosSin, f64). The inverse frequencies are RopeMath.h's, computed on
//     the host by the launcher and passed by value (at most kRopeMaxPairs
//     pairs, dim <= 512: a limit the host kernel does not have). Bit for bit
//     the host's on the CPU shim; on the GPU the f64 cos/sin of CUDA's libm
//     (<= 2 ulp in f64) can move a rounded f32 entry by one ulp, rarely, and
//     nvcc contracts the rotation into FMAs.
//   - attention: the host's products are OpenBLAS sgemms, whose summation
//     order is OpenBLAS's own, so no kernel can match it bit for bit; the
//     tests bound the difference (within float rounding). The reference
//     kernels (one thread per query row, or per key row for dk / dv, plain
//     loops, no scratch: the row's max and sum are recomputed in passes) run
//     on the CPU shim and are the GPU's fallback where the fused kernels do
//     not apply. On the GPU the launchers use fused flash-style kernels:
//     64 queries x 64 keys per step, 256 threads each owning a 4 x 4 piece of
//     the score tile, q / k / v / dout staged 32 (or 64) columns at a time
//     through shared memory, the output (or dq, dk, dv) accumulated in shared
//     memory, so any head dims work (dqk != dv as in MLA's 192 / 128), query
//     head h reads kv head h / (heads / kvHeads) (GQA, MQA), and causal blocks
//     stop at the diagonal tile.
//       forward: online softmax per row (running max and sum, one warp per
//       8 rows, shuffle reductions in a fixed tree).
//       backward: the host interface saves no softmax statistics (no output,
//       no log-sum-exp), so a first pass (the forward kernel, kStats) computes
//       each row's lse = max + log(sum) and D = dout . out and keeps them in
//       dq[b, i, h, 0..1] (dq is scratch until the last pass overwrites it;
//       needs dqk >= 2). Then one block per (b, kv head, key tile) loops over
//       the group's heads and the query tiles, recomputing P = exp(s - lse)
//       and dS = scale P (dP - D), and accumulates dK, dV in shared memory:
//       the block that owns a key tile is its only writer, so no atomics and
//       the same bits every run. Last, one block per (b, head, query tile)
//       accumulates dQ the same way over the key tiles and overwrites dq.
//     Tiles for sm_90a at dqk = 192, dv = 128 (DeepSeek-V3's MLA): the
//     forward takes 69.5 KiB of shared memory and 80 registers a thread
//     (3 blocks, 24 warps an SM), the dK / dV pass 137.5 KiB and 99
//     registers (1 block), the dQ pass 85.3 KiB and 128 registers (2
//     blocks); no spills. Above 48 KiB the launcher opts in; a shape whose
//     tiles exceed the device's opt-in limit (dqk + dv past about 650), or
//     dqk < 2 in the backward, takes the reference kernels, which are
//     correct but slow (the backward's key kernel recomputes each query
//     row's statistics).
//
// Why not cuDNN 9's SDPA (cudnn_graph.h, CUDNN_BACKEND_OPERATION_SDPA_*):
// its fused kernels take fp16 / bf16 / fp8 only, and Kiln's activations and
// these host kernels are f32; it would add libcudnn at run time and the
// cudnn-frontend graph API, which is not installed here; and the CPU shim
// tests could not run it. These kernels are deterministic by construction
// (no float atomics anywhere) and use CUDA cores in f32, so they are slower
// than a tensor-core kernel would be; a bf16 / TF32 wgmma path is future
// work.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_ATTENTION_CUH
#define KILN_RUNTIME_KERNELS_CUDA_ATTENTION_CUH

#include "runtime/kernels/AttentionMath.h"
#include "runtime/kernels/RopeMath.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kiln::cuda {

/// Device errors of this family (Device.cuh's codes are below 200): a rope
/// row's start[b] < 0; the index is b.
constexpr int32_t kNegativeStart = 200;

/// The rope's inverse frequencies, passed by value as kernel parameters
/// (2 KiB, well inside CUDA's 4 KiB).
constexpr int64_t kRopeMaxPairs = 256;
struct RopeFrequencies {
  double inv[kRopeMaxPairs];
};

//===----------------------------------------------------------------------===//
// Kernels: rope
//===----------------------------------------------------------------------===//

/// Thread per (b, s, i): the pair i of every head of token (b, s), rotated by
/// position * inv[i], the position being start[b] + s, or s without start.
__global__ void ropeKernel(float *y, const float *x, const int32_t *start, int64_t batch,
                           int64_t seq, int64_t heads, int64_t dim, bool interleaved,
                           double magnitude, double direction, RopeFrequencies freq) {
  const int64_t half = dim / 2, n = batch * seq * half;
  for (int64_t e = globalThread(); e < n; e += gridThreads()) {
    const int64_t i = e % half, token = e / half, b = token / seq;
    int64_t position = token % seq;
    if (start) {
      if (start[b] < 0) { // the host stops; record once per row, skip it
        if (position == 0 && i == 0)
          KILN_DEVICE_ERROR(kNegativeStart, b);
        continue;
      }
      position += int64_t(start[b]);
    }
    float c, s;
    kernels::ropeCosSin(position, freq.inv[i], magnitude, direction, &c, &s);
    const int64_t i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t base = (token * heads + h) * dim;
      const float x0 = x[base + i0], x1 = x[base + i1];
      kernels::ropeRotatePair(x0, x1, c, s, &y[base + i0], &y[base + i1]);
    }
  }
}

//===----------------------------------------------------------------------===//
// Kernels: attention, reference order (CPU shim, GPU fallback)
//===----------------------------------------------------------------------===//

/// scale * (a . b) over n elements, in index order.
__device__ __forceinline__ float scaledDot(const float *a, const float *b, int64_t n, float scale) {
  float sum = 0.0f;
  for (int64_t d = 0; d < n; ++d)
    sum += a[d] * b[d];
  return scale * sum;
}

/// One query row's softmax over keys [0, keys) of kv head rows kg (ldk
/// apart): the max score and 1 / sum exp(s - max), as DenseMath.h's
/// softmaxRowInPlace computes them, recomputing the scores per pass.
struct RowSoftmax {
  float max, inv;
};
__device__ __forceinline__ RowSoftmax rowSoftmax(const float *qi, const float *kg, int64_t ldk,
                                                 int64_t keys, int64_t dqk, float scale) {
  auto score = [&](int64_t j) { return scaledDot(qi, kg + j * ldk, dqk, scale); };
  const float m = kernels::laneMax(keys, score);
  return {m, 1.0f / kernels::laneSum(keys, [&](int64_t j) {
            return kernels::expFaithful(score(j) - m);
          })};
}

/// The pieces of row (b, i, h)'s softmax backward: its softmax and
/// D = sum_j P_j (dout_i . v_j).
struct RowGrad {
  RowSoftmax softmax;
  float sumPdp;
};
__device__ __forceinline__ RowGrad rowGrad(const float *qi, const float *doi, const float *kg,
                                           const float *vg, int64_t ldk, int64_t ldv, int64_t keys,
                                           int64_t dqk, int64_t dv, float scale) {
  const RowSoftmax sm = rowSoftmax(qi, kg, ldk, keys, dqk, scale);
  float sumPdp = 0.0f;
  for (int64_t j = 0; j < keys; ++j) {
    const float p = kernels::expFaithful(scaledDot(qi, kg + j * ldk, dqk, scale) - sm.max) * sm.inv;
    sumPdp += p * scaledDot(doi, vg + j * ldv, dv, 1.0f);
  }
  return {sm, sumPdp};
}

/// Thread per query row r = (b * seq + i) * heads + h (the layout's order).
__global__ void attentionForwardRowKernel(float *out, const float *q, const float *k,
                                          const float *v, int64_t batch, int64_t seq, int64_t heads,
                                          int64_t kvHeads, int64_t dqk, int64_t dv, float scale,
                                          bool causal) {
  const int64_t group = heads / kvHeads, ldk = kvHeads * dqk, ldv = kvHeads * dv;
  for (int64_t r = globalThread(); r < batch * seq * heads; r += gridThreads()) {
    const int64_t h = r % heads, b = r / heads / seq, i = r / heads % seq;
    const float *qi = q + r * dqk, *kg = k + (b * seq * kvHeads + h / group) * dqk,
                *vg = v + (b * seq * kvHeads + h / group) * dv;
    const int64_t keys = causal ? i + 1 : seq;
    const RowSoftmax sm = rowSoftmax(qi, kg, ldk, keys, dqk, scale);
    float *o = out + r * dv;
    for (int64_t d = 0; d < dv; ++d)
      o[d] = 0.0f;
    for (int64_t j = 0; j < keys; ++j) {
      const float p = kernels::expFaithful(scaledDot(qi, kg + j * ldk, dqk, scale) - sm.max) * sm.inv;
      for (int64_t d = 0; d < dv; ++d)
        o[d] += p * vg[j * ldv + d];
    }
  }
}

/// dq: thread per query row, dq_i = sum_j dS_ij k_j.
__global__ void attentionBackwardQueryRowKernel(float *dq, const float *q, const float *k,
                                                const float *v, const float *dout, int64_t batch,
                                                int64_t seq, int64_t heads, int64_t kvHeads,
                                                int64_t dqk, int64_t dv, float scale, bool causal) {
  const int64_t group = heads / kvHeads, ldk = kvHeads * dqk, ldv = kvHeads * dv;
  for (int64_t r = globalThread(); r < batch * seq * heads; r += gridThreads()) {
    const int64_t h = r % heads, b = r / heads / seq, i = r / heads % seq;
    const float *qi = q + r * dqk, *doi = dout + r * dv,
                *kg = k + (b * seq * kvHeads + h / group) * dqk,
                *vg = v + (b * seq * kvHeads + h / group) * dv;
    const int64_t keys = causal ? i + 1 : seq;
    const RowGrad g = rowGrad(qi, doi, kg, vg, ldk, ldv, keys, dqk, dv, scale);
    float *dqi = dq + r * dqk;
    for (int64_t d = 0; d < dqk; ++d)
      dqi[d] = 0.0f;
    for (int64_t j = 0; j < keys; ++j) {
      const float p = kernels::expFaithful(scaledDot(qi, kg + j * ldk, dqk, scale) - g.softmax.max) *
                      g.softmax.inv;
      const float ds =
          kernels::attentionScoreGrad(p, scaledDot(doi, vg + j * ldv, dv, 1.0f), g.sumPdp, scale);
      for (int64_t d = 0; d < dqk; ++d)
        dqi[d] += ds * kg[j * ldk + d];
    }
  }
}

/// dk, dv: thread per key row r = (b * seq + j) * kvHeads + g, the group's
/// heads then the query rows that see key j in order (the host's order);
/// each query row's statistics are recomputed (quadratic per thread: the
/// shim's sizes, or the GPU fallback for shapes the fused kernels refuse).
__global__ void attentionBackwardKeyRowKernel(float *dk, float *dv, const float *q, const float *k,
                                              const float *v, const float *dout, int64_t batch,
                                              int64_t seq, int64_t heads, int64_t kvHeads,
                                              int64_t dqk, int64_t dvDim, float scale,
                                              bool causal) {
  const int64_t group = heads / kvHeads, ldk = kvHeads * dqk, ldv = kvHeads * dvDim;
  for (int64_t r = globalThread(); r < batch * seq * kvHeads; r += gridThreads()) {
    const int64_t g = r % kvHeads, b = r / kvHeads / seq, j = r / kvHeads % seq;
    const float *kg = k + (b * seq * kvHeads + g) * dqk, *vg = v + (b * seq * kvHeads + g) * dvDim;
    float *dkj = dk + r * dqk, *dvj = dv + r * dvDim;
    for (int64_t d = 0; d < dqk; ++d)
      dkj[d] = 0.0f;
    for (int64_t d = 0; d < dvDim; ++d)
      dvj[d] = 0.0f;
    for (int64_t h = g * group; h < (g + 1) * group; ++h)
      for (int64_t i = causal ? j : 0; i < seq; ++i) {
        const float *qi = q + ((b * seq + i) * heads + h) * dqk,
                    *doi = dout + ((b * seq + i) * heads + h) * dvDim;
        const int64_t keys = causal ? i + 1 : seq;
        const RowGrad rg = rowGrad(qi, doi, kg, vg, ldk, ldv, keys, dqk, dvDim, scale);
        const float p =
            kernels::expFaithful(scaledDot(qi, kg + j * ldk, dqk, scale) - rg.softmax.max) *
            rg.softmax.inv;
        const float ds = kernels::attentionScoreGrad(p, scaledDot(doi, vg + j * ldv, dvDim, 1.0f),
                                                     rg.sumPdp, scale);
        for (int64_t d = 0; d < dqk; ++d)
          dkj[d] += ds * qi[d];
        for (int64_t d = 0; d < dvDim; ++d)
          dvj[d] += p * doi[d];
      }
  }
}

//===----------------------------------------------------------------------===//
// Kernels: attention, fused (GPU)
//===----------------------------------------------------------------------===//

/// Queries and keys per tile; threads per block (a 16 x 16 grid, each thread
/// rows ty + 16 r and columns tx + 16 c, r, c < 4, of a 64 x 64 tile, so a
/// warp reads 2 rows and 16 consecutive columns: no bank conflicts); dims
/// staged per step of a score product; the padded strides of the staged
/// operands and of the probability tiles.
constexpr int kTile = 64, kFlashThreads = 256, kStageDims = 32;
constexpr int kStageStride = kStageDims + 1, kProbStride = kTile + 1;
/// Floats of the staging area: two 64 x 33 operands of a score product, or
/// one 64 x 64 operand of an accumulation.
constexpr int kStageFloats = 2 * kTile * kStageStride;
/// Row stride of an accumulator [64, n] in shared memory: whole 64-column
/// steps, plus 16 so the two rows a warp touches fall in different banks.
__host__ __device__ inline int accumulatorStride(int64_t n) {
  return int((n + kTile - 1) / kTile * kTile + 16);
}

inline size_t flashForwardSharedBytes(int64_t dv) {
  return sizeof(float) *
         (size_t(kTile) * accumulatorStride(dv) + kStageFloats + kTile * kProbStride + 3 * kTile);
}
inline size_t flashKeySharedBytes(int64_t dqk, int64_t dv) {
  return sizeof(float) * (size_t(kTile) * (accumulatorStride(dqk) + accumulatorStride(dv)) +
                          kStageFloats + 2 * kTile * kProbStride + 2 * kTile);
}
inline size_t flashQuerySharedBytes(int64_t dqk) {
  return sizeof(float) *
         (size_t(kTile) * accumulatorStride(dqk) + kStageFloats + kTile * kProbStride + 2 * kTile);
}

#if KILN_CUDA_DEVICE
/// Max / sum over the warp, every lane getting the same bits (xor butterfly:
/// a + b and b + a round alike).
__device__ __forceinline__ float warpMax(float v) {
  for (int offset = 16; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
__device__ __forceinline__ float warpSum(float v) {
  for (int offset = 16; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

/// acc[r][c] = sum_d a[row][d] b[col][d] over this thread's piece of a
/// 64 x 64 tile: rows of a (lda apart; those past aRows read as 0) against
/// rows of b (ldb apart; past bRows 0), `dim` columns staged 32 at a time.
/// Starts with a barrier, so the caller may rewrite what it read before.
__device__ __forceinline__ void tileProduct(float (&acc)[4][4], const float *a, int64_t lda,
                                            int aRows, const float *b, int64_t ldb, int bRows,
                                            int dim, float *stage) {
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float *as = stage, *bs = stage + kTile * kStageStride;
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c)
      acc[r][c] = 0.0f;
  for (int d0 = 0; d0 < dim; d0 += kStageDims) {
    __syncthreads();
    for (int e = threadIdx.x; e < kTile * kStageDims; e += kFlashThreads) {
      const int row = e / kStageDims, d = e % kStageDims;
      const bool inDim = d0 + d < dim;
      as[row * kStageStride + d] = row < aRows && inDim ? a[row * lda + d0 + d] : 0.0f;
      bs[row * kStageStride + d] = row < bRows && inDim ? b[row * ldb + d0 + d] : 0.0f;
    }
    __syncthreads();
#pragma unroll 4
    for (int d = 0; d < kStageDims; ++d) {
      float av[4], bv[4];
#pragma unroll
      for (int r = 0; r < 4; ++r)
        av[r] = as[(ty + 16 * r) * kStageStride + d];
#pragma unroll
      for (int c = 0; c < 4; ++c)
        bv[c] = bs[(tx + 16 * c) * kStageStride + d];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          acc[r][c] += av[r] * bv[c];
    }
  }
}

/// acc[row][col] = rowScale[row] acc[row][col] + sum_j p(row, j) m[j][col]
/// for this thread's rows and the columns [0, n) of a shared accumulator
/// (stride ldc), p(row, j) being p[row][j], or p[j][row] when kTransposeP
/// (shared, stride kProbStride); m's rows are ldm apart, those past mRows
/// read as 0; rowScale null: 1. Starts with a barrier, as tileProduct.
template <bool kTransposeP>
__device__ __forceinline__ void tileAccumulate(float *acc, int ldc, int n, const float *rowScale,
                                               const float *p, const float *m, int64_t ldm,
                                               int mRows, float *stage) {
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (int n0 = 0; n0 < n; n0 += kTile) {
    __syncthreads();
    for (int e = threadIdx.x; e < kTile * kTile; e += kFlashThreads) {
      const int j = e / kTile, col = e % kTile;
      stage[e] = j < mRows && n0 + col < n ? m[j * ldm + n0 + col] : 0.0f;
    }
    __syncthreads();
    float o[4][4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const float s = rowScale ? rowScale[ty + 16 * r] : 1.0f;
#pragma unroll
      for (int c = 0; c < 4; ++c)
        o[r][c] = s * acc[(ty + 16 * r) * ldc + n0 + tx + 16 * c];
    }
#pragma unroll 4
    for (int j = 0; j < kTile; ++j) {
      float pv[4], mv[4];
#pragma unroll
      for (int r = 0; r < 4; ++r)
        pv[r] = kTransposeP ? p[j * kProbStride + ty + 16 * r] : p[(ty + 16 * r) * kProbStride + j];
#pragma unroll
      for (int c = 0; c < 4; ++c)
        mv[c] = stage[j * kTile + tx + 16 * c];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          o[r][c] += pv[r] * mv[c];
    }
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        acc[(ty + 16 * r) * ldc + n0 + tx + 16 * c] = o[r][c];
  }
}

/// Block per (b * heads + h, query tile), heaviest (last) tiles first: out
/// rows of the tile = softmax(scale q k^T [causal]) v, online over the key
/// tiles. kStats: instead of out, stores each row's lse = max + log(sum) and
/// D = dout . out at stats[b, i, h, 0..1] (stride dqk: dq as scratch).
template <bool kStats>
__global__ void __launch_bounds__(kFlashThreads)
    flashAttentionForwardKernel(float *out, const float *q, const float *k, const float *v,
                                const float *dout, int64_t seq, int64_t heads, int64_t kvHeads,
                                int dqk, int dv, float scale, bool causal) {
  extern __shared__ float shared[];
  const int ldc = accumulatorStride(dv);
  float *o = shared, *stage = o + kTile * ldc, *p = stage + kStageFloats;
  float *rowMax = p + kTile * kProbStride, *rowSum = rowMax + kTile, *rowScale = rowSum + kTile;
  const int64_t b = blockIdx.x / heads, h = blockIdx.x % heads, g = h / (heads / kvHeads);
  const int64_t q0 = int64_t(gridDim.y - 1 - blockIdx.y) * kTile;
  const int qRows = int(min(int64_t(kTile), seq - q0));
  const int64_t ldq = heads * dqk, ldk = kvHeads * dqk, ldv = kvHeads * dv;
  const float *qt = q + ((b * seq + q0) * heads + h) * dqk;
  const float *kg = k + (b * seq * kvHeads + g) * dqk, *vg = v + (b * seq * kvHeads + g) * dv;
  for (int e = threadIdx.x; e < kTile * ldc; e += kFlashThreads)
    o[e] = 0.0f;
  if (threadIdx.x < kTile) {
    rowMax[threadIdx.x] = -INFINITY;
    rowSum[threadIdx.x] = 0.0f;
  }
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t keyEnd = causal ? q0 + qRows : seq;
  for (int64_t k0 = 0; k0 < keyEnd; k0 += kTile) {
    const int kRows = int(min(int64_t(kTile), seq - k0));
    float s[4][4];
    tileProduct(s, qt, ldq, qRows, kg + k0 * ldk, ldk, kRows, dqk, stage);
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int row = ty + 16 * r, col = tx + 16 * c;
        const bool seen = row < qRows && col < kRows && (!causal || k0 + col <= q0 + row);
        p[row * kProbStride + col] = seen ? scale * s[r][c] : -INFINITY;
      }
    __syncthreads();
    // Warp w updates rows 8w .. 8w + 7, two columns per lane. A row with no
    // key seen yet (only rows past seq) shifts by 0, so exp gives 0, not NaN.
    for (int rr = 0; rr < kTile / 8; ++rr) {
      const int row = warp * (kTile / 8) + rr;
      float *pr = p + row * kProbStride;
      const float s0 = pr[lane], s1 = pr[lane + 32];
      const float mOld = rowMax[row], mNew = fmaxf(mOld, warpMax(fmaxf(s0, s1)));
      const float shift = mNew == -INFINITY ? 0.0f : mNew;
      const float p0 = expf(s0 - shift), p1 = expf(s1 - shift);
      pr[lane] = p0;
      pr[lane + 32] = p1;
      const float sum = warpSum(p0 + p1);
      if (lane == 0) {
        const float alpha = expf(mOld - shift);
        rowScale[row] = alpha;
        rowSum[row] = rowSum[row] * alpha + sum;
        rowMax[row] = mNew;
      }
    }
    tileAccumulate<false>(o, ldc, dv, rowScale, p, vg + k0 * ldv, ldv, kRows, stage);
  }
  __syncthreads();
  if constexpr (!kStats) {
    for (int e = threadIdx.x; e < qRows * dv; e += kFlashThreads) {
      const int row = e / dv, col = e % dv;
      out[((b * seq + q0 + row) * heads + h) * dv + col] =
          o[row * ldc + col] * (1.0f / rowSum[row]);
    }
  } else {
    for (int row = warp; row < qRows; row += kFlashThreads / 32) {
      const float *dor = dout + ((b * seq + q0 + row) * heads + h) * dv;
      float dot = 0.0f;
      for (int col = lane; col < dv; col += 32)
        dot += dor[col] * o[row * ldc + col];
      dot = warpSum(dot);
      if (lane == 0) {
        float *stats = out + ((b * seq + q0 + row) * heads + h) * dqk;
        stats[0] = rowMax[row] + logf(rowSum[row]);
        stats[1] = dot * (1.0f / rowSum[row]);
      }
    }
  }
}

/// Block per (b * kvHeads + g, key tile): dK, dV of the tile's keys, over
/// the group's heads and the query tiles that see them, reading each query
/// row's lse and D from stats (flashAttentionForwardKernel<true>).
__global__ void __launch_bounds__(kFlashThreads)
    flashAttentionBackwardKeyKernel(float *dk, float *dv, const float *q, const float *k,
                                    const float *v, const float *dout, const float *stats,
                                    int64_t seq, int64_t heads, int64_t kvHeads, int dqk, int dvDim,
                                    float scale, bool causal) {
  extern __shared__ float shared[];
  const int ldK = accumulatorStride(dqk), ldV = accumulatorStride(dvDim);
  float *dkAcc = shared, *dvAcc = dkAcc + kTile * ldK, *stage = dvAcc + kTile * ldV;
  float *p = stage + kStageFloats, *ds = p + kTile * kProbStride;
  float *lse = ds + kTile * kProbStride, *delta = lse + kTile;
  const int64_t b = blockIdx.x / kvHeads, g = blockIdx.x % kvHeads, group = heads / kvHeads;
  const int64_t k0 = int64_t(blockIdx.y) * kTile;
  const int kRows = int(min(int64_t(kTile), seq - k0));
  const int64_t ldq = heads * dqk, ldk = kvHeads * dqk, ldv = kvHeads * dvDim, ldo = heads * dvDim;
  const float *kt = k + ((b * seq + k0) * kvHeads + g) * dqk;
  const float *vt = v + ((b * seq + k0) * kvHeads + g) * dvDim;
  for (int e = threadIdx.x; e < kTile * ldK; e += kFlashThreads)
    dkAcc[e] = 0.0f;
  for (int e = threadIdx.x; e < kTile * ldV; e += kFlashThreads)
    dvAcc[e] = 0.0f;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (int64_t h = g * group; h < (g + 1) * group; ++h)
    for (int64_t q0 = causal ? k0 : 0; q0 < seq; q0 += kTile) {
      const int qRows = int(min(int64_t(kTile), seq - q0));
      const int64_t row0 = (b * seq + q0) * heads + h;
      if (threadIdx.x < qRows) {
        lse[threadIdx.x] = stats[(row0 + threadIdx.x * heads) * dqk];
        delta[threadIdx.x] = stats[(row0 + threadIdx.x * heads) * dqk + 1];
      }
      float s[4][4], dp[4][4];
      tileProduct(s, q + row0 * dqk, ldq, qRows, kt, ldk, kRows, dqk, stage);
      tileProduct(dp, dout + row0 * dvDim, ldo, qRows, vt, ldv, kRows, dvDim, stage);
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int row = ty + 16 * r, col = tx + 16 * c;
          const bool seen = row < qRows && col < kRows && (!causal || k0 + col <= q0 + row);
          const float pr = seen ? expf(scale * s[r][c] - lse[row]) : 0.0f;
          p[row * kProbStride + col] = pr;
          ds[row * kProbStride + col] =
              seen ? kernels::attentionScoreGrad(pr, dp[r][c], delta[row], scale) : 0.0f;
        }
      // dV_j += sum_i P_ij dout_i, dK_j += sum_i dS_ij q_i.
      tileAccumulate<true>(dvAcc, ldV, dvDim, nullptr, p, dout + row0 * dvDim, ldo, qRows, stage);
      tileAccumulate<true>(dkAcc, ldK, dqk, nullptr, ds, q + row0 * dqk, ldq, qRows, stage);
    }
  __syncthreads();
  for (int e = threadIdx.x; e < kRows * dqk; e += kFlashThreads)
    dk[((b * seq + k0 + e / dqk) * kvHeads + g) * dqk + e % dqk] = dkAcc[e / dqk * ldK + e % dqk];
  for (int e = threadIdx.x; e < kRows * dvDim; e += kFlashThreads)
    dv[((b * seq + k0 + e / dvDim) * kvHeads + g) * dvDim + e % dvDim] =
        dvAcc[e / dvDim * ldV + e % dvDim];
}

/// Block per (b * heads + h, query tile), heaviest first: dQ of the tile's
/// rows over the key tiles they see. Reads the rows' lse and D from dq
/// first, then overwrites those rows of dq (no other block reads them).
__global__ void __launch_bounds__(kFlashThreads)
    flashAttentionBackwardQueryKernel(float *dq, const float *q, const float *k, const float *v,
                                      const float *dout, int64_t seq, int64_t heads,
                                      int64_t kvHeads, int dqk, int dvDim, float scale,
                                      bool causal) {
  extern __shared__ float shared[];
  const int ldQ = accumulatorStride(dqk);
  float *dqAcc = shared, *stage = dqAcc + kTile * ldQ, *ds = stage + kStageFloats;
  float *lse = ds + kTile * kProbStride, *delta = lse + kTile;
  const int64_t b = blockIdx.x / heads, h = blockIdx.x % heads, g = h / (heads / kvHeads);
  const int64_t q0 = int64_t(gridDim.y - 1 - blockIdx.y) * kTile;
  const int qRows = int(min(int64_t(kTile), seq - q0));
  const int64_t ldq = heads * dqk, ldk = kvHeads * dqk, ldv = kvHeads * dvDim, ldo = heads * dvDim;
  const int64_t row0 = (b * seq + q0) * heads + h;
  const float *kg = k + (b * seq * kvHeads + g) * dqk, *vg = v + (b * seq * kvHeads + g) * dvDim;
  if (threadIdx.x < qRows) {
    lse[threadIdx.x] = dq[(row0 + threadIdx.x * heads) * dqk];
    delta[threadIdx.x] = dq[(row0 + threadIdx.x * heads) * dqk + 1];
  }
  for (int e = threadIdx.x; e < kTile * ldQ; e += kFlashThreads)
    dqAcc[e] = 0.0f;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t keyEnd = causal ? q0 + qRows : seq;
  for (int64_t k0 = 0; k0 < keyEnd; k0 += kTile) {
    const int kRows = int(min(int64_t(kTile), seq - k0));
    float s[4][4], dp[4][4];
    tileProduct(s, q + row0 * dqk, ldq, qRows, kg + k0 * ldk, ldk, kRows, dqk, stage);
    tileProduct(dp, dout + row0 * dvDim, ldo, qRows, vg + k0 * ldv, ldv, kRows, dvDim, stage);
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int row = ty + 16 * r, col = tx + 16 * c;
        const bool seen = row < qRows && col < kRows && (!causal || k0 + col <= q0 + row);
        const float pr = seen ? expf(scale * s[r][c] - lse[row]) : 0.0f;
        ds[row * kProbStride + col] =
            seen ? kernels::attentionScoreGrad(pr, dp[r][c], delta[row], scale) : 0.0f;
      }
    // dQ_i += sum_j dS_ij k_j.
    tileAccumulate<false>(dqAcc, ldQ, dqk, nullptr, ds, kg + k0 * ldk, ldk, kRows, stage);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < qRows * dqk; e += kFlashThreads)
    dq[(row0 + (e / dqk) * heads) * dqk + e % dqk] = dqAcc[e / dqk * ldQ + e % dqk];
}

/// Whether `bytes` of dynamic shared memory fit the current device (opt-in
/// limit, 227 KiB on H100), raising the kernel's limit to them if so.
inline bool flashSharedFits(const void *kernel, size_t bytes) {
  int device = 0, optIn = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&device));
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&optIn, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (bytes > size_t(optIn))
    return false;
  KILN_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  return true;
}
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

namespace detail {

/// Attention.cpp's checkAttention.
inline void checkAttention(int64_t batch, int64_t seq, int64_t heads, int64_t kvHeads, int64_t dqk,
                           int64_t dv) {
  KILN_LAUNCH_CHECK(batch >= 0 && seq >= 0 && heads > 0 && kvHeads > 0 && dqk > 0 && dv > 0,
                    "expects batch, seq >= 0 and heads, kvHeads, dqk, dv > 0, got %lld, %lld, "
                    "%lld, %lld, %lld, %lld",
                    (long long)batch, (long long)seq, (long long)heads, (long long)kvHeads,
                    (long long)dqk, (long long)dv);
  KILN_LAUNCH_CHECK(heads % kvHeads == 0, "expects heads (%lld) divisible by kvHeads (%lld)",
                    (long long)heads, (long long)kvHeads);
}

/// The fused kernels' grid: (b, head) pairs along x, 64-row tiles along y.
inline bool flashGridFits(int64_t pairs, int64_t seq) {
  return pairs <= 0x7fffffff && (seq + kTile - 1) / kTile <= 65535;
}

inline void ropeAtPositions(cudaStream_t stream, float *y, const float *x, const int32_t *start,
                            int64_t batch, int64_t seq, int64_t heads, int64_t dim, double theta,
                            bool interleaved, const kernels::YarnConfig *yarn, bool transpose) {
  KILN_LAUNCH_CHECK(batch >= 0 && seq >= 0 && heads > 0 && dim > 0 && dim % 2 == 0,
                    "expects batch, seq >= 0, heads > 0 and an even dim > 0, got %lld, %lld, "
                    "%lld, %lld",
                    (long long)batch, (long long)seq, (long long)heads, (long long)dim);
  KILN_LAUNCH_CHECK(theta > 1, "expects theta > 1, got %g", theta);
  KILN_LAUNCH_CHECK(dim / 2 <= kRopeMaxPairs,
                    "expects dim <= %lld (the frequencies are kernel parameters), got %lld",
                    (long long)(2 * kRopeMaxPairs), (long long)dim);
  const int64_t half = dim / 2, n = batch * seq * half;
  if (n == 0)
    return;
  RopeFrequencies freq{};
  const std::vector<double> inv = kernels::ropeInverseFrequencies(dim, theta, yarn);
  std::copy(inv.begin(), inv.end(), freq.inv);
  KILN_LAUNCH(ropeKernel, blocksFor(n), kBlock, 0, stream, y, x, start, batch, seq, heads, dim,
              interleaved, kernels::ropeMagnitude(yarn), transpose ? -1.0 : 1.0, freq);
}

} // namespace detail

inline void ropeForward(cudaStream_t stream, float *y, const float *x, int64_t batch, int64_t seq,
                        int64_t heads, int64_t dim, double theta, bool interleaved,
                        const kernels::YarnConfig *yarn, bool transpose = false) {
  detail::ropeAtPositions(stream, y, x, /*start=*/nullptr, batch, seq, heads, dim, theta,
                          interleaved, yarn, transpose);
}

inline void attentionForward(cudaStream_t stream, float *out, const float *q, const float *k,
                             const float *v, int64_t batch, int64_t seq, int64_t heads,
                             int64_t kvHeads, int64_t dqk, int64_t dv, float scale, bool causal) {
  detail::checkAttention(batch, seq, heads, kvHeads, dqk, dv);
  if (batch == 0 || seq == 0)
    return;
#if KILN_CUDA_DEVICE
  const size_t bytes = flashForwardSharedBytes(dv);
  if (detail::flashGridFits(batch * heads, seq) &&
      flashSharedFits((const void *)flashAttentionForwardKernel<false>, bytes)) {
    const dim3 grid(unsigned(batch * heads), unsigned((seq + kTile - 1) / kTile));
    KILN_LAUNCH(flashAttentionForwardKernel<false>, grid, kFlashThreads, bytes, stream, out, q, k,
                v, nullptr, seq, heads, kvHeads, int(dqk), int(dv), scale, causal);
    return;
  }
#endif
  KILN_LAUNCH(attentionForwardRowKernel, blocksFor(batch * seq * heads), kBlock, 0, stream, out, q,
              k, v, batch, seq, heads, kvHeads, dqk, dv, scale, causal);
}

inline void attentionBackward(cudaStream_t stream, float *dq, float *dk, float *dv, const float *q,
                              const float *k, const float *v, const float *dout, int64_t batch,
                              int64_t seq, int64_t heads, int64_t kvHeads, int64_t dqk,
                              int64_t dvDim, float scale, bool causal) {
  detail::checkAttention(batch, seq, heads, kvHeads, dqk, dvDim);
  if (batch == 0 || seq == 0)
    return;
#if KILN_CUDA_DEVICE
  // dqk >= 2: dq holds each row's (lse, D) between the passes.
  const size_t statsBytes = flashForwardSharedBytes(dvDim),
               keyBytes = flashKeySharedBytes(dqk, dvDim), queryBytes = flashQuerySharedBytes(dqk);
  if (dqk >= 2 && detail::flashGridFits(batch * heads, seq) &&
      flashSharedFits((const void *)flashAttentionForwardKernel<true>, statsBytes) &&
      flashSharedFits((const void *)flashAttentionBackwardKeyKernel, keyBytes) &&
      flashSharedFits((const void *)flashAttentionBackwardQueryKernel, queryBytes)) {
    const unsigned tiles = unsigned((seq + kTile - 1) / kTile);
    KILN_LAUNCH(flashAttentionForwardKernel<true>, dim3(unsigned(batch * heads), tiles),
                kFlashThreads, statsBytes, stream, dq, q, k, v, dout, seq, heads, kvHeads, int(dqk),
                int(dvDim), scale, causal);
    KILN_LAUNCH(flashAttentionBackwardKeyKernel, dim3(unsigned(batch * kvHeads), tiles),
                kFlashThreads, keyBytes, stream, dk, dv, q, k, v, dout, dq, seq, heads, kvHeads,
                int(dqk), int(dvDim), scale, causal);
    KILN_LAUNCH(flashAttentionBackwardQueryKernel, dim3(unsigned(batch * heads), tiles),
                kFlashThreads, queryBytes, stream, dq, q, k, v, dout, seq, heads, kvHeads, int(dqk),
                int(dvDim), scale, causal);
    return;
  }
#endif
  KILN_LAUNCH(attentionBackwardQueryRowKernel, blocksFor(batch * seq * heads), kBlock, 0, stream,
              dq, q, k, v, dout, batch, seq, heads, kvHeads, dqk, dvDim, scale, causal);
  KILN_LAUNCH(attentionBackwardKeyRowKernel, blocksFor(batch * seq * kvHeads), kBlock, 0, stream,
              dk, dv, q, k, v, dout, batch, seq, heads, kvHeads, dqk, dvDim, scale, causal);
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_ATTENTION_CUH

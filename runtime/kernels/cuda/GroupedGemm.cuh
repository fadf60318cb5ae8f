//===- GroupedGemm.cuh - the expert (grouped) GEMMs, offsets on the device -===//
//
// The CUDA twins of runtime/kernels/MoE.h's groupedMatmul,
// groupedMatmulDgrad and groupedMatmulWgrad (f32) and of NarrowGemm.h's bf16
// and f16 overloads of them: expert e's rows [offsets[e], offsets[e+1]) of
// the expert-major activations meet its weights [N, K]; rows from
// offsets[experts] on (receive-buffer capacity) are zero in the results.
//
// Decision: Kiln's own kernel, not cuBLASLt. The offsets live on the device
// (kiln.dispatch or an expert-parallel exchange writes them mid-step), and
// the per-expert GEMM shapes follow from them. This CUDA 13.1 cuBLASLt has
// only strided and pointer-array batches (cublasLtBatchMode_t), whose
// instances all share one shape; cublasGemmGroupedBatchedEx (cublas_api.h)
// takes per-group m/n/k in host arrays. Either would need the offsets copied
// to the host and a stream sync per expert layer, which would stall the
// step and break CUDA-graph capture. (Later cuBLAS releases document an
// experimental CUBLASLT_BATCH_MODE_GROUPED with device-side shape arrays on
// sm_90 for bf16/f16/FP8, not f32; it is absent from this header. It is the
// candidate to replace the bf16/f16 kernel here when the toolkit moves.)
//
// So one launch per op covers all experts: a 64x64 output tile per
// 256-thread block, 16-deep K slices staged in shared memory as f32 (bf16
// and f16 widened on load), a 4x4 register tile per thread. The forward and
// dgrad kernels walk row tiles of every expert without a prefix sum: expert
// e's tiles are numbered from offsets[e] / 64 + e (fp8GroupedScaleRowBase's
// trick), so a block finds its expert by binary search over the offsets and
// the grid (rows / 64 + experts row tiles) is known on the host. Wgrad runs
// a grid over (K tiles, N tiles, experts), each block contracting over its
// expert's rows. Cost: CUDA-core FMAs, no tensor cores, so at best some
// 10-20 TFLOPS on an H100 SXM (its f32 peak is 67), for bf16 and FP8
// alike, against the 600+ a wgmma grouped kernel reaches in bf16 (989
// peak) and more in FP8 (1979): in a bf16 or FP8 MoE step the expert GEMMs
// become the bottleneck by well over an order of magnitude.
// test/cuda/gemm_check.cu measures it. A wgmma/TMA grouped kernel (as
// DeepGEMM's) is the follow-up; correctness and no host sync come first.
//
// Order and bits. Each thread sums its outputs over K in order with fused
// multiply-adds. bf16/f16 products are exact in f32, so an FMA rounds as the
// reference order's add does: on the GPU the tiled kernel gives the
// reference kernel's bits (gemm_check checks it; products below f32's normal
// range, |x| < 2^-126, are the one exception). Against the host (OpenBLAS's
// blocked order) both agree within f32 accumulation error, bounded by
// 2 K 2^-24 sum_l |a_l b_l|, then one rounding of each bf16/f16 result.
// In shim builds the launchers run the reference-order kernels (one thread
// per output, K in order, no shared memory), which CudaShimGemmTest compares
// with the host kernels: within that bound on random data, bit for bit on
// integer-valued data (every partial sum exact, so order cannot matter).
//
// Errors. The host returns false for K, N or experts below 1 (same messages
// here, on the host side of the launch) and for offsets that do not start at
// 0, decrease or pass rows. The CUDA launchers cannot read the offsets
// without a sync: they return true once launched, and a one-thread kernel
// records kBadExpertOffsets (index: the first offending entry of offsets)
// for takeDeviceError; the GEMM kernels skip an expert whose range is not
// within [0, rows] and ascending, so they never read or write out of bounds.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_GROUPEDGEMM_CUH
#define KILN_RUNTIME_KERNELS_CUDA_GROUPEDGEMM_CUH

#include "runtime/kernels/Precision.h"
#include "runtime/kernels/cuda/Device.cuh"
#include "runtime/kernels/cuda/Gemm.cuh"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

namespace kiln::cuda {

//===----------------------------------------------------------------------===//
// Kernels: offsets
//===----------------------------------------------------------------------===//

/// Precision.cpp's scaleIndex: the scale of element [r, c] of a tiled
/// matrix (r < t.rows, so t.rows > 0).
__device__ __forceinline__ int64_t tileScaleIndex(const kernels::Fp8Tiles &t, int64_t r,
                                                  int64_t c) {
  const int64_t matrixRows = t.rows / t.matrices;
  const int64_t perMatrix = (matrixRows + t.tileRows - 1) / t.tileRows;
  return ((r / matrixRows) * perMatrix + (r % matrixRows) / t.tileRows) *
             ((t.cols + t.tileCols - 1) / t.tileCols) +
         c / t.tileCols;
}

/// ExpertOffsets.h's check, recorded rather than returned: one thread, in
/// order, so the index is the first bad entry whatever the launch.
__global__ void groupedGemmOffsetsCheckKernel(const int32_t *offsets, int64_t experts,
                                              int64_t rows) {
  if (globalThread() != 0)
    return;
  if (offsets[0] != 0) {
    KILN_DEVICE_ERROR(kBadExpertOffsets, 0);
    return;
  }
  for (int64_t e = 1; e <= experts; ++e)
    if (offsets[e] < offsets[e - 1]) {
      KILN_DEVICE_ERROR(kBadExpertOffsets, e);
      return;
    }
  if (offsets[experts] > rows)
    KILN_DEVICE_ERROR(kBadExpertOffsets, experts);
}

/// Expert e's row range, or false when it is not within [0, rows] and
/// ascending (the check kernel reports that; the GEMMs skip the expert).
__device__ __forceinline__ bool expertRows(const int32_t *offsets, int64_t e, int64_t rows,
                                           int64_t &first, int64_t &last) {
  first = offsets[e];
  last = offsets[e + 1];
  return first >= 0 && first <= last && last <= rows;
}

/// The expert whose rows hold row r, or -1 (r past the last expert, or the
/// offsets are bad): the largest e with offsets[e] <= r, by binary search.
__device__ __forceinline__ int64_t expertOfRow(const int32_t *offsets, int64_t experts,
                                               int64_t rows, int64_t r) {
  if (experts < 1)
    return -1;
  int64_t lo = 0, hi = experts - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (offsets[mid] <= r)
      lo = mid;
    else
      hi = mid - 1;
  }
  int64_t first, last;
  return expertRows(offsets, lo, rows, first, last) && first <= r && r < last ? lo : -1;
}

/// Rows from offsets[experts] (clamped to [0, rows]) on are zero, as the
/// host fills them; the grid strides from there, so the work is the tail's.
template <typename T>
__global__ void groupedGemmTailZeroKernel(T *out, const int32_t *offsets, int64_t experts,
                                          int64_t rows, int64_t cols) {
  int64_t end = offsets[experts];
  end = end < 0 ? 0 : end > rows ? rows : end;
  for (int64_t i = end * cols + globalThread(); i < rows * cols; i += gridThreads())
    out[i] = kernels::narrowTo<T>(0.0f);
}

//===----------------------------------------------------------------------===//
// Kernels: reference order (the CPU shim's)
//===----------------------------------------------------------------------===//

/// Forward and dgrad: out [rows, cols] row r = x [rows, inner] row r times
/// expert e's weights, element (l, j) at weight[e * cols * inner + l * wl +
/// j * wj] (forward: wl 1, wj K; dgrad: wl K, wj 1); zero past the experts.
template <typename T>
__global__ void groupedGemmRowsReferenceKernel(T *out, const T *x, const T *weight,
                                               const int32_t *offsets, int64_t rows, int64_t inner,
                                               int64_t cols, int64_t experts, int64_t wl,
                                               int64_t wj) {
  for (int64_t t = globalThread(); t < rows * cols; t += gridThreads()) {
    const int64_t r = t / cols, j = t % cols;
    const int64_t e = expertOfRow(offsets, experts, rows, r);
    float acc = 0.0f;
    if (e >= 0) {
      const T *px = x + r * inner, *pw = weight + e * cols * inner + j * wj;
      for (int64_t l = 0; l < inner; ++l)
        acc += kernels::widen(px[l]) * kernels::widen(pw[l * wl]);
    }
    out[t] = kernels::narrowTo<T>(acc);
  }
}

/// Wgrad: dweight [experts, n, k], element (e, i, j) = sum over expert e's
/// rows r, in order, of dy[r, i] x[r, j]; zero for an empty expert.
template <typename T>
__global__ void groupedGemmWgradReferenceKernel(T *dweight, const T *dy, const T *x,
                                                const int32_t *offsets, int64_t rows, int64_t n,
                                                int64_t k, int64_t experts) {
  for (int64_t t = globalThread(); t < experts * n * k; t += gridThreads()) {
    const int64_t e = t / (n * k), i = (t / k) % n, j = t % k;
    int64_t first, last;
    float acc = 0.0f;
    if (expertRows(offsets, e, rows, first, last))
      for (int64_t r = first; r < last; ++r)
        acc += kernels::widen(dy[r * n + i]) * kernels::widen(x[r * k + j]);
    dweight[t] = kernels::narrowTo<T>(acc);
  }
}

//===----------------------------------------------------------------------===//
// Kernels: the tiled GPU GEMM (also GemmFp8.cuh's)
//===----------------------------------------------------------------------===//

#if KILN_CUDA_DEVICE
constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kTileThreads = 256;

/// One operand of a tile problem seen as [other, K]: element (i, l) at
/// values[i * stride + l], or values[l * stride + i] when stored K-major.
template <typename T> struct TileOperand {
  const T *values;
  int64_t stride;
  bool kMajor;
};

/// C [m, n] (row stride ldc) = A [m, K] B [n, K]^T for one problem.
template <typename TA, typename TB, typename TC> struct TileProblem {
  TileOperand<TA> a;
  TileOperand<TB> b;
  TC *c;
  int64_t ldc, m, n, k;
};

/// Block scales of a tile problem (FP8): the scale of A's element (i, k0)
/// (K block starting at k0) is scalesA[scaleIndex(i, k0)] with Kiln's
/// tiling (Precision.cpp's blockScale), B's likewise.
struct TileScales {
  const float *scales;
  kernels::Fp8Tiles tiles;
  bool kMajor;
};

__device__ __forceinline__ float tileScale(const TileScales &s, int64_t i, int64_t k0) {
  return s.scales[s.kMajor ? tileScaleIndex(s.tiles, k0, i) : tileScaleIndex(s.tiles, i, k0)];
}

/// Stages A's (or B's) [kTileK, kTileM] slice at rows row0.., K k0.. as f32.
/// Past the problem: A pads 0 and B pads -0, so a padded product is -0 and
/// adding it leaves any sum's bits alone (+0 + -0 = +0, -0 + -0 = -0).
template <typename T>
__device__ __forceinline__ void stageTile(float (*tile)[kTileM + 4], const TileOperand<T> &op,
                                          int64_t row0, int64_t rowCount, int64_t k0, int64_t k,
                                          float pad) {
  for (int idx = threadIdx.x; idx < kTileK * kTileM; idx += kTileThreads) {
    // Consecutive threads walk the operand's contiguous dimension.
    const int ii = op.kMajor ? idx % kTileM : idx / kTileK;
    const int kk = op.kMajor ? idx / kTileM : idx % kTileK;
    const int64_t i = row0 + ii, l = k0 + kk;
    tile[kk][ii] = i < rowCount && l < k ? kernels::widen(op.kMajor ? op.values[l * op.stride + i]
                                                                    : op.values[i * op.stride + l])
                                         : pad;
  }
}

/// The C tile [row0, row0 + 64) x [col0, col0 + 64) of `p`: thread (tx, ty)
/// owns rows ty + 16 ii and columns tx + 16 jj. With kScaled, each 128-wide
/// K block's sums are promoted with the scales (promoteFp8Block).
template <bool kScaled, typename TA, typename TB, typename TC>
__device__ __forceinline__ void tileGemm(const TileProblem<TA, TB, TC> &p, int64_t row0,
                                         int64_t col0, const TileScales &sa, const TileScales &sb) {
  __shared__ float as[kTileK][kTileM + 4], bs[kTileK][kTileN + 4];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {}, part[4][4] = {};
  for (int64_t k0 = 0; k0 < p.k; k0 += kTileK) {
    stageTile(as, p.a, row0, p.m, k0, p.k, 0.0f);
    stageTile(bs, p.b, col0, p.n, k0, p.k, -0.0f);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        a[q] = as[kk][ty + 16 * q];
        b[q] = bs[kk][tx + 16 * q];
      }
#pragma unroll
      for (int ii = 0; ii < 4; ++ii)
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) {
          if constexpr (kScaled)
            part[ii][jj] = fmaf(a[ii], b[jj], part[ii][jj]);
          else
            acc[ii][jj] = fmaf(a[ii], b[jj], acc[ii][jj]);
        }
    }
    __syncthreads();
    if constexpr (kScaled) {
      if ((k0 + kTileK) % kernels::kFp8BlockSize == 0 || k0 + kTileK >= p.k) {
        const int64_t blockStart = k0 / kernels::kFp8BlockSize * kernels::kFp8BlockSize;
        float scaleA[4], scaleB[4];
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int64_t i = row0 + ty + 16 * q, j = col0 + tx + 16 * q;
          scaleA[q] = i < p.m ? tileScale(sa, i, blockStart) : 0.0f;
          scaleB[q] = j < p.n ? tileScale(sb, j, blockStart) : 0.0f;
        }
#pragma unroll
        for (int ii = 0; ii < 4; ++ii)
#pragma unroll
          for (int jj = 0; jj < 4; ++jj) {
            acc[ii][jj] = promoteFp8Block(acc[ii][jj], part[ii][jj], scaleA[ii], scaleB[jj]);
            part[ii][jj] = 0.0f;
          }
      }
    }
  }
#pragma unroll
  for (int ii = 0; ii < 4; ++ii)
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      const int64_t i = row0 + ty + 16 * ii, j = col0 + tx + 16 * jj;
      if (i < p.m && j < p.n)
        p.c[i * p.ldc + j] = kernels::narrowTo<TC>(acc[ii][jj]);
    }
}

/// The expert and first row of row tile `tile` (numbered from offsets[e] /
/// kTileM + e per expert), or false when the tile holds no rows.
__device__ __forceinline__ bool rowTileOf(const int32_t *offsets, int64_t experts, int64_t rows,
                                          int64_t tile, int64_t &e, int64_t &first, int64_t &last,
                                          int64_t &row0) {
  if (experts < 1)
    return false;
  int64_t lo = 0, hi = experts - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (offsets[mid] / kTileM + mid <= tile)
      lo = mid;
    else
      hi = mid - 1;
  }
  e = lo;
  if (!expertRows(offsets, e, rows, first, last))
    return false;
  const int64_t local = tile - (first / kTileM + e);
  row0 = local * kTileM;
  return local >= 0 && first + row0 < last;
}

/// Forward / dgrad: block (x, y) computes row tile x (of its expert), column
/// tile y; weights as groupedGemmRowsReferenceKernel reads them.
template <typename T>
__global__ void __launch_bounds__(kTileThreads)
    groupedGemmRowsTiledKernel(T *out, const T *x, const T *weight, const int32_t *offsets,
                               int64_t rows, int64_t inner, int64_t cols, int64_t experts,
                               bool weightKMajor) {
  int64_t e, first, last, row0;
  if (!rowTileOf(offsets, experts, rows, blockIdx.x, e, first, last, row0))
    return;
  // B is expert e's weights as [cols, inner]: forward reads W [N, K] rows,
  // dgrad reads W [N, K] K-major (its rows are the contracted N).
  const TileProblem<T, T, T> p{
      {x + first * inner, inner, false},
      {weight + e * cols * inner, weightKMajor ? cols : inner, weightKMajor},
      out + first * cols,
      cols,
      last - first,
      cols,
      inner};
  tileGemm<false>(p, row0, int64_t(blockIdx.y) * kTileN, TileScales{}, TileScales{});
}

/// Wgrad: block (x, y, z) computes tile (y, x) of expert z's dweight [n, k],
/// contracting over the expert's rows (both operands K-major).
template <typename T>
__global__ void __launch_bounds__(kTileThreads)
    groupedGemmWgradTiledKernel(T *dweight, const T *dy, const T *x, const int32_t *offsets,
                                int64_t rows, int64_t n, int64_t k) {
  const int64_t e = blockIdx.z;
  int64_t first, last;
  if (!expertRows(offsets, e, rows, first, last))
    first = last = 0; // a bad range contributes nothing: zeros
  const TileProblem<T, T, T> p{{dy + first * n, n, true},
                               {x + first * k, k, true},
                               dweight + e * n * k,
                               k,
                               n,
                               k,
                               last - first};
  tileGemm<false>(p, int64_t(blockIdx.y) * kTileM, int64_t(blockIdx.x) * kTileN, TileScales{},
                  TileScales{});
}
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

/// MoE.cpp's checkPositive: false with its message.
inline bool groupedGemmSizes(std::string *error, const char *op, int64_t rows,
                             std::initializer_list<std::pair<const char *, int64_t>> sizes) {
  for (auto [name, value] : sizes)
    if (value < 1) {
      if (error)
        *error = std::string(op) + ": " + name + " must be >= 1, got " + std::to_string(value);
      return false;
    }
  if (rows < 0) { // the host's offsets check catches it (offsets[experts] > rows)
    if (error)
      *error = std::string(op) + ": rows must be >= 0, got " + std::to_string(rows);
    return false;
  }
  return true;
}

/// The offsets check, enqueued (its error surfaces in takeDeviceError).
inline void checkExpertOffsetsOnDevice(cudaStream_t stream, const int32_t *offsets, int64_t experts,
                                       int64_t rows) {
  KILN_LAUNCH(groupedGemmOffsetsCheckKernel, 1, 1, 0, stream, offsets, experts, rows);
}

/// Zeroes rows from offsets[experts] on.
template <typename T>
inline void zeroRowsPastExperts(cudaStream_t stream, T *out, const int32_t *offsets,
                                int64_t experts, int64_t rows, int64_t cols) {
  const unsigned blocks = blocksFor(rows * cols) < 4096 ? blocksFor(rows * cols) : 4096;
  KILN_LAUNCH(groupedGemmTailZeroKernel<T>, blocks, kBlock, 0, stream, out, offsets, experts, rows,
              cols);
}

/// Forward (weightKMajor false: out [rows, n] = x [rows, k] W_e^T) and dgrad
/// (true: out [rows, k] = dy [rows, n] W_e), `inner` being the contracted
/// size and `cols` the result's.
template <typename T>
inline bool groupedGemmRows(cudaStream_t stream, const char *op, T *out, const T *x,
                            const T *weight, const int32_t *offsets, int64_t rows, int64_t inner,
                            int64_t cols, int64_t experts, bool weightKMajor, int64_t k, int64_t n,
                            std::string *error) {
  if (!groupedGemmSizes(error, op, rows, {{"K", k}, {"N", n}, {"experts", experts}}))
    return false;
  checkExpertOffsetsOnDevice(stream, offsets, experts, rows);
  if (rows == 0)
    return true;
#if KILN_CUDA_DEVICE
  const int64_t rowTiles = rows / kTileM + experts, colTiles = (cols + kTileN - 1) / kTileN;
  KILN_LAUNCH_CHECK(rowTiles <= 0x7fffffff && colTiles <= 65535,
                    "%s: %lld row tiles x %lld column tiles exceed the grid", op,
                    (long long)rowTiles, (long long)colTiles);
  KILN_LAUNCH(groupedGemmRowsTiledKernel<T>, dim3(unsigned(rowTiles), unsigned(colTiles)),
              kTileThreads, 0, stream, out, x, weight, offsets, rows, inner, cols, experts,
              weightKMajor);
  zeroRowsPastExperts(stream, out, offsets, experts, rows, cols);
#else
  KILN_LAUNCH(groupedGemmRowsReferenceKernel<T>, blocksFor(rows * cols), kBlock, 0, stream, out, x,
              weight, offsets, rows, inner, cols, experts, weightKMajor ? cols : 1,
              weightKMajor ? 1 : inner);
#endif
  return true;
}

template <typename T>
inline bool groupedGemmWgrad(cudaStream_t stream, const T *dy, const T *x, const int32_t *offsets,
                             int64_t rows, int64_t n, int64_t k, int64_t experts, T *dweight,
                             std::string *error) {
  if (!groupedGemmSizes(error, "grouped_matmul_wgrad", rows,
                        {{"K", k}, {"N", n}, {"experts", experts}}))
    return false;
  checkExpertOffsetsOnDevice(stream, offsets, experts, rows);
#if KILN_CUDA_DEVICE
  const int64_t colTiles = (k + kTileN - 1) / kTileN, rowTiles = (n + kTileM - 1) / kTileM;
  KILN_LAUNCH_CHECK(colTiles <= 0x7fffffff && rowTiles <= 65535 && experts <= 65535,
                    "grouped_matmul_wgrad: %lld x %lld tiles x %lld experts exceed the grid",
                    (long long)colTiles, (long long)rowTiles, (long long)experts);
  KILN_LAUNCH(groupedGemmWgradTiledKernel<T>,
              dim3(unsigned(colTiles), unsigned(rowTiles), unsigned(experts)), kTileThreads, 0,
              stream, dweight, dy, x, offsets, rows, n, k);
#else
  KILN_LAUNCH(groupedGemmWgradReferenceKernel<T>, blocksFor(experts * n * k), kBlock, 0, stream,
              dweight, dy, x, offsets, rows, n, k, experts);
#endif
  return true;
}

// The host's overloads: f32 (MoE.h), bf16 and f16 (NarrowGemm.h). True once
// launched; bad offsets come back through takeDeviceError (see the top).
#define KILN_CUDA_GROUPED_GEMMS(T)                                                                 \
  /** x [rows, K], weight [experts, N, K] -> out [rows, N]. */                                     \
  inline bool groupedMatmul(cudaStream_t stream, const T *x, const T *weight,                      \
                            const int32_t *offsets, int64_t rows, int64_t k, int64_t experts,      \
                            int64_t n, T *out, std::string *error = nullptr) {                     \
    return groupedGemmRows(stream, "grouped_matmul", out, x, weight, offsets, rows, k, n, experts, \
                           false, k, n, error);                                                    \
  }                                                                                                \
  /** dy [rows, N], weight [experts, N, K] -> dx [rows, K]. */                                     \
  inline bool groupedMatmulDgrad(cudaStream_t stream, const T *dy, const T *weight,                \
                                 const int32_t *offsets, int64_t rows, int64_t n, int64_t experts, \
                                 int64_t k, T *dx, std::string *error = nullptr) {                 \
    return groupedGemmRows(stream, "grouped_matmul_dgrad", dx, dy, weight, offsets, rows, n, k,    \
                           experts, true, k, n, error);                                            \
  }                                                                                                \
  /** dy [rows, N], x [rows, K] -> dweight [experts, N, K] (zero for empty experts). */            \
  inline bool groupedMatmulWgrad(cudaStream_t stream, const T *dy, const T *x,                     \
                                 const int32_t *offsets, int64_t rows, int64_t n, int64_t k,       \
                                 int64_t experts, T *dweight, std::string *error = nullptr) {      \
    return groupedGemmWgrad(stream, dy, x, offsets, rows, n, k, experts, dweight, error);          \
  }
KILN_CUDA_GROUPED_GEMMS(float)
KILN_CUDA_GROUPED_GEMMS(kernels::Bf16)
KILN_CUDA_GROUPED_GEMMS(kernels::F16)
#undef KILN_CUDA_GROUPED_GEMMS

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_GROUPEDGEMM_CUH

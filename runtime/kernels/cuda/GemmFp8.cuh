//===- GemmFp8.cuh - FP8 e4m3 GEMMs with DeepSeek-V3's block scales -------===//
//
// The CUDA twins of runtime/kernels/Precision.h's scaledMatmul,
// scaledGroupedMatmul and scaledGroupedMatmulWgrad: e4m3 operands, one f32
// scale per tile (1x128 activations, 128x128 weights, 128x1 for the weight
// gradient's operands), each 128-wide K block's f32 sum multiplied by its
// two scales and added in f32 ("promotion", DeepSeek-V3 report 3.3).
//
// scaledMatmul through cuBLASLt. Hopper's FP8 kernels take only the "TN"
// form (cuBLASLt's A transposed, B not: both operands K-contiguous) and two
// block-scale modes, per operand (cublasLt.h's cublasLtMatmulMatrixScale_t;
// layouts from the cuBLAS docs, "128-element 1D and 128x128 2D Block
// Scaling", since the header only names them):
//   VEC128_32F      one scale per 128 K-elements of each row of op(A) /
//                   column of op(B): a [M, L] (L = K / 128) array stored
//                   M-major, scale(i, b) at b * M + i (N likewise for B);
//   BLK128x128_32F  one scale per 128x128 block: stored K-major with a
//                   column stride L4 = L rounded up to 4, scale(p, b) at
//                   p * L4 + b for the p-th 128 rows of op(A);
// with VEC/VEC, VEC/BLK and BLK/VEC allowed (not BLK/BLK), M and N multiples
// of 4, 16-byte aligned pointers and leading dimensions.
// The mapping (Gemm.cuh's transpose trick): out [m, n] row-major is
// D = out^T [n, m]; cuBLASLt's A is Kiln's rhs read as [n, K] (transposed,
// lda K), its B Kiln's lhs as [m, K] (not transposed, ldb K), ldd n. What
// Kiln's tiles need before the call, per operand (`other` its M or N):
//   values stored [other, K] (lhs 1x128, rhs 128x128 of fprop): as they are;
//   values stored K-major [K, other] (dgrad's weights, wgrad's dy and x):
//     transposed on the device into scratch (gemmFp8TransposeKernel: other
//     * K bytes read and written; for the weight gradient of 8192 tokens x
//     7168 x 2048, 75 MB, some tens of microseconds beside a GEMM of about
//     170 at full FP8 rate; a quantizer that also writes the transposed
//     copy, as DeepGEMM's and Transformer Engine's do, would remove it);
//   1x128 scales of [other, K] (Kiln [other, L] row-major, i * L + b):
//     transposed to VEC128's b * other + i (gemmFp8ScaleLayoutKernel);
//   128x1 scales of a K-major [K, other] (Kiln [L, other], b * other + i):
//     already VEC128's layout, used in place (wgrad needs no reorder);
//   128x128 scales of [other, K] (Kiln [P, L], p * L + b): BLK128x128's
//     layout when L % 4 == 0 (DeepSeek's 7168 and 2048 are), else copied to
//     the column stride L4 with zero padding;
//   128x128 scales of a K-major [K, other] (Kiln [L, P], b * P + p):
//     transposed to p * L4 + b.
// cuBLASLt's promotion is its own (FP8 tensor-core partial sums, then the
// scales), so it agrees with the host within a bound gemm_check.cu states,
// not bit for bit. Any other tiling (matrices > 1, tiles not 128 along K,
// BLK/BLK), a shape off those multiples (or K not a multiple of 128, which
// cuBLASLt's block-scale docs do not promise), or no cuBLASLt algorithm on
// this device: Kiln's tiled FP8 kernel instead.
// In shim builds the cuBLASLt path runs the same preparation kernels and
// then Gemm.cuh's ltReferenceGemmKernel, which reads the scales in
// cuBLASLt's documented layouts: CudaShimGemmTest thereby checks the
// mapping and every reorder against the host, bit for bit on inputs whose
// K-block sums are exact.
//
// The grouped FP8 GEMMs use Kiln's tiled kernel (GroupedGemm.cuh's: shared
// memory, e4m3 decoded to f32 on staging, per-block promotion in registers),
// for the reason GroupedGemm.cuh gives (no device-side shapes in this
// cuBLASLt); the forward walks every expert's row tiles in one launch, the
// wgrad has a grid over experts, reading each expert's 128x1 tiles from its
// scale row base fp8GroupedScaleRowBase(offsets[e], e, 128) on the device.
// The tiled kernel sums each K block in order with FMAs (e4m3 products are
// exact in f32, so this is the reference order's rounding) and promotes
// with the host's operations: on the GPU it gives the reference kernels'
// bits. The reference kernels (shim) follow Precision.cpp's order, so they
// match the host bit for bit wherever its K-block sums (OpenBLAS) are exact,
// and within f32 accumulation error otherwise.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_GEMMFP8_CUH
#define KILN_RUNTIME_KERNELS_CUDA_GEMMFP8_CUH

#include "runtime/kernels/Precision.h"
#include "runtime/kernels/cuda/Device.cuh"
#include "runtime/kernels/cuda/Gemm.cuh"
#include "runtime/kernels/cuda/GroupedGemm.cuh"

#include <cstdint>
#include <string>

namespace kiln::cuda {

//===----------------------------------------------------------------------===//
// Kernels: reference order (Precision.cpp's)
//===----------------------------------------------------------------------===//

/// Element (i, l) of `op` read as [other, K] (Precision.cpp's decodeBlock).
__device__ __forceinline__ float fp8ValueAt(const kernels::ScaledOperand &op, int64_t i,
                                            int64_t l) {
  const int64_t stride = op.tiles.cols;
  return kernels::widen(op.values[op.kMajor ? l * stride + i : i * stride + l]);
}

/// The scale of `op`'s row i in the K block starting at k0 (blockScale).
__device__ __forceinline__ float fp8ScaleAt(const kernels::ScaledOperand &op, int64_t i,
                                            int64_t k0) {
  return op.scales[op.kMajor ? tileScaleIndex(op.tiles, k0, i) : tileScaleIndex(op.tiles, i, k0)];
}

/// out(i, j) of scaledMatmul: K blocks in order, each summed in order and
/// promoted with (lhs scale * rhs scale).
__device__ __forceinline__ float fp8ScaledDot(const kernels::ScaledOperand &lhs,
                                              const kernels::ScaledOperand &rhs, int64_t i,
                                              int64_t j, int64_t k) {
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < k; k0 += kernels::kFp8BlockSize) {
    const int64_t end = k < k0 + kernels::kFp8BlockSize ? k : k0 + kernels::kFp8BlockSize;
    float block = 0.0f;
    for (int64_t l = k0; l < end; ++l)
      block += fp8ValueAt(lhs, i, l) * fp8ValueAt(rhs, j, l);
    acc = promoteFp8Block(acc, block, fp8ScaleAt(lhs, i, k0), fp8ScaleAt(rhs, j, k0));
  }
  return acc;
}

/// scaledMatmul: thread t computes out[t] = out(t / n, t % n).
template <typename Out>
__global__ void scaledGemmReferenceKernel(Out *out, kernels::ScaledOperand lhs,
                                          kernels::ScaledOperand rhs, int64_t m, int64_t n,
                                          int64_t k) {
  for (int64_t t = globalThread(); t < m * n; t += gridThreads())
    out[t] = kernels::narrowTo<Out>(fp8ScaledDot(lhs, rhs, t / n, t % n, k));
}

/// Expert e's operands of scaledGroupedMatmul, as Precision.cpp builds them.
__device__ __forceinline__ void
scaledGroupedOperands(const kernels::E4m3 *lhs, const float *lhsScales, const kernels::E4m3 *weight,
                      const float *weightScales, int64_t e, int64_t first, int64_t m, int64_t k,
                      int64_t wRows, int64_t wCols, bool transposeRhs, kernels::ScaledOperand &a,
                      kernels::ScaledOperand &b) {
  const int64_t kBlocks = (k + kernels::kFp8BlockSize - 1) / kernels::kFp8BlockSize;
  const int64_t wScaleCount = ((wRows + kernels::kFp8BlockSize - 1) / kernels::kFp8BlockSize) *
                              ((wCols + kernels::kFp8BlockSize - 1) / kernels::kFp8BlockSize);
  a = {lhs + first * k, lhsScales + first * kBlocks, {m, k, 1, kernels::kFp8BlockSize}, false};
  b = {weight + e * wRows * wCols,
       weightScales + e * wScaleCount,
       {wRows, wCols, kernels::kFp8BlockSize, kernels::kFp8BlockSize},
       !transposeRhs};
}

/// scaledGroupedMatmul: thread t computes out[t], row t / n of its expert
/// (0 past the experts).
template <typename Out>
__global__ void
scaledGroupedGemmReferenceKernel(Out *out, const kernels::E4m3 *lhs, const float *lhsScales,
                                 const kernels::E4m3 *weight, const float *weightScales,
                                 const int32_t *offsets, int64_t rows, int64_t k, int64_t experts,
                                 int64_t wRows, int64_t wCols, bool transposeRhs) {
  const int64_t n = transposeRhs ? wRows : wCols;
  for (int64_t t = globalThread(); t < rows * n; t += gridThreads()) {
    const int64_t r = t / n, e = expertOfRow(offsets, experts, rows, r);
    float acc = 0.0f;
    if (e >= 0) {
      const int64_t first = offsets[e];
      kernels::ScaledOperand a, b;
      scaledGroupedOperands(lhs, lhsScales, weight, weightScales, e, first, offsets[e + 1] - first,
                            k, wRows, wCols, transposeRhs, a, b);
      acc = fp8ScaledDot(a, b, r - first, t % n, k);
    }
    out[t] = kernels::narrowTo<Out>(acc);
  }
}

/// Expert e's operands of scaledGroupedMatmulWgrad: its rows of dy [rows, n]
/// and x [rows, k], K-major, in 128x1 tiles from its scale row base.
__device__ __forceinline__ void scaledWgradOperands(const kernels::E4m3 *dy, const float *dyScales,
                                                    const kernels::E4m3 *x, const float *xScales,
                                                    int64_t e, int64_t first, int64_t m, int64_t n,
                                                    int64_t k, kernels::ScaledOperand &a,
                                                    kernels::ScaledOperand &b) {
  const int64_t base = kernels::fp8GroupedScaleRowBase(first, e, kernels::kFp8BlockSize);
  a = {dy + first * n, dyScales + base * n, {m, n, kernels::kFp8BlockSize, 1}, true};
  b = {x + first * k, xScales + base * k, {m, k, kernels::kFp8BlockSize, 1}, true};
}

/// scaledGroupedMatmulWgrad: thread t computes out[t] = (e, i, j) of
/// [experts, n, k], over expert e's rows (0 when it has none).
template <typename Out>
__global__ void scaledGroupedWgradGemmReferenceKernel(Out *out, const kernels::E4m3 *dy,
                                                      const float *dyScales, const kernels::E4m3 *x,
                                                      const float *xScales, const int32_t *offsets,
                                                      int64_t rows, int64_t n, int64_t k,
                                                      int64_t experts) {
  for (int64_t t = globalThread(); t < experts * n * k; t += gridThreads()) {
    const int64_t e = t / (n * k);
    int64_t first, last;
    float acc = 0.0f;
    if (expertRows(offsets, e, rows, first, last) && last > first) {
      kernels::ScaledOperand a, b;
      scaledWgradOperands(dy, dyScales, x, xScales, e, first, last - first, n, k, a, b);
      acc = fp8ScaledDot(a, b, (t / k) % n, t % k, last - first);
    }
    out[t] = kernels::narrowTo<Out>(acc);
  }
}

//===----------------------------------------------------------------------===//
// Kernels: preparation for cuBLASLt (run on the shim too)
//===----------------------------------------------------------------------===//

/// dst [cols, rows] = src [rows, cols]^T, bytes; thread per destination
/// element, so the writes coalesce.
__global__ void gemmFp8TransposeKernel(kernels::E4m3 *dst, const kernels::E4m3 *src, int64_t rows,
                                       int64_t cols) {
  for (int64_t t = globalThread(); t < rows * cols; t += gridThreads())
    dst[t] = src[(t % rows) * cols + t / rows];
}

/// dst[i * dstOuter + b * dstBlock] = src[i * srcOuter + b * srcBlock] for
/// i < outer, b < blocks, and 0 for blocks <= b < paddedBlocks.
__global__ void gemmFp8ScaleLayoutKernel(float *dst, const float *src, int64_t outer,
                                         int64_t blocks, int64_t paddedBlocks, int64_t srcOuter,
                                         int64_t srcBlock, int64_t dstOuter, int64_t dstBlock) {
  for (int64_t t = globalThread(); t < outer * paddedBlocks; t += gridThreads()) {
    const int64_t i = t / paddedBlocks, b = t % paddedBlocks;
    dst[i * dstOuter + b * dstBlock] = b < blocks ? src[i * srcOuter + b * srcBlock] : 0.0f;
  }
}

//===----------------------------------------------------------------------===//
// Kernels: tiled (GPU)
//===----------------------------------------------------------------------===//

#if KILN_CUDA_DEVICE
__device__ __forceinline__ TileOperand<kernels::E4m3>
deviceTileOperandOf(const kernels::ScaledOperand &op) {
  return {op.values, op.tiles.cols, op.kMajor};
}
__device__ __forceinline__ TileScales tileScalesOf(const kernels::ScaledOperand &op) {
  return {op.scales, op.tiles, op.kMajor};
}

/// scaledMatmul: block (x, y) computes row tile x, column tile y.
template <typename Out>
__global__ void __launch_bounds__(kTileThreads)
    scaledGemmTiledKernel(Out *out, kernels::ScaledOperand lhs, kernels::ScaledOperand rhs,
                          int64_t m, int64_t n, int64_t k) {
  const TileProblem<kernels::E4m3, kernels::E4m3, Out> p{
      deviceTileOperandOf(lhs), deviceTileOperandOf(rhs), out, n, m, n, k};
  tileGemm<true>(p, int64_t(blockIdx.x) * kTileM, int64_t(blockIdx.y) * kTileN, tileScalesOf(lhs),
                 tileScalesOf(rhs));
}

/// scaledGroupedMatmul: block (x, y) computes row tile x (of its expert),
/// column tile y.
template <typename Out>
__global__ void __launch_bounds__(kTileThreads)
    scaledGroupedGemmTiledKernel(Out *out, const kernels::E4m3 *lhs, const float *lhsScales,
                                 const kernels::E4m3 *weight, const float *weightScales,
                                 const int32_t *offsets, int64_t rows, int64_t k, int64_t experts,
                                 int64_t wRows, int64_t wCols, bool transposeRhs) {
  int64_t e, first, last, row0;
  if (!rowTileOf(offsets, experts, rows, blockIdx.x, e, first, last, row0))
    return;
  const int64_t n = transposeRhs ? wRows : wCols;
  kernels::ScaledOperand a, b;
  scaledGroupedOperands(lhs, lhsScales, weight, weightScales, e, first, last - first, k, wRows,
                        wCols, transposeRhs, a, b);
  const TileProblem<kernels::E4m3, kernels::E4m3, Out> p{
      deviceTileOperandOf(a), deviceTileOperandOf(b), out + first * n, n, last - first, n, k};
  tileGemm<true>(p, row0, int64_t(blockIdx.y) * kTileN, tileScalesOf(a), tileScalesOf(b));
}

/// scaledGroupedMatmulWgrad: block (x, y, z) computes tile (y, x) of expert
/// z's [n, k] result.
template <typename Out>
__global__ void __launch_bounds__(kTileThreads)
    scaledGroupedWgradGemmTiledKernel(Out *out, const kernels::E4m3 *dy, const float *dyScales,
                                      const kernels::E4m3 *x, const float *xScales,
                                      const int32_t *offsets, int64_t rows, int64_t n, int64_t k) {
  const int64_t e = blockIdx.z;
  int64_t first, last;
  if (!expertRows(offsets, e, rows, first, last))
    first = last = 0; // a bad range contributes nothing: zeros
  kernels::ScaledOperand a, b;
  scaledWgradOperands(dy, dyScales, x, xScales, e, first, last - first, n, k, a, b);
  const TileProblem<kernels::E4m3, kernels::E4m3, Out> p{
      deviceTileOperandOf(a), deviceTileOperandOf(b), out + e * n * k, k, n, k, last - first};
  tileGemm<true>(p, int64_t(blockIdx.y) * kTileM, int64_t(blockIdx.x) * kTileN, tileScalesOf(a),
                 tileScalesOf(b));
}
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

inline bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

/// How one Kiln operand, read as [other, k], becomes a cuBLASLt operand.
struct Fp8LtSide {
  GemmScale mode = GemmScale::kNone;
  bool transpose = false; ///< values stored K-major: transpose them first
  bool relayout = false;  ///< scales not in cuBLASLt's layout: reorder them first
  int64_t scaleOuter = 0, scaleBlocks = 0, scalePadded = 0; ///< the reordered array's extent
  int64_t srcOuter = 0, srcBlock = 0, dstOuter = 0, dstBlock = 0;
};

/// Whether `op` can be cuBLASLt's operand (see the file comment), and how.
inline bool fp8LtSide(const kernels::ScaledOperand &op, int64_t other, int64_t k, Fp8LtSide &side) {
  const kernels::Fp8Tiles &t = op.tiles;
  if (t.matrices != 1 || t.rows != (op.kMajor ? k : other) || t.cols != (op.kMajor ? other : k))
    return false;
  const int64_t tileK = op.kMajor ? t.tileRows : t.tileCols;
  const int64_t tileOther = op.kMajor ? t.tileCols : t.tileRows;
  if (tileK != kernels::kFp8BlockSize || (tileOther != 1 && tileOther != kernels::kFp8BlockSize))
    return false;
  const int64_t blocks = k / kernels::kFp8BlockSize;
  side.transpose = op.kMajor;
  side.scaleBlocks = blocks;
  if (tileOther == 1) { // VEC128: scale(i, b) at b * other + i
    side.mode = GemmScale::kVec128;
    side.relayout = !op.kMajor; // Kiln's [other, L]; K-major's [L, other] is cuBLASLt's
    side.scaleOuter = other;
    side.scalePadded = blocks;
    side.srcOuter = blocks;
    side.srcBlock = 1;
    side.dstOuter = 1;
    side.dstBlock = other;
  } else { // BLK128x128: scale(p, b) at p * L4 + b
    const int64_t tilesOther = (other + kernels::kFp8BlockSize - 1) / kernels::kFp8BlockSize;
    side.mode = GemmScale::kBlock128;
    side.relayout = op.kMajor || blocks % 4 != 0;
    side.scaleOuter = tilesOther;
    side.scalePadded = (blocks + 3) / 4 * 4;
    side.srcOuter = op.kMajor ? 1 : blocks; // Kiln's [L, P] or [P, L]
    side.srcBlock = op.kMajor ? tilesOther : 1;
    side.dstOuter = side.scalePadded;
    side.dstBlock = 1;
  }
  return true;
}

/// Whether scaledMatmul takes cuBLASLt for these operands (see the top).
template <typename Out>
inline bool scaledMatmulTakesCublasLt(const Out *out, const kernels::ScaledOperand &lhs,
                                      const kernels::ScaledOperand &rhs, int64_t m, int64_t n,
                                      int64_t k) {
  Fp8LtSide a, b;
  if (!fp8LtSide(rhs, n, k, a) || !fp8LtSide(lhs, m, k, b))
    return false;
  if ((a.mode == GemmScale::kBlock128 && b.mode == GemmScale::kBlock128) || m <= 0 || n <= 0 ||
      k <= 0 || m % 4 != 0 || n % 4 != 0 || k % kernels::kFp8BlockSize != 0 ||
      (n * int64_t(sizeof(Out))) % 16 != 0 || m > 0x7fffffff || n > 0x7fffffff || k > 0x7fffffff)
    return false;
  return aligned16(out) && (a.transpose || aligned16(rhs.values)) &&
         (b.transpose || aligned16(lhs.values)) && (a.relayout || aligned16(rhs.scales)) &&
         (b.relayout || aligned16(lhs.scales));
}

/// Bytes rounded up to 256 (cuBLASLt's alignment preference).
inline size_t gemmRound256(size_t bytes) { return (bytes + 255) / 256 * 256; }

/// Prepares one side in `scratch` (advanced past what it used): values
/// [other, k] and scales in cuBLASLt's layout.
inline void prepareFp8LtSide(cudaStream_t stream, const kernels::ScaledOperand &op,
                             const Fp8LtSide &side, int64_t other, int64_t k, char *&scratch,
                             const kernels::E4m3 *&values, const float *&scales) {
  values = op.values;
  scales = op.scales;
  if (side.transpose) {
    auto *dst = reinterpret_cast<kernels::E4m3 *>(scratch);
    KILN_LAUNCH(gemmFp8TransposeKernel, blocksFor(other * k), kBlock, 0, stream, dst, op.values, k,
                other);
    values = dst;
    scratch += gemmRound256(size_t(other * k));
  }
  if (side.relayout) {
    auto *dst = reinterpret_cast<float *>(scratch);
    KILN_LAUNCH(gemmFp8ScaleLayoutKernel, blocksFor(side.scaleOuter * side.scalePadded), kBlock, 0,
                stream, dst, op.scales, side.scaleOuter, side.scaleBlocks, side.scalePadded,
                side.srcOuter, side.srcBlock, side.dstOuter, side.dstBlock);
    scales = dst;
    scratch += gemmRound256(size_t(side.scaleOuter * side.scalePadded) * sizeof(float));
  }
}

/// The cuBLASLt path; false when cuBLASLt has no algorithm (nothing written
/// to out).
template <typename Out>
inline bool scaledMatmulCublasLt(cudaStream_t stream, Out *out, const kernels::ScaledOperand &lhs,
                                 const kernels::ScaledOperand &rhs, int64_t m, int64_t n,
                                 int64_t k) {
  Fp8LtSide a, b;
  if (!fp8LtSide(rhs, n, k, a) || !fp8LtSide(lhs, m, k, b))
    return false;
  auto need = [&](const Fp8LtSide &side, int64_t other) {
    return (side.transpose ? gemmRound256(size_t(other * k)) : 0) +
           (side.relayout ? gemmRound256(size_t(side.scaleOuter * side.scalePadded) * sizeof(float))
                          : 0);
  };
  const size_t bytes = need(a, n) + need(b, m);
  char *scratch = bytes ? static_cast<char *>(gemmScratch(stream, bytes)) : nullptr;
  const kernels::E4m3 *aValues, *bValues;
  const float *aScales, *bScales;
  prepareFp8LtSide(stream, rhs, a, n, k, scratch, aValues, aScales);
  prepareFp8LtSide(stream, lhs, b, m, k, scratch, bValues, bScales);
  // D = out^T [n, m] = rhs [n, k] (A, transposed: stored [k, n] by columns,
  // lda k) times lhs^T [k, m] (B, stored [k, m] by columns, ldb k); ldd n.
  LtGemm g{true, false, n, m, k, aValues, k, bValues, k, out, n};
  g.scaleModeA = a.mode;
  g.scaleModeB = b.mode;
  g.scaleA = aScales;
  g.scaleB = bScales;
  return ltMatmul<kernels::E4m3, kernels::E4m3, Out>(stream, g);
}

/// kiln.scaled_matmul: out [m, n] = sum over 128-wide K blocks of lhs' block
/// @ rhs' block, times the two scales. Out is float, Bf16 or F16.
template <typename Out>
inline void scaledMatmul(cudaStream_t stream, Out *out, kernels::ScaledOperand lhs,
                         kernels::ScaledOperand rhs, int64_t m, int64_t n, int64_t k) {
  kernels::checkFp8Tiles(lhs.tiles);
  kernels::checkFp8Tiles(rhs.tiles);
  KILN_LAUNCH_CHECK(m >= 0 && n >= 0 && k >= 0, "expects m, n, k >= 0, got %lld, %lld, %lld",
                    (long long)m, (long long)n, (long long)k);
  if (m == 0 || n == 0)
    return;
  if (scaledMatmulTakesCublasLt(out, lhs, rhs, m, n, k) &&
      scaledMatmulCublasLt(stream, out, lhs, rhs, m, n, k))
    return;
#if KILN_CUDA_DEVICE
  const int64_t rowTiles = (m + kTileM - 1) / kTileM, colTiles = (n + kTileN - 1) / kTileN;
  KILN_LAUNCH_CHECK(rowTiles <= 0x7fffffff && colTiles <= 65535,
                    "scaledMatmul: %lld x %lld tiles exceed the grid", (long long)rowTiles,
                    (long long)colTiles);
  KILN_LAUNCH(scaledGemmTiledKernel<Out>, dim3(unsigned(rowTiles), unsigned(colTiles)),
              kTileThreads, 0, stream, out, lhs, rhs, m, n, k);
#else
  KILN_LAUNCH(scaledGemmReferenceKernel<Out>, blocksFor(m * n), kBlock, 0, stream, out, lhs, rhs, m,
              n, k);
#endif
}

/// kiln.scaled_grouped_matmul: out [rows, n] from lhs [rows, k] in 1x128
/// tiles and expert e's weights [wRows, wCols] in 128x128 blocks, read as
/// [n, k] (transposeRhs) or [k, n]; rows from offsets[experts] on are 0.
/// True once launched: bad offsets come back through takeDeviceError
/// (kBadExpertOffsets), never through `error`.
template <typename Out>
inline bool scaledGroupedMatmul(cudaStream_t stream, Out *out, const kernels::E4m3 *lhs,
                                const float *lhsScales, const kernels::E4m3 *weight,
                                const float *weightScales, const int32_t *offsets, int64_t rows,
                                int64_t k, int64_t experts, int64_t wRows, int64_t wCols,
                                bool transposeRhs, std::string *error) {
  (void)error;
  KILN_LAUNCH_CHECK(rows >= 0 && experts >= 0 && wRows >= 0 && wCols >= 0,
                    "expects rows, experts and weight sizes >= 0, got %lld, %lld, %lld, %lld",
                    (long long)rows, (long long)experts, (long long)wRows, (long long)wCols);
  checkExpertOffsetsOnDevice(stream, offsets, experts, rows);
  KILN_LAUNCH_CHECK((transposeRhs ? wCols : wRows) == k,
                    "expects weights [experts, %lld, %lld] to contract K = %lld", (long long)wRows,
                    (long long)wCols, (long long)k);
  const int64_t n = transposeRhs ? wRows : wCols;
  if (rows == 0 || n == 0)
    return true;
#if KILN_CUDA_DEVICE
  const int64_t rowTiles = rows / kTileM + experts, colTiles = (n + kTileN - 1) / kTileN;
  KILN_LAUNCH_CHECK(rowTiles <= 0x7fffffff && colTiles <= 65535,
                    "scaledGroupedMatmul: %lld x %lld tiles exceed the grid", (long long)rowTiles,
                    (long long)colTiles);
  if (experts > 0)
    KILN_LAUNCH(scaledGroupedGemmTiledKernel<Out>, dim3(unsigned(rowTiles), unsigned(colTiles)),
                kTileThreads, 0, stream, out, lhs, lhsScales, weight, weightScales, offsets, rows,
                k, experts, wRows, wCols, transposeRhs);
  zeroRowsPastExperts(stream, out, offsets, experts, rows, n);
#else
  KILN_LAUNCH(scaledGroupedGemmReferenceKernel<Out>, blocksFor(rows * n), kBlock, 0, stream, out,
              lhs, lhsScales, weight, weightScales, offsets, rows, k, experts, wRows, wCols,
              transposeRhs);
#endif
  return true;
}

/// kiln.scaled_grouped_matmul_wgrad: out [experts, n, k] = per expert,
/// dy^T x over its rows, dy [rows, n] and x [rows, k] in 128x1 tiles from
/// quantizeFp8Grouped. True once launched (offsets: as above).
template <typename Out>
inline bool scaledGroupedMatmulWgrad(cudaStream_t stream, Out *out, const kernels::E4m3 *dy,
                                     const float *dyScales, const kernels::E4m3 *x,
                                     const float *xScales, const int32_t *offsets, int64_t rows,
                                     int64_t n, int64_t k, int64_t experts, std::string *error) {
  (void)error;
  KILN_LAUNCH_CHECK(rows >= 0 && n >= 0 && k >= 0 && experts >= 0,
                    "expects rows, n, k, experts >= 0, got %lld, %lld, %lld, %lld", (long long)rows,
                    (long long)n, (long long)k, (long long)experts);
  checkExpertOffsetsOnDevice(stream, offsets, experts, rows);
  if (experts * n * k == 0)
    return true;
#if KILN_CUDA_DEVICE
  const int64_t colTiles = (k + kTileN - 1) / kTileN, rowTiles = (n + kTileM - 1) / kTileM;
  KILN_LAUNCH_CHECK(colTiles <= 0x7fffffff && rowTiles <= 65535 && experts <= 65535,
                    "scaledGroupedMatmulWgrad: %lld x %lld tiles x %lld experts exceed the grid",
                    (long long)colTiles, (long long)rowTiles, (long long)experts);
  KILN_LAUNCH(scaledGroupedWgradGemmTiledKernel<Out>,
              dim3(unsigned(colTiles), unsigned(rowTiles), unsigned(experts)), kTileThreads, 0,
              stream, out, dy, dyScales, x, xScales, offsets, rows, n, k);
#else
  KILN_LAUNCH(scaledGroupedWgradGemmReferenceKernel<Out>, blocksFor(experts * n * k), kBlock, 0,
              stream, out, dy, dyScales, x, xScales, offsets, rows, n, k, experts);
#endif
  return true;
}

#if KILN_CUDA_DEVICE
/// Names each kernel the FP8 launchers can take for each result type, so
/// that this header compiled alone (test/cuda/ptxas_report.py) records the
/// registers and spills of every one.
inline void gemmFp8KernelInstantiations() {
  (void)&scaledGemmTiledKernel<float>;
  (void)&scaledGemmTiledKernel<kernels::Bf16>;
  (void)&scaledGemmTiledKernel<kernels::F16>;
  (void)&scaledGroupedGemmTiledKernel<float>;
  (void)&scaledGroupedGemmTiledKernel<kernels::Bf16>;
  (void)&scaledGroupedGemmTiledKernel<kernels::F16>;
  (void)&scaledGroupedWgradGemmTiledKernel<float>;
  (void)&scaledGroupedWgradGemmTiledKernel<kernels::Bf16>;
  (void)&scaledGroupedWgradGemmTiledKernel<kernels::F16>;
  (void)&groupedGemmTailZeroKernel<kernels::Bf16>; // F16 and float: GroupedGemm.cuh's
}
#endif

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_GEMMFP8_CUH

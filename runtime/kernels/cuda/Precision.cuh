//===- Precision.cuh - CUDA kernels of the FP8 quantize ops ---------------===//
//
// The CUDA twins of runtime/kernels/Precision.h's non-GEMM kernels:
// quantizeFp8, dequantizeFp8 and quantizeFp8Grouped (the scaled GEMMs are in
// Gemm.cuh). Each launcher has the host kernel's name and parameters
// (device pointers; the Fp8Tiles by value) after a leading stream, and is a
// template over the same element types.
//
// Rounding: every conversion is PrecisionMath.h's (narrowTo<E4m3>,
// floatOfE4m3, narrowTo<Bf16 / F16>, widen), the integer bit manipulation
// the host uses, not CUDA's cvt intrinsics: cvt.rn.satfinite.e4m3x2.f32
// saturates as Kiln does but was not proven bit-identical on every input
// (subnormals, NaN signs), and the bit functions cost a few integer
// operations on values that are loaded from memory anyway. The scale
// arithmetic (fp8QuantizeFactor, fp8DequantizeScale: one f32 division
// each, IEEE under nvcc's default -prec-div) and the one f32 multiply per
// element are the host's, and none of them can be contracted, so the
// quantized values and scales are the host's bits on the GPU too, NaNs
// aside: a NaN in a tile makes its factor NaN, and the sign of NaN x NaN is
// whichever operand the compiler put first on x86 (two host builds can
// disagree), the canonical NaN's on the GPU; either way the element is the
// e4m3 NaN.
//
// A tile's amax is the one reduction. fp8AmaxOf (PrecisionMath.h) is a max
// that keeps NaN, over values >= 0, so every grouping gives the same amax:
//   - the reference kernel (a thread per tile, the host's loop) runs on the
//     CPU shim, and on the GPU for tiles narrower than a warp (the grouped
//     weight-gradient's [128, 1] tiles: a warp's threads then read 32
//     adjacent columns of each row, coalesced);
//   - on the GPU a warp per tile for tiles of up to kFp8WarpTile elements
//     (the [1, 128] activation tiles: four elements per lane, a shuffle
//     tree), a block per tile above (the [128, 128] weight blocks: 64
//     elements per thread, shuffles then shared memory).
// Grouped tiles are found without a prefix sum: scale row s belongs to the
// last expert whose scale-row base (fp8GroupedScaleRowBase, strictly
// increasing in the expert for good offsets) is at most s, a binary search
// over the offsets. Bad offsets are a kBadExpertOffsets record (index: the
// first offending entry); every thread still stays inside its expert's rows
// when they lie in [0, rows), and skips the tile otherwise, so nothing is
// read or written out of bounds (the outputs are then meaningless, as the
// host writes nothing when it returns false).
// dequantizeFp8 is elementwise: a block per row (the row's scale row
// computed once), the host's bits.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_PRECISION_CUH
#define KILN_RUNTIME_KERNELS_CUDA_PRECISION_CUH

#include "runtime/kernels/Precision.h"
#include "runtime/kernels/PrecisionMath.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <cmath>
#include <string>

namespace kiln::cuda {

/// The largest tile a warp quantizes alone (elements); larger tiles take a
/// block of kFp8TileThreads.
constexpr int64_t kFp8WarpTile = 2048;
constexpr int kFp8TileThreads = 256;

/// One tile: rows [r0, r1) x columns [c0, c1).
struct Fp8TileBox {
  int64_t r0, r1, c0, c1;
};

/// quantizeFp8's tiles (Precision.cpp's loop): tile `index` = tile row x
/// tileColCount + tile column, also its scale's index; each of `matrices`
/// stacked matrices is tiled alone.
struct Fp8DenseTiling {
  int64_t cols, tileRows, tileCols, matrixRows, perMatrix, tileColCount, count;

  static Fp8DenseTiling of(const kernels::Fp8Tiles &t) {
    const int64_t matrixRows = t.rows / t.matrices;
    const int64_t perMatrix = (matrixRows + t.tileRows - 1) / t.tileRows;
    const int64_t tileColCount = (t.cols + t.tileCols - 1) / t.tileCols;
    return {t.cols,
            t.tileRows,
            t.tileCols,
            matrixRows,
            perMatrix,
            tileColCount,
            t.matrices * perMatrix * tileColCount};
  }
  __host__ __device__ bool box(int64_t index, Fp8TileBox &b) const {
    const int64_t tr = index / tileColCount, tc = index % tileColCount;
    const int64_t start = (tr / perMatrix) * matrixRows;
    const int64_t r0 = start + (tr % perMatrix) * tileRows, c0 = tc * tileCols;
    b = {r0, r0 + tileRows < start + matrixRows ? r0 + tileRows : start + matrixRows, c0,
         c0 + tileCols < cols ? c0 + tileCols : cols};
    return true;
  }
};

/// quantizeFp8Grouped's tiles: `index` = scale row s x tileColCount + tile
/// column; false (scale 0, no values) where no expert's tile has scale row
/// s, or where the owning expert's offsets are bad.
struct Fp8GroupedTiling {
  const int32_t *offsets;
  int64_t rows, cols, experts, tileRows, tileCols, tileColCount, count;

  __host__ __device__ int64_t base(int64_t e) const {
    return kernels::fp8GroupedScaleRowBase(offsets[e], e, tileRows);
  }
  __host__ __device__ bool box(int64_t index, Fp8TileBox &b) const {
    const int64_t s = index / tileColCount, tc = index % tileColCount;
    if (experts < 1 || base(0) > s)
      return false;
    int64_t lo = 0, hi = experts; // base(lo) <= s; the owner is in [lo, hi)
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (base(mid) <= s)
        lo = mid;
      else
        hi = mid;
    }
    const int64_t first = offsets[lo], end = offsets[lo + 1];
    if (first < 0 || end < first || end > rows)
      return false; // the offsets check records it
    const int64_t r0 = first + (s - base(lo)) * tileRows, c0 = tc * tileCols;
    if (r0 >= end)
      return false;
    b = {r0, r0 + tileRows < end ? r0 + tileRows : end, c0,
         c0 + tileCols < cols ? c0 + tileCols : cols};
    return true;
  }
};

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// Reference order: thread t quantizes tile t as Precision.cpp's
/// quantizeTile does (amax over the tile row-major, then each element).
template <typename In, typename Tiling>
__global__ void quantizeFp8TileKernel(kernels::E4m3 *values, float *scales, const In *x,
                                      Tiling tiling) {
  for (int64_t t = globalThread(); t < tiling.count; t += gridThreads()) {
    Fp8TileBox b;
    if (!tiling.box(t, b)) {
      scales[t] = 0.0f;
      continue;
    }
    float amax = 0.0f;
    for (int64_t r = b.r0; r < b.r1; ++r)
      for (int64_t c = b.c0; c < b.c1; ++c)
        amax = kernels::fp8AmaxOf(amax, std::fabs(kernels::widen(x[r * tiling.cols + c])));
    const float factor = kernels::fp8QuantizeFactor(amax);
    for (int64_t r = b.r0; r < b.r1; ++r)
      for (int64_t c = b.c0; c < b.c1; ++c)
        values[r * tiling.cols + c] =
            kernels::narrowTo<kernels::E4m3>(kernels::widen(x[r * tiling.cols + c]) * factor);
    scales[t] = kernels::fp8DequantizeScale(amax);
  }
}

/// quantizeFp8Grouped's offsets [experts + 1]: entry e checked by thread e
/// (0 first, never decreasing, the last at most rows: checkExpertOffsets).
__global__ void fp8GroupedOffsetsKernel(const int32_t *offsets, int64_t experts, int64_t rows) {
  for (int64_t e = globalThread(); e <= experts; e += gridThreads()) {
    const bool bad = (e == 0 && offsets[0] != 0) || (e > 0 && offsets[e] < offsets[e - 1]) ||
                     (e == experts && offsets[e] > rows);
    if (bad)
      KILN_DEVICE_ERROR(kBadExpertOffsets, e);
  }
}

/// The rows from offsets[experts] on (receive-buffer capacity) quantize to 0.
__global__ void fp8GroupedTailKernel(kernels::E4m3 *values, const int32_t *offsets, int64_t experts,
                                     int64_t rows, int64_t cols) {
  const int64_t end = offsets[experts];
  if (end < 0 || end > rows)
    return; // recorded by fp8GroupedOffsetsKernel
  for (int64_t i = end * cols + globalThread(); i < rows * cols; i += gridThreads())
    values[i] = kernels::E4m3{0};
}

/// Elementwise: block b takes rows b, b + grid, ...; its threads the
/// columns; out = f32(value) * its tile's scale, stored as Out.
template <typename Out>
__global__ void dequantizeFp8Kernel(Out *out, const kernels::E4m3 *values, const float *scales,
                                    Fp8DenseTiling t, int64_t rows) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *rowScales =
        scales +
        ((r / t.matrixRows) * t.perMatrix + (r % t.matrixRows) / t.tileRows) * t.tileColCount;
    for (int64_t c = threadIdx.x; c < t.cols; c += blockDim.x)
      out[r * t.cols + c] = kernels::narrowTo<Out>(
          kernels::floatOfE4m3(values[r * t.cols + c].bits) * rowScales[c / t.tileCols]);
  }
}

#if KILN_CUDA_DEVICE
/// fp8AmaxOf over the warp (a shuffle tree; every lane gets the amax).
__device__ __forceinline__ float fp8WarpAmax(float amax) {
  for (int offset = 16; offset > 0; offset /= 2)
    amax = kernels::fp8AmaxOf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  return amax;
}

/// Warp w quantizes tiles w, w + warps, ...: lanes stride the tile's
/// elements row-major, the amax a shuffle tree.
template <typename In, typename Tiling>
__global__ void quantizeFp8WarpKernel(kernels::E4m3 *values, float *scales, const In *x,
                                      Tiling tiling) {
  const int lane = threadIdx.x % 32;
  for (int64_t t = globalThread() / 32; t < tiling.count; t += gridThreads() / 32) {
    Fp8TileBox b;
    if (!tiling.box(t, b)) {
      if (lane == 0)
        scales[t] = 0.0f;
      continue;
    }
    const int width = int(b.c1 - b.c0), n = int(b.r1 - b.r0) * width;
    float amax = 0.0f;
    for (int e = lane; e < n; e += 32)
      amax = kernels::fp8AmaxOf(
          amax, std::fabs(kernels::widen(x[(b.r0 + e / width) * tiling.cols + b.c0 + e % width])));
    amax = fp8WarpAmax(amax);
    const float factor = kernels::fp8QuantizeFactor(amax);
    for (int e = lane; e < n; e += 32) {
      const int64_t at = (b.r0 + e / width) * tiling.cols + b.c0 + e % width;
      values[at] = kernels::narrowTo<kernels::E4m3>(kernels::widen(x[at]) * factor);
    }
    if (lane == 0)
      scales[t] = kernels::fp8DequantizeScale(amax);
  }
}

/// Block b quantizes tiles b, b + blocks, ...: threads stride the tile's
/// elements row-major; the amax shuffle trees, then one over the warps.
template <typename In, typename Tiling>
__global__ void __launch_bounds__(kFp8TileThreads)
    quantizeFp8BlockKernel(kernels::E4m3 *values, float *scales, const In *x, Tiling tiling) {
  __shared__ float warpAmax[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t t = blockIdx.x; t < tiling.count; t += gridDim.x) {
    Fp8TileBox b;
    if (!tiling.box(t, b)) {
      if (threadIdx.x == 0)
        scales[t] = 0.0f;
      continue;
    }
    const int64_t width = b.c1 - b.c0, n = (b.r1 - b.r0) * width;
    float amax = 0.0f;
    for (int64_t e = threadIdx.x; e < n; e += blockDim.x)
      amax = kernels::fp8AmaxOf(
          amax, std::fabs(kernels::widen(x[(b.r0 + e / width) * tiling.cols + b.c0 + e % width])));
    amax = fp8WarpAmax(amax);
    if (lane == 0)
      warpAmax[warp] = amax;
    __syncthreads();
    amax = fp8WarpAmax(lane < int(blockDim.x / 32) ? warpAmax[lane] : 0.0f);
    __syncthreads(); // warpAmax is rewritten for the next tile
    const float factor = kernels::fp8QuantizeFactor(amax);
    for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
      const int64_t at = (b.r0 + e / width) * tiling.cols + b.c0 + e % width;
      values[at] = kernels::narrowTo<kernels::E4m3>(kernels::widen(x[at]) * factor);
    }
    if (threadIdx.x == 0)
      scales[t] = kernels::fp8DequantizeScale(amax);
  }
}
#endif

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

namespace detail {
/// Every tile of `tiling` quantized: the reference kernel on the shim; on
/// the GPU the kernel of the tile's shape (see the file comment).
template <typename In, typename Tiling>
void launchQuantizeTiles(cudaStream_t stream, kernels::E4m3 *values, float *scales, const In *x,
                         const Tiling &tiling) {
  if (tiling.count == 0)
    return;
#if KILN_CUDA_DEVICE
  if (tiling.tileCols >= 32 && tiling.tileRows * tiling.tileCols <= kFp8WarpTile) {
    KILN_LAUNCH((quantizeFp8WarpKernel<In, Tiling>), blocksFor(tiling.count * 32), kBlock, 0,
                stream, values, scales, x, tiling);
    return;
  }
  if (tiling.tileCols >= 32) {
    const int64_t blocks = tiling.count < 65535 * 32 ? tiling.count : 65535 * 32;
    KILN_LAUNCH((quantizeFp8BlockKernel<In, Tiling>), unsigned(blocks), kFp8TileThreads, 0, stream,
                values, scales, x, tiling);
    return;
  }
#endif
  KILN_LAUNCH((quantizeFp8TileKernel<In, Tiling>), blocksFor(tiling.count), kBlock, 0, stream,
              values, scales, x, tiling);
}
} // namespace detail

namespace detail {
template <typename In>
void quantizeFp8(cudaStream_t stream, kernels::E4m3 *values, float *scales, const In *x,
                 kernels::Fp8Tiles tiles) {
  kernels::checkFp8Tiles(tiles);
  launchQuantizeTiles(stream, values, scales, x, Fp8DenseTiling::of(tiles));
}

template <typename Out>
void dequantizeFp8(cudaStream_t stream, Out *out, const kernels::E4m3 *values, const float *scales,
                   kernels::Fp8Tiles tiles) {
  kernels::checkFp8Tiles(tiles);
  if (tiles.rows == 0 || tiles.cols == 0)
    return;
  const int64_t blocks = tiles.rows < 65535 * 32 ? tiles.rows : 65535 * 32;
  KILN_LAUNCH(dequantizeFp8Kernel<Out>, unsigned(blocks), kBlock, 0, stream, out, values, scales,
              Fp8DenseTiling::of(tiles), tiles.rows);
}

template <typename In>
bool quantizeFp8Grouped(cudaStream_t stream, kernels::E4m3 *values, float *scales, const In *x,
                        const int32_t *offsets, int64_t rows, int64_t cols, int64_t experts,
                        int64_t tileRows, int64_t tileCols) {
  kernels::checkFp8Tiles({rows, cols, tileRows, tileCols});
  KILN_LAUNCH_CHECK(experts >= 0, "expects experts >= 0, got %lld", (long long)experts);
  KILN_LAUNCH(fp8GroupedOffsetsKernel, blocksFor(experts + 1), kBlock, 0, stream, offsets, experts,
              rows);
  if (rows > 0 && cols > 0)
    KILN_LAUNCH(fp8GroupedTailKernel, blocksFor(rows * cols), kBlock, 0, stream, values, offsets,
                experts, rows, cols);
  const int64_t tileColCount = (cols + tileCols - 1) / tileCols;
  const int64_t scaleRows = kernels::fp8GroupedScaleRows(rows, experts, tileRows);
  const Fp8GroupedTiling tiling{offsets,  rows,     cols,         experts,
                                tileRows, tileCols, tileColCount, scaleRows * tileColCount};
  launchQuantizeTiles(stream, values, scales, x, tiling);
  return true;
}
} // namespace detail

// The launchers: one overload per element type the host instantiates its
// templates for (Precision.cpp), so that a call spelled for the host
// resolves the same way, and so that including this header instantiates,
// and nvcc compiles, every kernel.
//
// kiln.quantize_fp8: values and scales from x (float, Bf16 or F16).
// kiln.dequantize_fp8: out = f32(values) * its tile's scale, stored as Out.
// kiln.quantize_fp8_grouped: `offsets` is device data, so bad offsets are a
// kBadExpertOffsets record (read after the step), not a false return.
#define KILN_CUDA_FP8_LAUNCHERS(T)                                                                 \
  inline void quantizeFp8(cudaStream_t stream, kernels::E4m3 *values, float *scales, const T *x,   \
                          kernels::Fp8Tiles tiles) {                                               \
    detail::quantizeFp8(stream, values, scales, x, tiles);                                         \
  }                                                                                                \
  inline void dequantizeFp8(cudaStream_t stream, T *out, const kernels::E4m3 *values,              \
                            const float *scales, kernels::Fp8Tiles tiles) {                        \
    detail::dequantizeFp8(stream, out, values, scales, tiles);                                     \
  }                                                                                                \
  inline bool quantizeFp8Grouped(cudaStream_t stream, kernels::E4m3 *values, float *scales,        \
                                 const T *x, const int32_t *offsets, int64_t rows, int64_t cols,   \
                                 int64_t experts, int64_t tileRows, int64_t tileCols,              \
                                 std::string *error) {                                             \
    (void)error; /* bad offsets are device data: a device error record */                          \
    return detail::quantizeFp8Grouped(stream, values, scales, x, offsets, rows, cols, experts,     \
                                      tileRows, tileCols);                                         \
  }
KILN_CUDA_FP8_LAUNCHERS(float)
KILN_CUDA_FP8_LAUNCHERS(kernels::Bf16)
KILN_CUDA_FP8_LAUNCHERS(kernels::F16)
#undef KILN_CUDA_FP8_LAUNCHERS

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_PRECISION_CUH

//===- Precision.cpp - host kernels of the FP8 quantize and GEMM ops -------===//
//
// OpenMP over tiles (quantize) or rows (dequantize, scaling); OpenBLAS
// sgemm for each K block of a scaled GEMM on the e4m3 values decoded to
// f32. Every reduction has a fixed order for a given thread count.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Precision.h"
#include "runtime/kernels/ExpertOffsets.h"
#include "runtime/kernels/KernelCheck.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace kiln::kernels {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t tileRowsPerMatrix(const Fp8Tiles &t) { return ceilDiv(t.rows / t.matrices, t.tileRows); }

int64_t scaleIndex(const Fp8Tiles &t, int64_t r, int64_t c) {
  int64_t matrixRows = t.rows / t.matrices;
  return ((r / matrixRows) * tileRowsPerMatrix(t) + (r % matrixRows) / t.tileRows) *
             ceilDiv(t.cols, t.tileCols) +
         c / t.tileCols;
}

/// Quantizes the tile rows [r0, r1) x columns [c0, c1) of `x` (row stride
/// `cols`) into `values` and returns its scale.
template <typename In>
float quantizeTile(E4m3 *values, const In *x, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                   int64_t c1) {
  float amax = 0.0f;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c)
      amax = fp8AmaxOf(amax, std::fabs(widen(x[r * cols + c])));
  float factor = fp8QuantizeFactor(amax);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c)
      values[r * cols + c] = narrowTo<E4m3>(widen(x[r * cols + c]) * factor);
  return fp8DequantizeScale(amax);
}

/// Every e4m3 bit pattern's f32 value: decoding is a table lookup.
struct E4m3Table {
  float value[256];
  E4m3Table() {
    for (int b = 0; b < 256; ++b)
      value[b] = floatOfE4m3(uint8_t(b));
  }
};
const E4m3Table &e4m3Table() {
  static const E4m3Table table;
  return table;
}

} // namespace

template <typename In>
void quantizeFp8(E4m3 *values, float *scales, const In *x, Fp8Tiles t) {
  checkFp8Tiles(t);
  int64_t perMatrix = tileRowsPerMatrix(t), matrixRows = t.rows / t.matrices;
  int64_t tileRowCount = t.matrices * perMatrix, tileColCount = ceilDiv(t.cols, t.tileCols);
#pragma omp parallel for schedule(static)
  for (int64_t tr = 0; tr < tileRowCount; ++tr) {
    int64_t start = (tr / perMatrix) * matrixRows, r0 = start + (tr % perMatrix) * t.tileRows;
    int64_t r1 = std::min(start + matrixRows, r0 + t.tileRows);
    for (int64_t tc = 0; tc < tileColCount; ++tc) {
      int64_t c0 = tc * t.tileCols, c1 = std::min(t.cols, c0 + t.tileCols);
      scales[tr * tileColCount + tc] = quantizeTile(values, x, t.cols, r0, r1, c0, c1);
    }
  }
}

template <typename Out>
void dequantizeFp8(Out *out, const E4m3 *values, const float *scales, Fp8Tiles t) {
  checkFp8Tiles(t);
  const float *decode = e4m3Table().value;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c)
      out[r * t.cols + c] =
          narrowTo<Out>(decode[values[r * t.cols + c].bits] * scales[scaleIndex(t, r, c)]);
}

namespace {

/// Rows [0, rowCount) of K block [k0, k0 + width) of `op` decoded to f32,
/// row-major [rowCount, width].
void decodeBlock(float *panel, const ScaledOperand &op, int64_t rowCount, int64_t k0,
                 int64_t width) {
  const float *decode = e4m3Table().value;
  int64_t stride = op.tiles.cols;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rowCount; ++i)
    for (int64_t l = 0; l < width; ++l) {
      int64_t at = op.kMajor ? (k0 + l) * stride + i : i * stride + k0 + l;
      panel[i * width + l] = decode[op.values[at].bits];
    }
}

/// The scale of `op`'s row `i` in the K block starting at k0.
float blockScale(const ScaledOperand &op, int64_t i, int64_t k0) {
  return op.scales[op.kMajor ? scaleIndex(op.tiles, k0, i) : scaleIndex(op.tiles, i, k0)];
}

} // namespace

template <typename Out>
void scaledMatmul(Out *out, ScaledOperand lhs, ScaledOperand rhs, int64_t m, int64_t n,
                  int64_t k) {
  checkFp8Tiles(lhs.tiles);
  checkFp8Tiles(rhs.tiles);
  KILN_KERNEL_CHECK(m >= 0 && n >= 0 && k >= 0, "expects m, n, k >= 0, got %lld, %lld, %lld",
                    (long long)m, (long long)n, (long long)k);
  std::vector<float> a(m * std::min<int64_t>(k, kFp8BlockSize));
  std::vector<float> b(n * std::min<int64_t>(k, kFp8BlockSize));
  std::vector<float> block(m * n), acc(m * n, 0.0f);
  for (int64_t k0 = 0; k0 < k; k0 += kFp8BlockSize) {
    int64_t width = std::min(k - k0, kFp8BlockSize);
    decodeBlock(a.data(), lhs, m, k0, width);
    decodeBlock(b.data(), rhs, n, k0, width);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(width), 1.0f,
                a.data(), int(width), b.data(), int(width), 0.0f, block.data(), int(n));
    // Promotion: the block's f32 sum scaled once, added in f32.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; ++i) {
      float sl = blockScale(lhs, i, k0);
      for (int64_t j = 0; j < n; ++j)
        acc[i * n + j] += block[i * n + j] * (sl * blockScale(rhs, j, k0));
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < m * n; ++i)
    out[i] = narrowTo<Out>(acc[i]);
}

template <typename In>
bool quantizeFp8Grouped(E4m3 *values, float *scales, const In *x, const int32_t *offsets,
                        int64_t rows, int64_t cols, int64_t experts, int64_t tileRows,
                        int64_t tileCols, std::string *error) {
  checkFp8Tiles({rows, cols, tileRows, tileCols});
  if (!checkExpertOffsets(error, "quantize_fp8_grouped", offsets, experts, rows))
    return false;
  int64_t scaleCols = ceilDiv(cols, tileCols);
  std::fill(scales, scales + fp8GroupedScaleRows(rows, experts, tileRows) * scaleCols, 0.0f);
  std::fill(values + int64_t(offsets[experts]) * cols, values + rows * cols, E4m3{0});
  // Every tile row of every expert, with its scale row.
  struct TileRows {
    int64_t r0, r1, scaleRow;
  };
  std::vector<TileRows> tiles;
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t r0 = offsets[e], t = 0; r0 < offsets[e + 1]; r0 += tileRows, ++t)
      tiles.push_back({r0, std::min<int64_t>(offsets[e + 1], r0 + tileRows),
                       fp8GroupedScaleRowBase(offsets[e], e, tileRows) + t});
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < tiles.size(); ++i)
    for (int64_t tc = 0; tc < scaleCols; ++tc) {
      int64_t c0 = tc * tileCols, c1 = std::min(cols, c0 + tileCols);
      scales[tiles[i].scaleRow * scaleCols + tc] =
          quantizeTile(values, x, cols, tiles[i].r0, tiles[i].r1, c0, c1);
    }
  return true;
}

template <typename Out>
bool scaledGroupedMatmul(Out *out, const E4m3 *lhs, const float *lhsScales, const E4m3 *weight,
                         const float *weightScales, const int32_t *offsets, int64_t rows,
                         int64_t k, int64_t experts, int64_t wRows, int64_t wCols,
                         bool transposeRhs, std::string *error) {
  if (!checkExpertOffsets(error, "scaled_grouped_matmul", offsets, experts, rows))
    return false;
  KILN_KERNEL_CHECK((transposeRhs ? wCols : wRows) == k,
                    "expects weights [experts, %lld, %lld] to contract K = %lld", (long long)wRows,
                    (long long)wCols, (long long)k);
  int64_t n = transposeRhs ? wRows : wCols, kBlocks = ceilDiv(k, kFp8BlockSize);
  Fp8Tiles wTiles{wRows, wCols, kFp8BlockSize, kFp8BlockSize};
  int64_t wScaleCount = ceilDiv(wRows, kFp8BlockSize) * ceilDiv(wCols, kFp8BlockSize);
  for (int64_t e = 0; e < experts; ++e) {
    int64_t first = offsets[e], m = offsets[e + 1] - first;
    if (m == 0)
      continue;
    ScaledOperand a{lhs + first * k, lhsScales + first * kBlocks, {m, k, 1, kFp8BlockSize}, false};
    ScaledOperand b{weight + e * wRows * wCols, weightScales + e * wScaleCount, wTiles,
                    !transposeRhs};
    scaledMatmul(out + first * n, a, b, m, n, k);
  }
  std::fill(out + int64_t(offsets[experts]) * n, out + rows * n, narrowTo<Out>(0.0f));
  return true;
}

template <typename Out>
bool scaledGroupedMatmulWgrad(Out *out, const E4m3 *dy, const float *dyScales, const E4m3 *x,
                              const float *xScales, const int32_t *offsets, int64_t rows,
                              int64_t n, int64_t k, int64_t experts, std::string *error) {
  if (!checkExpertOffsets(error, "scaled_grouped_matmul_wgrad", offsets, experts, rows))
    return false;
  for (int64_t e = 0; e < experts; ++e) {
    int64_t first = offsets[e], m = offsets[e + 1] - first;
    Out *dw = out + e * n * k;
    if (m == 0) {
      std::fill(dw, dw + n * k, narrowTo<Out>(0.0f));
      continue;
    }
    // The expert's rows are the contracted dimension: both operands are
    // stored K-major, their grouped tiles starting at its scale row base.
    int64_t base = fp8GroupedScaleRowBase(first, e, kFp8BlockSize);
    ScaledOperand a{dy + first * n, dyScales + base * n, {m, n, kFp8BlockSize, 1}, true};
    ScaledOperand b{x + first * k, xScales + base * k, {m, k, kFp8BlockSize, 1}, true};
    scaledMatmul(dw, a, b, n, k, m);
  }
  return true;
}

template void quantizeFp8(E4m3 *, float *, const float *, Fp8Tiles);
template void quantizeFp8(E4m3 *, float *, const Bf16 *, Fp8Tiles);
template void quantizeFp8(E4m3 *, float *, const F16 *, Fp8Tiles);
template void dequantizeFp8(float *, const E4m3 *, const float *, Fp8Tiles);
template void dequantizeFp8(Bf16 *, const E4m3 *, const float *, Fp8Tiles);
template void dequantizeFp8(F16 *, const E4m3 *, const float *, Fp8Tiles);
template void scaledMatmul(float *, ScaledOperand, ScaledOperand, int64_t, int64_t, int64_t);
template void scaledMatmul(Bf16 *, ScaledOperand, ScaledOperand, int64_t, int64_t, int64_t);
template void scaledMatmul(F16 *, ScaledOperand, ScaledOperand, int64_t, int64_t, int64_t);

#define KILN_GROUPED_FP8(In)                                                                \
  template bool quantizeFp8Grouped(E4m3 *, float *, const In *, const int32_t *, int64_t,        \
                                   int64_t, int64_t, int64_t, int64_t, std::string *);          \
  template bool scaledGroupedMatmul(In *, const E4m3 *, const float *, const E4m3 *,            \
                                    const float *, const int32_t *, int64_t, int64_t, int64_t,  \
                                    int64_t, int64_t, bool, std::string *);                     \
  template bool scaledGroupedMatmulWgrad(In *, const E4m3 *, const float *, const E4m3 *,       \
                                         const float *, const int32_t *, int64_t, int64_t,      \
                                         int64_t, int64_t, std::string *);
KILN_GROUPED_FP8(float)
KILN_GROUPED_FP8(Bf16)
KILN_GROUPED_FP8(F16)
#undef KILN_GROUPED_FP8

} // namespace kiln::kernels

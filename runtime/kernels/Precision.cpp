//===- Precision.cpp - host kernels of the FP8 quantize and GEMM ops -------===//
//
// OpenMP over tiles (quantize) or rows (dequantize, scaling); OpenBLAS
// sgemm for each K block of a scaled GEMM on the e4m3 values decoded to
// f32. Every reduction has a fixed order for a given thread count.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Precision.h"
#include "runtime/kernels/KernelCheck.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace kiln::kernels {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

void checkTiles(const Fp8Tiles &t) {
  KILN_KERNEL_CHECK(t.rows >= 0 && t.cols >= 0 && t.tileRows > 0 && t.tileCols > 0,
                    "expects a [%lld, %lld] matrix in tiles of [%lld, %lld], all > 0",
                    (long long)t.rows, (long long)t.cols, (long long)t.tileRows,
                    (long long)t.tileCols);
}

int64_t scaleIndex(const Fp8Tiles &t, int64_t r, int64_t c) {
  return (r / t.tileRows) * ceilDiv(t.cols, t.tileCols) + c / t.tileCols;
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
  checkTiles(t);
  int64_t tileRowCount = ceilDiv(t.rows, t.tileRows), tileColCount = ceilDiv(t.cols, t.tileCols);
#pragma omp parallel for schedule(static)
  for (int64_t tr = 0; tr < tileRowCount; ++tr)
    for (int64_t tc = 0; tc < tileColCount; ++tc) {
      int64_t r0 = tr * t.tileRows, r1 = std::min(t.rows, r0 + t.tileRows);
      int64_t c0 = tc * t.tileCols, c1 = std::min(t.cols, c0 + t.tileCols);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) {
          float a = std::fabs(widen(x[r * t.cols + c]));
          if (a != a || a > amax) // NaN propagates: once amax is NaN no a > amax
            amax = amax != amax ? amax : a;
        }
      float factor = fp8QuantizeFactor(amax);
      scales[tr * tileColCount + tc] = fp8DequantizeScale(amax);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c)
          values[r * t.cols + c] = narrowTo<E4m3>(widen(x[r * t.cols + c]) * factor);
    }
}

template <typename Out>
void dequantizeFp8(Out *out, const E4m3 *values, const float *scales, Fp8Tiles t) {
  checkTiles(t);
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
  checkTiles(lhs.tiles);
  checkTiles(rhs.tiles);
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

template void quantizeFp8(E4m3 *, float *, const float *, Fp8Tiles);
template void quantizeFp8(E4m3 *, float *, const Bf16 *, Fp8Tiles);
template void quantizeFp8(E4m3 *, float *, const F16 *, Fp8Tiles);
template void dequantizeFp8(float *, const E4m3 *, const float *, Fp8Tiles);
template void dequantizeFp8(Bf16 *, const E4m3 *, const float *, Fp8Tiles);
template void dequantizeFp8(F16 *, const E4m3 *, const float *, Fp8Tiles);
template void scaledMatmul(float *, ScaledOperand, ScaledOperand, int64_t, int64_t, int64_t);
template void scaledMatmul(Bf16 *, ScaledOperand, ScaledOperand, int64_t, int64_t, int64_t);
template void scaledMatmul(F16 *, ScaledOperand, ScaledOperand, int64_t, int64_t, int64_t);

} // namespace kiln::kernels

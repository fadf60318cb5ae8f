//===- PrecisionRules.cpp - evaluation of the FP8 quantize and GEMM ops ----===//
//
// The block scales are computed in f32 in both evaluator modes: the factor
// 448 / amax and the scale amax / 448 are numbers the program stores, not
// approximations of ideal ones, and the quantized values are defined by
// them (KilnPrecisionOps.td). What the mode decides is whether the products
// are rounded: ideal keeps x * factor exact, as-typed rounds it to e4m3 when
// the evaluator rounds every result to its declared type.
//
// This file is written from the op descriptions, not from the kernels (it
// shares only the constants 448, 1e-4 and 128); HostKernelsPrecisionTest
// holds the two together.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/Fp8Tiling.h"
#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/RoutingMath.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mlir;

namespace kiln::reference {

namespace {

using kernels::kE4m3Max;
using kernels::kFp8AmaxFloor;

RefTensor resultLike(Operation *op, unsigned i) {
  auto type = cast<ShapedType>(op->getResult(i).getType());
  return RefTensor(type.getElementType(), type.getShape());
}

/// max |x| over each tile of `x`; a NaN anywhere in a tile makes its amax NaN.
std::vector<double> tileAmax(const RefTensor &x, const Fp8Tiling &t) {
  std::vector<double> amax(t.scaleRows() * t.scaleCols(), 0.0);
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c) {
      double a = std::fabs(x.data[r * t.cols + c]);
      double &m = amax[t.scaleIndex(r, c)];
      if (!std::isnan(m) && (std::isnan(a) || a > m))
        m = a;
    }
  return amax;
}

/// The tile's amax floored at 1e-4, as an f32 (NaN stays NaN).
float flooredAmax(double amax) {
  if (std::isnan(amax))
    return std::numeric_limits<float>::quiet_NaN();
  return std::max(static_cast<float>(amax), kFp8AmaxFloor);
}

LogicalResult quantize(Operation *op, ArrayRef<const RefTensor *> in,
                       SmallVectorImpl<RefTensor> &out) {
  const RefTensor &x = *in[0];
  Fp8Tiling t = fp8TilingOf(x.shape, cast<QuantizeFp8Op>(op).getBlock());
  std::vector<double> amax = tileAmax(x, t);
  RefTensor values = resultLike(op, 0), scales = resultLike(op, 1);
  std::vector<double> factors(amax.size());
  for (size_t i = 0; i < amax.size(); ++i) {
    float floored = flooredAmax(amax[i]);
    factors[i] = kE4m3Max / floored; // f32 division, as stored
    scales.data[i] = floored / kE4m3Max;
  }
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c)
      values.data[r * t.cols + c] = x.data[r * t.cols + c] * factors[t.scaleIndex(r, c)];
  out.push_back(std::move(values));
  out.push_back(std::move(scales));
  return success();
}

LogicalResult dequantize(Operation *op, ArrayRef<const RefTensor *> in,
                         SmallVectorImpl<RefTensor> &out) {
  const RefTensor &values = *in[0], &scales = *in[1];
  Fp8Tiling t = fp8TilingOf(values.shape, cast<DequantizeFp8Op>(op).getBlock());
  RefTensor r = resultLike(op, 0);
  for (int64_t i = 0; i < t.rows; ++i)
    for (int64_t c = 0; c < t.cols; ++c)
      r.data[i * t.cols + c] = values.data[i * t.cols + c] * scales.data[t.scaleIndex(i, c)];
  out.push_back(std::move(r));
  return success();
}

/// One operand of a scaled_matmul seen as op(A)[i, k] with its scales.
struct ScaledOperand {
  const RefTensor &values, &scales;
  Fp8Tiling tiling;
  bool transposed; ///< stored as [K, rows] rather than [rows, K]

  double value(int64_t i, int64_t k) const {
    return transposed ? values.data[k * tiling.cols + i] : values.data[i * tiling.cols + k];
  }
  double scale(int64_t i, int64_t k) const {
    return scales.data[transposed ? tiling.scaleIndex(k, i) : tiling.scaleIndex(i, k)];
  }
};

LogicalResult scaledMatmul(Operation *op, ArrayRef<const RefTensor *> in,
                           SmallVectorImpl<RefTensor> &out) {
  auto mm = cast<ScaledMatmulOp>(op);
  // rhs'[k, n] is rhs^T[n, k] when not transposed: both operands are read as
  // [rows, K], lhs with rows M and rhs with rows N.
  ScaledOperand lhs{*in[0], *in[1], fp8TilingOf(in[0]->shape, mm.getLhsBlock()),
                    mm.getTransposeLhs()};
  ScaledOperand rhs{*in[2], *in[3], fp8TilingOf(in[2]->shape, mm.getRhsBlock()),
                    !mm.getTransposeRhs()};
  RefTensor r = resultLike(op, 0);
  int64_t m = r.shape[0], n = r.shape[1];
  int64_t k = mm.getTransposeLhs() ? in[0]->shape[0] : in[0]->shape[1];
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t k0 = 0; k0 < k; k0 += kFp8TileEdge) {
        double block = 0;
        for (int64_t l = k0; l < std::min(k, k0 + kFp8TileEdge); ++l)
          block += lhs.value(i, l) * rhs.value(j, l);
        acc += block * (lhs.scale(i, k0) * rhs.scale(j, k0));
      }
      r.data[i * n + j] = acc;
    }
  out.push_back(std::move(r));
  return success();
}

/// Expert e's rows [first, last) of `offsets`.
std::pair<int64_t, int64_t> expertRows(const RefTensor &offsets, int64_t e) {
  return {int64_t(offsets.data[e]), int64_t(offsets.data[e + 1])};
}

LogicalResult quantizeGrouped(Operation *op, ArrayRef<const RefTensor *> in,
                              SmallVectorImpl<RefTensor> &out) {
  const RefTensor &x = *in[0], &offsets = *in[1];
  ArrayRef<int64_t> block = cast<QuantizeFp8GroupedOp>(op).getBlock();
  int64_t rows = x.shape[0], cols = x.shape[1], experts = offsets.numElements() - 1;
  if (failed(checkOffsets(op, offsets, rows)))
    return failure();
  // Unused scale rows and the rows past the last expert stay 0.
  RefTensor values = resultLike(op, 0), scales = resultLike(op, 1);
  int64_t scaleCols = scales.shape[1];
  for (int64_t e = 0; e < experts; ++e) {
    auto [first, last] = expertRows(offsets, e);
    int64_t base = first / block[0] + e;
    for (int64_t r0 = first, t = 0; r0 < last; r0 += block[0], ++t)
      for (int64_t c0 = 0; c0 < cols; c0 += block[1]) {
        int64_t r1 = std::min(last, r0 + block[0]), c1 = std::min(cols, c0 + block[1]);
        double amax = 0;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c) {
            double a = std::fabs(x.data[r * cols + c]);
            if (!std::isnan(amax) && (std::isnan(a) || a > amax))
              amax = a;
          }
        float floored = flooredAmax(amax);
        double factor = kE4m3Max / floored; // f32 division, as stored
        scales.data[(base + t) * scaleCols + c0 / block[1]] = floored / kE4m3Max;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c)
            values.data[r * cols + c] = x.data[r * cols + c] * factor;
      }
  }
  out.push_back(std::move(values));
  out.push_back(std::move(scales));
  return success();
}

LogicalResult scaledGroupedMatmul(Operation *op, ArrayRef<const RefTensor *> in,
                                  SmallVectorImpl<RefTensor> &out) {
  const RefTensor &lhs = *in[0], &lhsScales = *in[1], &w = *in[2], &wScales = *in[3],
                  &offsets = *in[4];
  const bool transposed = cast<ScaledGroupedMatmulOp>(op).getTransposeRhs();
  int64_t rows = lhs.shape[0], k = lhs.shape[1], experts = w.shape[0];
  int64_t n = transposed ? w.shape[1] : w.shape[2];
  int64_t kBlocks = lhsScales.shape[1];
  if (failed(checkOffsets(op, offsets, rows)))
    return failure();
  // rhs'[e, l, j]: expert e's weights read as [K, N]; its scales per
  // [1, 128, 128] block of the stored layout.
  Fp8Tiling wt = fp8TilingOf(w.shape, {1, kFp8TileEdge, kFp8TileEdge});
  int64_t wRows = w.shape[1], wCols = w.shape[2];
  auto at = [&](int64_t e, int64_t l, int64_t j) {
    return transposed ? e * wRows + j : e * wRows + l; // row of the stored [B * R, C]
  };
  auto col = [&](int64_t l, int64_t j) { return transposed ? l : j; };
  RefTensor r = resultLike(op, 0);
  for (int64_t e = 0; e < experts; ++e) {
    auto [first, last] = expertRows(offsets, e);
    for (int64_t i = first; i < last; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t b = 0; b < kBlocks; ++b) {
          int64_t k0 = b * kFp8TileEdge;
          double block = 0;
          for (int64_t l = k0; l < std::min(k, k0 + kFp8TileEdge); ++l)
            block += lhs.data[i * k + l] * w.data[at(e, l, j) * wCols + col(l, j)];
          acc += block * (lhsScales.data[i * kBlocks + b] *
                          wScales.data[wt.scaleIndex(at(e, k0, j), col(k0, j))]);
        }
        r.data[i * n + j] = acc;
      }
  }
  out.push_back(std::move(r));
  return success();
}

LogicalResult scaledGroupedMatmulWgrad(Operation *op, ArrayRef<const RefTensor *> in,
                                       SmallVectorImpl<RefTensor> &out) {
  const RefTensor &dy = *in[0], &dyScales = *in[1], &x = *in[2], &xScales = *in[3],
                  &offsets = *in[4];
  int64_t rows = dy.shape[0], n = dy.shape[1], k = x.shape[1];
  int64_t experts = offsets.numElements() - 1;
  if (failed(checkOffsets(op, offsets, rows)))
    return failure();
  RefTensor r = resultLike(op, 0);
  for (int64_t e = 0; e < experts; ++e) {
    auto [first, last] = expertRows(offsets, e);
    int64_t base = first / kFp8TileEdge + e;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) {
        double acc = 0;
        for (int64_t r0 = first, t = base; r0 < last; r0 += kFp8TileEdge, ++t) {
          double block = 0;
          for (int64_t row = r0; row < std::min(last, r0 + kFp8TileEdge); ++row)
            block += dy.data[row * n + i] * x.data[row * k + j];
          acc += block * (dyScales.data[t * n + i] * xScales.data[t * k + j]);
        }
        r.data[(e * n + i) * k + j] = acc;
      }
  }
  out.push_back(std::move(r));
  return success();
}

} // namespace

void addPrecisionRules(RuleTable &table) {
  table.add("kiln.quantize_fp8", quantize);
  table.add("kiln.dequantize_fp8", dequantize);
  table.add("kiln.scaled_matmul", scaledMatmul);
  table.add("kiln.quantize_fp8_grouped", quantizeGrouped);
  table.add("kiln.scaled_grouped_matmul", scaledGroupedMatmul);
  table.add("kiln.scaled_grouped_matmul_wgrad", scaledGroupedMatmulWgrad);
}

} // namespace kiln::reference

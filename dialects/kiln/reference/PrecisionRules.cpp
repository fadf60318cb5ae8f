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

} // namespace

void addPrecisionRules(RuleTable &table) {
  table.add("kiln.quantize_fp8", quantize);
  table.add("kiln.dequantize_fp8", dequantize);
  table.add("kiln.scaled_matmul", scaledMatmul);
}

} // namespace kiln::reference

//===- LowerFp8.cpp - kiln-lower-fp8: marked linears as FP8 GEMMs ---------===//
//
// After autodiff, every linear and expert GEMM kiln-mixed-precision marked
// kiln.fp8 (Fprop, Dgrad, Wgrad) becomes the quantization of its two
// operands and a block-scaled GEMM, with DeepSeek-V3's tilings (Passes.td
// has the table).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "dialects/kiln/Fp8Tiling.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace kiln {
#define GEN_PASS_DEF_KILNLOWERFP8
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

constexpr int64_t kEdge = kFp8TileEdge;

/// The type of the [rows, last] matrix of a tensor of rank >= 1.
RankedTensorType matrixTypeOf(RankedTensorType type) {
  int64_t last = type.getShape().back();
  return RankedTensorType::get({type.getNumElements() / last, last}, type.getElementType());
}

/// The [rows, last] matrix of a tensor of rank >= 1 (a vector is one row).
Value asMatrix(OpBuilder &b, Location loc, Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t rank = type.getRank();
  if (rank == 2)
    return v;
  RankedTensorType matrix = matrixTypeOf(type);
  if (rank == 1)
    return tensor::ExpandShapeOp::create(b, loc, matrix, v, {{0, 1}});
  ReassociationIndices rows;
  for (int64_t d = 0; d < rank - 1; ++d)
    rows.push_back(d);
  return tensor::CollapseShapeOp::create(b, loc, matrix, v, {rows, {rank - 1}});
}

/// `matrix` reshaped back to `type` (the inverse of asMatrix).
Value fromMatrix(OpBuilder &b, Location loc, Value matrix, RankedTensorType type) {
  int64_t rank = type.getRank();
  if (rank == 2)
    return matrix;
  if (rank == 1)
    return tensor::CollapseShapeOp::create(b, loc, type, matrix, {{0, 1}});
  ReassociationIndices rows;
  for (int64_t d = 0; d < rank - 1; ++d)
    rows.push_back(d);
  return tensor::ExpandShapeOp::create(b, loc, type, matrix, {rows, {rank - 1}});
}

/// A quantized matrix: its e4m3 values, scales and tiling.
struct Quantized {
  Value values, scales;
  SmallVector<int64_t, 2> block;
};

/// `x` quantized in tiles of `block` (two entries, or [1, r, c] for each
/// matrix of a rank-3 tensor).
Quantized quantize(OpBuilder &b, Location loc, Value x, ArrayRef<int64_t> block) {
  auto type = cast<RankedTensorType>(x.getType());
  Fp8Tiling t = fp8TilingOf(type.getShape(), block);
  auto values = RankedTensorType::get(type.getShape(), Float8E4M3FNType::get(b.getContext()));
  auto scales = RankedTensorType::get(t.scaleShape(), b.getF32Type());
  auto op = QuantizeFp8Op::create(b, loc, values, scales, x, b.getDenseI64ArrayAttr(block));
  return {op.getValues(), op.getScales(), SmallVector<int64_t, 2>(block)};
}

/// Expert-sorted rows [rows, C] quantized in 128x1 tiles within each expert.
Quantized quantizeGrouped(OpBuilder &b, Location loc, Value rows, Value offsets) {
  auto type = cast<RankedTensorType>(rows.getType());
  int64_t experts = cast<RankedTensorType>(offsets.getType()).getShape()[0] - 1;
  ArrayRef<int64_t> shape = type.getShape();
  auto values = RankedTensorType::get(shape, Float8E4M3FNType::get(b.getContext()));
  auto scales = RankedTensorType::get(
      {kernels::fp8GroupedScaleRows(shape[0], experts, kEdge), shape[1]}, b.getF32Type());
  auto op = QuantizeFp8GroupedOp::create(b, loc, values, scales, rows, offsets,
                                         b.getDenseI64ArrayAttr({kEdge, 1}));
  return {op.getValues(), op.getScales(), {kEdge, 1}};
}

Value scaledMatmul(OpBuilder &b, Location loc, RankedTensorType result, const Quantized &lhs,
                   const Quantized &rhs, bool transposeLhs, bool transposeRhs) {
  return ScaledMatmulOp::create(b, loc, result, lhs.values, lhs.scales, rhs.values, rhs.scales,
                                b.getDenseI64ArrayAttr(lhs.block),
                                b.getDenseI64ArrayAttr(rhs.block), b.getBoolAttr(transposeLhs),
                                b.getBoolAttr(transposeRhs));
}

struct KilnLowerFp8 : impl::KilnLowerFp8Base<KilnLowerFp8> {
  using Base::Base;

  void runOnOperation() override;

private:
  /// The op's result as one scaled GEMM of its operands, or failure.
  FailureOr<Value> lower(OpBuilder &b, Operation *op) const;
};

FailureOr<Value> KilnLowerFp8::lower(OpBuilder &b, Operation *op) const {
  Location loc = op->getLoc();
  for (Value v : op->getOperands().take_front(2)) { // the expert offsets come third
    Type t = cast<RankedTensorType>(v.getType()).getElementType();
    if (!t.isF32() && !t.isBF16() && !t.isF16())
      return op->emitError() << "kiln-lower-fp8: operand of element type " << t
                             << " cannot be quantized to FP8 (expected f32, bf16 or f16)";
  }
  auto resultType = cast<RankedTensorType>(op->getResult(0).getType());
  // Operands in order, each collapsed then quantized (lhs first).
  auto operand = [&](unsigned i, ArrayRef<int64_t> block) {
    return quantize(b, loc, asMatrix(b, loc, op->getOperand(i)), block);
  };
  if (isa<LinearOp>(op)) {
    // y = x W^T: x [M, K] in 1x128 tiles, W [N, K] in 128x128 blocks.
    Quantized x = operand(0, {1, kEdge}), w = operand(1, {kEdge, kEdge});
    Value y = scaledMatmul(b, loc, matrixTypeOf(resultType), x, w, false, true);
    return fromMatrix(b, loc, y, resultType);
  }
  if (isa<LinearDgradOp>(op)) {
    // dx = dy W: dy [M, N] in 1x128 tiles, W [N, K] in 128x128 blocks.
    Quantized dy = operand(0, {1, kEdge}), w = operand(1, {kEdge, kEdge});
    Value dx = scaledMatmul(b, loc, matrixTypeOf(resultType), dy, w, false, false);
    return fromMatrix(b, loc, dx, resultType);
  }
  if (isa<LinearWgradOp>(op)) {
    // dW = dy^T x over the tokens: both quantized in 128x1 tiles.
    Quantized dy = operand(0, {kEdge, 1}), x = operand(1, {kEdge, 1});
    return scaledMatmul(b, loc, resultType, dy, x, true, false);
  }
  // The expert GEMMs: rows [rows, *] sorted by expert, weights [E, N, K],
  // offsets last.
  Value offsets = op->getOperand(2);
  if (isa<GroupedMatmulOp, GroupedMatmulDgradOp>(op)) {
    // Fprop h = x W_e^T and Dgrad dx = dh W_e: rows in 1x128 tiles, each
    // expert's weights in its own 128x128 blocks.
    Quantized rows = operand(0, {1, kEdge});
    Quantized w = quantize(b, loc, op->getOperand(1), {1, kEdge, kEdge});
    return ScaledGroupedMatmulOp::create(b, loc, resultType, rows.values, rows.scales,
                                         w.values, w.scales, offsets,
                                         b.getBoolAttr(isa<GroupedMatmulOp>(op)))
        .getResult();
  }
  // Wgrad dW_e = dh_e^T x_e over expert e's rows: 128x1 tiles within each
  // expert, so that each 128-row K block has one scale per column.
  Quantized dy = quantizeGrouped(b, loc, op->getOperand(0), offsets);
  Quantized x = quantizeGrouped(b, loc, op->getOperand(1), offsets);
  return ScaledGroupedMatmulWgradOp::create(b, loc, resultType, dy.values, dy.scales, x.values,
                                            x.scales, offsets)
      .getResult();
}

void KilnLowerFp8::runOnOperation() {
  SmallVector<Operation *> marked;
  getOperation().walk([&](Operation *op) {
    if (isa<LinearOp, LinearDgradOp, LinearWgradOp, GroupedMatmulOp, GroupedMatmulDgradOp,
            GroupedMatmulWgradOp>(op) &&
        op->hasAttr(kFp8Attr))
      marked.push_back(op);
  });
  // Fprop, Dgrad, Wgrad; linear then expert.
  int64_t counts[2][3] = {};
  for (Operation *op : marked) {
    OpBuilder b(op);
    FailureOr<Value> result = lower(b, op);
    if (failed(result))
      return signalPassFailure();
    bool expert = isa<GroupedMatmulOp, GroupedMatmulDgradOp, GroupedMatmulWgradOp>(op);
    counts[expert][isa<LinearOp, GroupedMatmulOp>(op)                 ? 0
                   : isa<LinearDgradOp, GroupedMatmulDgradOp>(op) ? 1
                                                                    : 2]++;
    op->getResult(0).replaceAllUsesWith(*result);
    op->erase();
  }
  if (report)
    emitRemark(getOperation().getLoc())
        << "kiln-lower-fp8: " << counts[0][0] << " Fprop, " << counts[0][1] << " Dgrad and "
        << counts[0][2] << " Wgrad GEMMs in FP8; experts: " << counts[1][0] << " Fprop, "
        << counts[1][1] << " Dgrad and " << counts[1][2] << " Wgrad grouped GEMMs";
}

} // namespace
} // namespace kiln

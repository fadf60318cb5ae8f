//===- LowerFp8.cpp - kiln-lower-fp8: marked linears as FP8 GEMMs ---------===//
//
// After autodiff, every linear GEMM kiln-mixed-precision marked kiln.fp8
// (Fprop, Dgrad, Wgrad) becomes the quantization of its two operands and a
// block-scaled GEMM, with DeepSeek-V3's tilings (Passes.td has the table).
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

Quantized quantize(OpBuilder &b, Location loc, Value matrix, ArrayRef<int64_t> block) {
  auto type = cast<RankedTensorType>(matrix.getType());
  Fp8Tiling t = fp8TilingOf(type.getShape(), block);
  auto values = RankedTensorType::get(type.getShape(), Float8E4M3FNType::get(b.getContext()));
  auto scales = RankedTensorType::get({t.scaleRows(), t.scaleCols()}, b.getF32Type());
  auto op = QuantizeFp8Op::create(b, loc, values, scales, matrix, b.getDenseI64ArrayAttr(block));
  return {op.getValues(), op.getScales(), SmallVector<int64_t, 2>(block)};
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
  for (Value v : op->getOperands()) {
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
  // dW = dy^T x over the tokens: both quantized in 128x1 tiles.
  Quantized dy = operand(0, {kEdge, 1}), x = operand(1, {kEdge, 1});
  return scaledMatmul(b, loc, resultType, dy, x, true, false);
}

void KilnLowerFp8::runOnOperation() {
  SmallVector<Operation *> marked;
  getOperation().walk([&](Operation *op) {
    if (isa<LinearOp, LinearDgradOp, LinearWgradOp>(op) && op->hasAttr(kFp8Attr))
      marked.push_back(op);
  });
  int64_t counts[3] = {};
  for (Operation *op : marked) {
    OpBuilder b(op);
    FailureOr<Value> result = lower(b, op);
    if (failed(result))
      return signalPassFailure();
    counts[isa<LinearOp>(op) ? 0 : isa<LinearDgradOp>(op) ? 1 : 2]++;
    op->getResult(0).replaceAllUsesWith(*result);
    op->erase();
  }
  if (report)
    emitRemark(getOperation().getLoc())
        << "kiln-lower-fp8: " << counts[0] << " Fprop, " << counts[1] << " Dgrad and "
        << counts[2] << " Wgrad GEMMs in FP8";
}

} // namespace
} // namespace kiln

//===- KilnPrecisionOps.cpp - verifiers of the FP8 ops ---------------------===//

#include "dialects/kiln/Fp8Tiling.h"
#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"

#include "mlir/IR/TypeUtilities.h"

using namespace mlir;

namespace kiln {

/// True for the element types FP8 values are quantized from and
/// dequantized or accumulated to.
static bool isWideFloat(Type t) { return t.isF32() || t.isBF16() || t.isF16(); }

static LogicalResult expectWideFloat(Operation *op, StringRef name, Value v) {
  Type t = getElementTypeOrSelf(v.getType());
  if (isWideFloat(t))
    return success();
  return op->emitOpError() << "expects " << name
                           << " of element type f32, bf16 or f16, got " << t;
}

/// Checks `block` and that `scales` has one entry per tile of `shape`.
static LogicalResult verifyTiles(Operation *op, StringRef what, ArrayRef<int64_t> shape,
                                 ArrayRef<int64_t> block, StringRef scalesName,
                                 Value scales) {
  if (block.size() != 2 || block[0] < 1 || block[1] < 1)
    return op->emitOpError() << "expects " << what
                             << " = [rows, cols] with both >= 1, got "
                             << formatShape(block);
  if (shape.empty())
    return op->emitOpError("expects a tensor of rank >= 1 to quantize, got a 0-d tensor");
  Fp8Tiling t = fp8TilingOf(shape, block);
  return expectShape(op, scalesName, shapeOf(scales), {t.scaleRows(), t.scaleCols()});
}

LogicalResult QuantizeFp8Op::verify() {
  if (failed(expectWideFloat(*this, "x", getX())))
    return failure();
  if (failed(expectShape(*this, "values", shapeOf(getValues()), shapeOf(getX()))))
    return failure();
  return verifyTiles(*this, "block", shapeOf(getX()), getBlock(), "scales", getScales());
}

LogicalResult DequantizeFp8Op::verify() {
  if (failed(expectWideFloat(*this, "result", getResult())))
    return failure();
  if (failed(expectShape(*this, "result", shapeOf(getResult()), shapeOf(getValues()))))
    return failure();
  return verifyTiles(*this, "block", shapeOf(getValues()), getBlock(), "scales", getScales());
}

LogicalResult ScaledMatmulOp::verify() {
  ArrayRef<int64_t> a = shapeOf(getLhs()), b = shapeOf(getRhs());
  if (failed(expectRank(*this, "lhs", a, 2)) || failed(expectRank(*this, "rhs", b, 2)))
    return failure();
  if (failed(verifyTiles(*this, "lhs_block", a, getLhsBlock(), "lhs_scales", getLhsScales())) ||
      failed(verifyTiles(*this, "rhs_block", b, getRhsBlock(), "rhs_scales", getRhsScales())))
    return failure();
  if (failed(expectWideFloat(*this, "result", getResult())))
    return failure();
  unsigned lhsK = getTransposeLhs() ? 0 : 1, rhsK = getTransposeRhs() ? 1 : 0;
  if (a[lhsK] != b[rhsK])
    return emitOpError() << "expects the contracted dimensions to match, got lhs "
                         << formatShape(a) << " (K = " << a[lhsK] << ") and rhs "
                         << formatShape(b) << " (K = " << b[rhsK] << ")";
  // Each scale must be one number per K block: the tiles' extent along K is
  // the promotion interval on both sides.
  auto checkK = [&](StringRef name, ArrayRef<int64_t> block, unsigned kAxis) -> LogicalResult {
    if (block[kAxis] == kFp8TileEdge)
      return success();
    return emitOpError() << "expects " << name << " to span " << kFp8TileEdge
                         << " along the contracted dimension (dimension " << kAxis
                         << "), so that its scales are constant over each K block, got "
                         << formatShape(block);
  };
  if (failed(checkK("lhs_block", getLhsBlock(), lhsK)) ||
      failed(checkK("rhs_block", getRhsBlock(), rhsK)))
    return failure();
  int64_t m = a[1 - lhsK], n = b[1 - rhsK];
  return expectShape(*this, "result", shapeOf(getResult()), {m, n});
}

} // namespace kiln

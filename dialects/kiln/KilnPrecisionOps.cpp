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

/// Checks `block` (two entries, or [1, rows, cols] on a rank-3 tensor; see
/// Fp8Tiling.h) and that `scales` has one entry per tile of `shape`.
static LogicalResult verifyTiles(Operation *op, StringRef what, ArrayRef<int64_t> shape,
                                 ArrayRef<int64_t> block, StringRef scalesName,
                                 Value scales) {
  if (shape.empty())
    return op->emitOpError("expects a tensor of rank >= 1 to quantize, got a 0-d tensor");
  bool batched = block.size() == 3 && shape.size() == 3 && block[0] == 1;
  if ((block.size() != 2 && !batched) || block[block.size() - 2] < 1 || block.back() < 1)
    return op->emitOpError() << "expects " << what
                             << " = [rows, cols] with both >= 1, or [1, rows, cols] to tile "
                                "each matrix of a rank-3 tensor alone, got "
                             << formatShape(block) << " for a tensor " << formatShape(shape);
  Fp8Tiling t = fp8TilingOf(shape, block);
  return expectShape(op, scalesName, shapeOf(scales), t.scaleShape());
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

/// Checks that `offsets` is an i32 [experts + 1] with experts >= 1 (or, given
/// `experts`, exactly that many) and returns experts.
static FailureOr<int64_t> verifyOffsets(Operation *op, Value offsets,
                                        std::optional<int64_t> experts = std::nullopt) {
  ArrayRef<int64_t> shape = shapeOf(offsets);
  if (!getElementTypeOrSelf(offsets.getType()).isInteger(32))
    return op->emitOpError() << "expects offsets of element type i32, got "
                             << getElementTypeOrSelf(offsets.getType());
  if (experts) {
    if (failed(expectShape(op, "offsets ([experts + 1])", shape, {*experts + 1})))
      return failure();
    return *experts;
  }
  if (shape.size() != 1 || shape[0] < 2)
    return op->emitOpError() << "expects offsets [experts + 1] with at least one expert, got "
                             << formatShape(shape);
  return shape[0] - 1;
}

LogicalResult QuantizeFp8GroupedOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getX()), block = getBlock();
  if (failed(expectWideFloat(*this, "x", getX())) ||
      failed(expectRank(*this, "x ([rows, C], sorted by expert)", x, 2)) ||
      failed(expectShape(*this, "values", shapeOf(getValues()), x)))
    return failure();
  if (block.size() != 2 || block[0] < 1 || block[1] < 1)
    return emitOpError() << "expects block = [rows, cols] with both >= 1, got "
                         << formatShape(block);
  FailureOr<int64_t> experts = verifyOffsets(*this, getOffsets());
  if (failed(experts))
    return failure();
  return expectShape(*this, "scales", shapeOf(getScales()),
                     {kernels::fp8GroupedScaleRows(x[0], *experts, block[0]),
                      (x[1] + block[1] - 1) / block[1]});
}

LogicalResult ScaledGroupedMatmulOp::verify() {
  ArrayRef<int64_t> a = shapeOf(getLhs()), w = shapeOf(getRhs());
  if (failed(expectRank(*this, "lhs ([rows, K], sorted by expert)", a, 2)) ||
      failed(expectRank(*this, "rhs (the stacked expert weights)", w, 3)) ||
      failed(expectWideFloat(*this, "result", getResult())))
    return failure();
  const bool transposed = getTransposeRhs();
  // lhs in [1, 128] tiles; rhs per expert in [1, 128, 128] blocks.
  int64_t kBlocks = (a[1] + kFp8TileEdge - 1) / kFp8TileEdge;
  if (failed(expectShape(*this, "lhs_scales (one per row and K block)",
                         shapeOf(getLhsScales()), {a[0], kBlocks})) ||
      failed(verifyTiles(*this, "the rhs tiling", w, {1, kFp8TileEdge, kFp8TileEdge},
                         "rhs_scales (one per expert and 128x128 block)", getRhsScales())))
    return failure();
  int64_t k = transposed ? w[2] : w[1], n = transposed ? w[1] : w[2];
  if (k != a[1])
    return emitOpError() << "expects the contracted dimensions to match, got lhs "
                         << formatShape(a) << " (K = " << a[1] << ") and rhs "
                         << formatShape(w) << " (K = " << k << ", dimension "
                         << (transposed ? 2 : 1) << " with transpose_rhs = "
                         << (transposed ? "true" : "false") << ")";
  if (failed(verifyOffsets(*this, getOffsets(), w[0])))
    return failure();
  return expectShape(*this, "result", shapeOf(getResult()), {a[0], n});
}

LogicalResult ScaledGroupedMatmulWgradOp::verify() {
  ArrayRef<int64_t> dy = shapeOf(getDy()), x = shapeOf(getX());
  if (failed(expectRank(*this, "dy ([rows, N], sorted by expert)", dy, 2)) ||
      failed(expectRank(*this, "x ([rows, K], sorted by expert)", x, 2)) ||
      failed(expectWideFloat(*this, "result", getResult())))
    return failure();
  if (dy[0] != x[0])
    return emitOpError() << "expects dy and x to have the same rows, got " << formatShape(dy)
                         << " and " << formatShape(x);
  FailureOr<int64_t> experts = verifyOffsets(*this, getOffsets());
  if (failed(experts))
    return failure();
  // Both in grouped [128, 1] tiles (kiln.quantize_fp8_grouped).
  int64_t scaleRows = kernels::fp8GroupedScaleRows(dy[0], *experts, kFp8TileEdge);
  if (failed(expectShape(*this, "dy_scales (grouped [128, 1] tiles)", shapeOf(getDyScales()),
                         {scaleRows, dy[1]})) ||
      failed(expectShape(*this, "x_scales (grouped [128, 1] tiles)", shapeOf(getXScales()),
                         {scaleRows, x[1]})))
    return failure();
  return expectShape(*this, "result", shapeOf(getResult()), {*experts, dy[1], x[1]});
}

} // namespace kiln

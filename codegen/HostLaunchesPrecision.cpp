//===- HostLaunchesPrecision.cpp - host launches: FP8 quantize and GEMM ---===//
//
// The LaunchEmitter methods (HostLaunchEmitter.h) of KilnPrecisionOps.td's
// kernels. Tilings come from dialects/kiln/Fp8Tiling.h, the definition the
// verifiers and the evaluator use.
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunchEmitter.h"

#include "dialects/kiln/Fp8Tiling.h"

namespace kiln::codegen::detail {

std::string LaunchEmitter::fp8Tiles(ArrayRef<int64_t> shape, StringRef blockName,
                                    MemRefType scales) {
  // Two entries, or [1, rows, cols] tiling each matrix of a rank-3 buffer.
  auto given = dyn_cast_or_null<DenseI64ArrayAttr>(param(blockName, "dense i64 array", false));
  bool batched = given && given.size() == 3;
  SmallVector<int64_t> block = i64Array(blockName, batched ? 3 : 2);
  if (block[block.size() - 2] < 1 || block.back() < 1 || (batched && block[0] != 1))
    fail("expects '", blockName, "' = [rows, cols] or [1, rows, cols] with entries >= 1, got ",
         given);
  if (shape.empty())
    fail("expects a quantized buffer of rank >= 1");
  if (batched && shape.size() != 3)
    fail("expects a rank-3 buffer for the batched '", blockName, "', got rank ", shape.size());
  if (failed)
    return "";
  Fp8Tiling t = fp8TilingOf(shape, block);
  if (scales.getNumElements() != t.scaleRows() * t.scaleCols())
    fail("expects ", t.scaleRows(), " x ", t.scaleCols(), " scales for ", blockName, " ",
         given, ", got ", scales);
  return "kiln::kernels::Fp8Tiles{" + intLiteral(t.rows) + ", " + intLiteral(t.cols) + ", " +
         intLiteral(t.tileRows) + ", " + intLiteral(t.tileCols) +
         (batched ? ", " + intLiteral(t.matrices) : std::string()) + "}";
}

// quantize_fp8(x [..., C]) -> (values [..., C], scales [SR, SC])
void LaunchEmitter::quantizeFp8() {
  elements("w", "qf");
  if (failed)
    return;
  sameCount(inCount(0), outCount(0), "the element counts of x and values");
  std::string tiles = fp8Tiles(inShape(0), "block", outType(1));
  if (failed)
    return;
  call("quantizeFp8", {out(0), out(1), in(0), tiles});
}

// dequantize_fp8(values [..., C], scales [SR, SC]) -> result [..., C]
void LaunchEmitter::dequantizeFp8() {
  elements("qf", "w");
  if (failed)
    return;
  sameCount(inCount(0), outCount(0), "the element counts of values and result");
  std::string tiles = fp8Tiles(inShape(0), "block", inType(1));
  if (failed)
    return;
  call("dequantizeFp8", {out(0), in(0), in(1), tiles});
}

// scaled_matmul(lhs, lhs_scales, rhs, rhs_scales) -> result [M, N]
void LaunchEmitter::scaledMatmul() {
  elements("qfqf", "w");
  rank(true, 0, 2);
  rank(true, 2, 2);
  rank(false, 0, 2);
  if (failed)
    return;
  bool transposeLhs = flag("transpose_lhs", false), transposeRhs = flag("transpose_rhs", false);
  ArrayRef<int64_t> a = inShape(0), b = inShape(2);
  int64_t m = transposeLhs ? a[1] : a[0], k = transposeLhs ? a[0] : a[1];
  int64_t n = transposeRhs ? b[0] : b[1];
  sameCount(k, transposeRhs ? b[1] : b[0], "the contracted dimensions of lhs and rhs");
  sameCount(outShape(0)[0], m, "the result's rows and lhs's M");
  sameCount(outShape(0)[1], n, "the result's columns and rhs's N");
  SmallVector<int64_t> lhsBlock = i64Array("lhs_block", 2), rhsBlock = i64Array("rhs_block", 2);
  if (lhsBlock[transposeLhs ? 0 : 1] != kFp8TileEdge ||
      rhsBlock[transposeRhs ? 1 : 0] != kFp8TileEdge)
    fail("expects both operands' tiles to span ", kFp8TileEdge,
         " along the contracted dimension");
  std::string lhsTiles = fp8Tiles(a, "lhs_block", inType(1));
  std::string rhsTiles = fp8Tiles(b, "rhs_block", inType(3));
  if (failed)
    return;
  // The kernel reads each operand as [rows, K] unless it is stored K-major:
  // lhs when transposed, rhs when not.
  auto operand = [&](unsigned values, const std::string &tiles, bool kMajor) {
    return "kiln::kernels::ScaledOperand{" + in(values) + ", " + in(values + 1) + ", " + tiles +
           ", " + boolLiteral(kMajor) + "}";
  };
  call("scaledMatmul", {out(0), operand(0, lhsTiles, transposeLhs),
                        operand(2, rhsTiles, !transposeRhs), intLiteral(m), intLiteral(n),
                        intLiteral(k)});
}

// quantize_fp8_grouped(x [rows, C], offsets [E + 1]) -> (values, scales [SR, SC])
void LaunchEmitter::quantizeFp8Grouped() {
  elements("wi", "qf");
  rank(true, 0, 2);
  rank(true, 1, 1);
  if (failed)
    return;
  ArrayRef<int64_t> x = inShape(0);
  int64_t experts = inShape(1)[0] - 1;
  SmallVector<int64_t> block = i64Array("block", 2);
  if (block[0] < 1 || block[1] < 1)
    fail("expects 'block' entries >= 1, got [", block[0], ", ", block[1], "]");
  if (experts < 1)
    fail("expects offsets of at least one expert");
  if (failed)
    return;
  sameCount(inCount(0), outCount(0), "the element counts of x and values");
  sameCount(outCount(1),
            kernels::fp8GroupedScaleRows(x[0], experts, block[0]) *
                ((x[1] + block[1] - 1) / block[1]),
            "the scales' count and the grouped tiles of x");
  checkedCall("quantizeFp8Grouped",
              {out(0), out(1), in(0), in(1), intLiteral(x[0]), intLiteral(x[1]),
               intLiteral(experts), intLiteral(block[0]), intLiteral(block[1])});
}

// scaled_grouped_matmul(lhs [rows, K], lhs_scales, rhs [E, N, K] or [E, K, N],
//                       rhs_scales, offsets [E + 1]) -> [rows, N]
void LaunchEmitter::scaledGroupedMatmul() {
  elements("qfqfi", "w");
  rank(true, 0, 2);
  rank(true, 2, 3);
  rank(false, 0, 2);
  if (failed)
    return;
  bool transposeRhs = flag("transpose_rhs", false);
  ArrayRef<int64_t> a = inShape(0), w = inShape(2);
  int64_t k = a[1], kBlocks = (k + kFp8TileEdge - 1) / kFp8TileEdge;
  sameCount(k, transposeRhs ? w[2] : w[1], "the contracted dimensions of lhs and rhs");
  sameCount(inShape(4)[0], w[0] + 1, "the offsets' count and the experts + 1");
  sameCount(inCount(1), a[0] * kBlocks, "lhs_scales' count and lhs's [1, 128] tiles");
  sameCount(outCount(0), a[0] * (transposeRhs ? w[1] : w[2]), "the result's count");
  auto blocks = [](int64_t d) { return (d + kFp8TileEdge - 1) / kFp8TileEdge; };
  sameCount(inCount(3), w[0] * blocks(w[1]) * blocks(w[2]),
            "rhs_scales' count and rhs's per-expert [128, 128] blocks");
  if (failed)
    return;
  checkedCall("scaledGroupedMatmul",
              {out(0), in(0), in(1), in(2), in(3), in(4), intLiteral(a[0]), intLiteral(k),
               intLiteral(w[0]), intLiteral(w[1]), intLiteral(w[2]), boolLiteral(transposeRhs)});
}

// scaled_grouped_matmul_wgrad(dy [rows, N], dy_scales, x [rows, K], x_scales,
//                             offsets [E + 1]) -> [E, N, K]
void LaunchEmitter::scaledGroupedMatmulWgrad() {
  elements("qfqfi", "w");
  rank(true, 0, 2);
  rank(true, 2, 2);
  rank(false, 0, 3);
  if (failed)
    return;
  ArrayRef<int64_t> dy = inShape(0), x = inShape(2);
  int64_t experts = inShape(4)[0] - 1;
  int64_t scaleRows = kernels::fp8GroupedScaleRows(dy[0], experts, kFp8TileEdge);
  sameCount(dy[0], x[0], "the rows of dy and x");
  sameCount(inCount(1), scaleRows * dy[1], "dy_scales' count and dy's grouped [128, 1] tiles");
  sameCount(inCount(3), scaleRows * x[1], "x_scales' count and x's grouped [128, 1] tiles");
  sameCount(outCount(0), experts * dy[1] * x[1], "the result's count");
  if (failed)
    return;
  checkedCall("scaledGroupedMatmulWgrad",
              {out(0), in(0), in(1), in(2), in(3), in(4), intLiteral(dy[0]), intLiteral(dy[1]),
               intLiteral(x[1]), intLiteral(experts)});
}

} // namespace kiln::codegen::detail

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
  SmallVector<int64_t> block = i64Array(blockName, 2);
  if (block[0] < 1 || block[1] < 1)
    fail("expects '", blockName, "' entries >= 1, got [", block[0], ", ", block[1], "]");
  if (shape.empty())
    fail("expects a quantized buffer of rank >= 1");
  if (failed)
    return "";
  Fp8Tiling t = fp8TilingOf(shape, block);
  if (scales.getNumElements() != t.scaleRows() * t.scaleCols())
    fail("expects ", t.scaleRows(), " x ", t.scaleCols(), " scales for ", blockName, " [",
         block[0], ", ", block[1], "], got ", scales);
  return "kiln::kernels::Fp8Tiles{" + intLiteral(t.rows) + ", " + intLiteral(t.cols) + ", " +
         intLiteral(t.tileRows) + ", " + intLiteral(t.tileCols) + "}";
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

} // namespace kiln::codegen::detail

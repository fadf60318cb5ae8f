//===- Fp8Tiling.h - how kiln.quantize_fp8 cuts a tensor into tiles -------===//
//
// A quantized tensor is seen as a matrix [R, C] (C its last dimension, R the
// product of the others) cut into tiles of block = [rows, cols]; each tile
// has one scale, at [r / rows, c / cols] of the scales matrix. A block of
// three entries [1, rows, cols] on a tensor [B, R, C] cuts each of the B
// matrices alone (an expert's weights never share a tile with the next
// expert's); the scales are then [B, ceil(R / rows), ceil(C / cols)]. The
// verifiers, the evaluator and the code emitters all use this one
// definition.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_FP8TILING_H
#define KILN_FP8TILING_H

#include "runtime/kernels/PrecisionMath.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>

namespace kiln {

/// The promotion interval of scaled GEMMs (the K extent every scale tile of
/// their operands must have), DeepSeek-V3's tile edge.
constexpr int64_t kFp8TileEdge = kernels::kFp8BlockSize;

struct Fp8Tiling {
  int64_t rows = 1, cols = 1;         ///< the matrix the tensor is seen as
  int64_t tileRows = 1, tileCols = 1; ///< the block attribute's last two
  int64_t matrices = 1;               ///< B of a [1, rows, cols] block

  int64_t matrixRows() const { return matrices > 0 ? rows / matrices : 0; }
  int64_t scaleRowsPerMatrix() const { return (matrixRows() + tileRows - 1) / tileRows; }
  int64_t scaleRows() const { return matrices * scaleRowsPerMatrix(); }
  int64_t scaleCols() const { return (cols + tileCols - 1) / tileCols; }
  /// The scales' shape: [scaleRows, scaleCols], or [B, per matrix, cols].
  llvm::SmallVector<int64_t, 3> scaleShape() const {
    if (matrices == 1)
      return {scaleRows(), scaleCols()};
    return {matrices, scaleRowsPerMatrix(), scaleCols()};
  }
  /// Flat index into the scales of element [r, c] (r over all B matrices).
  int64_t scaleIndex(int64_t r, int64_t c) const {
    int64_t inMatrix = r % matrixRows();
    return ((r / matrixRows()) * scaleRowsPerMatrix() + inMatrix / tileRows) * scaleCols() +
           c / tileCols;
  }
};

/// The tiling of a tensor of `shape` (rank >= 1) by `block` (two entries,
/// each >= 1, or three [1, rows, cols] on a rank-3 tensor; the verifiers
/// check that before anyone calls this).
inline Fp8Tiling fp8TilingOf(llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<int64_t> block) {
  Fp8Tiling t;
  t.cols = shape.empty() ? 1 : shape.back();
  for (int64_t d : shape.drop_back())
    t.rows *= d;
  t.tileRows = block[block.size() - 2];
  t.tileCols = block.back();
  if (block.size() == 3)
    t.matrices = shape.front();
  return t;
}

} // namespace kiln

#endif // KILN_FP8TILING_H
